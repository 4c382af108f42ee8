"""A run's input to the workflow, from its record: what a run job starts with, and what the
webhook side needs to find a run's sandbox (without importing the agent that runs it)."""

from __future__ import annotations

from app.agent.state import RunInput
from app.runs.models import Run


def branch_for(number: int) -> str:
    return f"open-swe/issue-{number}"


def run_input(run: Run, branch: str | None = None) -> RunInput:
    """The workflow's input; a follow-up (kind "pull") works on its pull request's `branch`."""
    start = RunInput(
        thread_id=run.thread,
        run_id=run.id,
        repo=run.repo,
        issue_number=run.number,
        branch=branch or branch_for(run.number),
        auto_approve=run.auto_approve,
    )
    if run.kind == "pull":
        start["kind"] = "pull"
    return start
