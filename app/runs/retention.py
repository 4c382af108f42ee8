"""Retention (OPEN_SWE_RETENTION_DAYS): what ended longer ago than that is pruned, hourly.

- Deliveries: finished ones are deleted (their counts kept in the store's totals), except
  those that started a run, which only lose their payload. Never before GitHub stops
  redelivering them (three days) plus a margin: a redelivery must still find its id.
- Runs' checkpoints and commands: once every run of a thread (an issue or pull request) has
  ended, the thread's checkpoints and its commands go; the runs' model usage is added to the
  totals first, so /metrics keeps counting it. Run rows stay (the dashboard lists them).
- procrastinate's finished, failed, cancelled and aborted jobs of this deployment's queues.

Local sandboxes of ended runs, and any sandbox no active run owns, are the janitor's
(app.runs.janitor).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from app.agent.history import RunKey, read_thread, split_runs
from app.runs.store import Store
from app.runs.store.base import utcnow
from app.runs.store.retention import UsageTotals

if TYPE_CHECKING:  # only named: the caller opens the checkpointer
    from langgraph.checkpoint.base import BaseCheckpointSaver

log = structlog.get_logger(__name__)

DELIVERY_IDS_KEPT = timedelta(days=4)  # GitHub redelivers for three days; a day's margin
PruneJobs = Callable[[timedelta], Awaitable[None]]


@dataclass
class Retention:
    """`await retention()`: prune what ended more than `days` ago; how many rows went."""

    store: Store
    days: int
    checkpointer: BaseCheckpointSaver[str] | None = None
    prune_jobs: PruneJobs | None = None  # the queue's, when it keeps finished jobs

    async def __call__(self) -> int:
        keep = timedelta(days=self.days)
        cutoff = utcnow() - keep
        pruned = await self.store.prune_deliveries(
            received_before=min(cutoff, utcnow() - DELIVERY_IDS_KEPT)
        )
        pruned += await self.store.prune_ci(before=cutoff)
        while threads := await self.store.threads_to_prune(ended_before=cutoff):
            done = [await self._prune_thread(thread) for thread in threads]
            pruned += sum(done)
            if not any(done):
                break  # every one raced with a new run: next time
        if self.prune_jobs is not None:
            await self.prune_jobs(keep)
        return pruned

    async def _prune_thread(self, thread: str) -> int:
        """Fold the usage of the thread's ended runs into the totals, mark them pruned, delete
        their commands, then the thread's checkpoints (no run is active on it)."""
        ended = await self.store.runs_to_prune(thread)
        if not ended:
            return 0
        usage = UsageTotals()
        if self.checkpointer is not None:
            usage = await self._usage(thread, [run.id for run in ended])
        if not await self.store.mark_pruned(thread, [run.id for run in ended], usage):
            return 0  # a run started on the thread meanwhile: its checkpoints stay
        if self.checkpointer is not None:
            await self.checkpointer.adelete_thread(thread)
        log.info("pruned an ended thread", thread=thread, runs=len(ended))
        return len(ended)

    async def _usage(self, thread: str, run_ids: list[str]) -> UsageTotals:
        assert self.checkpointer is not None
        siblings = await self.store.runs_on_thread(thread)
        checkpoints = await read_thread(self.checkpointer, thread)
        records = split_runs(checkpoints, [RunKey(run.id, run.created_at) for run in siblings])
        usages = [records[run_id].usage for run_id in run_ids if run_id in records]
        return UsageTotals(
            input_tokens=sum(usage.input_tokens for usage in usages),
            output_tokens=sum(usage.output_tokens for usage in usages),
            cost_usd=sum(usage.cost_usd for usage in usages),
        )
