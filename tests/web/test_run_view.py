"""A run as shown: the step under way, the checklist, links, display strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.agent.budget import Usage
from app.agent.history import RunRecord
from app.runs.models import Run, RunStatus
from app.runs.views import RunRow
from app.web.run_view import RunView, duration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def view(
    status: RunStatus = "running", values: dict[str, Any] | None = None, **run: Any
) -> RunView:
    fields: dict[str, Any] = {
        "id": "0123456789abcdef",
        "thread": "a/b#3",
        "repo": "a/b",
        "number": 3,
        "kind": "issue",
        "installation_id": 1,
        "requested_by": "octocat",
        "auto_approve": False,
        "status": status,
        "created_at": NOW - timedelta(minutes=3, seconds=5),
        "updated_at": NOW,
        "delivery_id": None,
        "status_comment_id": None,
        "pr_number": None,
        "error": None,
        "plan_question": None,
    }
    fields.update(run)
    record = RunRecord(values=values or {}, usage=Usage(2, 1500, 250, 0.0123, 30.0))
    return RunView(RunRow(Run(**fields), "label open-swe"), record, "https://github.com", NOW, 3)


def test_the_step_under_way_follows_the_steps_done() -> None:
    assert view("queued").step is None
    assert view("waiting").step == "approval"
    assert view("succeeded", {"steps_done": ["prepare"]}).step is None
    assert view(values={}).step == "prepare"
    assert view(values={"steps_done": ["prepare"]}).step == "plan"
    assert view(values={"steps_done": ["prepare", "plan", "approval"]}).step == "implement"
    failing = {
        "steps_done": ["prepare", "plan", "approval", "implement", "verify"],
        "tests": {"passed": False},
        "attempts": 1,
    }
    assert view(values=failing).step == "implement"  # another attempt
    assert view(values={**failing, "attempts": 3}).step == "publish"  # published as failing
    assert (
        view(
            values={
                "steps_done": [
                    "prepare",
                    "plan",
                    "approval",
                    "implement",
                    "verify",
                    "publish",
                    "report",
                ]
            }
        ).step
        == "report"
    )


def test_the_checklist_and_the_display() -> None:
    shown = view("waiting", {"steps_done": ["prepare", "plan"]})
    states = [(s["name"], s["state"]) for s in shown.checklist]
    assert states[:4] == [
        ("prepare", "done"),
        ("plan", "done"),
        ("approval", "waiting"),
        ("implement", "pending"),
    ]
    summary = shown.summary()
    assert summary["display"] == {
        "started": "2026-03-01 11:56 UTC",
        "duration": "3m 05s",
        "tokens": "1,750",
        "cost": "$0.01",
        "status": "waiting for approval",
    }
    assert summary["tokens"] == {"input": 1500, "output": 250, "total": 1750}
    assert (
        view(values={"steps_done": ["prepare"]}).summary()["display"]["status"] == "running: Plan"
    )


def test_links_go_to_github_with_the_names_quoted() -> None:
    pushed = {
        "branch": "open-swe/issue-3",
        "outcome": {"branch": "open-swe/issue-3", "commit": "abc"},
    }
    shown = view("succeeded", pushed, pr_number=9, repo="a/b c")
    assert shown.issue_url == "https://github.com/a/b%20c/issues/3"
    assert shown.pr_url == "https://github.com/a/b%20c/pull/9"
    assert shown.branch_url == "https://github.com/a/b%20c/tree/open-swe/issue-3"
    assert view("waiting", {"branch": "open-swe/issue-3"}).branch_url is None  # not pushed yet
    follow_up = view(kind="pull", values={"branch": "fix-docs"})
    assert follow_up.issue_url == "https://github.com/a/b/pull/3"
    assert follow_up.branch_url == "https://github.com/a/b/tree/fix-docs"  # the PR's own
    assert view().pr_url is None
    assert view().branch_url is None


def test_who_approved_in_words() -> None:
    assert view(values={"approved_by": "auto"}).approved == "Auto-approved (label open-swe-auto)."
    assert view(values={"approved_by": "carol"}).approved == "Approved by carol."
    assert view(values={"approved_by": None}).approved is None


def test_durations_read_naturally() -> None:
    assert [duration(s) for s in (0, 59, 61, 3599, 3600, 7322)] == [
        "0s",
        "59s",
        "1m 01s",
        "59m 59s",
        "1h 00m",
        "2h 02m",
    ]
