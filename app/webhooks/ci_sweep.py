"""CI autofix on a timer (a sweep: app.runs.periodic): decide on the commits deferred while a
run worked on their pull request, once it has ended; and show in the CI-fix comment how each fix
run ended (one that pushed nothing leaves no new CI to look at, so nothing else would say).

Bounded and idempotent: a deferred commit's claim is taken by one decision; an ended fix run
is recorded once (its commit's decision moves to `attempt-ended`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from app.github.errors import GitHubError
from app.runs.models import CiCommit, thread_key
from app.webhooks.ci_fix import CiFix, Trigger, consider
from app.webhooks.context import HandlerContext

log = structlog.get_logger(__name__)
ATTEMPT_ENDED = "attempt-ended"


class CiSweep:
    def __init__(self, context: Callable[[], Awaitable[HandlerContext]]) -> None:
        self._context = context

    async def __call__(self) -> int:
        ctx = await self._context()
        done = 0
        for commit in await ctx.store.deferred_commits():
            done += await self._deferred(ctx, commit)
        for commit in await ctx.store.attempted_commits():
            done += await self._attempted(ctx, commit)
        return done

    async def _deferred(self, ctx: HandlerContext, commit: CiCommit) -> int:
        if await ctx.store.active_run(thread_key(commit.repo, commit.number)) is not None:
            return 0
        trigger = Trigger(commit.repo, commit.installation_id, commit.sha, (commit.number,))
        try:
            outcome = await consider(ctx, trigger)
        except GitHubError as exc:
            log.warning("ci_fix.deferred_failed", repo=commit.repo, error=str(exc))
            return 0
        if outcome.status in ("ignored", "refused"):
            # No longer the head, closed, autofix turned off...: nothing left to decide.
            await ctx.store.drop_deferred(commit.repo, commit.sha)
        log.info("ci_fix.deferred_decided", sha=commit.sha, outcome=outcome.status)
        return 1

    async def _attempted(self, ctx: HandlerContext, commit: CiCommit) -> int:
        run = await ctx.store.run(commit.run_id) if commit.run_id else None
        if run is not None and run.active:
            return 0
        if run is not None:
            trigger = Trigger(commit.repo, commit.installation_id, commit.sha, (commit.number,))
            try:
                await CiFix(ctx, trigger, commit.number).run_ended(run)
            except GitHubError as exc:
                log.warning("ci_fix.run_end_not_shown", repo=commit.repo, error=str(exc))
                return 0
        await ctx.store.decide_commit(commit.repo, commit.sha, ATTEMPT_ENDED, run_id=commit.run_id)
        return 1
