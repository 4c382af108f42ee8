"""Pacing of GitHub writes per installation, asynchronous.

GitHub asks integrations to leave at least a second between mutating requests (POST, PATCH,
PUT, DELETE) and to make them serially. PyGithub can do that per client, with `time.sleep` in
whatever thread makes the call: every run's client then paces alone (two runs of one
installation write twice as fast as asked), and a sleeping call holds one of the few worker
threads. Here the pace belongs to the installation, shared by every run and handler of this
process, and waiting is an `asyncio.sleep`: no thread is held.

Writes a run needs in order to go on (opening its pull request) are `urgent`: they take the
next free slot before any background write (reactions, status comment edits, the plan of an
auto-approved run) that is waiting for one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# `await pace(urgent=False)`: wait for a write slot of the client's installation.
Pace = Callable[..., Awaitable[None]]
WRITE_INTERVAL = 1.0  # seconds between two writes of one installation (GitHub's guidance)


@dataclass
class _Lane:
    next_free: float = float("-inf")  # when the installation may write again
    urgent_waiting: int = 0


class Pacer:
    """One per process (GitHubApp holds it); `interval` 0 turns pacing off (tests)."""

    def __init__(
        self,
        interval: float = WRITE_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lanes: dict[int, _Lane] = {}

    async def write(self, installation_id: int, *, urgent: bool = False) -> None:
        """Wait for the installation's next write slot and take it (the caller writes now)."""
        if self.interval <= 0:
            return
        lane = self._lanes.setdefault(installation_id, _Lane())
        if urgent:
            lane.urgent_waiting += 1
        try:
            while True:
                now = self._clock()
                wait = lane.next_free - now
                if wait <= 0 and (urgent or lane.urgent_waiting == 0):
                    lane.next_free = now + self.interval
                    return
                # Checked again after the wait: another writer may have taken the slot.
                await self._sleep(max(wait, self.interval / 20))
        finally:
            if urgent:
                lane.urgent_waiting -= 1

    def pace_for(self, installation_id: int) -> Pace:
        """`await pace(urgent=...)` for one installation (what its clients carry)."""

        async def pace(*, urgent: bool = False) -> None:
            await self.write(installation_id, urgent=urgent)

        return pace


async def unpaced(*, urgent: bool = False) -> None:
    """The pace of a client that has no installation (a user token, tests)."""
