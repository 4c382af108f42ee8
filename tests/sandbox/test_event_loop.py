from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from app.sandbox.event_loop import LoopThread


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread("test-loop")
    yield runner
    runner.close()


def test_runs_coroutines_on_one_private_loop_from_any_thread(loop_thread: LoopThread) -> None:
    async def where() -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    first = loop_thread.run(where())
    results: list[tuple[int, asyncio.AbstractEventLoop]] = []
    worker = threading.Thread(target=lambda: results.append(loop_thread.run(where())))
    worker.start()
    worker.join()
    assert results == [first]
    assert first[0] != threading.get_ident()


def test_exceptions_propagate_to_the_caller(loop_thread: LoopThread) -> None:
    async def boom() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        loop_thread.run(boom())


def test_a_blocking_call_from_the_loop_itself_is_refused(loop_thread: LoopThread) -> None:
    async def nested() -> None:
        async def inner() -> None:
            return None

        loop_thread.run(inner())

    with pytest.raises(RuntimeError, match="deadlock"):
        loop_thread.run(nested())


def test_close_runs_the_final_coroutine_and_cancels_leftover_tasks(loop_thread: LoopThread) -> None:
    cancelled = threading.Event()
    closed: list[str] = []

    async def linger() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def start_background() -> None:
        asyncio.get_running_loop().create_task(linger())
        await asyncio.sleep(0)

    async def final() -> None:
        closed.append("client closed")

    loop_thread.run(start_background())
    loop_thread.close(final())
    assert closed == ["client closed"]
    assert cancelled.is_set()
    loop_thread.close()  # idempotent


def test_close_before_use_does_not_start_a_thread() -> None:
    runner = LoopThread("unused")
    before = threading.active_count()

    async def final() -> None:
        raise AssertionError("never awaited: nothing was started")

    runner.close(final())
    assert threading.active_count() == before
