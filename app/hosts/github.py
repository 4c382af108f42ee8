"""GitHubHost: the RunHost of a run started from a GitHub issue (or a pull request's thread).

It reads the issue, hands out clone credentials (an installation token scoped to the one
repository, fetched per call), keeps one status comment up to date, posts the plan, pushes the
branch and opens or updates a draft pull request. Approval is durable: `decide` returns None,
the graph parks, and the front door resumes the run with the person's decision.

Idempotent across restarts: the status and plan comments carry hidden markers (see status.py),
so a resumed or retried run edits its comments instead of posting new ones, and publishing
reuses the open pull request of the branch. Status updates are best effort: a GitHub failure
there is logged and never stops the run.

Nothing posted carries a secret: every body goes through the redaction policy
(`app.text.redact`) with the tokens this host handed out and the configured secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Protocol, TypeVar

import structlog

from app.agent.host import (
    ApprovalRequest,
    Change,
    Checkout,
    Publication,
    Remark,
    RunOutcome,
    TaskText,
)
from app.agent.state import PlanDecision, PlanDict, StepName
from app.agent.usage import Usage
from app.agent.workspace import RunFailed
from app.faults import transient
from app.github.client import InstallationClient
from app.github.errors import GitHubError
from app.github.types import PullInfo
from app.hosts import push, status
from app.hosts.identity import GITHUB_NOREPLY, Requester, noreply_identity
from app.hosts.push import push_failure
from app.hosts.status_comment import MAX_COMMENT_CHARS, StatusComment, is_bots, wrote
from app.sandbox.base import GitCredentials, Sandbox, SandboxError, SandboxGone
from app.text.redact import Redactor
from app.transcript import current

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_PR_TITLE_CHARS = 256
# Live status edits of one run: at most one per this many seconds, written in the background
# like the other writes the run need not wait for (the run goes on); 0 writes each at once,
# in order, and waits for it.
STATUS_INTERVAL = 3.0
PULL_FAILED = "pushed the branch {branch}, but could not open or update its pull request: {error}"
PLAN_FAILED = "could not post the plan on #{number}, so nobody could approve it: {error}"


class RunRecord(Protocol):
    """What a GitHub host records about its run, for other processes and later runs to find
    (app.runs.lifecycle keeps it in the store)."""

    async def plan_asked(self, revision: int) -> None:
        """The plan (this revision) waits for an answer: called before it is shown."""
        ...

    async def status_comment_posted(self, comment_id: int) -> None: ...

    async def pull_request_opened(self, number: int) -> None: ...


class GitHubHost:
    """The GitHub side of one run. Build one per run invocation (start, resume or retry).

    client: an installation client scoped to `repo` (`GitHubApp.client(installation_id, repo)`),
    whose token renews itself. status_comment_id: the status comment recorded for this run, if
    any; record: where the host records its plan question, its status comment and its pull
    request (the run's lifecycle). secrets: configured secret values
    (`settings.secret_values()`), never to be posted.
    """

    def __init__(
        self,
        client: InstallationClient,
        *,
        repo: str,
        issue_number: int,
        run_id: str,
        requester: Requester,
        app_slug: str,
        status_comment_id: int | None = None,
        record: RunRecord | None = None,
        secrets: Iterable[str] = (),
        bot_user_id: int | None = None,
        email_domain: str = GITHUB_NOREPLY,
        status_interval: float = STATUS_INTERVAL,
    ) -> None:
        if not status.RUN_ID.fullmatch(run_id):
            raise ValueError(f"run id {run_id!r} must be 1-100 letters, digits or . _ : -")
        self.repo = repo
        self.issue_number = issue_number
        self.run_id = run_id
        self.requester = requester
        self.app_slug = app_slug
        self.bot = noreply_identity(f"{app_slug}[bot]", bot_user_id, email_domain)
        self._client = client
        self._email_domain = email_domain
        self._record = record
        self._scrub = Redactor(secrets)
        # Writes that need not hold the run back (live status, review request, an
        # auto-approved plan) run as tasks, paced after the run's urgent writes.
        self._background: set[asyncio.Task[None]] = set()
        self._started = False
        self._status = StatusComment(
            client,
            repo=repo,
            issue_number=issue_number,
            run_id=run_id,
            app_slug=app_slug,
            scrub=self._scrub,
            comment_id=status_comment_id,
            saved=record.status_comment_posted if record is not None else None,
            background=self._in_background,
            interval=status_interval,
        )

    def __repr__(self) -> str:
        return f"GitHubHost(repo={self.repo!r}, issue={self.issue_number}, run={self.run_id!r})"

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    @property
    def status_comment_id(self) -> int | None:
        return self._status.comment_id

    # --- RunHost ------------------------------------------------------------------------

    async def start(self) -> None:
        """Show the status comment now: create it, or take over the one this run already has
        (after a restart, a resume or a retry) with its checklist. Idempotent per host."""
        if not self._started:
            self._started = True
            await self._status.live(None)

    async def load_task(self) -> TaskText:
        """The issue and what people said on it (bots, including this App, left out).

        The first call of a new run, so it also puts the status comment up.
        """
        await self.start()
        issue = await self._call(self._client.get_issue, self.repo, self.issue_number)
        comments = await self._call(self._client.list_comments, self.repo, self.issue_number)
        return TaskText(
            title=issue.title,
            body=issue.body,
            comments=tuple(Remark(c.author, c.body) for c in comments if not c.author_is_bot),
            requested_by=noreply_identity(
                self.requester.login, self.requester.id, self._email_domain
            ),
            url=issue.html_url,
        )

    async def checkout(self) -> Checkout:
        """The clone URL exactly as GitHub reports it, and a fresh repo-scoped token."""
        info = await self._call(self._client.get_repo, self.repo)
        return Checkout(
            url=info.clone_url,
            credentials=await self._credentials(),
            default_branch=info.default_branch,
            bot=self.bot,
        )

    async def progress(self, step: StepName, detail: str, usage: Usage) -> None:
        self._status.usage = usage
        await self._status.live(lambda board: board.advance(step, detail))

    async def post_plan(
        self, plan: PlanDict, *, awaiting_approval: bool, revision: int | None = None
    ) -> None:
        """Post the plan. Idempotent: a plan already posted for this run is not posted again;
        with `revision`, that revision's comment is edited instead of adding another. A plan
        that waits is recorded as the run's question first: answers to it are then kept even
        while the run still parks."""
        if awaiting_approval:
            if self._record is not None:
                await self._record.plan_asked(revision or 1)
            await self._status.write(_mark_waiting, final=False, quiet=True)
        if not awaiting_approval:  # shown for information: the run goes on meanwhile
            await self._best_effort(self._post_plan_quietly(plan, revision))
            return
        try:
            await self._write(self._post_plan, plan, awaiting_approval, revision, urgent=True)
        except GitHubError as exc:
            if transient(exc) is not None:
                raise  # waited out, then posted
            # nobody could approve a plan nobody can see
            message = PLAN_FAILED.format(number=self.issue_number, error=exc)
            raise RunFailed(self._scrub(message)) from None

    async def _post_plan_quietly(self, plan: PlanDict, revision: int | None) -> None:
        try:
            await self._write(self._post_plan, plan, False, revision)
        except GitHubError as exc:
            log.warning("plan.post_failed", run=self.run_id, error=self._scrub(str(exc)))

    async def decide(self, request: ApprovalRequest) -> PlanDecision | None:
        """GitHub answers later, in a comment: the run waits durably and is resumed. The
        status says it waits before the run parks."""
        if self._status.interval > 0:
            await self._status.quiesce()
            await self._status.write(None, final=False)
        return None

    async def publish(self, sandbox: Sandbox, change: Change) -> Publication:
        """Push the branch (never forced), then update its open pull request or open a draft
        one, and ask the person who triggered the run to review it."""
        await self._push(sandbox, change)
        words = push.model_words(" ".join(change.title.split()), change, self.repo, self._scrub)
        title = words[:MAX_PR_TITLE_CHARS]
        title = title or change.branch
        body = push.pull_body(change, self.repo, self._scrub, MAX_COMMENT_CHARS)
        try:
            # The one write the run waits for: it takes the installation's next write slot.
            pull, created = await self._write(
                self._open_or_update_pull, change, title, body, urgent=True
            )
        except GitHubError as exc:
            if transient(exc) is not None:
                raise  # waited out: the resumed run finds the pushed branch and opens its PR
            message = PULL_FAILED.format(branch=change.branch, error=exc)
            raise RunFailed(self._scrub(message)) from None
        await self._best_effort(self._request_review(pull.number))
        if self._record is not None:
            await self._save(self._record.pull_request_opened, pull.number, "pull.save_failed")
        return Publication(branch=change.branch, url=pull.html_url, created=created)

    async def finish(self, outcome: RunOutcome) -> None:
        """The final status (or "waiting" for approval); never leaves "working" behind.
        Background writes are done first, so none lands after it."""
        await self._status.quiesce()
        await self.settle()
        await self._status.write(None, usage=outcome.usage, outcome=outcome)

    async def waiting_on(self, what: str, retry_at: datetime) -> None:
        """A transient fault: the status says what is unavailable and when the run resumes."""
        self._status.fault = status.Fault(what, retry_at)
        await self._status.write(None, final=False)

    async def settle(self) -> None:
        """Wait for the writes left in the background (live status, review request, plan)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- publishing -----------------------------------------------------------------------

    async def _push(self, sandbox: Sandbox, change: Change) -> None:
        """Push the change's branch with a fresh token; never forced."""
        credentials = await self._credentials()
        sandbox.add_secret(credentials.password)
        try:
            await asyncio.to_thread(
                sandbox.push, change.repo_dir, change.branch, credentials=credentials
            )
        except SandboxGone:
            raise
        except SandboxError as exc:
            if transient(exc) is not None:
                raise  # the git server unavailable: waited out, then pushed
            raise RunFailed(self._scrub(await push_failure(sandbox, change, exc))) from None
        current().emit("push", repo=self.repo, branch=change.branch, commit=change.commit)

    def _open_or_update_pull(self, change: Change, title: str, body: str) -> tuple[PullInfo, bool]:
        existing = self._client.find_pull(self.repo, change.branch)
        if existing is not None:
            pull = self._client.update_pull(self.repo, existing.number, title=title, body=body)
            wrote("pull request updated", pull.number, pull.html_url)
            return pull, False
        pull = self._client.create_draft_pull(
            self.repo, title=title, body=body, head=change.branch, base=change.base_branch
        )
        wrote("draft pull request opened", pull.number, pull.html_url)
        return pull, True

    async def _request_review(self, number: int) -> None:
        """Best effort: a review request that GitHub refuses never fails the publication."""
        try:
            await self._write(
                self._client.request_review, self.repo, number, [self.requester.login]
            )
            wrote(f"review requested from @{self.requester.login}", number)
        except GitHubError as exc:
            log.warning("pull.review_request_failed", run=self.run_id, error=self._scrub(str(exc)))

    # --- the plan comment -----------------------------------------------------------------

    def _post_plan(self, plan: PlanDict, awaiting_approval: bool, revision: int | None) -> None:
        posted = [
            (mark, comment)
            for comment in self._client.list_comments(self.repo, self.issue_number)
            if is_bots(comment, self.bot_login)
            and (mark := status.plan_mark(comment.body)) is not None
            and mark.run_id == self.run_id
        ]
        digest = status.plan_digest(plan, awaiting_approval)
        if revision is None:
            latest = max(posted, key=lambda found: found[0].revision, default=None)
            if latest is not None and latest[0].digest == digest:
                return  # this very plan is already on the issue
            revision = latest[0].revision + 1 if latest else 1
        body = self._scrub(
            status.render_plan(
                self.run_id,
                plan,
                revision=revision,
                awaiting_approval=awaiting_approval,
                slug=self.app_slug,
            )
        )[:MAX_COMMENT_CHARS]
        for mark, comment in posted:
            if mark.revision == revision:
                if mark.digest != digest:
                    self._client.update_comment(self.repo, comment.id, body)
                    wrote(f"plan (revision {revision}) edited", self.issue_number)
                return
        marker = status.PLAN_MARKER.format(run_id=self.run_id, revision=revision, digest=digest)
        self._client.create_comment(self.repo, self.issue_number, body, marker=marker)
        wrote(f"plan (revision {revision}) posted", self.issue_number)

    # --- helpers ----------------------------------------------------------------------------

    async def _save(self, save: Callable[[int], Awaitable[None]], number: int, event: str) -> None:
        """Record an id; a failure is logged, never raised."""
        try:
            await save(number)
        except Exception as exc:
            log.error(event, run=self.run_id, error=self._scrub(f"{type(exc).__name__}: {exc}"))

    async def _credentials(self) -> GitCredentials:
        token = await asyncio.to_thread(lambda: self._client.token)
        self._scrub.add(token)
        return GitCredentials(password=token)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(function, *args)

    async def _write(self, function: Callable[..., T], *args: object, urgent: bool = False) -> T:
        """A GitHub write: wait (asynchronously) for the installation's pace, then make it."""
        await self._client.pace(urgent=urgent)
        return await asyncio.to_thread(function, *args)

    async def _best_effort(self, work: Awaitable[None]) -> None:
        """A write the run need not wait for: in the background (awaited when live status is
        not coalesced, status_interval 0, so everything happens in order)."""
        if self._status.interval <= 0:
            await work
        else:
            self._in_background(work)

    def _in_background(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _mark_waiting(board: status.Board) -> None:
    board.waiting = True
