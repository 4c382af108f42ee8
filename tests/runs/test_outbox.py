"""The outbox sweep: recorded work that no job carries is queued, and nothing else."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.runs.dispatch import InProcessDispatcher
from app.runs.models import Run
from app.runs.outbox import queue_uncarried
from app.runs.store import Store


async def record(store: Store, delivery_id: str, *, work: bool = True) -> None:
    await store.record_delivery(
        delivery_id=delivery_id,
        event="issues",
        action="labeled",
        installation_id=7,
        repo="acme/widgets",
        outcome="accepted" if work else "ignored",
        payload={"action": "labeled"} if work else None,
    )


async def run_on(store: Store, number: int) -> Run:
    run = await store.start_run(
        thread=f"acme/widgets#{number}",
        repo="acme/widgets",
        number=number,
        kind="issue",
        installation_id=7,
        requested_by="octocat",
        auto_approve=True,
        delivery_id=None,
    )
    assert isinstance(run, Run)
    return run


async def test_work_no_job_carries_is_queued_once(store: Store) -> None:
    seen: list[str] = []
    held = asyncio.Event()

    async def job(job_id: str) -> None:
        seen.append(job_id)
        await held.wait()

    queue = InProcessDispatcher(run_job=job, max_concurrent_runs=4)
    await queue.start(job)
    await record(store, "lost")
    await record(store, "ignored", work=False)
    await record(store, "done")
    await store.finish_delivery("done", "started")
    lost_run, running, waiting = [await run_on(store, n) for n in (1, 2, 3)]
    await store.set_run_status(running.id, "running")
    await store.set_run_status(waiting.id, "waiting")

    assert await queue_uncarried(store, queue, grace=timedelta(hours=1)) == 0  # too recent
    assert await queue_uncarried(store, queue, grace=timedelta(0)) == 2
    await asyncio.sleep(0)
    assert sorted(seen) == sorted(["lost", lost_run.id])
    assert queue.in_flight == {"delivery:lost", f"run:{lost_run.id}"}
    assert await queue_uncarried(store, queue, grace=timedelta(0)) == 0  # carried now
    held.set()
    await queue.drain()
    await queue.aclose()
