"""The run lifecycle on SQLite and PostgreSQL: its moves are compare-and-set, the plan question
is a column, answers are taken once, a stop wins, and end_run is the one place a run ends."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.agent.budget import Usage
from app.agent.host import RunOutcome
from app.agent.nodes.common import sandbox_labels
from app.faults import MODEL, Transient
from app.runs.dispatch import Job, ResumeRun, StartRun
from app.runs.faults import FaultPolicy
from app.runs.jobs import run_input
from app.runs.lifecycle import (
    TRANSITIONS,
    Lifecycle,
    end_run,
    plan_decision,
    release_sandbox,
)
from app.runs.models import (
    ACTIVE_STATUSES,
    ActiveRunExists,
    NewCommand,
    NewRun,
    Run,
    RunKind,
    RunStatus,
    StoredCommand,
)
from app.runs.store import Store
from app.sandbox.base import SandboxError
from app.sandbox.local import LocalProvider
from tests.agent.conftest import RecordingHost

THREAD = "acme/widgets#12"


class Queue:
    """Records what the lifecycle submits and cancels."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.cancelled: list[str] = []

    async def submit(self, job: Job) -> None:
        self.jobs.append(job)

    async def cancel(self, run_id: str) -> bool:
        self.cancelled.append(run_id)
        return True


@pytest.fixture
def queue() -> Queue:
    return Queue()


@pytest.fixture
def lifecycle(store: Store, queue: Queue) -> Lifecycle:
    return Lifecycle(store, queue)  # type: ignore[arg-type]


def request(delivery_id: str | None = "d-start", kind: RunKind = "issue") -> NewRun:
    return NewRun(THREAD, "acme/widgets", 12, kind, 7, "carol", False, delivery_id)


def said(verb: str, text: str = "", *, by: str = "carol", delivery_id: str = "") -> NewCommand:
    return NewCommand(THREAD, verb, text, by, "issue_comment", delivery_id or f"{verb}-{text}")


async def started(lifecycle: Lifecycle, status: RunStatus = "queued") -> Run:
    run = await lifecycle.start(request(f"d-{uuid.uuid4().hex}"))
    assert isinstance(run, Run)
    if status == "running":
        assert await lifecycle.take_over(run.id) is not None
    if status == "waiting":
        assert await lifecycle.take_over(run.id) is not None
        assert await lifecycle.park(run.id)
    current = await lifecycle._store.run(run.id)
    assert current is not None
    assert current.status == status
    return current


async def status_of(store: Store, run: Run) -> RunStatus:
    current = await store.run(run.id)
    assert current is not None
    return current.status


def command(verb: str, text: str = "") -> StoredCommand:
    now = datetime.now(UTC)
    return StoredCommand(1, "o/r#1", "run", verb, text, "carol", "issue_comment", 5, None, None,
                         "d", now, None)  # fmt: skip


def test_answers_become_plan_decisions_that_record_who_decided() -> None:
    assert plan_decision(command("approve")) == {"verb": "approve", "by": "carol"}
    assert plan_decision(command("revise", "add docs")) == {
        "verb": "revise",
        "feedback": "add docs",
        "by": "carol",
    }
    # free text on a waiting plan is feedback on it
    assert plan_decision(command("instruct", "also negatives")) == {
        "verb": "revise",
        "feedback": "also negatives",
        "by": "carol",
    }
    assert plan_decision(command("stop")) == {"verb": "stop", "by": "carol"}
    assert plan_decision(command("revise", "\u200b \n")) is None  # nothing visible to act on
    assert plan_decision(command("status")) is None


def test_every_status_is_reached_only_from_active_ones() -> None:
    assert set(TRANSITIONS) == {*ACTIVE_STATUSES, "succeeded", "failed", "stopped"}
    for sources in TRANSITIONS.values():
        assert set(sources) <= set(ACTIVE_STATUSES)  # a finished run stays finished


async def test_a_start_queues_one_run_per_thread_and_submits_its_job(
    lifecycle: Lifecycle, queue: Queue
) -> None:
    run = await lifecycle.start(request())
    assert isinstance(run, Run)
    assert (run.status, run.plan_question) == ("queued", None)
    again = await lifecycle.start(request("d-other"))
    assert isinstance(again, ActiveRunExists)
    assert again.run.id == run.id
    assert queue.jobs == [StartRun(run.id)]


async def test_a_job_takes_over_parks_and_resumes_with_an_answer(
    lifecycle: Lifecycle, store: Store, queue: Queue
) -> None:
    run = await started(lifecycle, "running")
    assert not await lifecycle.plan_waits(run)
    await lifecycle.ask_plan(run.id, 2)
    asked = await store.run(run.id)
    assert asked is not None
    assert asked.plan_question == 2
    assert await lifecycle.plan_waits(asked)  # still running: answers are kept for it
    assert await lifecycle.hand_over(asked, said("approve")) is False  # kept, not resumed
    assert await lifecycle.park(run.id)
    assert await lifecycle.take_answer(run.id) == {"verb": "approve", "by": "carol"}
    taken = await store.run(run.id)
    assert taken is not None
    assert (taken.status, taken.plan_question) == ("running", None)
    assert await store.pending_commands(THREAD) == []
    assert queue.jobs == [StartRun(run.id)]


async def test_an_answer_to_a_parked_plan_resumes_the_run(
    lifecycle: Lifecycle, queue: Queue
) -> None:
    run = await started(lifecycle, "waiting")
    assert await lifecycle.plan_waits(run)
    assert await lifecycle.hand_over(run, said("revise", "smaller"))
    assert queue.jobs[-1] == ResumeRun(run.id)


async def test_a_stop_is_taken_first_and_empty_answers_are_consumed_and_ignored(
    lifecycle: Lifecycle, store: Store
) -> None:
    run = await started(lifecycle, "waiting")
    await store.add_command(**vars_of(said("revise", " ")), run_id=run.id)
    assert await lifecycle.take_answer(run.id) is None  # nothing to act on: still waiting
    assert await status_of(store, run) == "waiting"
    await store.add_command(**vars_of(said("approve", by="dave")), run_id=run.id)
    await store.add_command(**vars_of(said("stop", by="erin")), run_id=run.id)
    assert await lifecycle.take_answer(run.id) == {"verb": "stop", "by": "erin"}
    [left] = await store.pending_commands(THREAD)
    assert (left.verb, left.author) == ("approve", "dave")


async def test_an_answer_is_taken_once_and_only_from_a_waiting_run(
    lifecycle: Lifecycle, store: Store
) -> None:
    run = await started(lifecycle, "running")
    await store.add_command(**vars_of(said("approve")), run_id=run.id)
    assert await lifecycle.take_answer(run.id) is None  # running: nothing changes
    assert len(await store.pending_commands(THREAD)) == 1
    assert await lifecycle.park(run.id)
    taken = await asyncio.gather(*(lifecycle.take_answer(run.id) for _ in range(4)))
    assert [decision for decision in taken if decision is not None] == [
        {"verb": "approve", "by": "carol"}
    ]


async def test_a_stop_ends_a_working_run_and_answers_a_waiting_plan(
    lifecycle: Lifecycle, store: Store, queue: Queue
) -> None:
    working = await started(lifecycle, "running")
    await lifecycle.ask_plan(working.id, 1)
    await lifecycle.stop(working, said("stop", by="erin"), "stopped by @erin")
    stopped = await store.run(working.id)
    assert stopped is not None
    assert (stopped.status, stopped.error, stopped.plan_question) == (
        "stopped",
        "stopped by @erin",
        None,
    )
    assert queue.cancelled == [working.id]
    assert await store.pending_commands(THREAD) == []  # handled here

    waiting = await started(lifecycle, "waiting")
    await lifecycle.stop(waiting, said("stop", by="erin", delivery_id="stop-2"), "stopped")
    assert await status_of(store, waiting) == "waiting"  # its job ends it, with a final status
    assert queue.jobs[-1] == ResumeRun(waiting.id)
    assert queue.cancelled == [working.id]
    assert await lifecycle.take_answer(waiting.id) == {"verb": "stop", "by": "erin"}


async def test_the_transcript_tells_each_move_and_who_answered_or_stopped(
    lifecycle: Lifecycle, store: Store
) -> None:
    run = await started(lifecycle, "waiting")
    again = await lifecycle.start(request(run.delivery_id))  # a redelivery: nothing new
    assert isinstance(again, Run)
    assert again.id == run.id
    assert await lifecycle.hand_over(run, said("approve", by="dave"))
    assert await lifecycle.take_answer(run.id) is not None
    await lifecycle.stop(run, said("stop", by="erin"), "stopped by @erin")

    told = [(e.kind, e.data) for e in await store.run_events(run.id)]
    assert told == [
        ("status", {"status": "queued", "by": "carol"}),
        ("status", {"status": "running", "reason": None}),
        ("status", {"status": "waiting", "reason": None}),
        ("decision", {"verb": "approve", "by": "dave"}),
        ("decision", {"verb": "stop", "by": "erin", "reason": "stopped by @erin"}),
        ("status", {"status": "stopped", "reason": "stopped by @erin"}),
    ]


async def test_a_stopped_run_cannot_park_or_be_taken_over(lifecycle: Lifecycle) -> None:
    run = await started(lifecycle, "running")
    await lifecycle.stop(run, said("stop"), "stopped by @carol")
    assert not await lifecycle.park(run.id)
    assert await lifecycle.take_over(run.id) is None


# --- end_run and the sandbox ---------------------------------------------------------------


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "sandboxes", use_bwrap=False)


def states(provider: LocalProvider, labels: dict[str, str]) -> list[str]:
    return [
        json.loads((Path(box.directory) / "sandbox.json").read_text())["state"]  # type: ignore[attr-defined]
        for box in provider.find(labels)
    ]


@pytest.mark.parametrize(
    ("kind", "status", "kept"),
    [
        ("issue", "succeeded", False),
        ("pull", "succeeded", True),  # the pull request's next follow-up resumes it
        ("pull", "no_changes", True),
        ("pull", "failed", False),
        ("pull", "stopped", False),
    ],
)
async def test_end_run_releases_the_sandbox_shows_the_end_once_and_records_it(
    lifecycle: Lifecycle,
    store: Store,
    provider: LocalProvider,
    tmp_path: Path,
    kind: RunKind,
    status: Any,
    kept: bool,
) -> None:
    run = await lifecycle.start(request(kind=kind))
    assert isinstance(run, Run)
    start = run_input(run)
    labels = sandbox_labels(start)
    provider.acquire(labels)
    host = RecordingHost(tmp_path)
    outcome = RunOutcome(status, run.id, Usage(model_calls=1), reason="why")
    await end_run(outcome, host=host, sandboxes=provider, run=start, lifecycle=lifecycle)
    assert host.outcomes == [outcome]
    assert states(provider, labels) == (["stopped"] if kept else [])
    ended = await store.run(run.id)
    assert ended is not None
    assert ended.status == {"no_changes": "succeeded"}.get(status, status)


async def test_a_run_stopped_from_outside_ends_with_the_reason_stored(
    lifecycle: Lifecycle, store: Store, provider: LocalProvider, tmp_path: Path
) -> None:
    run = await started(lifecycle, "running")
    await lifecycle.stop(run, said("stop"), "stopped by @carol")
    host = RecordingHost(tmp_path)
    bare = RunOutcome("stopped", run.id, Usage(model_calls=3), reason="the run was stopped")
    await end_run(bare, host=host, sandboxes=provider, run=run_input(run), lifecycle=lifecycle)
    [shown] = host.outcomes
    assert (shown.reason, shown.usage.model_calls) == ("stopped by @carol", 3)


async def test_releasing_a_sandbox_never_raises(tmp_path: Path) -> None:
    class Broken(LocalProvider):
        def find(self, labels: Any) -> Any:
            raise SandboxError("the sandbox service is down")

    await release_sandbox(Broken(tmp_path, use_bwrap=False), {"a": "b"}, keep=False)


def vars_of(command: NewCommand) -> dict[str, Any]:
    return {field: getattr(command, field) for field in NewCommand.__dataclass_fields__}


async def test_a_fault_moves_a_working_run_to_faulted_with_its_backoff_and_deadline(
    lifecycle: Lifecycle, store: Store
) -> None:
    policy = FaultPolicy(first_wait=10, give_up_after=timedelta(minutes=30))
    fault = Transient(MODEL, "HTTP 529")
    run = await started(lifecycle, "running")
    now = datetime.now(UTC)

    first = await lifecycle.fault(run.id, fault, checkpoint="c1", policy=policy, now=now)
    assert first == now + timedelta(seconds=10)
    faulted = await store.run(run.id)
    assert faulted is not None
    assert (faulted.status, faulted.fault_tries, faulted.fault_checkpoint) == ("faulted", 1, "c1")
    assert faulted.error == "waiting: the model API unavailable (HTTP 529)"
    assert await lifecycle.take_over(run.id) is not None  # the reaper's resumption

    later = now + timedelta(minutes=1)
    again = await lifecycle.fault(run.id, fault, checkpoint="c1", policy=policy, now=later)
    assert again == later + timedelta(seconds=20)  # the same fault: the backoff grows
    await lifecycle.take_over(run.id)
    moved_on = now + timedelta(minutes=40)  # past the first fault's deadline, but from c2
    fresh = await lifecycle.fault(run.id, fault, checkpoint="c2", policy=policy, now=moved_on)
    assert fresh == moved_on + timedelta(seconds=10)  # a new fault: a deadline of its own
    await lifecycle.take_over(run.id)
    gone = moved_on + timedelta(minutes=30)
    reason = await lifecycle.fault(run.id, fault, checkpoint="c2", policy=policy, now=gone)
    assert reason == policy.gave_up(fault)
    assert await status_of(store, run) == "running"  # the job ends it through end_run
    await store.set_run_status(run.id, "failed")

    stopped = await started(lifecycle, "queued")
    await store.set_run_status(stopped.id, "stopped")
    assert await lifecycle.fault(stopped.id, fault, checkpoint=None, policy=policy) is None
