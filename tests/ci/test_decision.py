"""The decision, limit by limit."""

from __future__ import annotations

import dataclasses

import pytest

from app.ci.decision import Decision, Facts, decide

FACTS = Facts(
    run_active=False,
    failed=frozenset({"test", "lint"}),
    failing_on_base=frozenset(),
    attempts=0,
    max_attempts=3,
    signature="new",
    last_signature=None,
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Decision.ATTEMPT),
        ({"attempts": 2, "last_signature": "old"}, Decision.ATTEMPT),
        ({"run_active": True}, Decision.DEFERRED),
        ({"run_active": True, "attempts": 3}, Decision.DEFERRED),  # decided once it ends
        ({"failing_on_base": frozenset({"test", "lint"})}, Decision.BASE_FAILING),
        ({"failing_on_base": frozenset({"lint"})}, Decision.ATTEMPT),  # test is ours to fix
        ({"last_signature": "new"}, Decision.SAME_FAILURE),
        ({"last_signature": "new", "attempts": 3}, Decision.SAME_FAILURE),
        ({"attempts": 3, "last_signature": "old"}, Decision.LIMIT),
        ({"attempts": 0, "max_attempts": 0}, Decision.LIMIT),
    ],
)
def test_decide(changes: dict[str, object], expected: Decision) -> None:
    assert decide(dataclasses.replace(FACTS, **changes)) is expected  # type: ignore[arg-type]
