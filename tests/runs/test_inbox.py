"""A run's side of the inbox, on SQLite and PostgreSQL: taking instructions once, what a run
was asked, and the runs a retry continues."""

from __future__ import annotations

import asyncio
from typing import Any

from app.agent.host import Remark
from app.runs.inbox import RunInbox, lineage
from app.runs.models import Run
from app.runs.store import Store

THREAD = "acme/widgets#12"


async def started(store: Store, delivery_id: str | None = None) -> Run:
    run = await store.start_run(
        thread=THREAD,
        repo="acme/widgets",
        number=12,
        kind="pull",
        installation_id=7,
        requested_by="carol",
        auto_approve=True,
        delivery_id=delivery_id,
    )
    assert isinstance(run, Run)
    return run


async def add(store: Store, delivery_id: str, verb: str = "instruct", **kw: Any) -> Any:
    values: dict[str, Any] = {
        "thread": THREAD,
        "run_id": None,
        "verb": verb,
        "text": f"text of {delivery_id}",
        "author": "carol",
        "source": "issue_comment",
        "delivery_id": delivery_id,
    }
    return await store.add_command(**(values | kw))


async def test_instructions_are_taken_once_by_the_run_they_were_sent_to(store: Store) -> None:
    earlier = await started(store)
    await store.set_run_status(earlier.id, "succeeded")
    run = await started(store)
    await add(store, "before-the-run")  # the request that started it: no run yet
    await add(store, "while-running", run_id=run.id, source="review_comment", path="a.py", line=3)
    await add(store, "a-stop", "stop", run_id=run.id)  # not an instruction
    await add(store, "for-another-run", run_id=earlier.id)
    inbox = RunInbox(store, run)
    assert await inbox.waiting() is True

    assert await inbox.take() == [
        Remark("carol", "text of before-the-run"),
        Remark("carol", "text of while-running", path="a.py", line=3),
    ]
    assert await inbox.take() == []
    assert await inbox.waiting() is False
    assert [c.delivery_id for c in await inbox.asked()] == ["before-the-run", "while-running"]
    pending = [c.delivery_id for c in await store.pending_commands(THREAD)]
    assert pending == ["a-stop", "for-another-run"]


async def test_two_consumers_never_both_take_an_instruction(store: Store) -> None:
    run = await started(store)
    for index in range(5):
        await add(store, f"d{index}")
    inboxes = [RunInbox(store, run) for _ in range(4)]
    taken = await asyncio.gather(*(inbox.take() for inbox in inboxes))
    texts = sorted(c.body for batch in taken for c in batch)
    assert texts == [f"text of d{index}" for index in range(5)]


async def test_a_retry_continues_the_runs_it_retries_and_what_they_were_asked(
    store: Store,
) -> None:
    first = await started(store, delivery_id="comment")
    await add(store, "comment", run_id=None)
    await RunInbox(store, first).take()
    await add(store, "late", run_id=first.id)  # arrived after the run's last model call
    await store.set_run_status(first.id, "stopped")
    await add(store, "retry-1", "retry", run_id=first.id, consumed=True)
    second = await started(store, delivery_id="retry-1")
    await store.set_run_status(second.id, "failed")
    await add(store, "retry-2", "retry", run_id=second.id, consumed=True)
    third = await started(store, delivery_id="retry-2")

    runs = await lineage(store, third)
    assert runs == (third.id, second.id, first.id)
    assert await lineage(store, first) == (first.id,)
    requests = await RunInbox(store, third, runs).requests()
    assert [c.delivery_id for c in requests] == ["comment", "late"]
    assert [c.run_id for c in requests] == [first.id, third.id]
