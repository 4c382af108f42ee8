"""Errors of the GitHub layer: one readable line that says what failed and what to do.

Messages are built from the action, the status and GitHub's own `message` field only, so no
token or Authorization header can end up in them.
"""

from __future__ import annotations


class GitHubError(Exception):
    """A GitHub call failed; `status` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationFailed(GitHubError):
    """GitHub rejected the App's JWT or the installation token (401)."""


class NotFound(GitHubError):
    """404: it does not exist, or the App cannot see it (not installed on that repository)."""


class Forbidden(GitHubError):
    """403 that is not a rate limit: the App lacks a permission or the action is not allowed."""


class RateLimited(GitHubError):
    """Rate limited for longer than we are willing to wait; try again after `retry_after` s."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
