"""What the steps share: the run's sandbox labels, its workspace, its budget, progress."""

from __future__ import annotations

import asyncio

from langgraph.runtime import Runtime

from app.agent import workspace
from app.agent.budget import Budget, Usage
from app.agent.context import RunContext
from app.agent.models import Step, model_label
from app.agent.state import Prepared, Redo, RunState, StepName, is_follow_up
from app.agent.state import sandbox_labels as sandbox_labels  # re-exported for the nodes
from app.sandbox.base import Sandbox, SandboxGone
from app.transcript import commands_quiet

Rt = Runtime[RunContext]
MAX_REBUILDS = 2


def budget_for(state: RunState, runtime: Rt, step: Step) -> Budget:
    settings = runtime.context.settings
    return Budget(
        settings,
        state.get("usage"),
        model=model_label(settings, step),
        ledger=runtime.context.ledger,
    )


async def acquire(state: RunState, runtime: Rt) -> Sandbox:
    """The run's sandbox, alive: one this process holds, else found or created by labels."""
    labels = sandbox_labels(state)
    sandbox = await runtime.context.sandbox(labels)
    try:
        with commands_quiet():  # a liveness probe, not the run's work
            await workspace.run(sandbox, "true")
    except SandboxGone:
        runtime.context.forget(labels)
        sandbox = await runtime.context.sandbox(labels)
    return sandbox


async def build_workspace(state: RunState, runtime: Rt, sandbox: Sandbox) -> Prepared:
    """Clone, branch, read the default branch's rules, set the sandbox's network policy, run
    the setup script: state fields."""
    ctx = runtime.context
    checkout = await ctx.host.checkout()
    if checkout.credentials is not None:
        ctx.redactor.add(checkout.credentials.password)
    repo_dir, base_branch, base_sha, start_sha = await workspace.clone(
        sandbox, checkout, state["branch"], existing=is_follow_up(state)
    )
    config, instructions, source, test_command = await workspace.read_repo_rules(
        sandbox, repo_dir, base_sha
    )
    await asyncio.to_thread(sandbox.set_network_policy, config.network)
    setup_note = None
    if config.setup:
        setup_note = await workspace.run_setup(
            sandbox, repo_dir, config.setup, ctx.settings.command_timeout
        )
    return Prepared(
        repo_dir=repo_dir,
        base_branch=base_branch,
        base_sha=base_sha,
        start_sha=start_sha,
        instructions=instructions,
        instructions_file=source,
        test_command=test_command,
        bot_name=checkout.bot.name,
        bot_email=checkout.bot.email,
        setup_note=setup_note,
    )


async def find_workspace(state: RunState, runtime: Rt) -> Sandbox | None:
    """The run's sandbox if it still holds the checkout (a sandbox can vanish: Daytona deletes
    stopped ones, a failed or stopped run deletes its own before a retry)."""
    sandbox = await acquire(state, runtime)
    return sandbox if await workspace.has_checkout(sandbox) else None


async def open_workspace(state: RunState, runtime: Rt) -> tuple[Sandbox, Prepared, bool]:
    """The run's sandbox and checkout, rebuilt when lost: (sandbox, state fields, rebuilt)."""
    sandbox = await find_workspace(state, runtime)
    if sandbox is not None:
        return sandbox, Prepared(repo_dir=workspace.repo_dir_of(sandbox)), False
    sandbox = await acquire(state, runtime)
    return sandbox, await build_workspace(state, runtime, sandbox), True


async def redo_in_new_workspace(state: RunState, runtime: Rt, step: StepName) -> Redo:
    """The checkout (and the uncommitted work) is gone: the update for going back to
    implement, which starts afresh in a new sandbox (a bounded number of times)."""
    rebuilds = state.get("rebuilds", 0) + 1
    if rebuilds > MAX_REBUILDS:
        raise workspace.WorkspaceLost(
            f"the sandbox was lost {rebuilds} times, and the uncommitted work with it"
        )
    await announce(
        runtime, step, "the sandbox was lost: redoing the work in a new one",
        Usage.from_dict(state.get("usage")),
    )  # fmt: skip
    return Redo(rebuilds=rebuilds, attempts=0, tests=None, agent_notes="")


async def announce(runtime: Rt, step: StepName, detail: str, usage: Usage) -> None:
    runtime.context.events.emit(
        "step", step=step, detail=detail, tokens=usage.tokens, cost_usd=usage.cost_usd
    )
    await runtime.context.host.progress(step, detail, usage)


def done(state: RunState, step: StepName) -> list[str]:
    return [*state.get("steps_done", []), step]
