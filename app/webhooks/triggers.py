"""Starting a run from a trigger: at most one active run per issue or PR, enforced by the store."""

from __future__ import annotations

from app.runs.models import ActiveRunExists, NewRun
from app.webhooks import messages
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.routing import Outcome


async def start_run(ctx: HandlerContext, event: Event, *, auto_approve: bool) -> Outcome:
    """Queue a run for the delivery's thread, or answer that one is already active."""
    thread, repo, number = event.thread, event.repo, event.issue_number
    installation_id, sender = event.installation_id, event.sender
    assert thread is not None, "gated before use"
    assert repo is not None
    assert number is not None
    assert installation_id is not None
    assert sender is not None
    result = await ctx.lifecycle.start(
        NewRun(
            thread=thread,
            repo=repo,
            number=number,
            kind="pull" if event.is_pull_request else "issue",
            installation_id=installation_id,
            requested_by=sender,
            auto_approve=auto_approve,
            delivery_id=event.delivery_id,
        )
    )
    if isinstance(result, ActiveRunExists):
        await ctx.reply_once(event, messages.ALREADY_RUNNING.format(run=ctx.run_link(result.run)))
        return Outcome("already-running", result.run.id)
    return Outcome("started", result.id)
