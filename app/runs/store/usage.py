"""The usage ledger: one row per model call, written as the call ends (app.agent.budget reads
the sum of a run's lineage before each call)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select

from app.runs.models import model_calls
from app.runs.store.base import StoreBase, utcnow


@dataclass(frozen=True, slots=True)
class Spent:
    """What some runs' model calls used, summed."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class UsageStore(StoreBase):
    """The `model_calls` table."""

    async def record_model_call(
        self, run_id: str, *, model: str, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                model_calls.insert().values(
                    run_id=run_id,
                    model=model[:200],
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost_usd=cost_usd,
                    at=utcnow(),
                )
            )

    async def spent_by(self, run_ids: Collection[str]) -> Spent:
        """The sum of the model calls of `run_ids` (a run and the runs it retries)."""
        query = select(
            func.count(model_calls.c.id),
            func.coalesce(func.sum(model_calls.c.input_tokens), 0),
            func.coalesce(func.sum(model_calls.c.output_tokens), 0),
            func.coalesce(func.sum(model_calls.c.cost_usd), 0.0),
        ).where(model_calls.c.run_id.in_(list(run_ids)))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return Spent(int(row[0]), int(row[1]), int(row[2]), float(row[3]))
