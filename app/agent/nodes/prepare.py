"""prepare: fetch the task (sanitised, fenced), acquire the sandbox, clone, branch, set up.

An issue goes on to plan. A follow-up on a pull request goes straight to implement: the
people's requests are its plan, already approved by the writer who asked.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from langgraph.types import Command

from app.agent.budget import Budget, Usage
from app.agent.followups import where
from app.agent.host import TaskText
from app.agent.nodes.common import Rt, acquire, announce, build_workspace
from app.agent.state import PrepareUpdate, RunState, is_follow_up
from app.agent.workspace import RunFailed
from app.text.sanitize import fence, sanitize

MAX_TITLE_CHARS = 200
MAX_TASK_CHARS = 60_000  # the issue and its discussion; older comments are dropped first


FOLLOW_UP_DETAIL = "not needed: the request on the pull request is the plan"
MAX_LISTED_CHANGES = 200


def render_task(task: TaskText, issue_number: int | None) -> str:
    """The task for prompts: every piece people wrote is sanitised and fenced."""
    if task.kind == "pull":
        return render_follow_up(task, issue_number)
    subject = f"issue #{issue_number}" if issue_number is not None else "task"
    parts = [fence(f"{subject} title", task.title)]
    if sanitize(task.body):
        parts.append(fence(f"{subject} description", task.body))
    comments = [fence(f"comment by {c.author}", c.body) for c in task.comments if sanitize(c.body)]
    return _bounded(parts, comments, [])


def render_follow_up(task: TaskText, number: int | None) -> str:
    """A follow-up: the pull request (title, description, files changed, review comments) as
    context, then the requests, which are the task. File names are people's text too."""
    subject = f"pull request #{number}" if number is not None else "pull request"
    parts = [fence(f"{subject} title", task.title)]
    if sanitize(task.body):
        parts.append(fence(f"{subject} description", task.body))
    if task.files:
        listed = [f"{f.path} (+{f.additions} -{f.deletions})" for f in task.files]
        more = len(listed) - MAX_LISTED_CHANGES
        summary = "\n".join(listed[:MAX_LISTED_CHANGES]) + (
            f"\n... and {more} more" if more > 0 else ""
        )
        parts.append(fence(f"files changed in {subject}", summary))
    reviews = [
        fence(f"review comment by {c.author}{where(c)}", c.body)
        for c in task.review_comments
        if sanitize(c.body)
    ]
    requests = [
        fence(f"request by {c.author}{where(c)}", c.body) for c in task.requests if sanitize(c.body)
    ]
    ask = (
        "The pull request's branch is checked out. Make the change the request(s) below "
        "ask for, on top of the work already on the branch:"
    )
    return _bounded(parts, reviews, [ask, *requests])


def _bounded(parts: list[str], droppable: list[str], last: list[str]) -> str:
    """Everything joined, dropping the oldest of `droppable` first while it is too long."""
    while droppable and sum(map(len, parts + droppable + last)) > MAX_TASK_CHARS:
        droppable.pop(0)
    text = "\n\n".join(parts + droppable + last)
    if len(text) > MAX_TASK_CHARS:  # the requests matter most: keep the end
        text = text[: MAX_TASK_CHARS // 2] + "\n[... cut ...]\n" + text[-MAX_TASK_CHARS // 2 :]
    return text


def _read_task(task: TaskText, issue_number: int | None, follow_up: bool) -> tuple[str, str]:
    """(title, the task for prompts), or RunFailed when there is nothing to work on."""
    title = sanitize(task.title)[:MAX_TITLE_CHARS]
    body = sanitize(task.body)
    if not title and not body:
        raise RunFailed("the task is empty: give it a title or a description")
    if follow_up and not any(sanitize(r.body) for r in task.requests):
        raise RunFailed("there is no request to work on: say what to change in the comment")
    return title or body.splitlines()[0][:MAX_TITLE_CHARS], render_task(task, issue_number)


async def prepare(state: RunState, runtime: Rt) -> Command[Literal["plan", "implement"]]:
    # A new run starts from zero, or from what the runs it retries spent (the ledger's).
    budget = Budget(runtime.context.settings, None, model="", ledger=runtime.context.ledger)
    task = await runtime.context.host.load_task()
    follow_up = is_follow_up(state)
    # People's text is parsed in a thread: linear, but CPU work the event loop must not wait on.
    title, rendered = await asyncio.to_thread(_read_task, task, state["issue_number"], follow_up)
    who = task.requested_by
    # Always a fresh checkout for a new run: the branches may have moved since the last one.
    fields = await build_workspace(state, runtime, await acquire(state, runtime))
    usage = budget.spent()
    detail = f"branch {state['branch']} from {fields['base_branch']}"
    detail += f"; tests: {fields['test_command'] or 'none found'}"
    if fields.get("setup_note"):
        detail += f"; {fields.get('setup_note')}"
    await announce(runtime, "prepare", detail, Usage.from_dict(usage))
    update = PrepareUpdate(
        **fields,
        title=title,
        task=rendered,
        requested_by=f"{who.name} <{who.email}>" if who else None,
        plan=None,
        plan_revision=0,
        feedback=[],
        approved_by=None,
        attempts=0,
        agent_notes="",
        tests=None,
        outcome=None,
        rebuilds=0,  # the thread may hold an earlier run's count
        usage=usage,
        steps_done=["prepare"],
    )
    if not follow_up:
        return Command(goto="plan", update=update)
    for step in ("plan", "approval"):
        await announce(runtime, step, FOLLOW_UP_DETAIL, Usage.from_dict(usage))
    asker = who.name if who else "the requester"
    update["approved_by"] = asker  # the requests are its plan, approved by who asked
    update["steps_done"] = ["prepare", "plan", "approval"]
    return Command(goto="implement", update=update)
