"""What background handlers work with: the store, GitHub, the dispatcher, the App's slug, and
the runs' lifecycle (every change of a run's status goes through it).

The GitHub layer is blocking (PyGithub); every call goes through `to_thread` here so handlers
stay plain async code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread
import structlog

from app.github.app import GitHubApp
from app.github.client import InstallationClient
from app.github.errors import GitHubError
from app.github.types import ReactionTarget
from app.runs.dispatch import Dispatcher
from app.runs.lifecycle import Lifecycle
from app.runs.models import Run
from app.runs.store import Store
from app.sandbox.types import SandboxProvider
from app.webhooks.event import Event

T = TypeVar("T")
log = structlog.get_logger(__name__)


FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0


class AppSlug:
    """The App's slug: from settings, else asked of GitHub (in a thread) and cached.

    Until it is known, mentions address nobody (`app.commands`). A failed lookup is tried again
    on the next `resolve`, but no sooner than a delay that doubles from FIRST_RETRY_SECONDS up
    to MAX_RETRY_SECONDS; `learn` keeps trying in the background until it succeeds.
    """

    def __init__(
        self,
        configured: str | None,
        github: GitHubApp | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        first_retry: float = FIRST_RETRY_SECONDS,
    ) -> None:
        self._slug = configured
        self._github = github
        self._clock = clock
        self._delay = first_retry
        self._next_try = float("-inf")

    @property
    def known(self) -> str | None:
        """The slug if already known; never blocks (for the request path)."""
        return self._slug

    async def resolve(self) -> str | None:
        if self._slug is None and self._github is not None and self._clock() >= self._next_try:
            try:
                self._slug = await anyio.to_thread.run_sync(self._github.slug)
            except GitHubError as exc:
                self._next_try = self._clock() + self._delay
                log.warning("cannot learn the App slug yet", error=str(exc), retry_in=self._delay)
                self._delay = min(self._delay * 2, MAX_RETRY_SECONDS)
        return self._slug

    async def learn(self) -> None:
        """Ask GitHub until the slug is known (the server runs this in the background)."""
        # A timed backoff, not a wait for an event: nothing else would tell us to try again.
        while await self.resolve() is None and self._github is not None:  # noqa: ASYNC110
            await anyio.sleep(max(self._next_try - self._clock(), 0.0))


def reply_marker(delivery_id: str) -> str:
    """Hidden in each answer; delivery ids are checked to be [A-Za-z0-9._:-] on receipt."""
    return f"<!-- open-swe:reply {delivery_id} -->"


@dataclass
class HandlerContext:
    store: Store
    github: GitHubApp
    dispatcher: Dispatcher
    slug: AppSlug
    web_url: str  # https://github.com, or the GitHub Enterprise web address
    # Where runs' sandboxes live, built on first use: a closed pull request's kept one is
    # released (None: no sandbox to release here, e.g. in tests of other events).
    sandboxes: Callable[[], SandboxProvider] | None = None
    max_ci_fix_attempts: int = 3  # CI autofix: fix runs per pull request (app.ci)
    lifecycle: Lifecycle = field(init=False)  # how handlers move runs: start, answer, stop

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.dispatcher)

    async def call(
        self, installation_id: int, repo: str, action: Callable[[InstallationClient], T]
    ) -> T:
        """Run `action` with a client for the installation, scoped to `repo`, in a thread."""

        def work() -> T:
            return action(self.github.client(installation_id, repo))

        return await anyio.to_thread.run_sync(work)

    async def on_thread(self, event: Event, action: Callable[[InstallationClient, str], T]) -> T:
        """`call` for the delivery's own repository: `action(client, repo)`."""
        installation_id, repo = event.installation_id, event.repo
        assert installation_id is not None, "gated before use"
        assert repo is not None, "gated before use"
        return await self.call(installation_id, repo, lambda client: action(client, repo))

    async def pace(self, event: Event) -> None:
        """Wait for a write slot of the delivery's installation (app.github.pacing): on the
        event loop, so no worker thread sleeps."""
        if event.installation_id is not None:
            await self.github.pacer.write(event.installation_id)

    async def react(self, event: Event, target: ReactionTarget) -> None:
        """The immediate acknowledgement. Reacting twice is harmless (GitHub answers 200).

        Best effort: a reaction GitHub refuses must not stop the work it acknowledges.
        """
        try:
            await self.pace(event)
            await self.on_thread(
                event, lambda client, repo: client.add_reaction(repo, target, "eyes")
            )
        except GitHubError as exc:
            log.warning("cannot add the eyes reaction", target=target.kind, error=str(exc))

    async def reply_once(self, event: Event, body: str) -> None:
        """Answer a delivery with one comment, never twice for the same delivery.

        Review comments are answered in their review thread; everything else on the issue or
        pull request.
        """
        delivery = await self.store.delivery(event.delivery_id)
        if delivery is not None and delivery.reply_comment_id is not None:
            return
        number = event.issue_number
        assert number is not None, "only deliveries about an issue or PR are answered"
        await self.pace(event)
        comment = event.comment
        if comment is not None and comment.source == "review_comment" and comment.thread_root:
            root = comment.thread_root
            posted = await self.on_thread(
                event, lambda client, repo: client.reply_to_review_comment(repo, number, root, body)
            )
        else:
            # The hidden marker lets a retry after a lost answer find the comment, not repost it.
            marker = reply_marker(event.delivery_id)
            marked = f"{body}\n\n{marker}"
            posted = await self.on_thread(
                event,
                lambda client, repo: client.create_comment(repo, number, marked, marker=marker),
            )
        await self.store.set_delivery_reply(event.delivery_id, posted.id)

    def run_link(self, run: Run) -> str:
        """How a comment refers to a run: its status comment when it has one."""
        if run.status_comment_id is not None:
            url = f"{self.web_url}/{run.repo}/issues/{run.number}#issuecomment-{run.status_comment_id}"
            return f"[run `{run.id[:8]}`]({url})"
        return f"run `{run.id[:8]}`"
