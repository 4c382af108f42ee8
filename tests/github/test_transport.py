"""Retries and error translation, through PyGithub against the fake GitHub."""

from __future__ import annotations

import time
from typing import Literal

import pytest

from app.github.client import InstallationClient
from app.github.errors import Forbidden, GitHubError, NotFound, RateLimited
from app.github.transport import (
    RETRIES,
    BoundedRetry,
    _retry_after,
    github_options,
    repeatable_posts,
)
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO

ISSUE_PATH = f"/repos/{REPO}/issues/*"


@pytest.fixture
def issue_number(gh: FakeGitHub) -> int:
    return gh.add_issue(REPO, title="Bug").number


def statuses(gh: FakeGitHub, method: str, pattern: str) -> list[int]:
    return [c.status for c in gh.calls_matching(method, pattern)]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(
    gh: FakeGitHub, client: InstallationClient, issue_number: int, status: int
) -> None:
    gh.fail("GET", ISSUE_PATH, status)

    assert client.get_issue(REPO, issue_number).title == "Bug"
    assert statuses(gh, "GET", ISSUE_PATH) == [status, 200]


def test_persistent_server_errors_give_up_with_a_clear_error(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    gh.fail("GET", ISSUE_PATH, 502, times=RETRIES + 1)

    with pytest.raises(GitHubError, match="kept failing"):
        client.get_issue(REPO, issue_number)
    assert statuses(gh, "GET", ISSUE_PATH) == [502] * (RETRIES + 1)


def test_an_edit_is_retried_after_a_server_error(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    comment = gh.add_comment(REPO, issue_number, "working", user=gh.bot_login)
    path = f"/repos/{REPO}/issues/comments/{comment.id}"
    gh.fail("PATCH", path, 502, applied=True)  # even one GitHub carried out: same result
    gh.fail("PATCH", path, 503)

    assert client.update_comment(REPO, comment.id, "done").body == "done"
    assert statuses(gh, "PATCH", path) == [502, 503, 200]
    assert gh.comments[comment.id].body == "done"


def test_a_pull_request_edit_is_retried_after_a_server_error(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_pull(REPO, head="b", title="Old").issue.number
    gh.fail("PATCH", f"/repos/{REPO}/pulls/{number}", 502)

    assert client.update_pull(REPO, number, title="New").title == "New"
    assert statuses(gh, "PATCH", f"/repos/{REPO}/pulls/{number}") == [502, 200]


def test_an_edit_that_keeps_failing_gives_up_after_the_retries(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    comment = gh.add_comment(REPO, issue_number, "working", user=gh.bot_login)
    gh.fail("PATCH", "/repos/*/issues/comments/*", 500, times=RETRIES + 1)

    with pytest.raises(GitHubError, match="kept failing"):
        client.update_comment(REPO, comment.id, "done")
    assert statuses(gh, "PATCH", "/repos/*/issues/comments/*") == [500] * (RETRIES + 1)


def test_a_post_is_not_repeated_after_a_server_error(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    gh.fail("POST", f"/repos/{REPO}/issues/*/comments", 502, applied=True)

    with pytest.raises(GitHubError, match="502") as caught:
        client.create_comment(REPO, issue_number, "hello")
    assert caught.value.status == 502
    assert statuses(gh, "POST", f"/repos/{REPO}/issues/*/comments") == [502]
    assert [c.body for c in gh.comments.values()] == ["hello"]  # stored once, not twice


@pytest.mark.parametrize("status", [403, 429])
def test_a_rate_limited_post_is_retried(
    gh: FakeGitHub, client: InstallationClient, issue_number: int, status: Literal[403, 429]
) -> None:
    gh.rate_limit("POST", f"/repos/{REPO}/issues/*/comments", status=status, retry_after=0)

    client.create_comment(REPO, issue_number, "hello")
    assert statuses(gh, "POST", f"/repos/{REPO}/issues/*/comments") == [status, 201]
    assert [c.body for c in gh.comments.values()] == ["hello"]


def test_a_rate_limited_edit_is_retried(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    comment = gh.add_comment(REPO, issue_number, "working", user=gh.bot_login)
    gh.rate_limit("PATCH", "/repos/*/issues/comments/*", status=429, retry_after=0)

    client.update_comment(REPO, comment.id, "done")
    assert statuses(gh, "PATCH", "/repos/*/issues/comments/*") == [429, 200]


def test_retry_policy_by_method() -> None:
    retry = BoundedRetry(total=RETRIES)
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        assert retry.is_retry(method, 502)
    assert not retry.is_retry("POST", 502)
    assert retry.is_retry("POST", 429)
    assert retry.is_retry("POST", 403)  # GithubRetry then checks it is a rate limit
    assert not retry.is_retry("GET", 404)
    with repeatable_posts():
        assert retry.is_retry("POST", 502)
    assert not retry.is_retry("POST", 502)


@pytest.mark.parametrize("status", [403, 429])
def test_retry_after_is_honoured(
    gh: FakeGitHub, client: InstallationClient, issue_number: int, status: Literal[403, 429]
) -> None:
    gh.rate_limit("GET", ISSUE_PATH, status=status, retry_after=1)

    started = time.monotonic()
    assert client.get_issue(REPO, issue_number).number == issue_number
    assert time.monotonic() - started >= 1.0
    assert statuses(gh, "GET", ISSUE_PATH) == [status, 200]


@pytest.mark.parametrize("status", [403, 429])
def test_retry_after_beyond_the_max_wait_raises_instead_of_blocking(
    gh: FakeGitHub, client: InstallationClient, issue_number: int, status: Literal[403, 429]
) -> None:
    gh.rate_limit("GET", ISSUE_PATH, status=status, retry_after=3600)

    started = time.monotonic()
    with pytest.raises(RateLimited, match="try again later") as caught:
        client.get_issue(REPO, issue_number)
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 3600
    assert statuses(gh, "GET", ISSUE_PATH) == [status]


def test_primary_rate_limit_until_a_distant_reset_raises(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    gh.rate_limit("GET", ISSUE_PATH, status=403, reset_in=600)

    with pytest.raises(RateLimited) as caught:
        client.get_issue(REPO, issue_number)
    assert caught.value.retry_after is not None
    assert 590 < caught.value.retry_after <= 602


def test_forbidden_without_rate_limit_is_not_retried(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    gh.fail("POST", f"/repos/{REPO}/issues/*/comments", 403, message="Resource not accessible")

    with pytest.raises(Forbidden, match=r"403 Resource not accessible.*permissions"):
        client.create_comment(REPO, issue_number, "hello")
    assert statuses(gh, "POST", f"/repos/{REPO}/issues/*/comments") == [403]


def test_not_found_names_the_action_and_the_likely_cause(client: InstallationClient) -> None:
    with pytest.raises(NotFound, match=r"get issue #99 of acme/widgets: not found.*installed"):
        client.get_issue(REPO, 99)


def test_error_messages_never_carry_the_token(
    gh: FakeGitHub, client: InstallationClient, issue_number: int
) -> None:
    gh.fail("GET", ISSUE_PATH, 400, message="Bad request")
    with pytest.raises(GitHubError) as caught:
        client.get_issue(REPO, issue_number)
    assert client.token not in str(caught.value)
    assert "400" in str(caught.value)


def test_backoff_between_server_error_retries_only_when_throttled() -> None:
    assert github_options(max_retry_wait=60, throttle=True)["retry"].backoff_factor > 0
    assert github_options(max_retry_wait=60, throttle=False)["retry"].backoff_factor == 0


def test_a_primary_rate_limit_says_when_its_window_resets() -> None:
    """A run waits out a primary rate limit until x-ratelimit-reset (app.runs.faults)."""
    reset = str(int(time.time()) + 120)
    waited = _retry_after({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    assert waited is not None
    assert 100 < waited <= 120
    assert _retry_after({"Retry-After": "7", "X-RateLimit-Reset": reset}) == 7
    assert _retry_after({"X-RateLimit-Remaining": "12", "X-RateLimit-Reset": reset}) is None
