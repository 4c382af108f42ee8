"""GitHubPullHost against the fake GitHub, a bare repository on disk and the local sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.agent import workspace
from app.agent.budget import Usage
from app.agent.host import Change, FileChange, Remark, RunHost, RunOutcome
from app.agent.workspace import RunFailed
from app.github.app import GitHubApp
from app.hosts import status
from app.hosts.identity import Requester
from app.hosts.pull import (
    CLOSED,
    FORK,
    NOT_PUSHED,
    PUSHED,
    REPLY_MARKER,
    GitHubPullHost,
)
from app.runs.models import StoredCommand
from app.sandbox.base import Sandbox
from app.sandbox.local import LocalProvider
from tests.fakes.github import FakeGitHub
from tests.helpers import git, github_app_for

INSTALLATION = 7
REPO = "acme/widgets"
RUN = "run-0002"
BRANCH = "feature/notes"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """GitHub's copy: main, and the pull request's branch one commit ahead."""
    work = tmp_path / "seed"
    work.mkdir()
    ident = ["-c", "user.name=Ada", "-c", "user.email=ada@example.com"]
    git(work, "init", "-q", "-b", "main")
    (work / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git(work, "add", "-A")
    git(work, *ident, "commit", "-qm", "init")
    git(work, "checkout", "-qb", BRANCH)
    (work / "notes.txt").write_text("Version 1\n")
    git(work, "add", "-A")
    git(work, *ident, "commit", "-qm", "notes")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / "widgets.git"))
    return tmp_path / "widgets.git"


@pytest.fixture
def gh(bare: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, clone_url=bare)
        fake.add_installation(INSTALLATION, "acme", [REPO])
        fake.add_pull(  # #1
            REPO,
            head=BRANCH,
            title="Add release notes",
            body="Notes for v1.",
            user="alice",
            files=[("notes.txt", "added", 1, 0)],
        )
        yield fake
        assert not fake.errors, f"the fake GitHub itself failed: {fake.errors}"


@pytest.fixture
def github_app(gh: FakeGitHub) -> GitHubApp:
    return github_app_for(gh, max_retry_wait=3)


def command(
    text: str, *, source: str = "issue_comment", comment_id: int | None = 1, **kw: Any
) -> StoredCommand:
    values: dict[str, Any] = {
        "id": 1,
        "thread": f"{REPO}#1",
        "run_id": RUN,
        "verb": "instruct",
        "text": text,
        "author": "carol",
        "source": source,
        "comment_id": comment_id,
        "path": None,
        "line": None,
        "delivery_id": "d-1",
        "created_at": datetime.now(UTC),
        "consumed_at": datetime.now(UTC),
    }
    return StoredCommand(**(values | kw))


@dataclass
class Asked:
    """The Requests port: what the run was asked."""

    commands: list[StoredCommand] = field(default_factory=list)
    taken: int = 0

    async def requests(self) -> list[StoredCommand]:
        self.taken += 1
        return self.commands

    async def asked(self) -> list[StoredCommand]:
        return self.commands


def make_host(
    github_app: GitHubApp, gh: FakeGitHub, asked: Asked, number: int = 1
) -> GitHubPullHost:
    return GitHubPullHost(
        github_app.client(INSTALLATION, REPO),
        inbox=asked,
        repo=REPO,
        issue_number=number,
        run_id=RUN,
        requester=Requester("carol"),
        app_slug=gh.app_slug,
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    provider = LocalProvider(
        tmp_path / "sandboxes", use_bwrap=False, command_timeout=30, kill_grace=0.5
    )
    return provider.acquire({"open-swe.thread": f"{REPO}#1"})


async def prepared_change(host: GitHubPullHost, sandbox: Sandbox) -> Change:
    """Clone at the pull request's branch as the graph does, change a file and commit."""
    checkout = await host.checkout()
    repo_dir, *_ = await workspace.clone(sandbox, checkout, BRANCH, existing=True)
    fixed = b"def add(a, b):\n    return a + b\n"
    await asyncio.to_thread(sandbox.write_file, f"{repo_dir}/calc.py", fixed)
    sha = await workspace.commit(sandbox, repo_dir, "Fix add()\n", host.bot)
    return Change(
        repo_dir=repo_dir,
        branch=BRANCH,
        base_branch="main",
        commit=sha,
        title="Fix add() to return the sum",
        body="`add()` subtracted; it adds now.\n\n## Tests\n\n`make test` passed\n",
        tests_passed=True,
        issue_number=None,
    )


def bot_comments(gh: FakeGitHub) -> list[str]:
    return [c.body for c in gh.comments.values() if c.user.endswith("[bot]")]


def bot_replies(gh: FakeGitHub) -> list[tuple[str, int | None]]:
    return [
        (c.body, c.in_reply_to_id) for c in gh.review_comments.values() if c.user.endswith("[bot]")
    ]


def test_is_a_run_host(github_app: GitHubApp, gh: FakeGitHub) -> None:
    port: RunHost = make_host(github_app, gh, Asked())
    assert callable(port.load_task)


async def test_the_task_is_the_pull_request_and_what_people_asked(
    github_app: GitHubApp, gh: FakeGitHub
) -> None:
    gh.add_review_comment(REPO, 1, "Say which version.", user="bob", path="notes.txt", line=1)
    asked_there = gh.add_review_comment(REPO, 1, "@bot fix add()", user="carol", path="calc.py")
    gh.add_review_comment(REPO, 1, "I am a bot", user="ci[bot]", path="calc.py")
    asked = Asked(
        [
            command(
                "fix add()",
                source="review_comment",
                comment_id=asked_there.id,
                path="calc.py",
                line=2,
            ),
            command("and add a test", id=2, comment_id=99),
        ]
    )
    host = make_host(github_app, gh, asked)

    task = await host.load_task()

    assert (task.kind, task.title, task.body) == ("pull", "Add release notes", "Notes for v1.")
    assert task.files == (FileChange("notes.txt", 1, 0),)
    assert task.review_comments == (Remark("bob", "Say which version.", "notes.txt", 1),)
    assert task.requests == (
        Remark("carol", "fix add()", "calc.py", 2),
        Remark("carol", "and add a test"),
    )
    assert asked.taken == 1
    assert task.requested_by is not None
    assert task.requested_by.name == "carol"
    assert await host.head_branch() == BRANCH
    assert [status.status_run_id(b) for b in bot_comments(gh)] == [RUN]  # status comment is up


async def test_a_fork_or_a_closed_pull_request_is_refused(
    github_app: GitHubApp, gh: FakeGitHub
) -> None:
    gh.add_pull(REPO, head="patch-1", head_repo="mallory/widgets")  # #2
    gh.add_pull(REPO, head="old", state="closed")  # #3
    with pytest.raises(RunFailed) as fork:
        await make_host(github_app, gh, Asked(), 2).head_branch()
    assert str(fork.value) == FORK.format(number=2, head="mallory/widgets")
    with pytest.raises(RunFailed) as closed:
        await make_host(github_app, gh, Asked(), 3).load_task()
    assert str(closed.value) == CLOSED.format(number=3, state="closed")


async def test_publish_adds_a_commit_to_the_branch_and_answers_once_on_the_pull_request(
    github_app: GitHubApp, gh: FakeGitHub, bare: Path, sandbox: Sandbox
) -> None:
    head = git(bare, "rev-parse", BRANCH)
    asked = Asked([command("fix add()")])
    host = make_host(github_app, gh, asked)
    change = await prepared_change(host, sandbox)

    publication = await host.publish(sandbox, change)

    assert (publication.branch, publication.url, publication.created) == (BRANCH, None, False)
    assert git(bare, "rev-parse", BRANCH) == change.commit
    assert git(bare, "rev-parse", f"{BRANCH}~1") == head  # on top: nothing rewritten
    assert len(gh.pulls) == 1  # nothing opened
    expected = PUSHED.format(
        commit=change.commit, branch=BRANCH, title=change.title, body=change.body
    )
    assert bot_comments(gh) == [f"{expected}\n\n{REPLY_MARKER.format(run_id=RUN)}"]
    # a restarted process publishing again does not answer twice
    again = make_host(github_app, gh, asked)
    await again.publish(sandbox, change)
    assert len(bot_comments(gh)) == 1
    await again.finish(RunOutcome("succeeded", RUN, Usage(), branch=BRANCH))
    [status_comment] = [b for b in bot_comments(gh) if status.status_run_id(b) == RUN]
    assert status.HEADER_SUCCEEDED_BRANCH.format(branch=f"`{BRANCH}`") in status_comment


async def test_the_models_words_ping_nobody(
    github_app: GitHubApp, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    host = make_host(github_app, gh, Asked([command("fix add()")]))
    change = await prepared_change(host, sandbox)
    loud = dataclasses.replace(change, title="Thanks @alice", body="cc @open-swe-test fix more")
    await host.publish(sandbox, loud)
    [answer] = bot_comments(gh)
    assert "@\u200balice" in answer
    assert "@\u200bopen-swe-test fix more" in answer
    assert "@alice" not in answer


async def test_a_review_comment_is_answered_in_its_thread(
    github_app: GitHubApp, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    root = gh.add_review_comment(REPO, 1, "Hmm, this subtracts.", user="bob", path="calc.py")
    asked_in = gh.add_review_comment(
        REPO, 1, "@bot fix it", user="carol", path="calc.py", in_reply_to_id=root.id
    )
    asked = Asked([command("fix it", source="review_comment", comment_id=asked_in.id)])
    host = make_host(github_app, gh, asked)

    await host.publish(sandbox, await prepared_change(host, sandbox))
    await make_host(github_app, gh, asked).publish(sandbox, await prepared_change(host, sandbox))

    [(body, thread)] = bot_replies(gh)
    assert thread == root.id
    assert body.startswith("I pushed ")
    assert [b for b in bot_comments(gh) if status.status_run_id(b) is None] == []


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("failed", "the tests broke"), ("stopped", "stopped by @dave"), ("no_changes", None)],
)
async def test_a_run_that_pushed_nothing_says_so_in_the_review_thread(
    github_app: GitHubApp, gh: FakeGitHub, outcome: Any, reason: str | None
) -> None:
    asked_in = gh.add_review_comment(REPO, 1, "@bot fix it", user="carol", path="calc.py")
    host = make_host(
        github_app, gh, Asked([command("fix it", source="review_comment", comment_id=asked_in.id)])
    )

    await host.finish(RunOutcome(outcome, RUN, Usage(), reason=reason))

    [(body, thread)] = bot_replies(gh)
    assert thread == asked_in.id
    shown = status.inline(reason or "")  # no @-mention pings anyone
    assert body.startswith(NOT_PUSHED[outcome].format(reason=shown))


async def test_failures_asked_in_the_conversation_are_told_by_the_status_comment_alone(
    github_app: GitHubApp, gh: FakeGitHub
) -> None:
    host = make_host(github_app, gh, Asked([command("fix it")]))
    await host.finish(RunOutcome("failed", RUN, Usage(), reason="the tests broke"))
    [body] = bot_comments(gh)
    assert status.status_run_id(body) == RUN
    assert "the tests broke" in body
    assert bot_replies(gh) == []


async def test_a_failing_answer_never_fails_the_publication(
    github_app: GitHubApp, gh: FakeGitHub, bare: Path, sandbox: Sandbox
) -> None:
    host = make_host(github_app, gh, Asked([command("fix it")]))
    change = await prepared_change(host, sandbox)
    gh.fail("POST", f"/repos/{REPO}/issues/1/comments", status=422, times=10)
    publication = await host.publish(sandbox, change)
    assert publication.branch == BRANCH
    assert git(bare, "rev-parse", BRANCH) == change.commit
