"""Jobs on PostgreSQL through procrastinate: the Dispatcher when several processes share the work.

The only module importing procrastinate. It keeps the in-process dispatcher's promises across
processes, with procrastinate's own mechanisms rather than bookkeeping of ours:

- a job submitted twice while queued runs once: its key is the job's `queueing_lock`, unique
  among queued jobs; submitted while running, it runs once more afterwards (a running job no
  longer holds its queueing lock);
- run jobs take their thread's `lock`: one issue or PR never has two run jobs at once, in
  submission order, whichever workers fetch them;
- deliveries and runs have their own queues and their own worker loop (and concurrency) in
  every process, so acknowledgement work never waits behind long runs;
- `cancel(run_id)` reaches the run wherever it runs: procrastinate tells that worker, which
  cancels the job's task (the job sees CancelledError, as in-process);
- a worker stopping gives its running jobs `shutdown_timeout` to end, then suspends them
  (cancel message SUSPEND, as in-process: a run keeps its state) and queues them again; a
  worker that died is found by its stale heartbeat, and a periodic task retries its jobs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import procrastinate
import structlog
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.job_context import AbortReason
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from sqlalchemy.engine import make_url

from app.config import Settings
from app.runs.dispatch import (
    DispatcherClosed,
    Job,
    JobFunction,
    ProcessDelivery,
    ResumeRun,
    StartRun,
    job_from_dict,
    job_to_dict,
)
from app.runs.periodic import Sweep, cron, sweep_once
from app.runs.retry import DELIVERY_RETRY, ProcrastinateRetry, RetryPolicy, TryAgain
from app.runs.store import Store
from app.suspend import SUSPEND

log = structlog.get_logger(__name__)

DELIVERIES = "deliveries"
RUNS = "runs"
QUEUES = (DELIVERIES, RUNS)

# Task names are part of the queue's data: workers of any version must agree on them.
PROCESS_DELIVERY_TASK = "open_swe.process_delivery"
RUN_TASK = "open_swe.run"
RECOVER_TASK = "open_swe.recover_stalled_jobs"
SWEEP_TASK = "open_swe.sweep.{name}"  # app.runs.periodic: one periodic task per sweep
_SCHEMA_LOCK = 0x6F70656E2D737765  # advisory lock: two processes starting never both create it
_ACTIVE = (Status.TODO.value, Status.DOING.value)


class QueueSchemaError(RuntimeError):
    """The procrastinate tables in the database do not fit the installed procrastinate."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a process works the queues. A dispatcher without them only enqueues."""

    queues: Sequence[str] = QUEUES
    run_concurrency: int = 2
    delivery_concurrency: int = 8
    # On stop, running jobs get this long to finish; then they are suspended and requeued.
    shutdown_timeout: float = 30.0
    # LISTEN/NOTIFY wakes workers at once; polling is the fallback.
    poll_interval: float = 5.0
    heartbeat_interval: float = 10.0
    # A worker silent this long is dead: its running jobs are retried. Generous, so a busy
    # event loop is not mistaken for a dead worker (its job would then run twice).
    stalled_after: float = 60.0
    recover_cron: str = "* * * * *"  # cron, with an optional 6th field for seconds
    restart_delay: float = 5.0  # a worker loop that fails (database gone) starts again after


def worker_options(
    settings: Settings, *, queues: Sequence[str] = QUEUES, concurrency: int | None = None
) -> WorkerOptions:
    """A process's WorkerOptions from settings: `concurrency` runs at once (default from them)."""
    return WorkerOptions(
        queues=tuple(queues),
        run_concurrency=concurrency or settings.max_concurrent_runs,
        shutdown_timeout=settings.worker_shutdown_timeout,
    )


def libpq_url(database_url: str) -> str:
    """DATABASE_URL as libpq takes it (`postgresql+psycopg://` -> `postgresql://`)."""
    url = make_url(database_url)
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError("the procrastinate queue needs a PostgreSQL DATABASE_URL")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ProcrastinateDispatcher:
    """The Dispatcher on procrastinate. `worker` set: this process also runs jobs.

    `run_job(run_id)` and the `process_delivery` given to `start` are the same job functions the
    in-process dispatcher calls. `store` tells which thread a run belongs to (its lock) and what
    was left unfinished. `queue_prefix` names the queues (OPEN_SWE_QUEUE_PREFIX; tests isolate
    themselves with it).
    """

    def __init__(
        self,
        database_url: str,
        *,
        store: Store,
        run_job: JobFunction,
        worker: WorkerOptions | None = None,
        queue_prefix: str = "open-swe",
        retry: RetryPolicy = DELIVERY_RETRY,
    ) -> None:
        for queue in worker.queues if worker else ():
            if queue not in QUEUES:
                raise ValueError(f"unknown queue {queue!r}: choose from {', '.join(QUEUES)}")
        self._store = store
        self._run_job = run_job
        self._worker = worker
        self._queues = {name: f"{queue_prefix}-{name}" for name in QUEUES}
        self._process_delivery: JobFunction | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._open = False
        self._connector = procrastinate.PsycopgConnector(
            conninfo=libpq_url(database_url), min_size=1, max_size=8
        )
        self._app = procrastinate.App(connector=self._connector)
        retried = ProcrastinateRetry(retry)  # a job that raises TryAgain runs again, later
        self._delivery_task = self._app.task(
            name=PROCESS_DELIVERY_TASK,
            queue=self._queues[DELIVERIES],
            pass_context=True,
            retry=retried,
        )(self._perform)
        self._run_task = self._app.task(
            name=RUN_TASK, queue=self._queues[RUNS], pass_context=True, retry=retried
        )(self._perform)
        recover = self._app.task(
            name=RECOVER_TASK, queue=self._queues[DELIVERIES], queueing_lock=RECOVER_TASK
        )(self._recover_periodically)
        self._app.periodic(cron=(worker or WorkerOptions()).recover_cron)(recover)

    # The Dispatcher interface -----------------------------------------------------------

    def schedule(self, sweep: Sweep) -> None:
        """A periodic task on the deliveries queue, deferred once per tick for the whole
        deployment (procrastinate deduplicates the ticks of every worker); register it
        before start()."""
        name = SWEEP_TASK.format(name=sweep.name)
        if name in self._app.tasks:
            raise ValueError(f"a sweep named {sweep.name!r} is already registered")

        async def tick(timestamp: int) -> None:
            await sweep_once(sweep)

        task = self._app.task(name=name, queue=self._queues[DELIVERIES], queueing_lock=name)(tick)
        self._app.periodic(cron=cron(sweep.every), periodic_id=sweep.name)(task)

    async def start(self, process_delivery: JobFunction) -> None:
        """Connect, create procrastinate's tables if absent, requeue work nothing carries."""
        self._process_delivery = process_delivery
        if not self._open:
            await self._app.open_async()
            self._open = True
            await ensure_schema(self._connector)
            await self._resubmit_unfinished()
        if self._worker is not None and not self._worker_tasks:
            self._worker_tasks = [
                asyncio.create_task(self._work(queue, self._worker), name=f"worker-{queue}")
                for queue in self._worker.queues
            ]

    async def submit(self, job: Job) -> None:
        if self._process_delivery is None or not self._open:
            raise DispatcherClosed("the dispatcher is not running")
        await self._defer(job)

    async def cancel(self, run_id: str) -> bool:
        """Cancel the run's queued jobs and abort its running one, on whichever worker.

        Returns once the abort is requested; the worker cancels the job's task on notice.
        """
        if not self._open:
            return False
        manager = self._app.job_manager
        cancelled = False
        for found in await manager.list_jobs_async(queueing_lock=StartRun(run_id).key):
            if found.id is not None and found.status in _ACTIVE:
                cancelled |= await manager.cancel_job_by_id_async(found.id, abort=True)
        return cancelled

    async def carried(self) -> set[str]:
        """The keys of this deployment's jobs queued or running (one waiting to be tried
        again is queued)."""
        if not self._open:
            return set()
        rows = await self._connector.execute_query_all_async(
            "SELECT DISTINCT queueing_lock FROM procrastinate_jobs"
            " WHERE queue_name = ANY(%(queues)s) AND status IN ('todo', 'doing')"
            " AND queueing_lock IS NOT NULL",
            queues=list(self._queues.values()),
        )
        return {str(row["queueing_lock"]) for row in rows}

    async def prune_jobs(self, older_than: timedelta) -> None:
        """Delete this deployment's jobs that ended (succeeded, failed, cancelled, aborted)
        longer ago than `older_than` (retention: app.runs.retention)."""
        if not self._open:
            return
        hours = max(1, int(older_than.total_seconds() // 3600))
        for queue in self._queues.values():
            await self._app.job_manager.delete_old_jobs(
                nb_hours=hours,
                queue=queue,
                include_failed=True,
                include_cancelled=True,
                include_aborted=True,
            )

    async def aclose(self) -> None:
        """Stop this process's worker loops (gracefully), then disconnect."""
        tasks, self._worker_tasks = self._worker_tasks, []
        for task in tasks:
            task.cancel()  # procrastinate's worker turns this into its graceful stop
        await asyncio.gather(*tasks, return_exceptions=True)
        self._process_delivery = None
        if self._open:
            self._open = False
            await self._app.close_async()

    # Work -------------------------------------------------------------------------------

    async def recover_stalled(self) -> int:
        """Retry the running jobs of dead workers (stale heartbeat); how many were found."""
        options = self._worker or WorkerOptions()
        manager = self._app.job_manager
        ours = {PROCESS_DELIVERY_TASK, RUN_TASK}
        found = 0
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=options.stalled_after):
            if job.task_name not in ours or job.id is None:
                continue
            found += 1
            log.warning(
                "retrying the job of a dead worker", job=job.task_name, key=job.queueing_lock
            )
            try:
                await manager.retry_job(job)
            except UniqueViolation:  # a newer copy is queued already: it does the work
                await manager.finish_job_by_id_async(
                    job.id, status=Status.ABORTED, delete_job=False
                )
        return found

    async def _recover_periodically(self, timestamp: int) -> None:
        await self.recover_stalled()

    async def _work(self, queue: str, options: WorkerOptions) -> None:
        concurrency = options.run_concurrency if queue == RUNS else options.delivery_concurrency
        while True:
            try:
                await self._app.run_worker_async(
                    queues=[self._queues[queue]],
                    name=f"open-swe-{queue}",
                    concurrency=concurrency,
                    shutdown_graceful_timeout=options.shutdown_timeout,
                    fetch_job_polling_interval=options.poll_interval,
                    abort_job_polling_interval=options.poll_interval,
                    update_heartbeat_interval=options.heartbeat_interval,
                    stalled_worker_timeout=options.stalled_after,
                    delete_jobs="successful",  # failed and aborted jobs stay for inspection
                    install_signal_handlers=False,  # the process owner decides when to stop
                )
                log.error("worker loop ended on its own; restarting", queue=queue)
            except Exception as exc:
                log.error("worker loop failed; restarting", queue=queue, error=str(exc))
            await asyncio.sleep(options.restart_delay)

    async def _perform(self, context: procrastinate.JobContext, /, **data: Any) -> None:
        """A job, in a worker: the same function the in-process dispatcher would call."""
        job = job_from_dict(data)
        if isinstance(job, ProcessDelivery):
            function, argument = self._process_delivery, job.delivery_id
        else:
            function, argument = self._run_job, job.run_id
        if function is None:
            raise DispatcherClosed("a job arrived before start()")
        # In a task of its own, so that its cancellation can say why (procrastinate's does not).
        work = asyncio.create_task(_call(function, argument, job), name=job.key)
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            stopped = context.abort_reason() is AbortReason.USER_REQUEST
            work.cancel(None if stopped else SUSPEND)  # else: this worker is shutting down
            await asyncio.gather(work, return_exceptions=True)
            if stopped:
                log.info("job cancelled", job=job.kind, id=argument)
            else:  # the next worker carries on from the store (a run, from its checkpoint)
                await self._defer(job)
                log.info("job suspended and requeued", job=job.kind, id=argument)
            raise

    # Enqueueing ---------------------------------------------------------------------------

    async def _defer(self, job: Job) -> bool:
        """Queue `job`; False if the same job is queued already (coalesced)."""
        task = self._delivery_task if isinstance(job, ProcessDelivery) else self._run_task
        lock = await self._lock_for(job)
        try:
            await task.configure(queueing_lock=job.key, lock=lock).defer_async(**job_to_dict(job))
        except AlreadyEnqueued:
            log.debug("job already queued", job=job.kind, key=job.key)
            return False
        return True

    async def _lock_for(self, job: Job) -> str:
        if isinstance(job, ProcessDelivery):
            return job.key
        run = await self._store.run(job.run_id)
        return f"thread:{run.thread}" if run is not None else job.key

    async def _resubmit_unfinished(self) -> int:
        """Queue the unfinished deliveries and runs that no queued or running job carries.

        Unlike `dispatch.resubmit_unfinished`, a job running on another worker is not queued
        again: many processes start while the work goes on.
        """
        manager = self._app.job_manager
        carried: set[str | None] = set()
        for status in _ACTIVE:
            carried |= {job.queueing_lock for job in await manager.list_jobs_async(status=status)}
        wanted: list[Job] = [ProcessDelivery(d) for d in await self._store.unfinished_deliveries()]
        wanted += [
            StartRun(run.id) if run.status == "queued" else ResumeRun(run.id)
            for run in await self._store.runs_to_resume()
        ]
        count = 0
        for job in wanted:
            if job.key not in carried and await self._defer(job):
                count += 1
        if count:
            log.info("resubmitted unfinished work", jobs=count)
        return count


async def _call(function: JobFunction, argument: str, job: Job) -> None:
    try:
        await function(argument)
    except TryAgain:
        raise  # procrastinate runs it again later (ProcrastinateRetry)
    except Exception:
        # The job owns its error reporting (as in-process); logged here, with redaction.
        log.exception("job failed", job=job.kind, id=argument)


async def ensure_schema(connector: procrastinate.PsycopgConnector) -> bool:
    """Create procrastinate's tables if absent (True if created); refuse an outdated schema.

    procrastinate keeps no version table; the functions its queries call are the contract,
    so a schema from an older procrastinate is found by the functions it lacks.
    """
    schema_sql = SchemaManager.get_schema()
    expected = set(re.findall(r"CREATE FUNCTION (\w+)", schema_sql))
    async with connector.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')::oid")).fetchone()
        table = row[0] if row else None
        if table is None:
            await conn.execute(schema_sql)
            log.info("created the procrastinate schema", version=procrastinate.__version__)
            return True
        rows = await conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_class c ON c.relnamespace = p.pronamespace"
            " WHERE c.oid = %s",
            (table,),
        )
        present = {name for (name,) in await rows.fetchall()}
    missing = sorted(expected - present)
    if missing:
        raise QueueSchemaError(
            f"the procrastinate schema in the database predates procrastinate "
            f"{procrastinate.__version__} (missing {', '.join(missing)}): apply its migrations "
            f"(README, 'Scaling out')"
        )
    return False
