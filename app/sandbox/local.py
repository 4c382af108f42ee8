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
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.sandbox.local_exec import confinement_for
from app.sandbox.local_state import RunningCommands, SandboxState, read_state, write_state
from app.sandbox.local_user import SandboxUser, own
from app.sandbox.types import DEFAULT_OUTPUT_LIMIT, NetworkPolicy, SandboxError, SandboxProvider
from app.sandbox.usernet import TOOLS

if TYPE_CHECKING:
    from app.sandbox.base import Sandbox
    from app.sandbox.local_sandbox import LocalSandbox

__all__ = ["LocalProvider", "LocalSandbox"]


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
        sandbox = self._open(directory, state)
        sandbox.created = True
        return sandbox

    def _open(self, directory: Path, state: SandboxState) -> LocalSandbox:
        # A sandbox is a deepagents backend: imported when the first one is opened, so that a
        # process which only holds the provider (a web-only node) does not import deepagents.
        from app.sandbox.local_sandbox import LocalSandbox

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


def __getattr__(name: str) -> Any:
    """`LocalSandbox` is re-exported here, imported on first use (see `_open`)."""
    if name == "LocalSandbox":
        from app.sandbox.local_sandbox import LocalSandbox

        return LocalSandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
