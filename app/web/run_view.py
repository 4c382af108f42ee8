"""A run as the dashboard shows it: the store's row, what started it, and its checkpoints' story.

Pure: built from a RunRow and a RunRecord, rendered by the templates and serialised by the
API (the live updates use the same `display` strings, so a row looks the same either way).
Every text here may be untrusted (titles, plans, test output, failure reasons): the templates
escape it and the script only ever sets `textContent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from app.agent.history import RunRecord
from app.agent.state import STEP_ORDER, StepName
from app.agent.usage import Usage
from app.hosts.status import STEP_LABELS
from app.runs.models import Run
from app.runs.views import RunRow

NEXT_STEP: dict[str, StepName | None] = {
    "prepare": "plan",
    "plan": "approval",
    "approval": "implement",
    "implement": "verify",
    "verify": "publish",
    "publish": "report",
    "report": None,
}
MAX_OUTPUT_CHARS = 20_000  # of the test output shown (the tail: where failures are)
Action = str  # "approve" | "revise" | "stop" | "retry"


@dataclass(frozen=True)
class RunView:
    row: RunRow
    record: RunRecord
    web_url: str  # GitHub's web address
    now: datetime
    max_test_attempts: int
    actions: tuple[Action, ...] = ()  # what the viewer may do now

    @property
    def run(self) -> Run:
        return self.row.run

    # Facts -------------------------------------------------------------------------------

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.record.values)

    @property
    def title(self) -> str:
        title = self.values.get("title")
        return title if isinstance(title, str) else ""

    @property
    def step(self) -> StepName | None:
        """The step under way (None once the run is over or before it starts)."""
        run = self.run
        if run.status == "waiting":
            return "approval"
        if run.status != "running":
            return None
        done = [s for s in self.values.get("steps_done") or [] if s in NEXT_STEP]
        if not done:
            return "prepare"
        last = done[-1]
        tests = self.values.get("tests")
        attempts = int(self.values.get("attempts") or 0)
        failing = isinstance(tests, dict) and tests.get("passed") is False
        if last == "verify" and failing and attempts < self.max_test_attempts:
            return "implement"  # back for another attempt
        return NEXT_STEP[last] or "report"

    @property
    def checklist(self) -> list[dict[str, str]]:
        done = set(self.values.get("steps_done") or [])
        current = self.step
        steps = []
        for name in STEP_ORDER:
            state = "done" if name in done else "pending"
            if name == current:
                state = "waiting" if self.run.status == "waiting" else "current"
            steps.append({"name": name, "label": STEP_LABELS[name], "state": state})
        return steps

    @property
    def usage(self) -> Usage:
        return self.record.usage

    @property
    def duration_seconds(self) -> float:
        run = self.run
        end = self.now if run.active else run.updated_at
        return max(0.0, (end - run.created_at).total_seconds())

    @property
    def branch(self) -> str | None:
        """The work branch once it is on GitHub: pushed by publish, or a pull request's own."""
        outcome = self.values.get("outcome")
        pushed = (
            outcome.get("branch") if isinstance(outcome, dict) and outcome.get("commit") else None
        )
        branch = pushed or (self.values.get("branch") if self.run.kind == "pull" else None)
        return branch if isinstance(branch, str) and branch else None

    @property
    def approved(self) -> str | None:
        """Who approved the plan, in words."""
        who = self.values.get("approved_by")
        if not isinstance(who, str) or not who:
            return None
        return "Auto-approved (label open-swe-auto)." if who == "auto" else f"Approved by {who}."

    @property
    def plan(self) -> dict[str, Any] | None:
        plan = self.values.get("plan")
        if not isinstance(plan, dict):
            return None
        steps = [str(step) for step in plan.get("steps") or []]
        return {"title": str(plan.get("title") or ""), "steps": steps}

    @property
    def tests(self) -> dict[str, Any] | None:
        tests = self.values.get("tests")
        if not isinstance(tests, dict):
            return None
        output = str(tests.get("output") or "")
        return {
            "command": tests.get("command"),
            "passed": tests.get("passed"),
            "exit_code": tests.get("exit_code"),
            "attempts": tests.get("attempts"),
            "output": output[-MAX_OUTPUT_CHARS:],
        }

    # Links -------------------------------------------------------------------------------

    @property
    def repo_path(self) -> str:
        return quote(self.run.repo, safe="/")

    @property
    def issue_url(self) -> str:
        kind = "pull" if self.run.kind == "pull" else "issues"
        return f"{self.web_url}/{self.repo_path}/{kind}/{self.run.number}"

    @property
    def pr_url(self) -> str | None:
        if self.run.pr_number is None:
            return None
        return f"{self.web_url}/{self.repo_path}/pull/{self.run.pr_number}"

    @property
    def branch_url(self) -> str | None:
        if self.branch is None:
            return None
        return f"{self.web_url}/{self.repo_path}/tree/{quote(self.branch, safe='/')}"

    # Serialised --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        run, usage = self.run, self.usage
        return {
            "id": run.id,
            "repo": run.repo,
            "number": run.number,
            "kind": run.kind,
            "title": self.title,
            "trigger": self.row.trigger,
            "requested_by": run.requested_by,
            "status": run.status,
            "step": self.step,
            "created_at": run.created_at.isoformat(),
            "updated_at": run.updated_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 1),
            "tokens": {
                "input": usage.input_tokens,
                "output": usage.output_tokens,
                "total": usage.tokens,
            },
            "cost_usd": round(usage.cost_usd, 6),
            "pr_number": run.pr_number,
            "issue_url": self.issue_url,
            "pr_url": self.pr_url,
            "error": run.error,
            "actions": list(self.actions),
            "display": {
                "started": when(run.created_at),
                "duration": duration(self.duration_seconds),
                "tokens": f"{usage.tokens:,}",
                "cost": f"${usage.cost_usd:.2f}",
                "status": status_text(run.status, self.step),
            },
        }

    def detail(self) -> dict[str, Any]:
        tests = self.tests
        return {
            **self.summary(),
            "branch": self.branch,
            "branch_url": self.branch_url,
            "approved_by": self.values.get("approved_by"),
            "approved": self.approved,
            "plan": self.plan,
            "plan_revision": self.values.get("plan_revision"),
            "steps": self.checklist,
            "tests": tests,
            "model_calls": self.usage.model_calls,
        }


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def status_text(status: str, step: str | None) -> str:
    if status == "waiting":
        return "waiting for approval"
    if status == "faulted":
        return "waiting out a fault (resumes by itself)"
    if status == "running" and step:
        return f"running: {STEP_LABELS.get(step, step)}"  # type: ignore[call-overload]
    return status
