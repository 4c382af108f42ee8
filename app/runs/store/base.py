"""The store's foundation: the async engine (SQLite or PostgreSQL), opening, closing, migrating.

SQLAlchemy Core on async engines: `sqlite+aiosqlite` (WAL) for the embedded default,
`postgresql+psycopg` when DATABASE_URL names PostgreSQL. The tables' queries live beside this
module, one module per family of tables, and `app.runs.store.Store` brings them together.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Table, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from app.runs.models import metadata
from app.runs.schema import migrate

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never block the writer; fast commits
    # Commits are not fsynced, except the deliveries' (store.deliveries: FULL around each
    # group commit), whose fsync of the write-ahead log also makes every earlier commit
    # durable: an acknowledged delivery survives power loss; background progress since the
    # last one may not, and is redone from the delivery (its work is idempotent).
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",  # wait for a concurrent writer instead of failing
    "PRAGMA foreign_keys=ON",
)

SQLITE_POOL_TIMEOUT = 60.0  # seconds a query waits for the one connection before failing
# Deliveries are written by group commit (one connection whatever the load); the rest is the
# background: delivery jobs (8 at once per process), runs and sweeps.
POSTGRES_POOL = {"pool_size": 10, "max_overflow": 10, "pool_timeout": 30.0}


def utcnow() -> datetime:
    return datetime.now(UTC)


def async_url(url: str) -> URL:
    """The async-driver URL for a `sqlite:///...` or `postgresql://...` DATABASE_URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


class StoreBase:
    """The engine and what every table family shares. Construct a Store with `Store.open`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, url: str, *, schema: str | None = None) -> Self:
        """A store on `url` (no connection yet). `schema`, on PostgreSQL, is the search path:
        every table (and the migrations' version table) lives there (tests isolate with it)."""
        target = async_url(url)
        if target.get_backend_name() == "sqlite":
            if schema is not None:
                raise ValueError("a schema needs PostgreSQL")
            return cls(_sqlite_engine(target))
        connect_args = {"options": f"-csearch_path={schema}"} if schema is not None else {}
        engine = create_async_engine(
            target, pool_pre_ping=True, connect_args=connect_args, **POSTGRES_POOL
        )
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def migrate(self) -> None:
        """Bring the tables to the current schema (app.runs.schema); idempotent."""
        await migrate(self._engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def count(self, table: str) -> int:
        """Rows in a table (operators' stats and tests)."""
        target = metadata.tables[table]
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(target))).scalar_one())

    def _upsert_ignore(self, table: Table, keys: list[str], **values: Any) -> Insert:
        stmt: Any = self._insert(table).values(**values)
        return stmt.on_conflict_do_nothing(index_elements=keys)  # type: ignore[no-any-return]


class SingleWriterEngine(AsyncEngine):
    """SQLite with one writer: `begin()` (every write transaction of the store) waits its turn
    in this process, then takes SQLite's write lock at once (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes fails at once with "database is
    locked" when another connection wrote in between (SQLite cannot upgrade a stale snapshot,
    and the busy timeout does not apply); under many concurrent runs some write always comes
    between. Here a write transaction is immediate, so it either holds the lock or waits for
    it (busy timeout, for other processes), and the writers of this process queue in order
    on a lock rather than poll SQLite's busy handler. Reads (`connect()`) go on in parallel
    on their own connections (WAL: readers never block the writer).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine.sync_engine)
        # One lock per event loop (tests may use a store from more than one loop).
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _writer(self) -> asyncio.Lock:
        return self._writers.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer(), self.connect() as conn, conn.begin():
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn


def _sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in {"", ":memory:"}
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # One connection, so one writer: SQLite takes one writer at a time anyway, and writers
    # on separate connections wait for each other by polling (busy_timeout sleeps up to 100 ms
    # between tries), which under load adds whole seconds. Queued on one connection they take
    # turns in order instead; readers are short. An in-memory database must share its one
    # connection, or each would see its own.
    pool: dict[str, Any] = (
        {"poolclass": StaticPool}
        if in_memory
        else {"pool_size": 1, "max_overflow": 0, "pool_timeout": SQLITE_POOL_TIMEOUT}
    )
    engine = create_async_engine(url, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return SingleWriterEngine(engine)
