"""The workflow end to end (graph + execute_run) with a host double, the local sandbox, a bare
repo as the remote and the scripted model behind the real LangChain -> anthropic SDK path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.agent.checkpoint import open_checkpointer
from app.agent.context import RunContext
from app.agent.graph import build_graph
from app.agent.host import RunOutcome
from app.agent.runner import execute_run
from app.agent.state import RunInput
from app.config import Settings
from app.sandbox.local import LocalProvider
from tests.agent.conftest import (
    FIXED,
    SECRETS,
    RecordingHost,
    git,
    script_fix,
    script_plan,
    script_pr,
)
from tests.fakes.model import ScriptedModel


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
        return await execute_run(graph, context, thread_id="acme/calc#7", start=start)  # type: ignore[arg-type]


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
