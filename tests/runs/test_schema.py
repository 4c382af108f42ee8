"""Migrations of open-swe's tables, on SQLite and PostgreSQL: from an empty database, from the
schema `create_all` made before migrations existed, many processes at once, and the models'
metadata against the migrated schema."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from app.runs.models import metadata
from app.runs.schema import current, head
from app.runs.store import Store
from tests.runs.conftest import POSTGRES_URL
from tests.unavailable import unavailable

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Database:
    """An empty database (a file, or a PostgreSQL schema of its own) to migrate."""

    dialect: str
    url: str
    schema: str | None = None

    def store(self) -> Store:
        return Store.open(self.url, schema=self.schema)

    def execute(self, sql: str) -> None:
        """Raw SQL, as an older open-swe (or an operator) would have run it."""
        if self.dialect == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                conn.executescript(sql)
            return
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"'.encode())
            conn.execute(sql.encode())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path / 'open-swe.db'}")
        return
    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        admin = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    await admin.execute(f'CREATE SCHEMA "{schema}"'.encode())
    try:
        yield Database("postgresql", POSTGRES_URL, schema)
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
        await admin.close()


async def inspect_store(store: Store, look: Any) -> Any:
    async with store.engine.connect() as conn:
        return await conn.run_sync(look)


def differences(connection: Connection) -> list[Any]:
    """What alembic's autogenerate would change to make the database match the models."""
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_an_empty_database_is_migrated_to_the_models_schema(database: Database) -> None:
    store = database.store()
    try:
        await store.migrate()
        assert await inspect_store(store, current) == head()
        assert await inspect_store(store, differences) == []
        await store.migrate()  # idempotent
        assert await inspect_store(store, current) == head()
    finally:
        await store.close()


async def test_a_database_made_by_create_all_is_stamped_and_upgraded_with_its_data(
    database: Database,
) -> None:
    database.execute((FIXTURES / f"created_by_create_all.{database.dialect}.sql").read_text())
    database.execute(
        "INSERT INTO deliveries (id, event, received_at, outcome) "
        "VALUES ('d-1', 'issues', '2026-01-02 03:04:05+00', 'started');"
        "INSERT INTO runs (id, thread, repo, number, kind, installation_id, requested_by, "
        "auto_approve, status, created_at, updated_at, delivery_id) VALUES ('r1', 'o/r#1', "
        "'o/r', 1, 'issue', 7, 'carol', false, 'succeeded', '2026-01-02 03:04:05+00', "
        "'2026-01-02 03:04:06+00', 'd-1');"
        # A run parking with its plan question pending, then still a command row of its own.
        "INSERT INTO runs (id, thread, repo, number, kind, installation_id, requested_by, "
        "auto_approve, status, created_at, updated_at) VALUES ('r2', 'o/r#2', 'o/r', 2, "
        "'issue', 7, 'carol', false, 'running', '2026-01-02 03:04:05+00', "
        "'2026-01-02 03:04:06+00');"
        "INSERT INTO commands (thread, run_id, verb, text, author, source, delivery_id, "
        "created_at) VALUES ('o/r#2', 'r2', 'plan', 'revision 2', 'run', 'run', 'plan:r2:2', "
        "'2026-01-02 03:04:07+00'), ('o/r#2', 'r2', 'approve', '', 'dave', 'issue_comment', "
        "'d-2', '2026-01-02 03:04:08+00');"
    )
    store = database.store()
    try:
        await store.migrate()
        assert await inspect_store(store, current) == head()
        assert await inspect_store(store, differences) == []
        run = await store.run("r1")
        assert run is not None
        assert (run.status, run.requested_by, run.updated_at.year) == ("succeeded", "carol", 2026)
        delivery = await store.delivery("d-1")
        assert delivery is not None
        assert delivery.outcome == "started"
        parking = await store.run("r2")
        assert parking is not None
        assert (parking.status, parking.plan_question) == ("running", 2)  # the column now
        assert [c.verb for c in await store.pending_commands("o/r#2")] == ["approve"]
    finally:
        await store.close()


MIGRATE = """
import asyncio, sys
from app.runs.store import Store

async def main() -> None:
    store = Store.open(sys.argv[1], schema=sys.argv[2] or None)
    await store.migrate()
    await store.close()

asyncio.run(main())
"""


async def test_processes_starting_together_migrate_once(database: Database) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            database.url,
            database.schema or "",
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for process in processes:
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
    store = database.store()
    try:
        assert await inspect_store(store, current) == head()
        assert await inspect_store(store, differences) == []
    finally:
        await store.close()


async def test_an_in_memory_database_is_migrated_on_its_one_connection() -> None:
    store = Store.open("sqlite://")
    try:
        await store.migrate()
        assert await inspect_store(store, differences) == []
    finally:
        await store.close()
