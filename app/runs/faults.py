"""Waiting out a transient fault: when a faulted run tries again, and when it gives up.

A run that meets a transient fault (app.faults: the model API, GitHub or the database
unavailable) stops at its last checkpoint, keeps its sandbox and moves to `faulted`
(app.runs.lifecycle.Lifecycle.fault), its status comment saying what is unavailable and when it
tries again. The reaper (app.runs.reaper) resumes it then, from that checkpoint. Each try that
meets the fault again waits twice as long (honouring a Retry-After), until the fault has lasted
OPEN_SWE_TRANSIENT_RETRY_MINUTES: then the run fails, saying why and how to retry.

A fault met from a later checkpoint than the last one is a new fault: the run made progress
meanwhile, so its deadline starts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings
from app.faults import Transient

MAX_WAIT = 300.0  # seconds between two tries, at most
GAVE_UP = (
    "{what} stayed unavailable for {minutes} ({detail}); the run waited at its last step "
    "and gave up (OPEN_SWE_TRANSIENT_RETRY_MINUTES)"
)


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    """How a faulted run backs off: `first_wait` seconds, doubling up to MAX_WAIT, for at most
    `give_up_after`."""

    first_wait: float
    give_up_after: timedelta
    max_wait: float = MAX_WAIT

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultPolicy:
        return cls(
            first_wait=settings.transient_first_wait_seconds,
            give_up_after=timedelta(minutes=settings.transient_retry_minutes),
        )

    def next_try(
        self, since: datetime, tries: int, now: datetime, hint: float | None = None
    ) -> datetime | None:
        """When to try again after `tries` tries of a fault met `since`; None: give up. The
        last try is at the deadline, so a fault is waited out for the whole time allowed."""
        deadline = since + self.give_up_after
        if now >= deadline:
            return None
        wait = self.first_wait * 2.0 ** min(tries, 30)
        if hint is not None:
            wait = max(wait, hint)
        return min(now + timedelta(seconds=min(wait, self.max_wait)), deadline)

    def gave_up(self, fault: Transient) -> str:
        """Why a run that waited a fault out in vain failed (its status adds the retry hint)."""
        return GAVE_UP.format(
            what=fault.what, minutes=_minutes(self.give_up_after), detail=fault.detail
        )


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")
