"""The status comment of one run: found (by id or hidden marker) or created, then edited in
place; live updates coalesced to at most one write per interval, in the background; the final
status written last and never overwritten by a late live update. Never raises: a status
comment must not take the run down.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from app.agent.host import RunOutcome
from app.agent.usage import Usage
from app.github.client import InstallationClient
from app.github.errors import GitHubError, NotFound
from app.github.types import CommentInfo
from app.hosts import status
from app.text.redact import Redactor
from app.transcript import current

log = structlog.get_logger(__name__)

MAX_COMMENT_CHARS = 65_000  # GitHub refuses bodies over 65,536 characters
Change = Callable[[status.Board], None]


class Saver(Protocol):
    async def __call__(self, comment_id: int) -> None: ...


def wrote(action: str, number: int, url: str | None = None) -> None:
    """A write on GitHub, into the run's transcript (app.transcript)."""
    current().emit("github", action=action, number=number, url=url)


def is_bots(comment: CommentInfo, bot_login: str) -> bool:
    """Was the comment written by this App?"""
    return comment.author_is_bot and comment.author.lower() == bot_login.lower()


class StatusComment:
    """client: scoped to `repo`; saved: records a newly created comment's id (the run's
    lifecycle); background: runs a write the run need not wait for; interval: seconds between
    live writes (0: each written at once, awaited)."""

    def __init__(
        self,
        client: InstallationClient,
        *,
        repo: str,
        issue_number: int,
        run_id: str,
        app_slug: str,
        scrub: Redactor,
        comment_id: int | None,
        saved: Saver | None,
        background: Callable[[Awaitable[None]], asyncio.Task[None]],
        interval: float,
    ) -> None:
        self._client = client
        self.repo = repo
        self.issue_number = issue_number
        self.run_id = run_id
        self.app_slug = app_slug
        self._scrub = scrub
        self._saved = saved
        self._background = background
        self.interval = interval
        # Written from worker threads, one write at a time, in order.
        self._lock = threading.Lock()
        self.comment_id = comment_id
        self._located = False
        self._closed = False  # a final status was written: later live updates are dropped
        self._board = status.Board()
        self._pending: list[Change] = []  # not yet applied to _board
        self._pending_lock = threading.Lock()  # held briefly, never across a GitHub call
        self.usage = Usage()
        self.fault: status.Fault | None = None
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # a status write of the run's own is next: stop waiting

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    async def live(self, change: Change | None) -> None:
        """A live update: applied with the next write, at most one per status interval,
        in the background (with no interval: written now, awaited)."""
        if self.interval <= 0:
            await self.write(change, final=False)
            return
        if change is not None:
            with self._pending_lock:
                self._pending.append(change)
        if self._task is None or self._task.done():
            self._task = self._background(self._writer())

    async def _writer(self) -> None:
        """Writes the live status, then again at most every interval while updates came in."""
        loop = asyncio.get_running_loop()
        while True:
            written = loop.time()
            await self.write(None, final=False)
            wait = max(self.interval - (loop.time() - written), 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), wait)
            with self._pending_lock:
                more = bool(self._pending)
            if not more or self._closed or self._hurry.is_set():
                return  # the write that hurried it carries what is left

    async def quiesce(self) -> None:
        """Stop the live status writer (after its write in progress) before writing now."""
        task = self._task
        if task is not None and not task.done():
            self._hurry.set()
            await asyncio.gather(task, return_exceptions=True)
        self._hurry.clear()

    async def write(
        self,
        change: Change | None,
        *,
        usage: Usage | None = None,
        outcome: RunOutcome | None = None,
        final: bool | None = None,
        quiet: bool = False,
    ) -> None:
        """Apply `change` to the checklist and write the comment. Never raises."""
        is_final = (
            final if final is not None else outcome is not None and outcome.status != "waiting"
        )
        if usage is not None:
            self.usage = usage
        created = None
        try:
            if not quiet:
                await self._client.pace(urgent=is_final)
            created = await asyncio.to_thread(self._write_now, change, outcome, is_final, quiet)
        except GitHubError as exc:
            log.warning("status.update_failed", run=self.run_id, error=self._scrub(str(exc)))
        except Exception as exc:  # a status comment must never take the run down
            log.error(
                "status.update_crashed",
                run=self.run_id,
                error=self._scrub(f"{type(exc).__name__}: {exc}"),
            )
        if created is not None and self._saved is not None:
            try:
                await self._saved(created)
            except Exception as exc:
                error = self._scrub(f"{type(exc).__name__}: {exc}")
                log.error("status.save_failed", run=self.run_id, error=error)

    def _write_now(
        self,
        change: Change | None,
        outcome: RunOutcome | None,
        final: bool,
        quiet: bool,
    ) -> int | None:
        """In a worker thread. Returns the id of a newly created status comment."""
        with self._lock:
            if self._closed and not final:
                return None  # a late live update must not overwrite the final status
            with self._pending_lock:
                if change is not None:
                    self._pending.append(change)
            self._locate()  # may raise: the changes wait for the next write
            with self._pending_lock:
                changes, self._pending = self._pending, []
            for pending in changes:
                pending(self._board)
            if quiet:
                return None
            if final:
                self._closed = True
            body = status.render_status(
                self.run_id, self._board, self.usage, self.app_slug, outcome, self.fault
            )
            self.fault = None  # shown once: the next write is the run at work again
            body = self._scrub(body)[:MAX_COMMENT_CHARS]
            if self.comment_id is not None:
                try:  # the GitHub layer retries this edit's server errors (a PATCH repeats safely)
                    self._client.update_comment(self.repo, self.comment_id, body)
                    wrote("status comment edited", self.issue_number)
                    return None
                except NotFound:  # deleted by someone: post a new one
                    self.comment_id = None
            marker = status.STATUS_MARKER.format(run_id=self.run_id)
            try:
                comment = self._client.create_comment(
                    self.repo, self.issue_number, body, marker=marker
                )
            except GitHubError:
                self._located = False  # it may exist after all: look before creating again
                raise
            self.comment_id = comment.id
            wrote("status comment posted", self.issue_number)
            return comment.id

    def _locate(self) -> None:
        """Find this run's status comment (by id or marker) and take over its checklist."""
        if self._located:
            return
        try:
            comments = self._client.list_comments(self.repo, self.issue_number)
        except GitHubError as exc:
            if self.comment_id is None:
                raise  # creating one blindly could post a duplicate; try again next time
            log.warning("status.lookup_failed", run=self.run_id, error=self._scrub(str(exc)))
            self._located = True
            return
        mine = [c for c in comments if is_bots(c, self.bot_login)]
        found = next((c for c in mine if c.id == self.comment_id), None) or next(
            (c for c in mine if status.status_run_id(c.body) == self.run_id), None
        )
        self.comment_id = found.id if found else None
        if found is not None and (board := status.Board.load(found.body)) is not None:
            self._board = board
        self._located = True
