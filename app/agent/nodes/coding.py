"""implement and verify: the coding agent works, then the tests judge, a bounded number of times.

verify runs the test command itself (deterministic, not the model's word). A failure goes back
to implement with the output's tail, at most `max_test_attempts` times in all; when the tests
still fail after that, the work is published anyway as a draft clearly marked "tests failing"
(people can pick it up from there) and the run ends with status tests_failing.
"""

from __future__ import annotations

from typing import Literal

from langgraph.types import Command

from app.agent import agents, prompts, workspace
from app.agent.models import chat_model
from app.agent.nodes.common import (
    Rt,
    announce,
    budget_for,
    done,
    find_workspace,
    open_workspace,
    redo_in_new_workspace,
)
from app.agent.state import CheckResult, ImplementUpdate, RunState, VerifyUpdate, is_follow_up
from app.agent.tools import clip
from app.agent.usage import Usage

FAILURE_OUTPUT_CHARS = 8_000  # of the failing test output shown to the agent and reports


async def implement(state: RunState, runtime: Rt) -> ImplementUpdate:
    settings = runtime.context.settings
    attempt = state.get("attempts", 0) + 1
    budget = budget_for(state, runtime, "implement")
    # A sandbox that vanished (while the plan waited, or before a retry) is rebuilt; any
    # earlier attempt's work went with it, so this one starts afresh.
    sandbox, fields, rebuilt = await open_workspace(state, runtime)
    continuing = state.get("continuing", False) and not rebuilt  # the work is still there
    if rebuilt and attempt > 1:
        attempt, state = 1, {**state, "tests": None, "agent_notes": ""}
    plan = state.get("plan")
    assert plan is not None or is_follow_up(state), "implement runs after an approved plan"
    notes = await agents.implement(
        settings=settings,
        redactor=runtime.context.redactor,
        sandbox=sandbox,
        repo_dir=fields["repo_dir"],
        budget=budget,
        model=chat_model(settings, "implement"),
        summarizer=chat_model(settings, "summarize"),
        follow_ups=runtime.context.follow_ups,
        system=prompts.implement_system(
            fields["repo_dir"],
            fields.get("instructions", state.get("instructions")),
            fields.get("instructions_file", state.get("instructions_file")),
            fields.get("test_command", state.get("test_command")),
        ),
        request=prompts.implement_request(
            state["task"],
            plan,
            attempt=attempt,
            failure=state.get("tests"),
            notes=state.get("agent_notes", ""),
            continuing=continuing,
        ),
    )
    usage = budget.spent()
    await announce(runtime, "implement", f"attempt {attempt}", Usage.from_dict(usage))
    return ImplementUpdate(
        **fields,
        attempts=attempt,
        tests=state.get("tests"),
        agent_notes=clip(notes, 2_000),
        continuing=False,
        usage=usage,
        steps_done=done(state, "implement"),
    )


async def verify(state: RunState, runtime: Rt) -> Command[Literal["implement", "publish"]]:
    settings = runtime.context.settings
    budget = budget_for(state, runtime, "implement")
    attempts = state.get("attempts", 1)
    command = state.get("test_command")
    if command is None:
        report = CheckResult(
            command=None, passed=None, exit_code=None, output="", attempts=attempts
        )
        await announce(
            runtime,
            "verify",
            "no test command found: tests not run",
            Usage.from_dict(budget.spent()),
        )
        untested = VerifyUpdate(tests=report, steps_done=done(state, "verify"))
        return Command(goto="publish", update=untested)
    sandbox = await find_workspace(state, runtime)
    if sandbox is None:
        redo = await redo_in_new_workspace(state, runtime, "verify")
        return Command(goto="implement", update=redo)
    result = await workspace.run(
        sandbox, command, cwd=workspace.repo_dir_of(sandbox), seconds=settings.command_timeout
    )
    output = result.output + ("\n[timed out]" if result.timed_out else "")
    report = CheckResult(
        command=command,
        passed=result.ok,
        exit_code=result.exit_code,
        output=clip(output.strip(), FAILURE_OUTPUT_CHARS),
        attempts=attempts,
    )
    runtime.context.events.emit(
        "tests",
        command=command,
        passed=result.ok,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        attempt=attempts,
        output=report["output"],
    )
    usage = budget.spent()
    update = VerifyUpdate(tests=report, usage=usage, steps_done=done(state, "verify"))
    if result.ok:
        await announce(runtime, "verify", f"`{command}` passed", Usage.from_dict(usage))
        return Command(goto="publish", update=update)
    if attempts < settings.max_test_attempts:
        detail = f"`{command}` failed (attempt {attempts} of {settings.max_test_attempts}); fixing"
        await announce(runtime, "verify", detail, Usage.from_dict(usage))
        return Command(goto="implement", update=update)
    detail = f"`{command}` still failing after {attempts} attempts"
    await announce(runtime, "verify", detail, Usage.from_dict(usage))
    return Command(goto="publish", update=update)
