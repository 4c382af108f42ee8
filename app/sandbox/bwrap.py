"""Confinement of local-sandbox commands with bubblewrap (bwrap), when it is installed and works.

A confined command sees: the system directories read-only (/usr, /bin, /lib*, /sbin, /etc), its
sandbox's work and home directories read-write at their real paths (so paths agree inside and
out), the sandbox's own tmp directory as /tmp, a fresh /proc and /dev, and nothing else: not the
rest of the home directory, not the open-swe checkout or its data. It runs in its own PID
namespace with no capabilities and dies with its parent, so nothing it starts survives the
command. Its network is a private namespace: only `lo` for an offline command; for an online one
the namespace usernet.py built around bubblewrap. Root-only files stay out of reach because
commands never run as root (see local_user.py), not because they are hidden.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.sandbox.local_user import SandboxUser, own
from app.sandbox.types import SandboxError

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_PROBE_TIMEOUT = 10.0
_UNCONFINED = "commands run with a scrubbed environment and this machine's network"


@dataclass(frozen=True)
class Online:
    """What an online command's bubblewrap needs: it starts as root of the namespace
    usernet.py made, so it maps the command back to the sandbox's own uid and gid, and gives it
    a resolv.conf naming the network stack's DNS forwarder."""

    uid: int
    gid: int
    resolv_conf: str


@dataclass(frozen=True)
class Bubblewrap:
    """How to wrap a command; `argv(...)` returns the full command line to execute."""

    executable: str

    def argv(
        self,
        command: Sequence[str],
        *,
        work_dir: str,
        home: str,
        tmp: str,
        cwd: str,
        online: Online | None = None,
    ) -> list[str]:
        """Offline (the default): a network namespace of its own with only `lo`."""
        args = [self.executable, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if online is None:
            args.append("--unshare-net")
        else:
            args += ["--unshare-user", "--uid", str(online.uid), "--gid", str(online.gid)]
        args += _system_mounts()
        if online is not None:
            args += ["--ro-bind", online.resolv_conf, os.path.realpath("/etc/resolv.conf")]
        args += ["--proc", "/proc", "--dev", "/dev"]
        # /tmp first: the sandbox may itself live under /tmp, and later binds go on top.
        args += ["--bind", tmp, "/tmp"]  # noqa: S108 - the sandbox's own tmp directory
        args += ["--bind", work_dir, work_dir, "--bind", home, home]
        args += ["--chdir", cwd, "--", *command]
        return args

    def describe(self, sandboxes_root: str) -> str:
        return (
            f"bubblewrap: commands confined to their sandbox under {sandboxes_root} "
            "(system directories read-only, private /tmp, private network)"
        )


def find_bubblewrap(executable: str | None = None) -> str | None:
    """The bwrap executable: the given path if it exists, else bwrap on the system PATH."""
    if executable is not None:
        return executable if os.access(executable, os.X_OK) else None
    return shutil.which("bwrap", path=SYSTEM_PATH)


def probe(bwrap: Bubblewrap, scratch: str, user: SandboxUser | None = None) -> str | None:
    """Start one confined `true` (as `user`); None when it works, else why not (one line)."""
    try:
        result = subprocess.run(
            bwrap.argv(["/bin/true"], work_dir=scratch, home=scratch, tmp=scratch, cwd=scratch),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
            cwd="/",
            **(user.popen_options() if user is not None else {}),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0:
        return None
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def select_confinement(
    use_bwrap: bool | None, executable: str | None, *, root: Path, user: SandboxUser | None
) -> tuple[Bubblewrap | None, str]:
    """Bubblewrap for the sandboxes under root, or None; and the isolation line to log.

    use_bwrap: None uses bubblewrap when it is found and starts, True requires it
    (SandboxError otherwise), False never uses it.
    """
    if use_bwrap is False:
        return None, f"none: bubblewrap disabled; {_UNCONFINED}"
    found = find_bubblewrap(executable)
    if found is None:
        problem = "bwrap not found"
    else:
        bwrap = Bubblewrap(found)
        with tempfile.TemporaryDirectory(dir=root, prefix=".probe-") as scratch:
            own(Path(scratch), user)
            failure = probe(bwrap, scratch, user)
        if failure is None:
            return bwrap, bwrap.describe(str(root))
        problem = f"bwrap failed to start ({failure})"
    if use_bwrap:
        raise SandboxError(f"bubblewrap is required but {problem}")
    return None, f"none: {problem}; {_UNCONFINED}"


def _system_mounts() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args
