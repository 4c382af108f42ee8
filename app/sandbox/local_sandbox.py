"""LocalSandbox: one sandbox directory on this machine (see local.py for the layout and the
provider). Commands run through the provider's Confinement (local_exec.py); file operations are
confined to work/ (local_files.py); git clones and pushes run outside the confinement, as this
process, and only they see credentials (the reasons are in local.py's docstring).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from deepagents.backends.protocol import FileDownloadResponse, FileUploadResponse

from app.sandbox import git
from app.sandbox.base import (
    DEFAULT_OUTPUT_LIMIT,
    GitCredentials,
    GitIdentity,
    NetworkPolicy,
    RawResult,
    Sandbox,
    SandboxError,
    granted,
)
from app.sandbox.bwrap import SYSTEM_PATH
from app.sandbox.local_exec import Confinement, OnStart, SandboxDirs
from app.sandbox.local_files import confine, read_files, read_files_as, write_files, write_files_as
from app.sandbox.local_git import confined_objects, is_local_path, prepare_pusher, valid_branch
from app.sandbox.local_state import (
    RunningCommands,
    SandboxState,
    load_state,
    remove_tree,
    updating_state,
)
from app.sandbox.local_user import hand_over
from app.sandbox.output import clean_output
from app.sandbox.process import run_process

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_FILE_TIMEOUT = 120.0


class LocalSandbox(Sandbox):
    """A sandbox directory on this machine. Create it through LocalProvider."""

    def __init__(
        self,
        directory: Path,
        state: SandboxState,
        *,
        confinement: Confinement,
        running: RunningCommands,
        secrets: Iterable[str] = (),
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        command_timeout: float = 600.0,
        kill_grace: float = 2.0,
        network_ceiling: NetworkPolicy = "always",
    ) -> None:
        self.directory = directory
        self._work = directory / "work"
        self._dirs = SandboxDirs(self._work, directory / "home", directory / "tmp")
        super().__init__(
            labels=state.labels,
            work_dir=str(self._work),
            secrets=secrets,
            output_limit=output_limit,
            network_ceiling=network_ceiling,
        )
        self._id = state.id
        self.created_at = state.created_at
        self._confinement = confinement
        self._running = running
        self._command_timeout = command_timeout
        self._kill_grace = kill_grace

    @property
    def id(self) -> str:
        return self._id

    @property
    def confined(self) -> bool:
        return self._confinement.bwrap is not None

    # --- state ------------------------------------------------------------------------

    def _updating(self) -> contextlib.AbstractContextManager[SandboxState]:
        return updating_state(self.directory, self._id)

    def _require_started(self) -> SandboxState:
        state = load_state(self.directory, self._id)
        if state.state != "started":
            raise SandboxError(f"sandbox {self._id} is stopped; resume it first")
        return state

    # --- network ----------------------------------------------------------------------

    @property
    def network_policy(self) -> NetworkPolicy:
        return load_state(self.directory, self._id).network

    def _set_network_policy(self, policy: NetworkPolicy) -> None:
        with self._updating() as state:
            state.network = policy

    def offline_reason(self) -> str | None:
        granting = granted(self.network_policy, networked=True)
        if granting and self.confined and self._confinement.usernet is None:
            return self._confinement.no_usernet
        return None

    # --- paths ------------------------------------------------------------------------

    def _confine(self, path: str) -> Path:
        return confine(self._work, path)

    # --- commands ---------------------------------------------------------------------

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        home = self._dirs.home
        env = {
            "PATH": f"{home}/.local/bin:{SYSTEM_PATH}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "TMPDIR": "/tmp" if self.confined else str(self._dirs.tmp),  # noqa: S108
            "GIT_TERMINAL_PROMPT": "0",
            # git never looks above the sandbox for a repository (the data directory may be
            # inside one, e.g. `open-swe run` keeps it in the repository's .git)
            "GIT_CEILING_DIRECTORIES": str(self.directory),
        }
        env.update(extra)
        return env

    def _run(
        self,
        command: str,
        *,
        cwd: str,
        env: dict[str, str],
        timeout: float | None,
        networked: bool = False,
    ) -> RawResult:
        state = self._require_started()
        directory = self._confine(cwd)
        if not directory.is_dir():
            raise SandboxError(f"cannot run a command in {cwd}: no such directory")
        online = self._confinement.online(granted(state.network, networked))
        with self._running.track(self._id) as started:
            return self._confinement.run(
                ["/bin/sh", "-c", command],
                dirs=self._dirs,
                cwd=directory,
                env=self._env(env),
                timeout=self._command_timeout if timeout is None else timeout,
                kill_grace=self._kill_grace,
                online=online,
                on_start=self._registrar(started),
            )

    def _run_unconfined(
        self, argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float | None = None
    ) -> tuple[RawResult, str]:
        """Run a trusted git command outside the confinement, as this process; returns the
        cleaned output too."""
        with self._running.track(self._id) as started:
            raw = run_process(
                argv,
                cwd=str(cwd),
                env=self._env({**git.GIT_ENV, **env}),
                timeout=self._command_timeout if timeout is None else timeout,
                kill_grace=self._kill_grace,
                on_start=self._registrar(started),
            )
        text, _ = clean_output(raw.output, limit=self.output_limit, secrets=self._secrets)
        return raw, text

    def _registrar(self, started: list[subprocess.Popen[bytes]]) -> OnStart:
        """Record a started process, so stop() and destroy() can end it."""

        def register(proc: subprocess.Popen[bytes]) -> None:
            started.append(proc)
            self._running.add(self._id, proc)

        return register

    # --- files ------------------------------------------------------------------------

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        self._require_started()
        if self._confinement.user is None:
            return write_files(self._work, files)
        return write_files_as(self._work, files, self._exchange)

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        self._require_started()
        if self._confinement.user is None:
            return read_files(self._work, paths)
        return read_files_as(self._work, paths, self._exchange)

    def _exchange(
        self, script: str, path: Path, data: bytes | None
    ) -> subprocess.CompletedProcess[bytes]:
        return self._confinement.exchange(
            script, path, dirs=self._dirs, data=data, timeout=_FILE_TIMEOUT
        )

    # --- git --------------------------------------------------------------------------

    def clone(
        self,
        url: str,
        dest: str,
        *,
        branch: str | None = None,
        credentials: GitCredentials | None = None,
    ) -> None:
        """Clone a URL, or a local repository path (copied, never hardlinked), into dest."""
        self._require_started()
        git.check_url(url)
        target = self._confine(dest)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise SandboxError(f"cannot clone into {dest}: it exists and is not empty")
        source = url
        options = ["--quiet"]
        if is_local_path(url):
            source = str(Path(url).resolve())
            options.append("--no-hardlinks")
        if branch:
            options += ["--branch", branch]
        if credentials is not None:
            self.add_secret(credentials.password)
        with self._clone_destination(target) as into:
            argv = ["git", *git.HARDENING, *git.credential_args(credentials), "clone", *options]
            raw, text = self._run_unconfined(
                [*argv, "--", source, str(into)],
                cwd=into.parent,
                env=git.credential_env(credentials),
            )
            if raw.timed_out:
                raise SandboxError(f"cannot clone {git.public_url(url)}: timed out")
            if raw.exit_code != 0:
                raise git.clone_failure(text, url=url, branch=branch)
        with self._updating() as state:
            state.repos[self._relative(target)] = source

    @contextlib.contextmanager
    def _clone_destination(self, target: Path) -> Iterator[Path]:
        """Where git clones to: the target itself when commands run as this process; else a
        directory of ours that the sandbox user cannot reach, handed over once complete."""
        user = self._confinement.user
        if user is None:
            yield target
            return
        staging = Path(tempfile.mkdtemp(dir=self.directory, prefix=".clone-"))
        try:
            yield staging / "repo"
            hand_over(staging / "repo", target, self._work, user)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def commit(self, repo: str, message: str, *, author: GitIdentity) -> str | None:
        path = self._confine(repo)
        staged = self.run(git.stage_all_command(), cwd=str(path), env=git.GIT_ENV)
        if staged.ok:
            return None
        if staged.exit_code != 1 or staged.timed_out:
            raise SandboxError(f"cannot commit in {repo}: {git.last_line(staged.output)}")
        env = {**git.GIT_ENV, **git.identity_env(author)}
        result = self.run(git.commit_command(message, author), cwd=str(path), env=env)
        sha = result.output.strip().splitlines()[-1] if result.output.strip() else ""
        if not result.ok or not _SHA.fullmatch(sha):
            raise SandboxError(f"cannot commit in {repo}: {git.last_line(result.output)}")
        return sha

    def push(self, repo: str, branch: str, *, credentials: GitCredentials | None = None) -> None:
        """Push branch to the remote recorded when repo was cloned (never forced)."""
        path = self._confine(repo)
        remote = self._require_started().repos.get(self._relative(path))
        if remote is None:
            raise SandboxError(f"cannot push {repo}: it was not cloned by this sandbox")
        if not valid_branch(branch):
            raise SandboxError(f"cannot push {branch!r}: not a valid branch name")
        objects = confined_objects(path, self._work, repo)
        found = self.run(git.branch_sha_command(branch), cwd=str(path), env=git.GIT_ENV)
        sha = found.output.strip()
        if not found.ok or not _SHA.fullmatch(sha):
            raise SandboxError(f"cannot push {branch!r}: there is no such branch in {repo}")
        pusher = prepare_pusher(self.directory / "push.git", objects)
        if credentials is not None:
            self.add_secret(credentials.password)
        argv = ["git", f"--git-dir={pusher}", *git.HARDENING, *git.credential_args(credentials)]
        argv += ["push", "--quiet", "--no-verify", remote, f"{sha}:refs/heads/{branch}"]
        raw, text = self._run_unconfined(
            argv, cwd=self.directory, env=git.credential_env(credentials)
        )
        if raw.timed_out:
            raise SandboxError(f"push of {branch!r} to {git.public_url(remote)} timed out")
        if raw.exit_code != 0:
            raise git.push_failure(text, url=remote, branch=branch)

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self._work))

    # --- lifecycle --------------------------------------------------------------------

    def stop(self) -> None:
        """Mark the sandbox stopped and end its running commands; files stay."""
        with self._updating() as state:
            state.state = "stopped"
        self._running.kill(self._id)

    def resume(self) -> None:
        with self._updating() as state:
            state.state = "started"

    def destroy(self) -> None:
        """End running commands and remove the directory. Idempotent."""
        self._running.kill(self._id)
        remove_tree(self.directory)
