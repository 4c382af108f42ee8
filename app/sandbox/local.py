"""The local sandbox backend: one directory per sandbox on this machine (local mode).

Layout under the provider's root (<data dir>/sandboxes):

    <root>/<id>/sandbox.json   labels, state and the remote of every clone (read by acquire/find,
                               so another process reuses the same sandbox)
    <root>/<id>/work/          work_dir: clones live here; file operations are confined to it
    <root>/<id>/home/          HOME for commands
    <root>/<id>/tmp/           TMPDIR (and /tmp under bubblewrap)
    <root>/<id>/push.git/      a trusted, empty repository that pushes on a clone's behalf

Commands run with a scrubbed environment (PATH, HOME, LANG, TERM=dumb, TMPDIR and what the
caller passes; nothing of this process's environment), as the sandbox user when open-swe runs
as root (local_user.py: work, home and tmp are that user's; the rest is root's), confined to
the sandbox where bubblewrap works (bwrap.py), and offline unless the sandbox's network policy
grants the command the network (usernet.py). A source that is a local repository path is
cloned without hardlinks rather than added as a worktree: a worktree keeps its git directory
inside the user's repository, which a confined command would then need write access to.

Git runs where it is safe. `clone` runs outside the confinement, as this process (the
destination is new, so no repository config can influence it) so that file:// and local sources
work; with a sandbox user, into a directory of ours that is then handed over. `commit` runs
inside (it reads config that code in the sandbox can change: filters, fsmonitor, hooks). `push`
runs outside from push.git, which borrows the clone's objects but not its config, to the remote
recorded at clone time: code in the sandbox cannot redirect the token (url.insteadOf,
remote.*.url) or run anything with it, and only these two commands ever see credentials.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
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
    SandboxProvider,
    granted,
)
from app.sandbox.bwrap import SYSTEM_PATH
from app.sandbox.local_exec import Confinement, OnStart, SandboxDirs, confinement_for
from app.sandbox.local_files import confine, read_files, read_files_as, write_files, write_files_as
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
from app.sandbox.local_user import SandboxUser, hand_over, own
from app.sandbox.output import clean_output
from app.sandbox.process import run_process
from app.sandbox.usernet import TOOLS

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


class LocalProvider(SandboxProvider):
    """Sandboxes as directories under `root`, confined with bubblewrap where it works.

    use_bwrap: None picks bubblewrap when it is installed and starts, True requires it
    (SandboxError otherwise), False never uses it. user: who commands run as (None: this
    process's user; see local_user.sandbox_user). network_ceiling: the most network a run may
    give its sandbox's commands. usernet_tools: user-mode network stacks to try for online
    commands, preferred first. secrets are redacted from every command's output.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        use_bwrap: bool | None = None,
        bwrap_executable: str | None = None,
        user: SandboxUser | None = None,
        network_ceiling: NetworkPolicy = "always",
        usernet_tools: Sequence[str] = TOOLS,
        secrets: Iterable[str] = (),
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        command_timeout: float = 600.0,
        kill_grace: float = 2.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.network_ceiling = network_ceiling
        self._secrets = [s for s in secrets if s]
        self._output_limit = output_limit
        self._command_timeout = command_timeout
        self._kill_grace = kill_grace
        self._running = RunningCommands()
        self._confinement, self.isolation = confinement_for(
            self.root,
            use_bwrap=use_bwrap,
            bwrap_executable=bwrap_executable,
            user=user,
            network_ceiling=network_ceiling,
            usernet_tools=usernet_tools,
        )
        self.confined = self._confinement.bwrap is not None

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
        # With a sandbox user: root's, which the user may only pass through to its own three.
        directory.mkdir(mode=0o700)
        own(directory, None, mode=0o700 if self.user is None else 0o711)
        for name in ("work", "home", "tmp"):
            (directory / name).mkdir(mode=0o700)
            own(directory / name, self.user)
        created = datetime.now(UTC).isoformat()
        state = SandboxState(id=sandbox_id, labels=labels, created_at=created)
        write_state(directory, state)  # last: until now, find() does not see it
        return self._open(directory, state)

    def _open(self, directory: Path, state: SandboxState) -> LocalSandbox:
        return LocalSandbox(
            directory,
            state,
            confinement=self._confinement,
            running=self._running,
            secrets=self._secrets,
            output_limit=self._output_limit,
            command_timeout=self._command_timeout,
            kill_grace=self._kill_grace,
            network_ceiling=self.network_ceiling,
        )


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise SandboxError("sandbox labels must map strings to strings")
    return dict(labels)
