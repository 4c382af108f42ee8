"""Group commit: concurrent items written together, each caller answered with its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.runs.store.group_commit import GroupCommit


class Writer:
    def __init__(self, *, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    async def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # the commit: later callers queue meanwhile
        if self.fail_on in items:
            raise OSError("disk full")
        return [item.upper() for item in items]


async def test_an_idle_writer_writes_at_once_and_a_busy_one_batches() -> None:
    writer = Writer()
    batches = GroupCommit(writer, max_batch=8)
    assert await batches.submit("a") == "A"
    results = await asyncio.gather(*(batches.submit(f"x{i}") for i in range(20)))
    assert results == [f"X{i}" for i in range(20)]
    sizes = [len(batch) for batch in writer.batches]
    assert sizes[0] == 1  # alone: no waiting for company
    assert sum(sizes) == 21
    assert max(sizes) == 8
    assert len(writer.batches) <= 5


async def test_a_failed_batch_fails_its_callers_only() -> None:
    writer = Writer(fail_on="bad")
    batches = GroupCommit(writer)
    first = asyncio.ensure_future(batches.submit("first"))
    await asyncio.sleep(0)  # "first" is being written alone
    rest = [asyncio.ensure_future(batches.submit(item)) for item in ("bad", "unlucky")]
    assert await first == "FIRST"
    for future in rest:
        with pytest.raises(OSError, match="disk full"):
            await future
    assert await batches.submit("later") == "LATER"  # the writer goes on


async def test_write_behind_items_are_flushed_and_failures_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = Writer(fail_on="bad")
    batches = GroupCommit(writer)
    batches.submit_later("quiet")
    await batches.flush()
    assert writer.batches == [["quiet"]]
    batches.submit_later("bad")
    await batches.aclose()  # no exception escapes: it is logged
    assert writer.batches[-1] == ["bad"]
