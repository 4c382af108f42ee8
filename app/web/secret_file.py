"""The dashboard's session secret: OPEN_SWE_SESSION_SECRET, made once and kept in the env file.

Several `serve` processes may start at once on one machine; they must all sign cookies with
the same secret, so the env file is the source of truth. Each process takes an exclusive lock
on the file's directory, reads the file again, and only the first to find no secret writes
one (to a private temporary file, fsynced, renamed over the old one: never half written, never
readable by others). Processes on other machines cannot share the file: give them the same
OPEN_SWE_SESSION_SECRET.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import tempfile
from pathlib import Path

from dotenv import dotenv_values

SESSION_SECRET_KEY = "OPEN_SWE_SESSION_SECRET"  # noqa: S105 (a variable name)
SECRET_BYTES = 48


def ensure_session_secret(path: Path) -> str:
    """The secret in the env file at `path`, written there first if it has none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)  # released when the descriptor is closed
        existing = _read(path)
        if existing:
            return existing
        secret = secrets.token_urlsafe(SECRET_BYTES)
        _append_private(path, f"{SESSION_SECRET_KEY}='{secret}'\n")
        return secret
    finally:
        os.close(directory)


def _read(path: Path) -> str | None:
    if not path.exists():
        return None
    return dotenv_values(path).get(SESSION_SECRET_KEY) or None


def _append_private(path: Path, line: str) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if text and not text.endswith("\n"):
        text += "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:  # mkstemp creates the file with mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + line)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
