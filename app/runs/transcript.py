"""Writing runs' transcripts to the store: batched, in the background, best effort.

One `EventWriter` per process collects the events every run's `Transcript` (app.transcript)
emits, from any thread, and writes them every quarter second, one transaction per run and
batch. Emitting only appends to a list under a lock: a run never waits for the database and
never fails because of it. A write that fails is tried again with a growing pause (a database
restarting is waited out) and dropped, with a log line, after MAX_TRIES; at most MAX_PENDING
events wait (the oldest go first, counted in the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import structlog

from app.runs.store import Store
from app.text.redact import Redactor
from app.transcript import EventKind, RunEvent, Transcript

log = structlog.get_logger(__name__)

INTERVAL = 0.25  # seconds between two writes
MAX_PAUSE = 5.0  # after failures
MAX_TRIES = 10  # of one batch (about half a minute of failures)
MAX_PENDING = 20_000
FLUSH_TIMEOUT = 10.0  # what a run's job waits at most, at its end, for its events to be stored


@dataclass
class _Batch:
    events: list[RunEvent]
    tries: int = 0


class EventWriter:
    def __init__(
        self,
        store: Store,
        *,
        interval: float = INTERVAL,
        max_pending: int = MAX_PENDING,
        max_tries: int = MAX_TRIES,
    ) -> None:
        self._store = store
        self._interval = interval
        self._max_pending = max_pending
        self._max_tries = max_tries
        self._lock = threading.Lock()
        self._pending: list[RunEvent] = []
        self._failed: OrderedDict[str, _Batch] = OrderedDict()  # by run, tried again first
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Lock | None = None
        self._pause = interval

    def transcript(self, run_id: str, redactor: Redactor | None = None) -> Transcript:
        """The emitter of one run, writing through this writer."""
        return Transcript(run_id, self.add, redactor)

    def add(self, event: RunEvent) -> None:
        """Queue an event (any thread); never blocks on I/O."""
        with self._lock:
            if len(self._pending) >= self._max_pending:
                self._pending.pop(0)
                self._dropped += 1
            self._pending.append(event)

    def record(self, run_id: str, kind: EventKind, **data: object) -> None:
        """An event of a run that has no transcript at hand (the lifecycle's)."""
        self.transcript(run_id).emit(kind, **data)

    def start(self) -> None:
        """Write in the background on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def flush(self) -> None:
        """Write what waits now (and what failed before). Never raises."""
        if self._writing is None:
            self._writing = asyncio.Lock()
        async with self._writing:
            with self._lock:
                taken, self._pending = self._pending, []
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("transcript.events_dropped", count=dropped, why="too many waiting")
            for event in taken:
                batch = self._failed.setdefault(event.run_id, _Batch([]))
                batch.events.append(event)
            failed = False
            for run_id in list(self._failed):
                batch = self._failed[run_id]
                try:
                    await self._store.add_events(run_id, batch.events)
                except Exception as exc:
                    failed = True
                    batch.tries += 1
                    if batch.tries >= self._max_tries:
                        del self._failed[run_id]
                        log.warning(
                            "transcript.events_lost",
                            run=run_id,
                            count=len(batch.events),
                            error=f"{type(exc).__name__}: {exc}"[:300],
                        )
                    else:
                        log.warning(
                            "transcript.write_failed",
                            run=run_id,
                            tries=batch.tries,
                            error=f"{type(exc).__name__}"[:300],
                        )
                    continue
                del self._failed[run_id]
            self._pause = min(self._pause * 2, MAX_PAUSE) if failed else self._interval

    async def flush_within(self, seconds: float = FLUSH_TIMEOUT) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.flush()), seconds)
        except TimeoutError:
            log.warning("transcript.flush_slow", seconds=seconds)

    async def aclose(self) -> None:
        """Stop writing in the background, after a last write."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush_within()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._pause)
            await self.flush()
