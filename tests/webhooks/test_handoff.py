"""Accepted deliveries reach the background once the front door is quiet, or after a bound."""

from __future__ import annotations

import asyncio

from app.runs.dispatch import Job, ProcessDelivery
from app.webhooks.handoff import Handoff


class Jobs:
    def __init__(self) -> None:
        self.submitted: list[str] = []

    async def submit(self, job: Job) -> None:
        assert isinstance(job, ProcessDelivery)
        self.submitted.append(job.delivery_id)


async def test_jobs_wait_while_requests_arrive_then_go_in_order() -> None:
    jobs = Jobs()
    handoff = Handoff(jobs, quiet=0.05, max_delay=10)  # type: ignore[arg-type]
    for number in range(5):
        handoff.arrived()
        handoff.submit(ProcessDelivery(f"d{number}"))
        await asyncio.sleep(0.01)
        assert jobs.submitted == []  # a request is being answered
        handoff.answered()
        await asyncio.sleep(0.01)
        assert jobs.submitted == []  # less than `quiet` since the last one
    await asyncio.sleep(0.1)
    assert jobs.submitted == [f"d{n}" for n in range(5)]


async def test_a_steady_stream_still_gets_its_work_done_after_the_bound() -> None:
    jobs = Jobs()
    handoff = Handoff(jobs, quiet=0.05, max_delay=0.15)  # type: ignore[arg-type]
    handoff.submit(ProcessDelivery("first"))
    handoff.arrived()  # one request in progress all along
    for _ in range(30):
        await asyncio.sleep(0.01)
        if jobs.submitted:
            break
    assert jobs.submitted == ["first"]


async def test_flush_hands_over_at_once_and_cancel_drops_what_waits() -> None:
    jobs = Jobs()
    handoff = Handoff(jobs, quiet=10, max_delay=10)  # type: ignore[arg-type]
    handoff.arrived()
    handoff.answered()
    handoff.submit(ProcessDelivery("a"))
    await handoff.flush()
    assert jobs.submitted == ["a"]
    handoff.submit(ProcessDelivery("b"))
    handoff.cancel()  # recorded in the store: resubmitted at the next start
    await asyncio.sleep(0.01)
    assert jobs.submitted == ["a"]
