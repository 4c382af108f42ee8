"""The `open-swe` / `open-swe-auto` labels: what they look like, and labelling as a trigger."""

from __future__ import annotations

from app.github.types import LabelSpec, ReactionTarget
from app.webhooks import messages
from app.webhooks.context import HandlerContext
from app.webhooks.endings import stop_active_run
from app.webhooks.event import Event
from app.webhooks.gate import gate
from app.webhooks.routing import Outcome, Router
from app.webhooks.triggers import start_run

PLAN_LABEL = "open-swe"
AUTO_LABEL = "open-swe-auto"
TRIGGER_LABELS: dict[str, LabelSpec] = {
    PLAN_LABEL: LabelSpec("5319e7", "open-swe: plan this, then wait for /approve"),
    AUTO_LABEL: LabelSpec("0e8a16", "open-swe: plan and implement this without waiting"),
}

router = Router()


def _label(event: Event) -> str:
    # Label names are case-insensitive on GitHub: a repo may already have "Open-SWE".
    return (event.label or "").lower()


def is_trigger_label(event: Event, _slug: str | None) -> bool:
    return _label(event) in TRIGGER_LABELS


@router.route(
    "issues", "labeled", wants=is_trigger_label, otherwise="the label is not an open-swe label"
)
async def on_trigger_label(ctx: HandlerContext, event: Event) -> Outcome:
    if (refusal := await gate(ctx, event)) is not None:
        return refusal
    number = event.issue_number
    assert number is not None
    await ctx.react(event, ReactionTarget("issue", number))
    return await start_run(ctx, event, auto_approve=_label(event) == AUTO_LABEL)


@router.route(
    "issues", "unlabeled", wants=is_trigger_label, otherwise="the label is not an open-swe label"
)
async def on_trigger_label_removed(ctx: HandlerContext, event: Event) -> Outcome:
    """Removing the label takes the request back: the issue's active run stops."""
    reason = messages.STOPPED_LABEL_REMOVED.format(label=_label(event), user=event.sender)
    return await stop_active_run(ctx, event, reason)
