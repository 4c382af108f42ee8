"""Pacing of writes per installation: shared by its clients, asynchronous, urgent writes first."""

from __future__ import annotations

import asyncio
import threading
import time

from app.github.pacing import Pacer


async def test_writes_of_one_installation_are_a_second_apart_and_others_do_not_wait() -> None:
    pacer = Pacer(0.2)
    started = time.monotonic()
    times: dict[str, float] = {}

    async def write(name: str, installation: int) -> None:
        await pacer.write(installation)
        times[name] = time.monotonic() - started

    await asyncio.gather(write("a1", 1), write("a2", 1), write("a3", 1), write("b1", 2))
    assert times["b1"] < 0.1  # another installation has its own pace
    ordered = sorted(times[n] for n in ("a1", "a2", "a3"))
    assert ordered[0] < 0.1
    assert ordered[1] - ordered[0] >= 0.19
    assert ordered[2] - ordered[1] >= 0.19


async def test_waiting_holds_no_thread_and_urgent_writes_go_first() -> None:
    pacer = Pacer(0.2)
    order: list[str] = []
    await pacer.write(7)  # the slot is taken: everyone below waits

    async def write(name: str, *, urgent: bool) -> None:
        await pacer.write(7, urgent=urgent)
        order.append(name)

    threads = threading.active_count()
    background = [asyncio.create_task(write(f"status {i}", urgent=False)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert threading.active_count() == threads  # waiting is a sleep on the event loop
    await write("pull request", urgent=True)
    await asyncio.gather(*background)
    assert order[0] == "pull request"
    assert sorted(order[1:]) == ["status 0", "status 1", "status 2"]


async def test_an_interval_of_zero_never_waits() -> None:
    pacer = Pacer(0)
    started = time.monotonic()
    for _ in range(50):
        await pacer.write(1)
    assert time.monotonic() - started < 0.05
