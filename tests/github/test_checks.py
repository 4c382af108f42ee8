"""Reading CI through the installation client, against the fake GitHub's checks and Actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.github import checks
from app.github.client import InstallationClient
from app.github.errors import Forbidden, GitHubError
from app.github.types import CommitAuthor, JobStep
from tests.agent.conftest import git, make_repo
from tests.fakes.github import FakeGitHub
from tests.fakes.github_checks import Annotation
from tests.github.conftest import REPO

SHA = "a" * 40


def test_suites_and_latest_check_runs_of_a_commit(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    suite = gh.checks.suite(REPO, SHA, author="Ada", email="ada@example.com")
    gh.checks.run(
        suite,
        "lint",
        summary="2 errors",
        text="E501 line too long",
        annotations=[Annotation("app.py", 3, "line too long", title="E501")],
    )
    gh.checks.suite(REPO, "b" * 40)

    [found] = client.check_suites(REPO, SHA)
    assert (found.status, found.conclusion, found.runs_count) == ("completed", "success", 1)
    assert found.head_author == CommitAuthor("Ada", "ada@example.com")
    [run] = client.check_runs(REPO, SHA)
    assert (run.name, run.conclusion, run.summary, run.text) == (
        "lint",
        "failure",
        "2 errors",
        "E501 line too long",
    )
    assert run.annotations_count == 1
    [note] = client.check_annotations(REPO, run.id)
    assert (note.path, note.start_line, note.title, note.message) == (
        "app.py",
        3,
        "E501",
        "line too long",
    )
    [call] = gh.calls_matching("GET", f"/repos/{REPO}/commits/{SHA}/check-runs")
    assert call.query["filter"] == "latest"


def test_actions_runs_jobs_and_the_tail_of_a_job_log(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    log = "".join(f"2026-12-03T12:00:00.0000000Z line {i}\n" for i in range(50_000))
    job = gh.checks.job(
        "test (3.12)", steps=[("Set up job", "success"), ("pytest", "failure")], log=log
    )
    gh.checks.workflow(REPO, SHA, "CI", jobs=[job, gh.checks.job("lint", conclusion="success")])

    [run] = client.workflow_runs(REPO, SHA)
    assert (run.name, run.conclusion, run.path) == ("CI", "failure", ".github/workflows/ci.yml")
    jobs = client.workflow_jobs(REPO, run.id)
    assert [(j.name, j.conclusion) for j in jobs] == [
        ("test (3.12)", "failure"),
        ("lint", "success"),
    ]
    assert jobs[0].steps == (JobStep(1, "Set up job", "success"), JobStep(2, "pytest", "failure"))
    tail = client.job_log_tail(REPO, job.id)
    assert len(tail.encode()) <= checks.MAX_LOG_BYTES
    assert tail.endswith("line 49999\n")
    assert log.endswith(tail)
    # the log is a redirect to a download that carries no credentials
    [redirect] = gh.calls_matching("GET", f"/repos/{REPO}/actions/jobs/{job.id}/logs")
    [download] = gh.calls_matching("GET", f"/_fake/job-logs/{job.id}")
    assert (redirect.status, redirect.auth) == (302, "token")
    assert (download.status, download.auth) == (200, "none")


def test_an_installation_without_the_checks_permission_is_forbidden(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    gh.checks.forbid()
    with pytest.raises(Forbidden):
        client.check_suites(REPO, SHA)


def test_a_missing_job_log_is_an_error(gh: FakeGitHub, client: InstallationClient) -> None:
    with pytest.raises(GitHubError):
        client.job_log_tail(REPO, 12345)


def test_branch_head_pulls_of_a_commit_and_file_text(
    gh: FakeGitHub, client: InstallationClient, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "src", {".open-swe.yml": "autofix: false\n"})
    bare = tmp_path / "widgets.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    gh.repos[REPO].clone_url = bare.resolve().as_uri()
    main = git(bare, "rev-parse", "main")
    gh.add_pull(REPO, head="main", base="main")

    assert client.branch_head(REPO, "main") == main
    assert client.pulls_of_commit(REPO, main) == [1]
    assert client.pulls_of_commit(REPO, SHA) == []
    assert client.file_text(REPO, ".open-swe.yml") == "autofix: false\n"
    assert client.file_text(REPO, "missing.txt") is None
    assert client.get_pull(REPO, 1).head_sha == main
