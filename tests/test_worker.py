"""The front door and a separate worker on PostgreSQL: the web app only enqueues, the worker acts.

The app (create_app, procrastinate chosen by the PostgreSQL DATABASE_URL, no worker of its own)
and the worker (run_worker) share nothing but the database, as two processes would. GitHub is
the fake; deliveries are the recorded payloads, signed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.agent.runner import is_suspension
from app.config import Settings
from app.runs.models import thread_key
from app.runs.queue import worker_options
from app.runs.store import Store
from app.server import create_app
from app.webhooks import messages
from app.worker import run_worker
from tests.fakes.github import FakeGitHub
from tests.runs.postgres_schema import PostgresSchema, postgres_schema
from tests.webhooks.conftest import (
    MAINTAINER,
    REPO,
    SLUG,
    app_client,
    comment_payload,
    labeled,
    make_settings,
    seeded_github,
    shown,
    signed_headers,
)

pytestmark = pytest.mark.postgres
THREAD = thread_key(REPO, 1)


class RunJob:
    """Stands for the agent: records the runs it is given and works until cancelled."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []  # stopped
        self.suspended: list[str] = []  # its process shut down

    async def __call__(self, run_id: str) -> None:
        self.started.append(run_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            (self.suspended if is_suspension(exc) else self.cancelled).append(run_id)
            raise


@dataclass
class Deployment:
    client: httpx.AsyncClient
    store: Store  # the worker's view of the database
    gh: FakeGitHub
    run_job: RunJob

    async def deliver(self, event: str, data: dict[str, Any]) -> httpx.Response:
        body = json.dumps(data).encode()
        headers = signed_headers(event, body)
        return await self.client.post("/webhooks/github", content=body, headers=headers)


async def until(predicate: Callable[[], object], within: float = 10) -> None:
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.05)


@asynccontextmanager
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """A web app that only enqueues and one worker, on one fresh PostgreSQL schema."""
    async with postgres_schema() as pg:
        with seeded_github() as gh:
            settings = make_settings(tmp_path, gh, database_url_raw=pg.url, serve_worker=False)
            assert settings.queue_backend == "procrastinate"
            web = create_app(settings, github=app_client(gh), run_job=_not_here)
            run_job = RunJob()
            stop = asyncio.Event()
            worker = asyncio.create_task(_worker(settings, pg, gh, run_job, stop))
            try:
                async with (
                    web.router.lifespan_context(web),
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=web), base_url="http://web"
                    ) as client,
                ):
                    yield Deployment(client, pg.store, gh, run_job)
            finally:
                stop.set()
                await worker


async def _worker(
    settings: Settings, pg: PostgresSchema, gh: FakeGitHub, run_job: RunJob, stop: asyncio.Event
) -> None:
    options = replace(worker_options(settings), poll_interval=0.2, shutdown_timeout=0.2)
    await run_worker(settings, stop, options=options, github=app_client(gh), run_job=run_job)


async def _not_here(run_id: str) -> None:
    raise AssertionError(f"the web process ran run {run_id}: it should only enqueue")


async def test_the_worker_processes_what_the_front_door_accepted(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        response = await d.deliver("issues", labeled("open-swe"))
        assert response.status_code == 202
        await until(lambda: d.run_job.started)  # the worker gated it, started the run, ran it
        run = await d.store.active_run(THREAD)
        assert run is not None
        assert d.run_job.started == [run.id]
        eyes = d.gh.reactions_on(REPO, "issue", 1)
        assert [(r.content, r.user) for r in eyes] == [("eyes", f"{SLUG}[bot]")]


async def test_a_stop_comment_cancels_the_run_in_the_worker(tmp_path: Path) -> None:
    async with deployment(tmp_path) as d:
        await d.deliver("issues", labeled("open-swe"))
        await until(lambda: d.run_job.started)
        comment = d.gh.add_comment(REPO, 1, "/open-swe stop", user=MAINTAINER)
        await d.deliver("issue_comment", comment_payload(comment.body, comment_id=comment.id))
        await until(lambda: d.run_job.cancelled)

        def replies() -> list[str]:
            return [shown(c.body) for c in d.gh.comments.values() if c.id != comment.id]

        await until(replies)
        run = await d.store.run(d.run_job.started[0])
        assert run is not None
        assert run.status == "stopped"
        assert replies() == [messages.STOPPED.format(run=f"run `{run.id[:8]}`")]


async def test_serve_alone_works_the_queue_itself(tmp_path: Path) -> None:
    """One process on PostgreSQL (no --no-worker): the app's own worker runs the jobs."""
    async with postgres_schema() as pg:
        with seeded_github() as gh:
            settings = make_settings(
                tmp_path, gh, database_url_raw=pg.url, worker_shutdown_timeout=0.2
            )
            run_job = RunJob()
            web = create_app(settings, github=app_client(gh), run_job=run_job)
            async with (
                web.router.lifespan_context(web),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=web), base_url="http://web"
                ) as client,
            ):
                d = Deployment(client, pg.store, gh, run_job)
                assert (await d.deliver("issues", labeled("open-swe"))).status_code == 202
                await until(lambda: run_job.started)
            # Shutting down suspends the run (not stopped: it resumes) and requeues its job.
            assert (run_job.suspended, run_job.cancelled) == (run_job.started, [])
            jobs = await pg.rows("SELECT queueing_lock, status::text FROM procrastinate_jobs")
            assert (f"run:{run_job.started[0]}", "todo") in jobs
