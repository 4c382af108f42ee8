"""The workflow end to end (graph + execute_run, ended by run_to_end) with a host double,
repo as the remote and the scripted model behind the real LangChain -> anthropic SDK path."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.agent.checkpoint import open_checkpointer
from app.agent.context import RunContext
from app.agent.graph import build_graph
from app.agent.host import RunOutcome
from app.agent.state import RunInput
from app.config import Settings
from app.faults import MODEL, Transient
from app.hosts import status
from app.runs.drive import run_to_end
from app.runs.faults import FaultPolicy
from app.sandbox.local import LocalProvider
from tests.agent.conftest import (
    FAKE_ANTHROPIC_KEY,
    FAKE_TOKEN,
    FIXED,
    PLAN,
    REPO_FILES,
    SECRETS,
    RecordingHost,
    git,
    make_repo,
    make_settings,
    read_calc,
    repo_path,
    script_fix,
    script_plan,
    script_pr,
)
from tests.fakes.model import Fault, ScriptedModel, Slow, anything, offers, text, tool


def run_input(auto: bool = True, run_id: str = "run-1") -> RunInput:
    return RunInput(
        thread_id="acme/calc#7",
        run_id=run_id,
        repo="acme/calc",
        issue_number=7,
        branch="open-swe/issue-7",
        auto_approve=auto,
    )


async def run(
    settings: Settings, host: RecordingHost, provider: LocalProvider, start: object
) -> RunOutcome:
    async with open_checkpointer(settings) as saver:
        graph = build_graph(saver)
        context = RunContext(settings=settings, host=host, sandboxes=provider)
        return await run_to_end(graph, context, run_input(), start)  # type: ignore[arg-type]


def branch_tests_pass(remote: Path, branch: str, tmp_path: Path) -> bool:
    checkout = tmp_path / "verify"
    git(tmp_path, "clone", "-q", "--branch", branch, str(remote), str(checkout))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def assert_no_secret_reached_the_model(model: ScriptedModel) -> None:
    assert model.requests, "the model was never called"
    for body in model.bodies():
        for secret in SECRETS:
            assert secret not in body


async def test_auto_approved_issue_becomes_a_branch_whose_tests_pass(
    settings: Settings,
    model: ScriptedModel,
    remote: Path,
    provider: LocalProvider,
    tmp_path: Path,
) -> None:
    script_plan(model)
    script_fix(model)
    script_pr(model)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert model.unmatched == []
    assert outcome.status == "succeeded", outcome
    assert host.outcomes == [outcome]
    assert outcome.url == "https://example.test/pr/open-swe/issue-7"
    assert outcome.usage.model_calls == len(model.requests)
    assert outcome.usage.tokens > 0
    assert outcome.usage.cost_usd > 0
    assert branch_tests_pass(remote, "open-swe/issue-7", tmp_path)
    assert git(remote, "show", "open-swe/issue-7:calc.py") + "\n" == FIXED
    # the agent's own test run started in the checkout
    ran = model.requests_offering("edit_file")[3].last_tool_result()
    assert "Ran 1 test" in ran
    assert "OK" in ran
    # the commit: bot author, the requester as co-author, no litter from the test runs
    log = git(remote, "log", "-1", "--format=%an <%ae>%n%B", "open-swe/issue-7")
    assert log.startswith("open-swe[bot] <bot@example.com>\nFix add() to return the sum")
    assert "Co-authored-by: Ada Lovelace <ada@example.com>" in log
    files = git(remote, "ls-tree", "-r", "--name-only", "open-swe/issue-7").splitlines()
    assert sorted(files) == [".open-swe.yml", "AGENTS.md", "calc.py", "test_calc.py"]
    # the PR body
    [change] = host.calls("publish")
    assert change.body.rstrip().endswith("Fixes #7")
    assert "- [ ] Make add() in calc.py return a + b" in change.body
    assert "`python3 -m unittest -q` passed" in change.body
    assert change.tests_passed is True
    # progress, one line per step, in order
    steps = [step for step, _ in host.calls("progress")]
    assert steps == ["prepare", "plan", "approval", "implement", "verify", "publish"]
    # the plan was posted, not awaiting approval
    assert host.calls("plan") == [({"title": "Fix add()", "steps": [
        "Make add() in calc.py return a + b", "Run the tests"]}, False)]  # fmt: skip
    # the sandbox is gone
    assert provider.find({"open-swe.thread": "acme/calc#7"}) == []
    # safety: no secret, no hidden comment; task text fenced as untrusted; AGENTS.md included
    assert_no_secret_reached_the_model(model)
    for body in model.bodies():
        assert "hidden-order-42" not in body
    first = model.requests[0]
    assert '<untrusted source=\\"issue #7 description\\">' in first.raw
    assert "Keep functions small." in first.system
    assert first.api == "anthropic"


def sandbox_state(provider: LocalProvider) -> list[str]:
    return [
        json.loads((Path(box.directory) / "sandbox.json").read_text())["state"]  # type: ignore[attr-defined]
        for box in provider.find(LABELS)
    ]


LABELS = {"open-swe.thread": "acme/calc#7"}
REVISED = {"title": "Fix add() and document it", "steps": ["Fix add()", "Add a docstring"]}


async def test_approval_waits_durably_across_restarts_revises_then_approves(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider, tmp_path: Path
) -> None:
    script_plan(model, PLAN, REVISED)
    script_fix(model)
    script_pr(model)

    first = RecordingHost(remote)
    waiting = await run(settings, first, provider, run_input(auto=False))
    assert waiting.status == "waiting"
    assert first.outcomes == []  # not finished: no final status yet
    assert first.calls("plan") == [(PLAN, True)]
    assert sandbox_state(provider) == ["stopped"]  # compute released while people decide

    # A new process (new host, graph and checkpointer) receives "revise".
    second = RecordingHost(remote)
    feedback = "Also add a docstring.<!-- hidden-order-42 -->"
    revise = {"verb": "revise", "feedback": feedback, "by": "carol"}
    assert (await run(settings, second, provider, revise)).status == "waiting"
    assert second.calls("plan") == [(REVISED, True)]
    assert second.calls("load_task") == []  # resumed, not restarted
    replan = model.requests_offering("SubmitPlan")[2]
    assert "Also add a docstring." in replan.text
    assert "plan feedback from carol" in replan.text
    assert "Make add() in calc.py return a + b" in replan.text  # the previous plan

    third = RecordingHost(remote)
    done = await run(settings, third, provider, {"verb": "approve", "by": "carol"})
    assert done.status == "succeeded", done
    assert third.outcomes == [done]
    assert ("approval", "approved by carol") in third.calls("progress")
    assert branch_tests_pass(remote, "open-swe/issue-7", tmp_path)
    assert provider.find(LABELS) == []
    for body in model.bodies():
        assert "hidden-order-42" not in body
    assert_no_secret_reached_the_model(model)


async def test_stop_at_approval_ends_the_run(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    script_plan(model)
    host = RecordingHost(remote, decisions=[{"verb": "stop", "by": "dave"}])

    outcome = await run(settings, host, provider, run_input(auto=False))

    assert outcome.status == "stopped"
    assert outcome.reason == "stopped by dave at plan approval"
    assert host.outcomes == [outcome]
    assert provider.find(LABELS) == []
    assert model.requests_offering("edit_file") == []


async def test_cancelled_run_reports_stopped_and_a_retry_completes_it(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider, tmp_path: Path
) -> None:
    script_plan(model)
    script_fix(model)
    script_fix(model)  # the retry redoes the work: the stopped run's sandbox was deleted
    script_pr(model)
    host = RecordingHost(remote, block_in="implement")
    task = asyncio.create_task(run(settings, host, provider, run_input()))
    await asyncio.wait_for(host.blocked.wait(), timeout=30)

    task.cancel("stopped by @dave")
    with pytest.raises(asyncio.CancelledError):
        await task

    [stopped] = host.outcomes
    assert stopped.status == "stopped"
    assert stopped.reason == "stopped by @dave"
    assert stopped.usage.model_calls > 0
    assert provider.find(LABELS) == []

    retry = RecordingHost(remote)
    outcome = await run(settings, retry, provider, None)
    assert outcome.status == "succeeded", outcome.reason
    assert [s for s, _ in retry.calls("progress")] == ["implement", "verify", "publish"]
    assert branch_tests_pass(remote, "open-swe/issue-7", tmp_path)


async def test_sandbox_lost_after_implement_is_redone_in_a_new_one(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider, tmp_path: Path
) -> None:
    script_plan(model)
    script_fix(model)
    script_fix(model)
    script_pr(model)
    host = RecordingHost(remote)
    host.on_progress["implement"] = lambda: [box.destroy() for box in provider.find(LABELS)]

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "succeeded", outcome
    assert ("verify", "the sandbox was lost: redoing the work in a new one") in host.calls(
        "progress"
    )
    assert len(model.requests_offering("edit_file")) == 8
    assert branch_tests_pass(remote, "open-swe/issue-7", tmp_path)


async def test_tests_still_failing_after_the_attempts_are_published_as_failing(
    tmp_path: Path, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    settings = make_settings(tmp_path, model, max_test_attempts=2)
    script_plan(model)
    wrong_fix = lambda request: tool(  # noqa: E731
        "edit_file",
        file_path=f"{repo_path(request)}/calc.py",
        old_string="return a - b",
        new_string="return a * b",
    )
    model.on(offers("edit_file"), wrong_fix, text("Done."), text("I could not find the cause."))
    script_pr(model)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "tests_failing"
    assert outcome.tests_passed is False
    assert host.outcomes == [outcome]
    [change] = host.calls("publish")
    assert change.tests_passed is False
    assert change.body.startswith("> [!WARNING]\n> Tests failing:")
    assert "still failing after 2 attempt(s)" in change.body
    second_attempt = model.requests_offering("edit_file")[2]
    assert "This is attempt 2" in second_attempt.text
    assert "AssertionError: 6 != 5" in second_attempt.text
    steps = [step for step, _ in host.calls("progress")]
    assert steps.count("implement") == 2
    assert steps.count("verify") == 2


async def test_nothing_changed_publishes_nothing(
    settings: Settings, model: ScriptedModel, provider: LocalProvider, tmp_path: Path
) -> None:
    fixed = make_repo(tmp_path / "fixed", {**REPO_FILES, "calc.py": FIXED})
    script_plan(model)
    model.on(offers("edit_file"), text("add() is already correct; nothing to change."))
    host = RecordingHost(fixed)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "no_changes"
    assert host.calls("publish") == []
    assert model.requests_offering("PullRequestText") == []
    assert ("publish", "nothing changed: nothing to publish") in host.calls("progress")
    assert provider.find(LABELS) == []


async def test_transient_model_errors_are_retried(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    model.on(offers("SubmitPlan"), Fault(429), Fault(500), read_calc, tool("SubmitPlan", **PLAN))
    script_fix(model)
    script_pr(model)

    outcome = await run(settings, RecordingHost(remote), provider, run_input())

    assert outcome.status == "succeeded", outcome
    assert len(model.requests_offering("SubmitPlan")) == 4  # two faults, then two answers


@pytest.mark.parametrize(
    ("overrides", "fault", "detail"),
    [
        ({}, Fault(500, message="overloaded upstream"), "HTTP 500"),
        ({}, Fault(529, message="Overloaded"), "HTTP 529"),
        ({}, Fault(429, message="rate limited"), "HTTP 429"),
        (
            {"model_timeout": 0.3, "model_max_retries": 1, "transient_retry_minutes": 0.05},
            Slow(1.5, text("too late")),
            "timed out",
        ),
    ],
)
async def test_a_model_outage_is_waited_out_then_fails_naming_it(
    tmp_path: Path,
    model: ScriptedModel,
    remote: Path,
    provider: LocalProvider,
    overrides: dict[str, Any],
    fault: Fault | Slow,
    detail: str,
) -> None:
    """Finding 2: an outage beyond the SDK's retries is waited out, from the last checkpoint,
    with backoff; only after OPEN_SWE_TRANSIENT_RETRY_MINUTES does the run fail, saying so."""
    waits = {
        "transient_retry_minutes": 0.05,
        "transient_first_wait_seconds": 0.2,
        "model_max_retries": 0,
    }
    settings = make_settings(tmp_path, model, **(waits | overrides))
    model.on(anything, fault, repeat_last=True)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    policy = FaultPolicy.from_settings(settings)
    assert outcome.status == "failed"
    assert outcome.reason == policy.gave_up(Transient(MODEL, detail))
    waited = [value for name, value in host.events if name == "waiting_on"]
    assert len(waited) >= 2, "it tried again, more than once"
    assert {what for what, _ in waited} == {MODEL}
    assert host.outcomes == [outcome]
    tries = settings.model_max_retries + 1
    assert len(model.requests) == tries * (len(waited) + 1)
    assert provider.find(LABELS) == []


async def test_a_model_outage_shorter_than_the_limit_only_delays_the_run(
    tmp_path: Path, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    waits = {"transient_retry_minutes": 1.0, "transient_first_wait_seconds": 0.2}
    settings = make_settings(tmp_path, model, model_max_retries=0, **waits)
    outage = [Fault(529, message="Overloaded")] * 3
    model.on(offers("SubmitPlan"), *outage, read_calc, tool("SubmitPlan", **PLAN))
    script_fix(model)
    script_pr(model)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "succeeded", outcome
    assert len([name for name, _ in host.events if name == "waiting_on"]) == 3
    assert len(host.calls("publish")) == 1


@pytest.mark.parametrize(
    ("limits", "usage", "reason"),
    [
        ({"max_model_calls": 4}, None, "budget exhausted: model calls (4 per run)"),
        ({"max_tokens_per_run": 1_000}, (5_000, 100), "budget exhausted: tokens (5,100 of 1,000)"),
        ({"max_cost_usd": 0.01}, (10_000, 0), "budget exhausted: cost (~$0.03 of $0.01)"),
    ],
)
async def test_budget_exhausted_ends_the_run_naming_the_limit(
    tmp_path: Path,
    model: ScriptedModel,
    remote: Path,
    provider: LocalProvider,
    limits: dict[str, Any],
    usage: tuple[int, int] | None,
    reason: str,
) -> None:
    settings = make_settings(tmp_path, model, **limits)
    model.on(offers("SubmitPlan"), tool("ls", path="/", usage=usage), tool("SubmitPlan", **PLAN))
    model.on(offers("edit_file"), tool("execute", command="true"), repeat_last=True)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "failed"
    assert outcome.reason == reason
    assert host.outcomes == [outcome]
    assert provider.find(LABELS) == []


async def test_wall_time_limit(
    tmp_path: Path, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    settings = make_settings(tmp_path, model, max_run_minutes=0.0001)
    script_plan(model)

    outcome = await run(settings, RecordingHost(remote), provider, run_input())

    assert outcome.reason == "budget exhausted: time (0.0001 minutes)"
    assert model.requests == []


async def test_a_crash_still_ends_with_a_final_status(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    script_plan(model)
    script_fix(model)
    script_pr(model)
    host = RecordingHost(remote, fail_publish=RuntimeError(f"boom {FAKE_TOKEN}"))

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "failed"
    assert outcome.reason == "internal error: RuntimeError: boom [redacted]"
    assert host.outcomes == [outcome]
    assert outcome.plan == PLAN
    assert provider.find(LABELS) == []


async def test_secrets_in_the_repository_and_environment_never_reach_the_model(
    model: ScriptedModel, provider: LocalProvider, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, model, max_test_attempts=1)
    notes = f"key={FAKE_ANTHROPIC_KEY}\ntoken={FAKE_TOKEN}\n"
    leaky = make_repo(tmp_path / "leaky", {**REPO_FILES, "notes.txt": notes})
    model.on(
        offers("SubmitPlan"),
        lambda request: tool("read_file", file_path=f"{repo_path(request)}/notes.txt"),
        tool("SubmitPlan", **PLAN),
    )
    model.on(
        offers("edit_file"),
        tool("execute", command="env; cat notes.txt"),
        text("Looked around."),
    )
    host = RecordingHost(leaky)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "no_changes", outcome.reason
    assert "key=[redacted]" in model.requests_offering("SubmitPlan")[1].last_tool_result()
    shown = model.requests_offering("edit_file")[1].last_tool_result()
    assert "token=[redacted]" in shown
    assert "PATH=" in shown  # the command ran: its environment is scrubbed of keys
    assert_no_secret_reached_the_model(model)


async def test_a_model_that_never_submits_a_plan_fails_clearly(
    settings: Settings, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    model.on(offers("SubmitPlan"), text("I would rather chat about it."))
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "failed"
    assert outcome.reason == "the model stopped without submitting a plan; retry the run"
    assert host.calls("plan") == []


async def test_a_setup_script_without_the_network_it_was_granted_is_noted_in_progress(
    settings: Settings, model: ScriptedModel, tmp_path: Path
) -> None:
    config = "test: python3 -m unittest -q\nsetup: touch .setup-ran\nnetwork: setup\n"
    source = make_repo(tmp_path / "with-setup", {**REPO_FILES, ".open-swe.yml": config})
    no_stack = LocalProvider(tmp_path / "no-stack", command_timeout=60, usernet_tools=())
    if not no_stack.confined:
        pytest.skip("without bubblewrap the setup script has this machine's network")
    script_plan(model)
    model.on(offers("edit_file"), text("Nothing to change."))
    host = RecordingHost(source)

    await run(settings, host, no_stack, run_input())

    [(_, detail)] = [call for call in host.calls("progress") if call[0] == "prepare"]
    assert detail.endswith(
        "; setup ran without network: neither slirp4netns nor pasta is installed"
    )


async def test_a_planner_that_never_submits_a_plan_ends_at_the_named_steps_limit(
    tmp_path: Path, model: ScriptedModel, remote: Path, provider: LocalProvider
) -> None:
    """Finding 10: LangGraph's recursion limit is a named limit, never "internal error"."""
    settings = make_settings(tmp_path, model, max_agent_steps=12)
    model.on(offers("SubmitPlan"), tool("ls", path="/"), repeat_last=True)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "failed"
    assert outcome.reason == "budget exhausted: steps (12 per agent)"
    assert status.next_step(outcome.reason) == status.NEXT_RAISE_LIMIT.format(
        variable="OPEN_SWE_MAX_AGENT_STEPS"
    )
    assert 1 < len(model.requests) <= 12


async def test_a_run_on_a_branch_pushed_without_its_pull_request_opens_it(
    settings: Settings,
    model: ScriptedModel,
    repo: Path,
    remote: Path,
    provider: LocalProvider,
    tmp_path: Path,
) -> None:
    """Finding 3: an earlier try pushed the fix, then failed to open the pull request; the
    retry, rebuilt from the pushed branch, finds nothing new to change, and still publishes
    (never "no changes", never a success without the pull request)."""
    pushed = tmp_path / "earlier-try"
    git(tmp_path, "clone", "-q", str(remote), str(pushed))
    git(pushed, "checkout", "-q", "-b", "open-swe/issue-7")
    (pushed / "calc.py").write_text(FIXED)
    git(pushed, "-c", "user.name=bot", "-c", "user.email=bot@x", "commit", "-qam", "fix")
    git(pushed, "push", "-q", "origin", "open-swe/issue-7")
    sha = git(pushed, "rev-parse", "HEAD").strip()
    script_plan(model)
    model.on(offers("edit_file"), text("add() already returns the sum: nothing to change."))
    script_pr(model)
    host = RecordingHost(remote)

    outcome = await run(settings, host, provider, run_input())

    assert outcome.status == "succeeded", outcome.reason
    assert outcome.url == "https://example.test/pr/open-swe/issue-7"
    [change] = host.calls("publish")
    assert change.commit == sha  # nothing new committed: the pushed work is published
    [request] = model.requests_offering("PullRequestText")
    assert "return a + b" in request.text  # the branch's whole diff, for the PR's words
