"""Failure signatures: the same failure gives the same signature, whatever changes between runs."""

from __future__ import annotations

from app.ci.failures import Failure
from app.ci.signature import normalise, signature


def failure(name: str, *errors: str) -> Failure:
    return Failure(name, "failure", errors=errors)


def test_the_same_failure_in_another_run_has_the_same_signature() -> None:
    first = failure("test", "FAILED test_a.py::test_x in 0.12s", "at 0x7f3a2b /tmp/pytest-1/x")
    second = failure("test", "FAILED test_a.py::test_x in 3.4s", "at 0x7f9999 /tmp/pytest-9/x")
    assert signature([first]) == signature([second])


def test_order_and_repeats_do_not_matter() -> None:
    a, b = failure("lint", "E501", "E302"), failure("test", "FAILED x")
    assert signature([a, b]) == signature([b, failure("lint", "E302", "E501", "E501")])


def test_another_check_or_error_is_another_failure() -> None:
    base = signature([failure("test", "FAILED test_x")])
    assert signature([failure("test", "FAILED test_y")]) != base
    assert signature([failure("tests", "FAILED test_x")]) != base
    assert signature([failure("test", "FAILED test_x"), failure("lint", "E501")]) != base


def test_normalise_drops_what_changes_between_runs() -> None:
    assert normalise("2026-12-03T12:00:02.123Z took 12 ms at /tmp/abc/d") == (
        "<time> took <duration> at <temp>"
    )
    assert normalise("see https://github.com/o/r/actions/runs/123/job/456") == (
        "see https://github.com/o/r/actions/<id>/<id>"
    )
