"""create_app: routes, setup mode, start-up (tables, recovery) and shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.github.app import GitHubApp
from app.runs.dispatch import DispatcherClosed, InProcessDispatcher, Job, ProcessDelivery, StartRun
from app.runs.models import Run, RunStatus, thread_key
from app.runs.store import Store
from app.server import create_app
from tests.fakes.github import FakeGitHub
from tests.webhooks.conftest import (
    REPO,
    RecordingDispatcher,
    app_client,
    labeled,
    make_settings,
    seeded_github,
    signed_headers,
    start_harness,
)

THREAD = thread_key(REPO, 1)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with seeded_github() as fake:
        yield fake


@pytest.fixture
def github_app(gh: FakeGitHub) -> GitHubApp:
    return app_client(gh)


async def test_healthz_reports_whether_the_app_is_configured(tmp_path: Path) -> None:
    for settings, configured in [
        (make_settings(tmp_path), True),
        (make_settings(tmp_path, github_app_id=None), False),
    ]:
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "app_configured": configured}


async def test_setup_mode_starts_without_a_database_and_mounts_the_setup_pages(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, github_app_id=None, github_app_private_key=None)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        setup = await client.get("/setup")
        health = await client.get("/healthz")
    assert setup.status_code == 403  # the setup page wants the token from the log
    assert health.json()["app_configured"] is False
    assert not (tmp_path / "data").exists()  # nothing opened in setup mode


async def test_the_default_store_is_sqlite_in_the_data_dir(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    settings = make_settings(tmp_path, gh)
    dispatcher = RecordingDispatcher()
    app = create_app(settings, github=github_app, dispatcher=dispatcher)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        body = httpx.Request("POST", "/", json=labeled()).content
        response = await client.post(
            "/webhooks/github", content=body, headers=signed_headers("issues", body)
        )
    assert response.status_code == 202
    database = tmp_path / "data" / "open-swe.db"
    assert database.exists()
    store = Store.open(f"sqlite:///{database}")
    try:
        assert await store.count("deliveries") == 1
    finally:
        await store.close()


async def test_a_delivery_accepted_before_a_crash_is_processed_after_the_restart(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    # The first process answers 202 and dies before its background job runs.
    async with start_harness(tmp_path, gh, github_app, dispatcher=RecordingDispatcher()) as first:
        response = await first.deliver("issues", labeled(), delivery="before-crash")
        assert response.status_code == 202
    assert gh.calls_matching("POST", "/repos/*/reactions") == []

    async with start_harness(tmp_path, gh, github_app) as second:
        await second.settle()
        delivery = await second.store.delivery("before-crash")
        assert delivery is not None
        assert delivery.processed_at is not None
        run = await second.store.active_run(THREAD)
        assert run is not None
        assert second.run_jobs == [run.id]
    assert len(gh.reactions_on(REPO, "issue", 1)) == 1

    # A third start finds nothing left to do.
    async with start_harness(tmp_path, gh, github_app) as third:
        await third.settle()
        assert third.run_jobs == [run.id]  # the run is still queued (the recorder runs nothing)


async def test_work_whose_enqueue_failed_is_queued_within_seconds_without_a_restart(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 6: an accepted delivery whose enqueue failed after the 202 waited for the next
    start; so did a run whose job could not be queued. The outbox sweep queues them."""
    failures: dict[type[Job], int] = {ProcessDelivery: 1, StartRun: 1}
    submit = InProcessDispatcher.submit

    async def flaky_submit(queue: InProcessDispatcher, job: Job) -> None:
        if failures.get(type(job)):
            failures[type(job)] -= 1
            raise DispatcherClosed("the queue is gone for a moment")
        await submit(queue, job)

    monkeypatch.setattr(InProcessDispatcher, "submit", flaky_submit)
    run_jobs: list[str] = []
    ran = asyncio.Event()

    async def run_job(run_id: str) -> None:
        run_jobs.append(run_id)
        ran.set()

    settings = make_settings(tmp_path, gh, outbox_sweep_seconds=1)
    store = Store.open(settings.database_url)
    app = create_app(settings, store=store, github=github_app, run_job=run_job)
    body = json.dumps(labeled()).encode()
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client,
        ):
            headers = signed_headers("issues", body, delivery="unqueued")
            response = await client.post("/webhooks/github", content=body, headers=headers)
            assert response.status_code == 202
            async with asyncio.timeout(30):
                await ran.wait()
            run = await store.active_run(THREAD)
            assert run is not None
            assert run_jobs == [run.id]
            delivery = await store.delivery("unqueued")
            assert delivery is not None
            assert delivery.processed_at is not None
    finally:
        await store.close()
    assert failures == {ProcessDelivery: 0, StartRun: 0}


async def test_runs_interrupted_by_a_restart_are_resumed_but_waiting_ones_are_not(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    async with start_harness(tmp_path, gh, github_app) as first:
        started: dict[RunStatus, str] = {}
        statuses: list[RunStatus] = ["queued", "running", "waiting", "failed"]
        for number, status in enumerate(statuses, start=1):
            run = await first.store.start_run(
                thread=thread_key(REPO, number),
                repo=REPO,
                number=number,
                kind="issue",
                installation_id=1,
                requested_by="Codertocat",
                auto_approve=False,
                delivery_id=None,
            )
            assert isinstance(run, Run)
            started[status] = run.id
            if status != "queued":
                await first.store.set_run_status(run.id, status)
    async with start_harness(tmp_path, gh, github_app) as second:
        await second.settle()
        assert sorted(second.run_jobs) == sorted([started["queued"], started["running"]])
