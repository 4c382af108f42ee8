"""Who may trigger open-swe: not bots, only known installations, only people with write access.

Runs in the background job (it calls GitHub), never in the request.
"""

from __future__ import annotations

import anyio.to_thread

from app.webhooks import messages
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.routing import Outcome


async def check_installation(ctx: HandlerContext, event: Event) -> Outcome | None:
    """None if the installation may be served; else the refusal (silent: no one to tell).

    An installation missing from the store (installed while the server was down) is looked up
    on GitHub and recorded, so it works from its first delivery.
    """
    installation_id = event.installation_id
    if installation_id is None:
        return Outcome("refused", "the delivery names no installation")
    known = await ctx.store.installation(installation_id)
    if known is None:
        info = await anyio.to_thread.run_sync(ctx.github.installation, installation_id)
        if info is None:
            return Outcome("refused", f"installation {installation_id} is unknown to GitHub")
        await ctx.store.save_installation(
            installation_id, account=info.account, account_type=info.account_type
        )
        if info.suspended:
            await ctx.store.set_installation_suspended(installation_id, True)
            return Outcome("refused", f"installation {installation_id} is suspended")
        return None
    if known.deleted_at is not None:
        return Outcome("refused", f"installation {installation_id} was deleted")
    if known.suspended_at is not None:
        return Outcome("refused", f"installation {installation_id} is suspended")
    return None


async def check_sender(ctx: HandlerContext, event: Event) -> Outcome | None:
    """None if the sender has write, maintain or admin; else refuse with one polite comment."""
    sender = event.sender
    if sender is None:
        return Outcome("refused", "the delivery names no sender")
    if await ctx.on_thread(event, lambda client, repo: client.has_write(repo, sender)):
        return None
    await ctx.reply_once(event, messages.REFUSED_NO_WRITE.format(user=sender))
    return Outcome("refused", f"@{sender} lacks write permission")


async def gate(ctx: HandlerContext, event: Event) -> Outcome | None:
    """All three checks in order; None when the trigger may proceed."""
    if event.is_bot:
        return Outcome("ignored", f"sent by a bot ({event.sender})")
    if event.repo is None or event.issue_number is None:
        return Outcome("ignored", "not about an issue or pull request")
    return await check_installation(ctx, event) or await check_sender(ctx, event)
