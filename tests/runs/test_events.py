"""The runs' transcripts in the store (SQLite and PostgreSQL), and the batching writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from app.runs.models import Run
from app.runs.store import Store
from app.runs.store.events import SANDBOX_CREATE
from app.runs.store.retention import UsageTotals
from app.runs.transcript import EventWriter
from app.transcript import RunEvent


async def a_run(store: Store, number: int = 1) -> Run:
    run = await store.start_run(
        thread=f"acme/widgets#{number}",
        repo="acme/widgets",
        number=number,
        kind="issue",
        installation_id=7,
        requested_by="octocat",
        auto_approve=False,
        delivery_id=None,
    )
    assert isinstance(run, Run)
    return run


def event(run_id: str, kind: str = "step", **data: Any) -> RunEvent:
    return RunEvent(run_id, kind, datetime.now(UTC), data)


async def test_events_are_numbered_per_run_and_paged(store: Store) -> None:
    one, two = await a_run(store, 1), await a_run(store, 2)
    assert await store.add_events(one.id, [event(one.id, n=n) for n in range(3)]) == 3
    assert await store.add_events(two.id, [event(two.id, n=9)]) == 1
    assert await store.add_events(one.id, [event(one.id, n=3)]) == 4
    found = await store.run_events(one.id)
    assert [(e.seq, e.data["n"]) for e in found] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert [e.seq for e in await store.run_events(one.id, after=2)] == [3, 4]
    assert [e.seq for e in await store.run_events(one.id, after=1, limit=2)] == [2, 3]
    assert [e.data["n"] for e in await store.run_events(two.id)] == [9]
    assert found[0].shown()["id"] == 1
    assert found[0].shown()["kind"] == "step"


async def test_concurrent_writers_never_share_a_number(store: Store) -> None:
    run = await a_run(store)
    await asyncio.gather(
        *(store.add_events(run.id, [event(run.id, w=w, n=n) for n in range(3)]) for w in range(4))
    )
    found = await store.run_events(run.id)
    assert [e.seq for e in found] == list(range(1, 13))
    for writer in range(4):  # each batch stays together, in order
        seqs = [e.seq for e in found if e.data["w"] == writer]
        assert seqs == list(range(seqs[0], seqs[0] + 3))


async def test_pruning_a_run_deletes_its_transcript_and_keeps_the_sandbox_times(
    store: Store,
) -> None:
    run = await a_run(store)
    await store.add_events(
        run.id,
        [
            event(run.id, "sandbox", created=True, seconds=3.0),
            event(run.id, "sandbox", created=False, seconds=0.1),
            event(run.id, "step", step="prepare"),
        ],
    )
    await store.set_run_status(run.id, "failed")
    assert await store.mark_pruned(run.thread, [run.id], UsageTotals())
    assert await store.run_events(run.id) == []
    kept = await store.totals_of(SANDBOX_CREATE)
    assert kept["count"] == 1
    assert kept["sum"] == 3.0
    assert kept.get("2.5", 0) == 0
    assert kept["5.0"] == 1


async def test_the_writer_batches_events_in_the_background(store: Store) -> None:
    run = await a_run(store)
    writer = EventWriter(store, interval=0.01)
    writer.start()
    transcript = writer.transcript(run.id)
    for n in range(5):
        transcript.emit("step", n=n)
    for _ in range(200):
        if len(await store.run_events(run.id)) == 5:
            break
        await asyncio.sleep(0.02)
    await writer.aclose()
    assert [e.data["n"] for e in await store.run_events(run.id)] == [0, 1, 2, 3, 4]


class FlakyStore:
    """A store whose writes fail `failures` times first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[RunEvent] = []

    async def add_events(self, run_id: str, events: list[RunEvent]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database restarting")
        self.written.extend(events)
        return len(self.written)


async def test_a_failed_write_is_tried_again_then_dropped_with_a_log_line() -> None:
    flaky = FlakyStore(failures=2)
    writer = EventWriter(flaky, max_tries=3)  # type: ignore[arg-type]
    writer.record("r1", "step", n=1)
    await writer.flush()
    await writer.flush()
    assert flaky.written == []
    writer.record("r1", "step", n=2)
    await writer.flush()
    assert [e.data["n"] for e in flaky.written] == [1, 2]  # in order, nothing lost

    gone = FlakyStore(failures=100)
    writer = EventWriter(gone, max_tries=2)  # type: ignore[arg-type]
    writer.record("r1", "step", n=1)
    await writer.flush()
    await writer.flush()
    gone.failures = 0
    await writer.flush()
    assert gone.written == []  # given up after two tries: the run went on regardless


async def test_at_most_max_pending_events_wait() -> None:
    flaky = FlakyStore(failures=0)
    writer = EventWriter(flaky, max_pending=3)  # type: ignore[arg-type]
    for n in range(5):
        writer.record("r1", "step", n=n)
    await writer.flush()
    assert [e.data["n"] for e in flaky.written] == [2, 3, 4]
