"""Every state transition of a run, the one place a run ends, and the one sandbox release.

A run's status (the `runs` row) moves only here:

                   take_over                park
    queued ─────────────────▶ running ─────────────▶ waiting
       │                      ▲  ▲ │ ◀─────────────
       │ fault   suspended ───┘  │ │  take_answer
       └───────▶ faulted ────────┘◀┘ fault (a transient fault: the reaper resumes it)

    any active status ── end_run, or the front door's stop ──▶ succeeded | failed | stopped

- queued: started by a trigger, its job not yet at work (`Lifecycle.start`).
- running: its job drives the workflow (`take_over`; and `take_answer`, which takes a person's
  answer to the waiting plan and resumes in the same transaction).
- waiting: the plan waits for a person, the sandbox stopped (`park`).
- faulted: waiting out a transient fault at its last checkpoint, its sandbox kept (`fault`);
  the reaper resumes it when its next try is due (app.runs.faults has the backoff).
- suspended: a run put aside to be resumed (a run shut down with its process stays `running`
  and is resumed at the next start, or by the reaper). Both count as active (one active run
  per thread) and `take_over` resumes them.
- succeeded, failed, stopped: final. `end_run` is the one place a run ends (the front door's
  `stop` finishes a run in the store, and its job then ends it through `end_run`).

Every move is a compare-and-set on the run's row from the statuses it names (TRANSITIONS), so
the front door and a run's job, racing in any processes, never both win. The plan question is a
column of the run: set (`ask_plan`) before a plan that waits for approval is shown, closed when
an answer is taken or the run ends. The parking races then read simply:

- an answer sent while the run parks (still `running` for the seconds its sandbox takes to
  stop): the question is set, so the front door keeps the answer for the run; the job, once
  `waiting` is stored, takes it. Each side writes first, then reads, so one sees the other.
- a stop while the run parks: the front door stops the run (running -> stopped) and cancels
  its job; a job that was already past cancelling cannot `park`, and ends the run itself.
- a stop once the run waits is the plan's answer, taken before any other; a stop just after an
  answer was taken finds the run `running` (the same transaction moved it), and stops it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from app.agent.host import RunHost, RunOutcome
from app.agent.state import PlanDecision, RunInput, is_follow_up, sandbox_labels
from app.faults import Transient
from app.runs.dispatch import Dispatcher, ResumeRun, StartRun
from app.runs.faults import FaultPolicy
from app.runs.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    ActiveRunExists,
    NewCommand,
    NewRun,
    Run,
    RunStatus,
    StoredCommand,
)
from app.runs.store import Store
from app.runs.store.base import utcnow
from app.runs.transcript import EventWriter
from app.sandbox.types import SandboxError, SandboxProvider
from app.text.sanitize import sanitize
from app.transcript import EventKind, RunEvent, Transcript

log = structlog.get_logger(__name__)

# The moves a run may make: to -> the statuses it may come from.
TRANSITIONS: dict[RunStatus, tuple[RunStatus, ...]] = {
    "queued": (),  # a new row (start)
    "running": ("queued", "running", "suspended", "faulted", "waiting"),
    "waiting": ("running",),
    "faulted": ("queued", "running", "faulted"),  # a transient fault, waited out (fault)
    "suspended": ("running",),
    "succeeded": ACTIVE_STATUSES,
    "failed": ACTIVE_STATUSES,
    "stopped": ACTIVE_STATUSES,
}
TAKE_OVER: tuple[RunStatus, ...] = ("queued", "running", "suspended", "faulted")
# What the front door's stop moves straight to stopped: all but a waiting plan, which takes the
# stop as its answer (its job then ends the run with the final status).
STOPPABLE: tuple[RunStatus, ...] = ("queued", "running", "suspended", "faulted")
PLAN_ANSWERS = ("approve", "revise", "instruct", "stop")  # what a waiting plan reads
FINAL_STATUS: dict[str, RunStatus] = {
    "succeeded": "succeeded",
    "no_changes": "succeeded",
    "tests_failing": "failed",
    "failed": "failed",
    "stopped": "stopped",
}
RECORD_END_WAITS = (0.5, 2.0)  # seconds between tries to store a run's end
EVENT_SOURCE = "event"  # a stop recorded for an event (issue closed...), not a comment
TESTS_FAILING = "the tests still fail; the draft pull request says so: {url}"
TESTS_FAILING_PUSHED = "the tests still fail on {branch}, where the changes were pushed"


def plan_decision(command: StoredCommand) -> PlanDecision | None:
    """The plan decision a command stands for, or None when it carries nothing to act on."""
    if command.verb == "approve":
        return PlanDecision(verb="approve", by=command.author)
    if command.verb == "stop":
        if command.source == EVENT_SOURCE and command.text:  # an event's stop says why
            return PlanDecision(verb="stop", by=command.author, reason=command.text)
        return PlanDecision(verb="stop", by=command.author)
    if command.verb in ("revise", "instruct") and sanitize(command.text):
        return PlanDecision(verb="revise", feedback=command.text, by=command.author)
    return None


async def release_sandbox(
    sandboxes: SandboxProvider, labels: Mapping[str, str], *, keep: bool
) -> None:
    """The one way a run lets go of its sandbox: stopped when it is kept (a plan waits, or a
    pull request's next follow-up resumes it), else destroyed. Never raises: a sandbox left
    behind stops and deletes itself after a while."""
    try:
        for sandbox in await asyncio.to_thread(sandboxes.find, labels):
            await asyncio.to_thread(sandbox.stop if keep else sandbox.destroy)
    except SandboxError as exc:
        log.warning("sandbox.release_failed", keep=keep, error=str(exc))


async def end_run(
    outcome: RunOutcome,
    *,
    host: RunHost | None,
    sandboxes: SandboxProvider,
    run: RunInput,
    lifecycle: Lifecycle | None = None,
) -> None:
    """The one place a run ends, whoever ends it (its job; the terminal): its sandbox released
    (a pull request's is kept for its next follow-up, unless the run failed or stopped), the
    final status shown once through the host, and, for a stored run, the final status
    recorded with its plan question closed. Never raises."""
    if lifecycle is not None and outcome.status == "stopped":
        outcome = await lifecycle._with_stop_reason(run["run_id"], outcome)
    keep = is_follow_up(run) and outcome.status not in ("failed", "stopped")
    await release_sandbox(sandboxes, sandbox_labels(run), keep=keep)
    if host is not None:
        try:
            await host.finish(outcome)
        except Exception as exc:  # the host logs its own failures; belt and braces
            log.error("run.final_status_failed", error=f"{type(exc).__name__}: {exc}")
    log.info("run.ended", status=outcome.status, reason=outcome.reason)
    if lifecycle is not None:
        await lifecycle._record_end(run["run_id"], outcome)


class Lifecycle:
    """The transitions of stored runs. `queue` is where the front door (re)submits and cancels
    a run's job; a run's own job moves its run without one."""

    def __init__(
        self, store: Store, queue: Dispatcher | None = None, events: EventWriter | None = None
    ) -> None:
        self._store = store
        self._queue = queue
        self._events = events  # a run's job writes its transcript through its writer

    # --- the front door -------------------------------------------------------------------

    async def start(self, request: NewRun) -> Run | ActiveRunExists:
        """A queued run for the thread (its job submitted), unless the thread has an active
        run: then that one. A redelivery returns the run it started, submitting nothing."""
        result = await self._store.start_run(**dataclasses.asdict(request))
        if isinstance(result, Run) and result.status == "queued":
            if not await self._store.run_events(result.id, limit=1):  # not a redelivery's
                await self._note(result.id, "status", status="queued", by=request.requested_by)
            await self._submit(StartRun(result.id))  # a second submission of a job runs it once
        return result

    async def plan_waits(self, run: Run | None) -> bool:
        """Does the run's plan wait for an answer? Parked (`waiting`), or shown and still
        parking (`running` with its plan question set): an answer then is kept for it."""
        if run is None:
            return False
        return run.status == "waiting" or (
            run.status == "running" and run.plan_question is not None
        )

    async def hand_over(self, run: Run, command: NewCommand) -> bool:
        """Give an active run an answer to its plan or an instruction (kept in the inbox for
        it); a run that waits is resumed to read it (True). One still parking reads it once it
        waits (it stores `waiting`, then reads; this records, then reads)."""
        await self._store.add_command(**dataclasses.asdict(command), run_id=run.id)
        return await self._resume_if_waiting(run.id)

    async def stop(self, run: Run, command: NewCommand, reason: str) -> None:
        """Stop wins over everything. The stop is recorded for the run first; then a run that
        does not wait (queued, running...) is stopped here with `reason`, which its final
        status will give, and its job cancelled; a run that waits (or parked meanwhile) is
        resumed and takes the stop as its plan's answer, ending itself."""
        recorded = await self._store.add_command(**dataclasses.asdict(command), run_id=run.id)
        await self._note(run.id, "decision", verb="stop", by=command.author, reason=reason)
        stopped = await self._move(run.id, "stopped", STOPPABLE, error=reason)
        if stopped is not None:
            await self._store.consume_command(recorded.id)  # handled here
            await self._queue_or_fail().cancel(run.id)
        else:
            await self._resume_if_waiting(run.id)  # else it ended meanwhile

    async def _resume_if_waiting(self, run_id: str) -> bool:
        current = await self._store.run(run_id)
        if current is None or current.status != "waiting":
            return False
        await self._submit(ResumeRun(run_id))
        return True

    async def _submit(self, job: StartRun | ResumeRun) -> None:
        await self._queue_or_fail().submit(job)

    def _queue_or_fail(self) -> Dispatcher:
        if self._queue is None:
            raise RuntimeError("this lifecycle has no queue: only the front door's submits jobs")
        return self._queue

    # --- the run's job ------------------------------------------------------------------

    async def take_over(self, run_id: str) -> Run | None:
        """The job goes to work (queued, or resumed: running, suspended, faulted -> running);
        None when the run ended meanwhile (stopped before the job got to it)."""
        return await self._move(run_id, "running", TAKE_OVER)

    async def ask_plan(self, run_id: str, revision: int) -> None:
        """The run's plan (this revision) is about to be shown and waits for an answer: from
        now on the front door keeps answers for the run, even while it still parks."""
        await self._store.set_plan_question(run_id, revision)

    async def park(self, run_id: str) -> bool:
        """running -> waiting, its sandbox already stopped; False when the run was stopped
        meanwhile (then the job ends it)."""
        return await self._move(run_id, "waiting", ("running",)) is not None

    async def fault(
        self,
        run_id: str,
        fault: Transient,
        *,
        checkpoint: str | None,
        policy: FaultPolicy,
        now: datetime | None = None,
    ) -> datetime | str | None:
        """running -> faulted until its next try, which is returned; or, once the fault has
        outlasted `policy`, the reason to fail the run with (str). None: the run was stopped
        meanwhile. `checkpoint` is where the run stands: a fault met from another checkpoint
        than the last fault's is a new one (the run made progress), with its own deadline."""
        run = await self._store.run(run_id)
        if run is None or run.status not in TRANSITIONS["faulted"]:
            return None
        now = now or utcnow()
        same = run.fault_since is not None and run.fault_checkpoint == checkpoint
        since, tries = (run.fault_since, run.fault_tries) if same and run.fault_since else (now, 0)
        retry_at = policy.next_try(since, tries, now, fault.retry_after)
        if retry_at is None:
            return policy.gave_up(fault)
        timing = {
            "fault_since": since,
            "retry_at": retry_at,
            "fault_tries": tries + 1,
            "fault_checkpoint": checkpoint,
        }
        error = f"waiting: {fault.what} unavailable ({fault.detail})"
        moved = await self._move(run_id, "faulted", (run.status,), error=error, extra=timing)
        return retry_at if moved is not None else None

    async def take_answer(self, run_id: str) -> PlanDecision | None:
        """The oldest answer to the waiting plan (a stop first), consumed, and the run moved
        to running with its plan question closed, in one transaction; None when no answer
        waits (answers that carry nothing to act on are consumed and ignored)."""
        taken = await self._store.take_plan_answer(
            run_id, PLAN_ANSWERS, lambda command: plan_decision(command) is not None
        )
        if taken is None:
            return None
        decision = plan_decision(taken)
        log.info("run.decision", verb=taken.verb, by=taken.author)
        await self._note(run_id, "decision", verb=taken.verb, by=taken.author)
        return decision

    # --- events that end a run from outside ---------------------------------------------

    async def stop_for(self, run: Run, *, reason: str, by: str, delivery_id: str) -> None:
        """Stop the run for an event (its issue closed, its label removed, the App
        uninstalled): `stop`, with `reason` what its final status says even when the run's
        plan waits for an answer. `delivery_id` keys the stop (one per run and delivery)."""
        command = NewCommand(
            thread=run.thread,
            verb="stop",
            text=reason,
            author=by,
            source=EVENT_SOURCE,
            delivery_id=delivery_id,
        )
        await self.stop(run, command, reason)

    def record_of(self, run_id: str) -> StoredRecord:
        """Where the run's GitHub host records its plan question, status comment and pull
        request (app.hosts.github.RunRecord)."""
        return StoredRecord(self, self._store, run_id)

    async def _move(
        self,
        run_id: str,
        to: RunStatus,
        expected: tuple[RunStatus, ...],
        *,
        error: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Run | None:
        """Compare-and-set: the run moves to `to` if it is in one of `expected`. A run that
        ends has its plan question closed (nobody answers an ended run)."""
        if not set(expected) <= set(TRANSITIONS[to]):
            raise ValueError(f"a run cannot move from {expected} to {to}")
        moved = await self._store.set_run_status(
            run_id,
            to,
            error=error,
            expected=expected,
            close_plan_question=to in FINISHED_STATUSES,
            extra=extra,
        )
        if moved is not None:
            await self._note(run_id, "status", status=to, reason=error)
        return moved

    async def _note(self, run_id: str, kind: EventKind, **data: object) -> None:
        """An event of the run's transcript: through the job's writer, or (the front door)
        written at once. Best effort: the transcript never fails a transition."""
        if self._events is not None:
            self._events.record(run_id, kind, **data)
            return
        made: list[RunEvent] = []
        Transcript(run_id, made.append).emit(kind, **data)
        try:
            await self._store.add_events(run_id, made)
        except Exception as exc:
            log.warning("transcript.write_failed", run=run_id, error=type(exc).__name__)

    async def _with_stop_reason(self, run_id: str, outcome: RunOutcome) -> RunOutcome:
        """A run stopped from outside (the `stop` command, maybe taken by another process)
        ends with the reason the store holds ("stopped by @carol"), not the bare cancel."""
        try:
            current = await self._store.run(run_id)
        except Exception as exc:  # the bare reason is better than no final status
            log.warning("run.stop_reason_unreadable", error=f"{type(exc).__name__}: {exc}")
            return outcome
        if current is not None and current.status == "stopped" and current.error:
            return dataclasses.replace(outcome, reason=current.error)
        return outcome

    async def _record_end(self, run_id: str, outcome: RunOutcome) -> None:
        """end_run's last step: the final status in the store (a run finished meanwhile, by a
        stop, stays as it is), the plan question closed."""
        error = outcome.reason
        if outcome.status == "tests_failing":
            error = (
                TESTS_FAILING.format(url=outcome.url)
                if outcome.url
                else TESTS_FAILING_PUSHED.format(branch=outcome.branch)
            )
        status = FINAL_STATUS[outcome.status]
        for wait in (*RECORD_END_WAITS, None):
            try:
                ended = await asyncio.shield(
                    self._move(run_id, status, ACTIVE_STATUSES, error=error)
                )
            except Exception as exc:
                # The reaper finishes a run whose end was not stored (it resumes it, and the
                # workflow, already at its end, ends it again): never blocked for good.
                log.error("run.status_not_saved", error=f"{type(exc).__name__}: {exc}", wait=wait)
                if wait is None:
                    return
                await asyncio.sleep(wait)
                continue
            log.info("run.outcome", status=outcome.status, stored=ended is not None)
            return


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    """A run's record as its GitHub host writes it (app.hosts.github.RunRecord), in the store."""

    lifecycle: Lifecycle
    store: Store
    run_id: str

    async def plan_asked(self, revision: int) -> None:
        await self.lifecycle.ask_plan(self.run_id, revision)

    async def status_comment_posted(self, comment_id: int) -> None:
        await self.store.set_status_comment(self.run_id, comment_id)

    async def pull_request_opened(self, number: int) -> None:
        await self.store.set_pr_number(self.run_id, number)
