"""Daytona's errors as messages a person can act on, and the facts retries depend on."""

from __future__ import annotations

import re
from collections.abc import Iterable

from daytona import DaytonaConnectionError, DaytonaError
from daytona.common.errors import SOURCE_DAEMON

from app.sandbox.types import SandboxError
from app.text.redact import redact, secret_forms

UNAVAILABLE = {502, 503}


def status(exc: BaseException) -> int | None:
    """The HTTP status behind an SDK error (some paths only keep it on the cause)."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "status_code", None) or getattr(seen, "status", None)
        if isinstance(code, int):
            return code
        seen = seen.__cause__
    return None


def unavailable(exc: DaytonaError) -> bool:
    """502/503 or a dropped connection: the request may or may not have been carried out."""
    return status(exc) in UNAVAILABLE or isinstance(exc, DaytonaConnectionError)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """The redaction policy (`app.text.redact`) with the sandbox's secrets."""
    return redact(text, secret_forms(secrets))


def describe(exc: DaytonaError, what: str, secrets: Iterable[str]) -> str:
    """A message a person can act on, for an SDK error that ended an operation."""
    code, message = status(exc), scrub(exc.message or str(exc) or type(exc).__name__, secrets)
    if code == 401:
        return "Daytona rejected the API key (401): check DAYTONA_API_KEY and DAYTONA_API_URL"
    if code == 429:
        return (
            f"Daytona kept rate-limiting requests while {what} (429) after retries: lower "
            "OPEN_SWE_MAX_CONCURRENT_RUNS or try again later"
        )
    if isinstance(exc, DaytonaConnectionError):
        return (
            f"Could not reach Daytona while {what} ({message}): check DAYTONA_API_URL and the "
            "network"
        )
    if code in UNAVAILABLE:
        return f"Daytona was unavailable (HTTP {code}) while {what}, after retries; try again later"
    return f"Daytona error while {what}: {message}"


def file_error(message: str, code: int | None, secrets: Iterable[str]) -> str:
    """deepagents' error codes where the daemon's answer maps to one, else the message."""
    text = message.lower()
    if "is a directory" in text:
        return "is_directory"
    if code == 404 or "not found" in text or "no such file" in text:
        return "file_not_found"
    if code == 403 or "permission denied" in text or "access denied" in text:
        return "permission_denied"
    if "not a directory" in text or "invalid" in text:
        return "invalid_path"
    return scrub(message, secrets)


def _git_answer(exc: SandboxError) -> DaytonaError | None:
    """The daemon's answer behind a failed git call (None: the failure was elsewhere)."""
    cause = exc.__cause__
    if isinstance(cause, DaytonaError) and cause.source == SOURCE_DAEMON:
        return cause
    return None


def clone_failure(
    exc: SandboxError, where: str, branch: str | None, secrets: Iterable[str]
) -> SandboxError:
    answer = _git_answer(exc)
    if answer is None:
        return exc
    code, message = status(answer), scrub(answer.message, secrets)
    if branch and code == 404 and re.search(r"remote ref|branch", message, re.IGNORECASE):
        return SandboxError(f"cannot clone {where}: branch {branch!r} does not exist")
    if code in (401, 403, 404):
        # GitHub answers 404 for a private repository the token cannot read.
        return SandboxError(
            f"cannot clone {where}: the repository does not exist "
            "or these credentials cannot read it"
        )
    return SandboxError(f"cannot clone {where}: {message}")


def push_failure(exc: SandboxError, branch: str, secrets: Iterable[str]) -> SandboxError:
    answer = _git_answer(exc)
    if answer is None:
        return exc
    code, message = status(answer), scrub(answer.message, secrets)
    if code == 409:
        return SandboxError(
            f"push of {branch!r} was rejected: the remote branch has commits this one lacks "
            "(open-swe never force-pushes)"
        )
    if code in (401, 403):
        return SandboxError(
            f"push of {branch!r} failed: the credentials were refused (the installation token "
            "may have expired or lack permission to push)"
        )
    return SandboxError(f"push of {branch!r} failed: {message}")
