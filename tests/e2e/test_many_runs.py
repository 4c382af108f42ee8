"""Many runs at once on one process: none fails with "database is locked", at any pool size.

The fleet of benchmarks.fleet: the real app in a child process (SQLite store and checkpointer,
in-process queue, local sandboxes) with asyncio's thread pool far larger than the default, so
that many runs write to SQLite at the same moment; the model answers at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.fleet import Fleet

pytestmark = pytest.mark.slow


async def test_fifty_runs_with_a_large_pool_each_open_exactly_one_pull_request(
    tmp_path: Path,
) -> None:
    fleet = Fleet(tmp_path, runs=50, delay=0.0, threads=64, warmup=0, probe=False, timeout=900)
    report = await fleet.run()

    assert report.problems() == []
    assert report.statuses == {"succeeded": 50}
    assert sorted(report.pulls_per_issue.values()) == [1] * 50
    assert not [e for e in report.errors if "locked" in e]
