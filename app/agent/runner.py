"""execute_run: drive one run of the workflow to its end (or to a durable wait), whatever happens.

Every way a run can end reaches the host exactly once with a final status: the report step
on a normal end; here for an error (failed, with a one-line reason) or a cancellation
(stopped). A run is never left showing "working". Approval is asked of the host: a terminal
answers at once; GitHub answers later, so the run parks (sandbox stopped) and returns
"waiting", to be resumed with the person's decision.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import anthropic
import openai
import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from app.agent.budget import BudgetExhausted, Usage
from app.agent.context import RunContext
from app.agent.graph import Graph
from app.agent.host import ApprovalRequest, RunOutcome, RunStatus
from app.agent.nodes.common import sandbox_labels
from app.agent.nodes.delivery import destroy_sandboxes, outcome_of
from app.agent.state import Decision, RunInput, RunState
from app.agent.workspace import RunFailed
from app.config import ConfigError
from app.sandbox.base import SandboxError

log = structlog.get_logger(__name__)
MAX_REASON_CHARS = 600
# Cancelling a run's task with this message suspends the run instead of stopping it (the
# server is shutting down): no final status, the sandbox and the checkpoint are kept, and the
# run goes on from its last step when the server is back.
SUSPEND = "open-swe:suspend"
STOPPED = "the run was stopped"


def thread_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 200}


async def execute_run(
    graph: Graph,
    context: RunContext,
    *,
    thread_id: str,
    start: RunInput | Decision | None,
) -> RunOutcome:
    """Start (RunInput), resume after approval (Decision) or retry from the last step (None)."""
    config = thread_config(thread_id)
    payload: Any = Command(resume=start) if _is_decision(start) else start
    try:
        while True:
            # Default durability ("async": a step's checkpoint is written while the next
            # runs). "sync" would be inherited by the checkpoint-less agents inside the steps,
            # which langgraph 1.2 trips over (it awaits a checkpoint write they never make).
            result = await graph.ainvoke(payload, config, context=context, version="v2")
            state: RunState = result.value
            if not result.interrupts:
                return outcome_of(state)  # the report step has told the host
            value = result.interrupts[0].value
            decision = await context.host.decide(ApprovalRequest(value["plan"], value["revision"]))
            if decision is None:
                await _park(graph, context, config)
                return RunOutcome("waiting", state["run_id"], Usage.from_dict(state.get("usage")))
            payload = Command(resume=decision)
    except asyncio.CancelledError as exc:
        if is_suspension(exc):
            raise
        reason = str(exc.args[0]) if exc.args and exc.args[0] else STOPPED
        await asyncio.shield(_end(graph, context, config, "stopped", reason, start))
        raise
    except Exception as exc:
        return await _end(graph, context, config, "failed", describe_failure(exc), start)


def is_suspension(exc: asyncio.CancelledError) -> bool:
    """Was the run cancelled to be suspended (shutdown), not stopped?"""
    return bool(exc.args) and exc.args[0] == SUSPEND


def _is_decision(start: object) -> bool:
    return isinstance(start, dict) and "verb" in start


def describe_failure(exc: BaseException) -> str:
    """One line a person can act on; never a stack trace."""
    if isinstance(exc, BudgetExhausted | RunFailed | ConfigError):
        return str(exc)
    if isinstance(exc, anthropic.APITimeoutError | openai.APITimeoutError):
        return "the model API timed out (retried with backoff); try again later"
    if isinstance(exc, anthropic.APIConnectionError | openai.APIConnectionError):
        return "could not reach the model API (retried with backoff); check the base URL"
    if isinstance(exc, anthropic.APIStatusError | openai.APIStatusError):
        return (
            f"the model API answered HTTP {exc.status_code} (retried with backoff): "
            f"{_api_message(exc)}"
        )
    if isinstance(exc, SandboxError):
        return f"sandbox error: {exc}"
    log.error("run.crashed", exc_info=exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def _api_message(exc: anthropic.APIStatusError | openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


async def _end(
    graph: Graph,
    context: RunContext,
    config: RunnableConfig,
    status: RunStatus,
    reason: str,
    start: RunInput | Decision | None,
) -> RunOutcome:
    """Final status for a run the graph did not finish; cleanup first, never raises."""
    reason = context.redactor.scrub(reason)[:MAX_REASON_CHARS]
    state: dict[str, Any] = {}
    try:
        state = dict((await graph.aget_state(config)).values)
    except Exception as exc:  # a broken checkpointer must not hide the original failure
        log.warning("run.state_unreadable", error=str(exc))
    if isinstance(start, dict) and "run_id" in start:
        state = {**start, **state}
    outcome = RunOutcome(
        status=status,
        run_id=str(state.get("run_id", "")),
        usage=Usage.from_dict(state.get("usage")),
        reason=reason,
        branch=state.get("branch"),
        plan=state.get("plan"),
    )
    try:
        if "run_id" in state:
            await destroy_sandboxes(cast(RunState, state), context)
        await context.host.finish(outcome)
    except Exception as exc:
        log.error("run.final_status_failed", error=context.redactor.scrub(str(exc)))
    log.info("run.ended", status=status, reason=reason, run=outcome.run_id)
    return outcome


async def _park(graph: Graph, context: RunContext, config: RunnableConfig) -> None:
    """Release compute while a person decides (the sandbox is started again on resume)."""
    state = cast(RunState, (await graph.aget_state(config)).values)
    labels = sandbox_labels(state)
    context.forget(labels)
    try:
        for sandbox in await asyncio.to_thread(context.sandboxes.find, labels):
            await asyncio.to_thread(sandbox.stop)
    except SandboxError as exc:
        log.warning("sandbox.stop_failed", error=str(exc))
