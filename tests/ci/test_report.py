"""The fix run's task and the CI-fix status comment: CI text made inert, every state shown."""

from __future__ import annotations

from app.ci import report
from app.ci.failures import Failure

SHA = "0123456789abcdef" * 2 + "01234567"


def test_the_task_puts_the_ci_output_in_code_blocks() -> None:
    failure = Failure(
        "test",
        "failure",
        workflow="CI",
        workflow_path=".github/workflows/ci.yml",
        failed_steps=("Run tests",),
        details="```\n<!-- hidden -->\nFAILED x\n",
    )
    text = report.task(SHA, [failure])
    assert text.startswith(report.TASK_INTRO.format(sha=SHA[:12]))
    assert "## Check CI / test (failure)" in text
    assert "Workflow file: .github/workflows/ci.yml" in text
    assert "Failed steps: Run tests" in text
    assert "````text\n```\n<!-- hidden -->\nFAILED x\n````" in text  # a longer fence


def test_the_status_comment_shows_each_decision_the_count_and_the_outcome() -> None:
    history = [
        report.entry(SHA, "attempted", checks=["test"], run_id="r" * 32, attempt=1),
        report.entry("f" * 40, "same-failure", checks=["test"], base_failing=["lint"]),
    ]
    history[0]["review"] = ["skips tests in test_x.py"]
    body = report.status_comment(history, attempts=1, limit=3, base="main")
    assert body.startswith(report.HEADER)
    assert body.endswith(report.MARKER)
    assert f"| `{SHA[:12]}` | `test` | fix run `rrrrrrrr` started (attempt 1 of 3) |" in body
    assert "stopped: the same failure came back after a fix" in body
    assert "also failing on `main` (not attempted): `lint`" in body
    assert "Fix attempts: 1 of 3." in body
    assert "Outcome: " + report.OUTCOMES["same-failure"] in body
    assert report.REVIEW in body
    assert "- skips tests in test_x.py" in body


def test_check_names_from_the_ci_are_inert_and_keep_the_table_whole() -> None:
    history = [report.entry(SHA, "limit", checks=["@admin `x` | <b>"])]
    body = report.status_comment(history, attempts=3, limit=3, base="main")
    [row] = [line for line in body.splitlines() if line.startswith(f"| `{SHA[:12]}`")]
    assert "``@admin `x` \\| <b>``" in row  # a code span: no mention, no markup
    assert row.replace("\\|", "").count("|") == 4  # three cells


def test_how_the_fix_run_ended_is_shown() -> None:
    history = [report.entry(SHA, "attempted", checks=["test"], run_id="r" * 32, attempt=1)]
    history[0] |= {"run_status": "failed", "run_error": "the model | gave up"}
    body = report.status_comment(history, attempts=1, limit=3, base="main")
    assert "started (attempt 1 of 3); the run failed: the model \\| gave up |" in body
    assert "Outcome: " + report.RUN_ENDED["failed"] in body
