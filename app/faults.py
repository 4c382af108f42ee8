"""Which failures are transient: one classifier for every caller that waits a fault out.

A fault is transient when the same call will likely work later: the model provider answering
429, 5xx or "overloaded" (or not at all) after its SDK's own retries, GitHub answering 5xx or
rate limiting (primary or secondary), the database gone for a moment. Two callers wait them
out: the queue, which runs a job again later (app.runs.retry), and a run, which stops at its
last checkpoint and resumes by itself (app.runs.faults). Anything else (a refusal, a 404, a
bug) would fail the same way again.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from dataclasses import dataclass
from types import ModuleType

import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.github.errors import GitHubError, RateLimited
from app.sandbox.types import SandboxError, SandboxGone

MODEL = "the model API"
GITHUB = "GitHub"
DATABASE = "the database"
NETWORK = "the network"
GIT = "the git server"
# Model answers worth waiting out: request timeout, conflict, rate limit, 5xx (529: overloaded).
_MODEL_STATUSES = frozenset({408, 409, 429})
# sqlite3's OperationalError also says "no such table": only these mean "not now".
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "readonly", "full")
_CHAIN_DEPTH = 5
# The model SDKs whose errors are classified. Looked up, not imported: an error of an SDK that
# was never imported cannot exist, and a web-only node never imports them.
_MODEL_SDKS = ("anthropic", "openai")
# git's own words for a server or network that is not there now (a clone or push over HTTPS).
_GIT_UNAVAILABLE = re.compile(
    r"returned error: 5\d\d|could not resolve host|failed to connect|connection timed out"
    r"|connection reset|the remote end hung up unexpectedly",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Transient:
    """A transient fault: what is unavailable (MODEL, GITHUB, DATABASE, NETWORK), one line
    about it, and how long the other side asked us to wait (Retry-After, a rate-limit reset)."""

    what: str
    detail: str
    retry_after: float | None = None


class Faulted(Exception):
    """A run stopped on a transient fault (app.agent.runner raises it; the run's job waits
    the fault out)."""

    def __init__(self, fault: Transient) -> None:
        super().__init__(f"{fault.what} unavailable: {fault.detail}")
        self.fault = fault


def transient(exc: BaseException) -> Transient | None:
    """The transient fault `exc` (or what caused it) amounts to, or None."""
    seen: BaseException | None = exc
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            return None
        found = _classify(seen)
        if found is not None:
            return found
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def _classify(exc: BaseException) -> Transient | None:
    if isinstance(exc, Faulted):
        return exc.fault
    if isinstance(exc, RateLimited):
        return Transient(GITHUB, str(exc), exc.retry_after)
    if isinstance(exc, GitHubError):
        # No answer at all, or a server error: GitHub (or the way to it) is having trouble.
        if exc.status is None or exc.status >= 500:
            return Transient(GITHUB, str(exc))
        return None
    for sdk in _loaded_sdks():
        if isinstance(exc, sdk.APIError):
            return _model_fault(exc, sdk)
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return Transient(DATABASE, type(exc.orig).__name__)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return Transient(DATABASE, type(exc).__name__)
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in _SQLITE_TRANSIENT
    ):
        return Transient(DATABASE, f"sqlite: {exc}")
    if isinstance(exc, SandboxError) and not isinstance(exc, SandboxGone):
        found = _GIT_UNAVAILABLE.search(str(exc))  # PushRefused (a hook, a rule) never matches
        if found is not None and not getattr(exc, "reason", None):
            return Transient(GIT, f"git: {found.group(0)}")
        return None
    if isinstance(exc, ConnectionError | TimeoutError):
        return Transient(NETWORK, f"{type(exc).__name__}: {exc}")
    return None


def _loaded_sdks() -> list[ModuleType]:
    return [sdk for name in _MODEL_SDKS if (sdk := sys.modules.get(name)) is not None]


def _model_fault(exc: BaseException, sdk: ModuleType) -> Transient | None:
    """An error of a model SDK (anthropic and openai name theirs alike)."""
    if isinstance(exc, sdk.APITimeoutError):  # a subclass of APIConnectionError: first
        return Transient(MODEL, "timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return Transient(MODEL, "could not connect")
    if isinstance(exc, sdk.APIStatusError):
        status: int = exc.status_code
        if status in _MODEL_STATUSES or status >= 500:
            wait = _seconds(exc.response.headers.get("retry-after"))
            return Transient(MODEL, f"HTTP {status}", wait)
    return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the backoff decides
    return seconds if seconds >= 0 else None
