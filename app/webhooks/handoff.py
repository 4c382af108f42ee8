"""Handing accepted deliveries to the background once the front door is quiet.

During a burst, the background work of the deliveries already accepted (gating, GitHub calls,
starting runs) would share this process's CPU with the requests still arriving, and every
acknowledgement would slow down. A delivery is durable before its 202, so its work can wait a
moment: jobs are handed to the dispatcher when no request is in progress and none has arrived
for `quiet` seconds (a gap between requests: at a moderate rate that is at once), or after
`max_delay` at the latest (under a steady flood the work still gets done). Nothing is lost if
the process stops meanwhile: unfinished deliveries are resubmitted at start and by the outbox
sweep (app.runs.outbox).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from app.runs.dispatch import Dispatcher, Job

QUIET = 0.002  # seconds without a request before the background gets the CPU
MAX_DELAY = 5.0  # seconds a job waits for quiet at most

log = structlog.get_logger(__name__)


class Handoff:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        quiet: float = QUIET,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatcher = dispatcher
        self._quiet, self._max_delay, self._clock = quiet, max_delay, clock
        self._last_arrival = float("-inf")
        self._in_progress = 0  # requests being answered
        self._pending: list[tuple[float, Job]] = []
        self._task: asyncio.Task[None] | None = None

    def arrived(self) -> None:
        """A request came in: the front door is busy until `answered()`."""
        self._last_arrival = self._clock()
        self._in_progress += 1

    def answered(self) -> None:
        self._in_progress -= 1
        self._last_arrival = self._clock()

    def submit(self, job: Job) -> None:
        """Hand `job` over once the front door is quiet."""
        self._pending.append((self._clock(), job))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="handoff")

    async def flush(self) -> None:
        """Hand everything over now (tests, shutdown of a caller that wants it done)."""
        await self._hand_over()

    def cancel(self) -> None:
        """Stop; what is pending is recorded and picked up again (start, outbox sweep)."""
        if self._task is not None:
            self._task.cancel()
        self._pending.clear()

    async def _run(self) -> None:
        while self._pending:
            now = self._clock()
            idle = now - self._last_arrival if self._in_progress == 0 else 0.0
            waited = now - self._pending[0][0]
            if idle >= self._quiet or waited >= self._max_delay:
                await self._hand_over()
            else:
                await asyncio.sleep(min(self._quiet - idle, self._max_delay - waited))

    async def _hand_over(self) -> None:
        batch, self._pending = self._pending, []
        for _, job in batch:
            try:
                await self.dispatcher.submit(job)
            except Exception:
                # Recorded, so not lost: the outbox sweep queues it soon.
                log.exception("cannot dispatch delivery", job=job.key)
