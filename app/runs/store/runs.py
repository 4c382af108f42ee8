"""Runs: one row per run. Only app.runs.lifecycle changes a run's status."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.runs.models import (
    ACTIVE_STATUSES,
    RESUMABLE_STATUSES,
    ActiveRunExists,
    Run,
    RunKind,
    RunStatus,
    StoredCommand,
    commands,
    runs,
)
from app.runs.store.base import StoreBase, utcnow


class RunStore(StoreBase):
    """The `runs` table."""

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
            now = utcnow()
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
        close_plan_question: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Run | None:
        """Move a run in one of the `expected` (active) statuses to `status`; None if the run
        is unknown or in another status (e.g. already finished). app.runs.lifecycle is the one
        caller in the app: it names each move's statuses.

        A finished run stays finished (a retry is a new run), so a late update from a
        cancelled task cannot bring a stopped run back. `expected` makes it a compare-and-set
        for callers racing each other (a stop that must not finish a run that parked).
        """
        allowed = [s for s in expected if s in ACTIVE_STATUSES]
        values: dict[str, Any] = {"status": status, "error": error, "updated_at": utcnow()}
        if close_plan_question:
            values["plan_question"] = None
        values.update(extra or {})  # e.g. a fault's timing (app.runs.faults)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(runs).where(runs.c.id == run_id, runs.c.status.in_(allowed)).values(values)
            )
            if result.rowcount != 1:
                return None
            return await _one_run(conn, runs.c.id == run_id)

    async def set_status_comment(self, run_id: str, comment_id: int) -> None:
        await self._update_run(run_id, status_comment_id=comment_id)

    async def set_pr_number(self, run_id: str, pr_number: int) -> None:
        await self._update_run(run_id, pr_number=pr_number)

    async def set_plan_question(self, run_id: str, revision: int) -> bool:
        """Record that the run's plan (this revision) waits for an answer, if the run is still
        running; False otherwise."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(plan_question=revision, updated_at=utcnow())
            )
        return result.rowcount == 1

    async def take_plan_answer(
        self,
        run_id: str,
        verbs: Collection[str],
        accept: Callable[[StoredCommand], bool],
    ) -> StoredCommand | None:
        """In one transaction: consume the oldest pending command of the run with one of
        `verbs` (a stop before any other) that `accept`s, and move the run from waiting to
        running, its plan question closed. Commands `accept` refuses are consumed all the
        same. None when nothing was taken; when the run no longer waits, nothing changes."""
        try:
            async with self._engine.begin() as conn:
                query = (
                    select(commands)
                    .where(
                        commands.c.run_id == run_id,
                        commands.c.consumed_at.is_(None),
                        commands.c.verb.in_(list(verbs)),
                    )
                    .order_by(commands.c.id)
                )
                found = [StoredCommand(**row._mapping) for row in await conn.execute(query)]
                for command in sorted(found, key=lambda c: c.verb != "stop"):  # stable
                    consumed = await conn.execute(
                        update(commands)
                        .where(commands.c.id == command.id, commands.c.consumed_at.is_(None))
                        .values(consumed_at=utcnow())
                    )
                    if consumed.rowcount != 1 or not accept(command):
                        continue  # another taker had it, or it carries nothing to act on
                    moved = await conn.execute(
                        update(runs)
                        .where(runs.c.id == run_id, runs.c.status == "waiting")
                        .values(status="running", plan_question=None, updated_at=utcnow())
                    )
                    if moved.rowcount != 1:
                        raise _NoLongerWaiting
                    return command
        except _NoLongerWaiting:
            return None  # rolled back: the answer stays for whoever handles the run now
        return None

    async def runs_to_resume(self) -> list[Run]:
        """Runs a job must go on with after a (re)start: queued, running (interrupted) or
        suspended, oldest first."""
        query = (
            select(runs).where(runs.c.status.in_(RESUMABLE_STATUSES)).order_by(runs.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def queued_runs(self, *, created_before: datetime) -> list[Run]:
        """Runs still queued that were started before `created_before`, oldest first."""
        query = (
            select(runs)
            .where(runs.c.status == "queued", runs.c.created_at < created_before)
            .order_by(runs.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def runs_in(
        self, statuses: Collection[RunStatus], *, updated_before: datetime
    ) -> list[Run]:
        """Runs in one of `statuses` last changed before `updated_before`, oldest first (the
        reaper's look-up)."""
        query = (
            select(runs)
            .where(runs.c.status.in_(list(statuses)), runs.c.updated_at < updated_before)
            .order_by(runs.c.updated_at)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def faulted_runs_due(self, now: datetime) -> list[Run]:
        """Faulted runs whose next try is due, oldest first."""
        query = (
            select(runs)
            .where(runs.c.status == "faulted", runs.c.retry_at <= now)
            .order_by(runs.c.retry_at)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def active_runs_of_installation(self, installation_id: int) -> list[Run]:
        """The installation's active runs, oldest first."""
        query = (
            select(runs)
            .where(runs.c.installation_id == installation_id, runs.c.status.in_(ACTIVE_STATUSES))
            .order_by(runs.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [Run(**row._mapping) for row in await conn.execute(query)]

    async def _update_run(self, run_id: str, **values: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(runs).where(runs.c.id == run_id).values(updated_at=utcnow(), **values)
            )


class _NoLongerWaiting(Exception):
    """Rolls back take_plan_answer."""


async def _one_run(conn: AsyncConnection, *where: Any) -> Run | None:
    row = (await conn.execute(select(runs).where(*where).limit(1))).first()
    return Run(**row._mapping) if row else None
