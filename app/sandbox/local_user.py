"""The unprivileged host user local sandbox commands run as when open-swe runs as root.

Commands switch to this user (real uid, gid and no supplementary groups) before anything else
starts, bubblewrap included, so the kernel's own permissions keep them out of root-only files
(/etc/shadow, keys, the data directory when it is private). A user-namespace mapping alone
would not: bubblewrap started by root keeps root's access to files whatever uid it shows.
When open-swe does not run as root it cannot switch, and commands run as its own user.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.sandbox.types import SandboxError

_REACH_TIMEOUT = 10.0


@dataclass(frozen=True)
class SandboxUser:
    name: str
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        """subprocess.Popen arguments that start the child as this user, with no other groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def sandbox_user(name: str) -> SandboxUser | None:
    """The user commands run as: `name` when this process is root, else None (its own user)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(
            f"OPEN_SWE_SANDBOX_USER: there is no user {name!r} on this machine: create one "
            "(useradd --system --no-create-home open-swe-sandbox) or use nobody"
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SandboxError(f"OPEN_SWE_SANDBOX_USER: {name!r} is root; choose an unprivileged user")
    return SandboxUser(name, entry.pw_uid, entry.pw_gid)


def describe(user: SandboxUser | None) -> str:
    if user is None:
        return "as this user (open-swe does not run as root, so it cannot switch users)"
    return f"as user {user.name} (uid {user.uid})"


def check_reachable(user: SandboxUser, directory: Path) -> None:
    """SandboxError unless `user` can enter `directory` (every parent searchable by it)."""
    try:
        result = subprocess.run(
            ["/bin/sh", "-c", 'cd -- "$1"', "sh", str(directory)],
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_REACH_TIMEOUT,
            check=False,
            **user.popen_options(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"cannot start a command as user {user.name}: {exc}") from None
    if result.returncode != 0:
        raise SandboxError(
            f"the sandbox user {user.name} cannot reach {directory}: a parent directory is not "
            "searchable by others; set OPEN_SWE_DATA_DIR to a directory whose parents are "
            "(chmod o+x), such as /var/lib/open-swe"
        )


def own(path: Path, user: SandboxUser | None, *, mode: int = 0o700) -> None:
    """Give a directory open-swe made to the sandbox user (no-op when it cannot switch)."""
    if user is not None:
        os.chown(path, user.uid, user.gid)
    path.chmod(mode)


def give_tree(top: Path, user: SandboxUser) -> None:
    """Hand a tree open-swe made (somewhere the user cannot reach yet) to the user. Links are
    changed themselves, never followed."""
    os.lchown(top, user.uid, user.gid)
    for parent, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.lchown(os.path.join(parent, name), user.uid, user.gid)


def hand_over(staged: Path, target: Path, work: Path, user: SandboxUser) -> None:
    """Move a tree open-swe built where the user cannot reach (so nothing changed it meanwhile)
    to `target` inside `work`, owned by the user. The target's directory is opened first and
    must then lie in `work`: code in the sandbox swapping it for a link cannot send the tree
    (or root's rename) anywhere else."""
    give_tree(staged, user)
    parent = os.open(target.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        where = Path(os.readlink(f"/proc/self/fd/{parent}"))
        if where != work and work not in where.parents:
            raise SandboxError(f"cannot clone into {target}: it moved out of the sandbox")
        try:
            os.rename(staged, target.name, dst_dir_fd=parent)
        except OSError as exc:
            raise SandboxError(f"cannot clone into {target}: {exc.strerror}") from None
    finally:
        os.close(parent)
