"""The sandbox interface every backend implements and everything above it uses.

A `Sandbox` is a deepagents sandbox backend (so the agent's file and shell tools come for
free from `deepagents`) plus what open-swe needs on top: commands with a working directory,
environment and timeout, git with credentials that never touch `.git/config`, labels for
reuse, and lifecycle (stop, resume, delete). Backends implement the `_`-prefixed primitives;
this class owns output hygiene (ANSI stripping, head/tail truncation, secret redaction) so
that no backend can forget it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping

from deepagents.backends.protocol import EditResult, ExecuteResponse, WriteResult
from deepagents.backends.sandbox import BaseSandbox
from deepagents.backends.utils import perform_string_replacement

from app.sandbox.output import clean_output
from app.sandbox.types import (
    COMMAND_ENV,
    DEFAULT_OUTPUT_LIMIT,
    NETWORK_POLICIES,
    OUTSIDE_WORK_DIR,
    TOOL_OUTPUT_LIMIT,
    CommandResult,
    GitCredentials,
    GitIdentity,
    NetworkPolicy,
    PathOutsideSandbox,
    RawResult,
    SandboxError,
    SandboxGone,
    SandboxProvider,
    capped,
    granted,
)
from app.transcript import Stopwatch, commands_recorded, current

# What callers name without a sandbox lives in app.sandbox.types (no deepagents there); it is
# re-exported here for the code that already holds sandboxes.
__all__ = [
    "COMMAND_ENV",
    "DEFAULT_OUTPUT_LIMIT",
    "NETWORK_POLICIES",
    "OUTSIDE_WORK_DIR",
    "TOOL_OUTPUT_LIMIT",
    "CommandResult",
    "GitCredentials",
    "GitIdentity",
    "NetworkPolicy",
    "PathOutsideSandbox",
    "RawResult",
    "Sandbox",
    "SandboxError",
    "SandboxGone",
    "SandboxProvider",
    "capped",
    "granted",
]


class Sandbox(BaseSandbox, ABC):
    """One isolated workspace. Paths are absolute inside the sandbox or relative to work_dir."""

    #: Edits whose old and new strings together exceed this many bytes are done here, through
    #: download_files/upload_files: deepagents passes them through temp files in /tmp, outside
    #: work_dir where file operations may not go.
    inline_edit_bytes = 50_000
    #: True when the provider made this sandbox for the caller (False: an existing one reused).
    created = False

    def __init__(
        self,
        *,
        labels: Mapping[str, str],
        work_dir: str,
        secrets: Iterable[str] = (),
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        network_ceiling: NetworkPolicy = "always",
    ) -> None:
        self.labels = dict(labels)
        self.work_dir = work_dir
        self.output_limit = output_limit
        self.network_ceiling = network_ceiling  # the server's OPEN_SWE_SANDBOX_NETWORK
        self._secrets: set[str] = {s for s in secrets if s}

    # --- secrets ---------------------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """Register a value (e.g. an installation token) to be redacted from all output."""
        if value:
            self._secrets.add(value)

    # --- network ---------------------------------------------------------------------

    def set_network_policy(self, wanted: NetworkPolicy) -> NetworkPolicy:
        """Decide the network of this sandbox's commands for the run (the repository's wish,
        capped by the server's ceiling); returns the policy in force. Only the workflow calls
        this: the agent's tools reach `execute`, which never asks for the network."""
        policy = capped(wanted, self.network_ceiling)
        self._set_network_policy(policy)
        return policy

    @property
    @abstractmethod
    def network_policy(self) -> NetworkPolicy:
        """The policy in force ("none" until a run sets one)."""

    def offline_reason(self) -> str | None:
        """Why a command that asks for the network would run without it although the policy
        grants it (e.g. no user-mode network stack installed); None otherwise."""
        return None

    # --- commands --------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        output_limit: int | None = None,
        networked: bool = False,
    ) -> CommandResult:
        """Run a shell command; output comes back cleaned and bounded (default: output_limit).

        networked: the command may use the network (the setup script); the sandbox grants it
        only as its network policy says (see `granted`).
        """
        full_env = {**COMMAND_ENV, **(env or {})}
        watch = Stopwatch()
        raw = self._run(
            command, cwd=cwd or self.work_dir, env=full_env, timeout=timeout, networked=networked
        )
        limit = self.output_limit if output_limit is None else output_limit
        text, truncated = clean_output(raw.output, limit=limit, secrets=self._secrets)
        if commands_recorded():  # the run's transcript: what ran, how it ended (redacted)
            current().emit(
                "command",
                command=command,
                exit_code=raw.exit_code,
                timed_out=raw.timed_out,
                seconds=watch.seconds,
                output=text,
            )
        return CommandResult(raw.exit_code, text, raw.timed_out, truncated)

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        """deepagents' entry point for the agent's shell tool."""
        result = self.run(
            command, timeout=timeout, output_limit=max(self.output_limit, TOOL_OUTPUT_LIMIT)
        )
        output = result.output
        if result.timed_out:
            output += f"\n[command timed out after {timeout or 'the default'} seconds]"
        return ExecuteResponse(
            output=output, exit_code=result.exit_code, truncated=result.truncated
        )

    # --- files (bytes; deepagents derives read/write/edit/ls/grep/glob from these) ------

    def read_file(self, path: str) -> bytes:
        [response] = self.download_files([path])
        if response.error == OUTSIDE_WORK_DIR:
            raise PathOutsideSandbox(f"{path} is outside the sandbox work directory")
        if response.error or response.content is None:
            raise SandboxError(f"cannot read {path}: {response.error}")
        return response.content

    def write_file(self, path: str, data: bytes) -> None:
        [response] = self.upload_files([(path, data)])
        if response.error == OUTSIDE_WORK_DIR:
            raise PathOutsideSandbox(f"{path} is outside the sandbox work directory")
        if response.error:
            raise SandboxError(f"cannot write {path}: {response.error}")

    def _write_preflight(self, file_path: str) -> WriteResult | None:
        """Nothing to prepare: upload_files makes parent directories itself, and refuses a
        path outside work_dir before anything is created for it (deepagents runs mkdir)."""
        return None

    async def _awrite_preflight(self, file_path: str) -> WriteResult | None:
        return self._write_preflight(file_path)

    def edit(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
    ) -> EditResult:
        if len(old_string.encode()) + len(new_string.encode()) <= self.inline_edit_bytes:
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

    # --- git -------------------------------------------------------------------------

    @abstractmethod
    def clone(
        self,
        url: str,
        dest: str,
        *,
        branch: str | None = None,
        credentials: GitCredentials | None = None,
    ) -> None:
        """Clone url into dest (relative to work_dir). Credentials never persist in .git/config."""

    @abstractmethod
    def commit(self, repo: str, message: str, *, author: GitIdentity) -> str | None:
        """Stage everything and commit; the new commit's sha, or None when nothing changed."""

    @abstractmethod
    def push(self, repo: str, branch: str, *, credentials: GitCredentials | None = None) -> None:
        """Push branch to origin (never forced)."""

    # --- lifecycle -------------------------------------------------------------------

    @abstractmethod
    def stop(self) -> None:
        """Release compute, keep the workspace (for a run waiting on a person)."""

    @abstractmethod
    def resume(self) -> None:
        """Start a stopped sandbox again; raises SandboxGone when it no longer exists."""

    @abstractmethod
    def destroy(self) -> None:
        """Remove the sandbox and its workspace. Idempotent. (deepagents' delete() is a file op.)"""

    # --- backend primitive ------------------------------------------------------------

    @abstractmethod
    def _run(
        self,
        command: str,
        *,
        cwd: str,
        env: dict[str, str],
        timeout: float | None,
        networked: bool = False,
    ) -> RawResult:
        """Run command with `sh -c` semantics; kill the whole process tree on timeout. It has
        the network only when `granted(self.network_policy, networked)`."""

    @abstractmethod
    def _set_network_policy(self, policy: NetworkPolicy) -> None:
        """Keep (and apply) the policy for this sandbox's later commands."""
