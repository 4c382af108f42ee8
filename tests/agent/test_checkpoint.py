"""The durable checkpointer: a run's state survives the process, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from app.agent.checkpoint import CHECKPOINT_FILE, open_checkpointer, postgres_conninfo
from app.config import Settings
from tests.unavailable import unavailable

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


class Counter(TypedDict, total=False):
    count: int
    answer: str


async def ask(state: Counter) -> dict[str, Any]:
    return {"count": state.get("count", 0) + 1, "answer": interrupt("continue?")}


def counter_graph(saver: Any) -> Any:
    builder = StateGraph(Counter)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=saver)


async def interrupted_then_resumed_in_another_open(settings: Settings) -> Counter:
    config: Any = {"configurable": {"thread_id": "acme/calc#7"}}
    async with open_checkpointer(settings) as saver:
        paused = await counter_graph(saver).ainvoke({"count": 41}, config, version="v2")
        assert paused.interrupts[0].value == "continue?"
    async with open_checkpointer(settings) as saver:  # "after a restart"
        done = await counter_graph(saver).ainvoke(Command(resume="yes"), config, version="v2")
    result: Counter = done.value
    return result


@pytest.mark.parametrize(
    ("url", "conninfo"),
    [
        ("postgresql+psycopg://u:p@h:5432/db", "postgresql://u:p@h:5432/db"),
        ("postgres://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_postgres_urls_for_psycopg(url: str, conninfo: str) -> None:
    assert postgres_conninfo(url) == conninfo


async def test_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    assert await interrupted_then_resumed_in_another_open(settings) == {
        "count": 42,
        "answer": "yes",
    }
    assert (tmp_path / "data" / CHECKPOINT_FILE).exists()


@pytest.mark.postgres
async def test_postgres_when_database_url_points_there() -> None:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await psycopg.AsyncConnection.connect(POSTGRES, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES}: {exc}")
    async with admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
            settings = Settings(_env_file=None, DATABASE_URL=url)  # type: ignore[call-arg]
            assert settings.uses_postgres
            result = await interrupted_then_resumed_in_another_open(settings)
            assert result == {"count": 42, "answer": "yes"}
            tables = await admin.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
            row = await tables.fetchone()
            assert row is not None
            assert row[0] >= 3
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
async def test_processes_starting_at_once_set_up_the_postgres_tables_once() -> None:
    """A web node and its workers start together on a fresh database: none fails on the
    checkpointer's migrations (they are set up under an advisory lock)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await psycopg.AsyncConnection.connect(POSTGRES, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES}: {exc}")
    async with admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
            settings = Settings(_env_file=None, DATABASE_URL=url)  # type: ignore[call-arg]

            async def open_one() -> bool:
                async with open_checkpointer(settings) as saver:
                    return saver is not None

            assert await asyncio.gather(*(open_one() for _ in range(6))) == [True] * 6
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
