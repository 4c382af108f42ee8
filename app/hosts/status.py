"""What a run says on its issue: one status comment, edited in place, and the plan comment.

Pure: values in, markdown out. All user-facing wording is in the constants below, so tests
assert on it. Text we did not write ourselves (the model's plan and titles, step details,
failure reasons, test commands from the repository) goes through `inline`, `code` or `block`:
bounded, no HTML, no links or images, no @-mentions that would ping people.

A status comment carries two hidden markers: `<!-- open-swe:status run=<id> -->`, by which a
restarted process finds the comment again instead of posting another, and the checklist's
state as JSON, so the new process goes on where the old one left off.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.agent.host import RunOutcome
from app.agent.state import STEP_ORDER, PlanDict, StepName
from app.agent.usage import Usage
from app.commands import COMMAND_PREFIX, Verb
from app.text import github as github_text
from app.text.github import clip

MAX_DETAIL_CHARS = 300
MAX_REASON_CHARS = 1_000
MAX_OUTPUT_CHARS = 3_000
MAX_PLAN_STEPS = 50
MAX_TITLE_CHARS = 200

STEP_LABELS: dict[StepName, str] = {
    "prepare": "Prepare (sandbox, clone, setup)",
    "plan": "Plan",
    "approval": "Approval",
    "implement": "Implement",
    "verify": "Run the tests",
    "publish": "Publish (branch, pull request)",
    "report": "Report",
}
DONE, CURRENT, WAITING, PENDING, FAILED, STOPPED = "✅", "🔄", "⏸️", "⬜", "❌", "⏹️"


# Commands people can answer with (the grammar of app/commands.py) --------------


def approve_hint(slug: str) -> str:
    return f"`/{Verb.APPROVE}` (or `{COMMAND_PREFIX} {Verb.APPROVE}`, `@{slug} {Verb.APPROVE}`)"


REVISE_HINT = f"`/{Verb.REVISE} <what to change>`"
RETRY_HINT = f"`{COMMAND_PREFIX} {Verb.RETRY}`"

# Status comment wording ------------------------------------------------------------------

HEADER_WORKING = "🔄 **Working on it.** This comment is updated as the steps complete."
HEADER_WAITING = (
    "⏸️ **Waiting for approval of the plan** (in the comment above). "
    "Reply {approve} to go ahead, or {revise} for a new plan."
)
HEADER_SUCCEEDED = "✅ **Done**: the changes are in the draft pull request {link}."
HEADER_SUCCEEDED_BRANCH = "✅ **Done**: I pushed the branch {branch}."
HEADER_TESTS_FAILING = (
    "⚠️ **Draft pull request opened, but the tests still fail**: {link}. Review it, or "
    "comment `@{slug} <what to fix>` on the pull request to ask me for a fix."
)
HEADER_TESTS_FAILING_BRANCH = (
    "⚠️ **Pushed to {branch}, but the tests still fail.** Comment `@{slug} <what to fix>` "
    "to ask me for a fix."
)
HEADER_NO_CHANGES = (
    "ℹ️ **Finished without changes**: the run did not change any file, so there is no pull request."
)
HEADER_FAULTED = (
    "⏳ **waiting: {what} unavailable, retrying at {time} UTC.** The run goes on from its "
    "last step by itself; nothing is lost."
)
HEADER_FAILED = "❌ **The run failed**: {reason}"
HEADER_STOPPED = "⏹️ **Stopped**: {reason}"
DEFAULT_STOP_REASON = "the run was stopped"
DEFAULT_FAILURE_REASON = "no reason was recorded"

NEXT = "**What to do next**: {what}"
NEXT_RETRY = "comment " + RETRY_HINT + " to try again."
NEXT_NO_CHANGES = (
    "if a change is needed, add details to the issue, then comment " + RETRY_HINT + "."
)
NEXT_SET_VARIABLE = (
    "set `{variable}` in the server's environment (or its `.env` file), restart open-swe, "
    "then comment " + RETRY_HINT + "."
)
NEXT_RAISE_LIMIT = (
    "raise `{variable}` (or split the task into smaller issues), then comment " + RETRY_HINT + "."
)
NEXT_WORKFLOWS = (
    "give the GitHub App the **Workflows: read and write** permission (App settings, then "
    "accept it on the installation), or ask for a change that leaves `.github/workflows/` "
    "alone; then comment " + RETRY_HINT + "."
)
BUDGET_VARIABLES = {
    "model calls": "OPEN_SWE_MAX_MODEL_CALLS",
    "tokens": "OPEN_SWE_MAX_TOKENS_PER_RUN",
    "cost": "OPEN_SWE_MAX_COST_USD",
    "time": "OPEN_SWE_MAX_RUN_MINUTES",
    "steps": "OPEN_SWE_MAX_AGENT_STEPS",
}

TESTS_PASSED = "Tests: {command} passed."
TESTS_FAILING = "Tests: {command} still failing."
TESTS_NOT_RUN = "Tests: no test command found, so none were run."
FOOTER = "<sub>Run {run} · {usage} · {duration} of work</sub>"

APPROVAL_WAITING_DETAIL = "waiting for a person with write access"

# Plan comment wording ----------------------------------------------------------------------

PLAN_HEADER = "### 📋 Plan: {title}"
PLAN_AWAITING = (
    "**Waiting for approval.** Reply {approve} to go ahead, or {revise} and I will write a new "
    "plan. Only people with write access to the repository can decide."
)
PLAN_AUTO = "Auto-approved (label `open-swe-auto`): I am implementing it now."

# Markers ------------------------------------------------------------------------------------

STATUS_MARKER = "<!-- open-swe:status run={run_id} -->"
_STATUS_MARKER = re.compile(r"<!-- open-swe:status run=(?P<run>[\w.:-]+) -->")
_STATE_MARKER = re.compile(r"<!-- open-swe:state (?P<json>\{.*?\}) -->")
PLAN_MARKER = "<!-- open-swe:plan run={run_id} rev={revision} digest={digest} -->"
_PLAN_MARKER = re.compile(
    r"<!-- open-swe:plan run=(?P<run>[\w.:-]+) rev=(?P<rev>\d+) digest=(?P<digest>[0-9a-f]+) -->"
)
RUN_ID = re.compile(r"[\w.:-]{1,100}")


# Escaping (app/text/github.py), with this module's limits ---------------------------------


def inline(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return github_text.inline(text, limit)


def code(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return github_text.code(text, limit)


def block(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    return github_text.block(text, limit)


# The checklist ------------------------------------------------------------------------------


@dataclass
class Board:
    """The status checklist: the latest step reported done, and what each step said."""

    reached: int = -1  # index in STEP_ORDER of the latest step reported; -1: none yet
    details: dict[str, str] = field(default_factory=dict)
    waiting: bool = False  # a plan is waiting for a person

    def advance(self, step: StepName, detail: str) -> None:
        """A step completed. Going back (revise, test retries) forgets what came after it."""
        self.reached = STEP_ORDER.index(step)
        self.details = {s: d for s, d in self.details.items() if _index(s) < self.reached}
        self.details[step] = clip(detail, MAX_DETAIL_CHARS)
        if self.reached >= STEP_ORDER.index("approval"):
            self.waiting = False

    def dump(self) -> str:
        data = {"reached": self.reached, "details": self.details, "waiting": self.waiting}
        # No "<" or ">" inside, so the JSON cannot end the HTML comment that carries it.
        text = json.dumps(data, ensure_ascii=True, sort_keys=True)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    @classmethod
    def load(cls, body: str) -> Board | None:
        """The board a status comment carries, or None when it has none (or a broken one)."""
        match = _STATE_MARKER.search(body)
        try:
            data: Any = json.loads(match.group("json")) if match else None
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        reached, details = data.get("reached"), data.get("details")
        if not isinstance(reached, int) or not -1 <= reached < len(STEP_ORDER):
            return None
        if not isinstance(details, dict):
            return None
        kept = {
            step: clip(text, MAX_DETAIL_CHARS)
            for step, text in details.items()
            if step in STEP_ORDER and isinstance(text, str)
        }
        return cls(reached, kept, data.get("waiting") is True)


def _index(step: str) -> int:
    return STEP_ORDER.index(step) if step in STEP_ORDER else len(STEP_ORDER)


def status_run_id(body: str) -> str | None:
    """The run a status comment belongs to, from its marker."""
    match = _STATUS_MARKER.search(body)
    return match.group("run") if match else None


def next_step(reason: str) -> str:
    """What a person can do about a failure, from its reason."""
    if variable := re.search(r"\b([A-Z][A-Z0-9_]{2,}) is not set\b", reason):
        return NEXT_SET_VARIABLE.format(variable=variable.group(1))
    limit = re.search(r"budget exhausted: ([a-z ]+?) \(", reason)
    if limit and limit.group(1) in BUDGET_VARIABLES:
        return NEXT_RAISE_LIMIT.format(variable=BUDGET_VARIABLES[limit.group(1)])
    if "`workflows` permission" in reason:
        return NEXT_WORKFLOWS
    return NEXT_RETRY


def _reason(reason: str) -> str:
    """First line inline, the rest (command output, say) as a block below it."""
    first, _, rest = reason.strip().partition("\n")
    text = inline(first, MAX_REASON_CHARS)
    return text + ("\n\n" + block(rest) if rest.strip() else "")


@dataclass(frozen=True)
class Fault:
    """A transient fault the run waits out: what is unavailable, and when it tries again."""

    what: str
    retry_at: datetime

    def header(self) -> str:
        time = self.retry_at.astimezone(UTC).strftime("%H:%M")
        return HEADER_FAULTED.format(what=self.what, time=time)


def _header(
    board: Board, outcome: RunOutcome | None, slug: str, fault: Fault | None = None
) -> list[str]:
    if outcome is None and fault is not None:
        return [fault.header()]
    if outcome is None:
        if board.waiting and board.reached + 1 == _index("approval"):
            return [HEADER_WAITING.format(approve=approve_hint(slug), revise=REVISE_HINT)]
        return [HEADER_WORKING]
    if outcome.status == "waiting":
        return [HEADER_WAITING.format(approve=approve_hint(slug), revise=REVISE_HINT)]
    link = outcome.url or ""
    if outcome.status == "succeeded":
        if not outcome.url:
            return [HEADER_SUCCEEDED_BRANCH.format(branch=code(outcome.branch or "?"))]
        return [HEADER_SUCCEEDED.format(link=link), _tests_line(outcome)]
    if outcome.status == "tests_failing":
        if not outcome.url:  # a follow-up pushed to a pull request's branch: nothing opened
            return [
                HEADER_TESTS_FAILING_BRANCH.format(branch=code(outcome.branch or "?"), slug=slug)
            ]
        return [HEADER_TESTS_FAILING.format(link=link, slug=slug)]
    if outcome.status == "no_changes":
        return [HEADER_NO_CHANGES, NEXT.format(what=NEXT_NO_CHANGES)]
    if outcome.status == "stopped":
        reason = _reason(outcome.reason or DEFAULT_STOP_REASON)
        return [HEADER_STOPPED.format(reason=reason), NEXT.format(what=NEXT_RETRY)]
    reason = outcome.reason or DEFAULT_FAILURE_REASON
    return [HEADER_FAILED.format(reason=_reason(reason)), NEXT.format(what=next_step(reason))]


def _tests_line(outcome: RunOutcome) -> str:
    if not outcome.tests_command:
        return TESTS_NOT_RUN
    template = TESTS_PASSED if outcome.tests_passed else TESTS_FAILING
    return template.format(command=code(outcome.tests_command))


def _checklist(board: Board, outcome: RunOutcome | None) -> list[str]:
    ended = outcome is not None and outcome.status in ("succeeded", "tests_failing", "no_changes")
    reached = len(STEP_ORDER) - 1 if ended else board.reached
    current_mark = CURRENT
    if outcome is not None and outcome.status in ("failed", "stopped", "waiting"):
        current_mark = {"failed": FAILED, "stopped": STOPPED, "waiting": WAITING}[outcome.status]
    elif board.waiting and reached + 1 == _index("approval"):
        current_mark = WAITING
    lines = []
    for index, step in enumerate(STEP_ORDER):
        mark = DONE if index <= reached else current_mark if index == reached + 1 else PENDING
        detail = board.details.get(step) if index <= reached else None
        if mark == WAITING and step == "approval":
            detail = APPROVAL_WAITING_DETAIL
        lines.append(f"- {mark} {STEP_LABELS[step]}" + (f": {inline(detail)}" if detail else ""))
    return lines


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def render_status(
    run_id: str,
    board: Board,
    usage: Usage,
    slug: str,
    outcome: RunOutcome | None = None,
    fault: Fault | None = None,
) -> str:
    """The status comment: live (outcome None; waiting out a `fault`) or final (succeeded,
    failed, waiting...)."""
    parts = [
        STATUS_MARKER.format(run_id=run_id),
        "\n\n".join(_header(board, outcome, slug, fault)),
        "\n".join(_checklist(board, outcome)),
        FOOTER.format(run=code(run_id), usage=usage.describe(), duration=duration(usage.seconds)),
    ]
    return "\n\n".join(parts) + f"\n<!-- open-swe:state {board.dump()} -->\n"


# The plan comment ---------------------------------------------------------------------------


def plan_digest(plan: PlanDict, awaiting_approval: bool) -> str:
    text = json.dumps([plan["title"], plan["steps"], awaiting_approval], ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PlanMark:
    run_id: str
    revision: int
    digest: str


def plan_mark(body: str) -> PlanMark | None:
    match = _PLAN_MARKER.search(body)
    if match is None:
        return None
    return PlanMark(match.group("run"), int(match.group("rev")), match.group("digest"))


def render_plan(
    run_id: str, plan: PlanDict, *, revision: int, awaiting_approval: bool, slug: str
) -> str:
    """The plan as a numbered list, and how to answer it when it waits for approval."""
    marker = PLAN_MARKER.format(
        run_id=run_id, revision=revision, digest=plan_digest(plan, awaiting_approval)
    )
    steps = [
        f"{number}. {inline(step)}"
        for number, step in enumerate(plan["steps"][:MAX_PLAN_STEPS], start=1)
    ]
    if len(plan["steps"]) > MAX_PLAN_STEPS:
        steps.append(f"{MAX_PLAN_STEPS + 1}. … ({len(plan['steps']) - MAX_PLAN_STEPS} more)")
    answer = (
        PLAN_AWAITING.format(approve=approve_hint(slug), revise=REVISE_HINT)
        if awaiting_approval
        else PLAN_AUTO
    )
    header = PLAN_HEADER.format(title=inline(plan["title"], MAX_TITLE_CHARS))
    return "\n\n".join([marker, header, "\n".join(steps), answer]) + "\n"
