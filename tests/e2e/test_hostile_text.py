"""The server stays responsive while it reads hostile text (issue 11).

A 64 KB comment of growing backtick runs froze the whole server for 48 s (a quadratic pattern
in the comment parser, run in the webhook request), and a 20 KB issue body of `<x hidden `
repeated for 25 s (cubic patterns in the sanitiser, run on the event loop in prepare). Here
the real app, under uvicorn, processes both while /healthz is asked every few milliseconds
and must answer each time within a second.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from benchmarks.untrusted_text import FAMILIES
from tests.agent.conftest import script_plan
from tests.e2e.conftest import ISSUE, ISSUE_BODY, REPO, SLUG, WRITER, World, eventually

pytestmark = pytest.mark.slow

HEALTH_WITHIN = 1.0  # seconds: the bar from issue 11


async def watch_health(url: str, done: asyncio.Event) -> list[float]:
    """Ask /healthz until `done`; the time each answer took."""
    took: list[float] = []
    async with httpx.AsyncClient(timeout=HEALTH_WITHIN) as client:
        while not done.is_set():
            start = time.monotonic()
            response = await client.get(f"{url}/healthz")  # a timeout fails the test
            took.append(time.monotonic() - start)
            assert response.status_code == 200
            await asyncio.sleep(0.005)
    return took


async def while_healthy(world: World, work: asyncio.Future[object]) -> list[float]:
    assert world.server is not None
    done = asyncio.Event()
    watcher = asyncio.create_task(watch_health(world.server.url, done))
    try:
        await work
    finally:
        done.set()
    return await watcher


async def test_a_64_kb_hostile_comment_does_not_stall_the_server(world: World) -> None:
    await world.start()
    request = f"@{SLUG} please look at this\n"
    hostile = request + FAMILIES["backtick runs"](65_536 - len(request))

    async def comment_and_start() -> None:
        await world.comment(hostile, user=WRITER)  # accepted: it addresses the bot
        await eventually(world.runs, "the comment's run to start")

    took = await while_healthy(world, asyncio.ensure_future(comment_and_start()))
    assert len(took) >= 2
    assert max(took) < HEALTH_WITHIN


async def test_a_20_kb_hostile_issue_body_does_not_stall_the_server(world: World) -> None:
    world.gh.issues[(REPO, ISSUE)].body = ISSUE_BODY + "\n\n" + "<x hidden " * 2_000
    script_plan(world.model)
    await world.start()

    async def label_and_prepare() -> None:
        await world.label("open-swe")
        await world.run_in("waiting", what="the plan (after prepare read the issue)")

    took = await while_healthy(world, asyncio.ensure_future(label_and_prepare()))
    assert len(took) >= 2
    assert max(took) < HEALTH_WITHIN
    first = world.model.requests[0].text
    assert "returns -1, it should return 5" in first  # the body was read, and sanitised
