"""Deliveries: every webhook delivery once (its id is the key), and its background work's outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.runs.models import Delivery, deliveries, redeliveries
from app.runs.store.base import StoreBase, utcnow
from app.runs.store.group_commit import GroupCommit

# How record_delivery found a delivery: new; seen before but its work ended in error (a
# redelivery then does the work again); seen before and done, or still being done.
Receipt = Literal["new", "again", "duplicate"]
ERROR = "error"  # the outcome of a delivery whose work failed for good


@dataclass(frozen=True, slots=True)
class _Record:
    delivery_id: str
    received_at: datetime
    values: dict[str, Any]


class DeliveryStore(StoreBase):
    """The `deliveries` table. Deliveries are written by group commit (app.runs.store.
    group_commit): the deliveries of concurrent requests share one transaction and one commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._deliveries = GroupCommit[_Record, Receipt](self._write_deliveries)

    async def record_delivery(
        self,
        *,
        delivery_id: str,
        event: str,
        action: str | None,
        installation_id: int | None,
        repo: str | None,
        outcome: str,
        detail: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Receipt:
        """Record a delivery once by its id, durably (committed when this returns). A
        redelivery (the same id) is a duplicate, unless its work ended in error: then it is
        recorded afresh, to be done again ("again").

        A delivery with a payload needs background work: it stays unfinished until
        `finish_delivery`. One without is finished on arrival (ignored, ping).
        """
        record = _record(
            delivery_id, event, action, installation_id, repo, outcome, detail, payload
        )
        return await self._deliveries.submit(record)

    def note_delivery(
        self,
        *,
        delivery_id: str,
        event: str,
        action: str | None,
        installation_id: int | None,
        repo: str | None,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        """Record a delivery that needs no work (ignored, ping) with the next batch, without
        waiting: nothing depends on it being durable (it is kept for the counts), so the
        request answers at once."""
        record = _record(delivery_id, event, action, installation_id, repo, outcome, detail, None)
        self._deliveries.submit_later(record)

    async def flush_deliveries(self) -> None:
        """Wait for the deliveries noted so far to be written."""
        await self._deliveries.flush()

    async def close(self) -> None:
        await self._deliveries.aclose()
        await super().close()

    async def _write_deliveries(self, batch: Sequence[_Record]) -> list[Receipt]:
        """One transaction for the batch: insert the new ids at once; for the others, one
        statement each reopens a delivery whose work ended in error."""
        rows: dict[str, dict[str, Any]] = {}
        for record in batch:  # the same id twice in a batch: the first is the delivery
            row = {"id": record.delivery_id, "received_at": record.received_at, **record.values}
            rows.setdefault(record.delivery_id, row)
        # One statement, compiled once and cached: executemany with RETURNING is sent as
        # one multi-row INSERT (SQLAlchemy's insertmanyvalues).
        stmt: Any = self._insert(deliveries).on_conflict_do_nothing(index_elements=["id"])
        receipts: list[Receipt] = []
        async with self._engine.connect() as conn, _durable(conn), conn.begin():
            # RETURNING yields a row only for those inserted (rowcount is unreliable here).
            returned = await conn.execute(stmt.returning(deliveries.c.id), list(rows.values()))
            inserted = set(returned.scalars())
            for record in batch:
                if record.delivery_id in inserted:
                    inserted.discard(record.delivery_id)  # a second copy is a duplicate
                    receipts.append("new")
                    continue
                # One statement, so of two redeliveries racing only one finds it in error.
                reopened = await conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id == record.delivery_id,
                        deliveries.c.outcome == ERROR,
                        deliveries.c.processed_at.is_not(None),
                    )
                    .values(attempts=0, **record.values)
                    .returning(deliveries.c.id)
                )
                receipts.append("again" if reopened.first() is not None else "duplicate")
        return receipts

    async def delivery(self, delivery_id: str) -> Delivery | None:
        await self.flush_deliveries()  # this process's own writes are seen
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))
            ).first()
        return Delivery(**row._mapping) if row else None

    async def finish_delivery(
        self, delivery_id: str, outcome: str, detail: str | None = None
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(outcome=outcome, detail=detail, processed_at=utcnow())
            )

    async def begin_delivery_attempt(self, delivery_id: str) -> int | None:
        """Count one more try of an unfinished delivery's work: how many tries this makes
        (None when it is finished, or unknown)."""
        async with self._engine.begin() as conn:
            tried = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.processed_at.is_(None))
                .values(attempts=deliveries.c.attempts + 1)
                .returning(deliveries.c.attempts)
            )
            found = tried.scalar_one_or_none()
        return int(found) if found is not None else None

    async def unfinished_deliveries(self, *, received_before: datetime | None = None) -> list[str]:
        """Ids of deliveries accepted for background work but not finished, oldest first
        (only those received before `received_before`, when given)."""
        query = (
            select(deliveries.c.id)
            .where(deliveries.c.processed_at.is_(None), deliveries.c.payload.is_not(None))
            .order_by(deliveries.c.received_at)
        )
        if received_before is not None:
            query = query.where(deliveries.c.received_at < received_before)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def set_delivery_reply(self, delivery_id: str, comment_id: int) -> None:
        """Remember the answer posted for a delivery, so reprocessing never posts it twice."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(reply_comment_id=comment_id)
            )

    # Redeliveries asked of GitHub (app.webhooks.redelivery) ---------------------------------

    async def known_deliveries(self, guids: Collection[str]) -> set[str]:
        """Which of these delivery ids were recorded, or already asked to be redelivered."""
        wanted = list(guids)
        if not wanted:
            return set()
        recorded = select(deliveries.c.id).where(deliveries.c.id.in_(wanted))
        asked = select(redeliveries.c.guid).where(redeliveries.c.guid.in_(wanted))
        async with self._engine.connect() as conn:
            found = set((await conn.execute(recorded)).scalars())
            found |= set((await conn.execute(asked)).scalars())
        return found

    async def note_redelivery(
        self, guid: str, *, hook_delivery_id: int, event: str, action: str | None
    ) -> bool:
        """Remember that GitHub is asked to redeliver `guid`; False if it already was (by this
        process or another), so nobody asks twice."""
        stmt = self._upsert_ignore(
            redeliveries,
            ["guid"],
            guid=guid,
            hook_delivery_id=hook_delivery_id,
            event=event,
            action=action,
            asked_at=utcnow(),
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt.returning(redeliveries.c.guid))).first() is not None

    async def forget_redelivery(self, guid: str) -> None:
        """The ask failed: a later sweep may ask again."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(redeliveries).where(redeliveries.c.guid == guid))


@asynccontextmanager
async def _durable(conn: AsyncConnection) -> AsyncIterator[None]:
    """On SQLite, the commit inside is fsynced (synchronous=FULL) whatever the store's default."""
    if conn.dialect.name != "sqlite":
        yield  # PostgreSQL fsyncs every commit
        return
    await conn.exec_driver_sql("PRAGMA synchronous=FULL")
    await conn.commit()
    try:
        yield
    finally:
        await conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
        await conn.commit()


def _record(
    delivery_id: str,
    event: str,
    action: str | None,
    installation_id: int | None,
    repo: str | None,
    outcome: str,
    detail: str | None,
    payload: Mapping[str, Any] | None,
) -> _Record:
    now = utcnow()
    values: dict[str, Any] = {
        "event": event,
        "action": action,
        "installation_id": installation_id,
        "repo": repo,
        "outcome": outcome,
        "detail": detail,
        "payload": dict(payload) if payload is not None else None,
        "processed_at": None if payload is not None else now,
    }
    return _Record(delivery_id, now, values)
