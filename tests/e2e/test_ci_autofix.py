"""CI autofix end to end through the real HTTP app: red checks on a pull request open-swe
opened start one fix run that pushes to the same branch; the limits hold (the same failure
twice, failures also on the base branch, OPEN_SWE_MAX_CI_FIX_ATTEMPTS, forks, autofix off,
many events for one commit); an installation without the checks permission gets one note.

The deliveries are the recorded `check_suite.completed`, `check_run.completed`,
`workflow_run.completed` and `workflow_job.completed` payloads, moved onto the fake GitHub's
repository and commit, and signed; the fake GitHub answers the checks and Actions endpoints
(tests/fakes/github_checks.py), the model is scripted, the remote is a bare repository.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.ci import report
from app.runs.models import Run, thread_key
from tests.agent.conftest import FIXED, TEST_COMMAND, edit_calc, git, repo_path, script_pr
from tests.e2e.conftest import REPO, SLUG, WRITER, World, eventually, payload
from tests.e2e.test_pull_requests import deliver, on_pull_request
from tests.fakes.github import PullRequest
from tests.fakes.github_checks import FakeJob
from tests.fakes.model import ModelRequest, Reply, Slow, offers, text, tool

pytestmark = pytest.mark.slow

BOT = f"{SLUG}[bot]"
BRANCH = "open-swe/issue-1"
NUMBER = 2
THREAD = thread_key(REPO, NUMBER)
FAILING_LOG = """\
2026-12-03T12:00:00.1000000Z ##[group]Run actions/checkout@v4
2026-12-03T12:00:00.2000000Z ##[endgroup]
2026-12-03T12:00:01.0000000Z ##[group]Run python3 -m unittest -q
2026-12-03T12:00:01.1000000Z ##[endgroup]
2026-12-03T12:00:02.0000000Z ======================================================================
2026-12-03T12:00:02.0000000Z FAIL: test_add (test_calc.AddTest.test_add)
2026-12-03T12:00:02.0000000Z ----------------------------------------------------------------------
2026-12-03T12:00:02.0000000Z AssertionError: -1 != 5
2026-12-03T12:00:02.0000000Z Ran 1 test in 0.001s
2026-12-03T12:00:02.5000000Z ##[error]Process completed with exit code 1.
2026-12-03T12:00:03.0000000Z Post job cleanup.
"""


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def push(world: World, tmp_path: Path, name: str, content: str, *, author: str = BOT) -> str:
    """A commit on the pull request's branch, pushed to the remote; its sha."""
    work = tmp_path / "pr-work"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(world.remote), str(work))
    if git(world.remote, "branch", "--list", BRANCH):
        git(work, "fetch", "-q", "origin", BRANCH)
        git(work, "switch", "-q", "-C", BRANCH, f"origin/{BRANCH}")
    else:
        git(work, "switch", "-q", "-c", BRANCH)
    (work / name).write_text(content)
    git(work, "add", "-A")
    email = f"{author.removesuffix('[bot]')}@example.com"
    git(work, "-c", f"user.name={author}", "-c", f"user.email={email}", "commit", "-qm", name)
    git(work, "push", "-q", "origin", BRANCH)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def pull(world: World, tmp_path: Path) -> PullRequest:
    """Pull request #2 that open-swe opened from its branch (main still has the bug)."""
    push(world, tmp_path, "NOTES.md", "calc.py adds numbers.\n")
    made = world.gh.add_pull(REPO, head=BRANCH, title="Fix add()", body="Fixes #1", user=BOT)
    assert made.issue.number == NUMBER
    return made


def head(world: World) -> str:
    return git(world.remote, "rev-parse", BRANCH)


def red(world: World, sha: str, log: str = FAILING_LOG, *, author: str = BOT) -> FakeJob:
    """GitHub Actions failed on `sha`: workflow CI, job `test`, its step `Run tests`."""
    job = world.gh.checks.job(
        "test", steps=[("Set up job", "success"), ("Run tests", "failure")], log=log
    )
    world.gh.checks.workflow(
        REPO,
        sha,
        "CI",
        jobs=[job, world.gh.checks.job("lint", conclusion="success")],
        author=author,
    )
    return job


def pulls_field(sha: str, number: int = NUMBER) -> list[dict[str, Any]]:
    data = payload("check_suite.completed")["check_suite"]["pull_requests"]
    pulls = copy.deepcopy(data)
    pulls[0]["number"] = number
    pulls[0]["head"]["sha"] = sha
    return pulls[:1]


def ci_events(sha: str, number: int = NUMBER) -> list[tuple[str, dict[str, Any]]]:
    """The completion events GitHub sends for one commit, on REPO."""
    repository = payload("issues.labeled")["repository"]
    suite = payload("check_suite.completed")
    suite["check_suite"] |= {
        "head_sha": sha,
        "after": sha,
        "conclusion": "failure",
        "pull_requests": pulls_field(sha, number),
    }
    running = payload("check_run.completed")  # as recorded: its suite still in progress
    running["check_run"] |= {"head_sha": sha, "pull_requests": pulls_field(sha, number)}
    running["check_run"]["check_suite"] |= {"head_sha": sha}
    run = copy.deepcopy(running)  # the suite's last check run: the suite completed with it
    run["check_run"]["check_suite"] |= {"status": "completed", "conclusion": "failure"}
    workflow = payload("workflow_run.completed")
    workflow["repository"] = repository
    workflow["workflow_run"] |= {
        "head_sha": sha,
        "conclusion": "failure",
        "pull_requests": pulls_field(sha, number),
    }
    job = payload("workflow_job.completed")
    job["repository"] = repository
    job["workflow_job"]["head_sha"] = sha
    return [
        ("check_suite", suite),
        ("check_run", run),
        ("workflow_run", workflow),
        ("workflow_job", job),
        ("check_run", running),
    ]


async def completed(
    world: World, http: httpx.AsyncClient, sha: str, *, number: int = NUMBER, every: bool = False
) -> list[dict[str, Any]]:
    """GitHub says the commit's CI completed (its check suite; `every`: all four events)."""
    events = ci_events(sha, number)
    answers = []
    for name, data in events if every else events[:1]:
        answers.append(await deliver(world, http, name, data))
    return answers


async def runs(world: World, thread: str = THREAD) -> list[Run]:
    assert world.store is not None
    return await world.store.runs_on_thread(thread)


async def finished(world: World, count: int) -> Run:
    async def check() -> Run | None:
        found = await runs(world)
        done = len(found) >= count and not found[0].active
        return found[0] if done else None

    run: Run = await eventually(check, f"fix run {count} to finish")
    return run


def ci_comment(world: World, number: int = NUMBER) -> str:
    [body] = [
        c.body
        for c in world.gh.comments.values()
        if (c.repo, c.issue_number) == (REPO, number) and report.MARKER in c.body
    ]
    return body


def ci_comment_writes(world: World) -> tuple[int, int]:
    created = [
        c
        for c in world.gh.calls_matching("POST", f"/repos/{REPO}/issues/{NUMBER}/comments")
        if c.status < 300 and report.MARKER in c.json["body"]
    ]
    edited = [
        c
        for c in world.gh.calls_matching("PATCH", f"/repos/{REPO}/issues/comments/*")
        if c.status < 300 and report.MARKER in c.json["body"]
    ]
    return len(created), len(edited)


def fix_calc(model: Any) -> None:
    """The first fix run: make add() add, run the tests, say so."""
    model.on(
        offers("edit_file"),
        edit_calc,
        tool("execute", command=TEST_COMMAND),
        text("add() subtracted; it adds now and the tests pass."),
    )
    script_pr(model)


def note(n: int) -> Any:
    def write(request: ModelRequest) -> Reply:
        return tool("write_file", file_path=f"{repo_path(request)}/fix-{n}.md", content=f"{n}\n")

    return write


# --- a red CI gets a fix ---------------------------------------------------------------------


async def test_red_ci_on_open_swes_pull_request_leads_to_one_fix_commit_on_its_branch(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    fix_calc(world.model)
    await world.start()
    before = head(world)
    job = red(world, before)

    # GitHub sends several completion events for the commit (and may repeat them): one run
    answers = await completed(world, http, before, every=True)
    assert [a["status"] for a in answers] == ["accepted"] * 4 + ["ignored"], answers
    run = await finished(world, 1)
    checks_read = len(world.gh.calls_matching("GET", f"/repos/{REPO}/commits/*/check-*"))
    answers = await completed(world, http, before, every=True)  # redelivered, re-sent
    assert [a["status"] for a in answers] == ["accepted"] * 4 + ["ignored"], answers
    # decided already: the store says so, GitHub is not asked again
    assert len(world.gh.calls_matching("GET", f"/repos/{REPO}/commits/*/check-*")) == checks_read

    assert (run.status, run.kind, run.auto_approve) == ("succeeded", "pull", True), run.error
    assert len(await runs(world)) == 1
    assert world.model.requests_offering("SubmitPlan") == []  # a follow-up: no plan
    # one commit on top of the head, on the same branch, by the bot, fixing the failure
    after = head(world)
    assert git(world.remote, "rev-parse", f"{after}~1") == before
    assert git(world.remote, "show", f"{BRANCH}:calc.py") == "def add(a, b):\n    return a + b"
    assert git(world.remote, "log", "-1", "--format=%an", BRANCH) == BOT
    assert list(world.gh.pulls) == [(REPO, NUMBER)]
    # the model got the failure as untrusted text: the failed step's log, up to its error
    first = world.model.requests_offering("edit_file")[0].text
    assert '<untrusted source="request by CI">' in first
    assert "Check CI / test (failure)" in first
    assert "Failed steps: Run tests" in first
    assert "AssertionError: -1 != 5" in first
    assert "##[error]Process completed with exit code 1." in first
    assert "Post job cleanup" not in first  # after the error: not the failed step
    assert "2026-12-03T12:00:02" not in first  # timestamps gone
    assert world.gh.calls_matching("GET", f"/repos/{REPO}/actions/jobs/{job.id}/logs")
    # the PR says what changed, and the CI-fix comment what was attempted
    pushed = [
        c.body
        for c in world.gh.comments.values()
        if c.issue_number == NUMBER and c.body.startswith(f"I pushed {after}")
    ]
    assert len(pushed) == 1
    comment = ci_comment(world)
    assert "`test`" in comment
    assert "(attempt 1 of 3)" in comment
    assert "Fix attempts: 1 of 3." in comment
    assert run.id[:8] in comment

    # the fix's commit passes: the same comment is edited to say so
    world.gh.checks.workflow(
        REPO, after, "CI", jobs=[world.gh.checks.job("test", conclusion="success")], author=BOT
    )
    await completed(world, http, after)
    assert "Outcome: CI passed." in ci_comment(world)
    assert ci_comment_writes(world)[0] == 1
    assert len(await runs(world)) == 1


async def test_the_same_failure_after_a_fix_stops_with_a_comment(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    fix_calc(world.model)
    await world.start()
    red(world, head(world))
    await completed(world, http, head(world))
    await finished(world, 1)

    fixed = head(world)
    red(world, fixed, FAILING_LOG.replace("0.001s", "0.004s"))  # the same failure, again
    [answer] = await completed(world, http, fixed)

    assert answer["status"] == "accepted"
    assert len(await runs(world)) == 1
    comment = ci_comment(world)
    assert "stopped: the same failure came back after a fix" in comment
    assert "left to people" in comment
    assert ci_comment_writes(world)[0] == 1  # one comment, edited in place
    assert world.store is not None
    decided = await world.store.ci_commit(REPO, fixed)
    assert decided is not None
    assert decided.decision == "same-failure"


async def test_a_failure_also_on_the_base_branch_is_reported_not_attempted(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    await world.start()
    red(world, git(world.remote, "rev-parse", "main"))  # main fails the same check
    red(world, head(world))

    await completed(world, http, head(world), every=True)

    assert await runs(world) == []
    comment = ci_comment(world)
    assert "not attempted: these checks also fail on `main`" in comment
    assert "Fix attempts: 0 of 3." in comment
    assert ci_comment_writes(world) == (1, 0)
    assert world.model.requests == []


async def test_three_failing_commits_never_start_more_than_three_fix_runs(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    world.model.on(
        offers("edit_file"),
        edit_calc,
        tool("execute", command=TEST_COMMAND),
        text("Fixed add()."),
        note(2),
        text("Wrote fix-2.md."),
        note(3),
        text("Wrote fix-3.md."),
    )
    world.model.on(
        offers("PullRequestText"),
        tool("PullRequestText", title="Fix CI", summary="Fixes the failing check."),
        repeat_last=True,
    )
    await world.start()

    for attempt in range(1, 5):
        sha = head(world)
        red(world, sha, FAILING_LOG.replace("-1 != 5", f"error number {attempt}"))
        await completed(world, http, sha)
        if attempt <= 3:
            run = await finished(world, attempt)
            assert run.status == "succeeded", run.error
            assert head(world) != sha

    assert len(await runs(world)) == 3
    comment = ci_comment(world)
    assert "stopped: 3 fix attempts made, the limit" in comment
    assert "Fix attempts: 3 of 3." in comment
    assert "(attempt 3 of 3)" in comment
    assert ci_comment_writes(world)[0] == 1


async def test_a_re_run_is_waited_for_and_a_green_re_run_needs_no_fix(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    await world.start()
    sha = head(world)
    job = red(world, sha)
    [suite] = [s for s in world.gh.checks.suites if s.id == world.gh.checks.check_runs[-1].suite_id]
    # someone re-runs the failed job before the first completion is decided on
    suite.status, suite.conclusion = "in_progress", None
    rerun = world.gh.checks.run(suite, job.name, status="in_progress", conclusion=None)

    [answer] = await completed(world, http, sha)
    assert world.store is not None
    assert answer["status"] == "accepted"
    assert await world.store.ci_commit(REPO, sha) is None  # waiting: nothing decided

    rerun.status, rerun.conclusion = "completed", "success"
    suite.status, suite.conclusion = "completed", "success"
    await completed(world, http, sha)

    assert await runs(world) == []
    assert await world.store.ci_commit(REPO, sha) is None
    assert [c for c in world.gh.comments.values() if report.MARKER in c.body] == []
    delivered = await world.store.unfinished_deliveries()
    assert delivered == []


async def test_the_ci_fix_comment_says_how_a_fix_run_that_pushed_nothing_ended(
    world: World, pull: PullRequest, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    push(world, tmp_path, "calc.py", FIXED)  # the tests pass: the run may change nothing
    world.model.on(offers("edit_file"), text("I see nothing to change."))
    await world.start(outbox_sweep_seconds=1.0)
    sha = head(world)
    red(world, sha)
    await completed(world, http, sha)
    run = await finished(world, 1)
    assert head(world) == sha  # nothing pushed: no new CI will come

    await eventually(
        lambda: report.RUN_ENDED["succeeded"] in ci_comment(world), "the comment to say so"
    )
    assert f"the run {run.status}" in ci_comment(world)
    store = world.store
    assert store is not None

    async def recorded() -> bool:  # once: its commit's decision moves on
        decided = await store.ci_commit(REPO, sha)
        return decided is not None and decided.decision == "attempt-ended"

    await eventually(recorded, "the run's end to be recorded")
    assert ci_comment_writes(world)[0] == 1


# --- left alone ------------------------------------------------------------------------------


async def test_a_fork_and_a_pull_request_without_autofix_are_left_alone(
    world: World, pull: PullRequest, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fix_calc(world.model)
    await world.start()
    # a fork's pull request (GitHub lists none in the event: found by its commit)
    fork = world.gh.add_pull(REPO, head="patch", head_repo="stranger/Hello-World", user=WRITER)
    fork.head_sha = "f" * 40
    red(world, fork.head_sha, author="stranger")
    assert (await completed(world, http, fork.head_sha, number=fork.issue.number))[0][
        "status"
    ] == "accepted"
    events = ci_events(fork.head_sha, fork.issue.number)
    name, data = events[3]  # workflow_job: names no pull request
    await deliver(world, http, name, data)
    # a person's pull request: open-swe did not open it, nobody turned autofix on
    mine = world.gh.add_pull(REPO, head="main", user=WRITER)
    main = git(world.remote, "rev-parse", "main")
    red(world, main, author=WRITER)
    await completed(world, http, main, number=mine.issue.number)

    assert world.store is not None
    assert await world.store.ci_commit(REPO, fork.head_sha) is None
    assert await world.store.ci_commit(REPO, main) is None
    assert await runs(world, thread_key(REPO, fork.issue.number)) == []
    assert await runs(world, thread_key(REPO, mine.issue.number)) == []
    assert [c for c in world.gh.comments.values() if report.MARKER in c.body] == []

    # open-swe's own pull request with autofix turned off by a writer
    off = world.gh.add_comment(REPO, NUMBER, "/open-swe autofix off", user=WRITER)
    await deliver(world, http, "issue_comment", on_pull_request(off))
    assert any("CI autofix is now **off**" in c.body for c in world.gh.comments.values())
    red(world, head(world))
    await completed(world, http, head(world))
    assert await runs(world) == []
    assert await world.store.ci_commit(REPO, head(world)) is None


async def test_a_writer_turns_autofix_on_for_a_persons_pull_request(
    world: World, pull: PullRequest, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fix_calc(world.model)
    await world.start()
    sha = push(world, tmp_path, "MORE.md", "more\n", author="Carol")
    world.gh.pulls[(REPO, NUMBER)].issue.user = WRITER  # a person's pull request
    red(world, sha, author="Carol")
    await completed(world, http, sha)
    assert await runs(world) == []

    on = world.gh.add_comment(REPO, NUMBER, "/open-swe autofix on", user=WRITER)
    await deliver(world, http, "issue_comment", on_pull_request(on))
    await completed(world, http, sha)  # e.g. a re-run of the failed jobs completes
    run = await finished(world, 1)

    assert run.status == "succeeded", run.error
    assert git(world.remote, "rev-parse", f"{head(world)}~1") == sha


async def test_an_installation_without_the_checks_permission_gets_one_note(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    await world.start()
    world.gh.checks.forbid()

    # without the permissions no check event comes: a push to the pull request is the cue
    synchronized = payload("pull_request.synchronize")
    synchronized["pull_request"]["head"]["sha"] = head(world)
    for _ in range(2):
        answer = await deliver(world, http, "pull_request", synchronized)
        assert answer["status"] == "accepted"
    [answer] = await completed(world, http, head(world))  # were one to come anyway
    assert answer["status"] == "accepted"

    notes = [c.body for c in world.gh.comments.values() if "Checks: read" in c.body]
    assert len(notes) == 1
    assert "Actions: read" in notes[0]
    assert "Settings → GitHub Apps" in notes[0]
    assert await runs(world) == []


# --- around the attempts ---------------------------------------------------------------------


async def test_ci_waits_for_the_run_active_on_the_pull_request_then_is_decided(
    world: World, pull: PullRequest, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    push(world, tmp_path, "calc.py", FIXED)  # the branch's tests pass: a run may change nothing
    world.model.on(
        offers("edit_file"),
        Slow(2, text("Nothing needs to change.")),  # the run a person asked for
        note(1),  # then the fix run
        text("Wrote fix-1.md."),
    )
    script_pr(world.model)
    await world.start(outbox_sweep_seconds=1.0)
    asked = world.gh.add_comment(REPO, NUMBER, "/open-swe tidy the notes", user=WRITER)
    await deliver(world, http, "issue_comment", on_pull_request(asked))
    sha = head(world)
    red(world, sha)

    [answer] = await completed(world, http, sha)
    assert world.store is not None
    decided = await world.store.ci_commit(REPO, sha)
    assert decided is not None
    assert decided.decision == "deferred"
    assert len(await runs(world)) == 1

    fix = await finished(world, 2)  # the sweep decides once the first run ended
    assert fix.status == "succeeded", fix.error
    assert answer["status"] == "accepted"
    assert git(world.remote, "rev-parse", f"{head(world)}~1") == sha
    assert "(attempt 1 of 3)" in ci_comment(world)


async def test_a_persons_commit_resets_the_attempts(
    world: World, pull: PullRequest, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    world.model.on(
        offers("edit_file"),
        edit_calc,
        tool("execute", command=TEST_COMMAND),
        text("Fixed add()."),
        note(2),
        text("Wrote fix-2.md."),
    )
    world.model.on(
        offers("PullRequestText"),
        tool("PullRequestText", title="Fix CI", summary="Fixes the failing check."),
        repeat_last=True,
    )
    await world.start(max_ci_fix_attempts=1)
    red(world, head(world))
    await completed(world, http, head(world))
    await finished(world, 1)

    # a person pushes; the same failure on their commit is theirs: the count starts again
    sha = push(world, tmp_path, "HUMAN.md", "mine\n", author="Carol")
    red(world, sha, author="Carol")
    await completed(world, http, sha)
    run = await finished(world, 2)

    assert run.status == "succeeded", run.error
    assert "Fix attempts: 1 of 1." in ci_comment(world)
    assert world.store is not None
    state = await world.store.ci_pull(REPO, NUMBER)
    assert state is not None
    assert state.attempts == 1


async def test_a_fix_that_skips_a_test_is_listed_for_a_reviewer(
    world: World, pull: PullRequest, http: httpx.AsyncClient
) -> None:
    def skip_test(request: ModelRequest) -> Reply:
        return tool(
            "edit_file",
            file_path=f"{repo_path(request)}/test_calc.py",
            old_string="    def test_add(self):",
            new_string="    @unittest.skip('flaky')\n    def test_add(self):",
        )

    world.model.on(
        offers("edit_file"),
        skip_test,
        tool("execute", command=TEST_COMMAND),
        text("Skipped the flaky test."),
    )
    script_pr(world.model)
    pull.live_files = True
    await world.start()
    red(world, head(world))
    await completed(world, http, head(world))
    run = await finished(world, 1)
    assert run.status == "succeeded", run.error

    fixed = head(world)
    world.gh.checks.workflow(
        REPO, fixed, "CI", jobs=[world.gh.checks.job("test", conclusion="success")], author=BOT
    )
    await completed(world, http, fixed)

    comment = ci_comment(world)
    assert report.REVIEW in comment
    assert "- skips tests in test_calc.py" in comment
    assert "Outcome: CI passed." in comment
    assert world.gh.pulls[(REPO, NUMBER)].draft is False  # never touched: not marked ready
    assert not world.gh.calls_matching("PATCH", f"/repos/{REPO}/pulls/{NUMBER}")
