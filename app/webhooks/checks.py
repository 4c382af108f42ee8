"""Check events: a commit's CI completed (check_suite, check_run, workflow_run, workflow_job),
so CI autofix looks at it (app.webhooks.ci_fix); and a pull request opened or pushed to, where
an installation that cannot read checks is told so. The senders are CI bots (or open-swe
itself), so no bot filter and no permission check: the pull request and its repository's
settings decide."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from typing import Any

from app.github.errors import GitHubError
from app.webhooks.ci_fix import CiFix, Trigger, consider
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.gate import check_installation
from app.webhooks.routing import Outcome, Router

router = Router()
NODES = {
    "check_suite": "check_suite",
    "check_run": "check_run",
    "workflow_run": "workflow_run",
    "workflow_job": "workflow_job",
}
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
NO_COMMIT = "the event names no completed commit (or its check suite still runs)"
NO_HEAD = "the event names no pull request head"
GONE = frozenset({404, 410, 422})


def trigger(event: Event) -> Trigger | None:
    """The commit and the pull requests (of this repository) the event names."""
    node = NODES.get(event.name)
    sha = event.get(node, "head_sha") if node else None
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        return None
    if event.repo is None or event.installation_id is None:
        return None
    pulls = event.get(node, "pull_requests") if node else None
    if node == "check_run" and not pulls:
        pulls = event.get(node, "check_suite", "pull_requests")
    return Trigger(event.repo, event.installation_id, sha, _numbers(pulls, event.repo))


def _numbers(pulls: Any, repo: str) -> tuple[int, ...]:
    """Pull request numbers whose base is `repo` (GitHub also lists those of other repos)."""
    if not isinstance(pulls, list):
        return ()
    found = []
    for pull in pulls:
        if not isinstance(pull, Mapping):
            continue
        number = pull.get("number")
        base = pull.get("base")
        base_repo = base.get("repo") if isinstance(base, Mapping) else None
        url = base_repo.get("url") if isinstance(base_repo, Mapping) else None
        ours = not isinstance(url, str) or url.endswith(f"/repos/{repo}")
        if ours and isinstance(number, int) and not isinstance(number, bool) and 0 < number < 2**31:
            found.append(number)
    return tuple(dict.fromkeys(found))


def completed(event: Event, _slug: str | None) -> bool:
    """Pure: the event names a commit, and (for a check run) its suite has completed too; the
    suite's own `completed` event follows otherwise, so nothing is missed."""
    if event.name == "check_run" and event.get("check_run", "check_suite", "status") not in (
        None,
        "completed",
    ):
        return False
    return trigger(event) is not None


@router.route("check_suite", "completed", wants=completed, otherwise=NO_COMMIT)
@router.route("check_run", "completed", wants=completed, otherwise=NO_COMMIT)
@router.route("workflow_run", "completed", wants=completed, otherwise=NO_COMMIT)
@router.route("workflow_job", "completed", wants=completed, otherwise=NO_COMMIT)
async def on_ci_completed(ctx: HandlerContext, event: Event) -> Outcome:
    found = trigger(event)
    if found is None:
        return Outcome("ignored", NO_COMMIT)
    if (refusal := await check_installation(ctx, event)) is not None:
        return refusal
    return await _unless_gone(consider(ctx, found))


def pushed(event: Event) -> Trigger | None:
    """A pull request opened or pushed to: its new head commit."""
    sha = event.get("pull_request", "head", "sha")
    number = event.issue_number
    if not isinstance(sha, str) or not _SHA.fullmatch(sha) or number is None:
        return None
    if event.repo is None or event.installation_id is None:
        return None
    return Trigger(event.repo, event.installation_id, sha, (number,))


def has_head(event: Event, _slug: str | None) -> bool:
    return pushed(event) is not None


@router.route("pull_request", "opened", wants=has_head, otherwise=NO_HEAD)
@router.route("pull_request", "synchronize", wants=has_head, otherwise=NO_HEAD)
async def on_pull_pushed(ctx: HandlerContext, event: Event) -> Outcome:
    """Can CI autofix read this pull request's checks? An installation that has not accepted
    the checks/actions permissions gets no check events at all: this is where it is told."""
    found = pushed(event)
    if found is None:
        return Outcome("ignored", NO_HEAD)
    if (refusal := await check_installation(ctx, event)) is not None:
        return refusal
    return await _unless_gone(CiFix(ctx, found, found.pulls[0]).check_access())


async def _unless_gone(work: Awaitable[Outcome]) -> Outcome:
    try:
        return await work
    except GitHubError as exc:
        if exc.status not in GONE:
            raise
        # The repository, commit or pull request is gone, or out of the installation's reach.
        return Outcome("ignored", str(exc))
