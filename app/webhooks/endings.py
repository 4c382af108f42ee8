"""Events that end work from outside: an issue closed, a pull request closed (its kept
sandbox released too), and the helpers the label and installation events stop runs with.

No permission check: GitHub already allowed the person to close, unlabel or uninstall, and
ending work is always safe. Each stop goes through the lifecycle (app.runs.lifecycle), so a
working run is cancelled and a waiting plan answered with the stop; the run's final status
gives the reason ("issue closed by @x").
"""

from __future__ import annotations

import structlog

from app.agent.state import sandbox_labels
from app.runs.inputs import run_input
from app.runs.lifecycle import release_sandbox
from app.runs.models import Run
from app.webhooks import messages
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.routing import Outcome, Router

router = Router()
log = structlog.get_logger(__name__)


async def stop_active_run(ctx: HandlerContext, event: Event, reason: str) -> Outcome:
    """Stop the active run of the delivery's thread, if there is one."""
    thread = event.thread
    if thread is None:
        return Outcome("ignored", "not about an issue or pull request")
    active = await ctx.store.active_run(thread)
    if active is None:
        return Outcome("ignored", "no active run")
    await stop_run(ctx, event, active, reason)
    return Outcome("stopped", active.id)


async def stop_run(ctx: HandlerContext, event: Event, run: Run, reason: str) -> None:
    # One stop per run and delivery (an installation's delivery may stop several runs).
    key = f"{event.delivery_id}:{run.id}"
    await ctx.lifecycle.stop_for(run, reason=reason, by=event.sender or "", delivery_id=key)
    log.info("run stopped by an event", run=run.id, reason=reason)


@router.route("issues", "closed")
async def on_issue_closed(ctx: HandlerContext, event: Event) -> Outcome:
    return await stop_active_run(
        ctx, event, messages.STOPPED_ISSUE_CLOSED.format(user=event.sender)
    )


@router.route("pull_request", "closed")
async def on_pull_closed(ctx: HandlerContext, event: Event) -> Outcome:
    """Stop the pull request's follow-up run, if one works, and release the sandbox its
    follow-ups kept: nobody asks for more on a closed pull request."""
    thread = event.thread
    if thread is None:
        return Outcome("ignored", "not about a pull request")
    latest = await ctx.store.latest_run(thread)
    if latest is None:
        return Outcome("ignored", "open-swe never worked on this pull request")
    merged = bool(event.get("pull_request", "merged"))
    reason = messages.STOPPED_PULL_CLOSED.format(
        state="merged" if merged else "closed", user=event.sender
    )
    if latest.active:
        await stop_run(ctx, event, latest, reason)
    if ctx.sandboxes is not None and latest.kind == "pull":
        await release_sandbox(ctx.sandboxes(), sandbox_labels(run_input(latest)), keep=False)
    detail = f"{latest.id} stopped; " if latest.active else ""
    return Outcome("released", f"{detail}sandbox of {thread} released")
