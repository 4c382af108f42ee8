"""Check events as routing sees them: the commit, the pull requests, and what is not wanted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.webhooks.checks import completed, trigger
from app.webhooks.event import Event

FIXTURES = Path(__file__).parents[3] / "shared/fixtures/github/webhooks"


def event(name: str, **changes: Any) -> Event:
    data = json.loads((FIXTURES / f"{name}.completed.json").read_text())
    data["installation"] = {"id": 7}
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return Event(name, "d-1", data)


def test_a_check_suite_names_its_commit_and_pull_requests() -> None:
    found = trigger(event("check_suite"))
    assert found is not None
    assert (found.repo, found.installation_id, found.pulls) == ("Codertocat/Hello-World", 7, (2,))
    assert found.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert completed(event("check_suite"), None)


def test_a_check_run_waits_for_its_suite() -> None:
    running = event("check_run")  # recorded with its suite in progress
    assert trigger(running) is not None
    assert not completed(running, None)
    done = event("check_run", check_run__check_suite__status="completed")
    assert completed(done, None)


def test_workflow_events_name_their_commit() -> None:
    run = trigger(event("workflow_run"))
    assert run is not None
    assert run.sha == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert run.pulls == ()  # the recorded run's pull request belongs to another repository
    job = trigger(event("workflow_job"))
    assert job is not None
    assert job.pulls == ()  # found later by the commit


def test_no_commit_or_no_installation_is_not_wanted() -> None:
    assert trigger(event("check_suite", check_suite__head_sha="not-a-sha")) is None
    assert not completed(event("check_suite", check_suite__head_sha=None), None)
    no_installation = event("check_suite")
    del no_installation.payload["installation"]  # type: ignore[attr-defined]
    assert trigger(no_installation) is None
