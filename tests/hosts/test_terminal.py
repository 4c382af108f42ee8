"""Local mode's pieces: the repository check, names, settings, and the terminal host."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.agent.budget import Usage
from app.agent.host import ApprovalRequest, RunOutcome
from app.config import Settings
from app.hosts.terminal import (
    BadInput,
    LocalHost,
    inspect_repo,
    local_settings,
    read_task,
    slugify,
    split_task,
)
from tests.agent.conftest import REPO_FILES, git, make_repo


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("add() is wrong", "add-is-wrong"),
        ("  Fix: the CLI's --help output!!  ", "fix-the-cli-s-help-output"),
        ("é" * 5, "task"),
        ("a" * 30 + " " + "b" * 30, "a" * 30 + "-" + "b" * 9),
    ],
)
def test_slugs(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_task_title_and_body() -> None:
    assert split_task("\n\n  Title here \nline 1\n\nline 2\n") == ("Title here", "line 1\n\nline 2")
    assert split_task("") == ("", "")


def test_repository_facts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", REPO_FILES)
    (repo / "sub").mkdir()
    facts = inspect_repo(repo / "sub")
    assert facts.path == repo
    assert facts.git_dir == repo / ".git"
    assert facts.branch == "main"
    assert facts.head == git(repo, "rev-parse", "HEAD")
    assert facts.identity is not None
    assert (facts.identity.name, facts.identity.email) == ("Ada Lovelace", "ada@example.com")
    git(repo, "switch", "-q", "--detach")
    assert inspect_repo(repo).branch is None


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a directory"):
        inspect_repo(tmp_path / "missing")
    with pytest.raises(BadInput, match="is not a git repository"):
        inspect_repo(tmp_path)


def test_task_from_a_file(tmp_path: Path) -> None:
    issue = tmp_path / "issue.md"
    issue.write_text("Title\n\nBody")
    assert read_task("ignored when a file is given", issue) == "Title\n\nBody"
    with pytest.raises(BadInput, match="the task is empty"):
        read_task("\u200b<!-- x -->", None)


def test_local_state_stays_out_of_the_working_tree(tmp_path: Path) -> None:
    repo = inspect_repo(make_repo(tmp_path / "project", REPO_FILES))
    default = local_settings(Settings(_env_file=None), repo)  # type: ignore[call-arg]
    assert default.sandbox_kind == "local"
    assert default.data_dir == repo.git_dir / "open-swe"  # sandboxes: <data dir>/sandboxes
    # the project path is the project, never where state goes (issue 8)
    chosen = Settings(_env_file=None, data_dir=tmp_path / "d", local_project_path=repo.path)  # type: ignore[call-arg]
    assert local_settings(chosen, repo).data_dir == tmp_path / "d"
    assert local_settings(chosen, repo).local_project_path == repo.path


def host(tmp_path: Path, answers: str) -> tuple[LocalHost, io.StringIO, io.StringIO]:
    repo = inspect_repo(make_repo(tmp_path / "project", REPO_FILES))
    out, err = io.StringIO(), io.StringIO()
    return (
        LocalHost(repo, "Task\nBody", stdin=io.StringIO(answers), stdout=out, stderr=err),
        out,
        err,
    )


async def test_approval_prompt_asks_again_until_it_understands(tmp_path: Path) -> None:
    terminal, _, err = host(tmp_path, "maybe\nr\n\nREVISE\nshorter please\n")
    request = ApprovalRequest({"title": "T", "steps": ["s"]}, 1)
    decision = await terminal.decide(request)
    assert decision == {"verb": "revise", "feedback": "shorter please", "by": "you"}
    assert err.getvalue().count("Approve this plan?") == 3
    assert err.getvalue().count("What should change?") == 2


async def test_end_of_input_stops(tmp_path: Path) -> None:
    terminal, _, _ = host(tmp_path, "")
    assert await terminal.decide(ApprovalRequest({"title": "T", "steps": []}, 1)) == {
        "verb": "stop",
        "by": "you",
    }


async def test_failure_report_names_the_reason(tmp_path: Path) -> None:
    terminal, out, err = host(tmp_path, "")
    outcome = RunOutcome(
        "failed",
        "r1",
        Usage(model_calls=3, input_tokens=10, output_tokens=5, cost_usd=0.01),
        reason="budget exhausted: cost (~$10.00 of $10.00)",
    )
    await terminal.finish(outcome)
    assert out.getvalue() == ""
    assert err.getvalue() == (
        "open-swe: run failed: budget exhausted: cost (~$10.00 of $10.00)\n"
        "open-swe: usage: 15 tokens, ~$0.01 (estimate), 3 model calls\n"
    )
