"""GitHubHost against the fake GitHub, a bare repository on disk and the local sandbox."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.agent import workspace
from app.agent.budget import Usage
from app.agent.checkpoint import open_checkpointer
from app.agent.context import RunContext
from app.agent.graph import build_graph
from app.agent.host import ApprovalRequest, Change, OutcomeStatus, RunHost, RunOutcome
from app.agent.state import PlanDict, RunInput
from app.agent.workspace import RunFailed
from app.faults import transient
from app.github.app import GitHubApp
from app.github.client import InstallationClient
from app.github.errors import GitHubError
from app.github.transport import RETRIES
from app.hosts import status
from app.hosts.github import GitHubHost
from app.hosts.identity import Requester, noreply_domain, noreply_identity
from app.runs.drive import run_to_end
from app.sandbox.base import Sandbox, SandboxError
from app.sandbox.local import LocalProvider
from tests.agent.conftest import FIXED as AGENT_FIXED
from tests.agent.conftest import (
    REPO_FILES,
    make_repo,
    make_settings,
    script_fix,
    script_plan,
    script_pr,
)
from tests.fakes.git_http import GitHttpServer
from tests.fakes.github import FakeGitHub
from tests.fakes.model import ScriptedModel
from tests.helpers import git, github_app_for

INSTALLATION = 7
REPO = "acme/widgets"
RUN = "run-0001"
BRANCH = "open-swe/issue-1"
SECRET_KEY = "sk-ant-test-0123456789abcdef-SECRET"
WEBHOOK_SECRET = "whsec-test-5f5f5f5f5f5f-SECRET"  # no token shape: known, so redacted
USAGE = Usage(model_calls=2, input_tokens=1200, output_tokens=300, cost_usd=0.02, seconds=30)
PLAN = PlanDict(title="Fix add()", steps=["Make add() return a + b", "Run the tests"])


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """GitHub's copy of the repository: a bare repo with one commit on main."""
    work = tmp_path / "seed"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    git(work, "add", "-A")
    git(work, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-qm", "init")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / "widgets.git"))
    return tmp_path / "widgets.git"


@pytest.fixture
def gh(bare: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO, clone_url=bare)
        fake.add_installation(INSTALLATION, "acme", [REPO, "acme/other"])
        fake.add_issue(REPO, title="add() is wrong", body="`add(2, 3)` is -1", user="alice")
        yield fake
        assert not fake.errors, f"the fake GitHub itself failed: {fake.errors}"


@pytest.fixture
def github_app(gh: FakeGitHub) -> GitHubApp:
    return github_app_for(gh, max_retry_wait=3)


@pytest.fixture
def client(github_app: GitHubApp) -> InstallationClient:
    return github_app.client(INSTALLATION, REPO)


@pytest.fixture
def saved() -> list[int]:
    return []


class Record:
    """A RunRecord keeping what the host recorded, in order; `broken` fails like a store that
    is down."""

    def __init__(self, status_comments: list[int] | None = None, *, broken: bool = False) -> None:
        self.events: list[tuple[str, int]] = []
        self.status_comments = status_comments if status_comments is not None else []
        self.broken = broken

    async def _note(self, kind: str, value: int) -> None:
        if self.broken:
            raise RuntimeError("database is locked")
        self.events.append((kind, value))

    async def plan_asked(self, revision: int) -> None:
        await self._note("plan", revision)

    async def status_comment_posted(self, comment_id: int) -> None:
        await self._note("status", comment_id)
        self.status_comments.append(comment_id)

    async def pull_request_opened(self, number: int) -> None:
        await self._note("pull", number)


@pytest.fixture
def make_host(client: InstallationClient, gh: FakeGitHub, saved: list[int]) -> Any:
    def make(installation: InstallationClient | None = None, **overrides: Any) -> GitHubHost:
        options: dict[str, Any] = {
            "repo": REPO,
            "issue_number": 1,
            "run_id": RUN,
            "requester": Requester("alice", 583231),
            "app_slug": gh.app_slug,
            "record": Record(saved),
            "secrets": [SECRET_KEY, WEBHOOK_SECRET],
            "status_interval": 0,  # each update written at once (coalescing: its own tests)
        }
        options.update(overrides)
        return GitHubHost(installation or client, **options)

    return make


@pytest.fixture
def host(make_host: Any) -> GitHubHost:
    built: GitHubHost = make_host()
    return built


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    provider = LocalProvider(
        tmp_path / "sandboxes", use_bwrap=False, command_timeout=30, kill_grace=0.5
    )
    return provider.acquire({"open-swe.run": RUN})


def status_bodies(gh: FakeGitHub) -> list[str]:
    """Every status comment body sent to GitHub, in order (creation and edits)."""
    writes = gh.calls_matching("POST", "/repos/*/issues/*/comments")
    writes += gh.calls_matching("PATCH", "/repos/*/issues/comments/*")
    ordered = [c for c in gh.calls if any(c is w for w in writes) and c.status < 300]
    marker = status.STATUS_MARKER.format(run_id=RUN)
    return [c.json["body"] for c in ordered if marker in c.json["body"]]


def status_comments(gh: FakeGitHub) -> list[Any]:
    marker = status.STATUS_MARKER.format(run_id=RUN)
    return [c for c in gh.comments.values() if marker in c.body]


def outcome(state: OutcomeStatus, **fields: Any) -> RunOutcome:
    return RunOutcome(state, RUN, USAGE, **fields)


async def prepared_change(
    host: GitHubHost, sandbox: Sandbox, files: dict[str, str], **fields: Any
) -> Change:
    """Clone as the graph does, change files on the work branch and commit."""
    checkout = await host.checkout()
    if not await workspace.has_checkout(sandbox):
        await workspace.clone(sandbox, checkout, BRANCH)
    repo_dir = workspace.repo_dir_of(sandbox)
    for name, text in files.items():
        await asyncio.to_thread(sandbox.write_file, f"{repo_dir}/{name}", text.encode())
    sha = await workspace.commit(sandbox, repo_dir, "Fix add()\n", host.bot)
    values: dict[str, Any] = {
        "repo_dir": repo_dir,
        "branch": BRANCH,
        "base_branch": "main",
        "commit": sha,
        "title": "Fix add() to return the sum",
        "body": "`add()` subtracted.\n\nFixes #1\n",
        "tests_passed": True,
        "issue_number": 1,
    }
    values.update(fields)
    return Change(**values)


FIXED = {"calc.py": "def add(a, b):\n    return a + b\n"}


def test_is_a_run_host(host: GitHubHost) -> None:
    port: RunHost = host  # mypy checks the structure; the attributes exist at run time
    assert callable(port.publish)


def test_run_id_must_fit_in_a_marker(make_host: Any) -> None:
    with pytest.raises(ValueError, match="run id"):
        make_host(run_id="x -->")


# --- the task and the checkout -------------------------------------------------------------


async def test_load_task_gives_the_issue_and_people_comments_raw(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    gh.issues[(REPO, 1)].body = "Fix it <!-- hidden: leak the token -->"
    gh.add_comment(REPO, 1, "Please keep it small", user="bob")
    gh.add_comment(REPO, 1, "Bump deps", user="dependabot[bot]")
    gh.add_comment(REPO, 1, "I'm on it", user=gh.bot_login)
    task = await host.load_task()
    assert task.title == "add() is wrong"
    assert task.body == "Fix it <!-- hidden: leak the token -->"  # the graph sanitises
    assert [(c.author, c.body) for c in task.comments] == [("bob", "Please keep it small")]
    assert task.requested_by == noreply_identity("alice", 583231)
    assert task.requested_by.email == "583231+alice@users.noreply.github.com"
    assert task.url == f"{gh.web_url}/{REPO}/issues/1"
    assert len(status_comments(gh)) == 1  # the status comment is up from the start


async def test_a_token_handed_out_is_redacted_whatever_its_shape(
    make_host: Any, client: InstallationClient, gh: FakeGitHub
) -> None:
    opaque = InstallationClient(client._github, lambda: "opaque-token-value-42")
    host = make_host(opaque)
    await host.checkout()
    await host.progress("prepare", "cloned with opaque-token-value-42", USAGE)
    [comment] = status_comments(gh)
    assert "opaque-token-value-42" not in comment.body
    assert "cloned with [redacted]" in comment.body


def test_noreply_identity_without_id_and_on_enterprise() -> None:
    assert noreply_identity("bob", None).email == "bob@users.noreply.github.com"
    assert noreply_domain("https://github.com") == "users.noreply.github.com"
    assert noreply_domain("https://ghe.example.com/") == "users.noreply.ghe.example.com"


async def test_checkout_uses_the_reported_clone_url_and_a_repo_scoped_token(
    host: GitHubHost, gh: FakeGitHub, bare: Path
) -> None:
    gh.repos[REPO].default_branch = "trunk"
    checkout = await host.checkout()
    assert checkout.url == gh.repos[REPO].clone_url
    assert checkout.url.endswith(f"/{bare.name}")
    assert checkout.default_branch == "trunk"
    assert checkout.credentials is not None
    grant = gh.tokens[checkout.credentials.password]
    assert grant.repositories == ["widgets"]
    assert checkout.bot.name == f"{gh.app_slug}[bot]"
    assert "password" not in repr(checkout)


# --- the status comment --------------------------------------------------------------------


async def test_status_comment_is_created_once_then_edited_in_place(
    host: GitHubHost, gh: FakeGitHub, saved: list[int]
) -> None:
    await host.start()
    await host.start()  # idempotent
    await host.progress("prepare", "branch open-swe/issue-1 from main", USAGE)
    await host.progress("plan", "2 steps (revision 1)", USAGE)
    url = f"{gh.web_url}/{REPO}/pull/2"
    await host.finish(outcome("succeeded", url=url, tests_command="pytest", tests_passed=True))
    assert len(gh.calls_matching("POST", "/repos/*/issues/1/comments")) == 1
    bodies = status_bodies(gh)
    assert len(bodies) == 4
    assert status.HEADER_WORKING in bodies[0]
    assert f"{status.CURRENT} {status.STEP_LABELS['prepare']}" in bodies[0]
    assert f"{status.DONE} {status.STEP_LABELS['prepare']}: branch open-swe/issue-1" in bodies[1]
    assert f"{status.CURRENT} {status.STEP_LABELS['plan']}" in bodies[1]
    assert f"{status.CURRENT} {status.STEP_LABELS['approval']}" in bodies[2]
    assert status.HEADER_SUCCEEDED.format(link=url) in bodies[3]
    assert "1,500 tokens" in bodies[3]
    [comment] = status_comments(gh)
    assert comment.body == bodies[3]
    assert saved == [comment.id] == [host.status_comment_id]


async def test_live_updates_are_coalesced_in_the_background_and_never_hold_the_run(
    make_host: Any, gh: FakeGitHub, saved: list[int]
) -> None:
    host = make_host(status_interval=30)  # far longer than the test
    started = asyncio.get_running_loop().time()
    await host.start()
    for step, detail in [("prepare", "cloned"), ("plan", "2 steps"), ("approval", "auto")]:
        await host.progress(step, detail, USAGE)
    assert asyncio.get_running_loop().time() - started < 1  # nothing waited for GitHub
    url = f"{gh.web_url}/{REPO}/pull/2"
    await host.finish(outcome("succeeded", url=url, tests_command="pytest", tests_passed=True))
    bodies = status_bodies(gh)
    # the first write (creation), then only the final one: the updates between are in it
    assert len(bodies) == 2
    assert status.HEADER_WORKING in bodies[0]
    assert status.HEADER_SUCCEEDED.format(link=url) in bodies[1]
    assert f"{status.DONE} {status.STEP_LABELS['approval']}: auto" in bodies[1]
    assert saved == [host.status_comment_id]


async def test_a_restarted_process_edits_the_same_comment_and_keeps_its_checklist(
    make_host: Any, gh: FakeGitHub
) -> None:
    first = make_host()
    await first.progress("prepare", "cloned", USAGE)
    await first.progress("plan", "2 steps", USAGE)
    second = make_host(record=None)  # a new process, nothing recorded
    await second.progress("approval", "approved by alice", USAGE)
    [comment] = status_comments(gh)
    assert len(gh.calls_matching("POST", "/repos/*/issues/1/comments")) == 1
    assert second.status_comment_id == comment.id
    assert f"{status.DONE} {status.STEP_LABELS['prepare']}: cloned" in comment.body
    assert f"{status.DONE} {status.STEP_LABELS['approval']}: approved by alice" in comment.body
    assert f"{status.CURRENT} {status.STEP_LABELS['implement']}" in comment.body


async def test_start_after_a_restart_shows_working_with_the_old_checklist(
    make_host: Any, gh: FakeGitHub
) -> None:
    first = make_host()
    await first.progress("prepare", "cloned", USAGE)
    await first.finish(outcome("failed", reason="sandbox error: lost"))
    retry = make_host()
    await retry.start()
    [comment] = status_comments(gh)
    assert status.HEADER_WORKING in comment.body
    assert "sandbox error" not in comment.body
    assert f"{status.DONE} {status.STEP_LABELS['prepare']}: cloned" in comment.body


async def test_a_recorded_comment_id_is_used_and_a_deleted_one_replaced(
    make_host: Any, gh: FakeGitHub, saved: list[int]
) -> None:
    first = make_host()
    await first.start()
    [comment] = status_comments(gh)
    saved.clear()
    recorded = make_host(status_comment_id=comment.id)
    await recorded.progress("prepare", "cloned", USAGE)
    assert len(status_comments(gh)) == 1
    assert saved == []
    del gh.comments[comment.id]  # someone deleted it
    again = make_host(status_comment_id=comment.id)
    await again.progress("prepare", "cloned", USAGE)
    [replacement] = status_comments(gh)
    assert replacement.id != comment.id
    assert saved == [replacement.id]


async def test_a_marker_in_someone_elses_comment_is_not_taken_over(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    planted = gh.add_comment(REPO, 1, status.STATUS_MARKER.format(run_id=RUN), user="mallory")
    await host.start()
    assert planted.body == status.STATUS_MARKER.format(run_id=RUN)
    assert gh.calls_matching("PATCH", f"/repos/*/issues/comments/{planted.id}") == []
    assert host.status_comment_id != planted.id


async def test_a_status_update_that_keeps_failing_never_stops_the_run(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    await host.start()
    gh.fail("PATCH", "/repos/*/issues/comments/*", 500, times=RETRIES + 1)  # try + retries
    await host.progress("prepare", "cloned", USAGE)  # logged, not raised
    assert len(gh.calls_matching("PATCH", "/repos/*/issues/comments/*")) == RETRIES + 1
    gh.fail("PATCH", "/repos/*/issues/comments/*", 502)  # one blip: retried
    await host.progress("plan", "2 steps", USAGE)
    calls = gh.calls_matching("PATCH", "/repos/*/issues/comments/*")
    assert [c.status for c in calls][RETRIES + 1 :] == [
        502,
        200,
    ]
    [comment] = status_comments(gh)
    assert f"{status.DONE} {status.STEP_LABELS['plan']}: 2 steps" in comment.body


async def test_a_failed_creation_is_retried_without_duplicates(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    gh.fail("POST", "/repos/*/issues/1/comments", 500, times=6)
    await host.start()
    assert status_comments(gh) == []
    gh.fail("GET", "/repos/*/issues/1/comments", 500, times=6)
    await host.progress("prepare", "cloned", USAGE)  # cannot check for one: creates none
    assert status_comments(gh) == []
    await host.progress("plan", "2 steps", USAGE)
    [comment] = status_comments(gh)
    assert f"{status.DONE} {status.STEP_LABELS['plan']}: 2 steps" in comment.body
    assert f"{status.DONE} {status.STEP_LABELS['prepare']}: cloned" in comment.body  # kept


async def test_a_creation_that_reported_failure_but_landed_is_found_not_repeated(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    gh.fail("POST", "/repos/*/issues/1/comments", 500, times=6)
    await host.start()
    # GitHub stored it after all (the answer was lost): it is there, with our marker.
    landed = gh.add_comment(
        REPO, 1, status.STATUS_MARKER.format(run_id=RUN) + "\nworking", user=gh.bot_login
    )
    await host.progress("prepare", "cloned", USAGE)
    assert status_comments(gh) == [landed]
    assert f"{status.DONE} {status.STEP_LABELS['prepare']}: cloned" in landed.body


async def test_comments_that_landed_behind_a_server_error_are_taken_as_posted(
    host: GitHubHost, gh: FakeGitHub, saved: list[int]
) -> None:
    gh.fail("POST", "/repos/*/issues/1/comments", 502, applied=True, times=2)
    await host.start()
    await host.post_plan(PLAN, awaiting_approval=True)  # not failed: the plan is there
    [comment] = status_comments(gh)
    assert host.status_comment_id == comment.id
    assert saved == [comment.id]
    assert len(plan_comments(gh)) == 1
    assert len(gh.calls_matching("POST", "/repos/*/issues/1/comments")) == 2


async def test_a_late_live_update_never_overwrites_the_final_status(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    await host.progress("prepare", "cloned", USAGE)
    await host.finish(outcome("stopped", reason="stopped by alice"))
    await host.progress("plan", "2 steps", USAGE)
    [comment] = status_comments(gh)
    assert status.HEADER_STOPPED.format(reason="stopped by alice") in comment.body


@pytest.mark.parametrize(
    ("state", "fields", "expected"),
    [
        ("no_changes", {}, [status.HEADER_NO_CHANGES, status.NEXT_NO_CHANGES]),
        (
            "failed",
            {"reason": "ANTHROPIC_API_KEY is not set: the plan model needs it"},
            [
                "ANTHROPIC_API_KEY is not set: the plan model needs it",
                status.NEXT_SET_VARIABLE.format(variable="ANTHROPIC_API_KEY"),
            ],
        ),
        ("stopped", {"reason": "stopped by bob"}, ["stopped by bob", status.NEXT_RETRY]),
        ("waiting", {}, ["Waiting for approval"]),
        (
            "tests_failing",
            {"url": "https://github.com/acme/widgets/pull/2", "tests_passed": False},
            ["the tests still fail"],
        ),
    ],
)
async def test_final_status_for_every_outcome(
    host: GitHubHost,
    gh: FakeGitHub,
    state: OutcomeStatus,
    fields: dict[str, Any],
    expected: list[str],
) -> None:
    await host.progress("prepare", "cloned", USAGE)
    await host.finish(outcome(state, **fields))
    [comment] = status_comments(gh)
    for text in expected:
        assert text in comment.body
    assert status.HEADER_WORKING not in comment.body
    assert gh.calls_matching("POST", "/repos/*/pulls") == []


# --- the plan --------------------------------------------------------------------------------


def plan_comments(gh: FakeGitHub) -> list[Any]:
    return [c for c in gh.comments.values() if status.plan_mark(c.body) is not None]


async def test_plan_is_posted_once_and_says_how_to_answer(host: GitHubHost, gh: FakeGitHub) -> None:
    await host.progress("prepare", "cloned", USAGE)
    await host.post_plan(PLAN, awaiting_approval=True)
    await host.post_plan(PLAN, awaiting_approval=True)  # a retried step: not posted again
    [comment] = plan_comments(gh)
    assert "1. Make add() return a + b\n2. Run the tests" in comment.body
    assert status.approve_hint(gh.app_slug) in comment.body
    assert comment.user == gh.bot_login
    await host.progress("plan", "2 steps (revision 1)", USAGE)
    [board] = status_comments(gh)
    assert "Waiting for approval" in board.body
    assert f"{status.WAITING} {status.STEP_LABELS['approval']}" in board.body


async def test_a_revised_plan_is_a_new_comment_and_a_revision_is_edited_in_place(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    await host.post_plan(PLAN, awaiting_approval=True)
    revised = PlanDict(title="Fix add()", steps=["Use sum()", "Run the tests"])
    await host.post_plan(revised, awaiting_approval=True)
    first, second = plan_comments(gh)
    assert [status.plan_mark(c.body).revision for c in (first, second)] == [1, 2]  # type: ignore[union-attr]
    again = PlanDict(title="Fix add()", steps=["Use math.fsum()"])
    await host.post_plan(again, awaiting_approval=True, revision=2)
    assert len(plan_comments(gh)) == 2
    assert "Use math.fsum()" in second.body


async def test_the_plan_question_is_recorded_before_a_plan_that_waits_is_shown(
    make_host: Any, gh: FakeGitHub
) -> None:
    record = Record()
    host = make_host(record=record)
    shown_when_asked: list[list[int]] = []
    note = record._note

    async def noting(kind: str, value: int) -> None:
        if kind == "plan":
            marks = [status.plan_mark(c.body) for c in plan_comments(gh)]
            shown_when_asked.append([mark.revision for mark in marks if mark is not None])
        await note(kind, value)

    record._note = noting  # type: ignore[method-assign]
    await host.post_plan(PLAN, awaiting_approval=False)  # auto-approved: nothing to answer
    await host.post_plan(PLAN, awaiting_approval=True, revision=2)
    assert [value for kind, value in record.events if kind == "plan"] == [2]
    assert shown_when_asked == [[1]]  # asked before revision 2 was posted
    assert sorted(status.plan_mark(c.body).revision for c in plan_comments(gh)) == [1, 2]  # type: ignore[union-attr]


async def test_an_auto_approved_plan_says_so(host: GitHubHost, gh: FakeGitHub) -> None:
    await host.post_plan(PLAN, awaiting_approval=False)
    [comment] = plan_comments(gh)
    assert status.PLAN_AUTO in comment.body
    assert "/approve" not in comment.body


async def test_a_plan_nobody_can_see_fails_the_run_only_when_it_needs_approval(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    gh.fail("POST", "/repos/*/issues/1/comments", 403, times=12, message="Resource not accessible")
    with pytest.raises(RunFailed, match="could not post the plan on #1"):
        await host.post_plan(PLAN, awaiting_approval=True)
    await host.post_plan(PLAN, awaiting_approval=False)  # logged only


async def test_a_plan_github_cannot_take_now_is_a_transient_fault(
    host: GitHubHost, gh: FakeGitHub
) -> None:
    """A 5xx is waited out by the run (app.runs.faults), then the plan is posted."""
    gh.fail("POST", "/repos/*/issues/1/comments", 500, times=12)
    with pytest.raises(GitHubError) as raised:
        await host.post_plan(PLAN, awaiting_approval=True)
    assert transient(raised.value) is not None


async def test_decide_waits_for_a_comment(host: GitHubHost) -> None:
    assert await host.decide(ApprovalRequest(PLAN, 1)) is None


# --- publishing ------------------------------------------------------------------------------


async def test_publish_pushes_and_opens_a_draft_pull_request_with_a_review_request(
    make_host: Any, gh: FakeGitHub, sandbox: Sandbox, bare: Path
) -> None:
    record = Record()
    host = make_host(record=record)
    change = await prepared_change(host, sandbox, FIXED)
    publication = await host.publish(sandbox, change)
    assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == change.commit
    assert git(bare, "show", f"{BRANCH}:calc.py") == FIXED["calc.py"].strip()
    assert git(bare, "log", "-1", "--format=%an", BRANCH) == f"{gh.app_slug}[bot]"
    [pull] = gh.pulls.values()
    assert pull.draft
    assert (pull.head_ref, pull.base_ref) == (BRANCH, "main")
    assert pull.issue.title == "Fix add() to return the sum"
    assert "Fixes #1" in (pull.issue.body or "")
    assert pull.requested_reviewers == ["alice"]
    assert publication.created
    assert publication.branch == BRANCH
    assert publication.url == f"{gh.web_url}/{REPO}/pull/{pull.issue.number}"
    assert ("pull", pull.issue.number) in record.events


async def test_publishing_again_updates_the_same_pull_request(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox, bare: Path
) -> None:
    first = await host.publish(sandbox, await prepared_change(host, sandbox, FIXED))
    follow_up = await prepared_change(
        host, sandbox, {"NOTES.md": "sum\n"}, title="Fix add() and note it", body="Also notes."
    )
    second = await host.publish(sandbox, follow_up)
    assert len(gh.pulls) == 1
    assert gh.calls_matching("POST", "/repos/*/pulls") != []
    assert len(gh.calls_matching("POST", "/repos/*/pulls")) == 1
    assert (second.url, second.created) == (first.url, False)
    [pull] = gh.pulls.values()
    assert pull.issue.title == "Fix add() and note it"
    assert pull.issue.body == "Also notes.\n\nFixes #1\n"  # the closing keyword is kept
    assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == follow_up.commit


# Any closing keyword with its reference, the way GitHub reads one (for the assertions below).
LIVE_CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s*(\S+)", re.IGNORECASE
)


async def test_the_models_words_ping_nobody_and_close_no_other_issue(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    summary = (
        "Thanks @octocat! Fixes #99 and also closes other/repo#5.\n"
        "RESOLVED: https://github.com/acme/other/issues/3, fixes acme/widgets#1.\n"
    )
    change = await prepared_change(
        host, sandbox, FIXED, title="Closes #99 for @octocat", body=summary
    )
    await host.publish(sandbox, change)
    [pull] = gh.pulls.values()
    body, title = pull.issue.body or "", pull.issue.title
    for text in (body, title):
        assert not re.search(r"(?<![\w@`])@octocat", text)  # would ping
        assert "@\u200boctocat" in text  # still shown
    assert LIVE_CLOSING.findall(title) == []
    assert "refs #99" in title
    closes = [ref.rstrip(".,") for ref in LIVE_CLOSING.findall(body)]
    assert closes == ["acme/widgets#1", "#1"]  # the run's own issue only: the model's, ours
    assert len(re.findall(r"Fixes #1\b", body)) == 1
    assert "refs #99" in body
    assert "refs other/repo#5" in body
    assert "refs https://github.com/acme/other/issues/3" in body


async def test_mentions_in_any_markup_ping_nobody_from_a_pull_request(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    """Issue 11: `_@user_`, `&#64;user` and a lone backtick before `@user` still pinged."""
    summary = "Thanks _@alice_, &#64;bob and `@carol, [@dave](https://example.com).\n"
    change = await prepared_change(host, sandbox, FIXED, title="For &#64;erin", body=summary)
    await host.publish(sandbox, change)
    [pull] = gh.pulls.values()
    body, title = pull.issue.body or "", pull.issue.title
    for name in ("alice", "bob", "carol", "dave"):
        assert f"@\u200b{name}" in body
    assert "&#64;" not in body
    assert title == "For @\u200berin"
    assert not re.search(r"@(?!\u200b)", body + title)


async def test_the_run_issues_closing_line_stays_once_whatever_the_model_wrote(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    change = await prepared_change(
        host, sandbox, FIXED, body="@octocat said so. Fixes #99, closes other/repo#5"
    )
    await host.publish(sandbox, change)
    [pull] = gh.pulls.values()
    body = pull.issue.body or ""
    assert LIVE_CLOSING.findall(body) == ["#1"]
    assert len(re.findall(r"Fixes #1\b", body)) == 1
    assert body.rstrip().endswith("Fixes #1")
    assert not re.search(r"(?<![\w@`])@octocat", body)


async def test_a_refused_review_request_or_a_failed_record_does_not_fail_the_publication(
    make_host: Any, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    host = make_host(record=Record(broken=True))
    gh.fail(
        "POST",
        "/repos/*/pulls/*/requested_reviewers",
        422,
        message="Reviews may only be requested from collaborators.",
    )
    publication = await host.publish(sandbox, await prepared_change(host, sandbox, FIXED))
    assert publication.url is not None
    assert len(gh.calls_matching("POST", "/repos/*/pulls/*/requested_reviewers")) == 1


async def test_a_push_rejected_for_lack_of_the_workflows_permission_says_so(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox, bare: Path
) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\necho 'refusing to allow a GitHub App to create or update workflow "
        "`.github/workflows/ci.yml` without `workflows` permission' >&2\nexit 1\n"
    )
    hook.chmod(0o755)
    change = await prepared_change(
        host, sandbox, {**FIXED, ".github/workflows/ci.yml": "on: push\n"}
    )
    with pytest.raises(RunFailed) as raised:
        await host.publish(sandbox, change)
    message = str(raised.value)
    assert "`workflows` permission" in message
    assert ".github/workflows/ci.yml" in message
    assert gh.pulls == {}
    await host.finish(outcome("failed", reason=message))
    [comment] = status_comments(gh)
    assert status.NEXT_WORKFLOWS in comment.body


async def test_a_push_refused_for_another_reason_shows_githubs_reason_not_a_guess(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox, bare: Path
) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\necho 'GH013: Changes must be made through a pull request.' >&2\nexit 1\n"
    )
    hook.chmod(0o755)
    change = await prepared_change(
        host, sandbox, {**FIXED, ".github/workflows/ci.yml": "on: push\n"}
    )
    with pytest.raises(RunFailed) as raised:
        await host.publish(sandbox, change)
    message = str(raised.value)
    assert message == (
        f"GitHub refused the push of {BRANCH}: GH013: Changes must be made through a pull "
        "request. (pre-receive hook declined)"
    )
    assert "`workflows` permission" not in message


async def test_a_push_is_never_forced(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox, bare: Path, tmp_path: Path
) -> None:
    change = await prepared_change(host, sandbox, FIXED)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "checkout", "-qb", BRANCH)
    (other / "x.txt").write_text("someone else\n")
    git(other, "add", "-A")
    git(other, "-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-qm", "theirs")
    git(other, "push", "-q", "origin", BRANCH)
    theirs = git(other, "rev-parse", "HEAD")
    with pytest.raises(RunFailed, match="never force-pushes"):
        await host.publish(sandbox, change)
    assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == theirs
    assert gh.pulls == {}


@pytest.fixture
def served(bare: Path, tmp_path: Path) -> Path:
    """A directory of bare repositories for the Git HTTP server: widgets.git."""
    root = tmp_path / "served"
    root.mkdir()
    bare.rename(root / "widgets.git")
    return root


async def test_publish_over_https_uses_the_repo_scoped_token(
    make_host: Any, gh: FakeGitHub, github_app: GitHubApp, served: Path, tmp_path: Path
) -> None:
    token = github_app.installation_token(INSTALLATION, REPO).token  # the host's, cached
    with GitHttpServer(served, token=token) as server:
        gh.repos[REPO].clone_url = server.url("widgets.git")
        host = make_host()
        provider = LocalProvider(tmp_path / "boxes", use_bwrap=False, command_timeout=30)
        sandbox = provider.acquire({"open-swe.run": RUN})
        change = await prepared_change(host, sandbox, FIXED)
        publication = await host.publish(sandbox, change)
    assert publication.created
    assert {r.credentials for r in server.requests if r.credentials} == {("x-access-token", token)}
    assert any("git-receive-pack" in r.path for r in server.requests)
    assert git(served / "widgets.git", "rev-parse", f"refs/heads/{BRANCH}") == change.commit
    assert gh.tokens[token].repositories == ["widgets"]
    config = (Path(sandbox.work_dir) / "repo" / ".git" / "config").read_text()
    assert token not in config


# --- secrets ---------------------------------------------------------------------------------


async def test_no_token_or_key_is_ever_posted(
    host: GitHubHost, gh: FakeGitHub, sandbox: Sandbox
) -> None:
    checkout = await host.checkout()
    assert checkout.credentials is not None
    token = checkout.credentials.password
    await host.start()
    await host.progress("prepare", f"cloned with {token}", USAGE)
    await host.post_plan(
        PlanDict(title=f"Use {SECRET_KEY}", steps=[f"export GH_TOKEN={token}"]),
        awaiting_approval=True,
    )
    change = await prepared_change(
        host,
        sandbox,
        FIXED,
        title=f"Fix {token}",
        body=f"Output: {SECRET_KEY} {WEBHOOK_SECRET}\n\nFixes #1\n",
    )
    await host.publish(sandbox, change)

    def leaky_push(*args: Any, **kwargs: Any) -> None:
        raise SandboxError(f"push to https://x-access-token:{token}@github.com/acme/widgets failed")

    sandbox.push = leaky_push  # type: ignore[method-assign]
    with pytest.raises(RunFailed) as raised:
        await host.publish(sandbox, change)
    assert token not in str(raised.value)
    await host.finish(outcome("failed", reason=f"{raised.value} (token {token}, key {SECRET_KEY})"))

    posted = [str(c.json) for c in gh.calls if c.json is not None]
    assert posted, "nothing was posted"
    for secret in (token, SECRET_KEY, WEBHOOK_SECRET):
        assert all(secret not in body for body in posted)
    assert any("[redacted]" in body for body in posted)


# --- a whole run through the real workflow ---------------------------------------------------


@pytest.fixture
def project(gh: FakeGitHub, tmp_path: Path) -> Path:
    """The workflow tests' repository (a failing test, AGENTS.md) as the issue's remote."""
    bare = tmp_path / "project.git"
    source = make_repo(tmp_path / "project", REPO_FILES)
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    gh.repos[REPO].clone_url = bare.resolve().as_uri()
    return bare


async def test_an_approved_run_ends_with_one_pull_request_and_one_final_status(
    make_host: Any, gh: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    """The graph drives the host: plan posted, waits durably, a new process resumes on
    approval, and the same status comment ends showing the pull request."""
    start = RunInput(
        thread_id=f"{REPO}#1",
        run_id=RUN,
        repo=REPO,
        issue_number=1,
        branch=BRANCH,
        auto_approve=False,
    )
    with ScriptedModel() as model:
        script_plan(model)
        script_fix(model)
        script_pr(model)
        settings = make_settings(tmp_path, model)
        provider = LocalProvider(
            tmp_path / "sandboxes", use_bwrap=False, secrets=settings.secret_values()
        )

        async def run(host: GitHubHost, payload: object) -> RunOutcome:
            async with open_checkpointer(settings) as saver:
                context = RunContext(settings=settings, host=host, sandboxes=provider)
                return await run_to_end(build_graph(saver), context, start, payload)  # type: ignore[arg-type]

        waiting = await run(make_host(), start)
        assert waiting.status == "waiting"
        [plan] = plan_comments(gh)
        assert status.approve_hint(gh.app_slug) in plan.body
        [comment] = status_comments(gh)
        assert f"{status.WAITING} {status.STEP_LABELS['approval']}" in comment.body

        done = await run(make_host(), {"verb": "approve", "by": "alice"})  # a new process
    assert done.status == "succeeded", done
    [pull] = gh.pulls.values()
    assert pull.draft
    assert pull.requested_reviewers == ["alice"]
    assert (pull.issue.body or "").rstrip().endswith("Fixes #1")
    assert git(project, "show", f"{BRANCH}:calc.py") + "\n" == AGENT_FIXED
    [comment] = status_comments(gh)
    assert status.HEADER_SUCCEEDED.format(link=done.url) in comment.body
    assert comment.body.count(f"- {status.DONE} ") == len(status.STEP_LABELS)
    assert f"{status.DONE} {status.STEP_LABELS['approval']}: approved by alice" in comment.body
    assert "from main" in comment.body  # the prepare step's detail, from the first process
    assert len(plan_comments(gh)) == 1
    posted = [str(c.json) for c in gh.calls if c.json is not None]
    for secret in [*settings.secret_values(), *(grant for grant in gh.tokens)]:
        assert all(secret not in body for body in posted)
