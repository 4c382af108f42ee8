"""The in-process dispatcher: limits, coalescing, cancel, shutdown; jobs as plain data."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from app.agent.runner import SUSPEND
from app.runs.dispatch import (
    DispatcherClosed,
    InProcessDispatcher,
    ProcessDelivery,
    ResumeRun,
    StartRun,
    job_from_dict,
    job_to_dict,
    resubmit_unfinished,
)
from app.runs.models import Run, RunStatus
from app.runs.retry import RetryPolicy, TryAgain
from app.runs.store import Store


class Jobs:
    """Job functions that record calls and block until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.cancel_messages: list[object] = []
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
            self.cancelled.append(job_id)
            self.cancel_messages.append(exc.args[0] if exc.args else None)
            raise
        finally:
            self.running -= 1


async def until(predicate: Callable[[], object]) -> None:
    """Yield to the loop until `predicate()` holds (at most 2 s)."""
    async with asyncio.timeout(2):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.001)


async def dispatcher(runs: Jobs, deliveries: Jobs, *, max_runs: int = 2) -> InProcessDispatcher:
    started = InProcessDispatcher(run_job=runs, max_concurrent_runs=max_runs)
    await started.start(deliveries)
    return started


def test_jobs_are_plain_data() -> None:
    for job in (ProcessDelivery("d-1"), StartRun("r-1"), ResumeRun("r-1")):
        data = job_to_dict(job)
        assert all(isinstance(v, str) for v in data.values())
        assert job_from_dict(data) == job
    assert job_to_dict(StartRun("r")) == {"kind": "start_run", "run_id": "r"}
    with pytest.raises(ValueError, match="unknown job kind"):
        job_from_dict({"kind": "rm -rf", "run_id": "x"})


async def test_runs_respect_the_concurrency_limit_and_deliveries_have_their_own() -> None:
    runs, deliveries = Jobs(), Jobs()
    d = await dispatcher(runs, deliveries, max_runs=2)
    for i in range(5):
        await d.submit(StartRun(f"r{i}"))
    await d.submit(ProcessDelivery("d0"))
    await until(lambda: len(runs.started) == 2 and deliveries.started == ["d0"])
    await asyncio.sleep(0.01)
    assert len(runs.started) == 2  # the others wait for a slot
    runs.release.set()
    deliveries.release.set()
    await d.drain()
    assert sorted(runs.finished) == [f"r{i}" for i in range(5)]
    assert runs.peak == 2
    await d.aclose()


async def test_a_job_submitted_while_in_flight_runs_once_more_afterwards() -> None:
    runs, deliveries = Jobs(), Jobs()
    d = await dispatcher(runs, deliveries)
    await d.submit(StartRun("r"))
    await until(lambda: runs.started == ["r"])
    await d.submit(ResumeRun("r"))  # e.g. an approval while the run winds down
    await d.submit(ResumeRun("r"))
    assert d.in_flight == {"run:r"}
    runs.release.set()
    await d.drain()
    assert runs.finished == ["r", "r"]  # not lost, never concurrent, coalesced
    assert runs.peak == 1
    await d.aclose()


async def test_cancel_stops_the_right_run() -> None:
    runs, deliveries = Jobs(), Jobs()
    d = await dispatcher(runs, deliveries)
    await d.submit(StartRun("keep"))
    await d.submit(StartRun("stop"))
    await until(lambda: len(runs.started) == 2)
    assert await d.cancel("stop") is True
    assert runs.cancelled == ["stop"]
    assert runs.cancel_messages == [None]  # a stop, not a suspension
    assert await d.cancel("stop") is False
    assert await d.cancel("unknown") is False
    assert d.in_flight == {"run:keep"}
    runs.release.set()
    await d.drain()
    assert runs.finished == ["keep"]
    await d.aclose()


async def test_a_failing_job_does_not_stop_the_others() -> None:
    calls: list[str] = []

    async def flaky(run_id: str) -> None:
        calls.append(run_id)
        if run_id == "bad":
            raise RuntimeError("boom")

    d = InProcessDispatcher(run_job=flaky, max_concurrent_runs=1)
    await d.start(flaky)
    await d.submit(StartRun("bad"))
    await d.submit(StartRun("good"))
    await d.drain()
    assert calls == ["bad", "good"]
    await d.aclose()


async def test_shutdown_cancels_everything_and_refuses_new_jobs() -> None:
    runs, deliveries = Jobs(), Jobs()
    d = await dispatcher(runs, deliveries)
    await d.submit(StartRun("r"))
    await d.submit(ProcessDelivery("d"))
    await until(lambda: runs.started and deliveries.started)
    await d.aclose()
    assert (runs.cancelled, deliveries.cancelled) == (["r"], ["d"])
    assert runs.cancel_messages == [SUSPEND]  # suspended for the next start, not stopped
    assert d.in_flight == set()
    with pytest.raises(DispatcherClosed):
        await d.submit(StartRun("late"))


async def test_submit_before_start_is_refused() -> None:
    d = InProcessDispatcher(run_job=Jobs(), max_concurrent_runs=1)
    with pytest.raises(DispatcherClosed):
        await d.submit(StartRun("early"))


async def test_unfinished_work_is_resubmitted(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    await store.migrate()
    await store.record_delivery(
        delivery_id="todo",
        event="issues",
        action="labeled",
        installation_id=1,
        repo="a/b",
        outcome="accepted",
        payload={},
    )
    statuses: list[RunStatus] = ["queued", "running", "waiting"]
    ids = []
    for number, status in enumerate(statuses):
        run = await store.start_run(
            thread=f"a/b#{number}",
            repo="a/b",
            number=number,
            kind="issue",
            installation_id=1,
            requested_by="u",
            auto_approve=False,
            delivery_id=None,
        )
        assert isinstance(run, Run)
        ids.append(run.id)
        if status != "queued":
            await store.set_run_status(run.id, status)

    submitted: list[object] = []

    class Recorder:
        async def submit(self, job: object) -> None:
            submitted.append(job)

    assert await resubmit_unfinished(store, Recorder()) == 3  # type: ignore[arg-type]
    assert submitted == [ProcessDelivery("todo"), StartRun(ids[0]), ResumeRun(ids[1])]
    await store.close()


# Transient faults: a job that raises TryAgain runs again ---------------------------------


async def test_a_job_that_meets_a_transient_fault_runs_again_after_a_wait() -> None:
    tries: list[str] = []

    async def flaky(delivery_id: str) -> None:
        tries.append(delivery_id)
        if len(tries) < 3:
            raise TryAgain("GitHub answered 502", retry_after=0.01 if len(tries) == 2 else None)

    dispatcher = InProcessDispatcher(
        run_job=Jobs(), max_concurrent_runs=1, retry=RetryPolicy(first_wait=0.01)
    )
    await dispatcher.start(flaky)
    await dispatcher.submit(ProcessDelivery("d1"))
    assert await dispatcher.carried() == {"delivery:d1"}
    await dispatcher.drain()
    assert tries == ["d1", "d1", "d1"]
    assert await dispatcher.carried() == set()


async def test_a_job_is_tried_no_more_than_the_policy_says() -> None:
    tries: list[str] = []

    async def down(delivery_id: str) -> None:
        tries.append(delivery_id)
        raise TryAgain("the database is unavailable")

    dispatcher = InProcessDispatcher(
        run_job=Jobs(), max_concurrent_runs=1, retry=RetryPolicy(attempts=4, first_wait=0.001)
    )
    await dispatcher.start(down)
    await dispatcher.submit(ProcessDelivery("d1"))
    await dispatcher.drain()
    assert len(tries) == 4


async def test_a_job_waiting_to_be_tried_again_is_suspended_at_shutdown() -> None:
    async def down(delivery_id: str) -> None:
        raise TryAgain("GitHub answered 503")

    dispatcher = InProcessDispatcher(
        run_job=Jobs(), max_concurrent_runs=1, retry=RetryPolicy(first_wait=3600)
    )
    await dispatcher.start(down)
    await dispatcher.submit(ProcessDelivery("d1"))
    await until(lambda: "delivery:d1" in dispatcher.in_flight)
    await dispatcher.aclose()  # does not wait an hour
    assert dispatcher.in_flight == set()
