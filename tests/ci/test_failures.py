"""Reading a commit's CI from GitHub: completion, failures, and what the CI said about them."""

from __future__ import annotations

from app.ci.failures import MAX_FAILURES, describe, failing_names, read_ci
from app.github.client import InstallationClient
from tests.fakes.github import FakeGitHub
from tests.fakes.github_checks import Annotation
from tests.github.conftest import REPO

SHA = "c" * 40
LOG = "##[group]Run make test\nFAILED test_x\n##[error]Process completed with exit code 2.\n"


def test_a_commit_waits_for_every_suite_and_check_run(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    done = gh.checks.suite(REPO, SHA)
    gh.checks.run(done, "lint", conclusion="success")
    gh.checks.suite(REPO, SHA, app="never-runs", status="queued", conclusion=None)  # no runs
    running = gh.checks.suite(REPO, SHA, status="in_progress", conclusion=None)
    gh.checks.run(running, "test", status="in_progress", conclusion=None)

    reading = read_ci(client, REPO, SHA)
    assert not reading.completed
    assert "test" in reading.pending

    running.status = "completed"
    gh.checks.check_runs[-1].status = "completed"
    gh.checks.check_runs[-1].conclusion = "failure"
    reading = read_ci(client, REPO, SHA)
    assert reading.completed
    assert [r.name for r in reading.failed] == ["test"]


def test_action_required_and_cancelled_are_not_failures(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    suite = gh.checks.suite(REPO, SHA)
    gh.checks.run(suite, "deploy", conclusion="action_required")
    gh.checks.run(suite, "slow", conclusion="timed_out")
    gh.checks.run(suite, "unit", conclusion="failure")
    reading = read_ci(client, REPO, SHA)
    assert sorted(r.name for r in reading.failed) == ["slow", "unit"]
    assert failing_names(client, REPO, SHA) == {"slow", "unit"}


def test_actions_failures_carry_the_failed_step_and_its_log_tail(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    job = gh.checks.job("test", steps=[("Run make test", "failure")], log=LOG)
    gh.checks.workflow(REPO, SHA, "CI", path=".github/workflows/test.yml", jobs=[job])
    [failure] = describe(client, REPO, SHA, list(read_ci(client, REPO, SHA).failed))
    assert failure.label == "CI / test"
    assert failure.workflow_path == ".github/workflows/test.yml"
    assert failure.failed_steps == ("Run make test",)
    assert failure.details.endswith("##[error]Process completed with exit code 2.")
    assert failure.errors == ("FAILED test_x", "##[error]Process completed with exit code 2.")


def test_other_ci_failures_carry_their_output_and_annotations(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    suite = gh.checks.suite(REPO, SHA)
    gh.checks.run(
        suite,
        "linter",
        title="2 problems",
        summary="Lint failed",
        annotations=[Annotation("app.py", 7, "unused import os", title="F401")],
    )
    [failure] = describe(client, REPO, SHA, list(read_ci(client, REPO, SHA).failed))
    assert failure.workflow is None
    assert "Lint failed" in failure.details
    assert "app.py:7: failure: F401 unused import os" in failure.details
    assert failure.errors == ("2 problems", "app.py:7: failure: F401 unused import os")


def test_many_failures_are_described_up_to_a_bound(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    suite = gh.checks.suite(REPO, SHA)
    for n in range(MAX_FAILURES + 3):
        gh.checks.run(suite, f"check-{n}", summary=f"broke {n}")
    failures = describe(client, REPO, SHA, list(read_ci(client, REPO, SHA).failed))
    assert len(failures) == MAX_FAILURES + 3
    assert all(f.details for f in failures[:MAX_FAILURES])
    assert not any(f.details for f in failures[MAX_FAILURES:])
