"""Driving the workflow to its end in this process: `run_to_end`, for a host that answers its
plan at once (the terminal, app.local), and the stop that ends a run the workflow did not end.

A transient fault is waited out here, in the process, with the stored runs' backoff
(app.runs.faults); a stored run's job (app.runs.jobs) waits it out in the store instead.
"""

from __future__ import annotations

import asyncio

from app.agent.context import RunContext
from app.agent.graph import Graph
from app.agent.host import RunOutcome
from app.agent.nodes.common import sandbox_labels
from app.agent.runner import execute_run, is_suspension, stop_reason, unfinished_outcome
from app.agent.state import PlanDecision, RunInput
from app.faults import Faulted
from app.runs.faults import FaultPolicy
from app.runs.lifecycle import Lifecycle, end_run, release_sandbox
from app.runs.store.base import utcnow

Payload = RunInput | PlanDecision | None  # start afresh, answer the plan, go on


async def run_to_end(
    graph: Graph, context: RunContext, run: RunInput, payload: Payload
) -> RunOutcome:
    """Drive a run whose host answers its plan at once (a terminal) to its end, through
    `end_run` whatever happens; a stop (cancellation) ends it stopped and propagates. A host
    that answers later leaves the run waiting, its sandbox stopped. A transient fault is
    waited out here, in the process (its sandbox kept), with the stored runs' backoff."""
    try:
        outcome = await _wait_out_faults(graph, context, run, payload)
    except asyncio.CancelledError as exc:
        if not is_suspension(exc):
            await asyncio.shield(end_stopped(graph, context, run, payload, stop_reason(exc)))
        raise
    if outcome.status == "waiting":
        await release_sandbox(context.sandboxes, sandbox_labels(run), keep=True)
    else:
        await asyncio.shield(
            end_run(outcome, host=context.host, sandboxes=context.sandboxes, run=run)
        )
    return outcome


async def _wait_out_faults(
    graph: Graph, context: RunContext, run: RunInput, payload: Payload
) -> RunOutcome:
    policy = FaultPolicy.from_settings(context.settings)
    since, tries = None, 0
    while True:
        try:
            return await execute_run(graph, context, thread_id=run["thread_id"], start=payload)
        except Faulted as exc:
            now = utcnow()
            since = since or now
            retry_at = policy.next_try(since, tries, now, exc.fault.retry_after)
            if retry_at is None:
                reason = policy.gave_up(exc.fault)
                return await unfinished_outcome(
                    graph, context, run["thread_id"], "failed", reason, payload
                )
            await context.host.waiting_on(exc.fault.what, retry_at)
            await asyncio.sleep((retry_at - now).total_seconds())
            tries += 1
            payload = None  # from the last checkpoint


async def end_stopped(
    graph: Graph,
    context: RunContext,
    run: RunInput,
    payload: Payload,
    reason: str,
    lifecycle: Lifecycle | None = None,
) -> None:
    outcome = await unfinished_outcome(graph, context, run["thread_id"], "stopped", reason, payload)
    await end_run(
        outcome, host=context.host, sandboxes=context.sandboxes, run=run, lifecycle=lifecycle
    )
