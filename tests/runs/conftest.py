"""A fresh store per test, on SQLite and (marked `postgres`) on PostgreSQL.

PostgreSQL tests each get their own schema, dropped afterwards, so parallel test sessions on
the shared server never see each other's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.runs.store import Store
from tests.unavailable import unavailable

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(f"sqlite:///{tmp_path / 'data' / 'store.db'}")
        await opened.migrate()
        yield opened
        await opened.close()
        return
    async with postgres_store() as opened:
        yield opened


class postgres_store:
    """A store in a new PostgreSQL schema, dropped on exit."""

    def __init__(self) -> None:
        self.schema = f"test_{uuid.uuid4().hex[:16]}"
        self.store = Store.open(POSTGRES_URL, schema=self.schema)

    async def __aenter__(self) -> Store:
        try:
            async with self.store.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        except OperationalError as exc:
            await self.store.close()
            unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc.orig}")
        await self.store.migrate()
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        await self.store.close()
