"""Commands: the inbox of each thread (issue or pull request), one row per accepted command."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from app.runs.models import StoredCommand, commands
from app.runs.store.base import StoreBase, utcnow


class CommandStore(StoreBase):
    """The `commands` table."""

    async def add_command(
        self,
        *,
        thread: str,
        run_id: str | None,
        verb: str,
        text: str,
        author: str,
        source: str,
        delivery_id: str,
        comment_id: int | None = None,
        path: str | None = None,
        line: int | None = None,
        consumed: bool = False,
    ) -> StoredCommand:
        """Record a command once per delivery (a redelivery returns the first record)."""
        now = utcnow()
        stmt = self._upsert_ignore(
            commands,
            ["delivery_id"],
            thread=thread,
            run_id=run_id,
            verb=verb,
            text=text,
            author=author,
            source=source,
            comment_id=comment_id,
            path=path,
            line=line,
            delivery_id=delivery_id,
            created_at=now,
            consumed_at=now if consumed else None,
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
            row = (
                await conn.execute(select(commands).where(commands.c.delivery_id == delivery_id))
            ).one()
        return StoredCommand(**row._mapping)

    async def command(self, delivery_id: str) -> StoredCommand | None:
        """The command a delivery carried, if one was recorded."""
        query = select(commands).where(commands.c.delivery_id == delivery_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return StoredCommand(**row._mapping) if row else None

    async def pending_commands(self, thread: str) -> list[StoredCommand]:
        """Commands on a thread not consumed yet, in arrival order."""
        query = (
            select(commands)
            .where(commands.c.thread == thread, commands.c.consumed_at.is_(None))
            .order_by(commands.c.id)
        )
        async with self._engine.connect() as conn:
            return [StoredCommand(**row._mapping) for row in await conn.execute(query)]

    async def consume_command(self, command_id: int, *, run_id: str | None = None) -> bool:
        """Mark a command consumed; False if it already was (two consumers never both act).

        With `run_id`, the command is also bound to that run (the run that took it).
        """
        values: dict[str, Any] = {"consumed_at": utcnow()}
        if run_id is not None:
            values["run_id"] = run_id
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(commands)
                .where(commands.c.id == command_id, commands.c.consumed_at.is_(None))
                .values(**values)
            )
        return result.rowcount == 1

    async def commands_of(self, run_ids: Iterable[str], verb: str) -> list[StoredCommand]:
        """The commands with `verb` bound to any of these runs, in arrival order."""
        query = (
            select(commands)
            .where(commands.c.run_id.in_(list(run_ids)), commands.c.verb == verb)
            .order_by(commands.c.id)
        )
        async with self._engine.connect() as conn:
            return [StoredCommand(**row._mapping) for row in await conn.execute(query)]

    async def retried_run_id(self, delivery_id: str) -> str | None:
        """The run that a `retry` command, received in this delivery, asked to retry."""
        query = select(commands.c.run_id).where(
            commands.c.delivery_id == delivery_id, commands.c.verb == "retry"
        )
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return str(found) if found is not None else None
