"""Installations of the App and the repositories each may work on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update

from app.runs.models import Installation, installation_repos, installations
from app.runs.store.base import StoreBase, utcnow


class InstallationStore(StoreBase):
    """The `installations` and `installation_repos` tables."""

    async def save_installation(
        self, installation_id: int, *, account: str | None, account_type: str | None
    ) -> None:
        """Record an installation as active (created, or learned from GitHub)."""
        now = utcnow()
        stmt: Any = self._insert(installations).values(
            id=installation_id,
            account=account,
            account_type=account_type,
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "account": account,
                "account_type": account_type,
                "updated_at": now,
                "deleted_at": None,
                "suspended_at": None,
            },
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def delete_installation(self, installation_id: int) -> None:
        """Mark an installation deleted (triggers from it are refused) and forget its repos."""
        now = utcnow()
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(installation_repos).where(
                    installation_repos.c.installation_id == installation_id
                )
            )
            await conn.execute(
                update(installations)
                .where(installations.c.id == installation_id)
                .values(deleted_at=now, updated_at=now)
            )

    async def set_installation_suspended(self, installation_id: int, suspended: bool) -> None:
        now = utcnow()
        async with self._engine.begin() as conn:
            await conn.execute(
                update(installations)
                .where(installations.c.id == installation_id)
                .values(suspended_at=now if suspended else None, updated_at=now)
            )

    async def installation(self, installation_id: int) -> Installation | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(installations).where(installations.c.id == installation_id)
                )
            ).first()
        return Installation(**row._mapping) if row else None

    async def add_installation_repos(
        self, installation_id: int, repos: Iterable[tuple[int, str]]
    ) -> None:
        """Record (repo id, full name) pairs for an installation; a rename updates the name."""
        async with self._engine.begin() as conn:
            for repo_id, full_name in repos:
                stmt: Any = self._insert(installation_repos).values(
                    installation_id=installation_id, repo_id=repo_id, full_name=full_name
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["installation_id", "repo_id"], set_={"full_name": full_name}
                )
                await conn.execute(stmt)

    async def remove_installation_repos(
        self, installation_id: int, repo_ids: Iterable[int]
    ) -> None:
        ids = list(repo_ids)
        if not ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(installation_repos).where(
                    installation_repos.c.installation_id == installation_id,
                    installation_repos.c.repo_id.in_(ids),
                )
            )

    async def installation_repos(self, installation_id: int) -> list[str]:
        query = (
            select(installation_repos.c.full_name)
            .where(installation_repos.c.installation_id == installation_id)
            .order_by(installation_repos.c.full_name)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())
