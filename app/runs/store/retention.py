"""Retention: what the pruning sweep (app.runs.retention) removes, and the running totals that
keep counters read from the store (/metrics) from going down when rows go.

What is pruned folds into `totals` in the same transaction, so a row is counted either by the
table or by the totals, never by both, never by neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.runs.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Run,
    commands,
    deliveries,
    model_calls,
    redeliveries,
    run_events,
    runs,
    totals,
)
from app.runs.store.base import StoreBase, utcnow
from app.runs.store.events import (
    SANDBOX_CREATE,
    histogram_totals,
    sandbox_create_seconds,
    to_event,
)

DELIVERIES = "deliveries"  # labels: "<event>|<outcome>"
MODEL_TOKENS = "model_tokens"  # labels: "input" or "output"
MODEL_COST = "model_cost_usd"  # labels: ""


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Model usage of pruned runs, to keep counting once their checkpoints are gone."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class RetentionStore(StoreBase):
    """Pruning, and the `totals` of what was pruned."""

    async def prune_deliveries(self, *, received_before: datetime) -> int:
        """Finished deliveries received before the date: deleted (counted into the totals),
        except those that started a run (the run tells what started it), which lose only
        their payload; redeliveries asked before it are forgotten. How many rows went."""
        finished = and_(
            deliveries.c.received_at < received_before, deliveries.c.processed_at.is_not(None)
        )
        started_a_run = exists().where(runs.c.delivery_id == deliveries.c.id)
        going = and_(finished, ~started_a_run)
        async with self._engine.begin() as conn:
            counted = await conn.execute(
                select(deliveries.c.event, deliveries.c.outcome, func.count())
                .where(going)
                .group_by(deliveries.c.event, deliveries.c.outcome)
            )
            for event, outcome, count in counted.all():
                await _add(conn, self, DELIVERIES, f"{event}|{outcome}", count)
            gone = (await conn.execute(delete(deliveries).where(going))).rowcount
            await conn.execute(
                update(deliveries)
                .where(finished, started_a_run, deliveries.c.payload.is_not(None))
                .values(payload=None)
            )
            await conn.execute(
                delete(redeliveries).where(redeliveries.c.asked_at < received_before)
            )
        return int(gone or 0)

    async def threads_to_prune(self, *, ended_before: datetime, limit: int = 100) -> list[str]:
        """Threads with no active run, whose runs all ended before the date, some of them not
        pruned yet."""
        active = func.sum(case((runs.c.status.in_(ACTIVE_STATUSES), 1), else_=0))
        unpruned = func.sum(case((runs.c.pruned_at.is_(None), 1), else_=0))
        query = (
            select(runs.c.thread)
            .group_by(runs.c.thread)
            .having(active == 0, unpruned > 0, func.max(runs.c.updated_at) < ended_before)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def runs_to_prune(self, thread: str) -> list[Run]:
        """The thread's ended runs not pruned yet."""
        query = select(runs).where(
            runs.c.thread == thread,
            runs.c.status.in_(FINISHED_STATUSES),
            runs.c.pruned_at.is_(None),
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def mark_pruned(self, thread: str, run_ids: list[str], usage: UsageTotals) -> bool:
        """In one transaction, unless a run became active on the thread meanwhile (False):
        the runs' usage added to the totals, the runs marked pruned, their transcripts deleted
        (what /metrics reads from them added to the totals), and the thread's commands
        that no active run may still read deleted (those of these runs, and consumed ones of
        no run), except those that started a run."""
        async with self._engine.begin() as conn:
            busy = await conn.execute(
                select(runs.c.id).where(runs.c.thread == thread, runs.c.status.in_(ACTIVE_STATUSES))
            )
            if busy.first() is not None:
                return False
            marked = await conn.execute(
                update(runs)
                .where(runs.c.id.in_(run_ids), runs.c.pruned_at.is_(None))
                .values(pruned_at=utcnow())
            )
            if marked.rowcount != len(run_ids):
                return False  # rolled back: another process is pruning the thread
            await _add(conn, self, MODEL_TOKENS, "input", usage.input_tokens)
            await _add(conn, self, MODEL_TOKENS, "output", usage.output_tokens)
            await _add(conn, self, MODEL_COST, "", usage.cost_usd)
            await _prune_events(conn, self, run_ids)
            # The ledger's calls too: their usage is in the totals now.
            await conn.execute(delete(model_calls).where(model_calls.c.run_id.in_(run_ids)))
            started_a_run = exists().where(runs.c.delivery_id == commands.c.delivery_id)
            await conn.execute(
                delete(commands).where(
                    commands.c.thread == thread,
                    (commands.c.run_id.in_(run_ids))
                    | (commands.c.run_id.is_(None) & commands.c.consumed_at.is_not(None)),
                    ~started_a_run,  # it tells what started a run (a retry, and of which run)
                )
            )
        return True

    async def totals_of(self, metric: str) -> dict[str, float]:
        """The running total of a metric, by labels."""
        query = select(totals.c.labels, totals.c.value).where(totals.c.metric == metric)
        async with self._engine.connect() as conn:
            return {labels: float(value) for labels, value in await conn.execute(query)}


async def _add(
    conn: AsyncConnection, store: StoreBase, metric: str, labels: str, value: float
) -> None:
    """totals[metric, labels] += value, created at value."""
    if not value:
        return
    stmt: Any = store._insert(totals).values(metric=metric, labels=labels, value=value)
    stmt = stmt.on_conflict_do_update(
        index_elements=["metric", "labels"], set_={"value": totals.c.value + value}
    )
    await conn.execute(stmt)


async def _prune_events(conn: AsyncConnection, store: StoreBase, run_ids: list[str]) -> None:
    """The runs' transcripts deleted, what /metrics reads from them added to the totals."""
    sandboxes = await conn.execute(
        select(run_events).where(run_events.c.run_id.in_(run_ids), run_events.c.kind == "sandbox")
    )
    seconds = sandbox_create_seconds(to_event(row._mapping) for row in sandboxes)
    if seconds:
        for labels, value in histogram_totals(seconds).items():
            await _add(conn, store, SANDBOX_CREATE, labels, value)
    await conn.execute(delete(run_events).where(run_events.c.run_id.in_(run_ids)))


def delivery_totals(found: Mapping[str, float]) -> dict[tuple[str, str], int]:
    """The deliveries' totals by (event, outcome)."""
    by_key: dict[tuple[str, str], int] = {}
    for labels, value in found.items():
        event, _, outcome = labels.partition("|")
        by_key[(event, outcome)] = int(value)
    return by_key
