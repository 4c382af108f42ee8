"""A private asyncio event loop on a daemon thread, so sync code can drive an async client.

Every coroutine of one client runs on the same loop (aiohttp sessions are bound to the loop
that created them), whichever thread calls `run`. Deadlines inside those coroutines are real
asyncio cancellations, unlike timeouts enforced from outside a blocking call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and block until it finishes; its exception propagates."""
        loop = self._started()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(f"{self._name}: blocking call from its own loop would deadlock")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt in the caller: stop the work too
            raise

    def close(self, final: Coroutine[Any, Any, object] | None = None) -> None:
        """Run `final` (e.g. closing a client), cancel what is left, stop the thread. Idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            if final is not None:
                final.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(_shutdown(final), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop


async def _shutdown(final: Coroutine[Any, Any, object] | None) -> None:
    try:
        if final is not None:
            await final
    finally:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()
