"""Acting as an installation: the few repository operations the bot needs, as plain values."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from github import Auth, Github, GithubException
from github.IssueComment import IssueComment
from github.NamedUser import NamedUser
from github.Organization import Organization
from github.PullRequest import PullRequest
from github.PullRequestComment import PullRequestComment

from app.github.checks import ChecksMixin
from app.github.errors import GitHubError, NotFound
from app.github.pacing import Pace, unpaced
from app.github.transport import (
    RETRIES,
    backoff_factor,
    github_errors,
    github_options,
    may_have_acted,
    repeatable_posts,
)
from app.github.types import (
    CommentInfo,
    IssueInfo,
    LabelSpec,
    PullFile,
    PullInfo,
    ReactionContent,
    ReactionTarget,
    RepoInfo,
    ReviewCommentInfo,
)

WRITE_ROLES = frozenset({"admin", "maintain", "write"})
STANDARD_ROLES = frozenset({"admin", "maintain", "write", "triage", "read", "none"})
_REACTION_PATHS = {
    "issue": "issues/{id}/reactions",
    "issue_comment": "issues/comments/{id}/reactions",
    "review_comment": "pulls/comments/{id}/reactions",
}


class InstallationClient(ChecksMixin):
    """Blocking calls as one installation (async callers: `anyio.to_thread.run_sync`).

    Built by `GitHubApp.client(...)`; `from_token` serves tests and tools holding a token.
    Server errors are retried where a repeat cannot do anything twice (see transport.py);
    `backoff` is the first pause of the client's own retries (`create_comment` with a marker).
    """

    def __init__(
        self,
        github: Github,
        token: Callable[[], str],
        *,
        backoff: float = backoff_factor(throttle=True),
        pace: Pace = unpaced,
    ) -> None:
        self._github = github
        self._token = token
        self._backoff = backoff
        # `await client.pace(urgent=...)` before a write, on the event loop (app.github.pacing).
        self.pace = pace

    @classmethod
    def from_token(
        cls, token: str, api_url: str, *, max_retry_wait: float = 60, throttle: bool = True
    ) -> InstallationClient:
        options = github_options(max_retry_wait=max_retry_wait, throttle=throttle)
        github = Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"), **options)
        return cls(github, lambda: token, backoff=backoff_factor(throttle=throttle))

    def __repr__(self) -> str:
        return "InstallationClient()"

    @property
    def token(self) -> str:
        """The current installation token (for git over HTTPS); renewed when close to expiry."""
        return self._token()

    # Repositories and people ------------------------------------------------------------

    def get_repo(self, full_name: str) -> RepoInfo:
        with github_errors(f"get repository {full_name}"):
            repo = self._github.get_repo(full_name)
            return RepoInfo(
                full_name=repo.full_name,
                default_branch=repo.default_branch,
                clone_url=repo.clone_url,
                private=repo.private,
                html_url=repo.html_url,
            )

    def permission(self, full_name: str, username: str) -> str:
        """admin, maintain, write, triage, read or none (custom roles map to their base)."""
        with github_errors(f"get {username}'s permission on {full_name}"):
            _, data = self._github.requester.requestJsonAndCheck(
                "GET", f"/repos/{full_name}/collaborators/{username}/permission"
            )
        role = data.get("role_name")
        # `permission` is the legacy field (maintain reads as write, triage as read).
        return str(role) if role in STANDARD_ROLES else str(data.get("permission", "none"))

    def has_write(self, full_name: str, username: str) -> bool:
        """True when `username` may push to the repository; False for strangers."""
        try:
            return self.permission(full_name, username) in WRITE_ROLES
        except NotFound:
            return False

    # Labels and reactions ---------------------------------------------------------------

    def ensure_labels(self, full_name: str, labels: Mapping[str, LabelSpec]) -> list[str]:
        """Create the labels the repository lacks (names compare case-insensitively).

        Returns the names created; existing labels are left as they are.
        """
        with github_errors(f"list labels of {full_name}"):
            repo = self._github.get_repo(full_name)
            existing = {label.name.lower() for label in repo.get_labels()}
        created = []
        for name, spec in labels.items():
            if name.lower() in existing:
                continue
            try:
                with github_errors(f"create label {name!r} in {full_name}"), repeatable_posts():
                    repo.create_label(name, spec.color, spec.description)
            except GitHubError as exc:
                if exc.status == 422 and "already_exists" in str(exc):
                    continue  # created meanwhile by a concurrent delivery
                raise
            created.append(name)
        return created

    def add_reaction(
        self, full_name: str, target: ReactionTarget, content: ReactionContent = "eyes"
    ) -> bool:
        """React once; True when created, False when this App had already reacted so (or a
        repeat after a lost answer found the reaction made)."""
        path = f"/repos/{full_name}/" + _REACTION_PATHS[target.kind].format(id=target.id)
        action = f"add a reaction to {target.kind} {target.id} in {full_name}"
        with github_errors(action), repeatable_posts():
            status, headers, body = self._github.requester.requestJson(
                "POST", path, input={"content": content}
            )
            if status not in (200, 201):
                data = json.loads(body) if body else None
                raise GithubException(status, data, headers)
        return status == 201

    # Issues and comments ----------------------------------------------------------------

    def get_issue(self, full_name: str, number: int) -> IssueInfo:
        with github_errors(f"get issue #{number} of {full_name}"):
            issue = self._github.get_repo(full_name).get_issue(number)
            return IssueInfo(
                number=issue.number,
                title=issue.title,
                body=issue.body or "",
                author=issue.user.login,
                labels=tuple(label.name for label in issue.labels),
                is_pull_request=issue.pull_request is not None,
                state=issue.state,
                html_url=issue.html_url,
            )

    def list_comments(self, full_name: str, number: int) -> list[CommentInfo]:
        with github_errors(f"list comments on #{number} of {full_name}"):
            issue = self._github.get_repo(full_name).get_issue(number)
            return [_comment(c) for c in issue.get_comments()]

    def create_comment(
        self, full_name: str, number: int, body: str, *, marker: str | None = None
    ) -> CommentInfo:
        """Post a comment on an issue or pull request.

        After a 5xx or a lost answer nobody knows whether GitHub stored the comment, so without
        `marker` it is not retried (a repeat could post it twice). `marker` is a string unique
        to this comment that its body carries (e.g. a hidden `<!-- ... -->`): then each retry
        first looks for a bot's comment carrying it, and returns that one if it landed.
        """
        if marker is not None and marker not in body:
            raise ValueError("the marker must be part of the comment's body")
        for attempt in range(RETRIES + 1):
            try:
                with github_errors(f"comment on #{number} of {full_name}"):
                    issue = self._github.get_repo(full_name).get_issue(number)  # lazy: no GET
                    return _comment(issue.create_comment(body))
            except GitHubError as exc:
                if marker is None or attempt == RETRIES or not may_have_acted(exc):
                    raise
                time.sleep(self._backoff * 2**attempt)  # also lets a stored comment be listed
                landed = self._marked_comment(full_name, number, marker)
                if landed is not None:
                    return landed
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _marked_comment(self, full_name: str, number: int, marker: str) -> CommentInfo | None:
        """The newest comment by a bot that carries `marker` (people's comments never count:
        anyone can paste a marker)."""
        marked = [
            c for c in self.list_comments(full_name, number) if c.author_is_bot and marker in c.body
        ]
        return max(marked, key=lambda c: c.id, default=None)

    def update_comment(self, full_name: str, comment_id: int, body: str) -> CommentInfo:
        with github_errors(f"update comment {comment_id} in {full_name}"):
            requester = self._github.requester
            headers, data = requester.requestJsonAndCheck(
                "PATCH", f"/repos/{full_name}/issues/comments/{comment_id}", input={"body": body}
            )
            return _comment(IssueComment(requester, headers, data, completed=True))

    # Pull requests ----------------------------------------------------------------------

    def get_pull(self, full_name: str, number: int) -> PullInfo:
        with github_errors(f"get pull request #{number} of {full_name}"):
            return _pull(self._github.get_repo(full_name).get_pull(number), full_name)

    def find_pull(self, full_name: str, head_branch: str) -> PullInfo | None:
        """The open pull request from `head_branch` of this repository (not of a fork), if any."""
        owner = full_name.split("/", 1)[0]
        with github_errors(f"look for a pull request from {head_branch} in {full_name}"):
            pulls = self._github.get_repo(full_name).get_pulls(
                state="open", head=f"{owner}:{head_branch}"
            )
            for pull in pulls:
                return _pull(pull, full_name)
        return None

    def create_draft_pull(
        self, full_name: str, *, title: str, body: str, head: str, base: str
    ) -> PullInfo:
        """Open a draft PR; if one is already open from `head`, return that one (idempotent)."""
        try:
            # Repeatable: after a lost answer, the repeat's 422 "already exists" finds it.
            action = f"open a pull request from {head} in {full_name}"
            with github_errors(action), repeatable_posts():
                repo = self._github.get_repo(full_name)
                pull = repo.create_pull(base=base, head=head, title=title, body=body, draft=True)
                return _pull(pull, full_name)
        except GitHubError as exc:
            if exc.status == 422 and "already exists" in str(exc):
                existing = self.find_pull(full_name, head)
                if existing is not None:
                    return existing
            raise

    def update_pull(
        self, full_name: str, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullInfo:
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if body is not None:
            changes["body"] = body
        with github_errors(f"update pull request #{number} of {full_name}"):
            pull = self._github.get_repo(full_name).get_pull(number)
            if changes:
                pull.edit(**changes)
            return _pull(pull, full_name)

    def request_review(self, full_name: str, number: int, reviewers: list[str]) -> None:
        """Ask for reviews; asking the PR's own author is skipped (GitHub refuses it with 422)."""
        if not reviewers:
            return
        try:
            action = f"request a review on #{number} of {full_name}"
            with github_errors(action), repeatable_posts():  # requesting twice is harmless
                pull = self._github.get_repo(full_name).get_pull(number)
                pull.create_review_request(reviewers=reviewers)
        except GitHubError as exc:
            if exc.status == 422 and "pull request author" in str(exc):
                return
            raise

    def list_review_comments(self, full_name: str, number: int) -> list[ReviewCommentInfo]:
        with github_errors(f"list review comments on #{number} of {full_name}"):
            pull = self._github.get_repo(full_name).get_pull(number)
            return [_review_comment(c) for c in pull.get_review_comments()]

    def reply_to_review_comment(
        self, full_name: str, pull_number: int, comment_id: int, body: str
    ) -> CommentInfo:
        """Reply in a review thread; like `create_comment` without a marker, a 5xx is not
        retried (the reply may have been posted)."""
        with github_errors(f"reply to review comment {comment_id} in {full_name}"):
            pull = self._github.get_repo(full_name).get_pull(pull_number)
            reply = pull.create_review_comment_reply(comment_id, body)
            return CommentInfo(
                id=reply.id,
                author=reply.user.login,
                author_is_bot=_is_bot(reply.user),
                body=reply.body,
                created_at=_utc(reply.created_at),
                html_url=reply.html_url,
            )

    def pull_files(self, full_name: str, number: int) -> list[PullFile]:
        with github_errors(f"list files of #{number} in {full_name}"):
            pull = self._github.get_repo(full_name).get_pull(number)
            return [
                PullFile(f.filename, f.status, f.additions, f.deletions, f.patch or "")
                for f in pull.get_files()
            ]


def _is_bot(user: NamedUser | Organization) -> bool:
    return user.type == "Bot" or user.login.endswith("[bot]")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _comment(comment: IssueComment) -> CommentInfo:
    return CommentInfo(
        id=comment.id,
        author=comment.user.login,
        author_is_bot=_is_bot(comment.user),
        body=comment.body or "",
        created_at=_utc(comment.created_at),
        html_url=comment.html_url,
    )


def _review_comment(comment: PullRequestComment) -> ReviewCommentInfo:
    return ReviewCommentInfo(
        id=comment.id,
        author=comment.user.login,
        author_is_bot=_is_bot(comment.user),
        body=comment.body or "",
        path=comment.path,
        line=comment.line,
        in_reply_to_id=comment.in_reply_to_id,
        created_at=_utc(comment.created_at),
        html_url=comment.html_url,
    )


def _pull(pull: PullRequest, base_repo: str) -> PullInfo:
    head_repo = pull.head.repo
    return PullInfo(
        number=pull.number,
        title=pull.title,
        body=pull.body or "",
        head_ref=pull.head.ref,
        head_repo=head_repo.full_name if head_repo is not None else None,
        base_ref=pull.base.ref,
        html_url=pull.html_url,
        draft=bool(pull.draft),
        state=pull.state,
        author=pull.user.login,
        base_repo=base_repo,
        head_sha=pull.head.sha or "",
    )
