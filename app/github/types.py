"""Plain values the GitHub layer returns, so nothing above `app.github` depends on PyGithub."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

ReactionContent = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


@dataclass(frozen=True)
class InstallationInfo:
    id: int
    account: str  # login of the user or organization the App is installed on
    account_type: Literal["User", "Organization"]
    suspended: bool


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)  # never in a repr, hence never in a log line or traceback
    expires_at: datetime  # timezone-aware (UTC)


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    default_branch: str
    clone_url: str
    private: bool
    html_url: str


@dataclass(frozen=True)
class LabelSpec:
    color: str  # six hex digits, no "#"
    description: str = ""


@dataclass(frozen=True)
class ReactionTarget:
    """What to react to. For an issue (or a PR's conversation) `id` is the issue number."""

    kind: Literal["issue", "issue_comment", "review_comment"]
    id: int


@dataclass(frozen=True)
class IssueInfo:
    number: int
    title: str
    body: str  # "" when GitHub has none
    author: str
    labels: tuple[str, ...]
    is_pull_request: bool
    state: str
    html_url: str


@dataclass(frozen=True)
class CommentInfo:
    id: int
    author: str
    author_is_bot: bool
    body: str
    created_at: datetime
    html_url: str


@dataclass(frozen=True)
class ReviewCommentInfo:
    id: int
    author: str
    author_is_bot: bool
    body: str
    path: str
    line: int | None
    in_reply_to_id: int | None  # the thread's first comment, for a reply
    created_at: datetime
    html_url: str


@dataclass(frozen=True)
class PullInfo:
    number: int
    title: str
    body: str
    head_ref: str
    head_repo: str | None  # full name of the head repository; None when the fork was deleted
    base_ref: str
    html_url: str
    draft: bool
    state: str
    author: str
    base_repo: str  # full name of the repository the PR targets
    head_sha: str = ""  # the head commit (CI autofix acts on it only)

    @property
    def is_fork(self) -> bool:
        """True when the head branch lives outside the base repository (we cannot push there)."""
        return self.head_repo != self.base_repo


class PullFile(NamedTuple):
    filename: str
    status: str  # added, removed, modified, renamed, copied, changed, unchanged
    additions: int
    deletions: int
    patch: str = ""  # the unified diff of the file (GitHub omits it for large files)


@dataclass(frozen=True)
class AppCredentials:
    """What GitHub hands back once when an App is created from a manifest."""

    id: int
    slug: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    html_url: str


@dataclass(frozen=True)
class HookDelivery:
    """One attempt to deliver a webhook (`GET /app/hook/deliveries`): several attempts of one
    event share its `guid`, the X-GitHub-Delivery header the receiver saw."""

    id: int  # of this attempt: what a redelivery is asked for
    guid: str
    delivered_at: datetime  # timezone-aware (UTC)
    redelivery: bool
    status_code: int  # what the receiver answered; 0 when it could not be reached
    event: str
    action: str | None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300


# Checks and Actions (CI autofix) -----------------------------------------------------------


@dataclass(frozen=True)
class CommitAuthor:
    name: str
    email: str


@dataclass(frozen=True)
class CheckSuiteInfo:
    id: int
    status: str  # queued, in_progress, completed...
    conclusion: str | None
    app_slug: str | None
    runs_count: int  # latest_check_runs_count: a suite without runs never completes
    head_author: CommitAuthor | None  # of the commit the suite checks


@dataclass(frozen=True)
class CheckAnnotation:
    path: str
    start_line: int | None
    level: str | None  # notice, warning, failure
    title: str | None
    message: str


@dataclass(frozen=True)
class CheckRunInfo:
    id: int
    name: str
    status: str
    conclusion: str | None
    app_slug: str | None
    html_url: str | None
    title: str | None  # output.title, .summary, .text: what the CI said
    summary: str | None
    text: str | None
    annotations_count: int


@dataclass(frozen=True)
class WorkflowRunInfo:
    id: int
    name: str
    status: str
    conclusion: str | None
    path: str  # .github/workflows/ci.yml
    html_url: str | None
    run_attempt: int


@dataclass(frozen=True)
class JobStep:
    number: int
    name: str
    conclusion: str | None


@dataclass(frozen=True)
class JobInfo:
    id: int
    name: str
    status: str
    conclusion: str | None
    html_url: str | None
    steps: tuple[JobStep, ...]
