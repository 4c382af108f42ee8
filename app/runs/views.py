"""Read-only queries for the dashboard, the API and /metrics, over the store's tables.

Nothing here writes. Every query of runs for a person takes their scope, the (installation id,
lower-cased repository) pairs they reach: a run outside it is never read for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.runs.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Run,
    RunStatus,
    commands,
    deliveries,
    runs,
)

DASHBOARD_PREFIX = "dashboard-"  # delivery ids of actions taken on the dashboard
Scope = Sequence[tuple[int, str]]  # (installation id, lower-cased "owner/repo")


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run with what started it."""

    run: Run
    trigger: str  # "label open-swe", "label open-swe-auto", "comment", "retry", ...


async def list_runs(
    engine: AsyncEngine,
    scope: Scope,
    *,
    repo: str | None = None,
    status: RunStatus | None = None,
    limit: int = 100,
) -> list[RunRow]:
    """The newest runs in `scope`, optionally of one repository and one status."""
    if not scope:
        return []
    installations = sorted({installation for installation, _ in scope})
    names = sorted({name for _, name in scope})
    query = (
        select(runs, deliveries.c.event, deliveries.c.action, commands.c.verb)
        .outerjoin(deliveries, deliveries.c.id == runs.c.delivery_id)
        .outerjoin(commands, commands.c.delivery_id == runs.c.delivery_id)
        .where(runs.c.installation_id.in_(installations), func.lower(runs.c.repo).in_(names))
        .order_by(runs.c.created_at.desc(), runs.c.id)
        .limit(limit)
    )
    if repo is not None:
        query = query.where(func.lower(runs.c.repo) == repo.lower())
    if status is not None:
        query = query.where(runs.c.status == status)
    allowed = set(scope)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = []
    for row in rows:
        data = dict(row._mapping)
        trigger = _trigger(data.pop("event"), data.pop("action"), data.pop("verb"), data)
        run = Run(**data)
        if (run.installation_id, run.repo.lower()) in allowed:
            found.append(RunRow(run, trigger))
    return found


async def run_row(engine: AsyncEngine, run_id: str) -> RunRow | None:
    query = (
        select(runs, deliveries.c.event, deliveries.c.action, commands.c.verb)
        .outerjoin(deliveries, deliveries.c.id == runs.c.delivery_id)
        .outerjoin(commands, commands.c.delivery_id == runs.c.delivery_id)
        .where(runs.c.id == run_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    data = dict(row._mapping)
    trigger = _trigger(data.pop("event"), data.pop("action"), data.pop("verb"), data)
    return RunRow(Run(**data), trigger)


async def runs_since(
    engine: AsyncEngine, repo: str, installation_id: int, since: datetime
) -> list[Run]:
    """A repository's runs started since `since`, oldest first."""
    query = (
        select(runs)
        .where(
            func.lower(runs.c.repo) == repo.lower(),
            runs.c.installation_id == installation_id,
            runs.c.created_at >= since,
        )
        .order_by(runs.c.created_at, runs.c.id)
    )
    async with engine.connect() as conn:
        return [Run(**row._mapping) for row in await conn.execute(query)]


async def thread_runs(engine: AsyncEngine, thread: str) -> list[Run]:
    """Every run on a thread, oldest first."""
    query = select(runs).where(runs.c.thread == thread).order_by(runs.c.created_at, runs.c.id)
    async with engine.connect() as conn:
        return [Run(**row._mapping) for row in await conn.execute(query)]


# For /metrics ---------------------------------------------------------------------------


async def delivery_counts(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    """Webhook deliveries recorded, by (event, outcome)."""
    query = select(deliveries.c.event, deliveries.c.outcome, func.count()).group_by(
        deliveries.c.event, deliveries.c.outcome
    )
    async with engine.connect() as conn:
        return {(event, outcome): int(n) for event, outcome, n in await conn.execute(query)}


async def run_counts(engine: AsyncEngine) -> dict[str, int]:
    """Runs by status."""
    query = select(runs.c.status, func.count()).group_by(runs.c.status)
    async with engine.connect() as conn:
        return {status: int(n) for status, n in await conn.execute(query)}


async def finished_runs(engine: AsyncEngine) -> list[Run]:
    """Every finished run (for durations and model usage)."""
    query = select(runs).where(runs.c.status.in_(FINISHED_STATUSES))
    async with engine.connect() as conn:
        return [Run(**row._mapping) for row in await conn.execute(query)]


async def active_runs(engine: AsyncEngine) -> list[Run]:
    query = select(runs).where(runs.c.status.in_(ACTIVE_STATUSES))
    async with engine.connect() as conn:
        return [Run(**row._mapping) for row in await conn.execute(query)]


async def procrastinate_jobs(engine: AsyncEngine, prefix: str) -> dict[tuple[str, str], int]:
    """procrastinate's jobs of this deployment's queues, by (queue without prefix, status)."""
    query = text(
        "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs"
        " WHERE queue_name LIKE :pattern GROUP BY 1, 2"
    )
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"
    async with engine.connect() as conn:
        rows = await conn.execute(query, {"pattern": pattern})
        return {(queue[len(prefix) + 1 :], status): int(n) for queue, status, n in rows}


async def unfinished_deliveries(engine: AsyncEngine) -> int:
    query = select(func.count()).where(
        and_(deliveries.c.processed_at.is_(None), deliveries.c.payload.is_not(None))
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def _trigger(event: Any, action: Any, verb: Any, run: dict[str, Any]) -> str:
    """What started a run, in a few words."""
    where = (
        " from the dashboard" if str(run["delivery_id"] or "").startswith(DASHBOARD_PREFIX) else ""
    )
    if verb == "retry":
        return f"retry{where}"
    if event == "issues" and action == "labeled":
        return "label open-swe-auto" if run["auto_approve"] else "label open-swe"
    if verb == "instruct" or event in {
        "issue_comment",
        "pull_request_review_comment",
        "pull_request_review",
    }:
        return "comment"
    return "unknown"
