"""publish and report: commit and hand the change to the host; then the workflow's last step.

Nothing changed means nothing is published (the outcome says so). Publishing itself (push and
pull request, or a branch in a local repository) is the host's, and the host makes it
idempotent. report only closes the checklist: the run's end (its final status, its sandbox) is
the lifecycle's (app.runs.lifecycle.end_run), for every way a run ends.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import structlog
from langgraph.types import Command

from app.agent import agents, prompts, workspace
from app.agent.context import RunContext
from app.agent.host import Change, RunOutcome
from app.agent.models import chat_model
from app.agent.nodes.common import (
    Rt,
    announce,
    budget_for,
    done,
    find_workspace,
    redo_in_new_workspace,
)
from app.agent.state import (
    CheckResult,
    OutcomeDict,
    PlanDict,
    PublishUpdate,
    ReportUpdate,
    RunState,
    WorkflowOutcome,
    is_follow_up,
)
from app.agent.tools import clip
from app.agent.usage import Usage
from app.sandbox.base import GitIdentity, Sandbox
from app.text.github import defuse_mentions, unclose_others
from app.text.sanitize import sanitize

log = structlog.get_logger(__name__)
DIFF_CHARS = 20_000  # of the diff shown to the model writing the PR text
MAX_FOLLOW_UP_ROUNDS = 3
MORE_WORK = "new instructions arrived: back to work before publishing"


async def instructions_waiting(state: RunState, context: RunContext) -> bool:
    """Did people send instructions after the agent had finished? Then they go back to it,
    instead of waiting for a run that nobody starts (a bounded number of times)."""
    if context.follow_ups is None or state.get("follow_up_rounds", 0) >= MAX_FOLLOW_UP_ROUNDS:
        return False
    return await context.follow_ups.waiting()


def commit_message(
    title: str, summary: str, co_author: str | None, *, repo: str, issue_number: int | None
) -> str:
    """The model's words, made harmless: merged into the default branch, a commit message's
    closing keywords close issues too, so only the run's own issue may be named that way."""
    words = defuse_mentions(f"{title}\n\n{summary}".strip())
    message = unclose_others(words, repo=repo, issue_number=issue_number)
    if co_author:
        message += f"\n\nCo-authored-by: {co_author}"
    return message + "\n"


def pr_body(
    summary: str, plan: PlanDict | None, tests: CheckResult | None, issue_number: int | None
) -> str:
    parts = [summary.strip()]
    if tests is not None and tests["command"] is not None and not tests["passed"]:
        parts.insert(0, f"> [!WARNING]\n> Tests failing: {prompts.describe_tests(tests)}.")
    if plan is not None:
        parts.append("## Plan\n\n" + "\n".join(f"- [ ] {step}" for step in plan["steps"]))
    parts.append("## Tests\n\n" + prompts.describe_tests(tests))
    if (
        tests is not None
        and tests["command"] is not None
        and not tests["passed"]
        and tests["output"]
    ):
        parts.append(
            f"<details><summary>Test output (tail)</summary>\n\n```\n{tests['output'][-3000:]}\n```\n</details>"
        )
    if issue_number is not None:
        parts.append(f"Fixes #{issue_number}")
    return "\n\n".join(parts) + "\n"


async def publish(state: RunState, runtime: Rt) -> Command[Literal["report", "implement"]]:
    ctx = runtime.context
    budget = budget_for(state, runtime, "summarize")
    sandbox = await find_workspace(state, runtime)
    if sandbox is None:
        redo = await redo_in_new_workspace(state, runtime, "publish")
        return Command(goto="implement", update=redo)
    if await instructions_waiting(state, ctx):
        await announce(runtime, "publish", MORE_WORK, Usage.from_dict(budget.spent()))
        rounds = state.get("follow_up_rounds", 0) + 1
        more = PublishUpdate(follow_up_rounds=rounds, attempts=0, tests=None, continuing=True)
        return Command(goto="implement", update=more)
    repo_dir = workspace.repo_dir_of(sandbox)
    tests = state.get("tests")
    since = await _work_since(state, sandbox, repo_dir)
    if not await workspace.has_changes(sandbox, repo_dir, since):
        outcome = OutcomeDict(
            status="no_changes", branch=state["branch"], url=None, commit=None, title=None
        )
        await announce(
            runtime,
            "publish",
            "nothing changed: nothing to publish",
            Usage.from_dict(budget.spent()),
        )
        nothing = PublishUpdate(
            outcome=outcome, usage=budget.spent(), steps_done=done(state, "publish")
        )
        return Command(goto="report", update=nothing)
    stat, diff = await workspace.staged_diff(sandbox, repo_dir, since)
    text = await agents.write_pull_request(
        budget=budget,
        model=chat_model(ctx.settings, "summarize"),
        request=prompts.pr_request(
            state["task"], state.get("plan"), stat, clip(diff, DIFF_CHARS), tests
        ),
    )
    title = (await asyncio.to_thread(sanitize, text.title)).replace("\n", " ")[:100]
    title = title or state["title"]
    summary = await asyncio.to_thread(sanitize, text.summary)  # the model's words: off the loop
    author = GitIdentity(state["bot_name"], state["bot_email"])
    closes = None if is_follow_up(state) else state["issue_number"]  # a PR closes no PR
    message = commit_message(
        title, summary, state.get("requested_by"), repo=state["repo"], issue_number=closes
    )
    sha = await workspace.commit(sandbox, repo_dir, message, author)
    passed = None if tests is None or tests["command"] is None else tests["passed"]
    change = Change(
        repo_dir=repo_dir,
        branch=state["branch"],
        base_branch=state["base_branch"],
        commit=sha,
        title=title,
        body=pr_body(summary, state.get("plan"), tests, closes),
        tests_passed=passed,
        issue_number=closes,
    )
    publication = await ctx.host.publish(sandbox, change)
    status: WorkflowOutcome = "tests_failing" if passed is False else "succeeded"
    outcome = OutcomeDict(
        status=status, branch=publication.branch, url=publication.url, commit=sha, title=title
    )
    usage = budget.spent()
    await announce(
        runtime,
        "publish",
        publication.url or f"branch {publication.branch}",
        Usage.from_dict(usage),
    )
    published = PublishUpdate(outcome=outcome, usage=usage, steps_done=done(state, "publish"))
    return Command(goto="report", update=published)


async def _work_since(state: RunState, sandbox: Sandbox, repo_dir: str) -> str:
    """The commit the run's work is measured from. An issue's branch: where it left the
    default branch, so work an earlier try pushed (then failed to open its pull request for)
    is still published, never reported as "no changes" (finding 3). A pull request's branch:
    where this run started (the work before it is published already)."""
    if is_follow_up(state):
        return state["start_sha"]
    return await workspace.fork_point(sandbox, repo_dir, state["base_sha"])


def outcome_of(state: RunState) -> RunOutcome:
    result = state.get("outcome")
    tests = state.get("tests")
    return RunOutcome(
        status=result["status"] if result else "no_changes",
        reason=result.get("reason") if result else None,
        run_id=state["run_id"],
        usage=Usage.from_dict(state.get("usage")),
        branch=result["branch"] if result else None,
        url=result["url"] if result else None,
        title=result["title"] if result else None,
        plan=state.get("plan"),
        tests_command=tests["command"] if tests else None,
        tests_passed=tests["passed"] if tests else None,
    )


async def report(state: RunState, runtime: Rt) -> ReportUpdate:
    return ReportUpdate(steps_done=done(state, "report"))
