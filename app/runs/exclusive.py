"""One in-process queue per database: a second process refuses to start rather than run the
same runs twice (finding 11).

The in-process queue keeps its jobs in memory: two processes on one database would each
resubmit, sweep and resume the same runs. `sole_queue` holds, for the life of the queue, a
lock only one process can have: on PostgreSQL a session advisory lock (keyed by the schema and
the queue prefix, so isolated deployments sharing a server do not collide), released by
PostgreSQL when the holder's connection ends, even if it dies; on SQLite an exclusive `flock`
on a file beside the database, released by the kernel likewise. Several processes on
PostgreSQL share the work through procrastinate instead (OPEN_SWE_QUEUE=procrastinate).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from app.config import Settings

LOCK_SUFFIX = ".queue-lock"
_KEY = "open-swe:inprocess-queue:{prefix}:"  # + the schema, in SQL
QUEUE_IN_USE = (
    "another open-swe process already runs the in-process queue on this database ({where}); "
    "two would run the same runs twice. Stop it first, or, to share the work between "
    "processes, use PostgreSQL with OPEN_SWE_QUEUE=procrastinate"
)


class QueueInUse(RuntimeError):
    """Another process holds this database's in-process queue."""


@asynccontextmanager
async def sole_queue(settings: Settings) -> AsyncIterator[None]:
    """Hold the database's in-process queue lock while inside; QueueInUse when taken."""
    if settings.uses_postgres:
        async with _advisory_lock(settings):
            yield
        return
    database = make_url(settings.database_url).database
    if not database or database == ":memory:":
        yield  # a private database: nobody else can share it
        return
    with _file_lock(Path(database).with_name(Path(database).name + LOCK_SUFFIX)):
        yield


@asynccontextmanager
async def _advisory_lock(settings: Settings) -> AsyncIterator[None]:
    url = make_url(settings.database_url).set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        key = _KEY.format(prefix=settings.queue_prefix)
        cursor = await conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s || current_schema())), current_schema()",
            (key,),
        )
        row = await cursor.fetchone()
        if row is None or not row[0]:
            where = f"{url.host}/{url.database}, schema {row[1] if row else '?'}"
            raise QueueInUse(QUEUE_IN_USE.format(where=where))
        yield  # the lock ends with the connection


class _file_lock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise QueueInUse(QUEUE_IN_USE.format(where=self._path.with_suffix(""))) from None
        self._fd = fd

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
