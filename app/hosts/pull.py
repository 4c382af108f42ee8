"""GitHubPullHost: the RunHost of a follow-up on a pull request (a run of kind "pull").

Everything GitHubHost does for an issue (token, status comment on the conversation, secrets
scrubbed), with three differences:

- the task is the pull request (title, body, files changed, review comments) and what people
  asked of the run in their comments (the thread's inbox), all raw and untrusted;
- publishing pushes new commits to the pull request's own branch (never forced: a branch that
  moved on meanwhile fails the run with that reason) and opens nothing;
- the answer goes where the question was asked: a reply in the review thread for a review
  comment, else a comment on the pull request, each once per run (found again by a marker).

Pull requests from forks are refused: the App's token cannot push to someone else's fork.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from app.agent.host import Change, FileChange, Publication, Remark, RunOutcome, TaskText
from app.agent.workspace import RunFailed
from app.github.errors import GitHubError
from app.github.types import PullInfo, ReviewCommentInfo
from app.hosts import status
from app.hosts.github import GitHubHost
from app.hosts.identity import noreply_identity
from app.hosts.status_comment import MAX_COMMENT_CHARS, is_bots, wrote
from app.runs.models import StoredCommand
from app.sandbox.base import Sandbox
from app.text.github import defuse_mentions

log = structlog.get_logger(__name__)

FORK = (
    "pull request #{number} comes from a fork ({head}), and open-swe cannot push to a fork: "
    "push the change yourself, or open the pull request from a branch of this repository"
)
CLOSED = "pull request #{number} is {state}: reopen it to ask for changes"
PUSHED = "I pushed {commit} to `{branch}`: **{title}**\n\n{body}"
NOT_PUSHED = {
    "no_changes": "I looked into this but changed nothing, so there is nothing new on the branch.",
    "failed": "I could not make this change: {reason}",
    "stopped": "I stopped before pushing anything: {reason}",
}
REPLY_MARKER = "<!-- open-swe:follow-up run={run_id} -->"


class Requests(Protocol):
    """What the run was asked (app.runs.inbox.RunInbox)."""

    async def requests(self) -> list[StoredCommand]:
        """Take what is pending, then everything asked of the run, oldest first."""
        ...

    async def asked(self) -> list[StoredCommand]:
        """What the run has already taken."""
        ...


class GitHubPullHost(GitHubHost):
    """The GitHub side of one follow-up run on pull request `issue_number`."""

    def __init__(self, *args: Any, inbox: Requests, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inbox = inbox
        self._pull: PullInfo | None = None
        self._answered = False

    def __repr__(self) -> str:
        return f"GitHubPullHost(repo={self.repo!r}, pull={self.issue_number}, run={self.run_id!r})"

    async def pull(self) -> PullInfo:
        """The pull request, checked: open, and from a branch of this repository."""
        if self._pull is None:
            pull = await self._call(self._client.get_pull, self.repo, self.issue_number)
            if pull.is_fork:
                head = pull.head_repo or "a deleted fork"
                raise RunFailed(FORK.format(number=pull.number, head=head))
            if pull.state != "open":
                raise RunFailed(CLOSED.format(number=pull.number, state=pull.state))
            self._pull = pull
        return self._pull

    async def head_branch(self) -> str:
        return (await self.pull()).head_ref

    # --- RunHost ------------------------------------------------------------------------

    async def load_task(self) -> TaskText:
        await self.start()
        pull = await self.pull()
        asked = await self._inbox.requests()
        files = await self._call(self._client.pull_files, self.repo, self.issue_number)
        reviews = await self._call(self._client.list_review_comments, self.repo, self.issue_number)
        asked_in_review = {c.comment_id for c in asked if c.source == "review_comment"}
        return TaskText(
            title=pull.title,
            body=pull.body,
            kind="pull",
            files=tuple(FileChange(f.filename, f.additions, f.deletions) for f in files),
            review_comments=tuple(
                Remark(r.author, r.body, path=r.path, line=r.line)
                for r in reviews
                if not r.author_is_bot and r.id not in asked_in_review
            ),
            requests=tuple(Remark(c.author, c.text, path=c.path, line=c.line) for c in asked),
            requested_by=noreply_identity(
                self.requester.login, self.requester.id, self._email_domain
            ),
            url=pull.html_url,
        )

    async def publish(self, sandbox: Sandbox, change: Change) -> Publication:
        """Push the new commits to the pull request's branch and say what changed."""
        await self._push(sandbox, change)
        title = defuse_mentions(" ".join(change.title.split()))
        body = PUSHED.format(
            commit=change.commit,
            branch=change.branch,
            title=title,
            body=defuse_mentions(change.body),
        )
        await self._answer(body)
        return Publication(branch=change.branch, url=None, created=False)

    async def finish(self, outcome: RunOutcome) -> None:
        """The final status; a run that pushed nothing also answers in the review thread it
        was asked in (the status comment lives in the conversation, out of a reviewer's view)."""
        await super().finish(outcome)
        template = NOT_PUSHED.get(outcome.status)
        if template is None:
            return
        target = await self._asked_first()
        if target is not None and target.source == "review_comment":
            reason = outcome.reason or status.DEFAULT_STOP_REASON
            await self._answer(template.format(reason=status.inline(reason)))

    # --- the answer -----------------------------------------------------------------------

    async def _asked_first(self) -> StoredCommand | None:
        try:
            asked = await self._inbox.asked()
        except Exception as exc:  # the answer is a courtesy: never fail the run over it
            log.warning("follow_up.requests_unreadable", run=self.run_id, error=str(exc))
            return None
        return asked[0] if asked else None

    async def _answer(self, text: str) -> None:
        """Answer once per run where the request was made; best effort (logged on failure)."""
        if self._answered:
            return
        marker = REPLY_MARKER.format(run_id=self.run_id)
        body = self._scrub(f"{text}\n\n{marker}")[:MAX_COMMENT_CHARS]
        target = await self._asked_first()
        try:
            if target is not None and target.source == "review_comment" and target.comment_id:
                await self._write(self._reply_in_review, target.comment_id, body, marker)
            else:
                await self._write(self._comment_once, body, marker)
            self._answered = True
        except GitHubError as exc:
            log.warning("follow_up.answer_failed", run=self.run_id, error=self._scrub(str(exc)))

    def _reply_in_review(self, comment_id: int, body: str, marker: str) -> None:
        reviews = self._client.list_review_comments(self.repo, self.issue_number)
        asked = next((r for r in reviews if r.id == comment_id), None)
        root = _thread_root(asked) if asked is not None else comment_id
        if any(_in_thread(r, root) and r.author_is_bot and marker in r.body for r in reviews):
            return  # answered before a restart
        self._client.reply_to_review_comment(self.repo, self.issue_number, root, body)
        wrote("reply in the review thread posted", self.issue_number)

    def _comment_once(self, body: str, marker: str) -> None:
        comments = self._client.list_comments(self.repo, self.issue_number)
        if any(is_bots(c, self.bot_login) and marker in c.body for c in comments):
            return
        self._client.create_comment(self.repo, self.issue_number, body, marker=marker)
        wrote("answer posted", self.issue_number)


def _thread_root(comment: ReviewCommentInfo) -> int:
    """Replies go to a review thread's first comment (GitHub does not nest replies)."""
    return comment.in_reply_to_id or comment.id


def _in_thread(comment: ReviewCommentInfo, root: int) -> bool:
    return comment.id == root or comment.in_reply_to_id == root
