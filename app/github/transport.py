"""How the GitHub layer talks HTTP: bounded retries and translation of PyGithub's errors.

Retry policy, by whether repeating a request can do something twice:
- idempotent methods (GET, PUT, PATCH, DELETE...) are retried on 5xx, lost answers and rate
  limits: a repeat leaves GitHub as one success would (a PATCH sets the same fields again);
- a POST is retried only when GitHub surely did not act on it: a rate limit (403/429, GitHub
  refused it) or a connection that could not be opened. A 5xx or a lost answer says nothing
  about whether the comment or pull request was created, so the client decides per operation:
  `repeatable_posts()` for creations GitHub deduplicates, a marker lookup for comments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import requests
from github import GithubException, GithubRetry, RateLimitExceededException
from github.GithubException import RateLimitExceededExceedsMaxWait
from urllib3 import Retry
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse

from app.github.errors import (
    AuthenticationFailed,
    Forbidden,
    GitHubError,
    NotFound,
    RateLimited,
)

RETRIES = 5  # attempts after the first, for 5xx and rate limits
TIMEOUT = 30  # seconds per request
BACKOFF_FACTOR = 0.5  # 5xx retries wait 0, 1, 2, 4, 8 s
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "TRACE"})
REFUSED_STATUSES = frozenset({403, 429})  # rate limits: GitHub did not act on the request

_posts_repeatable: ContextVar[bool] = ContextVar("github_posts_repeatable", default=False)


@contextmanager
def repeatable_posts() -> Iterator[None]:
    """Inside, POSTs are retried like idempotent methods (5xx, lost answers).

    Only for creations that GitHub makes safe to repeat: a second installation token, a
    reaction or review request that already exists (200), a label or pull request that
    already exists (422, which the caller handles).
    """
    reset = _posts_repeatable.set(True)
    try:
        yield
    finally:
        _posts_repeatable.reset(reset)


class BoundedRetry(GithubRetry):
    """PyGithub's retry policy (5xx, 403 rate limits) plus 429, by method, every wait capped.

    GithubRetry retries 5xx for GET and POST but not PATCH; here 5xx and lost answers are
    retried for idempotent methods only (POST inside `repeatable_posts()`), and rate limits for
    every method. GithubRetry caps waits derived from rate-limit messages
    (`max_rate_limit_wait`) but sleeps whatever a `Retry-After` header says; a worker must never
    block for an hour, so a `Retry-After` beyond the cap raises instead.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("status_forcelist", [429, *range(500, 600)])
        kwargs.setdefault("allowed_methods", IDEMPOTENT_METHODS)
        super().__init__(**kwargs)

    def _is_method_retryable(self, method: str) -> bool:
        # urllib3 asks this for 5xx answers and for errors after the request was sent.
        if method.upper() == "POST" and _posts_repeatable.get():
            return True
        return super()._is_method_retryable(method)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # A rate limit is a refusal, safe to repeat for any method; GithubRetry.increment then
        # raises at once for a 403 that is not a rate limit.
        if status_code in REFUSED_STATUSES and status_code in (self.status_forcelist or ()):
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        if response is not None and "Retry-After" in response.headers:
            wait = self.get_retry_after(response) or 0.0
            cap = self.max_rate_limit_wait
            if cap is not None and wait > cap:
                raise RateLimitExceededExceedsMaxWait(
                    response.status,
                    {"message": f"GitHub asked to retry after {wait:.0f} s"},
                    dict(response.headers),
                    wait=wait,
                )
        return super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[arg-type]


def backoff_factor(*, throttle: bool) -> float:
    """Seconds that retry waits grow from (doubling each time); none when not throttled."""
    return BACKOFF_FACTOR if throttle else 0.0


def may_have_acted(error: GitHubError) -> bool:
    """True when GitHub may have carried out the request although it reported a failure:
    a 5xx (a proxy can fail after GitHub acted) or no answer at all."""
    return error.status is None or error.status >= 500


def github_options(*, max_retry_wait: float, throttle: bool) -> dict[str, Any]:
    """Keyword arguments for `github.Github(...)`: retries, timeout and request spacing.

    PyGithub's own pauses between requests and writes (`time.sleep` per client, in the calling
    thread) are always off: writes are paced per installation, asynchronously, by
    app.github.pacing. `throttle=False` (tests) drops the exponential backoff between 5xx
    retries; a `Retry-After` is still honoured.
    """
    retry = BoundedRetry(
        total=RETRIES,
        backoff_factor=backoff_factor(throttle=throttle),
        max_rate_limit_wait=max_retry_wait,
        secondary_rate_wait=min(60.0, max_retry_wait),
    )
    return {
        "retry": retry,
        "timeout": TIMEOUT,
        "seconds_between_requests": None,
        "seconds_between_writes": None,
        "lazy": True,  # build objects from known URLs without fetching them first
    }


@contextmanager
def github_errors(action: str) -> Iterator[None]:
    """Turn PyGithub and requests exceptions raised inside into `GitHubError`s about `action`."""
    try:
        yield
    except GitHubError:
        raise
    except (GithubException, requests.RequestException) as exc:
        raise translate(exc, action) from exc


def translate(exc: Exception, action: str) -> GitHubError:
    """One actionable line; built from status and GitHub's message only (no headers, no token)."""
    if isinstance(exc, RateLimitExceededExceedsMaxWait):
        wait = exc.wait
        return RateLimited(
            f"{action}: GitHub rate limit, it asks to wait {wait or 0:.0f} s, longer than we wait; "
            "try again later",
            status=exc.status,
            retry_after=wait,
        )
    if isinstance(exc, RateLimitExceededException) or (
        isinstance(exc, GithubException) and exc.status == 429
    ):
        return RateLimited(
            f"{action}: GitHub rate limit exceeded ({_message(exc)}); try again later",
            status=exc.status,
            retry_after=_retry_after(exc.headers),
        )
    if isinstance(exc, GithubException):
        status, message = exc.status, _message(exc)
        if status == 401:
            return AuthenticationFailed(
                f"{action}: GitHub rejected the App's credentials (401 {message}); check "
                "GITHUB_APP_ID and the private key, and that the server clock is right",
                status=status,
            )
        if status == 403:
            return Forbidden(
                f"{action}: forbidden (403 {message}); check the App's permissions and that it "
                "is installed on this repository",
                status=status,
            )
        if status == 404:
            return NotFound(
                f"{action}: not found (404); it does not exist or the App is not installed on "
                "this repository",
                status=status,
            )
        return GitHubError(f"{action}: GitHub answered {status} ({message})", status=status)
    if isinstance(exc, requests.exceptions.RetryError):
        return GitHubError(
            f"{action}: GitHub kept failing after {RETRIES} retries; try again later"
        )
    return GitHubError(f"{action}: cannot reach GitHub ({type(exc).__name__})")


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text: str = data["message"]
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            detail = errors[0].get("message") or errors[0].get("code")
            if detail:
                text = f"{text}: {detail}"
        return text
    return exc.message or "no message"


def _retry_after(headers: dict[str, str] | None) -> float | None:
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value and value.strip().isdigit():
        return float(value)
    # A primary rate limit says when the window resets (epoch seconds) instead.
    reset = lowered.get("x-ratelimit-reset", "")
    if lowered.get("x-ratelimit-remaining") == "0" and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time())
    return None
