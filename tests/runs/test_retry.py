"""What counts as a transient fault, and when a job that met one is tried again."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from app.github.errors import AuthenticationFailed, Forbidden, GitHubError, NotFound, RateLimited
from app.runs.retry import DELIVERY_RETRY, RetryPolicy, TryAgain, as_transient


def test_waits_double_up_to_a_cap_then_stop() -> None:
    policy = RetryPolicy(attempts=6, first_wait=2, max_wait=10)
    assert [policy.wait(tries) for tries in range(1, 7)] == [2, 4, 8, 10, 10, None]


def test_a_retry_after_lengthens_the_wait_within_the_cap() -> None:
    policy = RetryPolicy(attempts=3, first_wait=2, max_wait=60)
    assert policy.wait(1, hint=30) == 30
    assert policy.wait(1, hint=0.5) == 2
    assert policy.wait(1, hint=3600) == 60
    assert policy.wait(3, hint=30) is None


def test_the_delivery_policy_tries_for_minutes_not_hours() -> None:
    waits = [DELIVERY_RETRY.wait(tries) for tries in range(1, DELIVERY_RETRY.attempts)]
    assert all(wait is not None for wait in waits)
    assert 60 < sum(w for w in waits if w is not None) < 900
    assert DELIVERY_RETRY.wait(DELIVERY_RETRY.attempts) is None


@pytest.mark.parametrize(
    "error",
    [
        GitHubError("get issue: GitHub answered 502 (Bad Gateway)", status=502),
        GitHubError("get issue: cannot reach GitHub (ConnectionError)"),
        GitHubError("get issue: GitHub kept failing after 5 retries; try again later"),
        RateLimited("rate limit", status=403, retry_after=42),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        ConnectionResetError("reset by peer"),
        TimeoutError("timed out"),
    ],
)
def test_transient_faults(error: Exception) -> None:
    fault = as_transient(error)
    assert isinstance(fault, TryAgain)
    assert fault.retry_after == (42 if isinstance(error, RateLimited) else None)


@pytest.mark.parametrize(
    "error",
    [
        NotFound("not found (404)", status=404),
        Forbidden("forbidden (403 Resource not accessible by integration)", status=403),
        AuthenticationFailed("credentials (401)", status=401),
        GitHubError("validation failed (422)", status=422),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        ValueError("a bug"),
    ],
)
def test_permanent_faults(error: Exception) -> None:
    assert as_transient(error) is None


def test_a_try_again_stays_itself() -> None:
    fault = TryAgain("later", retry_after=5)
    assert as_transient(fault) is fault
