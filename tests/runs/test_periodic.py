"""Sweeps: the interval as a cron, the in-process loops, and procrastinate's periodic tasks."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from app.runs.dispatch import InProcessDispatcher
from app.runs.periodic import Sweep, SweepLoops, cron
from app.runs.queue import SWEEP_TASK
from tests.runs.test_dispatch import Jobs, until
from tests.runs.test_queue import Queue, queue  # noqa: F401  (the fixture)
from tests.runs.test_queue import until as eventually


class Ticks:
    """A sweep function that counts its calls and fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.count = 0
        self.fail = fail

    async def __call__(self) -> None:
        self.count += 1
        if self.fail:
            raise RuntimeError("the sweep broke")


def test_an_interval_becomes_a_cron_in_seconds_minutes_or_hours() -> None:
    assert cron(30) == "* * * * * */30"
    assert cron(60) == "*/1 * * * *"
    assert cron(600) == "*/10 * * * *"
    assert cron(7200) == "0 */2 * * *"
    for unsayable in (0.5, 90, 3660):
        with pytest.raises(ValueError, match="runs every whole"):
            cron(unsayable)


def test_a_sweep_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        Sweep("never", every=0, run=Ticks())


async def test_loops_tick_until_closed_and_a_failing_sweep_keeps_ticking() -> None:
    good, bad = Ticks(), Ticks(fail=True)
    loops = SweepLoops()
    loops.add(Sweep("good", every=0.01, run=good))
    loops.add(Sweep("bad", every=0.01, run=bad))
    with pytest.raises(ValueError, match="already registered"):
        loops.add(Sweep("good", every=1, run=good))
    assert good.count == 0  # nothing before start
    with capture_logs() as logs:
        loops.start()
        await until(lambda: good.count >= 3 and bad.count >= 3)
        await loops.aclose()
    seen = good.count
    await asyncio.sleep(0.05)
    assert good.count == seen  # closed: no more ticks
    assert any(e["event"] == "sweep failed" and e["sweep"] == "bad" for e in logs)


async def test_the_in_process_queue_runs_its_sweeps_while_started() -> None:
    ticks = Ticks()
    in_process = InProcessDispatcher(run_job=Jobs(), max_concurrent_runs=1)
    in_process.schedule(Sweep("count", every=0.01, run=ticks))
    await asyncio.sleep(0.03)
    assert ticks.count == 0  # registered, not started
    await in_process.start(Jobs())
    await until(lambda: ticks.count >= 2)
    await in_process.aclose()
    seen = ticks.count
    await asyncio.sleep(0.05)
    assert ticks.count == seen


@pytest.mark.postgres
async def test_procrastinate_runs_a_sweep_once_per_tick_across_workers(
    queue: Queue,  # noqa: F811
) -> None:
    ticks = Ticks()
    enqueuer = await queue.dispatcher(worker=None)  # registers no sweep of its own
    assert SWEEP_TASK.format(name="count") not in enqueuer._app.tasks
    sweep = Sweep("count", every=1, run=ticks)
    for _ in range(2):  # two workers with the sweep
        await queue.dispatcher(sweeps=[sweep])
    with pytest.raises(ValueError, match="already registered"):
        queue.opened[-1].schedule(sweep)
    await eventually(lambda: ticks.count >= 3, within=20)
    [(deferred, distinct)] = await queue.pg.rows(
        "SELECT count(*), count(DISTINCT defer_timestamp) FROM procrastinate_periodic_defers"
        " WHERE task_name = %s",
        SWEEP_TASK.format(name="count"),
    )
    assert deferred == distinct  # one job per tick, whichever worker deferred it
