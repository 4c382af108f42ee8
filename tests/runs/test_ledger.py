"""The usage ledger: each model call written under its run, summed over a run's lineage."""

from __future__ import annotations

import pytest

from app.agent.budget import Call
from app.runs.ledger import RunLedger
from app.runs.store import Store


async def test_calls_are_summed_over_the_run_and_the_runs_it_retries(store: Store) -> None:
    first = RunLedger(store, "run-a", ("run-a",))
    await first.record(Call("claude-sonnet-4-5", 1_000, 100, 0.0045))
    await first.record(Call("claude-sonnet-4-5", 2_000, 200, 0.009))
    retry = RunLedger(store, "run-b", ("run-b", "run-a"))
    await retry.record(Call("claude-sonnet-4-5", 10, 1, 0.0))
    await RunLedger(store, "other", ("other",)).record(Call("x", 5, 5, 1.0))

    spent = await retry.spent()
    assert (spent.model_calls, spent.input_tokens, spent.output_tokens) == (3, 3_010, 301)
    assert spent.cost_usd == pytest.approx(0.0135)
    alone = await first.spent()
    assert alone.model_calls == 2
    nothing = await RunLedger(store, "new", ()).spent()
    assert nothing.tokens == 0
