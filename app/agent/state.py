"""The workflow's state: plain, serialisable data only (ids, texts, plan, test results, counters).

Clients (host, sandbox, models) live in the runtime context, never here, so a checkpoint can
be loaded by another process after a restart. Every value is a str/int/float/bool/None or a
list/dict of those.
"""

from __future__ import annotations

from typing import Literal, NotRequired, Required

# typing_extensions' TypedDict: pydantic (LangGraph's schemas) needs it before Python 3.12.
from typing_extensions import TypedDict

from app.agent.usage import UsageDict

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


def sandbox_labels(state: RunInput) -> dict[str, str]:
    """How a run's sandbox is found again (after a restart, or to clean it up).

    A follow-up's sandbox belongs to its pull request's thread, not to the run: the next
    follow-up on the pull request reuses it while it lives.
    """
    labels = {"open-swe.repo": state["repo"], "open-swe.thread": state["thread_id"]}
    if not is_follow_up(state):
        labels["open-swe.run"] = state["run_id"]
    return labels


class PlanDict(TypedDict):
    title: str
    steps: list[str]


class PlanDecision(TypedDict):
    """The resume value of the approval interrupt."""

    verb: Literal["approve", "revise", "stop"]
    feedback: NotRequired[str]
    by: NotRequired[str]  # who decided (a login), for the record
    reason: NotRequired[str]  # why a stop came (an event: "issue closed by @x"), when not asked


class CheckResult(TypedDict):
    command: str | None  # None: no test command found, tests not run
    passed: bool | None
    exit_code: int | None
    output: str  # tail of the output, already redacted by the sandbox
    attempts: int


# How the workflow's own steps ended a run: published (tests passing or not), nothing
# changed, or stopped at plan approval. app.agent.host.OutcomeStatus adds failed and waiting.
WorkflowOutcome = Literal["succeeded", "tests_failing", "no_changes", "stopped"]


class OutcomeDict(TypedDict):
    status: WorkflowOutcome
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


# What each step writes (LangGraph merges a node's update into the state) -----------------


class Prepared(TypedDict, total=False):
    """The checkout in the run's sandbox: all of it when it was (re)built, only `repo_dir`
    when the sandbox still holds it (app.agent.nodes.common.open_workspace)."""

    repo_dir: Required[str]
    base_branch: str
    base_sha: str
    start_sha: str
    instructions: str | None
    instructions_file: str | None
    test_command: str | None
    bot_name: str
    bot_email: str
    setup_note: str | None  # the setup script ran without the network its policy grants


class Redo(TypedDict):
    """Back to implement in a new sandbox: the work was lost with the old one (the update of
    verify or publish then)."""

    rebuilds: int
    attempts: int
    tests: CheckResult | None
    agent_notes: str


class PrepareUpdate(Prepared, total=False):
    title: str
    task: str
    requested_by: str | None
    plan: PlanDict | None
    plan_revision: int
    feedback: list[str]
    approved_by: str | None
    attempts: int
    agent_notes: str
    tests: CheckResult | None
    outcome: OutcomeDict | None
    rebuilds: int
    usage: UsageDict
    steps_done: list[str]


class PlanUpdate(Prepared, total=False):
    plan: PlanDict
    plan_revision: int
    usage: UsageDict
    steps_done: list[str]


class ApprovalUpdate(TypedDict, total=False):
    approved_by: str
    feedback: list[str]  # revise: back to plan with it
    outcome: OutcomeDict  # stop
    steps_done: list[str]


class ImplementUpdate(Prepared, total=False):
    attempts: int
    tests: CheckResult | None
    agent_notes: str
    continuing: bool
    usage: UsageDict
    steps_done: list[str]


class VerifyUpdate(TypedDict, total=False):
    tests: CheckResult | None
    usage: UsageDict
    steps_done: list[str]


class PublishUpdate(TypedDict, total=False):
    outcome: OutcomeDict
    usage: UsageDict
    steps_done: list[str]
    follow_up_rounds: int  # back to implement for instructions sent meanwhile
    continuing: bool
    attempts: int
    tests: CheckResult | None


class ReportUpdate(TypedDict):
    steps_done: list[str]
