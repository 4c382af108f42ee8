"""Retention on SQLite and PostgreSQL, with the real checkpointer: what ended long ago goes, what
may still be needed stays, and /metrics' counters do not go down (finding 9: nothing was
pruned, ever)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from sqlalchemy import update
from typing_extensions import TypedDict

from app.agent.checkpoint import open_checkpointer
from app.agent.history import read_thread
from app.config import Settings
from app.runs.models import Run, RunStatus, ci_commits, ci_pulls, deliveries, runs, thread_key
from app.runs.retention import Retention
from app.runs.store import Store
from app.runs.store.retention import UsageTotals
from app.transcript import RunEvent
from app.web.metrics import Snapshot, snapshot
from app.web.records import RunRecords
from tests.runs.postgres_schema import postgres_schema

REPO = "acme/widgets"
LONG_AGO = datetime.now(UTC) - timedelta(days=40)


class State(TypedDict, total=False):
    run_id: str
    thread_id: str
    usage: dict[str, Any]


async def work(state: State) -> dict[str, Any]:
    usage = {"model_calls": 2, "input_tokens": 900, "output_tokens": 100, "cost_usd": 0.5}
    return {"usage": usage | {"seconds": 3.0}}


@asynccontextmanager
async def deployment(
    kind: str, tmp_path: Path
) -> AsyncIterator[tuple[Settings, Store, BaseCheckpointSaver[str]]]:
    if kind == "sqlite":
        settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
        store = Store.open(settings.database_url)
        await store.migrate()
        try:
            async with open_checkpointer(settings) as saver:
                yield settings, store, saver
        finally:
            await store.close()
        return
    async with postgres_schema() as pg:
        # The in-process queue: /metrics then reads no procrastinate tables.
        settings = Settings(_env_file=None, DATABASE_URL=pg.url, OPEN_SWE_QUEUE="inprocess")  # type: ignore[call-arg]
        async with open_checkpointer(settings) as saver:
            yield settings, pg.store, saver


class World:
    def __init__(self, settings: Settings, store: Store, saver: BaseCheckpointSaver[str]) -> None:
        self.settings, self.store, self.saver = settings, store, saver
        builder = StateGraph(State)
        builder.add_node("work", work)
        builder.add_edge(START, "work")
        builder.add_edge("work", END)
        self.graph = builder.compile(checkpointer=saver)

    async def run(
        self, number: int, status: RunStatus, *, ended: datetime | None = None, delivery: str = ""
    ) -> Run:
        thread = thread_key(REPO, number)
        run = await self.store.start_run(
            thread=thread,
            repo=REPO,
            number=number,
            kind="issue",
            installation_id=1,
            requested_by="octocat",
            auto_approve=True,
            delivery_id=delivery or None,
        )
        assert isinstance(run, Run)
        config: Any = {"configurable": {"thread_id": thread}}
        await self.graph.ainvoke({"run_id": run.id, "thread_id": thread}, config)
        await self.store.add_command(
            thread=thread,
            run_id=run.id,
            verb="instruct",
            text="please",
            author="octocat",
            source="issue_comment",
            delivery_id=f"command-{number}",
            consumed=True,
        )
        if status != "queued":
            await self.store.set_run_status(run.id, status)
        if ended is not None:
            async with self.store.engine.begin() as conn:
                await conn.execute(update(runs).where(runs.c.id == run.id).values(updated_at=ended))
        found = await self.store.run(run.id)
        assert found is not None
        return found

    async def delivery(self, delivery_id: str, *, received: datetime, work: bool = True) -> None:
        await self.store.record_delivery(
            delivery_id=delivery_id,
            event="issues",
            action="labeled",
            installation_id=1,
            repo=REPO,
            outcome="accepted" if work else "ignored",
            payload={"action": "labeled"} if work else None,
        )
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(received_at=received)
            )

    async def metrics(self) -> Snapshot:
        records = RunRecords(self.settings, self.store.engine)
        try:
            return await snapshot(self.settings, self.store, records)
        finally:
            await records.aclose()

    async def checkpoints(self, number: int) -> int:
        return len(await read_thread(self.saver, thread_key(REPO, number)))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_what_ended_long_ago_is_pruned_and_the_counters_keep_counting(
    kind: str, tmp_path: Path
) -> None:
    async with deployment(kind, tmp_path) as (settings, store, saver):
        world = World(settings, store, saver)
        await world.delivery("old-start", received=LONG_AGO)
        await store.finish_delivery("old-start", "started")
        old = await world.run(1, "succeeded", ended=LONG_AGO, delivery="old-start")
        await store.add_command(  # what started the old run: the dashboard still tells it
            thread=old.thread,
            run_id=old.id,
            verb="retry",
            text="",
            author="octocat",
            source="issue_comment",
            delivery_id="old-start",
            consumed=True,
        )
        busy = await world.run(2, "queued")  # active: its thread is kept whatever its age
        recent = await world.run(3, "failed")
        await store.record_model_call(
            old.id, model="m", input_tokens=5, output_tokens=1, cost_usd=0.0
        )
        await store.record_model_call(
            recent.id, model="m", input_tokens=7, output_tokens=1, cost_usd=0.0
        )
        await world.delivery("old-ignored", received=LONG_AGO, work=False)
        await world.delivery("old-unfinished", received=LONG_AGO)  # its work is still due
        await world.delivery("recent-ignored", received=datetime.now(UTC), work=False)
        await store.note_redelivery("old-guid", hook_delivery_id=1, event="issues", action=None)
        for run, seconds in ((old, 12.0), (recent, 3.0)):  # their transcripts
            sandbox = RunEvent(run.id, "sandbox", LONG_AGO, {"created": True, "seconds": seconds})
            await store.add_events(run.id, [sandbox])
        before = await world.metrics()

        pruned = await Retention(store, 30, saver)()

        assert pruned == 2  # the ignored delivery, the old run's thread
        assert await world.checkpoints(1) == 0
        assert await world.checkpoints(2) > 0
        assert await world.checkpoints(3) > 0
        assert await store.command("command-1") is None
        assert await store.command("old-start") is not None
        assert await store.command("command-2") is not None
        assert await store.command("command-3") is not None
        pruned_run = await store.run(old.id)
        assert pruned_run is not None
        assert pruned_run.pruned_at is not None
        assert (await store.run(busy.id), await store.run(recent.id)) == (busy, recent)
        assert (await store.spent_by([old.id])).model_calls == 0  # the ledger's rows too
        assert (await store.spent_by([recent.id])).model_calls == 1
        started = await store.delivery("old-start")  # it tells what started the run
        assert started is not None
        assert started.payload is None
        assert await store.delivery("old-ignored") is None
        assert await store.delivery("old-unfinished") is not None
        assert await store.delivery("recent-ignored") is not None
        assert await store.known_deliveries(["old-guid"]) == {"old-guid"}  # asked just now
        assert await store.run_events(old.id) == []  # the old run's transcript went
        assert len(await store.run_events(recent.id)) == 1

        after = await world.metrics()
        assert after.deliveries == before.deliveries
        assert (after.input_tokens, after.output_tokens) == (2700, 300)
        assert (after.input_tokens, after.output_tokens) == (
            before.input_tokens,
            before.output_tokens,
        )
        assert after.cost_usd == pytest.approx(before.cost_usd)
        assert after.runs == before.runs
        assert sorted(before.sandbox_creates) == [3.0, 12.0]
        assert (after.sandbox_creates, after.sandbox_pruned["count"]) == ([3.0], 1)
        assert after.sandbox_pruned["sum"] == 12.0

        assert await Retention(store, 30, saver)() == 0  # nothing more


async def test_delivery_ids_outlive_a_short_retention_while_github_may_redeliver(
    tmp_path: Path,
) -> None:
    async with deployment("sqlite", tmp_path) as (settings, store, saver):
        world = World(settings, store, saver)
        now = datetime.now(UTC)
        await world.delivery("two-days", received=now - timedelta(days=2), work=False)
        await world.delivery("five-days", received=now - timedelta(days=5), work=False)
        await Retention(store, 1, saver)()
        assert await store.delivery("two-days") is not None  # a redelivery is still a duplicate
        assert await store.delivery("five-days") is None


async def test_a_thread_a_new_run_took_meanwhile_keeps_its_checkpoints(tmp_path: Path) -> None:
    async with deployment("sqlite", tmp_path) as (settings, store, saver):
        world = World(settings, store, saver)
        old = await world.run(1, "succeeded", ended=LONG_AGO)
        await world.run(1, "queued")  # labelled again as retention looked

        assert await store.mark_pruned(old.thread, [old.id], UsageTotals(1, 1, 1.0)) is False
        assert await world.checkpoints(1) > 0
        assert await store.totals_of("model_tokens") == {}


async def test_ci_autofix_rows_of_long_ago_go_but_a_persons_autofix_setting_stays(
    tmp_path: Path,
) -> None:
    async with deployment("sqlite", tmp_path) as (_, store, saver):
        for sha in ("old", "new"):
            assert await store.claim_commit(REPO, sha, 7, 1)
            await store.decide_commit(REPO, sha, "attempted", run_id="r1")
        for number, autofix in ((7, None), (8, False), (9, None)):
            await store.save_ci_pull(REPO, number, autofix=autofix, attempts=2)
        async with store._engine.begin() as conn:
            await conn.execute(
                update(ci_commits).where(ci_commits.c.sha == "old").values(decided_at=LONG_AGO)
            )
            await conn.execute(
                update(ci_pulls).where(ci_pulls.c.number < 9).values(updated_at=LONG_AGO)
            )

        await Retention(store, 30, saver)()

        assert await store.ci_commit(REPO, "old") is None
        assert await store.ci_commit(REPO, "new") is not None
        assert await store.ci_pull(REPO, 7) is None  # untouched, no setting of a person's
        kept = await store.ci_pull(REPO, 8)
        assert kept is not None
        assert kept.autofix is False
        assert await store.ci_pull(REPO, 9) is not None  # recent
