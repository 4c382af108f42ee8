"""Conversations on pull requests, end to end through the real HTTP app: follow-ups push new
commits to the PR's branch, review comments are answered in their thread, stop and retry,
two follow-ups make one run, and the refusals start nothing.

The deliveries are the recorded `issue_comment.created.on-pull-request` and
`pull_request_review_comment.created` payloads, moved onto the repository of the fake GitHub
(whose copy is a bare repository on disk), addressed to the App and signed.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.hosts import status
from app.hosts.pull import PUSHED, REPLY_MARKER
from app.runs.models import FINISHED_STATUSES, Run, thread_key
from app.webhooks import messages
from app.webhooks.event import sign
from tests.agent.conftest import (
    BUGGY,
    FIXED,
    TEST_COMMAND,
    edit_calc,
    git,
    repo_path,
    script_fix,
    script_pr,
)
from tests.e2e.conftest import (
    READER,
    REPO,
    SLUG,
    WEBHOOK_SECRET,
    WRITER,
    World,
    eventually,
    payload,
)
from tests.fakes.github import Comment, PullRequest, ReviewComment
from tests.fakes.model import ModelRequest, Reply, Slow, calls, offers, text, tool

pytestmark = pytest.mark.slow

HEAD = "calc-docs"  # the pull request's branch, in the repository itself
PR_TITLE = "Document calc"
PR_BODY = "Adds NOTES.md about calc.py."
REQUEST = "please also fix add(), it subtracts"
EDITED = "delete every test instead"
STOPPED_QUICKLY = 10.0  # seconds from the stop command to a stopped run


@pytest.fixture
def pull(world: World, tmp_path: Path) -> PullRequest:
    """Pull request #2 from HEAD, one commit ahead of main (which has the bug)."""
    work = tmp_path / "pr-work"
    git(tmp_path, "clone", "-q", str(world.remote), str(work))
    git(work, "switch", "-q", "-c", HEAD)
    (work / "NOTES.md").write_text("calc.py adds numbers.\n")
    git(work, "add", "-A")
    git(
        work, "-c", "user.name=Carol", "-c", "user.email=carol@example.com", "commit", "-qm", "docs"
    )
    git(work, "push", "-q", "origin", HEAD)
    made = world.gh.add_pull(
        REPO,
        head=HEAD,
        title=PR_TITLE,
        body=PR_BODY,
        user=WRITER,
        files=[("NOTES.md", "added", 1, 0)],
    )
    assert made.issue.number == 2
    return made


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def thread(pull: PullRequest) -> str:
    return thread_key(REPO, pull.issue.number)


def on_pull_request(comment: Comment, *, kind: str = "User") -> dict[str, Any]:
    """issue_comment.created.on-pull-request for a comment stored in the fake, on REPO."""
    data = payload("issue_comment.created.on-pull-request")
    data["repository"] = payload("issues.labeled")["repository"]  # Codertocat/Hello-World
    data["issue"] |= {"number": comment.issue_number, "title": PR_TITLE, "body": PR_BODY}
    data["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/{REPO}/pulls/{comment.issue_number}",
        "html_url": f"https://github.com/{REPO}/pull/{comment.issue_number}",
    }
    data["comment"] |= {"id": comment.id, "body": comment.body}
    return as_sender(data, comment.user, kind)


def review_commented(comment: ReviewComment, pull: PullRequest) -> dict[str, Any]:
    """pull_request_review_comment.created for a review comment stored in the fake."""
    data = payload("pull_request_review_comment.created")
    data["pull_request"] |= {"number": pull.issue.number, "title": PR_TITLE, "body": PR_BODY}
    data["pull_request"]["head"]["ref"] = HEAD
    data["comment"] |= {
        "id": comment.id,
        "body": comment.body,
        "path": comment.path,
        "line": comment.line,
        "original_line": comment.line,
    }
    if comment.in_reply_to_id is not None:
        data["comment"]["in_reply_to_id"] = comment.in_reply_to_id
    return as_sender(data, comment.user, "User")


def as_sender(data: dict[str, Any], login: str, kind: str) -> dict[str, Any]:
    person = {"login": login, "type": kind}
    data["comment"]["user"] = copy.deepcopy(data["comment"]["user"]) | person
    data["sender"] = copy.deepcopy(data["sender"]) | person
    return data


async def deliver(
    world: World, http: httpx.AsyncClient, event: str, data: dict[str, Any]
) -> dict[str, Any]:
    """POST a signed delivery and wait until the app has processed it; its JSON answer."""
    assert world.server is not None
    assert world.store is not None
    body = json.dumps(data).encode()
    delivery = str(uuid.uuid4())
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET.encode()),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/e2e",
    }
    response = await http.post(f"{world.server.url}/webhooks/github", content=body, headers=headers)
    assert response.status_code in (200, 202), response.text
    store = world.store

    async def processed() -> bool:
        found = await store.delivery(delivery)
        return found is not None and found.processed_at is not None

    await eventually(processed, "the delivery to be processed", within=30)
    answer: dict[str, Any] = response.json()
    return answer


async def say(
    world: World, http: httpx.AsyncClient, pull: PullRequest, body: str, *, user: str = WRITER
) -> Comment:
    """A person comments on the pull request's conversation."""
    comment = world.gh.add_comment(REPO, pull.issue.number, body, user=user)
    await deliver(world, http, "issue_comment", on_pull_request(comment))
    return comment


async def runs(world: World, pull: PullRequest) -> list[Run]:
    assert world.store is not None
    return await world.store.runs_on_thread(thread(pull))


async def finished(world: World, pull: PullRequest, count: int = 1) -> Run:
    """The newest run, once `count` runs exist and the newest has finished."""

    async def check() -> Run | None:
        found = await runs(world, pull)
        done = len(found) >= count and found[0].status in FINISHED_STATUSES
        return found[0] if done else None

    run: Run = await eventually(check, f"run {count} on the pull request to finish")
    return run


def bot_comments(world: World, pull: PullRequest) -> list[str]:
    return [
        c.body
        for c in world.gh.comments.values()
        if (c.repo, c.issue_number) == (REPO, pull.issue.number) and c.user == f"{SLUG}[bot]"
    ]


def answers(world: World, pull: PullRequest) -> list[str]:
    """Bot comments on the PR that are neither status comments nor the reaction to a command."""
    return [b for b in bot_comments(world, pull) if status.status_run_id(b) is None]


def status_of(world: World, pull: PullRequest, run: Run) -> str:
    [body] = [b for b in bot_comments(world, pull) if status.status_run_id(b) == run.id]
    return body


def head_of(world: World) -> str:
    return git(world.remote, "rev-parse", HEAD)


def acknowledged_first(world: World, comment: Comment, answer: str) -> bool:
    """The `eyes` reaction on `comment` reached GitHub before the answer to it."""
    calls = [c for c in world.gh.calls if c.method == "POST" and c.status < 300]
    reaction = f"/repos/{REPO}/issues/comments/{comment.id}/reactions"
    conversation = f"/repos/{REPO}/issues/{comment.issue_number}/comments"
    reacted = next(i for i, c in enumerate(calls) if c.path == reaction)
    answered = next(
        i for i, c in enumerate(calls) if c.path == conversation and answer in c.json["body"]
    )
    return reacted < answered


def shown(body: str) -> str:
    """A comment without its hidden markers, as people read it."""
    return body.split("\n\n<!-- open-swe:")[0]


# --- follow-ups ----------------------------------------------------------------------------


async def test_a_follow_up_adds_a_commit_to_the_branch_and_answers_on_the_pull_request(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    script_fix(world.model)
    script_pr(world.model)
    await world.start()
    before = head_of(world)

    asked = await say(world, http, pull, f"@{SLUG} {REQUEST}")
    # edited once accepted: the edit is not a trigger, and the run keeps the text it accepted
    world.gh.comments[asked.id].body = f"@{SLUG} {EDITED}"
    edited = on_pull_request(world.gh.comments[asked.id]) | {"action": "edited"}
    assert (await deliver(world, http, "issue_comment", edited))["status"] == "ignored"
    run = await finished(world, pull)

    assert (run.status, run.kind, run.auto_approve) == ("succeeded", "pull", True), run.error
    assert len(await runs(world, pull)) == 1
    assert EDITED not in "".join(world.model.bodies())
    assert world.model.unmatched == []
    # one new commit on the pull request's branch, on top of its head (no force push)
    after = head_of(world)
    assert git(world.remote, "rev-parse", f"{after}~1") == before
    assert git(world.remote, "show", f"{HEAD}:calc.py") + "\n" == FIXED
    assert git(world.remote, "show", f"{HEAD}:NOTES.md") == "calc.py adds numbers."
    assert git(world.remote, "show", "main:calc.py") + "\n" == BUGGY
    assert git(world.remote, "log", "-1", "--format=%an", HEAD) == f"{SLUG}[bot]"
    # no new pull request; one answer saying what changed; the status comment says pushed
    assert list(world.gh.pulls) == [(REPO, 2)]
    [answer] = answers(world, pull)
    assert shown(answer).startswith(
        PUSHED.format(commit=after, branch=HEAD, title="Fix add() to return the sum", body="")
    )
    assert REPLY_MARKER.format(run_id=run.id) in answer
    assert status.HEADER_SUCCEEDED_BRANCH.format(branch=f"`{HEAD}`") in status_of(world, pull, run)
    eyes = world.gh.reactions_on(REPO, "issue_comment", asked.id)
    assert [r.content for r in eyes] == ["eyes"]
    # the model saw the pull request and the request, fenced; it made no plan
    assert world.model.requests_offering("SubmitPlan") == []
    first = world.model.requests_offering("edit_file")[0].text
    assert f'<untrusted source="pull request #2 title">\n{PR_TITLE}' in first
    assert PR_BODY in first
    assert "NOTES.md (+1 -0)" in first
    assert f'<untrusted source="request by {WRITER}">\n{REQUEST}' in first


async def test_a_review_comment_is_answered_in_its_review_thread(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    script_fix(world.model)
    script_pr(world.model)
    await world.start()
    root = world.gh.add_review_comment(
        REPO, 2, "This subtracts.", user=READER, path="calc.py", line=2
    )
    asked = world.gh.add_review_comment(
        REPO, 2, f"@{SLUG} fix it here", user=WRITER, path="calc.py", line=2, in_reply_to_id=root.id
    )

    await deliver(world, http, "pull_request_review_comment", review_commented(asked, pull))
    run = await finished(world, pull)

    assert run.status == "succeeded", run.error
    assert git(world.remote, "show", f"{HEAD}:calc.py") + "\n" == FIXED
    replies = [c for c in world.gh.review_comments.values() if c.user == f"{SLUG}[bot]"]
    [reply] = replies
    assert reply.in_reply_to_id == root.id  # in the thread, not on the conversation
    assert shown(reply.body).startswith(f"I pushed {head_of(world)} to `{HEAD}`")
    assert answers(world, pull) == []
    eyes = world.gh.reactions_on(REPO, "review_comment", asked.id)
    assert [r.content for r in eyes] == ["eyes"]
    first = world.model.requests_offering("edit_file")[0].text
    assert f'<untrusted source="request by {WRITER} on calc.py line 2">\nfix it here' in first
    assert f'<untrusted source="review comment by {READER} on calc.py line 2">' in first


async def test_two_follow_ups_in_quick_succession_make_one_run_that_hears_both(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    second = "and add a docstring to add()"

    def docstring(request: ModelRequest) -> Reply:
        return tool(
            "edit_file",
            file_path=f"{repo_path(request)}/calc.py",
            old_string="def add(a, b):\n",
            new_string='def add(a, b):\n    """The sum."""\n',
        )

    world.model.on(
        offers("edit_file"),
        Slow(3, calls(("write_todos", {"todos": [{"content": "fix", "status": "pending"}]}))),
        edit_calc,
        docstring,
        tool("execute", command=TEST_COMMAND),
        text("Fixed add() and documented it."),
    )
    script_pr(world.model)
    await world.start()

    await say(world, http, pull, f"/open-swe {REQUEST}")
    await eventually(lambda: world.model.requests_offering("edit_file"), "the agent to start")
    await say(world, http, pull, f"@{SLUG} {second}")
    run = await finished(world, pull)

    assert run.status == "succeeded", run.error
    assert len(await runs(world, pull)) == 1  # the second joined the run, started nothing
    texts = [r.text for r in world.model.requests_offering("edit_file")]
    assert REQUEST in texts[0]
    assert second not in texts[0]
    assert f'<untrusted source="instruction from {WRITER}">\n{second}' in texts[-1]
    assert '"""The sum."""' in git(world.remote, "show", f"{HEAD}:calc.py")
    assert messages.ALREADY_RUNNING_NOTED.split("(")[0] in "\n".join(answers(world, pull))
    [pushed] = [a for a in answers(world, pull) if a.startswith("I pushed")]
    assert head_of(world) in pushed


# --- stop and retry --------------------------------------------------------------------------


async def test_stop_ends_a_slow_run_at_once_and_retry_completes_it(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    world.model.on(
        offers("edit_file"),
        Slow(30, text("far too late")),  # the stopped run's model never answers in time
        edit_calc,
        tool("execute", command=TEST_COMMAND),
        text("Changed add() to return the sum."),
    )
    script_pr(world.model)
    await world.start()
    before = head_of(world)

    await say(world, http, pull, f"@{SLUG} {REQUEST}")
    await eventually(lambda: world.model.requests_offering("edit_file"), "the slow model call")
    [working] = await runs(world, pull)
    asked_at = time.monotonic()
    stop = await say(world, http, pull, "/open-swe stop")
    stopped = await finished(world, pull)

    assert time.monotonic() - asked_at < STOPPED_QUICKLY
    assert (stopped.id, stopped.status) == (working.id, "stopped")

    def says_stopped() -> str | None:
        body = status_of(world, pull, stopped)
        return body if status.HEADER_STOPPED.format(reason="") in body else None

    body: str = await eventually(says_stopped, "the status comment to say stopped")
    assert f"stopped by @\u200b{WRITER}" in body  # who stopped it (without pinging them)
    assert messages.STOPPED.split(" (")[0] in "\n".join(answers(world, pull))
    assert [r.content for r in world.gh.reactions_on(REPO, "issue_comment", stop.id)] == ["eyes"]
    assert acknowledged_first(world, stop, messages.STOPPED.split(" (")[0])
    assert world.sandboxes() == []  # released
    assert head_of(world) == before  # nothing pushed

    await say(world, http, pull, "/open-swe retry")
    retried = await finished(world, pull, count=2)

    assert retried.status == "succeeded", retried.error
    assert git(world.remote, "rev-parse", f"{HEAD}~1") == before
    assert git(world.remote, "show", f"{HEAD}:calc.py") + "\n" == FIXED
    assert world.model.unmatched == []
    retried_request = world.model.requests_offering("edit_file")[1].text
    assert REQUEST in retried_request  # the retry works on what the stopped run was asked
    assert head_of(world) in "\n".join(answers(world, pull))
    # it went on from the stopped run's last good step: prepared once, by the stopped run
    assert f"branch {HEAD} from main" in status_of(world, pull, stopped)
    assert f"branch {HEAD} from main" not in status_of(world, pull, retried)
    assert status.HEADER_SUCCEEDED_BRANCH.format(branch=f"`{HEAD}`") in status_of(
        world, pull, retried
    )


async def test_status_help_and_unknown_words_are_answered_on_the_pull_request(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    script_fix(world.model)
    script_pr(world.model)
    await world.start()
    await say(world, http, pull, f"@{SLUG} {REQUEST}")
    run = await finished(world, pull)
    before = len(answers(world, pull))

    asked = await say(world, http, pull, "/open-swe status")
    await say(world, http, pull, f"@{SLUG} help")
    await say(world, http, pull, "/open-swe frobnicate")

    status_answer, help_answer, unknown_answer = [shown(a) for a in answers(world, pull)[before:]]
    assert "**succeeded**" in status_answer
    link = f"{world.gh.web_url}/{REPO}/issues/2#issuecomment-{run.status_comment_id}"
    assert f"[run `{run.id[:8]}`]({link})" in status_answer
    assert help_answer == messages.HELP.format(slug=SLUG)
    assert unknown_answer == messages.UNKNOWN_COMMAND.format(word="frobnicate", slug=SLUG)
    assert acknowledged_first(world, asked, "**succeeded**")
    assert len(await runs(world, pull)) == 1  # none of them started anything


# --- refusals --------------------------------------------------------------------------------


async def assert_nothing_started(world: World, pull: PullRequest) -> None:
    assert await runs(world, pull) == []
    assert world.model.requests == []
    assert world.sandboxes() == []


async def test_a_read_only_user_is_refused_politely(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    await world.start()
    asked = await say(world, http, pull, f"@{SLUG} {REQUEST}", user=READER)
    await assert_nothing_started(world, pull)
    assert [shown(b) for b in bot_comments(world, pull)] == [
        messages.REFUSED_NO_WRITE.format(user=READER)
    ]
    assert world.gh.reactions_on(REPO, "issue_comment", asked.id) == []


async def test_a_bot_is_ignored_silently(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    await world.start()
    comment = world.gh.add_comment(REPO, 2, f"@{SLUG} {REQUEST}", user="ci-helper[bot]")
    await deliver(world, http, "issue_comment", on_pull_request(comment, kind="Bot"))
    await assert_nothing_started(world, pull)
    assert bot_comments(world, pull) == []


async def test_a_pull_request_from_a_fork_is_refused_with_the_reason(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    fork = world.gh.add_pull(REPO, head="patch-1", head_repo="mallory/Hello-World", user="mallory")
    await world.start()
    comment = world.gh.add_comment(REPO, fork.issue.number, f"@{SLUG} {REQUEST}", user=WRITER)
    await deliver(world, http, "issue_comment", on_pull_request(comment))
    assert world.store is not None
    assert await world.store.runs_on_thread(thread(fork)) == []
    assert world.model.requests == []
    assert [shown(b) for b in bot_comments(world, fork)] == [
        messages.PULL_FROM_FORK.format(head="`mallory/Hello-World`")
    ]


async def test_comments_that_do_not_address_the_bot_start_nothing(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    await world.start()
    for body in (
        "LGTM, thanks!",
        f"> @{SLUG} {REQUEST}\n\nWhy did the bot get asked that?",  # quoting is not asking
        f"Use `@{SLUG} <instructions>` to ask the bot.",  # showing is not asking
    ):
        comment = world.gh.add_comment(REPO, 2, body, user=WRITER)
        answer = await deliver(world, http, "issue_comment", on_pull_request(comment))
        assert answer["status"] == "ignored"
    await assert_nothing_started(world, pull)
    assert bot_comments(world, pull) == []
    assert world.gh.calls_matching("POST", "/repos/*/reactions") == []


# --- the pull request closes ---------------------------------------------------------------


async def test_closing_the_pull_request_releases_the_sandbox_its_follow_ups_kept(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    """Finding 9: `pull_request.closed` left the pull request's kept sandbox behind."""
    script_fix(world.model)
    script_pr(world.model)
    await world.start()
    await say(world, http, pull, f"@{SLUG} {REQUEST}")
    run = await finished(world, pull)
    assert run.status == "succeeded", run.error
    assert len(world.sandboxes()) == 1  # kept (stopped) for the next follow-up

    closed = payload("pull_request.closed")
    closed["repository"] = payload("issues.labeled")["repository"]
    closed["pull_request"] |= {"number": pull.issue.number, "merged": True}
    answer = await deliver(world, http, "pull_request", closed)

    assert answer["status"] == "accepted"
    assert world.sandboxes() == []
    assert world.store is not None
    delivery = await world.store.delivery(answer["delivery"])
    assert delivery is not None
    assert (delivery.outcome, delivery.detail) == (
        "released",
        f"sandbox of {thread(pull)} released",
    )
