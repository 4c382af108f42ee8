"""Daytona sandboxes (the only module importing `daytona`).

Sync interface, async client. `Sandbox` is sync (deepagents is sync-first; the graph calls it
through `asyncio.to_thread`), but the sync `Daytona` client enforces its timeouts with SIGALRM
in the main thread and, in any other thread, by injecting an exception between bytecodes, which
cannot interrupt a blocked socket read and can land anywhere in urllib3. Its wait loops (create,
start) cannot be stopped from outside either. So this backend drives `AsyncDaytona` on a private
event loop thread (`LoopThread`): every deadline here is an asyncio cancellation that really
stops the request, and all calls share one aiohttp session whichever thread makes them.

Resilience (the SDK neither retries 429 nor backs off):
- 429/502/503 and dropped connections are retried with exponential backoff and jitter,
  honouring Retry-After, up to `RetryPolicy.attempts` calls; the SDK's connection pool caps
  requests in flight.
- Before retrying a 502/503 or a dropped connection (or after a toolbox 404 that did not come from the daemon, which is
  how an archived sandbox answers) the sandbox's state is refreshed: a stopped or archived one
  is started, a missing or failed one raises `SandboxGone` (the caller recreates it).
- Calls that are not idempotent are made safe to repeat: a command the daemon already started is
  adopted instead of run twice, a commit that went through is detected, a partial clone removed.
- Creation carries a unique attempt label, so whatever a failed or timed-out create left behind
  (stuck in `creating`, `error`, `build_failed`, a 502 after the sandbox was made) is found and
  deleted before a clear `SandboxError` is raised.

Commands run in a fresh toolbox session each (not `process.exec`): a long `exec` request is cut
by the proxy's idle timeout with a bare 502, and its 408 on timeout loses the output. A session
command is started asynchronously and polled, stays bounded by `timeout -k` inside the sandbox
(the whole process group is killed) and by our own deadline, and its partial output survives.

Git goes through the toolbox git API: credentials travel per call in request bodies, so the token
never lands in `.git/config`; those calls' arguments are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import posixpath
import re
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from daytona import (
    AsyncDaytona,
    AsyncSandbox,
    CreateSandboxFromSnapshotParams,
    DaytonaConfig,
    DaytonaConnectionError,
    DaytonaError,
    DaytonaNotFoundError,
    DaytonaTimeoutError,
    FileDownloadRequest,
    FileUpload,
    ListSandboxesQuery,
    SessionExecuteRequest,
)
from daytona.common.errors import SOURCE_DAEMON
from deepagents.backends.protocol import (
    EditResult,
    FileDownloadResponse,
    FileUploadResponse,
    WriteResult,
)
from deepagents.backends.utils import perform_string_replacement

from app.config import ConfigError, Settings
from app.logs import REDACTED
from app.sandbox.backoff import RetryPolicy, parse_retry_after
from app.sandbox.base import (
    OUTSIDE_WORK_DIR,
    GitCredentials,
    GitIdentity,
    RawResult,
    Sandbox,
    SandboxError,
    SandboxGone,
    SandboxProvider,
)
from app.sandbox.event_loop import LoopThread
from app.sandbox.git import check_url, public_url
from app.sandbox.output import Clipped
from app.sandbox.process import STREAM_KEEP_BYTES, TIMEOUT_EXIT_CODE

T = TypeVar("T")
log = structlog.get_logger(__name__)

OWNER_LABEL = "open-swe"  # on every sandbox we create: sweep leaks with find({})
ATTEMPT_LABEL = "open-swe-attempt"  # unique per create call: finds what a failed create left
_INTERNAL_LABELS = {OWNER_LABEL, ATTEMPT_LABEL, "code-toolbox-language"}  # the SDK adds the last
_UNAVAILABLE = {502, 503}
_STARTABLE = {"stopped", "archived"}
# acquire() replaces these rather than wait minutes for a restore; resume() does restore them.
_REPLACE = {"archived", "archiving"}
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
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KILLED_EXIT = 137  # timeout -k had to SIGKILL
# Bigger edits go through our download/replace/upload: deepagents passes them through /tmp,
# outside work_dir where file operations may not go (its own inline limit is 50 kB).
_INLINE_EDIT_BYTES = 10_000


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
        self.retry = retry or RetryPolicy()
        self.timings = timings or DaytonaTimings()
        self.isolation = (
            f"Daytona sandboxes from snapshot {settings.daytona_snapshot} "
            f"({settings.daytona_api_url})"
        )
        # Explicit config: otherwise the SDK reads DAYTONA_* from the environment and .env files.
        self._config = DaytonaConfig(
            api_key=settings.daytona_api_key.get_secret_value(),
            api_url=settings.daytona_api_url,
            target=settings.daytona_target,
            connection_pool_maxsize=max_concurrent_requests,  # caps requests in flight
        )
        self._sleep = sleep
        self._loop = LoopThread("daytona")
        self._client: AsyncDaytona | None = None

    # --- SandboxProvider ------------------------------------------------------------------

    def acquire(self, labels: Mapping[str, str]) -> DaytonaSandbox:
        return self.blocking(self._acquire(dict(labels)), "acquiring a sandbox")

    def find(self, labels: Mapping[str, str]) -> list[Sandbox]:
        return self.blocking(self._find(dict(labels)), "listing sandboxes")

    def close(self) -> None:
        """Close the client and stop the loop thread (sandboxes from here stop working)."""
        client, self._client = self._client, None
        self._loop.close(_close(client) if client is not None else None)

    def __enter__(self) -> DaytonaProvider:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing shared with DaytonaSandbox ----------------------------------------------

    def blocking(self, coro: Coroutine[Any, Any, T], what: str, secrets: Iterable[str] = ()) -> T:
        """Run `coro` on the private loop; SDK errors come out as SandboxError."""
        try:
            return self._loop.run(coro)
        except SandboxError:
            raise
        except TimeoutError:
            raise SandboxError(f"Daytona took too long while {what}; try again later") from None
        except DaytonaError as exc:
            raise SandboxError(_describe(exc, what, secrets)) from exc

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
                status = _status(exc)
                unavailable = _unavailable(exc)
                if not (unavailable or status == 429) or attempt == self.retry.attempts:
                    raise
                if unavailable and before_retry is not None:
                    await before_retry()
                delay = self.retry.delay(attempt, _retry_after(exc))
                log.warning(
                    "daytona.retry",
                    operation=what,
                    status=status or type(exc).__name__,
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

    # --- acquire / create / find ------------------------------------------------------------

    async def _acquire(self, labels: dict[str, str]) -> DaytonaSandbox:
        for candidate in await self._list(labels):
            if _caller_labels(candidate.labels) != labels:
                continue
            if _state(candidate) in _REPLACE:
                log.info("daytona.sandbox.replacing", sandbox=candidate.id, state=_state(candidate))
                await self.delete_quietly(candidate)
                continue
            try:
                await self.make_ready(candidate)
                sandbox = await self._wrap(candidate)
            except (SandboxError, DaytonaError, TimeoutError) as exc:
                log.warning(
                    "daytona.sandbox.unusable",
                    sandbox=candidate.id,
                    state=_state(candidate),
                    error=str(exc),
                )
                await self.delete_quietly(candidate)
                continue
            log.info("daytona.sandbox.reused", sandbox=candidate.id)
            return sandbox
        created = await self._create(labels)
        try:
            return await self._wrap(created)
        except BaseException:
            await asyncio.shield(self.delete_quietly(created))
            raise

    async def _find(self, labels: dict[str, str]) -> list[Sandbox]:
        found: list[Sandbox] = []
        for item in await self._list(labels):
            home = (
                f"/home/{item.user}"  # the toolbox of a stopped sandbox cannot tell; resume() can
            )
            found.append(
                DaytonaSandbox(self, item, labels=_caller_labels(item.labels), work_dir=home)
            )
        return found

    async def _list(self, labels: Mapping[str, str]) -> list[AsyncSandbox]:
        client = await self.client()
        query = ListSandboxesQuery(labels={**labels, OWNER_LABEL: "1"})

        async def listing() -> list[AsyncSandbox]:
            return [
                s async for s in client.list(query) if _state(s) not in ("destroyed", "destroying")
            ]

        return await self.call("listing sandboxes", listing)

    async def make_ready(self, sandbox: AsyncSandbox) -> None:
        """Bring a sandbox to `started` (start it, or wait for it), or raise SandboxGone."""
        deadline = time.monotonic() + self.timings.start
        while _state(sandbox) in _SETTLING and time.monotonic() < deadline:
            await asyncio.sleep(self.timings.poll_max)
            await self.call("refreshing sandbox state", lambda: sandbox.refresh_data())
        state = _state(sandbox)
        if state == "started":
            return
        if state in _STARTABLE:
            log.info("daytona.sandbox.starting", sandbox=sandbox.id, state=state)
            await self.call(
                "starting a sandbox", lambda: sandbox.start(timeout=0), limit=self.timings.start
            )
        elif state in _COMING_UP:
            await self.call(
                "waiting for a sandbox to start",
                lambda: sandbox.wait_for_sandbox_start(timeout=0),
                limit=self.timings.start,
            )
        else:
            reason = f": {sandbox.error_reason}" if sandbox.error_reason else ""
            raise SandboxGone(f"Daytona sandbox {sandbox.id} is {state}{reason}")

    async def _create(self, labels: dict[str, str]) -> AsyncSandbox:
        client = await self.client()
        settings = self.settings
        attempt = uuid.uuid4().hex
        params = CreateSandboxFromSnapshotParams(
            snapshot=settings.daytona_snapshot,
            os_user="daytona",
            labels={**labels, OWNER_LABEL: "1", ATTEMPT_LABEL: attempt},
            auto_stop_interval=settings.daytona_auto_stop_minutes,
            auto_delete_interval=settings.daytona_auto_delete_minutes,
        )
        limit = settings.daytona_create_timeout
        try:
            sandbox = await self.call(
                "creating a sandbox",
                lambda: client.create(params, timeout=limit),
                limit=limit + self.timings.request,  # backstop; the SDK's own limit comes first
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
        client = await self.client()
        query = ListSandboxesQuery(labels={ATTEMPT_LABEL: attempt})
        try:
            found = await self.call("listing sandboxes", lambda: _collect(client.list(query)))
            if known_id and known_id not in {s.id for s in found}:
                found.append(await self.call("reading a sandbox", lambda: client.get(known_id)))
        except DaytonaNotFoundError:
            return []
        except (DaytonaError, TimeoutError) as exc:
            log.error("daytona.cleanup_failed", attempt=attempt, sandbox=known_id, error=str(exc))
            return []
        leftovers = [_Leftover(s.id, _state(s), s.error_reason) for s in found]
        for sandbox in found:
            await self.delete_quietly(sandbox)
        return leftovers

    async def _wrap(self, sdk: AsyncSandbox) -> DaytonaSandbox:
        sandbox = DaytonaSandbox(self, sdk, labels=_caller_labels(sdk.labels), work_dir="")
        sandbox.work_dir = await sandbox.toolbox("reading the work directory", sdk.get_work_dir)
        return sandbox


class DaytonaSandbox(Sandbox):
    """One Daytona sandbox. Paths are absolute inside it or relative to `work_dir`."""

    def __init__(
        self,
        provider: DaytonaProvider,
        sdk: AsyncSandbox,
        *,
        labels: Mapping[str, str],
        work_dir: str,
    ) -> None:
        super().__init__(labels=labels, work_dir=work_dir)
        self._provider = provider
        self._sdk = sdk

    @property
    def id(self) -> str:
        return self._sdk.id

    @property
    def state(self) -> str:
        """The last state seen (refreshed by lifecycle calls and recoveries)."""
        return _state(self._sdk)

    # --- commands -------------------------------------------------------------------------

    def _run(
        self, command: str, *, cwd: str, env: dict[str, str], timeout: float | None
    ) -> RawResult:
        return self._blocking(self._run_async(command, cwd, env, timeout), "running a command")

    async def _run_async(
        self, command: str, cwd: str, env: dict[str, str], seconds: float | None
    ) -> RawResult:
        limit = seconds if seconds and seconds > 0 else self._provider.settings.command_timeout
        clip = f"open-swe-clip-{uuid.uuid4().hex}"
        script = _session_script(command, cwd=self._abs(cwd), env=env, limit=limit, clip=clip)
        process = self._sdk.process
        session = f"open-swe-{uuid.uuid4().hex}"
        await self.toolbox("opening a command session", lambda: process.create_session(session))
        try:
            started = time.monotonic()
            command_id = await self.toolbox(
                "starting a command", lambda: self._start_command(session, script)
            )
            deadline = started + limit + self._provider.timings.kill_grace
            exit_code = await self._wait_for_exit(session, command_id, deadline)
            output = await self._output(session, command_id, best_effort=exit_code is None)
        finally:
            await self._end_session(session)
        clipped = _unclip(output, clip)
        if exit_code is None:
            return RawResult(TIMEOUT_EXIT_CODE, clipped, timed_out=True)
        elapsed = time.monotonic() - started
        timed_out = exit_code in (TIMEOUT_EXIT_CODE, _KILLED_EXIT) and elapsed >= limit
        return RawResult(exit_code, clipped, timed_out=timed_out)

    async def _start_command(self, session: str, script: str) -> str:
        process = self._sdk.process
        request = SessionExecuteRequest(command=script, run_async=True)
        try:
            return (await process.execute_session_command(session, request)).cmd_id
        except DaytonaError as exc:
            if not _unavailable(exc):
                raise
            # The daemon may have started it before the proxy gave up: adopt, never run twice.
            try:
                known = (await process.get_session(session)).commands
            except DaytonaError:
                raise exc from None
            if known:
                return known[-1].id
            raise

    async def _wait_for_exit(self, session: str, command_id: str, deadline: float) -> int | None:
        """The command's exit code, or None when the deadline passed first."""
        timings = self._provider.timings
        delay = timings.poll_initial
        while True:
            status = await self.toolbox(
                "checking on a command",
                lambda: self._sdk.process.get_session_command(session, command_id),
            )
            if status.exit_code is not None:
                return status.exit_code
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, timings.poll_max)

    async def _output(self, session: str, command_id: str, *, best_effort: bool) -> str:
        try:
            logs = await self.toolbox(
                "reading command output",
                lambda: self._sdk.process.get_session_command_logs(session, command_id),
            )
        except (DaytonaError, TimeoutError):
            if not best_effort:
                raise
            return ""
        return (logs.stdout or "") + (logs.stderr or "")

    async def _end_session(self, session: str) -> None:
        # Ending the session kills whatever the command left running.
        try:
            await self._provider.call(
                "closing a command session", lambda: self._sdk.process.delete_session(session)
            )
        except (DaytonaError, TimeoutError) as exc:
            log.warning("daytona.session_not_closed", sandbox=self.id, error=str(exc))

    # --- files ----------------------------------------------------------------------------

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        responses = [FileUploadResponse(path=path) for path, _ in files]
        if files:
            errors = self._blocking(self._upload_all(files), "uploading files")
            for index, error in errors.items():
                responses[index].error = error
        return responses

    async def _upload_all(self, files: list[tuple[str, bytes]]) -> dict[int, str]:
        located = await self._locate([path for path, _ in files])
        errors = {i: error for i, (_, error) in enumerate(located) if error is not None}
        pending = [
            (i, FileUpload(source=data, destination=target))
            for i, ((target, _), (_, data)) in enumerate(zip(located, files, strict=True))
            if target is not None
        ]
        if pending:
            errors.update(await self._upload(pending))
        return errors

    async def _upload(self, pending: list[tuple[int, FileUpload]]) -> dict[int, str]:
        fs, limit = self._sdk.fs, self._provider.timings.transfer
        try:
            await self.toolbox(
                "uploading files", lambda: fs.upload_files([u for _, u in pending]), limit=limit
            )
            return {}
        except DaytonaError as exc:
            if _status(exc) != 400:
                raise
            if len(pending) == 1:
                return {pending[0][0]: _file_error(exc.message, None, self._secrets)}
        # The bulk call fails as a whole: upload one by one to tell which files failed.
        errors: dict[int, str] = {}
        for index, upload in pending:
            errors.update(await self._upload([(index, upload)]))
        return errors

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        if not paths:
            return []
        found = self._blocking(self._download_all(paths), "downloading files")
        return [
            FileDownloadResponse(path=path, content=content, error=error)
            for path, (content, error) in zip(paths, found, strict=True)
        ]

    async def _download_all(self, paths: list[str]) -> list[tuple[bytes | None, str | None]]:
        located = await self._locate(paths)
        targets = sorted({target for target, _ in located if target is not None})
        results = await self._download(targets) if targets else {}
        return [(None, error) if target is None else results[target] for target, error in located]

    async def _locate(self, paths: list[str]) -> list[tuple[str | None, str | None]]:
        """(real path, None) for each path inside work_dir, else (None, error).

        Symlinks are resolved inside the sandbox, so a link cannot lead a file operation out
        of work_dir (commands are not confined: the sandbox itself is the boundary).
        """
        located: list[tuple[str | None, str | None]] = []
        for path in paths:
            if not path or any(c in path for c in "\0\n") or path.endswith("/"):
                located.append((None, "invalid_path"))
            elif not _within(self.work_dir, self._abs(path)):
                located.append((None, OUTSIDE_WORK_DIR))
            else:
                located.append((self._abs(path), None))
        wanted = [target for target, _ in located if target is not None]
        if not wanted:
            return located
        command = shlex.join(["realpath", "-m", "--", self.work_dir, *wanted])
        process = self._sdk.process
        answer = await self.toolbox("resolving paths", lambda: process.exec(command, timeout=60))
        lines = answer.result.split("\n")
        if answer.exit_code != 0 or len(lines) < len(wanted) + 1:
            raise SandboxError(f"cannot resolve paths in the sandbox: {answer.result.strip()}")
        root, real = lines[0], iter(lines[1:])
        return [
            (None, error) if target is None else _confined(root, next(real))
            for target, error in located
        ]

    async def _download(self, targets: list[str]) -> dict[str, tuple[bytes | None, str | None]]:
        fs = self._sdk.fs
        requests = [FileDownloadRequest(source=t) for t in targets]
        answers = await self.toolbox(
            "downloading files",
            lambda: fs.download_files(requests),
            limit=self._provider.timings.transfer,
        )
        results: dict[str, tuple[bytes | None, str | None]] = {}
        for answer in answers:
            if answer.error is None and isinstance(answer.result, bytes):
                results[answer.source] = (answer.result, None)
            else:
                details = answer.error_details
                code = details.status_code if details else None
                message = answer.error or "no data received"
                results[answer.source] = (None, _file_error(message, code, self._secrets))
        return results

    def _write_preflight(self, file_path: str) -> WriteResult | None:
        # deepagents makes parent directories with a command; upload_files makes them itself,
        # and refuses a path outside work_dir before anything is created for it.
        return None

    async def _awrite_preflight(self, file_path: str) -> WriteResult | None:
        return None

    def edit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        if len(old_string.encode()) + len(new_string.encode()) <= _INLINE_EDIT_BYTES:
            return super().edit(file_path, old_string, new_string, replace_all)
        [download] = self.download_files([file_path])
        if download.content is None:
            return EditResult(error=f"Error editing file '{file_path}': {download.error}")
        try:
            content = download.content.decode("utf-8")
        except UnicodeDecodeError:
            return EditResult(error=f"Error editing file '{file_path}': not UTF-8 text")
        replaced = perform_string_replacement(content, old_string, new_string, replace_all)
        if isinstance(replaced, str):
            return EditResult(error=replaced)
        new_content, occurrences = replaced
        [upload] = self.upload_files([(file_path, new_content.encode("utf-8"))])
        if upload.error:
            return EditResult(error=f"Error editing file '{file_path}': {upload.error}")
        return EditResult(path=file_path, occurrences=occurrences)

    async def aedit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        return await asyncio.to_thread(self.edit, file_path, old_string, new_string, replace_all)

    # --- git ------------------------------------------------------------------------------

    def clone(
        self,
        url: str,
        dest: str,
        *,
        branch: str | None = None,
        credentials: GitCredentials | None = None,
    ) -> None:
        check_url(url)
        if credentials is not None:
            self.add_secret(credentials.password)
        target, where = self._abs(dest), public_url(url)
        log.info("daytona.git.clone", sandbox=self.id, url=where, repo=target, branch=branch)
        git, user, password = self._sdk.git, _user(credentials), _password(credentials)

        async def clone() -> None:
            await self.toolbox(
                "cloning",
                lambda: git.clone(url, target, branch=branch, username=user, password=password),
                limit=self._provider.timings.transfer,
                before_retry=lambda: self._remove(target),  # a retry needs an empty destination
            )

        try:
            self._blocking(clone(), f"cloning {where}")
        except SandboxError as exc:
            raise _clone_failure(exc, where, branch, self._secrets) from exc.__cause__

    def commit(self, repo: str, message: str, *, author: GitIdentity) -> str | None:
        path = self._abs(repo)
        return self._blocking(self._commit(path, message, author), f"committing in {path}")

    async def _commit(self, path: str, message: str, author: GitIdentity) -> str | None:
        git = self._sdk.git
        await self.toolbox("staging changes", lambda: git.add(path, ["."]))
        if not await self._has_staged(path):
            return None

        async def commit_once() -> str:
            try:
                return (await git.commit(path, message, author.name, author.email)).sha
            except DaytonaError as exc:
                # After a 502 the commit may have gone through: staged changes gone means it did.
                if not _unavailable(exc) or await self._has_staged(path):
                    raise
                return await self._head(path)

        sha = await self.toolbox("committing", commit_once)
        log.info("daytona.git.commit", sandbox=self.id, repo=path, sha=sha)
        return sha

    def push(self, repo: str, branch: str, *, credentials: GitCredentials | None = None) -> None:
        if credentials is not None:
            self.add_secret(credentials.password)
        path = self._abs(repo)
        log.info("daytona.git.push", sandbox=self.id, repo=path, branch=branch)
        git, user, password = self._sdk.git, _user(credentials), _password(credentials)

        async def push() -> None:
            # Pushing the same ref again is harmless, so a 502 is simply retried. Never forced.
            await self.toolbox(
                "pushing",
                lambda: git.push(path, username=user, password=password, branch=branch),
                limit=self._provider.timings.transfer,
            )

        try:
            self._blocking(push(), f"pushing {branch}")
        except SandboxError as exc:
            raise _push_failure(exc, branch, self._secrets) from exc.__cause__

    async def _has_staged(self, path: str) -> bool:
        status = await self.toolbox("reading git status", lambda: self._sdk.git.status(path))
        return any(
            _status_name(f.staging) not in ("Unmodified", "Untracked") for f in status.file_status
        )

    async def _head(self, path: str) -> str:
        result = await self._run_async("git rev-parse HEAD", path, {}, 60)
        return str(result.output).strip()

    async def _remove(self, path: str) -> None:
        await self._recover()
        with contextlib.suppress(DaytonaNotFoundError):
            await self._provider.call(
                "removing a partial clone", lambda: self._sdk.fs.delete_file(path, recursive=True)
            )

    # --- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._blocking(self._stop(), "stopping the sandbox")
        log.info("daytona.sandbox.stopped", sandbox=self.id)

    async def _stop(self) -> None:
        sdk, timings = self._sdk, self._provider.timings
        try:
            await self._provider.call(
                "stopping a sandbox", lambda: sdk.stop(timeout=0), limit=timings.stop
            )
        except DaytonaNotFoundError:
            raise SandboxGone(f"Daytona sandbox {self.id} no longer exists") from None

    def resume(self) -> None:
        self._blocking(self._resume(), "resuming the sandbox")

    async def _resume(self) -> None:
        provider, sdk = self._provider, self._sdk
        try:
            await provider.call("refreshing sandbox state", lambda: sdk.refresh_data())
            await provider.make_ready(sdk)
        except DaytonaNotFoundError:
            await provider.delete_quietly(sdk)  # a 404 can also mean archived: make sure it is gone
            raise SandboxGone(f"Daytona sandbox {self.id} no longer exists") from None
        except SandboxGone:
            await provider.delete_quietly(sdk)
            raise
        self.work_dir = await self.toolbox("reading the work directory", sdk.get_work_dir)

    def destroy(self) -> None:
        self._blocking(self._provider.delete_quietly(self._sdk), "deleting the sandbox")

    # --- plumbing -------------------------------------------------------------------------

    async def toolbox(
        self,
        what: str,
        operation: Callable[[], Awaitable[T]],
        *,
        limit: float | None = None,
        before_retry: Callable[[], Awaitable[object]] | None = None,
    ) -> T:
        """A toolbox call: retried like any call, and recovered once after a proxy 404."""
        hook = before_retry or self._recover
        try:
            return await self._provider.call(what, operation, limit=limit, before_retry=hook)
        except DaytonaNotFoundError as exc:
            # The daemon's own 404s (file, repo, session) are answers; the proxy's mean the
            # sandbox is not running (archived sandboxes answer like this) or is gone.
            if exc.source == SOURCE_DAEMON or not await self._recover():
                raise
        return await self._provider.call(what, operation, limit=limit, before_retry=hook)

    async def _recover(self) -> bool:
        """Refresh state; start the sandbox if it stopped. True when it had to be started."""
        provider, sdk = self._provider, self._sdk
        try:
            await asyncio.wait_for(sdk.refresh_data(), provider.timings.request)
        except DaytonaNotFoundError:
            raise SandboxGone(f"Daytona sandbox {self.id} no longer exists") from None
        except (DaytonaError, TimeoutError):
            return False  # could not tell (Daytona itself is struggling): just retry
        if _state(sdk) == "started":
            return False
        log.warning("daytona.sandbox.recovering", sandbox=self.id, state=_state(sdk))
        await provider.make_ready(sdk)
        return True

    def _blocking(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        return self._provider.blocking(coro, what, self._secrets)

    def _abs(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.work_dir, path))


# --- helpers ---------------------------------------------------------------------------------


def _state(sandbox: AsyncSandbox) -> str:
    state = sandbox.state
    return str(getattr(state, "value", state) or "unknown")


def _caller_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if k not in _INTERNAL_LABELS}


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind an SDK error (some paths only keep it on the cause)."""
    seen: BaseException | None = exc
    while seen is not None:
        status = getattr(seen, "status_code", None) or getattr(seen, "status", None)
        if isinstance(status, int):
            return status
        seen = seen.__cause__
    return None


def _unavailable(exc: DaytonaError) -> bool:
    """502/503 or a dropped connection: the request may or may not have been carried out."""
    return _status(exc) in _UNAVAILABLE or isinstance(exc, DaytonaConnectionError)


def _retry_after(exc: DaytonaError) -> float | None:
    for name, value in (exc.headers or {}).items():
        if name.lower() == "retry-after":
            return parse_retry_after(str(value))
    return None


def _status_name(status: object) -> str:
    return str(getattr(status, "value", status))


async def _close(client: AsyncDaytona) -> None:
    await client.close()  # type: ignore[no-untyped-call]


async def _collect(items: Any) -> list[AsyncSandbox]:
    return [item async for item in items]


def _session_script(
    command: str, *, cwd: str, env: Mapping[str, str], limit: float, clip: str
) -> str:
    """The script a session runs (as `sh -c`, so its `exit` cannot end the session's shell).

    The command gets `sh -c` semantics, closed stdin, stderr into stdout, and `timeout -k`
    killing its whole process group (when the image has timeout(1); our deadline remains).
    Its output goes to a file; what comes back is all of it, or its head and tail around a
    `clip` line counting what was left out, so a command printing gigabytes costs megabytes.
    """
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise SandboxError(f"invalid environment variable name {name!r}")
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in env.items())
    inner = f"sh -c {shlex.quote(command)}"
    seconds, keep = max(1, math.ceil(limit)), STREAM_KEEP_BYTES
    script = f"""out=$(mktemp) || exit 125
{{ cd -- {shlex.quote(cwd)} && if command -v timeout >/dev/null 2>&1; \\
then env {assignments}timeout -k 5 {seconds} {inner}; \\
else env {assignments}{inner}; fi; }} </dev/null >"$out" 2>&1
rc=$?
size=$(wc -c <"$out")
if [ "$size" -le {2 * keep} ]; then cat "$out"; else
middle=$((size - {2 * keep}))
lines=$(tail -c +{keep + 1} "$out" | head -c "$middle" | wc -l)
head -c {keep} "$out"; printf '\\n%s %s %s\\n' {clip} "$middle" "$lines"; tail -c {keep} "$out"
fi
rm -f "$out"
exit "$rc"
"""
    return f"sh -c {shlex.quote(script)}"


def _unclip(output: str, clip: str) -> str | Clipped:
    """The output, or its head and tail when the script cut the middle (see _session_script)."""
    start = output.find(f"\n{clip} ")
    if start < 0:
        return output
    end = output.find("\n", start + 1)
    _, middle, lines = output[start + 1 : end].split()
    head, tail = output[:start].encode(), output[end + 1 :].encode()
    return Clipped(head, tail, omitted_chars=int(middle), omitted_lines=int(lines))


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _confined(root: str, real: str) -> tuple[str | None, str | None]:
    return (real, None) if _within(root, real) else (None, OUTSIDE_WORK_DIR)


def _file_error(message: str, status: int | None, secrets: Iterable[str]) -> str:
    """deepagents' error codes where the daemon's answer maps to one, else the message."""
    text = message.lower()
    if "is a directory" in text:
        return "is_directory"
    if status == 404 or "not found" in text or "no such file" in text:
        return "file_not_found"
    if status == 403 or "permission denied" in text or "access denied" in text:
        return "permission_denied"
    if "not a directory" in text or "invalid" in text:
        return "invalid_path"
    return _scrub(message, secrets)


def _user(credentials: GitCredentials | None) -> str | None:
    return credentials.username if credentials else None


def _password(credentials: GitCredentials | None) -> str | None:
    return credentials.password if credentials else None


def _git_answer(exc: SandboxError) -> DaytonaError | None:
    """The daemon's answer behind a failed git call (None: the failure was elsewhere)."""
    cause = exc.__cause__
    if isinstance(cause, DaytonaError) and cause.source == SOURCE_DAEMON:
        return cause
    return None


def _clone_failure(
    exc: SandboxError, where: str, branch: str | None, secrets: Iterable[str]
) -> SandboxError:
    answer = _git_answer(exc)
    if answer is None:
        return exc
    status, message = _status(answer), _scrub(answer.message, secrets)
    if branch and status == 404 and re.search(r"remote ref|branch", message, re.IGNORECASE):
        return SandboxError(f"cannot clone {where}: branch {branch!r} does not exist")
    if status in (401, 403, 404):
        # GitHub answers 404 for a private repository the token cannot read.
        return SandboxError(
            f"cannot clone {where}: the repository does not exist "
            "or these credentials cannot read it"
        )
    return SandboxError(f"cannot clone {where}: {message}")


def _push_failure(exc: SandboxError, branch: str, secrets: Iterable[str]) -> SandboxError:
    answer = _git_answer(exc)
    if answer is None:
        return exc
    status, message = _status(answer), _scrub(answer.message, secrets)
    if status == 409:
        return SandboxError(
            f"push of {branch!r} was rejected: the remote branch has commits this one lacks "
            "(open-swe never force-pushes)"
        )
    if status in (401, 403):
        return SandboxError(
            f"push of {branch!r} failed: the credentials were refused (the installation token "
            "may have expired or lack permission to push)"
        )
    return SandboxError(f"push of {branch!r} failed: {message}")


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _describe(exc: DaytonaError, what: str, secrets: Iterable[str]) -> str:
    """A message a person can act on, for an SDK error that ended an operation."""
    status, message = _status(exc), _scrub(exc.message or str(exc) or type(exc).__name__, secrets)
    if status == 401:
        return "Daytona rejected the API key (401): check DAYTONA_API_KEY and DAYTONA_API_URL"
    if status == 429:
        return (
            f"Daytona kept rate-limiting requests while {what} (429) after retries: lower "
            "OPEN_SWE_MAX_CONCURRENT_RUNS or try again later"
        )
    if isinstance(exc, DaytonaConnectionError):
        return (
            f"Could not reach Daytona while {what} ({message}): check DAYTONA_API_URL and the "
            "network"
        )
    if status in _UNAVAILABLE:
        return (
            f"Daytona was unavailable (HTTP {status}) while {what}, after retries; try again later"
        )
    return f"Daytona error while {what}: {message}"


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
            f"Daytona did not start a sandbox within {settings.daytona_create_timeout:.0f} s "
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
    if _status(exc) == 400 and "snapshot" in message.lower():
        return SandboxError(
            f"Daytona snapshot {snapshot} not found or inactive ({message}): create it in the "
            f"Daytona dashboard or activate it with Daytona().snapshot.activate('{snapshot}'), "
            "or point OPEN_SWE_DAYTONA_SNAPSHOT at an active snapshot"
        )
    if isinstance(exc, SandboxError):
        return exc
    if isinstance(exc, DaytonaError):
        return SandboxError(_describe(exc, "creating a sandbox", ()) + cleaned)
    return exc
