"""Every way a run can go wrong ends with an accurate status comment, a final run row, and no
sandbox left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.faults import MODEL
from app.hosts import status
from app.runs.faults import GAVE_UP
from app.runs.lifecycle import TESTS_FAILING
from app.runs.models import Run
from app.webhooks import messages
from tests.agent.conftest import (
    FIXED,
    PLAN,
    REPO_FILES,
    git,
    repo_path,
    script_fix,
    script_plan,
    script_pr,
)
from tests.e2e.conftest import (
    BRANCH,
    MAINTAINER,
    REPO,
    SLUG,
    WRITER,
    World,
    bare_repo,
    eventually,
)
from tests.fakes.model import Fault, ModelRequest, Reply, anything, offers, text, tool

pytestmark = pytest.mark.slow


def final_status(world: World) -> str:
    [comment] = world.status_comments()
    return comment.body


async def test_tests_still_failing_after_the_attempts_open_a_draft_that_says_so(
    world: World,
) -> None:
    def wrong_fix(request: ModelRequest) -> Reply:
        return tool(
            "edit_file",
            file_path=f"{repo_path(request)}/calc.py",
            old_string="return a - b",
            new_string="return a * b",
        )

    script_plan(world.model)
    world.model.on(offers("edit_file"), wrong_fix, text("Done."), text("I could not find it."))
    script_pr(world.model)
    await world.start(max_test_attempts=2)

    await world.label("open-swe-auto")
    run = await world.finished_run()

    [pull] = world.gh.pulls.values()
    link = f"{world.gh.web_url}/{REPO}/pull/{pull.issue.number}"
    assert run.status == "failed"
    assert run.error == TESTS_FAILING.format(url=link)
    assert pull.draft
    assert (pull.issue.body or "").startswith("> [!WARNING]\n> Tests failing:")
    assert "still failing after 2 attempt(s)" in (pull.issue.body or "")
    body = final_status(world)
    assert status.HEADER_TESTS_FAILING.format(link=link, slug=SLUG) in body
    assert len(world.model.requests_offering("edit_file")) == 3  # two attempts
    assert world.sandboxes() == []


async def test_a_model_outage_is_waited_out_then_reported(world: World) -> None:
    """The SDK's retries, then the run's own (it waits at its last step, resumed by the
    reaper), then a failure that names what was unavailable and how to retry."""
    world.model.on(
        anything, Fault(429), Fault(500, message="overloaded upstream"), repeat_last=True
    )
    await world.start(
        model_max_retries=2,
        transient_retry_minutes=0.03,
        transient_first_wait_seconds=0.5,
        outbox_sweep_seconds=1,
    )

    await world.label("open-swe-auto")
    run = await world.finished_run()

    reason = GAVE_UP.format(what=MODEL, minutes="0.03 minutes", detail="HTTP 500")
    assert run.status == "failed"
    assert run.error == reason
    assert len(world.model.requests) >= 6  # the SDK's three tries, at least twice
    assert len(world.model.requests) % 3 == 0
    body = final_status(world)
    assert status.HEADER_FAILED.format(reason=status.inline(reason)) in body
    assert status.NEXT.format(what=status.NEXT_RETRY) in body
    assert f"{status.FAILED} {status.STEP_LABELS['plan']}" in body
    assert world.gh.pulls == {}
    assert world.sandboxes() == []


async def test_an_exhausted_budget_names_the_limit_to_raise(world: World) -> None:
    world.model.on(offers("SubmitPlan"), tool("ls", path="/"), tool("SubmitPlan", **PLAN))
    world.model.on(offers("edit_file"), tool("execute", command="true"), repeat_last=True)
    await world.start(max_model_calls=4)

    await world.label("open-swe-auto")
    run = await world.finished_run()

    reason = "budget exhausted: model calls (4 per run)"
    assert run.status == "failed"
    assert run.error == reason
    assert len(world.model.requests) == 4
    body = final_status(world)
    assert status.HEADER_FAILED.format(reason=status.inline(reason)) in body
    raise_it = status.NEXT_RAISE_LIMIT.format(variable="OPEN_SWE_MAX_MODEL_CALLS")
    assert status.NEXT.format(what=raise_it) in body
    assert world.gh.pulls == {}
    assert world.sandboxes() == []


async def test_nothing_changed_means_no_pull_request_and_a_comment_that_says_so(
    world: World, tmp_path: Path
) -> None:
    fixed = bare_repo(tmp_path, {**REPO_FILES, "calc.py": FIXED}, name="already-fixed")
    world.gh.repos[REPO].clone_url = fixed.resolve().as_uri()
    script_plan(world.model)
    world.model.on(offers("edit_file"), text("add() is already correct; nothing to change."))
    await world.start()

    await world.label("open-swe-auto")
    run = await world.finished_run()

    assert run.status == "succeeded"
    assert run.pr_number is None
    assert world.gh.pulls == {}
    assert BRANCH not in git(fixed, "branch", "--list")  # nothing pushed either
    assert world.model.requests_offering("PullRequestText") == []
    body = final_status(world)
    assert status.HEADER_NO_CHANGES in body
    assert status.NEXT.format(what=status.NEXT_NO_CHANGES) in body
    assert world.sandboxes() == []


async def test_a_missing_model_key_fails_at_once_naming_the_variable(world: World) -> None:
    await world.start(anthropic_api_key=None)

    await world.label("open-swe-auto")
    run = await world.finished_run()

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.startswith("ANTHROPIC_API_KEY is not set")
    body = final_status(world)
    assert status.HEADER_FAILED.split("{")[0] + "ANTHROPIC_API_KEY is not set" in body
    assert status.NEXT_SET_VARIABLE.format(variable="ANTHROPIC_API_KEY") in body
    assert world.status_writes(run.id) == (1, 0)  # one comment, straight to its final words
    assert world.model.requests == []
    assert world.sandboxes() == []  # none was ever made


async def test_stop_during_a_run_ends_it_as_stopped(world: World) -> None:
    entered, release = threading.Event(), threading.Event()

    def held(request: ModelRequest) -> Reply:
        entered.set()
        release.wait(timeout=30)
        return text("too late")

    script_plan(world.model)
    world.model.on(offers("edit_file"), held)
    await world.start()

    await world.label("open-swe-auto")
    await eventually(entered.is_set, "the implementation to start")
    await world.comment("/open-swe stop", user=MAINTAINER)
    run = await world.finished_run()
    release.set()

    assert run.status == "stopped"
    reason = messages.STOPPED_BY.format(user=MAINTAINER)
    assert run.error == reason
    stopped = status.HEADER_STOPPED.format(reason=status.inline(reason))
    body = await eventually(
        lambda: stopped in final_status(world) and final_status(world), "the stopped status"
    )
    # Stopped while implementing: the mark lands on the step after the last one reported done,
    # Implement, or Verify when the agent's step ended as the stop cancelled it (a race the
    # stop cannot order); nothing was published either way.
    assert any(f"{status.STOPPED} {status.STEP_LABELS[s]}" in body for s in ("implement", "verify"))
    assert f"{status.PENDING} {status.STEP_LABELS['publish']}" in body
    assert status.NEXT.format(what=status.NEXT_RETRY) in body
    answer = messages.STOPPED.split("(")[0]
    await eventually(lambda: any(answer in c.body for c in world.comments()), "the answer")
    await eventually(lambda: world.sandboxes() == [], "the sandbox to be deleted")
    assert world.gh.pulls == {}
    assert git(world.remote, "branch", "--list") == "* main"


async def test_stop_while_the_plan_waits_ends_the_run_and_its_parked_sandbox(
    world: World,
) -> None:
    script_plan(world.model)
    await world.start()
    await world.label("open-swe")
    await world.run_in("waiting")
    assert len(world.sandboxes()) == 1  # parked (stopped) while people decide

    await world.comment("/open-swe stop", user=WRITER)
    run = await world.finished_run()

    reason = f"stopped by {WRITER} at plan approval"
    assert (run.status, run.error) == ("stopped", reason)
    body = final_status(world)
    assert status.HEADER_STOPPED.format(reason=status.inline(reason)) in body
    # Stopped while implementing: the mark lands on the step after the last one reported done,
    # Implement, or Verify when the agent's step ended as the stop cancelled it (a race the
    # stop cannot order); nothing was published either way.
    assert any(f"{status.STOPPED} {status.STEP_LABELS[s]}" in body for s in ("implement", "verify"))
    assert f"{status.PENDING} {status.STEP_LABELS['publish']}" in body
    assert world.sandboxes() == []
    assert world.model.requests_offering("edit_file") == []
    assert world.store is not None
    assert await world.store.pending_commands(run.thread) == []


async def test_labelling_again_after_a_failed_run_starts_afresh_on_the_same_thread(
    world: World, tmp_path: Path
) -> None:
    """The issue's checkpoint thread still holds the failed run's last step; the new run
    starts from the first one (after the limit was raised and the server restarted)."""
    # The first run's replies: exactly the three calls its budget allows.
    world.model.on(offers("SubmitPlan"), tool("ls", path="/"), tool("SubmitPlan", **PLAN))
    world.model.on(offers("edit_file"), tool("execute", command="true"))
    script_plan(world.model)  # the second run's, once the first run's are used up
    script_fix(world.model)
    script_pr(world.model)
    await world.start(max_model_calls=3)
    await world.label("open-swe-auto")
    failed = await world.finished_run()
    assert failed.error == "budget exhausted: model calls (3 per run)"
    await world.stop()

    await world.start(max_model_calls=200)
    await world.label("open-swe-auto")

    async def second_run() -> Run | None:
        latest = (await world.runs())[0]
        return latest if latest.id != failed.id and not latest.active else None

    run = await eventually(second_run, "the second run to finish")

    assert run.id != failed.id
    assert run.status == "succeeded", run.error
    assert [r.id for r in await world.runs()] == [run.id, failed.id]
    assert len(world.model.requests_offering("SubmitPlan")) == 4  # planned again from scratch
    assert status.HEADER_SUCCEEDED.split("{")[0] in world.status_comment(run.id).body
    assert status.HEADER_FAILED.split("{")[0] in world.status_comment(failed.id).body
    assert len(world.gh.pulls) == 1
    assert world.sandboxes() == []
