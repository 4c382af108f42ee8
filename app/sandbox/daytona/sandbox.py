"""DaytonaSandbox: commands in toolbox sessions, files through the toolbox file API (kept
inside work_dir), git through the toolbox git API, the network policy (network.py), and
lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from daytona import (
    AsyncSandbox,
    DaytonaError,
    DaytonaNotFoundError,
    SessionExecuteRequest,
)
from daytona.common.errors import SOURCE_DAEMON
from deepagents.backends.protocol import FileDownloadResponse, FileUploadResponse

from app.sandbox.base import (
    GitCredentials,
    GitIdentity,
    NetworkPolicy,
    RawResult,
    Sandbox,
    SandboxError,
    SandboxGone,
    granted,
)
from app.sandbox.daytona.api import DaytonaApi, log, state_of
from app.sandbox.daytona.errors import (
    clone_failure,
    push_failure,
    unavailable,
)
from app.sandbox.daytona.files import DaytonaFiles, in_work_dir
from app.sandbox.daytona.network import DaytonaNetwork, is_open
from app.sandbox.daytona.origin import config_problem, origin_label, reset_script
from app.sandbox.daytona.script import session_script, unclip
from app.sandbox.git import check_url, public_url
from app.sandbox.process import TIMEOUT_EXIT_CODE

T = TypeVar("T")
_KILLED_EXIT = 137  # timeout -k had to SIGKILL


class DaytonaSandbox(Sandbox):
    """One Daytona sandbox. Paths are absolute inside it or relative to `work_dir`."""

    inline_edit_bytes = 10_000  # below deepagents' 50 kB; bigger edits: download, replace, upload

    def __init__(
        self,
        api: DaytonaApi,
        sdk: AsyncSandbox,
        *,
        labels: Mapping[str, str],
        work_dir: str,
    ) -> None:
        super().__init__(
            labels=labels,
            work_dir=work_dir,
            secrets=api.settings.secret_values(),
            network_ceiling=api.settings.sandbox_network,
        )
        self._api = api
        self._sdk = sdk
        self._network = DaytonaNetwork(api, sdk)
        # Found again (another process, a restart): an open sandbox was set to `always`; a
        # restricted one runs everything offline until a run sets its policy.
        self._policy: NetworkPolicy = "always" if is_open(sdk) else "none"
        self._files = DaytonaFiles(
            sdk, self.toolbox, transfer_limit=api.timings.transfer, secrets=self._secrets
        )
        self._origins: dict[str, str] = {}  # repo path -> the URL it was cloned from

    @property
    def id(self) -> str:
        return self._sdk.id

    @property
    def state_of(self) -> str:
        """The last state seen (refreshed by lifecycle calls and recoveries)."""
        return state_of(self._sdk)

    # --- network --------------------------------------------------------------------------

    @property
    def network_policy(self) -> NetworkPolicy:
        return self._policy

    def _set_network_policy(self, policy: NetworkPolicy) -> None:
        self._blocking(self._network.set(open_=policy == "always"), "setting the network")
        self._policy = policy

    # --- commands -------------------------------------------------------------------------

    def _run(
        self,
        command: str,
        *,
        cwd: str,
        env: dict[str, str],
        timeout: float | None,
        networked: bool = False,
    ) -> RawResult:
        run = self._run_async(command, cwd, env, timeout)
        if granted(self._policy, networked):
            run = self._with_network(run)
        return self._blocking(run, "running a command")

    async def _with_network(self, operation: Coroutine[Any, Any, T]) -> T:
        """The operation with the sandbox's network open (see network.py)."""
        try:
            async with self._network.opened():
                return await operation
        finally:
            operation.close()  # not started when opening failed: no "never awaited" warning

    async def _run_async(
        self, command: str, cwd: str, env: dict[str, str], seconds: float | None
    ) -> RawResult:
        limit = seconds if seconds and seconds > 0 else self._api.settings.command_timeout
        clip = f"open-swe-clip-{uuid.uuid4().hex}"
        script = session_script(command, cwd=self._abs(cwd), env=env, limit=limit, clip=clip)
        process = self._sdk.process
        session = f"open-swe-{uuid.uuid4().hex}"
        await self.toolbox("opening a command session", lambda: process.create_session(session))
        try:
            started = time.monotonic()
            command_id = await self.toolbox(
                "starting a command", lambda: self._start_command(session, script)
            )
            deadline = started + limit + self._api.timings.kill_grace
            exit_code = await self._wait_for_exit(session, command_id, deadline)
            output = await self._output(session, command_id, best_effort=exit_code is None)
        finally:
            await self._end_session(session)
        clipped = unclip(output, clip)
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
            if not unavailable(exc):
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
        timings = self._api.timings
        delay = timings.poll_initial
        while True:
            command = await self.toolbox(
                "checking on a command",
                lambda: self._sdk.process.get_session_command(session, command_id),
            )
            if command.exit_code is not None:
                return command.exit_code
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
            await self._api.call(
                "closing a command session", lambda: self._sdk.process.delete_session(session)
            )
        except (DaytonaError, TimeoutError) as exc:
            log.warning("daytona.session_not_closed", sandbox=self.id, error=str(exc))

    # --- files ----------------------------------------------------------------------------

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        responses = [FileUploadResponse(path=path) for path, _ in files]
        if files:
            errors = self._blocking(self._files.upload(self.work_dir, files), "uploading files")
            for index, error in errors.items():
                responses[index].error = error
        return responses

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        if not paths:
            return []
        found = self._blocking(self._files.download(self.work_dir, paths), "downloading files")
        return [
            FileDownloadResponse(path=path, content=content, error=error)
            for path, (content, error) in zip(paths, found, strict=True)
        ]

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
                limit=self._api.timings.transfer,
                before_retry=lambda: self._remove(target),  # a retry needs an empty destination
            )

        try:
            self._blocking(self._with_network(clone()), f"cloning {where}")
        except SandboxError as exc:
            raise clone_failure(exc, where, branch, self._secrets) from exc.__cause__
        self._origins[target] = url
        self._blocking(self._record_origin(target, url), "recording where a clone came from")

    async def _record_origin(self, path: str, url: str) -> None:
        # A label, so a process that acquires this sandbox later knows it too (see origin.py).
        sdk = self._sdk
        labels = {**(sdk.labels or {}), origin_label(path): url}
        await self._api.call("labelling the sandbox", lambda: sdk.set_labels(labels))

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
                if not unavailable(exc) or await self._has_staged(path):
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
            if credentials is not None:
                await self._restore_origin(path)
            # Pushing the same ref again is harmless, so a 502 is simply retried. Never forced.
            await self.toolbox(
                "pushing",
                lambda: git.push(path, username=user, password=password, branch=branch),
                limit=self._api.timings.transfer,
            )

        try:
            self._blocking(self._with_network(push()), f"pushing {branch}")
        except SandboxError as exc:
            raise push_failure(exc, branch, self._secrets) from exc.__cause__

    async def _restore_origin(self, path: str) -> None:
        """Point origin back at the URL the clone came from, or refuse: the daemon pushes
        wherever .git/config says, and the agent can edit it (see origin.py)."""
        url = self._origins.get(path) or (self._sdk.labels or {}).get(origin_label(path))
        if not url:
            raise SandboxError(
                f"cannot push {path} with credentials: this sandbox did not clone it, "
                "so where it may push is unknown"
            )
        await self._run_async(reset_script(url), path, {}, 60)
        config = f"{path}/.git/config"
        try:
            text = await self.toolbox(
                "reading git config", lambda: self._sdk.fs.download_file(config)
            )
        except DaytonaNotFoundError:
            raise SandboxError(f"cannot push {path}: {config} is missing") from None
        problem = config_problem(text.decode("utf-8", "replace"), url)
        if problem is not None:
            raise SandboxError(f"cannot push {path}: its git config was tampered with ({problem})")

    async def _has_staged(self, path: str) -> bool:
        answer = await self.toolbox("reading git status", lambda: self._sdk.git.status(path))
        return any(
            _status_name(f.staging) not in ("Unmodified", "Untracked") for f in answer.file_status
        )

    async def _head(self, path: str) -> str:
        result = await self._run_async("git rev-parse HEAD", path, {}, 60)
        return str(result.output).strip()

    async def _remove(self, path: str) -> None:
        await self._recover()
        with contextlib.suppress(DaytonaNotFoundError):
            await self._api.call(
                "removing a partial clone", lambda: self._sdk.fs.delete_file(path, recursive=True)
            )

    # --- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._blocking(self._stop(), "stopping the sandbox")
        log.info("daytona.sandbox.stopped", sandbox=self.id)

    async def _stop(self) -> None:
        sdk, timings = self._sdk, self._api.timings
        try:
            await self._api.call(
                "stopping a sandbox", lambda: sdk.stop(timeout=0), limit=timings.stop
            )
        except DaytonaNotFoundError:
            raise SandboxGone(f"Daytona sandbox {self.id} no longer exists") from None

    def resume(self) -> None:
        self._blocking(self._resume(), "resuming the sandbox")

    async def _resume(self) -> None:
        api, sdk = self._api, self._sdk
        try:
            await api.call("refreshing sandbox state", lambda: sdk.refresh_data())
            await api.make_ready(sdk)
        except DaytonaNotFoundError:
            await api.delete_quietly(sdk)  # a 404 can also mean archived: make sure it is gone
            raise SandboxGone(f"Daytona sandbox {self.id} no longer exists") from None
        except SandboxGone:
            await api.delete_quietly(sdk)
            raise
        self.work_dir = await self.toolbox("reading the work directory", sdk.get_work_dir)

    def destroy(self) -> None:
        self._blocking(self._api.delete_quietly(self._sdk), "deleting the sandbox")

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
            return await self._api.call(what, operation, limit=limit, before_retry=hook)
        except DaytonaNotFoundError as exc:
            # The daemon's own 404s (file, repo, session) are answers; the proxy's mean the
            # sandbox is not running (archived sandboxes answer like this) or is gone.
            if exc.source == SOURCE_DAEMON or not await self._recover():
                raise
        return await self._api.call(what, operation, limit=limit, before_retry=hook)

    async def _recover(self) -> bool:
        """Refresh state; start the sandbox if it stopped. True when it had to be started."""
        api, sdk = self._api, self._sdk
        try:
            await asyncio.wait_for(sdk.refresh_data(), api.timings.request)
        except DaytonaNotFoundError:
            raise SandboxGone(f"Daytona sandbox {self.id} no longer exists") from None
        except (DaytonaError, TimeoutError):
            return False  # could not tell (Daytona itself is struggling): just retry
        if state_of(sdk) == "started":
            return False
        log.warning("daytona.sandbox.recovering", sandbox=self.id, state=state_of(sdk))
        await api.make_ready(sdk)
        return True

    def _blocking(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        return self._api.blocking(coro, what, self._secrets)

    def _abs(self, path: str) -> str:
        return in_work_dir(self.work_dir, path)


def _user(credentials: GitCredentials | None) -> str | None:
    return credentials.username if credentials else None


def _password(credentials: GitCredentials | None) -> str | None:
    return credentials.password if credentials else None


def _status_name(value: object) -> str:
    return str(getattr(value, "value", value))
