"""What the local backend keeps about each sandbox: its state file, running commands, removal."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.sandbox.process import kill_group
from app.sandbox.types import NETWORK_POLICIES, NetworkPolicy, SandboxGone

STATE_FILE = "sandbox.json"


@dataclass
class SandboxState:
    """Persisted in <sandbox>/sandbox.json, so any process can find and reuse the sandbox."""

    id: str
    labels: dict[str, str]
    created_at: str
    state: str = "started"  # or "stopped"
    repos: dict[str, str] = field(default_factory=dict)  # clone path (relative) -> remote
    network: NetworkPolicy = "none"  # set by the run (Sandbox.set_network_policy)


def read_state(directory: Path) -> SandboxState:
    state = SandboxState(**json.loads((directory / STATE_FILE).read_text()))
    if state.network not in NETWORK_POLICIES:  # never more than we can read
        state.network = "none"
    return state


def write_state(directory: Path, state: SandboxState) -> None:
    """Replace the state file atomically, so a reader never sees half of it."""
    temporary = directory / f".{STATE_FILE}.{uuid.uuid4().hex[:8]}"
    temporary.touch(mode=0o600)  # ours alone: the sandbox user (see local_user.py) reads nothing
    temporary.write_text(json.dumps(asdict(state), indent=2, sort_keys=True))
    os.replace(temporary, directory / STATE_FILE)


def load_state(directory: Path, sandbox_id: str) -> SandboxState:
    """The sandbox's state; SandboxGone once the sandbox has been removed."""
    try:
        return read_state(directory)
    except FileNotFoundError:
        raise SandboxGone(f"sandbox {sandbox_id} no longer exists") from None


@contextlib.contextmanager
def updating_state(directory: Path, sandbox_id: str) -> Iterator[SandboxState]:
    """Read, let the caller change, and write back the state, locked across processes."""
    try:
        handle = (directory / ".lock").open("a")
    except FileNotFoundError:
        raise SandboxGone(f"sandbox {sandbox_id} no longer exists") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        state = load_state(directory, sandbox_id)
        yield state
        write_state(directory, state)


class RunningCommands:
    """Processes running per sandbox in this process, so stop() and destroy() can end them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: dict[str, set[subprocess.Popen[bytes]]] = {}

    @contextlib.contextmanager
    def track(self, sandbox_id: str) -> Iterator[list[subprocess.Popen[bytes]]]:
        """Processes appended to the yielded list are forgotten when the block ends."""
        started: list[subprocess.Popen[bytes]] = []
        try:
            yield started
        finally:
            with self._lock:
                self._procs.get(sandbox_id, set()).difference_update(started)

    def add(self, sandbox_id: str, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.setdefault(sandbox_id, set()).add(proc)

    def kill(self, sandbox_id: str) -> None:
        with self._lock:
            procs = list(self._procs.get(sandbox_id, ()))
        for proc in procs:
            kill_group(proc, signal.SIGKILL)


def remove_tree(directory: Path) -> None:
    """Remove a sandbox directory. It is renamed first, so it vanishes from find() at once,
    even if removing a large tree takes a while or is interrupted. Idempotent."""
    trash = directory.with_name(f".trash-{directory.name}-{uuid.uuid4().hex[:8]}")
    try:
        directory.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, onerror=_force_writable)


def _force_writable(_function: object, path: str, _excinfo: object) -> None:
    """rmtree's error hook: code in the sandbox may have made directories read-only."""
    if not os.path.lexists(path):
        return
    parent = os.path.dirname(path)
    os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        shutil.rmtree(path, onerror=_force_writable)
    else:
        os.unlink(path)
