"""Retry timing for remote sandbox APIs: bounded attempts, exponential backoff with jitter,
and the server's Retry-After when it sends one."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # calls in total, the first included
    base_delay: float = 1.0  # seconds before the second attempt (then doubling)
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # a Retry-After longer than this is clamped

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        # Equal jitter: spreads clients that failed together, never retries instantly.
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - timing, not security


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date; None when absent or bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
