"""Runs' records (state, usage, when their pull request opened) from the checkpoints.

One checkpointer for the web layer, opened on first use and closed with the app. A finished
run's record never changes, so it is kept (bounded) once the run has been over for a minute
(its last checkpoint may be written just after its status); active runs are read each time.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from app.agent.checkpoint import open_checkpointer
from app.agent.history import RunKey, RunRecord, read_thread, split_runs
from app.config import Settings
from app.runs.models import Run
from app.runs.views import thread_runs

if TYPE_CHECKING:
    # Only named: langgraph is imported when the first record is read (app.agent.checkpoint).
    from langgraph.checkpoint.base import BaseCheckpointSaver

SETTLED_AFTER = timedelta(seconds=60)
MAX_KEPT = 20_000


class RunRecords:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._clock = clock
        self._kept: OrderedDict[str, RunRecord] = OrderedDict()
        self._stack = AsyncExitStack()
        self._saver: BaseCheckpointSaver[str] | None = None
        self._opening = asyncio.Lock()

    async def of(self, runs: Sequence[Run]) -> dict[str, RunRecord]:
        """The record of each run (an empty one for a run with no checkpoint yet)."""
        found: dict[str, RunRecord] = {}
        threads: dict[str, list[Run]] = defaultdict(list)
        for run in runs:
            kept = self._kept.get(run.id)
            if kept is not None:
                found[run.id] = kept
            else:
                threads[run.thread].append(run)
        if threads:
            saver = await self._checkpointer()
            for thread, wanted in threads.items():
                checkpoints = await read_thread(saver, thread)
                siblings = await thread_runs(self._engine, thread)
                records = split_runs(checkpoints, [RunKey(r.id, r.created_at) for r in siblings])
                for run in wanted:
                    record = records.get(run.id, RunRecord())
                    found[run.id] = record
                    self._keep_if_settled(run, record)
        return found

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._saver = None

    def _keep_if_settled(self, run: Run, record: RunRecord) -> None:
        if run.active or self._clock() - run.updated_at < SETTLED_AFTER:
            return
        self._kept[run.id] = record
        while len(self._kept) > MAX_KEPT:
            self._kept.popitem(last=False)

    async def _checkpointer(self) -> BaseCheckpointSaver[str]:
        async with self._opening:
            if self._saver is None:
                self._saver = await self._stack.enter_async_context(
                    open_checkpointer(self._settings)
                )
            return self._saver
