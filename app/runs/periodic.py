"""Sweeps: work a deployment repeats on a timer (the reaper; the outbox, redelivery and
retention sweeps).

A sweep is a name, an interval and an async function of no argument. Register it with the
queue before the queue starts (app.wiring does, in `Wiring.sweeps`):

    queue.schedule(Sweep("reap", every=30, run=reaper.reap))

Where it runs depends on the queue:

- in-process (`InProcessDispatcher`): `SweepLoops`, one asyncio task per sweep in this process,
  started with the queue and cancelled when it closes. The in-process queue is alone on its
  database (app.runs.exclusive), so each sweep runs in one place.
- procrastinate (`ProcrastinateDispatcher`): a periodic task (`cron(every)`), deferred once per
  tick for the whole deployment, run by whichever worker takes it from the deliveries queue.

Either way a tick can be skipped (no worker, a restart) or, rarely, overlap a slow previous one
elsewhere: a sweep must be idempotent and bounded, and reads what to do from the store rather
than from memory. A sweep that raises is logged, and runs again at its next tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Sweep:
    """Run `run()` every `every` seconds. `name` is stable across versions: procrastinate
    keeps it in its tables (the task is named `open_swe.sweep.<name>`)."""

    name: str
    every: float  # seconds; on procrastinate, one a cron can say (see `cron`)
    run: Callable[[], Awaitable[object]]

    def __post_init__(self) -> None:
        if not self.every > 0:
            raise ValueError(f"sweep {self.name!r}: the interval must be positive")


def cron(every: float) -> str:
    """procrastinate's cron for an interval: seconds (its 6th field) under a minute, else
    minutes (1 to 59) or whole hours."""
    seconds = round(every)
    if seconds != every or seconds < 1:
        raise ValueError(f"a sweep runs every whole number of seconds, not {every!r}")
    if seconds < 60:
        return f"* * * * * */{seconds}"
    minutes, rest = divmod(seconds, 60)
    if rest:
        raise ValueError(f"a sweep of a minute or more runs every whole minute, not {every} s")
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours, rest = divmod(minutes, 60)
    if rest or hours > 24:
        raise ValueError(f"a sweep of an hour or more runs every whole hour, not {every} s")
    return f"0 */{hours} * * *"


async def sweep_once(sweep: Sweep) -> None:
    """One tick: the sweep's errors are logged, never raised (the next tick tries again)."""
    try:
        await sweep.run()
    except Exception:
        log.exception("sweep failed", sweep=sweep.name)


class SweepLoops:
    """The in-process queue's sweeps: one loop per sweep, first tick one interval after start."""

    def __init__(self) -> None:
        self._sweeps: list[Sweep] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, sweep: Sweep) -> None:
        if any(known.name == sweep.name for known in self._sweeps):
            raise ValueError(f"a sweep named {sweep.name!r} is already registered")
        self._sweeps.append(sweep)
        if self._tasks:  # registered after start: it starts now
            self._tasks.append(self._loop(sweep))

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [self._loop(sweep) for sweep in self._sweeps]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _loop(self, sweep: Sweep) -> asyncio.Task[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(sweep.every)
                await sweep_once(sweep)

        return asyncio.create_task(loop(), name=f"sweep-{sweep.name}")


def expressible(seconds: float) -> float:
    """The interval nearest `seconds` that `cron` can say: whole seconds under a minute, whole
    minutes under an hour, else whole hours (at most a day); at least a second."""
    if seconds < 59.5:
        return float(max(1, round(seconds)))
    if seconds < 59.5 * 60:
        return float(round(seconds / 60) * 60)
    return float(min(24, max(1, round(seconds / 3600))) * 3600)
