"""A run's transcript over the API: `GET /api/runs/{id}/events` (paged) and the live stream
`GET /api/runs/{id}/stream` (server-sent events), with the pages' access rules."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from app.runs.models import Run
from app.transcript import RunEvent
from app.web import stream
from tests.web.conftest import (
    HIDDEN_REPO,
    OTHER_INSTALLATION,
    READER,
    STRANGER,
    Runs,
    sign_in,
)
from tests.webhooks.conftest import MAINTAINER, Harness


@pytest.fixture(autouse=True)
def quick_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(stream, "END_GRACE_SECONDS", 0.1)
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.05)


async def add(web: Harness, run: Run, *steps: str) -> None:
    now = datetime.now(UTC)
    await web.store.add_events(run.id, [RunEvent(run.id, "step", now, {"step": s}) for s in steps])


def parse(body: str) -> list[dict[str, str]]:
    """The server-sent events of a body: each a dict of its fields (comments as `comment`)."""
    found = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")
        found.append(fields)
    return found


async def test_events_are_paged_after_an_event_id(web: Harness, runs: Runs) -> None:
    run = await runs.add("running")
    await add(web, run, "prepare", "plan", "approval")
    assert (await web.client.get(f"/api/runs/{run.id}/events")).status_code == 401
    await sign_in(web.client, web.gh, MAINTAINER)

    first = (await web.client.get(f"/api/runs/{run.id}/events", params={"limit": 2})).json()
    assert [e["data"]["step"] for e in first["events"]] == ["prepare", "plan"]
    assert [e["id"] for e in first["events"]] == [1, 2]
    assert (first["next"], first["more"], first["run"]["status"]) == (2, True, "running")
    rest = (await web.client.get(f"/api/runs/{run.id}/events", params={"after": 2})).json()
    assert [e["data"]["step"] for e in rest["events"]] == ["approval"]
    assert (rest["next"], rest["more"]) == (3, False)
    none = (await web.client.get(f"/api/runs/{run.id}/events", params={"after": 3})).json()
    assert (none["events"], none["next"]) == ([], 3)
    bad = await web.client.get(f"/api/runs/{run.id}/events", params={"after": "-1"})
    assert bad.status_code == 400


async def test_people_without_access_learn_nothing_of_a_run(web: Harness, runs: Runs) -> None:
    hidden = await runs.add("running", repo=HIDDEN_REPO, installation=OTHER_INSTALLATION)
    await add(web, hidden, "prepare")
    for login in (MAINTAINER, READER, STRANGER):
        web.client.cookies.clear()
        await sign_in(web.client, web.gh, login)
        for path in (f"/api/runs/{hidden.id}/events", f"/api/runs/{hidden.id}/stream"):
            missing = f"/api/runs/{'0' * 32}/{path.rsplit('/', 1)[1]}"
            answer, nothing = await web.client.get(path), await web.client.get(missing)
            assert answer.status_code == nothing.status_code == 404, login
            assert answer.json() == nothing.json()  # the same words: existence is not leaked
            assert "prepare" not in answer.text


async def test_the_stream_sends_new_events_as_they_are_stored_and_ends_with_the_run(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("running")
    await add(web, run, "prepare")
    await sign_in(web.client, web.gh, MAINTAINER)

    async def meanwhile() -> None:
        await asyncio.sleep(0.2)
        await add(web, run, "plan")
        await asyncio.sleep(0.2)
        await web.store.set_run_status(run.id, "succeeded")
        await add(web, run, "report")  # stored just after the end: still sent

    later = asyncio.create_task(meanwhile())
    answer = await web.client.get(f"/api/runs/{run.id}/stream")
    await later

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    sent = parse(answer.text)
    assert sent[0] == {"retry": str(stream.RETRY_MS)}
    messages = [m for m in sent if "data" in m and "event" not in m]
    assert [json.loads(m["data"])["data"]["step"] for m in messages] == [
        "prepare",
        "plan",
        "report",
    ]
    assert [m["id"] for m in messages] == ["1", "2", "3"]
    assert any(m.get("comment") == "keep-alive" for m in sent)  # the heartbeat
    assert sent[-1] == {"event": "end", "data": '{"status": "succeeded"}'}


async def test_a_reconnecting_browser_resumes_after_its_last_event_id(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("failed")
    await add(web, run, "prepare", "plan", "approval")
    await sign_in(web.client, web.gh, MAINTAINER)

    answer = await web.client.get(f"/api/runs/{run.id}/stream", headers={"Last-Event-ID": "2"})

    ids = [m["id"] for m in parse(answer.text) if "id" in m]
    assert ids == ["3"]
    assert parse(answer.text)[-1]["event"] == "end"
    again = await web.client.get(f"/api/runs/{run.id}/stream", params={"after": "3"})
    assert [m for m in parse(again.text) if "id" in m] == []


async def test_a_long_stream_closes_for_the_browser_to_reconnect_through_the_guard(
    web: Harness, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access removed on GitHub must end a stream: it closes after MAX_SECONDS without
    `event: end` (the run goes on), and the browser's reconnection passes the guard again."""
    monkeypatch.setattr(stream, "MAX_SECONDS", 0.2)
    run = await runs.add("waiting")
    await add(web, run, "prepare")
    await sign_in(web.client, web.gh, MAINTAINER)

    answer = await web.client.get(f"/api/runs/{run.id}/stream")

    sent = parse(answer.text)
    assert [m["id"] for m in sent if "id" in m] == ["1"]
    assert not any(m.get("event") == "end" for m in sent)
    web.client.cookies.clear()  # signed out meanwhile: the reconnection is refused
    again = await web.client.get(f"/api/runs/{run.id}/stream", headers={"Last-Event-ID": "1"})
    assert again.status_code == 401
