"""DaytonaProvider: creates sandboxes from a snapshot, finds and reuses them by labels, and
leaves nothing behind when creation fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from daytona import (
    AsyncSandbox,
    CreateSandboxFromSnapshotParams,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    DaytonaTimeoutError,
    ListSandboxesQuery,
)

from app.config import ConfigError, Settings
from app.sandbox.backoff import RetryPolicy
from app.sandbox.base import Sandbox, SandboxError, SandboxProvider
from app.sandbox.daytona.api import DaytonaApi, DaytonaTimings, log, state_of
from app.sandbox.daytona.errors import describe, status
from app.sandbox.daytona.network import restricted
from app.sandbox.daytona.origin import ORIGIN_LABEL_PREFIX
from app.sandbox.daytona.sandbox import DaytonaSandbox

OWNER_LABEL = "open-swe"  # on every sandbox we create: sweep leaks with find({})
ATTEMPT_LABEL = "open-swe-attempt"  # unique per create call: finds what a failed create left
_INTERNAL_LABELS = {OWNER_LABEL, ATTEMPT_LABEL, "code-toolbox-language"}  # the SDK adds the last
# acquire() replaces these rather than wait minutes for a restore; resume() does restore them.
_REPLACE = {"archived", "archiving"}


class DaytonaProvider(SandboxProvider):
    """Creates Daytona sandboxes from a snapshot and finds them again by labels."""

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        timings: DaytonaTimings | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_concurrent_requests: int = 16,
    ) -> None:
        if settings.daytona_api_key is None:
            raise ConfigError(
                "DAYTONA_API_KEY: required for Daytona sandboxes (or set OPEN_SWE_SANDBOX=local)"
            )
        self.settings = settings
        allowed = settings.daytona_network_allow_list
        restricted = f"only {allowed}" if allowed else "none"
        self.isolation = (
            f"Daytona sandboxes from snapshot {settings.daytona_snapshot} "
            f"({settings.daytona_api_url}); network: {restricted}, opened while git or the setup "
            f"script runs, or for every command under policy always (ceiling "
            f"{settings.sandbox_network})"
        )
        # Explicit config: otherwise the SDK reads DAYTONA_* from the environment and .env files.
        config = DaytonaConfig(
            api_key=settings.daytona_api_key.get_secret_value(),
            api_url=settings.daytona_api_url,
            target=settings.daytona_target,
            connection_pool_maxsize=max_concurrent_requests,  # caps requests in flight
        )
        self.api = DaytonaApi(
            settings,
            config,
            retry=retry or RetryPolicy(),
            timings=timings or DaytonaTimings(),
            sleep=sleep,
        )

    def acquire(self, labels: Mapping[str, str]) -> DaytonaSandbox:
        return self.api.blocking(self._acquire(dict(labels)), "acquiring a sandbox")

    def find(self, labels: Mapping[str, str]) -> list[Sandbox]:
        return self.api.blocking(self._find(dict(labels)), "listing sandboxes")

    def close(self) -> None:
        """Close the client and stop its loop thread (its sandboxes stop working)."""
        self.api.close()

    def __enter__(self) -> DaytonaProvider:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def _acquire(self, labels: dict[str, str]) -> DaytonaSandbox:
        for candidate in await self._list(labels):
            if _caller_labels(candidate.labels) != labels:
                continue
            if state_of(candidate) in _REPLACE:
                log.info(
                    "daytona.sandbox.replacing", sandbox=candidate.id, state=state_of(candidate)
                )
                await self.api.delete_quietly(candidate)
                continue
            try:
                await self.api.make_ready(candidate)
                sandbox = await self._wrap(candidate)
            except (SandboxError, DaytonaError, TimeoutError) as exc:
                log.warning(
                    "daytona.sandbox.unusable",
                    sandbox=candidate.id,
                    state=state_of(candidate),
                    error=str(exc),
                )
                await self.api.delete_quietly(candidate)
                continue
            log.info("daytona.sandbox.reused", sandbox=candidate.id)
            return sandbox
        created = await self._create(labels)
        try:
            sandbox = await self._wrap(created)
            sandbox.created = True
            return sandbox
        except BaseException:
            await asyncio.shield(self.api.delete_quietly(created))
            raise

    async def _find(self, labels: dict[str, str]) -> list[Sandbox]:
        found: list[Sandbox] = []
        for item in await self._list(labels):
            home = (
                f"/home/{item.user}"  # the toolbox of a stopped sandbox cannot tell; resume() can
            )
            found.append(
                DaytonaSandbox(self.api, item, labels=_caller_labels(item.labels), work_dir=home)
            )
        return found

    async def _list(self, labels: Mapping[str, str]) -> list[AsyncSandbox]:
        client = await self.api.client()
        query = ListSandboxesQuery(labels={**labels, OWNER_LABEL: "1"})

        async def listing() -> list[AsyncSandbox]:
            return [
                s
                async for s in client.list(query)
                if state_of(s) not in ("destroyed", "destroying")
            ]

        return await self.api.call("listing sandboxes", listing)

    async def _create(self, labels: dict[str, str]) -> AsyncSandbox:
        client = await self.api.client()
        settings = self.settings
        attempt = uuid.uuid4().hex
        params = CreateSandboxFromSnapshotParams(
            snapshot=settings.daytona_snapshot,
            os_user="daytona",
            labels={**labels, OWNER_LABEL: "1", ATTEMPT_LABEL: attempt},
            auto_stop_interval=settings.daytona_auto_stop_minutes,
            auto_delete_interval=settings.daytona_auto_delete_minutes,
            **restricted(settings.daytona_network_allow_list),  # opened when needed: network.py
        )
        limit = settings.daytona_create_timeout
        try:
            sandbox = await self.api.call(
                "creating a sandbox",
                lambda: client.create(params, timeout=limit),
                limit=limit + self.api.timings.request,  # backstop; the SDK's own limit comes first
                before_retry=lambda: self._discard(attempt, None),
            )
        except BaseException as exc:
            known = exc.sandbox_id if isinstance(exc, DaytonaTimeoutError) else None
            left = await asyncio.shield(self._discard(attempt, known))
            error = _creation_error(exc, settings, left)
            if error is exc:
                raise
            raise error from exc
        log.info("daytona.sandbox.created", sandbox=sandbox.id, snapshot=settings.daytona_snapshot)
        return sandbox

    async def _discard(self, attempt: str, known_id: str | None) -> list[_Leftover]:
        """Delete every sandbox a create attempt made; says what they were."""
        client = await self.api.client()
        query = ListSandboxesQuery(labels={ATTEMPT_LABEL: attempt})
        try:
            found = await self.api.call("listing sandboxes", lambda: _collect(client.list(query)))
            if known_id and known_id not in {s.id for s in found}:
                found.append(await self.api.call("reading a sandbox", lambda: client.get(known_id)))
        except DaytonaNotFoundError:
            return []
        except (DaytonaError, TimeoutError) as exc:
            log.error("daytona.cleanup_failed", attempt=attempt, sandbox=known_id, error=str(exc))
            return []
        leftovers = [_Leftover(s.id, state_of(s), s.error_reason) for s in found]
        for sandbox in found:
            await self.api.delete_quietly(sandbox)
        return leftovers

    async def _wrap(self, sdk: AsyncSandbox) -> DaytonaSandbox:
        sandbox = DaytonaSandbox(self.api, sdk, labels=_caller_labels(sdk.labels), work_dir="")
        sandbox.work_dir = await sandbox.toolbox("reading the work directory", sdk.get_work_dir)
        return sandbox


def _caller_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {
        k: v
        for k, v in (labels or {}).items()
        if k not in _INTERNAL_LABELS and not k.startswith(ORIGIN_LABEL_PREFIX)
    }


async def _collect(items: Any) -> list[AsyncSandbox]:
    return [item async for item in items]


@dataclass(frozen=True)
class _Leftover:
    id: str
    state: str
    error_reason: str | None


def _creation_error(exc: BaseException, settings: Settings, left: list[_Leftover]) -> BaseException:
    """What to raise when creating failed; `left` are the sandboxes it left (now deleted)."""
    if not isinstance(exc, Exception):
        return exc  # cancellation, KeyboardInterrupt: propagate as is
    snapshot = settings.daytona_snapshot
    made = ", ".join(f"{s.id} ({s.state})" for s in left)
    cleaned = f"; deleted what it left: {made}" if made else ""
    message = exc.message if isinstance(exc, DaytonaError) else str(exc)
    if isinstance(exc, DaytonaTimeoutError | TimeoutError):
        return SandboxError(
            f"Daytona did not start a sandbox within {settings.daytona_create_timeout:g} s "
            f"(OPEN_SWE_DAYTONA_CREATE_TIMEOUT){cleaned}. Daytona may be short of capacity: "
            "try again later"
        )
    failed = [s for s in left if s.state in ("error", "build_failed")]
    if failed:
        sandbox = failed[0]
        return SandboxError(
            f"Daytona sandbox {sandbox.id} from snapshot {snapshot} ended in {sandbox.state}: "
            f"{sandbox.error_reason or message}{cleaned}"
        )
    if status(exc) == 400 and "snapshot" in message.lower():
        return SandboxError(
            f"Daytona snapshot {snapshot} not found or inactive ({message}): create it in the "
            f"Daytona dashboard or activate it with Daytona().snapshot.activate('{snapshot}'), "
            "or point OPEN_SWE_DAYTONA_SNAPSHOT at an active snapshot"
        )
    if isinstance(exc, SandboxError):
        return exc
    if isinstance(exc, DaytonaError):
        return SandboxError(describe(exc, "creating a sandbox", ()) + cleaned)
    return exc
