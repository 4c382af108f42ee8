"""A run's usage ledger: the store's `model_calls`, as the agent's budget reads and writes it."""

from __future__ import annotations

from collections.abc import Collection

from app.agent.usage import Call, Usage
from app.runs.store.usage import UsageStore


class RunLedger:
    """The UsageLedger of one run (app.agent.budget): its calls written under its id, its
    spend summed over `lineage` (the run and the runs it retries)."""

    def __init__(self, store: UsageStore, run_id: str, lineage: Collection[str]) -> None:
        self._store = store
        self._run_id = run_id
        self._lineage = tuple(lineage) or (run_id,)

    async def record(self, call: Call) -> None:
        await self._store.record_model_call(
            self._run_id,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cost_usd=call.cost_usd,
        )

    async def spent(self) -> Usage:
        found = await self._store.spent_by(self._lineage)
        return Usage(
            model_calls=found.model_calls,
            input_tokens=found.input_tokens,
            output_tokens=found.output_tokens,
            cost_usd=found.cost_usd,
        )
