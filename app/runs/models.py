"""Tables (SQLAlchemy Core) and the typed rows the store hands out.

One schema for SQLite and PostgreSQL. The rule "one active run per issue or PR" lives here, as a
partial unique index, so even two workers racing cannot start two runs on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

# Where a run is in its lifecycle (app.runs.lifecycle moves it; see its diagram). Not to be
# confused with how a run turned out, the OutcomeStatus a host reports (app.agent.host).
RunStatus = Literal[
    "queued", "running", "waiting", "faulted", "suspended", "succeeded", "failed", "stopped"
]
RunKind = Literal["issue", "pull"]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "running", "waiting", "faulted", "suspended")
FINISHED_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed", "stopped")
RESUMABLE_STATUSES: tuple[RunStatus, ...] = ("queued", "running", "suspended")  # a job goes on


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out (SQLite keeps no zone; PostgreSQL uses timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(100), primary_key=True),  # X-GitHub-Delivery
    Column("event", String(100), nullable=False),
    Column("action", String(100)),
    Column("installation_id", BigInteger),
    Column("repo", String(300)),
    Column("received_at", UtcDateTime, nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("detail", Text),
    # Kept only for deliveries that need background work; SQL NULL otherwise (not JSON 'null',
    # which `payload IS NULL` would not match).
    Column("payload", JSON(none_as_null=True)),
    Column("processed_at", UtcDateTime),
    Column("reply_comment_id", BigInteger),  # the one answer we posted, so it is never repeated
    # Tries of its background work so far: a transient fault is retried, up to a bound.
    Column("attempts", Integer, nullable=False, server_default="0"),
)
Index(
    "ix_deliveries_unfinished",
    deliveries.c.received_at,
    sqlite_where=deliveries.c.processed_at.is_(None),
    postgresql_where=deliveries.c.processed_at.is_(None),
)

installations = Table(
    "installations",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String(100)),
    Column("account_type", String(20)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("suspended_at", UtcDateTime),
    Column("deleted_at", UtcDateTime),
)

installation_repos = Table(
    "installation_repos",
    metadata,
    Column(
        "installation_id",
        BigInteger,
        ForeignKey("installations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("repo_id", BigInteger, primary_key=True, autoincrement=False),
    Column("full_name", String(300), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("thread", String(320), nullable=False),  # owner/repo#12
    Column("repo", String(300), nullable=False),
    Column("number", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("installation_id", BigInteger, nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("auto_approve", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("delivery_id", String(100), unique=True),  # one delivery starts at most one run
    Column("status_comment_id", BigInteger),
    Column("pr_number", Integer),
    Column("error", Text),
    # The revision of the plan that waits for a person's answer (shown, or about to be); NULL
    # when none waits. Set while the run still works, so answers that come in as it parks
    # are kept for it (app.runs.lifecycle).
    Column("plan_question", Integer),
    # When retention pruned what the run left (checkpoints, commands); its usage was folded
    # into `totals` first.
    Column("pruned_at", UtcDateTime),
    # A transient fault the run waits out (app.runs.faults): since when, when it tries again,
    # how many times it has tried since, and the checkpoint it stood at (progress past it
    # makes the next fault a new one).
    Column("fault_since", UtcDateTime),
    Column("retry_at", UtcDateTime),
    Column("fault_tries", Integer, nullable=False, server_default="0"),
    Column("fault_checkpoint", String(64)),
)
_active = runs.c.status.in_(ACTIVE_STATUSES)
Index(
    "uq_runs_active_thread",
    runs.c.thread,
    unique=True,
    sqlite_where=_active,
    postgresql_where=_active,
)
Index("ix_runs_thread_created", runs.c.thread, runs.c.created_at)
Index("ix_runs_repo_pr", runs.c.repo, runs.c.pr_number)
Index("ix_runs_status", runs.c.status)  # the outbox and retention sweeps look runs up by it

commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("thread", String(320), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="SET NULL")),
    Column("verb", String(16), nullable=False),
    Column("text", Text, nullable=False),  # snapshot at acceptance: later edits change nothing
    Column("author", String(100), nullable=False),
    Column("source", String(20), nullable=False),  # issue_comment | review_comment | review
    Column("comment_id", BigInteger),
    Column("path", Text),
    Column("line", Integer),
    Column("delivery_id", String(100), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("consumed_at", UtcDateTime),
)
Index("ix_commands_thread_pending", commands.c.thread, commands.c.consumed_at)

# Every model call's usage, written as the call ends: the budget of a run (and of the runs
# that retry it) is their sum, so a suspend, a crash or a retry forgets nothing spent.
model_calls = Table(
    "model_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("model", String(200), nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)
Index("ix_model_calls_run", model_calls.c.run_id)

# Deliveries the App asked GitHub to send again (the redelivery sweep): never asked twice.
redeliveries = Table(
    "redeliveries",
    metadata,
    Column("guid", String(100), primary_key=True),  # X-GitHub-Delivery
    Column("hook_delivery_id", BigInteger, nullable=False),  # the attempt asked to redeliver
    Column("event", String(100), nullable=False),
    Column("action", String(100)),
    Column("asked_at", UtcDateTime, nullable=False),
)

# The transcript of each run (app.transcript): what it did, in order, kept for the retention
# period. `seq` counts from 1 per run, in commit order (a batch takes the next numbers under
# the primary key), so a reader that saw event n never misses an event < n committed later.
run_events = Table(
    "run_events",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(20), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
)
Index("ix_run_events_kind_at", run_events.c.kind, run_events.c.at)  # /metrics reads by kind

# Running totals of what retention prunes, so counters read from the store never go down:
# /metrics adds these to what the remaining rows count.
totals = Table(
    "totals",
    metadata,
    Column("metric", String(60), primary_key=True),
    Column("labels", String(300), primary_key=True),  # e.g. "issues|ignored"; "" for none
    Column("value", Float, nullable=False),
)

# CI autofix (app.ci): per pull request, whether autofix is on and what it tried; per commit,
# the one decision taken on its CI (however many check events arrive).
ci_pulls = Table(
    "ci_pulls",
    metadata,
    Column("repo", String(300), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("autofix", Boolean),  # `/open-swe autofix on|off`; NULL: the repository's default
    Column("attempts", Integer, nullable=False, server_default="0"),  # fix runs since reset
    Column("signature", String(64)),  # of the failure the last fix run was given
    Column("comment_id", BigInteger),  # the CI-fix status comment, edited in place
    Column("noted_at", UtcDateTime),  # when the missing-permissions note was posted
    Column("history", JSON(none_as_null=True)),  # what the status comment lists
    Column("files", JSON(none_as_null=True)),  # the PR's files before the last fix run
    Column("updated_at", UtcDateTime, nullable=False),
)

ci_commits = Table(
    "ci_commits",
    metadata,
    Column("repo", String(300), primary_key=True),
    Column("sha", String(64), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("installation_id", BigInteger, nullable=False),
    Column("decision", String(20), nullable=False),  # deciding | deferred | attempted | ...
    Column("run_id", String(32)),
    Column("decided_at", UtcDateTime, nullable=False),
)
Index("ix_ci_commits_decision", ci_commits.c.decision)


# Rows -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    repo: str | None
    received_at: datetime
    outcome: str
    detail: str | None
    payload: dict[str, Any] | None
    processed_at: datetime | None
    reply_comment_id: int | None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Installation:
    id: int
    account: str | None
    account_type: str | None
    created_at: datetime
    updated_at: datetime
    suspended_at: datetime | None
    deleted_at: datetime | None

    @property
    def active(self) -> bool:
        return self.deleted_at is None and self.suspended_at is None


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    thread: str
    repo: str
    number: int
    kind: RunKind
    installation_id: int
    requested_by: str
    auto_approve: bool
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    delivery_id: str | None
    status_comment_id: int | None
    pr_number: int | None
    error: str | None
    plan_question: int | None
    pruned_at: datetime | None = None
    fault_since: datetime | None = None
    retry_at: datetime | None = None
    fault_tries: int = 0
    fault_checkpoint: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class ActiveRunExists:
    """start_run's answer when the thread already has an active run: that run."""

    run: Run


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run the front door asks for (app.runs.lifecycle.Lifecycle.start)."""

    thread: str
    repo: str
    number: int
    kind: RunKind
    installation_id: int
    requested_by: str
    auto_approve: bool
    delivery_id: str | None


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command as the front door accepted it (its text snapshotted), not stored yet."""

    thread: str
    verb: str
    text: str
    author: str
    source: str  # issue_comment | review_comment | review
    delivery_id: str
    comment_id: int | None = None
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class StoredCommand:
    id: int
    thread: str
    run_id: str | None
    verb: str
    text: str
    author: str
    source: str
    comment_id: int | None
    path: str | None
    line: int | None
    delivery_id: str
    created_at: datetime
    consumed_at: datetime | None


def thread_key(repo: str, number: int) -> str:
    return f"{repo}#{number}"


@dataclass(frozen=True, slots=True)
class CiPull:
    """What CI autofix knows of one pull request (the `ci_pulls` row)."""

    repo: str
    number: int
    autofix: bool | None
    attempts: int
    signature: str | None
    comment_id: int | None
    noted_at: datetime | None
    history: list[dict[str, Any]] | None
    files: dict[str, Any] | None  # {sha, files, workflows}: before the last fix run
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CiCommit:
    """The decision taken on one commit's CI (the `ci_commits` row)."""

    repo: str
    sha: str
    number: int
    installation_id: int
    decision: str
    run_id: str | None
    decided_at: datetime
