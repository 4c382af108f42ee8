"""Approve, Revise, Stop and Retry from the dashboard: the comment commands' path, its rules,
and a trail on GitHub."""

from __future__ import annotations

import httpx

from app.commands import Verb, mentions
from app.runs.models import thread_key
from app.web.actions import TRAIL, TRAIL_MARKER
from app.webhooks import messages
from tests.web.conftest import (
    HIDDEN_REPO,
    OTHER_INSTALLATION,
    READER,
    WRITER,
    Runs,
    sign_in,
)
from tests.webhooks.conftest import INSTALLATION, MAINTAINER, REPO, Harness

THREAD = thread_key(REPO, 1)


async def csrf_of(client: httpx.AsyncClient) -> str:
    page = await client.get("/")
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def act(web: Harness, run_id: str, verb: str, **form: str) -> httpx.Response:
    data = {"csrf": await csrf_of(web.client), **form}
    response = await web.client.post(f"/runs/{run_id}/{verb}", data=data)
    await web.settle()
    return response


def bot_comments(web: Harness) -> list[str]:
    return [c.body for c in web.gh.comments.values() if c.user == web.gh.bot_login]


async def test_approve_answers_the_waiting_plan_as_a_comment_would(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("waiting")
    await sign_in(web.client, web.gh, WRITER)

    response = await act(web, run.id, "approve")

    assert response.status_code == 303
    assert response.headers["location"] == f"/runs/{run.id}?done=approve"
    [trail] = bot_comments(web)
    assert trail.startswith(TRAIL[Verb.APPROVE].format(user=WRITER))
    assert "approved by @carol from the dashboard" in trail
    [command] = await web.store.pending_commands(THREAD)
    assert (command.verb, command.author, command.run_id) == ("approve", WRITER, run.id)
    assert command.source == "issue_comment"
    [posted] = [c for c in web.gh.comments.values() if c.body == trail]
    assert command.comment_id == posted.id
    assert command.delivery_id.startswith("dashboard-")
    assert TRAIL_MARKER.format(delivery=command.delivery_id) in trail
    assert web.run_jobs == [run.id]  # resumed, through the dispatcher
    page = await web.client.get(response.headers["location"])
    assert "Approved: the run goes on." in page.text


async def test_revise_carries_the_feedback_and_the_trail_pings_nobody_else(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("waiting")
    await sign_in(web.client, web.gh, MAINTAINER)
    feedback = "Also cover @octocat's case <b>and</b> docs"

    empty = await act(web, run.id, "revise", feedback="   ")
    assert empty.status_code == 400
    assert bot_comments(web) == []
    response = await act(web, run.id, "revise", feedback=feedback)

    assert response.status_code == 303
    [command] = await web.store.pending_commands(THREAD)
    assert (command.verb, command.text) == ("revise", feedback)
    [trail] = bot_comments(web)
    assert MAINTAINER.lower() in mentions(trail)
    assert "@octocat" not in trail  # the feedback's mention is inert: "@\u200boctocat"
    assert "@\u200boctocat" in trail
    assert "<b>" not in trail


async def test_stop_ends_a_working_run_and_is_answered_on_github(web: Harness, runs: Runs) -> None:
    run = await runs.add("running")
    await sign_in(web.client, web.gh, MAINTAINER)

    response = await act(web, run.id, "stop")

    assert response.status_code == 303
    stopped = await web.store.run(run.id)
    assert stopped is not None
    assert (stopped.status, stopped.error) == ("stopped", f"stopped by @{MAINTAINER}")
    trail, answer = bot_comments(web)
    assert trail.startswith(TRAIL[Verb.STOP].format(user=MAINTAINER))
    assert answer.startswith(messages.STOPPED.split("(")[0])


async def test_retry_starts_a_new_run_of_the_latest_one(web: Harness, runs: Runs) -> None:
    older = await runs.add("failed")
    latest = await runs.add("stopped")
    await sign_in(web.client, web.gh, MAINTAINER)

    refused = await act(web, older.id, "retry")
    assert refused.status_code == 409
    assert bot_comments(web) == []
    response = await act(web, latest.id, "retry")

    assert response.status_code == 303
    newest = await web.store.latest_run(THREAD)
    assert newest is not None
    assert newest.id not in (older.id, latest.id)
    assert response.headers["location"] == f"/runs/{newest.id}?done=retry"
    assert (newest.status, newest.requested_by) == ("queued", MAINTAINER)
    assert web.run_jobs == [newest.id]
    api = (await web.client.get(f"/api/runs/{newest.id}")).json()
    assert api["trigger"] == "retry from the dashboard"


async def test_an_action_that_no_longer_fits_posts_nothing(web: Harness, runs: Runs) -> None:
    run = await runs.add("running")
    await sign_in(web.client, web.gh, MAINTAINER)

    for verb in ("approve", "revise", "retry"):
        response = await act(web, run.id, verb, feedback="x")
        assert response.status_code == 409, verb
    unknown = await act(web, run.id, "explode")
    assert unknown.status_code == 404
    assert bot_comments(web) == []
    assert await web.store.pending_commands(THREAD) == []


async def test_acting_needs_write_access_both_on_the_page_and_for_the_app(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("waiting")
    hidden = await runs.add("waiting", repo=HIDDEN_REPO, installation=OTHER_INSTALLATION)
    await sign_in(web.client, web.gh, READER)
    assert (await act(web, run.id, "approve")).status_code == 403
    assert (await act(web, hidden.id, "approve")).status_code == 404

    web.client.cookies.clear()
    await sign_in(web.client, web.gh, WRITER)
    await web.client.get("/")  # the access listing (cached for a minute) says "push"
    web.gh.set_permission(REPO, WRITER, "read")  # ...but GitHub has changed its mind since
    refused = await act(web, run.id, "approve")

    assert refused.status_code == 403
    assert "needs write access" in refused.text
    assert bot_comments(web) == []
    assert (await web.store.run(run.id)).status == "waiting"  # type: ignore[union-attr]


async def test_a_suspended_installation_is_not_acted_for(web: Harness, runs: Runs) -> None:
    run = await runs.add("waiting")
    await web.store.save_installation(INSTALLATION, account=MAINTAINER, account_type="User")
    await web.store.set_installation_suspended(INSTALLATION, True)
    await sign_in(web.client, web.gh, MAINTAINER)

    response = await act(web, run.id, "approve")

    assert response.status_code == 403
    assert "suspended" in response.text
    assert bot_comments(web) == []


async def test_every_action_needs_the_sessions_csrf_token_and_this_origin(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("waiting")
    await sign_in(web.client, web.gh, MAINTAINER)
    csrf = await csrf_of(web.client)

    missing = await web.client.post(f"/runs/{run.id}/approve")
    wrong = await web.client.post(f"/runs/{run.id}/approve", data={"csrf": csrf + "x"})
    foreign = await web.client.post(
        f"/runs/{run.id}/approve", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    web.client.cookies.clear()
    signed_out = await web.client.post(f"/runs/{run.id}/approve", data={"csrf": csrf})

    assert [r.status_code for r in (missing, wrong, foreign, signed_out)] == [403, 403, 403, 401]
    assert bot_comments(web) == []
    assert await web.store.pending_commands(THREAD) == []
