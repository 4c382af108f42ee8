"""Driving the graph: the run job the queue calls with a run id (StartRun and ResumeRun alike);
`run_to_end`, for a host that answers plans at once (the terminal), is app.runs.drive's.

The run job assembles, for one run, its GitHub host, the sandbox provider and the process's
graph, and moves the run through its lifecycle (app.runs.lifecycle), which holds every status
change and ends the run. What one call does depends on the run's stored status:

- queued: start the workflow from its first step.
- waiting (a plan waits for a person): take the answer waiting for it (the lifecycle moves the
  run back to running as it takes it) and resume the approval interrupt with it. No answer
  waiting: nothing to do (a coalesced resubmission). The front door has already checked that
  the person has write access.
- running, suspended or faulted (its process died or shut down mid-run): go on from the last
  checkpoint.

Whatever happens, one `end_run` ends the run (a final status, never "working"; the sandbox
released), except a suspension (cancel message SUSPEND: a shutdown), which leaves the run as it
is for the next start, and a transient fault (app.faults), which leaves it `faulted` at its
last checkpoint, its sandbox kept, until the reaper resumes it (app.runs.faults). When the workflow waits for approval, the job stops the sandbox, parks
the run, and takes at once an answer that came in meanwhile.

A run of kind "pull" is a follow-up on a pull request: a `GitHubPullHost`, the pull request's
own branch, and the thread's inbox as its task (the requests) and as the instructions its
agents are handed while they work (`RunInbox`, one taker per instruction). A run started by
`retry` continues the run it retries (and that one's predecessors: its lineage) from the
thread's last checkpoint, when that checkpoint is theirs and has steps left; else it starts
afresh, on what they were asked.

Checkpoint threads: one per issue, the run's thread key `owner/repo#N`. A run that starts
passes a fresh RunInput, with which LangGraph discards whatever an earlier run left on the
thread (pending steps, an unanswered plan) and begins at the first step; a run that continues
passes None or the decision, which resumes the thread's last checkpoint, and only when that
checkpoint is this run's (its `run_id`): a run that died before its first checkpoint starts
over. The one-active-run-per-thread rule keeps two runs from ever sharing the thread at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver

from app.agent.context import RunContext
from app.agent.graph import build_graph
from app.agent.host import RunHost, RunOutcome
from app.agent.models import check_models
from app.agent.nodes.common import sandbox_labels
from app.agent.runner import (
    describe_failure,
    execute_run,
    is_suspension,
    stop_reason,
    thread_config,
    unfinished_outcome,
)
from app.agent.state import RunInput
from app.agent.usage import Usage
from app.agent.workspace import RunFailed
from app.config import ConfigError, Settings
from app.faults import Faulted, Transient, transient
from app.github.app import GitHubApp
from app.hosts.github import GitHubHost
from app.hosts.identity import Requester, noreply_domain
from app.hosts.pull import GitHubPullHost
from app.runs.drive import Payload, end_stopped
from app.runs.faults import FaultPolicy
from app.runs.inbox import RunInbox, lineage
from app.runs.inputs import run_input as run_input  # re-exported: callers name it here
from app.runs.ledger import RunLedger
from app.runs.lifecycle import Lifecycle, end_run, release_sandbox
from app.runs.models import Run
from app.runs.retry import TryAgain, as_transient
from app.runs.store import Store
from app.runs.transcript import EventWriter
from app.sandbox.types import SandboxProvider
from app.text.redact import Redactor
from app.transcript import NO_TRANSCRIPT, Emitter, recording

log = structlog.get_logger(__name__)

CHECKPOINT_LOST = (
    "the saved progress of this run is gone, so its plan cannot be resumed; "
    "label the issue again to start over"
)
STOPPED = "the run was stopped"
CRASHED = "the run ended unexpectedly: {detail}"


class _StoppedWhileParked(Exception):
    """The run was stopped as it parked (or while its plan's checkpoint was gone)."""


@dataclass
class _Attempt:
    """One call of the job for one run: what it has built so far."""

    run: Run
    start: RunInput
    host: RunHost | None = None
    inbox: RunInbox | None = None
    runs: tuple[str, ...] = ()  # the run and those it retries (whose checkpoints it continues)
    payload: Payload = None  # what the workflow was last given
    events: Emitter = NO_TRANSCRIPT
    redactor: Redactor | None = None

    ledger: RunLedger | None = None

    def context(self, settings: Settings, sandboxes: SandboxProvider) -> RunContext:
        assert self.host is not None
        # The transcript's redactor: what the run learns (its tokens) is redacted there too.
        return RunContext(
            settings=settings,
            host=self.host,
            sandboxes=sandboxes,
            follow_ups=self.inbox,
            redactor=self.redactor if self.redactor is not None else Redactor(()),
            events=self.events,
            ledger=self.ledger,
        )


class RunJob:
    """The job function: `await job(run_id)`. One per process, shared by all its runs."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        github: GitHubApp,
        sandboxes: SandboxProvider,
        checkpointer: BaseCheckpointSaver[str],
    ) -> None:
        self._settings = settings
        self._store = store
        self._github = github
        self._sandboxes = sandboxes
        self._events = EventWriter(store)  # the transcripts of this process's runs
        self._lifecycle = Lifecycle(store, events=self._events)
        self._faults = FaultPolicy.from_settings(settings)
        self._graph = build_graph(checkpointer)  # one per process, shared by its runs

    async def __call__(self, run_id: str) -> None:
        try:
            run = await self._store.run(run_id)
        except Exception as exc:  # the store gone: the queue tries the job again later
            fault = as_transient(exc)
            if fault is None:
                raise
            raise fault from exc
        if run is None or not run.active:
            log.info("run.nothing_to_do", run=run_id, status=run.status if run else None)
            return
        self._events.start()
        redactor = Redactor(self._settings.secret_values())
        transcript = self._events.transcript(run.id, redactor)
        attempt = _Attempt(run, run_input(run), events=transcript, redactor=redactor)
        try:
            with (
                structlog.contextvars.bound_contextvars(run=run.id, thread=run.thread),
                recording(transcript),
            ):
                await self._drive(attempt)
        finally:  # the run's last events stored before its job is done (bounded wait)
            await self._events.flush_within()

    async def aclose(self) -> None:
        """Store the transcripts' last events, and stop writing them."""
        await self._events.aclose()

    async def _drive(self, attempt: _Attempt) -> None:
        """Work, then end the run in exactly one place: here, or in the stop just below."""
        ending: RunOutcome | None
        try:
            ending = await self._work(attempt)
        except asyncio.CancelledError as exc:
            if is_suspension(exc):
                log.info("run.suspended")  # resubmitted at the next start, from its checkpoint
            else:  # shielded: the front door's cancel may reach this task while it ends
                await asyncio.shield(self._end_stopped(attempt, stop_reason(exc)))
            raise
        except _StoppedWhileParked as exc:
            ending = self._ending(attempt, "stopped", str(exc))
        except Faulted as exc:
            ending = await self._wait_out(attempt, exc.fault)
        except Exception as exc:
            fault = transient(exc)  # before the workflow ran: GitHub or the store unavailable
            if fault is None:
                ending = self._ending(attempt, "failed", describe_failure(exc, self._settings))
            else:
                ending = await self._wait_out(attempt, fault)
        if ending is None:
            ending = await self._left_active(attempt)
        if ending is not None:
            await asyncio.shield(self._end(attempt, ending))

    async def _work(self, attempt: _Attempt) -> RunOutcome | None:
        """Drive the workflow, taking the next answer each time its plan waits. Returns how
        the run ended, or None when it waits for a person (or was finished meanwhile)."""
        run = attempt.run
        attempt.runs = await lineage(self._store, run)
        attempt.inbox = RunInbox(self._store, run, attempt.runs)
        attempt.ledger = RunLedger(self._store, run.id, attempt.runs)
        attempt.host = await self._host(attempt)
        first = await self._first_payload(attempt)
        if isinstance(first, _Nothing):
            return None
        payload: Payload = first
        while True:
            attempt.payload = payload
            answered = isinstance(payload, dict) and "verb" in payload  # take_answer moved it
            if not answered and await self._lifecycle.take_over(run.id) is None:
                log.info("run.finished_meanwhile")  # stopped before this job got to it
                return None
            context = attempt.context(self._settings, self._sandboxes)
            outcome = await execute_run(self._graph, context, thread_id=run.thread, start=payload)
            if outcome.status != "waiting":
                return outcome
            await release_sandbox(self._sandboxes, sandbox_labels(attempt.start), keep=True)
            if not await self._lifecycle.park(run.id):
                raise _StoppedWhileParked(STOPPED)  # the front door found no task to cancel
            decision = await self._lifecycle.take_answer(run.id)  # sent while it parked
            if decision is None:
                return None
            payload = decision

    async def _first_payload(self, attempt: _Attempt) -> Payload | _Nothing:
        """A fresh start, a decision, None (go on from the checkpoint) or _NOTHING."""
        run = attempt.run
        snapshot = await self._graph.aget_state(thread_config(run.thread))
        ours = snapshot.values.get("run_id") in attempt.runs
        if run.status == "queued":
            if len(attempt.runs) > 1 and ours and snapshot.next:
                log.info("run.retrying", retries=attempt.runs[1], at=list(snapshot.next))
                return None
            return await self._fresh_start(attempt)
        if run.status != "waiting":  # running, suspended, faulted: interrupted mid-run
            if ours:
                return None
            log.info("run.starting_over", reason="no checkpoint of this run")
            return await self._fresh_start(attempt)
        decision = await self._lifecycle.take_answer(run.id)
        if decision is None:
            return _NOTHING
        if ours and snapshot.interrupts:
            return decision
        if decision["verb"] == "stop":
            raise _StoppedWhileParked(f"stopped by {decision.get('by', 'someone')}")
        raise RunFailed(CHECKPOINT_LOST)

    async def _fresh_start(self, attempt: _Attempt) -> RunInput:
        if isinstance(attempt.host, GitHubPullHost):
            attempt.start = run_input(attempt.run, await attempt.host.head_branch())
        check_models(self._settings)  # a new start fails at once without a model key
        return attempt.start

    async def _wait_out(self, attempt: _Attempt, fault: Transient) -> RunOutcome | None:
        """The run met a transient fault: it waits at its last checkpoint, its sandbox kept
        (stopped), until the reaper resumes it; or, once the fault outlasted the policy, it
        fails saying why (None: it waits). When even the fault cannot be recorded (the
        store is gone too), the queue tries this job again later (TryAgain)."""
        run = attempt.run
        await release_sandbox(self._sandboxes, sandbox_labels(attempt.start), keep=True)
        try:
            waited = await self._lifecycle.fault(
                run.id, fault, checkpoint=await self._checkpoint_id(run.thread), policy=self._faults
            )
        except Exception as exc:
            if as_transient(exc) is None:
                raise
            raise TryAgain(f"the run's fault could not be recorded: {exc}") from exc
        if isinstance(waited, str):
            if attempt.host is None:
                return self._ending(attempt, "failed", waited)
            context = attempt.context(self._settings, self._sandboxes)
            return await unfinished_outcome(
                self._graph, context, run.thread, "failed", waited, attempt.payload
            )
        if waited is None:  # stopped meanwhile: the stop's reason is the store's
            return self._ending(attempt, "stopped", STOPPED)
        log.warning("run.waiting_on_fault", what=fault.what, retry_at=waited.isoformat())
        if attempt.host is not None:
            await attempt.host.waiting_on(fault.what, waited)
        return None

    async def _checkpoint_id(self, thread: str) -> str | None:
        """Where the run stands (its last checkpoint), or None when that cannot be read."""
        try:
            snapshot = await self._graph.aget_state(thread_config(thread))
        except Exception as exc:
            log.warning("run.checkpoint_unreadable", error=f"{type(exc).__name__}: {exc}")
            return None
        found = snapshot.config.get("configurable", {}).get("checkpoint_id")
        return str(found) if found else None

    def _ending(
        self, attempt: _Attempt, status: Literal["failed", "stopped"], reason: str
    ) -> RunOutcome:
        """The end of a run the workflow did not get to end."""
        return RunOutcome(status, attempt.run.id, Usage(), reason=reason)

    async def _end_stopped(self, attempt: _Attempt, reason: str) -> None:
        if attempt.host is None:  # stopped before its host existed: nothing was shown
            await self._end(attempt, self._ending(attempt, "stopped", reason))
            return
        context = attempt.context(self._settings, self._sandboxes)
        await end_stopped(
            self._graph, context, attempt.start, attempt.payload, reason, self._lifecycle
        )

    async def _end(self, attempt: _Attempt, outcome: RunOutcome) -> None:
        await end_run(
            outcome,
            host=attempt.host,
            sandboxes=self._sandboxes,
            run=attempt.start,
            lifecycle=self._lifecycle,
        )

    async def _left_active(self, attempt: _Attempt) -> RunOutcome | None:
        """The last word: a run still queued or running when its job is done has ended
        badly (nothing else recorded an end)."""
        try:
            current = await self._store.run(attempt.run.id)
        except Exception as exc:
            log.error("run.store_unreadable", error=f"{type(exc).__name__}: {exc}")
            return None
        if current is not None and current.status in ("queued", "running"):
            return self._ending(attempt, "failed", CRASHED.format(detail="no outcome was recorded"))
        return None

    async def _host(self, attempt: _Attempt) -> RunHost:
        run = attempt.run
        slug = self._settings.github_app_slug
        if not slug:
            slug = await asyncio.to_thread(self._github.slug)
        client = await asyncio.to_thread(self._github.client, run.installation_id, run.repo)
        make: Callable[..., GitHubHost] = GitHubHost
        if run.kind == "pull":  # a follow-up: the pull request's host, fed by the inbox
            assert attempt.inbox is not None
            make = functools.partial(GitHubPullHost, inbox=attempt.inbox)
        return make(
            client,
            repo=run.repo,
            issue_number=run.number,
            run_id=run.id,
            requester=Requester(run.requested_by),
            app_slug=slug,
            status_comment_id=run.status_comment_id,
            record=self._lifecycle.record_of(run.id),
            secrets=self._settings.secret_values(),
            email_domain=noreply_domain(self._settings.github_web_url),
        )


class _Nothing:
    """_first_payload's answer when no answer waits for the plan: nothing to resume."""


_NOTHING = _Nothing()


def make_run_job(
    settings: Settings,
    store: Store,
    github: GitHubApp,
    sandboxes: SandboxProvider,
    checkpointer: BaseCheckpointSaver[str],
) -> RunJob:
    """The run job of a process; warns at once when runs could not reach a model."""
    try:
        check_models(settings)
    except ConfigError as exc:
        log.warning("runs will fail until this is fixed", error=str(exc))
    return RunJob(settings, store, github, sandboxes, checkpointer)
