"""A throwaway PostgreSQL schema for one benchmark run, dropped afterwards.

Its DATABASE_URL carries `options=-csearch_path=<schema>`, so the store's tables and the
procrastinate queue's all land there without knowing, and other users of the database never
see them.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

DEFAULT_URL = "postgresql://127.0.0.1:5432/test"


class ThrowawaySchema:
    """`create()` makes a fresh schema (or says why it cannot); `drop()` removes it and its tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self.server_version: str | None = None
        self._created = False

    @property
    def database_url(self) -> str:
        """DATABASE_URL for this schema."""
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}options=-csearch_path%3D{self.name}"

    def create(self) -> str | None:
        """None once the schema exists; else why PostgreSQL cannot be used (unreachable...)."""
        try:
            with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.name)))
                version = conn.info.server_version
        except psycopg.Error as exc:
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        self.server_version = f"{version // 10000}.{version % 10000}"
        self._created = True
        return None

    def drop(self) -> None:
        if not self._created:
            return
        with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.name)))
        self._created = False
