"""Scaled out on PostgreSQL: a web node that only enqueues and a worker that runs the agent.

The deployment README's "Scaling out" describes, end to end: `DATABASE_URL` is PostgreSQL (a
throwaway schema through `search_path`, so the store, LangGraph's checkpointer and
procrastinate's tables all land there), the web side is `create_app` under uvicorn with the
procrastinate dispatcher and no worker of its own (`serve --no-worker`), and the jobs are run
by `run_worker` (`open-swe worker`) in this test's event loop, sharing only the database with
the web side. The queues are named after the schema, so no other test session's
notifications (database-wide) reach them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.agent.checkpoint import CHECKPOINT_FILE
from app.runs.queue import (
    DELIVERIES,
    PROCESS_DELIVERY_TASK,
    RECOVER_TASK,
    SWEEP_TASK,
    worker_options,
)
from app.worker import run_worker
from tests.agent.conftest import script_fix, script_plan, script_pr
from tests.e2e.conftest import ISSUE, MAINTAINER, REPO, THREAD, World, eventually
from tests.e2e.test_issue_to_pr import assert_published
from tests.helpers import github_app_for
from tests.runs.postgres_schema import PostgresSchema, postgres_schema

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class Worker:
    """`open-swe worker` with the web side's settings, as another process would run it."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        settings = self._world.settings
        gh = self._world.gh
        assert gh.private_key_pem is not None
        github = github_app_for(gh)
        options = dataclasses.replace(worker_options(settings), poll_interval=0.2)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            run_worker(settings, self._stop, options=options, github=github), name="worker"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            task, self._task = self._task, None
            await task  # raises what the worker raised


@dataclasses.dataclass
class Cluster:
    world: World
    worker: Worker
    pg: PostgresSchema

    async def start_web(self) -> None:
        await self.world.start()
        settings = self.world.settings
        assert settings.queue_backend == "procrastinate"
        assert not settings.serve_worker

    @property
    def a_delivery(self) -> tuple[str, str]:
        """A delivery job in this deployment's queue, as `queued` lists it."""
        return f"{self.pg.name}-{DELIVERIES}", PROCESS_DELIVERY_TASK

    async def queued(self) -> list[tuple[str, str]]:
        """(queue, task) of the jobs waiting to be run (the periodic recovery and sweeps,
        deferred at every tick, aside)."""
        rows = await self.pg.rows(
            "SELECT queue_name, task_name FROM procrastinate_jobs"
            " WHERE status = 'todo' AND task_name <> %s AND task_name NOT LIKE %s ORDER BY id",
            RECOVER_TASK,
            SWEEP_TASK.format(name="%"),
        )
        return [(queue, task) for queue, task in rows]

    async def queued_soon(self, expected: list[tuple[str, str]]) -> None:
        """The queue holds `expected` once the front door has handed accepted deliveries on
        (it does so when requests pause: app/webhooks/handoff.py)."""

        async def holds() -> bool:
            return await self.queued() == expected

        await eventually(holds, f"the queue to hold {expected}")

    async def checkpoints(self) -> int:
        [(count,)] = await self.pg.rows(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", THREAD
        )
        return int(count)


@pytest.fixture
async def pg() -> AsyncIterator[PostgresSchema]:
    async with postgres_schema() as schema:
        yield schema


@pytest.fixture
async def cluster(pg: PostgresSchema, world: World) -> AsyncIterator[Cluster]:
    """The world on PostgreSQL with a web node that only enqueues; the worker not started."""
    world.overrides |= {
        "database_url_raw": pg.url,
        "queue_prefix": pg.name,
        "serve_worker": False,
        "worker_shutdown_timeout": 1.0,
    }
    built = Cluster(world, Worker(world), pg)
    try:
        yield built
    finally:
        await built.worker.stop()
        await world.stop()  # before the schema is dropped (pg's teardown, after world's)


async def test_the_web_node_enqueues_and_a_worker_turns_the_issue_into_a_pull_request(
    cluster: Cluster, tmp_path: Path
) -> None:
    world = cluster.world
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    await cluster.start_web()

    await world.label("open-swe-auto")
    # Accepted and queued, under this deployment's queue names; nothing runs without a worker.
    await cluster.queued_soon([cluster.a_delivery])
    assert world.gh.reactions_on(REPO, "issue", ISSUE) == []

    cluster.worker.start()
    run = await world.finished_run()

    assert run.status == "succeeded", run.error
    assert world.model.unmatched == []
    assert_published(world, tmp_path)
    [pull] = world.gh.pulls.values()
    assert pull.draft
    assert run.pr_number == pull.issue.number
    assert world.status_writes(run.id)[0] == 1
    assert world.sandboxes() == []
    # Everything was kept in PostgreSQL: the checkpoints in the schema, nothing on disk.
    assert await cluster.checkpoints() > 0
    assert not (world.settings.data_dir / CHECKPOINT_FILE).exists()
    assert not (world.settings.data_dir / "open-swe.db").exists()
    assert await cluster.queued() == []


async def test_a_plan_waits_across_a_restart_of_web_and_worker_then_is_approved(
    cluster: Cluster, tmp_path: Path
) -> None:
    world = cluster.world
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    await cluster.start_web()
    cluster.worker.start()

    await world.label("open-swe")
    waiting = await world.run_in("waiting")
    [_plan] = world.plan_comments()

    # Every process restarts while the plan waits; the web node is back first.
    await cluster.worker.stop()
    await world.stop()
    await cluster.start_web()
    await world.comment("/open-swe approve", user=MAINTAINER)
    await cluster.queued_soon([cluster.a_delivery])
    assert (await world.run_in("waiting")).id == waiting.id

    cluster.worker.start()  # a new worker takes the answer and resumes the checkpoint
    run = await world.finished_run()

    assert run.id == waiting.id
    assert run.status == "succeeded", run.error
    assert len(world.model.requests_offering("SubmitPlan")) == 2  # planned once, not redone
    assert_published(world, tmp_path)
    assert len(world.gh.pulls) == 1
    assert world.status_writes(run.id)[0] == 1  # one status comment across the restart
    assert world.sandboxes() == []
    assert world.store is not None
    assert await world.store.pending_commands(run.thread) == []
