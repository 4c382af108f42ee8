"""prepare: fetch the task (sanitised, fenced), acquire the sandbox, clone, branch, set up."""

from __future__ import annotations

from typing import Any

from app.agent.budget import Budget, Usage
from app.agent.host import TaskText
from app.agent.nodes.common import Rt, acquire, announce, build_workspace
from app.agent.state import RunState
from app.agent.untrusted import fence, sanitize
from app.agent.workspace import RunFailed

MAX_TITLE_CHARS = 200
MAX_TASK_CHARS = 60_000  # the issue and its discussion; older comments are dropped first


def render_task(task: TaskText, issue_number: int | None) -> str:
    """The task for prompts: every piece people wrote is sanitised and fenced."""
    where = f"issue #{issue_number}" if issue_number is not None else "task"
    parts = [fence(f"{where} title", task.title)]
    if sanitize(task.body):
        parts.append(fence(f"{where} description", task.body))
    comments = [fence(f"comment by {c.author}", c.body) for c in task.comments if sanitize(c.body)]
    while comments and sum(map(len, parts + comments)) > MAX_TASK_CHARS:
        comments.pop(0)
    text = "\n\n".join(parts + comments)
    return text[:MAX_TASK_CHARS]


async def prepare(state: RunState, runtime: Rt) -> dict[str, Any]:
    budget = Budget(runtime.context.settings, None, model="")  # a new run starts from zero
    task = await runtime.context.host.load_task()
    title = sanitize(task.title)[:MAX_TITLE_CHARS]
    if not title and not sanitize(task.body):
        raise RunFailed("the task is empty: give it a title or a description")
    who = task.requested_by
    # Always a fresh checkout for a new run: the branches may have moved since the last one.
    fields = await build_workspace(state, runtime, await acquire(state, runtime))
    usage = budget.spent()
    detail = f"branch {state['branch']} from {fields['base_branch']}"
    detail += f"; tests: {fields['test_command'] or 'none found'}"
    await announce(runtime, "prepare", detail, Usage.from_dict(usage))
    return {
        **fields,
        "title": title or sanitize(task.body).splitlines()[0][:MAX_TITLE_CHARS],
        "task": render_task(task, state["issue_number"]),
        "requested_by": f"{who.name} <{who.email}>" if who else None,
        "plan": None,
        "plan_revision": 0,
        "feedback": [],
        "approved_by": None,
        "attempts": 0,
        "agent_notes": "",
        "tests": None,
        "outcome": None,
        "rebuilds": 0,  # the thread may hold an earlier run's count
        "usage": usage,
        "steps_done": ["prepare"],
    }
