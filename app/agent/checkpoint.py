"""The durable checkpointer: SQLite in the data dir by default, PostgreSQL when configured.

One thread per issue (thread id "owner/repo#12", or "local:<path>:<slug>"): a run waiting for
approval, or interrupted by a restart, resumes from its last completed step.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from app.config import Settings

if TYPE_CHECKING:
    # langgraph is imported when a checkpointer is opened, not with this module (a web-only
    # node imports it only if the dashboard reads run records).
    from langgraph.checkpoint.base import BaseCheckpointSaver

CHECKPOINT_FILE = "checkpoints.sqlite"
SETUP_LOCK = 0x6F70656E73776531  # PostgreSQL advisory lock key: setting up checkpoint tables
# One connection per process writes the checkpoints, its writes queued on the saver's lock;
# another process (or the web layer's reader) waits for SQLite's lock instead of failing.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers (the dashboard) never block the writer
    "PRAGMA busy_timeout=30000",
)


def postgres_conninfo(database_url: str) -> str:
    """psycopg wants postgresql://; SQLAlchemy-style URLs name a driver (postgresql+psycopg)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", database_url)


async def _set_up_alone(conn: Any, saver: Any) -> None:
    """Processes starting at once (a web node and its workers) would race on the
    checkpointer's migrations table: one sets it up, the others wait their turn. Polled
    (pg_try_advisory_lock): a session blocked in pg_advisory_lock holds a snapshot that the
    migrations' CREATE INDEX CONCURRENTLY waits for, a deadlock."""
    for wait in itertools.count():
        if await _try_lock(conn):
            break
        await asyncio.sleep(min(0.01 * 2**wait, 0.5))  # another process sets them up
    try:
        await saver.setup()
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


async def _try_lock(conn: Any) -> bool:
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (SETUP_LOCK,))
    row = await cursor.fetchone()
    return bool(row["locked"])


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    if settings.uses_postgres:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            postgres_conninfo(settings.database_url),
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            min_size=1,
            max_size=max(2, settings.max_concurrent_runs + 1),
            open=False,
        )
        await pool.open()
        try:
            async with pool.connection() as conn:
                await _set_up_alone(conn, AsyncPostgresSaver(conn))  # type: ignore[arg-type]
            yield AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        finally:
            await pool.close()
    else:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.data_dir / CHECKPOINT_FILE
        async with aiosqlite.connect(str(path), timeout=30.0) as conn:
            for pragma in SQLITE_PRAGMAS:
                await conn.execute(pragma)
            sqlite_saver = AsyncSqliteSaver(conn)
            await sqlite_saver.setup()
            yield sqlite_saver
