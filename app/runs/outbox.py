"""The store is the outbox: work recorded but carried by no job is queued within seconds.

The front door records a delivery, then queues its job; a run is stored queued, then its job
is queued. When the queueing fails (the queue's database went away between the two, the
process died), the record is still there: this sweep, run every few seconds for the deployment
(app.runs.periodic), queues what no job carries. A job queued twice runs once (queueing locks,
in-process coalescing), and the delivery and run jobs do nothing for work already done.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from app.runs.dispatch import Dispatcher, Job, ProcessDelivery, StartRun
from app.runs.store import Store
from app.runs.store.base import utcnow

log = structlog.get_logger(__name__)


async def queue_uncarried(store: Store, queue: Dispatcher, *, grace: timedelta) -> int:
    """Queue the unfinished deliveries and the queued runs, recorded at least `grace` ago
    (the front door queues them itself at once), that no job carries; how many were queued.

    Runs that are running, suspended or waiting are not this sweep's: a job carries a running
    one, a person's answer resumes a waiting one (and the reaper finds runs a job lost)."""
    before = utcnow() - grace
    wanted: list[Job] = [
        ProcessDelivery(delivery_id)
        for delivery_id in await store.unfinished_deliveries(received_before=before)
    ]
    wanted += [StartRun(run.id) for run in await store.queued_runs(created_before=before)]
    if not wanted:
        return 0  # the usual case: one indexed query each, nothing asked of the queue
    carried = await queue.carried()
    missing = [job for job in wanted if job.key not in carried]
    for job in missing:
        await queue.submit(job)
    if missing:
        log.warning("queued work that no job carried", jobs=[job.key for job in missing])
    return len(missing)
