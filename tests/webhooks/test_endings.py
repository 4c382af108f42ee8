"""Events that end work from outside (app.webhooks.endings, labels, installations): an issue
closed or its trigger label removed stops its active run; a closed pull request's kept sandbox
is released; an uninstalled or suspended App's runs stop and its tokens are forgotten."""

from __future__ import annotations

import copy
from typing import Any

from app.github.app import GitHubApp
from app.runs.lifecycle import plan_decision
from app.runs.models import Run, thread_key
from app.webhooks import messages
from tests.webhooks.conftest import INSTALLATION, MAINTAINER, REPO, Harness, labeled, payload

THREAD = thread_key(REPO, 1)


def about_issue_1(name: str, **changes: Any) -> dict[str, Any]:
    """An issues.* payload moved onto issue #1 of REPO, sent by MAINTAINER."""
    data = payload(name)
    model = labeled()
    data["repository"], data["issue"] = model["repository"], model["issue"]
    data["sender"] = copy.deepcopy(model["sender"]) | {"login": MAINTAINER}
    data.update(changes)
    return data


async def started(harness: Harness, number: int = 1, *, installation: int = INSTALLATION) -> Run:
    run = await harness.store.start_run(
        thread=thread_key(REPO, number),
        repo=REPO,
        number=number,
        kind="issue",
        installation_id=installation,
        requested_by=MAINTAINER,
        auto_approve=True,
        delivery_id=None,
    )
    assert isinstance(run, Run)
    return run


async def test_closing_the_issue_stops_its_active_run(harness: Harness) -> None:
    """Finding 9: closing the issue did not stop its run."""
    run = await started(harness)
    response = await harness.deliver("issues", about_issue_1("issues.closed"), delivery="closed")
    assert response.status_code == 202

    stopped = await harness.store.run(run.id)
    assert stopped is not None
    reason = messages.STOPPED_ISSUE_CLOSED.format(user=MAINTAINER)
    assert (stopped.status, stopped.error) == ("stopped", reason)
    delivery = await harness.store.delivery("closed")
    assert delivery is not None
    assert (delivery.outcome, delivery.detail) == ("stopped", run.id)
    assert harness.gh.calls_matching("POST", "/repos/*/issues/*/comments") == []  # no chatter


async def test_closing_an_issue_without_a_run_changes_nothing(harness: Harness) -> None:
    await harness.deliver("issues", about_issue_1("issues.closed"), delivery="closed")
    delivery = await harness.store.delivery("closed")
    assert delivery is not None
    assert (delivery.outcome, delivery.detail) == ("ignored", "no active run")


async def test_removing_a_trigger_label_stops_the_run_and_its_waiting_plan_hears_why(
    harness: Harness,
) -> None:
    """A waiting plan takes the stop as its answer, with the event's reason."""
    run = await started(harness)
    await harness.store.set_run_status(run.id, "waiting")
    removed = about_issue_1("issues.unlabeled", label=labeled("Open-SWE-auto")["label"])
    await harness.deliver("issues", removed, delivery="unlabeled")

    assert harness.run_jobs == [run.id]  # resumed, to take the stop as its plan's answer
    [stop] = await harness.store.pending_commands(THREAD)
    reason = messages.STOPPED_LABEL_REMOVED.format(label="open-swe-auto", user=MAINTAINER)
    assert plan_decision(stop) == {"verb": "stop", "by": MAINTAINER, "reason": reason}


async def test_removing_another_label_is_ignored_at_once(harness: Harness) -> None:
    run = await started(harness)
    response = await harness.deliver("issues", about_issue_1("issues.unlabeled"))  # "bug"
    assert response.json()["status"] == "ignored"
    assert (await harness.store.run(run.id)) == run


async def test_a_closed_pull_request_open_swe_never_worked_on_is_left_alone(
    harness: Harness,
) -> None:
    await harness.deliver("pull_request", payload("pull_request.closed"), delivery="pr")
    delivery = await harness.store.delivery("pr")
    assert delivery is not None
    assert (delivery.outcome, delivery.detail) == (
        "ignored",
        "open-swe never worked on this pull request",
    )


async def test_uninstalling_stops_the_installations_runs_and_forgets_its_tokens(
    harness: Harness, github_app: GitHubApp
) -> None:
    await harness.deliver("installation", payload("installation.created"))
    ours = [await started(harness, number) for number in (1, 2)]
    theirs = await started(harness, 3, installation=INSTALLATION + 1)
    github_app.installation_token(INSTALLATION, REPO)
    deleted = payload("installation.deleted")
    deleted["installation"]["id"] = INSTALLATION
    await harness.deliver("installation", deleted, delivery="gone")

    reason = messages.STOPPED_UNINSTALLED.format(user="octocat")
    for run in ours:
        stopped = await harness.store.run(run.id)
        assert stopped is not None
        assert (stopped.status, stopped.error) == ("stopped", reason)
    assert (await harness.store.run(theirs.id)) == theirs
    assert github_app.forget_installation(INSTALLATION) == 0  # already forgotten
    delivery = await harness.store.delivery("gone")
    assert delivery is not None
    assert delivery.detail == f"installation {INSTALLATION} deleted, 2 runs stopped"


async def test_suspending_stops_the_installations_runs(harness: Harness) -> None:
    run = await started(harness)
    suspended = payload("installation.suspend")
    suspended["installation"]["id"] = INSTALLATION
    await harness.deliver("installation", suspended)
    stopped = await harness.store.run(run.id)
    assert stopped is not None
    reason = messages.STOPPED_SUSPENDED.format(user="Codertocat")
    assert (stopped.status, stopped.error) == ("stopped", reason)
    installation = await harness.store.installation(INSTALLATION)
    assert installation is not None
    assert installation.suspended_at is not None
