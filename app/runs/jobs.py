"""The run job: what the dispatcher calls with a run id (StartRun and ResumeRun alike).

The only place that assembles, for one run, the store, the GitHub App, a `GitHubHost`, the
sandbox provider, the checkpointer and the graph. What one call does depends on the run's
stored status:

- queued: start the workflow from its first step.
- waiting (a plan waits for a person): take the oldest answer in the thread's inbox for this
  run (`approve`; `revise <feedback>`; free text, read as feedback; a `stop` before any of
  them), consume it (only one consumer wins) and resume the approval interrupt with it,
  recording who decided. No answer waiting: nothing to do (a coalesced resubmission). The
  front door has already checked that the person has write access.
- running (the process died, or shut down, mid-run): go on from the last checkpoint.

A run of kind "pull" is a follow-up on a pull request: a `GitHubPullHost`, the pull request's
own branch, and the thread's inbox as its task (the requests) and as the instructions its
agents are handed while they work (`RunInbox`, one taker per instruction). A run started by
`retry` continues the run it retries (and that one's predecessors: its lineage) from the
thread's last checkpoint, when that checkpoint is theirs and has steps left; else it starts
afresh, on what they were asked.

The store follows the run: queued -> running -> waiting | succeeded | failed | stopped. A
workflow that ends with "tests failing" (a draft pull request that says so) is `failed`; one
that changed nothing is `succeeded`. A stop (`dispatcher.cancel`) ends the run as stopped with
a final status comment giving the reason the front door stored ("stopped by @carol"); a
shutdown (cancel message SUSPEND) leaves it running, to be resumed.
Whatever goes wrong, the run row never stays active and the status comment never stays
"working" (the `finally` below).

Parking races the front door, which sees the run `running` for the seconds its sandbox takes
to stop, so the job closes both gaps itself:
- an answer to the plan may come in while the run parks: the run records its plan question
  (`ask_plan`) before the plan is shown, the front door then keeps `approve` / `revise` in
  the inbox instead of refusing them, and the job, once the run is `waiting`, takes what is
  already there and resumes at once (the store write comes first, then the read: an answer
  recorded after the read finds the run `waiting` and is resubmitted by the front door);
- a stop may come in while the run parks: the front door finishes the run in the store while
  it is running, and the job, whose `waiting` then cannot be stored, ends the run itself with
  a final "stopped" status and no sandbox. A stop that finds the run `waiting` is its answer;
  one that arrives just after the job took another answer is taken before resuming.

Checkpoint threads: one per issue, the run's thread key `owner/repo#N`, as the agent's
checkpointer describes. A run that starts passes a fresh RunInput, with which LangGraph
discards whatever an earlier run left on the thread (pending steps, an unanswered plan) and
begins at the first step; a run that continues passes None or the decision, which resumes the
thread's last checkpoint, and only when that checkpoint is this run's (its `run_id`): a run
that died before its first checkpoint starts over. The store's one-active-run-per-thread rule
keeps two runs from ever sharing the thread at once. A thread per run would also work, but
`retry` (issue 5) wants the last run's last good step, which is on this thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard, cast

import structlog

from app.agent.budget import Usage
from app.agent.checkpoint import open_checkpointer
from app.agent.context import RunContext
from app.agent.graph import Graph, build_graph
from app.agent.host import (
    RunHost,
    RunOutcome,
)
from app.agent.host import RunStatus as OutcomeStatus
from app.agent.models import check_models
from app.agent.nodes.common import sandbox_labels
from app.agent.runner import describe_failure, execute_run, is_suspension, thread_config
from app.agent.state import Decision, RunInput, RunState
from app.agent.workspace import RunFailed
from app.config import ConfigError, Settings
from app.github.app import GitHubApp
from app.runs.github_host import GitHubHost, Requester, noreply_domain
from app.runs.host_wrappers import AsksPlan, StoppedReason
from app.runs.inbox import RunInbox, ask_plan, close_plan_question, lineage
from app.runs.models import Run, RunStatus, StoredCommand
from app.runs.pull_host import GitHubPullHost
from app.runs.store import Store
from app.sandbox.base import SandboxError, SandboxProvider
from app.text.sanitize import sanitize

log = structlog.get_logger(__name__)

PLAN_ANSWERS = frozenset({"approve", "revise", "instruct", "stop"})  # what a waiting plan reads
STORE_STATUS: dict[OutcomeStatus, RunStatus] = {
    "succeeded": "succeeded",
    "no_changes": "succeeded",
    "tests_failing": "failed",
    "failed": "failed",
    "stopped": "stopped",
    "waiting": "waiting",
}
TESTS_FAILING = "the tests still fail; the draft pull request says so: {url}"
TESTS_FAILING_PUSHED = "the tests still fail on {branch}, where the changes were pushed"
CHECKPOINT_LOST = (
    "the saved progress of this run is gone, so its plan cannot be resumed; "
    "label the issue again to start over"
)
STOPPED = "the run was stopped"
CRASHED = "the run ended unexpectedly: {detail}"


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


def decision_from(command: StoredCommand) -> Decision | None:
    """The plan decision a command stands for, or None when it carries nothing to act on."""
    if command.verb in ("approve", "stop"):
        return Decision(verb="approve" if command.verb == "approve" else "stop", by=command.author)
    if command.verb in ("revise", "instruct") and sanitize(command.text):
        return Decision(verb="revise", feedback=command.text, by=command.author)
    return None


def _is_decision(payload: RunInput | Decision | None) -> TypeGuard[Decision]:
    return isinstance(payload, dict) and "verb" in payload


def _stop_reason(exc: asyncio.CancelledError) -> str:
    return str(exc.args[0]) if exc.args and exc.args[0] else STOPPED


class _StoppedWhileParked(Exception):
    """A stop answered a plan whose checkpoint is gone: the run ends as stopped all the same."""


class _Nothing:
    """_first_payload's answer when no answer waits for the plan: nothing to resume."""


NOTHING = _Nothing()


@dataclass
class _Attempt:
    """One call of the job for one run."""

    run: Run
    host: RunHost | None = None
    reported: bool = False  # the host has shown a final status
    runs: tuple[str, ...] = ()  # the run and those it retries (whose checkpoints it continues)
    inbox: RunInbox | None = None
    pull: GitHubPullHost | None = None  # a follow-up's host, unwrapped


class RunJob:
    """The job function: `await job(run_id)`. One per process, shared by all runs."""

    def __init__(
        self, settings: Settings, store: Store, github: GitHubApp, sandboxes: SandboxProvider
    ) -> None:
        self._settings = settings
        self._store = store
        self._github = github
        self._sandboxes = sandboxes

    async def __call__(self, run_id: str) -> None:
        run = await self._store.run(run_id)
        if run is None or not run.active:
            log.info("run.nothing_to_do", run=run_id, status=run.status if run else None)
            return
        with structlog.contextvars.bound_contextvars(run=run.id, thread=run.thread):
            await self._drive(_Attempt(run))

    async def _drive(self, attempt: _Attempt) -> None:
        suspended = False
        try:
            attempt.runs = await lineage(self._store, attempt.run)
            attempt.inbox = RunInbox(self._store, attempt.run, attempt.runs)
            attempt.host = await self._host(attempt)
            await self._work(attempt)
        except asyncio.CancelledError as exc:
            if is_suspension(exc):
                suspended = True  # resubmitted at the next start, from its last checkpoint
                log.info("run.suspended")
            else:
                await asyncio.shield(self._end(attempt, "stopped", _stop_reason(exc)))
            raise
        except _StoppedWhileParked as exc:
            # Shielded: the front door's cancel may reach this task while it ends the run.
            await asyncio.shield(self._end(attempt, "stopped", str(exc)))
        except Exception as exc:
            await self._end(attempt, "failed", describe_failure(exc))
        finally:
            if not suspended:
                await self._never_left_active(attempt)

    async def _work(self, attempt: _Attempt) -> None:
        async with open_checkpointer(self._settings) as saver:
            graph = build_graph(saver)
            payload = await self._first_payload(attempt, graph)
            if isinstance(payload, _Nothing):
                return
            if isinstance(payload, dict) and "run_id" in payload:
                check_models(self._settings)  # a new start fails at once without a model key
            assert attempt.host is not None
            context = RunContext(
                settings=self._settings,
                host=attempt.host,
                sandboxes=self._sandboxes,
                follow_ups=attempt.inbox,
            )
            await self._execute(attempt, graph, context, payload)

    async def _execute(
        self,
        attempt: _Attempt,
        graph: Graph,
        context: RunContext,
        payload: RunInput | Decision | None,
    ) -> None:
        """Drive the workflow, taking the next answer each time its plan waits."""
        run = attempt.run
        while True:
            if await self._store.set_run_status(run.id, "running") is None:
                log.info("run.finished_meanwhile")  # stopped before this job got to it
                attempt.reported = True
                return
            if _is_decision(payload) and payload["verb"] != "stop":
                # A stop that found the plan still waiting, just after this answer was taken.
                payload = await self._take_decision(run, stops_only=True) or payload
            try:
                outcome = await execute_run(graph, context, thread_id=run.thread, start=payload)
            except asyncio.CancelledError as exc:
                attempt.reported = not is_suspension(exc)  # execute_run showed "stopped"
                raise
            attempt.reported = outcome.status != "waiting"
            if not await self._record(run, outcome) and outcome.status == "waiting":
                # Stopped while it parked: the front door found no task to cancel.
                raise _StoppedWhileParked(STOPPED)
            if outcome.status != "waiting":
                return
            decision = await self._take_decision(run)  # an answer sent while it parked
            if decision is None:
                return
            payload = decision

    async def _first_payload(
        self, attempt: _Attempt, graph: Graph
    ) -> RunInput | Decision | _Nothing | None:
        """A fresh start, a decision, None (go on from the checkpoint) or NOTHING."""
        run = attempt.run
        snapshot = await graph.aget_state(thread_config(run.thread))
        ours = snapshot.values.get("run_id") in attempt.runs
        if run.status == "queued":
            if len(attempt.runs) > 1 and ours and snapshot.next:
                log.info("run.retrying", retries=attempt.runs[1], at=list(snapshot.next))
                return None
            return await self._fresh_start(attempt)
        if run.status == "running":
            if ours:
                return None
            log.info("run.starting_over", reason="no checkpoint of this run")
            return await self._fresh_start(attempt)
        decision = await self._take_decision(run)
        if decision is None:
            return NOTHING
        if ours and snapshot.interrupts:
            return decision
        if decision["verb"] == "stop":
            raise _StoppedWhileParked(f"stopped by {decision.get('by', 'someone')}")
        raise RunFailed(CHECKPOINT_LOST)

    async def _fresh_start(self, attempt: _Attempt) -> RunInput:
        branch = await attempt.pull.head_branch() if attempt.pull is not None else None
        return run_input(attempt.run, branch)

    async def _pending_answers(self, run: Run) -> list[StoredCommand]:
        commands = await self._store.pending_commands(run.thread)
        return [c for c in commands if c.run_id == run.id and c.verb in PLAN_ANSWERS]

    async def _take_decision(self, run: Run, *, stops_only: bool = False) -> Decision | None:
        """Consume the oldest answer to the waiting plan (a stop first); None when none."""
        answers = await self._pending_answers(run)
        if stops_only:
            answers = [command for command in answers if command.verb == "stop"]
        answers.sort(key=lambda command: command.verb != "stop")  # stable: oldest first
        for command in answers:
            if not await self._store.consume_command(command.id):
                continue  # another consumer took it
            decision = decision_from(command)
            if decision is None:
                log.info("run.answer_ignored", verb=command.verb, by=command.author)
                continue
            log.info("run.decision", verb=decision["verb"], by=command.author)
            await close_plan_question(self._store, run)
            return decision
        return None

    async def _record(self, run: Run, outcome: RunOutcome) -> bool:
        """Store the outcome; False when the run was finished meanwhile (stopped)."""
        error = outcome.reason
        if outcome.status == "tests_failing":
            error = (
                TESTS_FAILING.format(url=outcome.url)
                if outcome.url
                else TESTS_FAILING_PUSHED.format(branch=outcome.branch)
            )
        stored = await self._set_status(run, STORE_STATUS[outcome.status], error)
        log.info("run.outcome", status=outcome.status, reason=outcome.reason, stored=stored)
        return stored

    async def _set_status(self, run: Run, status: RunStatus, error: str | None) -> bool:
        # Shielded: a cancellation must not leave the store behind what GitHub shows.
        updated = await asyncio.shield(self._store.set_run_status(run.id, status, error=error))
        return updated is not None

    async def _end(self, attempt: _Attempt, status: OutcomeStatus, reason: str) -> None:
        """Finish a run the workflow did not finish: sandbox, status comment, store."""
        run = attempt.run
        if not attempt.reported:
            await self._destroy_sandboxes(run)
            if attempt.host is not None:
                try:
                    await attempt.host.finish(RunOutcome(status, run.id, Usage(), reason=reason))
                except Exception as exc:  # the host logs its own failures; belt and braces
                    log.error("run.final_status_failed", error=f"{type(exc).__name__}: {exc}")
            attempt.reported = True
        log.info("run.ended", status=status, reason=reason)
        try:
            await self._set_status(run, STORE_STATUS[status], reason)
            await close_plan_question(self._store, run)  # nobody answers an ended run
        except Exception as exc:
            log.error("run.status_not_saved", error=f"{type(exc).__name__}: {exc}")

    async def _destroy_sandboxes(self, run: Run) -> None:
        labels = sandbox_labels(cast(RunState, run_input(run)))
        try:
            for sandbox in await asyncio.to_thread(self._sandboxes.find, labels):
                await asyncio.to_thread(sandbox.destroy)
        except SandboxError as exc:
            log.warning("sandbox.cleanup_failed", error=str(exc))

    async def _never_left_active(self, attempt: _Attempt) -> None:
        """The last word: a run still queued or running when its job ends has ended badly."""
        try:
            current = await self._store.run(attempt.run.id)
        except Exception as exc:
            log.error("run.store_unreadable", error=f"{type(exc).__name__}: {exc}")
            return
        if current is not None and current.status in ("queued", "running"):
            await self._end(attempt, "failed", CRASHED.format(detail="no outcome was recorded"))

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
        host = make(
            client,
            repo=run.repo,
            issue_number=run.number,
            run_id=run.id,
            requester=Requester(run.requested_by),
            app_slug=slug,
            status_comment_id=run.status_comment_id,
            save_status_comment=functools.partial(self._store.set_status_comment, run.id),
            save_pull_request=functools.partial(self._store.set_pr_number, run.id),
            secrets=self._settings.secret_values(),
            email_domain=noreply_domain(self._settings.github_web_url),
        )
        if isinstance(host, GitHubPullHost):
            attempt.pull = host
        asking = AsksPlan(host, functools.partial(ask_plan, self._store, run))
        return StoppedReason(asking, functools.partial(self._stop_reason, run.id))

    async def _stop_reason(self, run_id: str) -> str | None:
        """Why the front door stopped the run, when it did (the row is stopped first)."""
        run = await self._store.run(run_id)
        return run.error if run is not None and run.status == "stopped" else None


def make_run_job(
    settings: Settings, store: Store, github: GitHubApp, sandboxes: SandboxProvider
) -> RunJob:
    """The run job of a server; warns at once when runs could not reach a model."""
    try:
        check_models(settings)
    except ConfigError as exc:
        log.warning("runs will fail until this is fixed", error=str(exc))
    return RunJob(settings, store, github, sandboxes)
