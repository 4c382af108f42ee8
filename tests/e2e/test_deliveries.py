"""Deliveries are never lost, and events end work, end to end through the real HTTP app: a
delivery GitHub could not make while the server was down is fetched back by the redelivery
sweep (GitHub sends it again, same X-GitHub-Delivery, signed); closing the issue or removing
its label stops its run, with the reason on the status comment."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from app.hosts import status
from app.webhooks import messages
from tests.agent.conftest import script_fix, script_plan, script_pr
from tests.e2e.conftest import (
    ISSUE,
    MAINTAINER,
    WEBHOOK_SECRET,
    World,
    eventually,
    labeled,
    payload,
)
from tests.fakes.model import ModelRequest, Reply, offers, text

pytestmark = pytest.mark.slow

NOBODY_LISTENS = "http://127.0.0.1:9/webhooks/github"  # the discard port: connection refused


def about_the_issue(name: str, *, sender: str = MAINTAINER) -> dict[str, Any]:
    """An issues.* delivery moved onto the issue of the world (repository, number, sender)."""
    data = payload(name)
    labelled = payload("issues.labeled")
    data["repository"] = labelled["repository"]
    data["issue"] = labelled["issue"] | {"number": ISSUE, "state": "closed"}
    data["sender"] = labelled["sender"] | {"login": sender}
    return data


def final_status(world: World) -> str:
    [comment] = world.status_comments()
    return comment.body


async def test_a_delivery_missed_while_the_server_was_down_is_fetched_back(
    world: World,
) -> None:
    """Finding 8: GitHub never redelivers by itself; a delivery missed during downtime was
    gone. Now the sweep asks GitHub for it once the server is back."""
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    world.gh.hook.secret = WEBHOOK_SECRET
    world.gh.hook.url = NOBODY_LISTENS
    missed = await asyncio.to_thread(world.gh.hook.deliver, "issues", labeled("open-swe-auto"))
    assert missed.status_code == 0  # "failed to connect"

    await world.start(redelivery_sweep_minutes=0.01)
    assert world.server is not None
    world.gh.hook.url = f"{world.server.url}/webhooks/github"
    run = await world.finished_run()

    assert run.status == "succeeded", run.error
    assert run.pr_number is not None
    assert run.delivery_id == missed.guid
    first, again = world.gh.hook.of(missed.guid)
    assert (again.redelivery, again.status_code) == (True, 202)
    assert world.gh.hook.redeliveries == [first.id]
    assert len(world.gh.pulls) == 1


async def test_closing_the_issue_stops_its_run(world: World) -> None:
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

    await world.deliver("issues", about_the_issue("issues.closed"))
    run = await world.finished_run()
    release.set()

    reason = messages.STOPPED_ISSUE_CLOSED.format(user=MAINTAINER)
    assert (run.status, run.error) == ("stopped", reason)
    stopped = status.HEADER_STOPPED.format(reason=status.inline(reason))
    await eventually(lambda: stopped in final_status(world), "the stopped status")
    await eventually(lambda: world.sandboxes() == [], "the sandbox to be deleted")
    assert world.gh.pulls == {}


async def test_removing_the_label_while_the_plan_waits_stops_the_run(world: World) -> None:
    script_plan(world.model)
    await world.start()
    await world.label("open-swe")
    await world.run_in("waiting")

    removed = about_the_issue("issues.unlabeled")
    removed["label"] = labeled("open-swe")["label"]
    await world.deliver("issues", removed)
    run = await world.finished_run()

    reason = messages.STOPPED_LABEL_REMOVED.format(label="open-swe", user=MAINTAINER)
    assert (run.status, run.error) == ("stopped", reason)
    body = final_status(world)
    assert status.HEADER_STOPPED.format(reason=status.inline(reason)) in body
    assert world.sandboxes() == []
    assert world.model.requests_offering("edit_file") == []
