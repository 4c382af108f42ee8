"""The wiring every entry point shares: built once per process, closed last-opened-first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import InterfaceError, OperationalError

from app.runs.jobs import RunJob
from app.runs.schema import current, head
from app.runs.store import Store
from app.sandbox.local import LocalProvider
from app.webhooks.context import AppSlug
from app.wiring import wire
from tests.fakes.github import FakeGitHub
from tests.helpers import github_app_for
from tests.runs.postgres_schema import postgres_schema
from tests.webhooks.conftest import make_settings, seeded_github


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with seeded_github() as fake:
        yield fake


async def revision(store: Store) -> str | None:
    async with store.engine.connect() as conn:
        return await conn.run_sync(current)


async def test_one_checkpointer_serves_every_run_job_of_the_process(
    tmp_path: Path, gh: FakeGitHub
) -> None:
    settings = make_settings(tmp_path, gh)
    provider = LocalProvider(tmp_path / "sandboxes", use_bwrap=False)
    async with wire(settings, github=github_app_for(gh), sandboxes=provider) as wiring:
        saver = await wiring.checkpointer()
        assert await wiring.checkpointer() is saver
        jobs = [await wiring.run_job(), await wiring.run_job()]
        for job in jobs:
            assert isinstance(job, RunJob)
            assert job._graph.checkpointer is saver
        assert wiring.sandboxes() is provider
        store = await wiring.store()
        assert await wiring.store() is store
        assert await revision(store) == head()  # migrated before its first use
    with pytest.raises((OperationalError, InterfaceError, ValueError)):
        await saver.conn.execute("SELECT 1")  # type: ignore[attr-defined]


@pytest.mark.postgres
async def test_on_postgresql_the_process_has_one_checkpoint_pool(tmp_path: Path) -> None:
    async with postgres_schema() as pg:
        settings = make_settings(tmp_path, database_url_raw=pg.url, queue="inprocess")
        async with wire(settings, sandboxes=LocalProvider(tmp_path, use_bwrap=False)) as wiring:
            saver = await wiring.checkpointer()
            pool = saver.conn  # type: ignore[attr-defined]
            assert (await wiring.checkpointer()).conn is pool  # type: ignore[attr-defined]
            assert not pool.closed
        assert pool.closed


async def test_the_queue_closes_first_and_an_injected_store_stays_open(
    tmp_path: Path, gh: FakeGitHub
) -> None:
    settings = make_settings(tmp_path, gh)
    store = Store.open(settings.database_url)
    seen: list[Any] = []

    class Queue:
        async def start(self, process_delivery: Any) -> None:
            seen.append("started")

        async def submit(self, job: Any) -> None:
            pass

        async def cancel(self, run_id: str) -> bool:
            return False

        async def aclose(self) -> None:
            seen.append(await store.count("runs"))  # the store is still open

    try:
        async with wire(settings, store=store, github=github_app_for(gh)) as wiring:
            ctx = await wiring.start(Queue(), AppSlug("open-swe-test", None))  # type: ignore[arg-type]
            assert ctx.store is store
            assert ctx.lifecycle is not None
        assert seen == ["started", 0]
        assert await store.count("runs") == 0  # left open for its owner
    finally:
        await store.close()
