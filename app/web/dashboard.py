"""What the pages and the API show a person: runs they may see, a run, a repository's totals.

Every read goes through the viewer's access: a run outside it is "not found", exactly like a
run that does not exist, so nobody learns what they cannot see.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import get_args

from app.agent.history import RunRecord
from app.config import Settings
from app.runs.models import FINISHED_STATUSES, Run, RunStatus
from app.runs.store import Store
from app.runs.views import RunRow, list_runs, run_row, runs_since
from app.web.access import Access
from app.web.records import RunRecords
from app.web.run_view import Action, RunView

STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
PERIODS = (7, 30, 90)  # days a repository's totals can cover
LIST_LIMIT = 100


def parse_status(value: str | None) -> RunStatus | None:
    """A run status named in a query, or None (any status) for anything else."""
    return next((status for status in STATUSES if status == value), None)


@dataclass(frozen=True)
class RepoTotals:
    repo: str
    days: int
    runs: int
    succeeded: int
    failed: int
    stopped: int
    active: int
    pull_requests: int
    median_to_pr_seconds: float | None  # trigger to pull request, over the runs that opened one
    cost_usd: float
    cost_per_pr_usd: float | None


class Dashboard:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        records: RunRecords,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._store = store
        self._records = records
        self._clock = clock

    async def runs(
        self, access: Access, *, repo: str | None = None, status: RunStatus | None = None
    ) -> list[RunView]:
        rows = await list_runs(
            self._store.engine, access.scope, repo=repo, status=status, limit=LIST_LIMIT
        )
        records = await self._records.of([row.run for row in rows])
        return [self._view(row, records[row.run.id]) for row in rows]

    async def run(self, access: Access, run_id: str) -> RunView | None:
        """The run, with what this person may do to it; None if they cannot see it."""
        row = await run_row(self._store.engine, run_id)
        if row is None or not access.sees(row.run):
            return None
        records = await self._records.of([row.run])
        actions = await self.allowed(access, row) if access.can_act(row.run) else ()
        return self._view(row, records[row.run.id], actions)

    @property
    def store(self) -> Store:
        return self._store

    async def visible(self, access: Access, run_id: str) -> Run | None:
        """The run if this person may see it (its row only: cheap enough for each poll)."""
        run = await self._store.run(run_id)
        return run if run is not None and access.sees(run) else None

    async def allowed(self, access: Access, row: RunRow) -> tuple[Action, ...]:
        """What the buttons offer now (the action itself checks again, with the App)."""
        run = row.run
        if not access.can_act(run):
            return ()
        if run.status == "waiting":
            return ("approve", "revise", "stop")
        if run.active:
            return ("stop",)
        latest = await self._store.latest_run(run.thread)
        if run.status in FINISHED_STATUSES and latest is not None and latest.id == run.id:
            return ("retry",)
        return ()

    async def totals(self, access: Access, repo: str, days: int) -> RepoTotals | None:
        grant = access.grant(repo)
        if grant is None:
            return None
        since = self._clock() - timedelta(days=days)
        runs = await runs_since(self._store.engine, grant.full_name, grant.installation_id, since)
        records = await self._records.of(runs)
        by_status = {status: sum(run.status == status for run in runs) for status in STATUSES}
        to_pr = []
        prs = 0
        for run in runs:
            if run.kind != "issue" or run.pr_number is None:
                continue
            prs += 1
            opened = records[run.id].pr_opened_at
            if opened is not None:
                to_pr.append(max(0.0, (opened - run.created_at).total_seconds()))
        cost = sum(record.usage.cost_usd for record in records.values())
        return RepoTotals(
            repo=grant.full_name,
            days=days,
            runs=len(runs),
            succeeded=by_status["succeeded"],
            failed=by_status["failed"],
            stopped=by_status["stopped"],
            active=sum(run.active for run in runs),
            pull_requests=prs,
            median_to_pr_seconds=statistics.median(to_pr) if to_pr else None,
            cost_usd=cost,
            cost_per_pr_usd=cost / prs if prs else None,
        )

    def _view(self, row: RunRow, record: RunRecord, actions: tuple[Action, ...] = ()) -> RunView:
        return RunView(
            row,
            record,
            web_url=self._settings.github_web_url,
            now=self._clock(),
            max_test_attempts=self._settings.max_test_attempts,
            actions=actions,
        )
