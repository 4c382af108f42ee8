"""Run events: the transcript of each run (app.transcript), numbered per run, kept for the
retention period (pruned with the run's checkpoints, app.runs.store.retention)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.runs.models import run_events
from app.runs.store.base import StoreBase
from app.transcript import RunEvent

MAX_PAGE = 500
INSERT_TRIES = 8  # two writers taking the same numbers: the loser takes the next ones

# Seconds to create a sandbox (/metrics' open_swe_sandbox_create_seconds histogram), from the
# "sandbox" events that created one; retention folds pruned ones into the totals.
SANDBOX_CREATE = "sandbox_create_seconds"  # totals labels: a bucket's bound, "count", "sum"
SANDBOX_CREATE_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class EventStore(StoreBase):
    """The `run_events` table."""

    async def add_events(self, run_id: str, events: Sequence[RunEvent]) -> int:
        """Append events to the run's transcript, numbered after its last; the last number.
        The numbers are taken under the primary key: a concurrent writer that took them
        first makes this one retry with the next (so numbers follow commit order)."""
        if not events:
            return 0
        for _ in range(INSERT_TRIES):
            try:
                async with self._engine.begin() as conn:
                    last = (
                        await conn.execute(
                            select(func.coalesce(func.max(run_events.c.seq), 0)).where(
                                run_events.c.run_id == run_id
                            )
                        )
                    ).scalar_one()
                    rows = [
                        {
                            "run_id": run_id,
                            "seq": last + n,
                            "kind": event.kind,
                            "at": event.at,
                            "data": event.data,
                        }
                        for n, event in enumerate(events, start=1)
                    ]
                    await conn.execute(run_events.insert(), rows)
                return int(last) + len(events)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not number the events of run {run_id}: too much contention")

    async def run_events(
        self, run_id: str, *, after: int = 0, limit: int = MAX_PAGE
    ) -> list[RunEvent]:
        """The run's events numbered after `after`, oldest first, at most `limit`."""
        query = (
            select(run_events)
            .where(run_events.c.run_id == run_id, run_events.c.seq > after)
            .order_by(run_events.c.seq)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
        async with self._engine.connect() as conn:
            return [to_event(row._mapping) for row in await conn.execute(query)]

    async def events_of_kind(self, kind: str, *, since: datetime | None = None) -> list[RunEvent]:
        """Every stored event of a kind (e.g. "sandbox" for /metrics), oldest first."""
        query = select(run_events).where(run_events.c.kind == kind)
        if since is not None:
            query = query.where(run_events.c.at >= since)
        async with self._engine.connect() as conn:
            ordered = query.order_by(run_events.c.at, run_events.c.run_id, run_events.c.seq)
            return [to_event(row._mapping) for row in await conn.execute(ordered)]


def to_event(row: Any) -> RunEvent:
    return RunEvent(row["run_id"], row["kind"], row["at"], dict(row["data"]), row["seq"])


def sandbox_create_seconds(events: Iterable[RunEvent]) -> list[float]:
    """The creation times in "sandbox" events (those that reused a sandbox do not count)."""
    found = []
    for event in events:
        seconds = event.data.get("seconds")
        if event.data.get("created") and isinstance(seconds, int | float):
            found.append(float(seconds))
    return found


def histogram_totals(values: Sequence[float]) -> dict[str, float]:
    """Cumulative bucket counts, count and sum, as the totals table keeps them."""
    found: dict[str, float] = {
        str(bound): float(sum(v <= bound for v in values)) for bound in SANDBOX_CREATE_BUCKETS
    }
    found["count"] = float(len(values))
    found["sum"] = float(sum(values))
    return found
