"""The port between the workflow and the world it reports to (GitHub, or a terminal).

The graph never knows which host it talks to: it fetches the task, announces progress, posts
the plan, publishes the result and reports the end through a `RunHost`. `LocalHost`
(app/hosts/terminal.py) prints to a terminal and leaves a branch in a local repository; a
GitHub host edits a status comment, pushes the branch and opens a draft pull request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from app.agent.state import PlanDecision, PlanDict, StepName, WorkflowOutcome
from app.agent.usage import Usage
from app.sandbox.types import GitCredentials, GitIdentity

if TYPE_CHECKING:  # the port only names it: no deepagents for code that only reports
    from app.sandbox.base import Sandbox


@dataclass(frozen=True)
class Remark:
    """What a person wrote on an issue or pull request, as the task shows it (an issue
    comment, a review comment, a request to the bot). Untrusted text."""

    author: str
    body: str
    path: str | None = None  # a review comment: the file it is about
    line: int | None = None  # ... and the line


@dataclass(frozen=True)
class FileChange:
    """One line of a pull request's diff summary."""

    path: str
    additions: int
    deletions: int


@dataclass(frozen=True)
class TaskText:
    """The task as people wrote it: raw, untrusted (the graph sanitises and fences it).

    For an issue: its title, body and comments. For a follow-up on a pull request (kind
    "pull"): the pull request's title, body, diff summary and review comments, and the
    requests people addressed to the bot, which are the task itself.
    """

    title: str
    body: str
    comments: tuple[Remark, ...] = ()
    requested_by: GitIdentity | None = None  # becomes the commit's Co-authored-by
    url: str | None = None
    kind: Literal["issue", "pull"] = "issue"
    files: tuple[FileChange, ...] = ()
    review_comments: tuple[Remark, ...] = ()
    requests: tuple[Remark, ...] = ()


DEFAULT_BOT = GitIdentity("open-swe", "open-swe@users.noreply.github.com")


@dataclass(frozen=True)
class Checkout:
    """Where to clone from. Credentials are fetched per call (tokens expire) and redacted."""

    url: str
    credentials: GitCredentials | None = field(default=None, repr=False)
    default_branch: str | None = None  # None: the remote's HEAD
    bot: GitIdentity = DEFAULT_BOT


@dataclass(frozen=True)
class Change:
    """A committed change ready to publish (the graph has committed it in the sandbox)."""

    repo_dir: str
    branch: str
    base_branch: str
    commit: str
    title: str
    body: str  # markdown: summary, plan checklist, test outcome, `Fixes #N`
    tests_passed: bool | None
    issue_number: int | None


@dataclass(frozen=True)
class Publication:
    branch: str
    url: str | None = None  # the pull request, when there is one
    created: bool = True  # False when an existing PR/branch was updated


@dataclass(frozen=True)
class ApprovalRequest:
    plan: PlanDict
    revision: int


# How a run turned out (or paused: "waiting" for a person), as a host reports it. The
# workflow's own ends (WorkflowOutcome), a failure, or a wait. Not to be confused with where a
# run is in its lifecycle (app.runs.models.RunStatus).
OutcomeStatus = Literal[WorkflowOutcome, "failed", "waiting"]


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended (or paused), for the host's final report."""

    status: OutcomeStatus
    run_id: str
    usage: Usage
    reason: str | None = None  # why it failed or stopped, one user-facing line
    branch: str | None = None
    url: str | None = None
    title: str | None = None
    plan: PlanDict | None = None
    tests_command: str | None = None
    tests_passed: bool | None = None


class RunHost(Protocol):
    """Everything outside the workflow. Implementations must be idempotent where noted."""

    async def load_task(self) -> TaskText:
        """The task text and its discussion (GitHub: the issue and its comments)."""
        ...

    async def checkout(self) -> Checkout:
        """Clone URL, fresh credentials and default branch for the repository."""
        ...

    async def progress(self, step: StepName, detail: str, usage: Usage) -> None:
        """A step completed (GitHub: edit the status comment's checklist)."""
        ...

    async def post_plan(
        self, plan: PlanDict, *, awaiting_approval: bool, revision: int | None = None
    ) -> None:
        """Show the plan to people (GitHub: a comment on the issue; revision counts from 1)."""
        ...

    async def decide(self, request: ApprovalRequest) -> PlanDecision | None:
        """Ask for approval now (terminal) or return None to wait durably (GitHub comments)."""
        ...

    async def publish(self, sandbox: Sandbox, change: Change) -> Publication:
        """Deliver the committed change. Idempotent: reuse an existing branch/PR."""
        ...

    async def finish(self, outcome: RunOutcome) -> None:
        """Report the final status (never leave a stale 'working' status behind)."""
        ...

    async def waiting_on(self, what: str, retry_at: datetime) -> None:
        """The run waits out a transient fault: `what` is unavailable, it tries again at
        `retry_at` (GitHub: the status comment says so)."""
        ...
