"""Group commit: the writes of concurrent callers go to the database together, in one
transaction, so one commit (one fsync) makes a whole batch durable.

A caller's `submit()` returns once its item is committed (or raises what the batch raised).
While one batch is being written, later items queue up and form the next one: an idle store
writes each item at once (no added wait), a busy one amortises the commit over many.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import structlog

Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_BATCH = 200  # rows per transaction: bounded statement size (SQLite's variable limit)

log = structlog.get_logger(__name__)


class GroupCommit(Generic[Item, Result]):
    """Batches items for `write(items) -> results` (one result per item, in order)."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is pending; its result once committed."""
        return await self._enqueue(item)

    def submit_later(self, item: Item) -> None:
        """Write `item` with the next batch without waiting for it (a failure is logged):
        for rows nobody needs to be durable before answering."""
        future = self._enqueue(item)
        future.add_done_callback(_log_failure)

    async def flush(self) -> None:
        """Wait until everything submitted so far is written (read-your-writes)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        """Write what is pending, then stop."""
        await self.flush()

    def _enqueue(self, item: Item) -> asyncio.Future[Result]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not loop:
            self._writer = loop.create_task(self._drain(), name="group-commit")
        return future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._write([item for item, _ in batch])
            except asyncio.CancelledError:
                _fail(batch, RuntimeError("the store closed before this write was committed"))
                _fail(self._pending, RuntimeError("the store closed"))
                self._pending.clear()
                raise
            except Exception as exc:  # every caller of the batch sees the failure
                _fail(batch, exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a caller may have given up (cancelled)
                    future.set_result(result)


def _fail(batch: Sequence[tuple[Any, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("a write-behind row was not written", error=repr(exc))
