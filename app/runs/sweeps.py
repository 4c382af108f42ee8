"""Periodic sweeps of a process: each an `async () -> int` (how much it did), run every so often
until the process stops. A sweep that fails is logged and tried at its next turn.

Every process (`serve`, `worker`) runs them: each sweep is safe to run in several processes at
once (what it does is keyed in the database: a queueing lock, a recorded redelivery, a delete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Sweep:
    name: str
    every: float  # seconds between two sweeps; 0 or less: never
    sweep: Callable[[], Awaitable[int]]
    first_after: float | None = None  # seconds after start; default `every`


class Sweeps:
    """The sweeps of one process, started together and stopped together."""

    def __init__(self, sweeps: Sequence[Sweep]) -> None:
        self._sweeps = [sweep for sweep in sweeps if sweep.every > 0]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(_periodically(sweep), name=f"sweep-{sweep.name}")
            for sweep in self._sweeps
        ]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _periodically(sweep: Sweep) -> None:
    wait = sweep.every if sweep.first_after is None else sweep.first_after
    while True:
        await asyncio.sleep(wait)
        wait = sweep.every
        try:
            done = await sweep.sweep()
        except Exception:
            log.exception("sweep failed; trying again at its next turn", sweep=sweep.name)
            continue
        if done:
            log.info("sweep done", sweep=sweep.name, count=done)
