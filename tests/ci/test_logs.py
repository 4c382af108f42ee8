"""The failed step's tail of a GitHub Actions log, and the lines that name a failure."""

from __future__ import annotations

import time

from app.ci.logs import MAX_CHARS, error_lines, failed_step_tail, plain

LOG = """\
2026-12-03T12:00:00.1000000Z ##[group]Run actions/checkout@v4
2026-12-03T12:00:00.2000000Z checking out
2026-12-03T12:00:00.3000000Z ##[endgroup]
2026-12-03T12:00:01.0000000Z ##[group]Run pytest -q
2026-12-03T12:00:01.1000000Z ##[endgroup]
2026-12-03T12:00:02.0000000Z FAILED tests/test_calc.py::test_add - assert -1 == 5
2026-12-03T12:00:02.5000000Z ##[error]Process completed with exit code 1.
2026-12-03T12:00:03.0000000Z ##[group]Post job cleanup.
"""


def test_the_tail_is_the_failed_step_up_to_its_error_without_timestamps() -> None:
    tail = failed_step_tail(LOG)
    assert tail.splitlines() == [
        "##[group]Run pytest -q",
        "##[endgroup]",
        "FAILED tests/test_calc.py::test_add - assert -1 == 5",
        "##[error]Process completed with exit code 1.",
    ]


def test_without_an_error_line_the_end_of_the_log_is_kept() -> None:
    log = "\n".join(f"line {i}" for i in range(500))
    tail = failed_step_tail(log, max_lines=10)
    assert tail.splitlines() == [f"line {i}" for i in range(490, 500)]


def test_the_tail_is_bounded_in_characters() -> None:
    log = "##[group]Run x\n" + ("y" * 100 + "\n") * 70 + "##[error]boom\n"
    tail = failed_step_tail(log)
    assert len(tail) <= MAX_CHARS
    assert tail.endswith("##[error]boom")


def test_plain_removes_only_a_leading_timestamp() -> None:
    assert plain("2026-12-03T12:00:02.0000000Z hello") == "hello"
    assert plain("hello 2026-12-03T12:00:02Z") == "hello 2026-12-03T12:00:02Z"


def test_error_lines_of_common_tools() -> None:
    text = "\n".join(
        [
            "collected 3 items",
            "FAILED tests/test_a.py::test_x - AssertionError",
            "E       assert 1 == 2",
            "app/x.py:3: error: Incompatible types  [assignment]",
            "src/y.ts:4:5: E501 line too long",
            "--- FAIL: TestSum (0.00s)",
            "all good",
        ]
    )
    assert error_lines(text) == text.splitlines()[1:6]


def test_hostile_log_lines_are_read_in_linear_time() -> None:
    line = ":" + "1:" * 200_000
    started = time.perf_counter()
    assert error_lines(line * 5) == []
    failed_step_tail((line + "\n") * 50)
    assert time.perf_counter() - started < 3.0  # milliseconds when linear
