"""A PostgreSQL schema of one's own: every table (the store's, procrastinate's) lives in it.

DATABASE_URL carries `options=-csearch_path=<schema>`, so the store, procrastinate and a worker
subprocess all land there without knowing; the schema is dropped afterwards. Parallel test
sessions on the shared server never see each other's tables or jobs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from app.runs.store import Store
from tests.unavailable import unavailable

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class PostgresSchema:
    name: str
    url: str  # DATABASE_URL for this schema
    store: Store
    _admin: psycopg.AsyncConnection[Any]

    async def rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a query run in this schema (e.g. on procrastinate_jobs)."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            cursor = await conn.execute(query.encode(), params or None)
            return await cursor.fetchall() if cursor.description else []


class postgres_schema:
    """`async with postgres_schema() as pg:` a new schema with the store's tables; dropped after."""

    def __init__(self) -> None:
        self.name = f"test_{uuid.uuid4().hex[:16]}"
        self.url = f"{POSTGRES_URL}?options=-csearch_path%3D{self.name}"

    async def __aenter__(self) -> PostgresSchema:
        try:
            admin = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
        except psycopg.OperationalError as exc:
            unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
        await admin.execute(f'CREATE SCHEMA "{self.name}"'.encode())
        store = Store.open(self.url)
        await store.migrate()
        self.schema = PostgresSchema(self.name, self.url, store, admin)
        return self.schema

    async def __aexit__(self, *exc: object) -> None:
        await self.schema.store.close()
        admin = self.schema._admin
        await admin.execute(f'DROP SCHEMA "{self.name}" CASCADE'.encode())
        await admin.close()
