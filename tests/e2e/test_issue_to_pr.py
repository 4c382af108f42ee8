"""A labelled issue becomes a draft pull request: both approval modes, restarts, one run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.hosts import status
from app.sandbox.local import LocalSandbox
from app.webhooks import messages
from tests.agent.conftest import FIXED, PLAN, edit_calc, git, script_fix, script_plan, script_pr
from tests.e2e.conftest import (
    BRANCH,
    ISSUE,
    MAINTAINER,
    READER,
    REPO,
    SLUG,
    THREAD,
    WRITER,
    World,
    branch_tests_pass,
    eventually,
)
from tests.fakes.model import ModelRequest, Reply, offers, text, tool

pytestmark = pytest.mark.slow

REVISED = {"title": "Fix add() and document it", "steps": ["Fix add()", "Add a docstring"]}
FEEDBACK = "Please also add a docstring to add()."


def assert_published(world: World, tmp_path: Path) -> None:
    """The fix is on the branch in GitHub's copy, and its tests pass there."""
    assert git_show(world.remote, f"{BRANCH}:calc.py") == FIXED
    result = branch_tests_pass(world.remote, BRANCH, tmp_path / "verify")
    assert result.returncode == 0, result.stdout + result.stderr


def git_show(repo: Path, *args: str) -> str:
    return git(repo, "show", *args) + "\n"


async def test_auto_label_ends_in_one_draft_pull_request_whose_tests_pass(
    world: World, tmp_path: Path
) -> None:
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    await world.start()

    await world.label("open-swe-auto")
    run = await world.finished_run()

    assert run.status == "succeeded", run.error
    assert world.model.unmatched == []
    assert_published(world, tmp_path)
    # exactly one draft pull request, closing the issue, asking its requester for review
    [pull] = world.gh.pulls.values()
    assert pull.draft
    assert pull.head_ref == BRANCH
    assert (pull.issue.body or "").rstrip().endswith(f"Fixes #{ISSUE}")
    assert pull.requested_reviewers == [MAINTAINER]
    assert run.pr_number == pull.issue.number
    # one status comment: created once, edited as steps completed (live edits coalesced, at
    # most one per few seconds), ending with the link
    [comment] = world.status_comments()
    assert run.status_comment_id == comment.id
    created, edited = world.status_writes(run.id)
    assert created == 1
    assert edited >= 1  # at least the final status
    link = f"{world.gh.web_url}/{REPO}/pull/{pull.issue.number}"
    assert status.HEADER_SUCCEEDED.format(link=link) in comment.body
    assert comment.body.count(f"- {status.DONE} ") == len(status.STEP_LABELS)
    assert f"{status.DONE} {status.STEP_LABELS['approval']}: auto-approved" in comment.body
    # the plan was shown, auto-approved; the eyes reaction acknowledged the label
    [plan] = world.plan_comments()
    assert status.PLAN_AUTO in plan.body
    eyes = world.gh.reactions_on(REPO, "issue", ISSUE)
    assert [(r.content, r.user) for r in eyes] == [("eyes", f"{SLUG}[bot]")]
    # the commit: the App's bot as author, the person who labelled as co-author
    log = git_show(world.remote, "--no-patch", "--format=%an%n%B", BRANCH)
    assert log.startswith(f"{SLUG}[bot]\nFix add() to return the sum")
    assert f"Co-authored-by: {MAINTAINER} <{MAINTAINER}@users.noreply" in log
    assert world.sandboxes() == []


async def test_plan_approval_survives_a_restart_and_a_revision(
    world: World, tmp_path: Path
) -> None:
    script_plan(world.model, PLAN, REVISED)
    script_fix(world.model)
    script_pr(world.model)
    await world.start()

    await world.label("open-swe")
    waiting = await world.run_in("waiting")
    [plan] = world.plan_comments()
    assert status.approve_hint(SLUG) in plan.body
    assert PLAN["steps"][0] in plan.body
    [comment] = world.status_comments()
    assert f"{status.WAITING} {status.STEP_LABELS['approval']}" in comment.body
    assert world.model.requests_offering("edit_file") == []

    # The server restarts while the plan waits: a new app on the same database and checkpoints.
    await world.stop()
    await world.start()

    # Someone without write access cannot answer the plan.
    await world.comment("/open-swe approve", user=READER)
    refusal = messages.REFUSED_NO_WRITE.format(user=READER)
    await eventually(
        lambda: any(refusal in c.body for c in world.comments()), "the read-only user's refusal"
    )
    assert (await world.run_in("waiting")).id == waiting.id

    # A writer asks for a revision: a new plan, written with the feedback.
    await world.comment(f"/open-swe revise {FEEDBACK}", user=WRITER)
    await eventually(lambda: len(world.plan_comments()) == 2, "the revised plan")
    await world.run_in("waiting")
    replan = world.model.requests_offering("SubmitPlan")[-1]
    assert FEEDBACK in replan.text
    assert f"plan feedback from {WRITER}" in replan.text
    assert REVISED["steps"][1] in world.plan_comments()[-1].body

    # Another writer approves, addressing the App by name.
    await world.comment(f"@{SLUG} approve", user=MAINTAINER)
    run = await world.finished_run()

    assert run.id == waiting.id
    assert run.status == "succeeded", run.error
    assert len(world.model.requests_offering("SubmitPlan")) == 4  # two plans, never redone
    assert_published(world, tmp_path)
    [pull] = world.gh.pulls.values()
    assert pull.draft
    [comment] = world.status_comments()
    assert world.status_writes(run.id)[0] == 1  # one status comment across the restart
    assert f"{status.DONE} {status.STEP_LABELS['approval']}: approved by {MAINTAINER}" in (
        comment.body
    )
    assert (
        status.HEADER_SUCCEEDED.format(link=f"{world.gh.web_url}/{REPO}/pull/{pull.issue.number}")
        in comment.body
    )
    assert world.sandboxes() == []
    # every answer was consumed exactly once
    assert world.store is not None
    assert await world.store.pending_commands(run.thread) == []


async def test_an_approval_sent_while_the_run_parks_is_not_lost(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is on the issue but the run is still `running` while its sandbox stops
    (seconds on Daytona): an approval then is kept for the run, which goes on once parked."""
    parking, release = threading.Event(), threading.Event()
    stop = LocalSandbox.stop

    def held(sandbox: LocalSandbox) -> None:
        parking.set()
        release.wait(timeout=30)
        stop(sandbox)

    monkeypatch.setattr(LocalSandbox, "stop", held)
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    await world.start()

    await world.label("open-swe")
    await eventually(parking.is_set, "the run to park")
    assert len(world.plan_comments()) == 1
    assert (await world.run_in("running")).status == "running"
    await world.comment("/approve", user=WRITER)
    assert world.store is not None
    store = world.store

    async def processed() -> bool:
        return not await store.unfinished_deliveries()

    await eventually(processed, "the approval to be processed")
    pending = await world.store.pending_commands(THREAD)
    assert [(c.verb, c.author) for c in pending] == [("approve", WRITER)]
    parking_run = await world.run_in("running")
    assert parking_run.plan_question == 1  # why the approval was kept for it
    release.set()
    run = await world.finished_run()

    assert run.status == "succeeded", run.error
    assert_published(world, tmp_path)
    [comment] = world.status_comments()
    assert f"{status.STEP_LABELS['approval']}: approved by {WRITER}" in comment.body
    assert await world.store.pending_commands(THREAD) == []
    assert world.sandboxes() == []


async def test_a_shutdown_mid_run_suspends_it_and_the_next_start_finishes_it(
    world: World, tmp_path: Path
) -> None:
    entered, release = threading.Event(), threading.Event()

    def held(request: ModelRequest) -> Reply:
        """The first implementation call hangs until the test lets it go (the server is down
        by then: nobody reads the answer)."""
        entered.set()
        release.wait(timeout=30)
        return text("too late")

    script_plan(world.model)
    world.model.on(
        offers("edit_file"),
        held,
        edit_calc,
        tool("execute", command="python3 -m unittest -q"),
        text("Changed add() to return the sum; the tests pass."),
    )
    script_pr(world.model)
    await world.start()

    await world.label("open-swe-auto")
    await eventually(entered.is_set, "the implementation to start")
    await world.stop()  # SIGTERM-like: the in-flight run is suspended, not stopped
    release.set()
    suspended = await world.run_in("running")
    [comment] = world.status_comments()
    assert status.HEADER_STOPPED.split(":")[0] not in comment.body
    assert len(world.sandboxes()) == 1  # kept for the resumption

    await world.start()
    run = await world.finished_run()

    assert run.id == suspended.id
    assert run.status == "succeeded", run.error
    assert len(world.model.requests_offering("SubmitPlan")) == 2  # planned once, not redone
    assert_published(world, tmp_path)
    assert len(world.gh.pulls) == 1
    assert world.status_writes(run.id)[0] == 1
    assert world.sandboxes() == []


async def test_a_second_label_while_a_run_is_active_starts_nothing(world: World) -> None:
    script_plan(world.model)
    await world.start()

    await world.label("open-swe")
    first = await world.run_in("waiting")
    await world.label("open-swe-auto")
    await world.label("open-swe")
    already = messages.ALREADY_RUNNING.split("{")[0]
    await eventually(
        lambda: sum(already in c.body for c in world.comments()) == 2,
        "two 'already running' answers",
    )

    assert [run.id for run in await world.runs()] == [first.id]
    assert (await world.run_in("waiting")).id == first.id
    assert len(world.model.requests_offering("SubmitPlan")) == 2  # one plan only
    assert len(world.plan_comments()) == 1
