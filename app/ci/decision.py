"""Whether open-swe tries to fix a commit's failed CI: one pure decision, every limit in one
place (the webhook side gathers the facts, app.webhooks.checks acts on the answer)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Decision(StrEnum):
    ATTEMPT = "attempted"  # start a fix run
    BASE_FAILING = "base-failing"  # every failure also fails on the base branch: report only
    SAME_FAILURE = "same-failure"  # the failure a fix was given came back: stop
    LIMIT = "limit"  # OPEN_SWE_MAX_CI_FIX_ATTEMPTS fix runs made: stop
    DEFERRED = "deferred"  # another run works on the thread: decide once it ends


@dataclass(frozen=True)
class Facts:
    run_active: bool  # a run (any) is active on the pull request's thread
    failed: frozenset[str]  # names of the failed checks on the head commit
    failing_on_base: frozenset[str]  # ... of those, the ones failing on the base branch too
    attempts: int  # fix runs since the last reset
    max_attempts: int
    signature: str  # of the failures to fix now
    last_signature: str | None  # of the failures the last fix run was given


def decide(facts: Facts) -> Decision:
    if facts.run_active:
        return Decision.DEFERRED
    if not facts.failed - facts.failing_on_base:
        return Decision.BASE_FAILING
    if facts.last_signature is not None and facts.signature == facts.last_signature:
        return Decision.SAME_FAILURE
    if facts.attempts >= facts.max_attempts:
        return Decision.LIMIT
    return Decision.ATTEMPT
