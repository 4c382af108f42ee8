"""The durable store: deliveries, installations, runs and the per-thread command inbox.

SQLAlchemy Core on async engines: `sqlite+aiosqlite` (WAL) for the embedded default,
`postgresql+psycopg` when DATABASE_URL names PostgreSQL. Every write that must not happen twice
(a delivery, a run per thread, a command per delivery) is guarded by a key in the database, not
by a check-then-act in Python.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from app.runs.models import (
    ACTIVE_STATUSES,
    ActiveRunExists,
    Delivery,
    Installation,
    Run,
    RunKind,
    RunStatus,
    StoredCommand,
    commands,
    deliveries,
    installation_repos,
    installations,
    metadata,
    runs,
)
from app.runs.schema import migrate

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never block the writer; fast commits
    "PRAGMA synchronous=FULL",  # fsync each commit: an acknowledged delivery survives power loss
    "PRAGMA busy_timeout=10000",  # wait for a concurrent writer instead of failing
    "PRAGMA foreign_keys=ON",
)


def _now() -> datetime:
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


class Store:
    """All persistence. Construct with `Store.open(url)`; call `migrate()` once at start-up."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, url: str, *, schema: str | None = None) -> Store:
        """A store on `url` (no connection yet). `schema`, on PostgreSQL, is the search path:
        every table (and the migrations' version table) lives there (tests isolate with it)."""
        target = async_url(url)
        if target.get_backend_name() == "sqlite":
            if schema is not None:
                raise ValueError("a schema needs PostgreSQL")
            return cls(_sqlite_engine(target))
        connect_args = {"options": f"-csearch_path={schema}"} if schema is not None else {}
        return cls(create_async_engine(target, pool_pre_ping=True, connect_args=connect_args))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def migrate(self) -> None:
        """Bring the tables to the current schema (app.runs.schema); idempotent."""
        await migrate(self._engine)

    async def close(self) -> None:
        await self._engine.dispose()

    def _upsert_ignore(self, table: Table, keys: list[str], **values: Any) -> Insert:
        stmt: Any = self._insert(table).values(**values)
        return stmt.on_conflict_do_nothing(index_elements=keys)  # type: ignore[no-any-return]

    # Deliveries -------------------------------------------------------------------------

    async def record_delivery(
        self,
        *,
        delivery_id: str,
        event: str,
        action: str | None,
        installation_id: int | None,
        repo: str | None,
        outcome: str,
        detail: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a delivery once; False if its id was seen before (a redelivery).

        A delivery with a payload needs background work: it stays unfinished until
        `finish_delivery`. One without is finished on arrival (ignored, ping).
        """
        now = _now()
        stmt = self._upsert_ignore(
            deliveries,
            ["id"],
            id=delivery_id,
            event=event,
            action=action,
            installation_id=installation_id,
            repo=repo,
            received_at=now,
            outcome=outcome,
            detail=detail,
            payload=dict(payload) if payload is not None else None,
            processed_at=None if payload is not None else now,
        )
        async with self._engine.begin() as conn:
            # RETURNING yields a row only when inserted (rowcount is unreliable for INSERT).
            inserted = (await conn.execute(stmt.returning(deliveries.c.id))).first()
        return inserted is not None

    async def delivery(self, delivery_id: str) -> Delivery | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))
            ).first()
        return Delivery(**row._mapping) if row else None

    async def finish_delivery(
        self, delivery_id: str, outcome: str, detail: str | None = None
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(outcome=outcome, detail=detail, processed_at=_now())
            )

    async def unfinished_deliveries(self) -> list[str]:
        """Ids of deliveries accepted for background work but not finished, oldest first."""
        query = (
            select(deliveries.c.id)
            .where(deliveries.c.processed_at.is_(None), deliveries.c.payload.is_not(None))
            .order_by(deliveries.c.received_at)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def set_delivery_reply(self, delivery_id: str, comment_id: int) -> None:
        """Remember the answer posted for a delivery, so reprocessing never posts it twice."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(reply_comment_id=comment_id)
            )

    # Installations ----------------------------------------------------------------------

    async def save_installation(
        self, installation_id: int, *, account: str | None, account_type: str | None
    ) -> None:
        """Record an installation as active (created, or learned from GitHub)."""
        now = _now()
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
        now = _now()
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
        now = _now()
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

    # Runs -------------------------------------------------------------------------------

    async def start_run(
        self,
        *,
        thread: str,
        repo: str,
        number: int,
        kind: RunKind,
        installation_id: int,
        requested_by: str,
        auto_approve: bool,
        delivery_id: str | None,
    ) -> Run | ActiveRunExists:
        """Create a queued run, unless the thread has an active one (then that one is returned).

        Idempotent per delivery: the same delivery_id returns the run it already started.
        """
        for _ in range(3):  # the active run may finish between the failed insert and the look-up
            now = _now()
            run_id = uuid.uuid4().hex
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        runs.insert().values(
                            id=run_id,
                            thread=thread,
                            repo=repo,
                            number=number,
                            kind=kind,
                            installation_id=installation_id,
                            requested_by=requested_by,
                            auto_approve=auto_approve,
                            status="queued",
                            created_at=now,
                            updated_at=now,
                            delivery_id=delivery_id,
                        )
                    )
            except IntegrityError:
                async with self._engine.connect() as conn:
                    if delivery_id is not None:
                        same = await _one_run(conn, runs.c.delivery_id == delivery_id)
                        if same is not None:
                            return same
                    active = await _one_run(
                        conn, runs.c.thread == thread, runs.c.status.in_(ACTIVE_STATUSES)
                    )
                if active is not None:
                    return ActiveRunExists(active)
                continue
            started = await self.run(run_id)
            assert started is not None
            return started
        raise RuntimeError(f"could not start a run on {thread}: the thread keeps changing")

    async def run(self, run_id: str) -> Run | None:
        async with self._engine.connect() as conn:
            return await _one_run(conn, runs.c.id == run_id)

    async def active_run(self, thread: str) -> Run | None:
        async with self._engine.connect() as conn:
            return await _one_run(conn, runs.c.thread == thread, runs.c.status.in_(ACTIVE_STATUSES))

    async def runs_on_thread(self, thread: str) -> list[Run]:
        """Every run on a thread, newest first."""
        query = (
            select(runs)
            .where(runs.c.thread == thread)
            .order_by(runs.c.created_at.desc(), runs.c.id)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def latest_run(self, thread: str) -> Run | None:
        found = await self.runs_on_thread(thread)
        return found[0] if found else None

    async def run_for_pull(self, repo: str, pr_number: int) -> Run | None:
        """The newest run that opened pull request `pr_number` in `repo`."""
        query = (
            select(runs)
            .where(runs.c.repo == repo, runs.c.pr_number == pr_number)
            .order_by(runs.c.created_at.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return Run(**row._mapping) if row else None

    async def set_run_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: str | None = None,
        expected: Collection[RunStatus] = ACTIVE_STATUSES,
    ) -> Run | None:
        """Move a run in one of the `expected` (active) statuses to `status`; None if the run
        is unknown or in another status (e.g. already finished).

        A finished run stays finished (a retry is a new run), so a late update from a
        cancelled task cannot bring a stopped run back. `expected` makes it a compare-and-set
        for callers racing the run's job (a stop that must not finish a run that parked).
        """
        allowed = [s for s in expected if s in ACTIVE_STATUSES]
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status.in_(allowed))
                .values(status=status, error=error, updated_at=_now())
            )
            if result.rowcount != 1:
                return None
            return await _one_run(conn, runs.c.id == run_id)

    async def set_status_comment(self, run_id: str, comment_id: int) -> None:
        await self._update_run(run_id, status_comment_id=comment_id)

    async def set_pr_number(self, run_id: str, pr_number: int) -> None:
        await self._update_run(run_id, pr_number=pr_number)

    async def runs_to_resume(self) -> list[Run]:
        """Queued or running runs (e.g. interrupted by a restart), oldest first."""
        query = (
            select(runs).where(runs.c.status.in_(("queued", "running"))).order_by(runs.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def _update_run(self, run_id: str, **values: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(runs).where(runs.c.id == run_id).values(updated_at=_now(), **values)
            )

    # Commands (the inbox of each thread) -------------------------------------------------

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
        now = _now()
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
        values: dict[str, Any] = {"consumed_at": _now()}
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

    async def count(self, table: str) -> int:
        """Rows in a table (operators' stats and tests)."""
        target = metadata.tables[table]
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(target))).scalar_one())


async def _one_run(conn: AsyncConnection, *where: Any) -> Run | None:
    row = (await conn.execute(select(runs).where(*where).limit(1))).first()
    return Run(**row._mapping) if row else None


def _sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in {"", ":memory:"}
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        # One shared connection for an in-memory database, or each would see its own.
        **({"poolclass": StaticPool} if in_memory else {}),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return engine
