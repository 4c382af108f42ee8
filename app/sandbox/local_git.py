"""Host-side checks and set-up for the local backend's trusted push (see local.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from app.sandbox.bwrap import SYSTEM_PATH
from app.sandbox.git import GIT_ENV, last_line
from app.sandbox.types import SandboxError

_MAX_ALTERNATES_DEPTH = 5  # git's own limit


def is_local_path(source: str) -> bool:
    """A path on disk rather than a URL or scp-like host:path."""
    return "://" not in source and ":" not in source.split("/", 1)[0]


def valid_branch(branch: str) -> bool:
    result = _git("check-ref-format", f"refs/heads/{branch}")
    return result.returncode == 0 and not branch.startswith("-")


def confined_objects(clone: Path, work: Path, repo: str) -> Path:
    """The clone's object directory, refused when it, an alternate or a symlink inside leads
    out of `work` (a push would otherwise publish objects from elsewhere on this machine)."""
    dot_git = clone / ".git"
    if dot_git.is_symlink() or not dot_git.is_dir():
        raise SandboxError(f"cannot push {repo}: {repo}/.git is not a git directory")
    outside = SandboxError(f"cannot push {repo}: its objects lie outside the sandbox")
    objects = (dot_git / "objects").resolve()
    pending, seen = [(objects, 0)], set()
    while pending:
        directory, depth = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        if work not in directory.parents or depth > _MAX_ALTERNATES_DEPTH:
            raise outside
        if (directory / "info" / "http-alternates").exists():
            raise SandboxError(f"cannot push {repo}: it borrows objects over http")
        if _has_symlink(directory):  # git never makes one; a pack could point anywhere
            raise outside
        alternates = directory / "info" / "alternates"
        if alternates.exists():
            for line in alternates.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    pending.append(((directory / line.strip()).resolve(), depth + 1))
    return objects


def prepare_pusher(pusher: Path, objects: Path) -> Path:
    """A bare repository of our own that borrows `objects` (and nothing else) from a clone."""
    if not (pusher / "HEAD").exists():
        result = _git("init", "--quiet", "--bare", str(pusher))
        if result.returncode != 0:
            message = result.stdout.decode("utf-8", "replace")
            raise SandboxError(f"cannot prepare a push: {last_line(message)}")
    (pusher / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (pusher / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    return pusher


def _has_symlink(directory: Path) -> bool:
    for parent, dirs, files in os.walk(directory):
        if any(os.path.islink(os.path.join(parent, name)) for name in (*dirs, *files)):
            return True
    return False


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        env={"PATH": SYSTEM_PATH, "HOME": "/nonexistent", **GIT_ENV},
    )
