"""The one path every Daytona call takes: a private event loop, deadlines, retries with
backoff, and state recovery helpers shared by the provider and its sandboxes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from daytona import (
    AsyncDaytona,
    AsyncSandbox,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
)

from app.config import Settings
from app.sandbox.backoff import RetryPolicy, parse_retry_after
from app.sandbox.daytona.errors import describe, status, unavailable
from app.sandbox.event_loop import LoopThread
from app.sandbox.types import SandboxError, SandboxGone

T = TypeVar("T")
log = structlog.get_logger("app.sandbox.daytona")

_STARTABLE = {"stopped", "archived"}
_SETTLING = {"stopping", "archiving"}  # becomes startable
_COMING_UP = {
    "creating",
    "starting",
    "restoring",
    "pending_build",
    "building_snapshot",
    "pulling_snapshot",
    "resizing",
    "snapshotting",
    "forking",
}


@dataclass(frozen=True)
class DaytonaTimings:
    """Deadlines and polling; tests shrink them."""

    request: float = 120.0  # one ordinary API call
    transfer: float = 900.0  # file upload/download, clone, push
    start: float = 300.0  # start a stopped or archived sandbox (restoring takes minutes)
    stop: float = 120.0
    poll_initial: float = 0.1  # first wait between command status checks (grows x1.5)
    poll_max: float = 2.0
    kill_grace: float = 10.0  # past a command's timeout before we stop waiting for it


class DaytonaApi:
    """The SDK client on its private loop thread, and how every call to it is made."""

    def __init__(
        self,
        settings: Settings,
        config: DaytonaConfig,
        *,
        retry: RetryPolicy,
        timings: DaytonaTimings,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.retry = retry
        self.timings = timings
        self._config = config
        self._sleep = sleep
        self._loop = LoopThread("daytona")
        self._client: AsyncDaytona | None = None

    def close(self) -> None:
        """Close the client and stop the loop thread. Idempotent."""
        client, self._client = self._client, None
        self._loop.close(_close(client) if client is not None else None)

    def blocking(self, coro: Coroutine[Any, Any, T], what: str, secrets: Iterable[str] = ()) -> T:
        """Run `coro` on the private loop; SDK errors come out as SandboxError."""
        try:
            return self._loop.run(coro)
        except SandboxError:
            raise
        except TimeoutError:
            raise SandboxError(f"Daytona took too long while {what}; try again later") from None
        except DaytonaError as exc:
            raise SandboxError(describe(exc, what, secrets)) from exc

    async def call(
        self,
        what: str,
        operation: Callable[[], Awaitable[T]],
        *,
        limit: float | None = None,
        before_retry: Callable[[], Awaitable[object]] | None = None,
    ) -> T:
        """One API operation with a deadline, retried on 429/502/503 with backoff.

        `before_retry` runs before a 502/503 is retried (refresh state, undo a partial result).
        """
        deadline = limit or self.timings.request
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await asyncio.wait_for(operation(), deadline)
            except DaytonaError as exc:
                code = status(exc)
                lost = unavailable(exc)
                if not (lost or code == 429) or attempt == self.retry.attempts:
                    raise
                if lost and before_retry is not None:
                    await before_retry()
                delay = self.retry.delay(attempt, retry_after(exc))
                log.warning(
                    "daytona.retry",
                    operation=what,
                    status=code or type(exc).__name__,
                    attempt=attempt,
                    delay=delay,
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def client(self) -> AsyncDaytona:
        # Built inside the loop: the SDK starts its Socket.IO task on the running loop.
        if self._client is None:
            self._client = AsyncDaytona(self._config)
        return self._client

    async def delete_quietly(self, sandbox: AsyncSandbox) -> None:
        """Delete, treating 'already gone' as done; other failures are logged, not raised."""
        try:
            await self.call("deleting a sandbox", lambda: sandbox.delete(timeout=0))
        except DaytonaNotFoundError:
            pass
        except (DaytonaError, TimeoutError) as exc:
            log.error("daytona.delete_failed", sandbox=sandbox.id, error=str(exc))
        else:
            log.info("daytona.sandbox.deleted", sandbox=sandbox.id)

    async def make_ready(self, sandbox: AsyncSandbox) -> None:
        """Bring a sandbox to `started` (start it, or wait for it), or raise SandboxGone."""
        deadline = time.monotonic() + self.timings.start
        while state_of(sandbox) in _SETTLING and time.monotonic() < deadline:
            await asyncio.sleep(self.timings.poll_max)
            await self.call("refreshing sandbox state", lambda: sandbox.refresh_data())
        current = state_of(sandbox)
        if current == "started":
            return
        if current in _STARTABLE:
            log.info("daytona.sandbox.starting", sandbox=sandbox.id, state=current)
            await self.call(
                "starting a sandbox", lambda: sandbox.start(timeout=0), limit=self.timings.start
            )
        elif current in _COMING_UP:
            await self.call(
                "waiting for a sandbox to start",
                lambda: sandbox.wait_for_sandbox_start(timeout=0),
                limit=self.timings.start,
            )
        else:
            reason = f": {sandbox.error_reason}" if sandbox.error_reason else ""
            raise SandboxGone(f"Daytona sandbox {sandbox.id} is {current}{reason}")


def state_of(sandbox: AsyncSandbox) -> str:
    value = sandbox.state
    return str(getattr(value, "value", value) or "unknown")


def retry_after(exc: DaytonaError) -> float | None:
    for name, value in (exc.headers or {}).items():
        if name.lower() == "retry-after":
            return parse_retry_after(str(value))
    return None


async def _close(client: AsyncDaytona) -> None:
    await client.close()  # type: ignore[no-untyped-call]
