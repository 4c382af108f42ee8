"""Deliveries missed while the server was down (or answered 503) are fetched back.

GitHub never redelivers by itself. Its documented remedy for downtime is this sweep: list the
App webhook's recent deliveries (`GET /app/hook/deliveries`), and for each event whose every
attempt failed (no 2xx) and whose X-GitHub-Delivery the store never recorded, ask GitHub once
to send it again (`POST /app/hook/deliveries/{id}/attempts`). The receiver then takes it as
it takes any delivery.

Bounded and deduplicated: at most `max_asks` redeliveries and `max_pages` pages a sweep; a
delivery is asked for once (the store remembers it, so two processes never both ask); only
deliveries GitHub still redelivers (the last three days) are looked at, and after the first
sweep of a process only those since its previous sweep (with a margin).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio.to_thread
import structlog

from app.github.app import GitHubApp
from app.github.errors import GitHubError
from app.github.types import HookDelivery
from app.runs.store import Store
from app.runs.store.base import utcnow

log = structlog.get_logger(__name__)

REDELIVERABLE_FOR = timedelta(days=3)  # GitHub redelivers deliveries of the last three days
MARGIN = timedelta(hours=1)  # a later sweep looks back this far past the previous one
MAX_ASKS = 25
MAX_PAGES = 30  # of 100 deliveries


@dataclass
class RedeliverySweep:
    """`await sweep()`: ask GitHub to redeliver what the store missed; how many were asked."""

    store: Store
    github: GitHubApp
    max_asks: int = MAX_ASKS
    max_pages: int = MAX_PAGES
    _last: datetime | None = field(default=None, init=False)  # when the previous sweep began

    async def __call__(self) -> int:
        began = utcnow()
        oldest = began - REDELIVERABLE_FOR
        if self._last is not None:
            oldest = max(oldest, self._last - MARGIN)
        missed = await self._missed(await self._failed_since(oldest))
        asked = 0
        for delivery in missed[: self.max_asks]:
            asked += await self._ask(delivery)
        if len(missed) > self.max_asks:
            log.info("more missed deliveries wait for the next sweep", left=len(missed) - asked)
        self._last = began
        return asked

    async def _failed_since(self, oldest: datetime) -> list[HookDelivery]:
        """The newest failed attempt of each event none of whose attempts succeeded, oldest
        event first (redelivered in the order they happened)."""
        failed: dict[str, HookDelivery] = {}
        first_tried: dict[str, datetime] = {}
        succeeded: set[str] = set()
        cursor: str | None = None
        for _ in range(self.max_pages):
            list_page = functools.partial(self.github.hook_deliveries, cursor=cursor)
            page, cursor = await anyio.to_thread.run_sync(list_page)
            for attempt in page:
                if attempt.delivered_at < oldest:
                    continue
                if attempt.succeeded:
                    succeeded.add(attempt.guid)
                else:
                    failed.setdefault(attempt.guid, attempt)  # newest first: the latest try
                    first_tried[attempt.guid] = attempt.delivered_at
            if cursor is None or not page or page[-1].delivered_at < oldest:
                break
        else:
            log.warning("webhook deliveries left unread: too many", pages=self.max_pages)
        left = [attempt for guid, attempt in failed.items() if guid not in succeeded]
        return sorted(left, key=lambda attempt: first_tried[attempt.guid])

    async def _missed(self, failed: list[HookDelivery]) -> list[HookDelivery]:
        """Those the store never recorded (a delivery answered 503 was not) nor asked for."""
        known = await self.store.known_deliveries([attempt.guid for attempt in failed])
        return [attempt for attempt in failed if attempt.guid not in known]

    async def _ask(self, attempt: HookDelivery) -> int:
        noted = await self.store.note_redelivery(
            attempt.guid, hook_delivery_id=attempt.id, event=attempt.event, action=attempt.action
        )
        if not noted:
            return 0  # another process asked meanwhile
        try:
            await anyio.to_thread.run_sync(self.github.redeliver, attempt.id)
        except GitHubError as exc:
            await self.store.forget_redelivery(attempt.guid)  # asked again at the next sweep
            log.warning("cannot ask for a redelivery", guid=attempt.guid, error=str(exc))
            return 0
        log.info(
            "asked GitHub to redeliver a missed delivery",
            guid=attempt.guid,
            webhook=f"{attempt.event}.{attempt.action}" if attempt.action else attempt.event,
            answered=attempt.status_code,
            at=attempt.delivered_at.isoformat(),
        )
        return 1
