"""Deliveries: every webhook delivery once (its id is the key), and its background work's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from app.runs.models import Delivery, deliveries
from app.runs.store.base import StoreBase, utcnow


class DeliveryStore(StoreBase):
    """The `deliveries` table."""

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
    ) -> bool:
        """Record a delivery once; False if its id was seen before (a redelivery).

        A delivery with a payload needs background work: it stays unfinished until
        `finish_delivery`. One without is finished on arrival (ignored, ping).
        """
        now = utcnow()
        stmt = self._upsert_ignore(
            deliveries,
            ["id"],
            id=delivery_id,
            event=event,
            action=action,
            installation_id=installation_id,
            repo=repo,
            received_at=now,
            outcome=outcome,
            detail=detail,
            payload=dict(payload) if payload is not None else None,
            processed_at=None if payload is not None else now,
        )
        async with self._engine.begin() as conn:
            # RETURNING yields a row only when inserted (rowcount is unreliable for INSERT).
            inserted = (await conn.execute(stmt.returning(deliveries.c.id))).first()
        return inserted is not None

    async def delivery(self, delivery_id: str) -> Delivery | None:
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

    async def unfinished_deliveries(self) -> list[str]:
        """Ids of deliveries accepted for background work but not finished, oldest first."""
        query = (
            select(deliveries.c.id)
            .where(deliveries.c.processed_at.is_(None), deliveries.c.payload.is_not(None))
            .order_by(deliveries.c.received_at)
        )
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
