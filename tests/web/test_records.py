"""Run records through the web layer's own checkpointer, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from app.agent.checkpoint import open_checkpointer
from app.config import Settings
from app.runs.models import Run, thread_key
from app.runs.store import Store
from app.web.records import RunRecords
from tests.runs.postgres_schema import postgres_schema

REPO = "acme/widgets"
THREAD = thread_key(REPO, 3)


class State(TypedDict, total=False):
    run_id: str
    thread_id: str
    steps_done: list[str]
    usage: dict[str, Any]


async def prepare(state: State) -> dict[str, Any]:
    usage = {
        "model_calls": 2,
        "input_tokens": 900,
        "output_tokens": 100,
        "cost_usd": 0.5,
        "seconds": 3.0,
    }
    return {"steps_done": ["prepare"], "usage": usage}


@asynccontextmanager
async def deployment(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Settings, Store]]:
    if kind == "sqlite":
        settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
        store = Store.open(settings.database_url)
        await store.migrate()
        try:
            yield settings, store
        finally:
            await store.close()
        return
    async with postgres_schema() as pg:
        yield Settings(_env_file=None, DATABASE_URL=pg.url), pg.store  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_runs_record_is_read_from_the_shared_checkpoints(kind: str, tmp_path: Path) -> None:
    async with deployment(kind, tmp_path) as (settings, store):
        run = await store.start_run(
            thread=THREAD,
            repo=REPO,
            number=3,
            kind="issue",
            installation_id=1,
            requested_by="octocat",
            auto_approve=True,
            delivery_id=None,
        )
        assert isinstance(run, Run)
        builder = StateGraph(State)
        builder.add_node("prepare", prepare)
        builder.add_edge(START, "prepare")
        builder.add_edge("prepare", END)
        async with open_checkpointer(settings) as saver:  # as a worker writes them
            graph = builder.compile(checkpointer=saver)
            config: Any = {"configurable": {"thread_id": THREAD}}
            await graph.ainvoke({"run_id": run.id, "thread_id": THREAD}, config)
        await store.set_run_status(run.id, "succeeded")
        finished = await store.run(run.id)
        assert finished is not None

        records = RunRecords(settings, store.engine)
        try:
            record = (await records.of([finished]))[run.id]
            again = (await records.of([finished]))[run.id]
        finally:
            await records.aclose()

    assert record.values["steps_done"] == ["prepare"]
    assert (record.usage.input_tokens, record.usage.output_tokens) == (900, 100)
    assert record.usage.cost_usd == pytest.approx(0.5)
    assert again == record
