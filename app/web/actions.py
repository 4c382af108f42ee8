"""Approve, Revise, Stop and Retry from the dashboard, through the comment commands' own path.

An action is what a comment command would be, said by the App on the person's behalf:
1. the same permission rule as comments: the installation is active (the gate's check) and
   the person has write, maintain or admin on the repository (asked with the App's token);
2. a trail on GitHub first, a comment by the App ("Plan approved by @x from the dashboard"),
   which is then the comment the command came in;
3. the command handler of app.webhooks.comments (ACTIONS) with that comment, the person as
   sender and a delivery id of its own: recorded in the thread's inbox, consumed by the run,
   answered on GitHub exactly as if typed there.
A run whose state no longer fits (its plan was answered meanwhile, it ended) is refused
before anything is posted; races after that are the handlers' own, as for comments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from app.commands import Command, Verb
from app.hosts.status import inline
from app.runs.models import Run
from app.runs.views import DASHBOARD_PREFIX
from app.webhooks.comments import ACTIONS
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.gate import check_installation

log = structlog.get_logger(__name__)

MAX_FEEDBACK_CHARS = 10_000
VERBS = {"approve": Verb.APPROVE, "revise": Verb.REVISE, "stop": Verb.STOP, "retry": Verb.RETRY}
TRAIL = {
    Verb.APPROVE: "✅ Plan approved by @{user} from the dashboard.",
    Verb.REVISE: "✏️ Revision requested by @{user} from the dashboard: {feedback}",
    Verb.STOP: "⏹️ Stop requested by @{user} from the dashboard.",
    Verb.RETRY: "🔁 Retry requested by @{user} from the dashboard.",
}
TRAIL_MARKER = "<!-- open-swe:dashboard {delivery} -->"
DONE = {  # what the run page says after each action
    "approve": "Approved: the run goes on.",
    "revise": "Revision requested: a new plan is on its way.",
    "stop": "Stop requested.",
    "retry": "Retry started: this is the new run.",
}


class ActionRefused(Exception):
    """The action cannot be taken; the message says why, for the person who tried."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class ActionDone:
    run_id: str  # the run to show next: the same one, or the run a retry started


async def take_action(
    ctx: HandlerContext, run: Run, verb: Verb, *, user: str, feedback: str = ""
) -> ActionDone:
    """Do `verb` to `run` as `user` (who can see the run); raises ActionRefused."""
    feedback = feedback.strip()
    if verb is Verb.REVISE and not feedback:
        raise ActionRefused("Say what to change in the plan.", 400)
    if len(feedback) > MAX_FEEDBACK_CHARS:
        raise ActionRefused(f"Keep the feedback under {MAX_FEEDBACK_CHARS:,} characters.", 400)
    delivery = f"{DASHBOARD_PREFIX}{uuid.uuid4().hex}"
    event = _event(run, user, delivery, comment=None)
    if (refusal := await check_installation(ctx, event)) is not None:
        raise ActionRefused(f"The App cannot act here: {refusal.detail}.", 403)
    allowed = await ctx.call(
        run.installation_id, run.repo, lambda client: client.has_write(run.repo, user)
    )
    if not allowed:
        raise ActionRefused(f"@{user} needs write access to {run.repo} to do this.", 403)
    active = await ctx.store.active_run(run.thread)
    await _check_state(ctx, run, verb, active)

    marker = TRAIL_MARKER.format(delivery=delivery)
    trail = TRAIL[verb].format(user=user, feedback=inline(feedback, 1_000)) + f"\n\n{marker}"
    comment = await ctx.call(
        run.installation_id,
        run.repo,
        lambda client: client.create_comment(run.repo, run.number, trail, marker=marker),
    )
    text = f"{verb.value} {feedback}".strip()
    event = _event(run, user, delivery, comment={"id": comment.id, "body": text})
    outcome = await ACTIONS[verb](ctx, event, Command(verb, feedback), active)
    log.info("dashboard.action", verb=verb.value, run=run.id, by=user, outcome=outcome.status)
    if outcome.status == "started":
        return ActionDone(outcome.detail)
    if outcome.status in {"resumed", "kept", "stopped"}:
        return ActionDone(run.id)
    # The handler answered on GitHub instead (the run changed meanwhile).
    raise ActionRefused(f"Nothing was done ({outcome.detail}); see the issue on GitHub.", 409)


async def _check_state(ctx: HandlerContext, run: Run, verb: Verb, active: Run | None) -> None:
    if verb in (Verb.APPROVE, Verb.REVISE):
        # Parked (waiting), or shown and still parking: the handler keeps the answer for it.
        if active is None or active.id != run.id or not await ctx.lifecycle.plan_waits(active):
            raise ActionRefused("This run has no plan waiting for an answer.", 409)
    elif verb is Verb.STOP:
        if active is None or active.id != run.id:
            raise ActionRefused("This run is not active, so there is nothing to stop.", 409)
    elif verb is Verb.RETRY:
        if active is not None:
            raise ActionRefused("Another run is active on this issue; stop it first.", 409)
        latest = await ctx.store.latest_run(run.thread)
        if latest is None or latest.id != run.id:
            raise ActionRefused("Only the latest run of an issue can be retried.", 409)


def _event(run: Run, user: str, delivery: str, *, comment: dict[str, Any] | None) -> Event:
    """The delivery a comment by `user` on the run's issue or pull request would be."""
    person = {"login": user, "type": "User"}
    issue: dict[str, Any] = {"number": run.number}
    if run.kind == "pull":
        issue["pull_request"] = {}
    payload: dict[str, Any] = {
        "action": "created",
        "installation": {"id": run.installation_id},
        "repository": {"full_name": run.repo},
        "issue": issue,
        "sender": person,
    }
    if comment is not None:
        payload["comment"] = {**comment, "user": person}
    return Event("issue_comment", delivery, payload)
