"""The schema of open-swe's own tables, kept current by Alembic (app/runs/migrations).

`migrate(engine)` runs at start-up and brings any database to the newest revision, whatever it
starts from: empty; made by `metadata.create_all` before migrations existed (no alembic_version
table: it is stamped with the first revision, which is that schema, then upgraded); or at an
older revision. Every revision runs in one transaction under a lock, so processes that start
together migrate once and none sees a half-migrated schema: on PostgreSQL a transaction-scoped
advisory lock, on SQLite the database's write lock (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"  # the schema `create_all` made before migrations
_LOCK = 0x6F70656E2D6D6967  # pg advisory lock key ("open-mig"), apart from the queue's


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration: our migrations, run on `connection` (see migrations/env.py)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision."""
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None, "app/runs/migrations has revisions"
    return found


def current(connection: Connection) -> str | None:
    """The revision a database is at (None: not under migrations yet)."""
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(engine: AsyncEngine) -> None:
    """Bring the database to the newest revision (idempotent; safe to run from many processes
    at once)."""
    async with _one_at_a_time(), engine.connect() as conn:
        await conn.run_sync(_migrate)


_running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _one_at_a_time() -> asyncio.Lock:
    """Alembic keeps the migration under way in module globals: in one process, one at a
    time (two stores migrating at once would mix their contexts)."""
    return _running.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def _migrate(connection: Connection) -> None:
    with connection.begin():
        _lock(connection)
        config = alembic_config(connection)
        tables = set(inspect(connection).get_table_names())
        if "runs" in tables and "alembic_version" not in tables:
            command.stamp(config, FIRST_REVISION)  # made by create_all: that is revision one
        command.upgrade(config, "head")


def _lock(connection: Connection) -> None:
    """Held until the transaction ends: a second process waits, then finds nothing to do."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: take the write lock now
