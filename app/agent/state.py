"""The workflow's state: plain, serialisable data only (ids, texts, plan, test results, counters).

Clients (host, sandbox, models) live in the runtime context, never here, so a checkpoint can
be loaded by another process after a restart. Every value is a str/int/float/bool/None or a
list/dict of those.
"""

from __future__ import annotations

from typing import Literal, NotRequired

# typing_extensions' TypedDict: pydantic (LangGraph's schemas) needs it before Python 3.12.
from typing_extensions import TypedDict

from app.agent.budget import UsageDict

RunKind = Literal["issue", "pull"]
StepName = Literal["prepare", "plan", "approval", "implement", "verify", "publish", "report"]
STEP_ORDER: tuple[StepName, ...] = (
    "prepare",
    "plan",
    "approval",
    "implement",
    "verify",
    "publish",
    "report",
)


class RunInput(TypedDict):
    """What a host hands the workflow to start a run (the graph's narrow input schema)."""

    thread_id: str  # one per issue: "owner/repo#12", or "local:<path>:<slug>"
    run_id: str
    repo: str  # "owner/repo", or the local repository's path
    issue_number: int | None
    branch: str  # the work branch: "open-swe/issue-12", or "open-swe/<slug>" locally
    auto_approve: bool
    # "pull": a follow-up on a pull request's existing branch (which must exist): no plan,
    # the people's requests are the task, and its sandbox is kept for the next follow-up.
    kind: NotRequired[RunKind]  # absent: "issue"


def is_follow_up(state: RunInput) -> bool:
    return state.get("kind") == "pull"


class PlanDict(TypedDict):
    title: str
    steps: list[str]


class Decision(TypedDict):
    """The resume value of the approval interrupt."""

    verb: Literal["approve", "revise", "stop"]
    feedback: NotRequired[str]
    by: NotRequired[str]  # who decided (a login), for the record


class CheckResult(TypedDict):
    command: str | None  # None: no test command found, tests not run
    passed: bool | None
    exit_code: int | None
    output: str  # tail of the output, already redacted by the sandbox
    attempts: int


OutcomeStatus = Literal["succeeded", "tests_failing", "no_changes", "stopped"]


class OutcomeDict(TypedDict):
    status: OutcomeStatus
    branch: str
    url: str | None
    commit: str | None
    title: str | None
    reason: NotRequired[str]  # why it stopped


class RunState(RunInput, total=False):
    # prepare
    title: str
    task: str  # sanitised, fenced task text for prompts
    requested_by: str | None  # "Name <email>" of the person who asked: the co-author
    bot_name: str  # commit author
    bot_email: str
    repo_dir: str  # absolute path of the checkout inside the sandbox
    base_branch: str
    base_sha: str
    start_sha: str  # head of the work branch when the run began (for "nothing changed")
    instructions: str | None
    instructions_file: str | None
    test_command: str | None
    setup_note: str | None  # the setup script ran without the network its policy grants
    # plan and approval
    plan: PlanDict | None
    plan_revision: int
    feedback: list[str]
    approved_by: str | None
    # implement and verify
    attempts: int
    agent_notes: str
    follow_up_rounds: int  # times publishing went back to work for instructions sent meanwhile
    continuing: bool  # the next implement goes on from its own work, for new instructions
    tests: CheckResult | None
    # publish
    outcome: OutcomeDict | None
    # bookkeeping
    rebuilds: int  # times the work was redone in a new sandbox after losing one
    usage: UsageDict
    steps_done: list[str]
