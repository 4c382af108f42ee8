"""Periodic sweeps: run every so often, a failure waits for the next turn, 0 turns one off."""

from __future__ import annotations

import asyncio

from app.runs.sweeps import Sweep, Sweeps


async def test_sweeps_run_periodically_and_a_failure_waits_for_the_next_turn() -> None:
    turns: list[str] = []
    third = asyncio.Event()

    async def flaky() -> int:
        turns.append("flaky")
        if len(turns) == 1:
            raise RuntimeError("the database is down")
        if len(turns) == 3:
            third.set()
        return 1

    async def never() -> int:
        turns.append("never")
        return 0

    sweeps = Sweeps([Sweep("flaky", 0.01, flaky, first_after=0), Sweep("off", 0, never)])
    sweeps.start()
    async with asyncio.timeout(10):
        await third.wait()
    await sweeps.aclose()
    after = len(turns)
    await asyncio.sleep(0.05)
    assert len(turns) == after  # stopped
    assert "never" not in turns
