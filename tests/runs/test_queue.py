"""The procrastinate dispatcher on a real PostgreSQL: the in-process promises, across processes.

Each test has its own schema (tables, jobs) and queue names (notifications), see
postgres_schema.py. Workers run in the test's event loop; a second dispatcher instance stands
for another process (it shares nothing with the first but the database).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import timedelta

import procrastinate
import pytest

from app.agent.runner import is_suspension
from app.runs.dispatch import DispatcherClosed, JobFunction, ProcessDelivery, ResumeRun, StartRun
from app.runs.models import Run
from app.runs.periodic import Sweep
from app.runs.queue import (
    DELIVERIES,
    RUNS,
    ProcrastinateDispatcher,
    QueueSchemaError,
    WorkerOptions,
    ensure_schema,
    libpq_url,
)
from app.runs.retry import RetryPolicy, TryAgain
from app.runs.store import Store
from tests.runs.postgres_schema import PostgresSchema, postgres_schema

pytestmark = pytest.mark.postgres

FAST = WorkerOptions(
    run_concurrency=2,
    poll_interval=0.2,
    heartbeat_interval=0.2,
    stalled_after=1.0,
    shutdown_timeout=0.3,
    recover_cron="* * * * * *",  # every second
    restart_delay=0.1,
)


QUICK_RETRY = RetryPolicy(first_wait=0.05, max_wait=0.2)


class Jobs:
    """A job function that records calls and blocks until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.suspended: list[str] = []  # cancelled with SUSPEND: the process is stopping
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0

    async def __call__(self, job_id: str) -> None:
        self.started.append(job_id)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
            self.finished.append(job_id)
        except asyncio.CancelledError as exc:
            (self.suspended if is_suspension(exc) else self.cancelled).append(job_id)
            raise
        finally:
            self.running -= 1


async def until(predicate: Callable[[], object], within: float = 10) -> None:
    """Wait until `predicate()` (or what it returns, if awaitable) is true."""
    async with asyncio.timeout(within):
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


class Queue:
    """Dispatchers on one schema; all closed at the end of the test."""

    def __init__(self, pg: PostgresSchema) -> None:
        self.pg = pg
        self.runs = Jobs()
        self.deliveries = Jobs()
        self.opened: list[ProcrastinateDispatcher] = []

    async def dispatcher(
        self,
        worker: WorkerOptions | None = FAST,
        *,
        runs: Jobs | None = None,
        deliveries: JobFunction | None = None,
        retry: RetryPolicy = QUICK_RETRY,
        sweeps: Sequence[Sweep] = (),
    ) -> ProcrastinateDispatcher:
        started = ProcrastinateDispatcher(
            self.pg.url,
            store=self.pg.store,
            run_job=runs or self.runs,
            worker=worker,
            queue_prefix=self.pg.name,
            retry=retry,
        )
        for sweep in sweeps:
            started.schedule(sweep)
        self.opened.append(started)
        await started.start(deliveries or self.deliveries)
        return started

    async def jobs(self) -> list[tuple[str, str, str]]:
        """(task, queueing lock, status) of every job in the queue, oldest first."""
        rows = await self.pg.rows(
            "SELECT task_name, queueing_lock, status::text FROM procrastinate_jobs ORDER BY id"
        )
        return [(str(t), str(k), str(s)) for t, k, s in rows]

    async def statuses(self, *expected: str) -> bool:
        return [s for _, _, s in await self.jobs()] == list(expected)


@pytest.fixture
async def queue() -> AsyncIterator[Queue]:
    async with postgres_schema() as pg:
        made = Queue(pg)
        try:
            yield made
        finally:
            made.runs.release.set()
            made.deliveries.release.set()
            for dispatcher in made.opened:
                await dispatcher.aclose()


async def new_run(store: Store, number: int = 1, *, finish: bool = False) -> Run:
    run = await store.start_run(
        thread=f"o/r#{number}",
        repo="o/r",
        number=number,
        kind="issue",
        installation_id=1,
        requested_by="someone",
        auto_approve=True,
        delivery_id=None,
    )
    assert isinstance(run, Run)
    if finish:  # a thread has one active run at a time: end it to start the next
        await store.set_run_status(run.id, "stopped")
    return run


def test_the_database_url_is_given_to_libpq_as_is() -> None:
    url = "postgresql+psycopg://u:p%40ss@h:5433/db?options=-csearch_path%3Dx"
    assert libpq_url(url) == "postgresql://u:p%40ss@h:5433/db?options=-csearch_path%3Dx"
    with pytest.raises(ValueError, match="PostgreSQL"):
        libpq_url("sqlite:///x.db")


async def test_a_worker_runs_each_kind_of_job_with_the_injected_functions(queue: Queue) -> None:
    queue.runs.release.set()
    queue.deliveries.release.set()
    run = await new_run(queue.pg.store)
    d = await queue.dispatcher()
    await d.submit(ProcessDelivery("d-1"))
    await d.submit(StartRun(run.id))
    await until(lambda: queue.runs.finished and queue.deliveries.finished)
    await asyncio.sleep(0.3)  # nothing else comes
    assert queue.deliveries.finished == ["d-1"]
    assert queue.runs.finished == [run.id]
    assert await queue.jobs() == []  # succeeded jobs are deleted


async def test_submitting_needs_a_started_dispatcher(queue: Queue) -> None:
    d = await queue.dispatcher(None)
    await d.aclose()
    with pytest.raises(DispatcherClosed):
        await d.submit(ProcessDelivery("d-1"))
    assert await d.cancel("r") is False


async def test_a_job_submitted_again_while_queued_runs_once(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    web = await queue.dispatcher(None)  # only enqueues
    for job in (StartRun(run.id), ResumeRun(run.id), StartRun(run.id)):
        await web.submit(job)
    await web.submit(ProcessDelivery("d-1"))
    await web.submit(ProcessDelivery("d-1"))
    assert await queue.jobs() == [
        ("open_swe.run", f"run:{run.id}", "todo"),
        ("open_swe.process_delivery", "delivery:d-1", "todo"),
    ]
    queue.runs.release.set()
    queue.deliveries.release.set()
    await queue.dispatcher()
    await until(lambda: queue.runs.finished and queue.deliveries.finished)
    await asyncio.sleep(0.5)
    assert queue.runs.started == [run.id]
    assert queue.deliveries.started == ["d-1"]


async def test_a_job_submitted_while_running_runs_once_more_afterwards(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    d = await queue.dispatcher()
    await d.submit(StartRun(run.id))
    await until(lambda: queue.runs.started)
    await d.submit(ResumeRun(run.id))  # e.g. an approval while the run winds down
    await d.submit(ResumeRun(run.id))  # coalesces with the queued one
    await asyncio.sleep(0.5)
    assert queue.runs.started == [run.id]  # never two copies at once
    queue.runs.release.set()
    await until(lambda: len(queue.runs.finished) == 2)
    await asyncio.sleep(0.3)
    assert queue.runs.started == [run.id, run.id]
    assert queue.runs.peak == 1


async def test_two_runs_on_one_thread_never_overlap_across_workers(queue: Queue) -> None:
    await queue.dispatcher()
    other_worker = await queue.dispatcher()
    first = await new_run(queue.pg.store, 1, finish=True)  # e.g. stopped, still winding down
    second = await new_run(queue.pg.store, 1)
    elsewhere = await new_run(queue.pg.store, 2)
    await other_worker.submit(StartRun(first.id))
    await until(lambda: queue.runs.started)
    await other_worker.submit(StartRun(second.id))
    await other_worker.submit(StartRun(elsewhere.id))
    # Two workers with two run slots each: the other thread's run starts, this thread's waits.
    await until(lambda: elsewhere.id in queue.runs.started)
    await asyncio.sleep(0.5)
    assert queue.runs.started == [first.id, elsewhere.id]
    queue.runs.release.set()
    await until(lambda: len(queue.runs.finished) == 3)
    assert queue.runs.started == [first.id, elsewhere.id, second.id]


async def test_deliveries_are_not_stuck_behind_long_runs(queue: Queue) -> None:
    runs = [await new_run(queue.pg.store, n) for n in (1, 2, 3)]
    d = await queue.dispatcher(WorkerOptions(run_concurrency=1, poll_interval=0.2))
    for run in runs:
        await d.submit(StartRun(run.id))
    queue.deliveries.release.set()
    await d.submit(ProcessDelivery("d-1"))
    await until(lambda: queue.deliveries.finished == ["d-1"])
    assert queue.runs.started == [runs[0].id]  # one run slot, still busy
    assert queue.runs.peak == 1


async def test_a_stop_from_another_process_cancels_the_running_job(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    worker = await queue.dispatcher()
    await worker.submit(StartRun(run.id))
    await until(lambda: queue.runs.started)
    web = await queue.dispatcher(None)  # another process: it shares only the database
    assert await web.cancel(run.id) is True
    await until(lambda: queue.runs.cancelled == [run.id])  # stopped, not suspended
    assert queue.runs.finished == queue.runs.suspended == []
    await until(lambda: queue.statuses("aborted"))
    assert await web.cancel(run.id) is False  # nothing left to cancel


async def test_cancel_also_drops_the_queued_job(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    web = await queue.dispatcher(None)
    await web.submit(StartRun(run.id))
    await queue.pg.store.set_run_status(run.id, "stopped")  # what /open-swe stop does first
    assert await web.cancel(run.id) is True
    assert await web.cancel("unknown-run") is False
    queue.runs.release.set()
    await queue.dispatcher()
    await asyncio.sleep(0.5)
    assert queue.runs.started == []
    assert await queue.jobs() == [("open_swe.run", f"run:{run.id}", "cancelled")]


async def test_a_stopping_worker_hands_its_running_job_to_the_next(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    first = await queue.dispatcher()
    await first.submit(StartRun(run.id))
    await until(lambda: queue.runs.started)
    await first.aclose()  # SIGTERM: 0.3 s of grace, then the job is suspended and requeued
    assert (queue.runs.suspended, queue.runs.cancelled) == ([run.id], [])
    queue.runs.release.set()
    await queue.dispatcher()
    await until(lambda: queue.runs.finished == [run.id])
    assert queue.runs.started == [run.id, run.id]


async def test_a_job_that_finishes_within_the_grace_period_is_not_cancelled(
    queue: Queue,
) -> None:
    run = await new_run(queue.pg.store)
    first = await queue.dispatcher(WorkerOptions(shutdown_timeout=10, poll_interval=0.2))
    await first.submit(StartRun(run.id))
    await until(lambda: queue.runs.started)
    closing = asyncio.create_task(first.aclose())
    await asyncio.sleep(0.3)
    assert not closing.done()  # waiting for the job
    queue.runs.release.set()
    await closing
    assert (queue.runs.finished, queue.runs.cancelled) == ([run.id], [])


async def test_the_jobs_of_a_dead_worker_are_retried(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    web = await queue.dispatcher(None)
    await web.submit(StartRun(run.id))
    await _take_and_die(queue)  # a worker fetched the job, then was killed (no heartbeat)
    assert await queue.jobs() == [("open_swe.run", f"run:{run.id}", "doing")]
    queue.runs.release.set()
    await queue.dispatcher()  # its periodic task finds the stale heartbeat (1 s)
    await until(lambda: queue.runs.finished == [run.id])
    assert queue.runs.started == [run.id]


async def test_a_dead_workers_job_with_a_newer_copy_queued_gives_way(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    web = await queue.dispatcher(None)
    await web.submit(StartRun(run.id))
    await _take_and_die(queue)
    await web.submit(ResumeRun(run.id))  # submitted while it "ran": queued behind it
    # A worker of deliveries only (its periodic task recovers) leaves the run job queued.
    await queue.dispatcher(replace(FAST, queues=(DELIVERIES,)))
    await until(lambda: queue.statuses("aborted", "todo"))
    queue.runs.release.set()
    await queue.dispatcher()
    await until(lambda: queue.runs.finished)
    await asyncio.sleep(0.3)
    assert queue.runs.started == [run.id]


async def _take_and_die(queue: Queue) -> None:
    """What a worker killed mid-job leaves: the job `doing`, its worker's heartbeat frozen."""
    connector = procrastinate.PsycopgConnector(conninfo=queue.pg.url)
    async with procrastinate.App(connector=connector).open_async() as app:
        worker_id = await app.job_manager.register_worker()
        job = await app.job_manager.fetch_job([f"{queue.pg.name}-{RUNS}"], worker_id)
        assert job is not None


async def test_start_requeues_only_unfinished_work_no_job_carries(queue: Queue) -> None:
    store = queue.pg.store
    carried, lost, parked = [await new_run(store, n) for n in (1, 2, 3)]
    await store.set_run_status(parked.id, "waiting")  # resumes when someone answers
    for delivery_id in ("d-queued", "d-lost"):
        await store.record_delivery(
            delivery_id=delivery_id,
            event="issues",
            action="labeled",
            installation_id=1,
            repo="o/r",
            outcome="accepted",
            payload={"action": "labeled"},
        )
    web = await queue.dispatcher(None)
    jobs_at_first_start = await queue.jobs()
    await web.aclose()
    assert sorted(k for _, k, _ in jobs_at_first_start) == sorted(
        ["delivery:d-queued", "delivery:d-lost", f"run:{carried.id}", f"run:{lost.id}"]
    )
    # Two jobs were lost (a crash between recording and enqueueing), `carried` is running
    # somewhere and `d-queued` still queued: a restart requeues the lost ones only.
    for key in (f"run:{lost.id}", "delivery:d-lost"):
        await queue.pg.rows("DELETE FROM procrastinate_jobs WHERE queueing_lock = %s", key)
    await _take_and_die(queue)
    await queue.dispatcher(None)
    assert sorted((k, s) for _, k, s in await queue.jobs()) == sorted(
        [
            ("delivery:d-queued", "todo"),
            ("delivery:d-lost", "todo"),
            (f"run:{carried.id}", "doing"),
            (f"run:{lost.id}", "todo"),
        ]
    )


async def test_a_job_that_meets_a_transient_fault_is_run_again_later(queue: Queue) -> None:
    """Finding 1, procrastinate's side: the job used to swallow the error and succeed."""
    tries: list[str] = []

    async def flaky(delivery_id: str) -> None:
        tries.append(delivery_id)
        if len(tries) < 3:
            raise TryAgain("GitHub answered 502")

    d = await queue.dispatcher(deliveries=flaky)
    await d.submit(ProcessDelivery("d-1"))
    await until(lambda: len(tries) == 3)
    await until(lambda: queue.statuses())  # succeeded: deleted
    assert tries == ["d-1", "d-1", "d-1"]


async def test_a_job_is_tried_no_more_than_the_policy_says_then_kept_as_failed(
    queue: Queue,
) -> None:
    tries: list[str] = []

    async def down(delivery_id: str) -> None:
        tries.append(delivery_id)
        raise TryAgain("the database is unavailable")

    d = await queue.dispatcher(deliveries=down, retry=RetryPolicy(attempts=3, first_wait=0.01))
    await d.submit(ProcessDelivery("d-1"))
    await until(lambda: queue.statuses("failed"))
    assert tries == ["d-1"] * 3
    assert "delivery:d-1" not in await d.carried()  # the outbox may queue it again


async def test_carried_names_the_jobs_queued_or_running(queue: Queue) -> None:
    run = await new_run(queue.pg.store)
    d = await queue.dispatcher()
    await d.submit(StartRun(run.id))  # running (held)
    web = await queue.dispatcher(None)
    await web.submit(ProcessDelivery("d-queued"))
    await until(lambda: queue.runs.started)
    carried = await web.carried()  # (and maybe the periodic task finding dead workers)
    assert {f"run:{run.id}", "delivery:d-queued"} <= carried


async def test_retention_deletes_ended_jobs_of_this_deployment_only(queue: Queue) -> None:
    async def down(delivery_id: str) -> None:
        raise TryAgain("GitHub answered 503")

    d = await queue.dispatcher(deliveries=down, retry=RetryPolicy(attempts=1))
    for delivery_id in ("old", "new"):
        await d.submit(ProcessDelivery(delivery_id))
    await until(lambda: queue.statuses("failed", "failed"))
    await queue.pg.rows(
        "UPDATE procrastinate_events SET at = at - interval '3 days' WHERE job_id IN"
        " (SELECT id FROM procrastinate_jobs WHERE queueing_lock = 'delivery:old')"
    )
    await d.prune_jobs(timedelta(days=2))
    assert [k for _, k, _ in await queue.jobs()] == ["delivery:new"]


async def test_the_schema_is_created_once_and_an_outdated_one_refused(queue: Queue) -> None:
    starts = [queue.dispatcher(None) for _ in range(3)]
    await asyncio.gather(*starts)  # concurrent start-ups: one creates, the others find it
    connector = procrastinate.PsycopgConnector(conninfo=queue.pg.url)
    async with procrastinate.App(connector=connector).open_async():
        assert await ensure_schema(connector) is False
        await queue.pg.rows("DROP FUNCTION procrastinate_retry_job_v2")
        with pytest.raises(QueueSchemaError, match="missing procrastinate_retry_job_v2"):
            await ensure_schema(connector)


def test_unknown_worker_queues_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown queue 'acks'"):
        ProcrastinateDispatcher(
            "postgresql://h/db",
            store=Store.open("sqlite://"),
            run_job=Jobs(),
            worker=WorkerOptions(queues=(DELIVERIES, "acks")),
        )
