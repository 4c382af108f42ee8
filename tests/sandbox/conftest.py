"""Fixtures for the sandbox tests: local providers with and without bubblewrap, as this
process's user and (when the suite runs as root) as an unprivileged sandbox user."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from app.sandbox.bwrap import Bubblewrap, find_bubblewrap, probe
from app.sandbox.local import LocalProvider
from app.sandbox.local_user import SandboxUser, sandbox_user
from tests.unavailable import unavailable


def fast_provider(root: Path, **options: Any) -> LocalProvider:
    """A provider with short waits (kill grace), which keep the suite fast."""
    return LocalProvider(root, command_timeout=30.0, kill_grace=0.5, **options)


def bwrap_problem(scratch: Path) -> str | None:
    executable = find_bubblewrap()
    if executable is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    return probe(Bubblewrap(executable), str(scratch))


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains marker (sleep durations serve as markers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline.split(b"\0"):
                found.append(int(entry))
    return found


@pytest.fixture
def plain_provider(tmp_path: Path) -> LocalProvider:
    return fast_provider(tmp_path / "sandboxes", use_bwrap=False)


@pytest.fixture
def bwrap_provider(tmp_path: Path) -> LocalProvider:
    problem = bwrap_problem(tmp_path)
    if problem is not None:
        unavailable(f"bubblewrap unusable here: {problem}")
    return fast_provider(tmp_path / "sandboxes", use_bwrap=True)


@pytest.fixture
def unprivileged() -> SandboxUser:
    """The user sandboxes switch to; only root can switch (CI runs as root)."""
    user = sandbox_user("nobody")
    if user is None:
        pytest.skip("only root switches to a sandbox user")
    return user


@pytest.fixture
def user_plain_provider(tmp_path: Path, unprivileged: SandboxUser) -> LocalProvider:
    return fast_provider(tmp_path / "sandboxes", use_bwrap=False, user=unprivileged)


@pytest.fixture
def user_bwrap_provider(tmp_path: Path, unprivileged: SandboxUser) -> LocalProvider:
    problem = bwrap_problem(tmp_path)
    if problem is not None:
        unavailable(f"bubblewrap unusable here: {problem}")
    return fast_provider(tmp_path / "sandboxes", use_bwrap=True, user=unprivileged)
