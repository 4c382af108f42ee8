"""The sandbox janitor: deletes the sandboxes no active run owns, hourly.

A run releases its sandbox when it ends (app.runs.lifecycle.end_run); what a crash, a failed
release or a lost `pull_request.closed` leaves behind is found here, by the labels every run's
sandbox carries (app.agent.nodes.common.sandbox_labels; Daytona lists only open-swe's own):

- a run's sandbox (`open-swe.run`): orphaned once that run has ended (a grace period after,
  so the run's own release goes first);
- a pull request's kept sandbox (`open-swe.thread`, no run: its follow-ups reuse it):
  orphaned once no run is active on the pull request and its last one ended longer ago than
  the retention period;
- a sandbox whose run or thread this store does not know is left alone: it is another
  deployment's, or a terminal run's (`open-swe run`), which keeps no record here.

Local sandboxes are also swept by directory: what an interrupted removal left (`.trash-*`),
and sandbox directories whose state file never got written (a crash while creating one).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog

from app.runs.store import Store
from app.runs.store.base import utcnow
from app.sandbox.local import LocalProvider
from app.sandbox.local_state import STATE_FILE, remove_tree
from app.sandbox.types import SandboxError, SandboxProvider

log = structlog.get_logger(__name__)

GRACE = timedelta(minutes=10)
RUN_LABEL, THREAD_LABEL = "open-swe.run", "open-swe.thread"
_LOCAL_LEFTOVER = re.compile(r"(\.trash-)?sbx-[0-9a-f]{12}(-[0-9a-f]{8})?")


@dataclass
class SandboxJanitor:
    """`await janitor()`: delete orphaned sandboxes; how many."""

    store: Store
    sandboxes: SandboxProvider
    kept_for: timedelta  # a pull request's kept sandbox, after its last run ended
    grace: timedelta = GRACE

    async def __call__(self) -> int:
        deleted = 0
        for sandbox in await asyncio.to_thread(self.sandboxes.find, {}):
            if not await self._orphaned(sandbox.labels):
                continue
            try:
                await asyncio.to_thread(sandbox.destroy)
            except SandboxError as exc:
                log.warning("cannot delete an orphaned sandbox", error=str(exc))
                continue
            log.info("deleted an orphaned sandbox", labels=dict(sandbox.labels))
            deleted += 1
        if isinstance(self.sandboxes, LocalProvider):
            deleted += await asyncio.to_thread(_sweep_directories, self.sandboxes.root, self.grace)
        return deleted

    async def _orphaned(self, labels: Mapping[str, str]) -> bool:
        now = utcnow()
        run_id, thread = labels.get(RUN_LABEL), labels.get(THREAD_LABEL)
        if run_id is not None:
            run = await self.store.run(run_id)
            return run is not None and not run.active and run.updated_at < now - self.grace
        if thread is not None:
            runs = await self.store.runs_on_thread(thread)
            if not runs or any(run.active for run in runs):
                return False
            return max(run.updated_at for run in runs) < now - self.kept_for
        return False


def _sweep_directories(root: Path, grace: timedelta) -> int:
    """Remove what interrupted removals and creations left under a local provider's root
    (only names the provider gives, untouched for the grace period)."""
    removed = 0
    oldest = time.time() - grace.total_seconds()
    for directory in root.iterdir():
        if not _LOCAL_LEFTOVER.fullmatch(directory.name) or not directory.is_dir():
            continue
        leftover = directory.name.startswith(".trash-") or not (directory / STATE_FILE).exists()
        if leftover and directory.stat().st_mtime < oldest:
            remove_tree(directory)
            log.info("removed a leftover sandbox directory", directory=directory.name)
            removed += 1
    return removed
