"""Installation events: remember installations and their repos; create the trigger labels."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from app.github.client import InstallationClient
from app.github.errors import GitHubError
from app.webhooks import messages
from app.webhooks.context import HandlerContext
from app.webhooks.endings import stop_run
from app.webhooks.event import Event
from app.webhooks.labels import TRIGGER_LABELS
from app.webhooks.routing import Outcome, Router

router = Router()
log = structlog.get_logger(__name__)


@router.route("installation", "created")
async def on_installed(ctx: HandlerContext, event: Event) -> Outcome:
    installation_id = event.installation_id
    if installation_id is None:
        return Outcome("ignored", "no installation id")
    await _save(ctx, event, installation_id)
    return await _add_repos(ctx, event, installation_id)


@router.route("installation", "deleted")
async def on_uninstalled(ctx: HandlerContext, event: Event) -> Outcome:
    """Forget the installation (triggers from it are refused), stop its runs, drop its
    tokens (GitHub revoked them)."""
    if event.installation_id is None:
        return Outcome("ignored", "no installation id")
    await ctx.store.delete_installation(event.installation_id)
    stopped = await _end_work(ctx, event, messages.STOPPED_UNINSTALLED)
    return Outcome("recorded", f"installation {event.installation_id} deleted{stopped}")


@router.route("installation", "suspend")
async def on_suspended(ctx: HandlerContext, event: Event) -> Outcome:
    """Refuse its triggers from now on, stop its runs, drop its tokens."""
    outcome = await _suspend(ctx, event, suspended=True)
    if event.installation_id is None:
        return outcome
    stopped = await _end_work(ctx, event, messages.STOPPED_SUSPENDED)
    return Outcome(outcome.status, f"{outcome.detail}{stopped}")


@router.route("installation", "unsuspend")
async def on_unsuspended(ctx: HandlerContext, event: Event) -> Outcome:
    return await _suspend(ctx, event, suspended=False)


@router.route("installation_repositories", "added")
async def on_repos_added(ctx: HandlerContext, event: Event) -> Outcome:
    installation_id = event.installation_id
    if installation_id is None:
        return Outcome("ignored", "no installation id")
    if await ctx.store.installation(installation_id) is None:  # installed while we were down
        await _save(ctx, event, installation_id)
    return await _add_repos(ctx, event, installation_id)


@router.route("installation_repositories", "removed")
async def on_repos_removed(ctx: HandlerContext, event: Event) -> Outcome:
    installation_id = event.installation_id
    if installation_id is None:
        return Outcome("ignored", "no installation id")
    removed = event.repositories_removed
    await ctx.store.remove_installation_repos(installation_id, [repo_id for repo_id, _ in removed])
    return Outcome("recorded", f"{len(removed)} repositories removed")


async def _end_work(ctx: HandlerContext, event: Event, reason: str) -> str:
    """Stop every active run of the installation and forget its tokens; says how many."""
    installation_id = event.installation_id
    assert installation_id is not None
    running = await ctx.store.active_runs_of_installation(installation_id)
    for run in running:
        await stop_run(ctx, event, run, reason.format(user=event.sender))
    ctx.github.forget_installation(installation_id)
    return f", {len(running)} runs stopped" if running else ""


async def _save(ctx: HandlerContext, event: Event, installation_id: int) -> None:
    account, account_type = event.account
    await ctx.store.save_installation(installation_id, account=account, account_type=account_type)


async def _suspend(ctx: HandlerContext, event: Event, *, suspended: bool) -> Outcome:
    installation_id = event.installation_id
    if installation_id is None:
        return Outcome("ignored", "no installation id")
    if await ctx.store.installation(installation_id) is None:
        await _save(ctx, event, installation_id)
    await ctx.store.set_installation_suspended(installation_id, suspended)
    state = "suspended" if suspended else "unsuspended"
    return Outcome("recorded", f"installation {installation_id} {state}")


def _ensure_labels(full_name: str) -> Callable[[InstallationClient], list[str]]:
    return lambda client: client.ensure_labels(full_name, TRIGGER_LABELS)


async def _add_repos(ctx: HandlerContext, event: Event, installation_id: int) -> Outcome:
    """Record the repos, then create the labels each lacks (idempotent: existing ones stay)."""
    repos = event.repositories
    await ctx.store.add_installation_repos(installation_id, repos)
    created, failed = 0, []
    for _repo_id, full_name in repos:
        try:
            names = await ctx.call(installation_id, full_name, _ensure_labels(full_name))
            created += len(names)
        except GitHubError as exc:
            # One repo refusing (archived, permissions) must not stop the others.
            log.warning("cannot create labels", repo=full_name, error=str(exc))
            failed.append(full_name)
    detail = f"{len(repos)} repositories, {created} labels created"
    if failed:
        detail += f"; labels failed in {', '.join(failed)}"
    return Outcome("recorded", detail)
