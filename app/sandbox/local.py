"""The local sandbox backend: one directory per sandbox on this machine (local mode).

Layout under the provider's root (OPEN_SWE_LOCAL_PROJECT_PATH, default <data dir>/sandboxes):

    <root>/<id>/sandbox.json   labels, state and the remote of every clone (read by acquire/find,
                               so another process reuses the same sandbox)
    <root>/<id>/work/          work_dir: clones live here; file operations are confined to it
    <root>/<id>/home/          HOME for commands
    <root>/<id>/tmp/           TMPDIR (and /tmp under bubblewrap)
    <root>/<id>/push.git/      a trusted, empty repository that pushes on a clone's behalf

Commands run with a scrubbed environment (PATH, HOME, LANG, TERM=dumb, TMPDIR and what the
caller passes; nothing of this process's environment) and, where bubblewrap works, confined
to the sandbox (see bwrap.py). A source that is a local repository path is cloned without
hardlinks rather than added as a worktree: a worktree keeps its git directory inside the
user's repository, which a confined command would then need write access to (hooks, config).

Git runs where it is safe. `clone` runs outside the confinement (the destination is new, so no
repository config can influence it) so that file:// and local sources work. `commit` runs inside
(it reads config that code in the sandbox can change: filters, fsmonitor, hooks). `push` runs
outside from push.git, which borrows the clone's objects but not its config, to the remote
recorded at clone time: code in the sandbox cannot redirect the token (url.insteadOf,
remote.*.url) or run anything with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from deepagents.backends.protocol import FileDownloadResponse, FileUploadResponse

from app.sandbox import git
from app.sandbox.base import (
    DEFAULT_OUTPUT_LIMIT,
    GitCredentials,
    GitIdentity,
    RawResult,
    Sandbox,
    SandboxError,
    SandboxProvider,
)
from app.sandbox.bwrap import SYSTEM_PATH, Bubblewrap, select_confinement
from app.sandbox.local_files import confine, read_files, write_files
from app.sandbox.local_git import confined_objects, is_local_path, prepare_pusher, valid_branch
from app.sandbox.local_state import (
    RunningCommands,
    SandboxState,
    load_state,
    read_state,
    remove_tree,
    updating_state,
    write_state,
)
from app.sandbox.output import clean_output
from app.sandbox.process import run_process

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


class LocalSandbox(Sandbox):
    """A sandbox directory on this machine. Create it through LocalProvider."""

    def __init__(
        self,
        directory: Path,
        state: SandboxState,
        *,
        bwrap: Bubblewrap | None,
        running: RunningCommands,
        secrets: Iterable[str] = (),
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        command_timeout: float = 600.0,
        kill_grace: float = 2.0,
    ) -> None:
        self.directory = directory
        self._work = directory / "work"
        super().__init__(
            labels=state.labels,
            work_dir=str(self._work),
            secrets=secrets,
            output_limit=output_limit,
        )
        self._id = state.id
        self.created_at = state.created_at
        self._bwrap = bwrap
        self._running = running
        self._command_timeout = command_timeout
        self._kill_grace = kill_grace

    @property
    def id(self) -> str:
        return self._id

    @property
    def confined(self) -> bool:
        return self._bwrap is not None

    # --- state ------------------------------------------------------------------------

    def _updating(self) -> contextlib.AbstractContextManager[SandboxState]:
        return updating_state(self.directory, self._id)

    def _require_started(self) -> SandboxState:
        state = load_state(self.directory, self._id)
        if state.state != "started":
            raise SandboxError(f"sandbox {self._id} is stopped; resume it first")
        return state

    # --- paths ------------------------------------------------------------------------

    def _confine(self, path: str) -> Path:
        return confine(self._work, path)

    # --- commands ---------------------------------------------------------------------

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        home = self.directory / "home"
        env = {
            "PATH": f"{home}/.local/bin:{SYSTEM_PATH}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "TMPDIR": "/tmp" if self._bwrap else str(self.directory / "tmp"),  # noqa: S108
            "GIT_TERMINAL_PROMPT": "0",
        }
        env.update(extra)
        return env

    def _run(
        self, command: str, *, cwd: str, env: dict[str, str], timeout: float | None
    ) -> RawResult:
        self._require_started()
        directory = self._confine(cwd)
        if not directory.is_dir():
            raise SandboxError(f"cannot run a command in {cwd}: no such directory")
        argv = ["/bin/sh", "-c", command]
        if self._bwrap is not None:
            argv = self._bwrap.argv(
                argv,
                work_dir=str(self._work),
                home=str(self.directory / "home"),
                tmp=str(self.directory / "tmp"),
                cwd=str(directory),
            )
        return self._spawn(argv, cwd=directory, env=self._env(env), timeout=timeout)

    def _run_unconfined(
        self, argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float | None = None
    ) -> tuple[RawResult, str]:
        """Run a trusted git command outside the confinement; returns the cleaned output too."""
        raw = self._spawn(argv, cwd=cwd, env=self._env({**git.GIT_ENV, **env}), timeout=timeout)
        text, _ = clean_output(raw.output, limit=self.output_limit, secrets=self._secrets)
        return raw, text

    def _spawn(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float | None
    ) -> RawResult:
        with self._running.track(self._id) as started:

            def register(proc: subprocess.Popen[bytes]) -> None:
                started.append(proc)
                self._running.add(self._id, proc)

            return run_process(
                argv,
                cwd=str(cwd),
                env=env,
                timeout=self._command_timeout if timeout is None else timeout,
                kill_grace=self._kill_grace,
                on_start=register,
            )

    # --- files ------------------------------------------------------------------------

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        self._require_started()
        return write_files(self._work, files)

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        self._require_started()
        return read_files(self._work, paths)

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
        argv = ["git", *git.HARDENING, *git.credential_args(credentials), "clone", *options]
        raw, text = self._run_unconfined(
            [*argv, "--", source, str(target)],
            cwd=self._work,
            env=git.credential_env(credentials),
        )
        if raw.timed_out:
            raise SandboxError(f"cannot clone {git.public_url(url)}: timed out")
        if raw.exit_code != 0:
            raise git.clone_failure(text, url=url, branch=branch)
        with self._updating() as state:
            state.repos[self._relative(target)] = source

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


class LocalProvider(SandboxProvider):
    """Sandboxes as directories under `root`, confined with bubblewrap where it works.

    use_bwrap: None picks bubblewrap when it is installed and starts, True requires it
    (SandboxError otherwise), False never uses it. network=False cuts confined commands off
    the network. secrets are redacted from every command's output.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        use_bwrap: bool | None = None,
        bwrap_executable: str | None = None,
        network: bool = True,
        secrets: Iterable[str] = (),
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        command_timeout: float = 600.0,
        kill_grace: float = 2.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secrets = [s for s in secrets if s]
        self._output_limit = output_limit
        self._command_timeout = command_timeout
        self._kill_grace = kill_grace
        self._running = RunningCommands()
        self._bwrap, self.isolation = select_confinement(
            use_bwrap, bwrap_executable, network=network, root=self.root
        )

    @property
    def confined(self) -> bool:
        return self._bwrap is not None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise acquire across threads and processes sharing this root."""
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def acquire(self, labels: Mapping[str, str]) -> LocalSandbox:
        wanted = _labels(labels)
        with self._locked():
            matches = [box for box in self._scan() if box.labels == wanted]
            if not matches:
                return self._create(wanted)
            box = matches[0]
            box.resume()
            return box

    def find(self, labels: Mapping[str, str]) -> list[Sandbox]:
        wanted = _labels(labels).items()
        return [box for box in self._scan() if wanted <= box.labels.items()]

    def _scan(self) -> list[LocalSandbox]:
        """Every sandbox under root, oldest first (directories without state are skipped)."""
        found = []
        for directory in self.root.iterdir():
            if directory.name.startswith(".") or not directory.is_dir():
                continue
            try:
                found.append(self._open(directory, read_state(directory)))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # half-created, half-removed or not ours
        return sorted(found, key=lambda box: (box.created_at, box.id))

    def _create(self, labels: dict[str, str]) -> LocalSandbox:
        sandbox_id = f"sbx-{uuid.uuid4().hex[:12]}"
        directory = self.root / sandbox_id
        directory.mkdir(mode=0o700)
        for name in ("work", "home", "tmp"):
            (directory / name).mkdir()
        created = datetime.now(UTC).isoformat()
        state = SandboxState(id=sandbox_id, labels=labels, created_at=created)
        write_state(directory, state)  # last: until now, find() does not see it
        return self._open(directory, state)

    def _open(self, directory: Path, state: SandboxState) -> LocalSandbox:
        return LocalSandbox(
            directory,
            state,
            bwrap=self._bwrap,
            running=self._running,
            secrets=self._secrets,
            output_limit=self._output_limit,
            command_timeout=self._command_timeout,
            kill_grace=self._kill_grace,
        )


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise SandboxError("sandbox labels must map strings to strings")
    return dict(labels)
