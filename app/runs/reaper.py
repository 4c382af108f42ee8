"""The reaper: runs whose store state and queue disagree are resumed, so no run is lost and no
issue is blocked by a phantom active run.

A periodic sweep (app.runs.periodic) that resubmits, as ResumeRun, the runs no job carries:

- faulted runs whose next try is due (app.runs.faults): they go on from their last checkpoint;
- runs `running` (or `suspended`) with no live job for longer than the heartbeat window: their
  process died, or their final status was never stored (the store was gone as the run ended,
  finding 5). Resumed, such a run goes on from its last checkpoint; one whose workflow had
  already ended ends again at once, through `end_run`, which writes its final status (the same
  status comment, edited) and stores its end.

The window keeps the reaper off runs that just changed hands (a job just taken, or just
finished and about to be resubmitted). Resubmitting is safe anyway: a job queued twice runs
once, and the run job does nothing for a run that is not active.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from app.runs.dispatch import Dispatcher, ResumeRun
from app.runs.models import RunStatus
from app.runs.store import Store
from app.runs.store.base import utcnow

log = structlog.get_logger(__name__)

HEARTBEAT_WINDOW = timedelta(seconds=60)  # as long as procrastinate's stalled-worker window
ORPHANABLE: tuple[RunStatus, ...] = ("running", "suspended")


class Reaper:
    """`await reaper()`: resubmit the runs due or orphaned; how many were resubmitted."""

    def __init__(
        self,
        store: Store,
        queue: Dispatcher,
        *,
        window: timedelta = HEARTBEAT_WINDOW,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._queue = queue
        self._window = window
        self._clock = clock

    async def __call__(self) -> int:
        now = self._clock()
        due = await self._store.faulted_runs_due(now)
        orphaned = await self._store.runs_in(ORPHANABLE, updated_before=now - self._window)
        if not due and not orphaned:
            return 0  # the usual case: two indexed queries, nothing asked of the queue
        carried = await self._queue.carried()
        count = 0
        for run in [*due, *orphaned]:
            job = ResumeRun(run.id)
            if job.key in carried:
                continue  # a live job has it
            if run.status != "faulted":
                log.warning("run.orphaned", run=run.id, status=run.status, since=run.updated_at)
            await self._queue.submit(job)
            carried.add(job.key)
            count += 1
        if count:
            log.info("reaper resumed runs", runs=count)
        return count
