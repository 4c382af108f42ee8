"""Jobs that meet a transient fault are tried again: what counts as transient, and when to try.

A job raises `TryAgain` when what failed will likely work later (GitHub answering 5xx or rate
limiting, a connection that could not be made, the database gone for a moment); both queues
then run it again after the wait `RetryPolicy` gives, growing each time, honouring the
`Retry-After` GitHub sent. Anything else is the job's own business (it records its error).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from app.faults import transient

log = structlog.get_logger(__name__)


class TryAgain(Exception):
    """A job met a transient fault: its queue runs it again later (see RetryPolicy)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and when a job that raised TryAgain is run again."""

    attempts: int = 8  # tries in all, the first one included
    first_wait: float = 2.0  # seconds before the second try; doubled for each one after
    max_wait: float = 300.0

    def wait(self, tries: int, hint: float | None = None) -> float | None:
        """Seconds to wait after `tries` tries before the next; None: no more tries. A hint
        (GitHub's Retry-After) lengthens the wait, up to `max_wait`."""
        if tries >= self.attempts:
            return None
        wait = self.first_wait * 2.0 ** max(0, tries - 1)
        if hint is not None:
            wait = max(wait, hint)
        return min(wait, self.max_wait)


DELIVERY_RETRY = RetryPolicy()  # 2, 4, 8 ... 128 s: about four minutes in all


def as_transient(exc: BaseException) -> TryAgain | None:
    """The TryAgain `exc` amounts to, or None when it is not transient (a refusal, a 404, a
    bug): trying again would fail the same way. One classifier (app.faults) for jobs and runs."""
    if isinstance(exc, TryAgain):
        return exc
    fault = transient(exc)
    if fault is None:
        return None
    return TryAgain(f"{fault.what} is unavailable: {fault.detail}", retry_after=fault.retry_after)


class ProcrastinateRetry(BaseRetryStrategy):
    """procrastinate's side of RetryPolicy (app.runs.queue): a job that raised TryAgain runs
    again after the policy's wait; anything else is not retried."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not isinstance(exception, TryAgain):
            return None
        wait = self._policy.wait(job.attempts + 1, exception.retry_after)  # attempts: so far
        if wait is None:
            log.error("job failed after its last try", job=job.task_name, key=job.queueing_lock)
            return None
        log.warning("job will be tried again", job=job.task_name, key=job.queueing_lock, wait=wait)
        return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=wait))
