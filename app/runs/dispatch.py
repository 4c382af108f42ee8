"""Handing work to the background: the Dispatcher interface and its in-process implementation.

Jobs carry ids, never objects, so a queue engine (procrastinate on PostgreSQL, a later issue)
can implement the same interface by serialising them with `job_to_dict` / `job_from_dict`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import structlog

from app.runs.periodic import Sweep, SweepLoops
from app.runs.retry import DELIVERY_RETRY, RetryPolicy, TryAgain
from app.runs.store import Store
from app.suspend import SUSPEND

log = structlog.get_logger(__name__)

JobFunction = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProcessDelivery:
    """Gate and act on a recorded delivery (permission checks, reactions, comments, runs)."""

    kind: ClassVar[str] = "process_delivery"
    delivery_id: str

    @property
    def key(self) -> str:
        return f"delivery:{self.delivery_id}"


@dataclass(frozen=True, slots=True)
class StartRun:
    """Run a queued run from the beginning."""

    kind: ClassVar[str] = "start_run"
    run_id: str

    @property
    def key(self) -> str:
        return f"run:{self.run_id}"


@dataclass(frozen=True, slots=True)
class ResumeRun:
    """Continue a run: after approval, a revision, a follow-up, or a restart."""

    kind: ClassVar[str] = "resume_run"
    run_id: str

    @property
    def key(self) -> str:
        return f"run:{self.run_id}"


Job = ProcessDelivery | StartRun | ResumeRun
JOB_KINDS: dict[str, type[Job]] = {k.kind: k for k in (ProcessDelivery, StartRun, ResumeRun)}


def job_to_dict(job: Job) -> dict[str, Any]:
    return {"kind": job.kind, **asdict(job)}


def job_from_dict(data: dict[str, Any]) -> Job:
    fields = dict(data)
    kind = JOB_KINDS.get(str(fields.pop("kind", "")))
    if kind is None:
        raise ValueError(f"unknown job kind in {data!r}")
    return kind(**fields)


class DispatcherClosed(RuntimeError):
    """submit() before start() or after aclose()."""


class Dispatcher(Protocol):
    """Where accepted work goes. Implementations: InProcessDispatcher (here), a queue engine."""

    async def start(self, process_delivery: JobFunction) -> None:
        """Begin accepting jobs; `process_delivery(delivery_id)` handles ProcessDelivery."""

    async def submit(self, job: Job) -> None:
        """Schedule a job. Submitting a job already in progress runs it once more afterwards."""

    async def cancel(self, run_id: str) -> bool:
        """Cancel the run's job if it is queued or running here; True if one was cancelled."""

    def schedule(self, sweep: Sweep) -> None:
        """Run `sweep` periodically once started (app.runs.periodic); register before start."""

    async def aclose(self) -> None:
        """Stop: cancel what is in flight with SUSPEND (it is redone from the store at the
        next start)."""

    async def carried(self) -> set[str]:
        """The keys of the jobs queued or running (or waiting to be tried again): the outbox
        sweep (app.runs.outbox) queues recorded work whose key is not among them."""


class InProcessDispatcher:
    """Jobs as asyncio tasks in this process.

    Run jobs share `max_concurrent_runs` slots; deliveries have their own slots, so a long agent
    run never delays the acknowledgement work (reactions, refusals) of new deliveries. A job
    that raises TryAgain is run again after the wait `retry` gives (its task waits, holding no
    slot), as procrastinate does.
    """

    def __init__(
        self,
        *,
        run_job: JobFunction,
        max_concurrent_runs: int,
        max_concurrent_deliveries: int = 8,
        retry: RetryPolicy = DELIVERY_RETRY,
    ) -> None:
        self._retry = retry
        self._run_job = run_job
        self._process_delivery: JobFunction | None = None
        self._run_slots = asyncio.Semaphore(max_concurrent_runs)
        self._delivery_slots = asyncio.Semaphore(max_concurrent_deliveries)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # keys submitted while their job was in progress
        self._sweeps = SweepLoops()
        self._closed = False

    async def start(self, process_delivery: JobFunction) -> None:
        self._process_delivery = process_delivery
        self._closed = False
        self._sweeps.start()

    def schedule(self, sweep: Sweep) -> None:
        self._sweeps.add(sweep)

    async def submit(self, job: Job) -> None:
        if self._process_delivery is None or self._closed:
            raise DispatcherClosed("the dispatcher is not running")
        key = job.key
        existing = self._tasks.get(key)
        if existing is not None and not existing.done():
            # Coalesce: e.g. an approval arriving while the run's job is still winding down must
            # not be lost, nor start a second concurrent copy of the same run.
            self._again.add(key)
            return
        task = asyncio.create_task(self._run(job), name=key)
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]

    async def cancel(self, run_id: str) -> bool:
        key = StartRun(run_id).key
        self._again.discard(key)
        task = self._tasks.get(key)
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def drain(self) -> None:
        """Wait until no job is queued or running (jobs may submit more jobs)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        self._closed = True
        self._again.clear()
        await self._sweeps.aclose()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel(SUSPEND)  # runs are suspended, not stopped: resubmitted at the next start
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def in_flight(self) -> set[str]:
        return set(self._tasks)

    async def carried(self) -> set[str]:
        return set(self._tasks)

    async def _run(self, job: Job) -> None:
        while True:
            await self._run_once(job)
            if job.key not in self._again or self._closed:
                return
            self._again.discard(job.key)

    async def _run_once(self, job: Job) -> None:
        if isinstance(job, ProcessDelivery):
            function, slots, argument = (
                self._process_delivery,
                self._delivery_slots,
                job.delivery_id,
            )
        else:
            function, slots, argument = self._run_job, self._run_slots, job.run_id
        assert function is not None
        tries = 0
        while True:
            tries += 1
            try:
                async with slots:
                    await function(argument)
                return
            except asyncio.CancelledError:
                log.info("job cancelled", job=job.kind, id=argument)
                raise
            except TryAgain as exc:
                wait = self._retry.wait(tries, exc.retry_after)
                if wait is None:
                    log.error("job failed after its last try", job=job.kind, id=argument)
                    return
                log.warning("job will be tried again", job=job.kind, id=argument, wait=wait)
                await asyncio.sleep(wait)
            except Exception:
                # The job owns its error reporting; this keeps one failure from killing the loop.
                log.exception("job failed", job=job.kind, id=argument)
                return


async def resubmit_unfinished(store: Store, dispatcher: Dispatcher) -> int:
    """After a (re)start: submit the deliveries and runs a crash or shutdown left unfinished.

    Runs waiting for approval are not resubmitted: they resume when someone answers.
    """
    count = 0
    for delivery_id in await store.unfinished_deliveries():
        await dispatcher.submit(ProcessDelivery(delivery_id))
        count += 1
    for run in await store.runs_to_resume():
        await dispatcher.submit(StartRun(run.id) if run.status == "queued" else ResumeRun(run.id))
        count += 1
    if count:
        log.info("resubmitted unfinished work", jobs=count)
    return count
