"""execute_run: drive the workflow of one run until it ends or waits for a person.

It returns how the run turned out: the workflow's own end (published, nothing changed, stopped
at approval), a failure (one line a person can act on, from any error), or "waiting" when the
host will answer the plan later (GitHub: a comment; a terminal answers at once). A transient
fault (app.faults: the model API, GitHub or the database unavailable) is not a failure: it
raises `Faulted`, the run stopped at its last checkpoint, for its driver to wait out. It ends
nothing itself: showing the final status and releasing the sandbox are the run's lifecycle's
(app.runs.lifecycle.end_run), whoever drives the run. A cancellation propagates; the driver
asks `unfinished_outcome` what to report.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import structlog
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from app.agent.budget import BudgetExhausted, Usage, steps_exhausted
from app.agent.context import RunContext
from app.agent.graph import Graph
from app.agent.host import ApprovalRequest, OutcomeStatus, RunOutcome
from app.agent.nodes.delivery import outcome_of
from app.agent.state import PlanDecision, RunInput, RunState
from app.agent.workspace import RunFailed
from app.config import ConfigError, Settings
from app.faults import Faulted, transient
from app.sandbox.types import SandboxError
from app.suspend import SUSPEND as SUSPEND  # re-exported: callers name it here too
from app.suspend import is_suspension as is_suspension

log = structlog.get_logger(__name__)
MAX_REASON_CHARS = 600
STOPPED = "the run was stopped"


def thread_config(thread_id: str, steps: int = 200) -> RunnableConfig:
    """The run's checkpoint thread; `steps` bounds the workflow's steps (LangGraph's recursion
    limit: OPEN_SWE_MAX_AGENT_STEPS)."""
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": steps}


async def execute_run(
    graph: Graph,
    context: RunContext,
    *,
    thread_id: str,
    start: RunInput | PlanDecision | None,
) -> RunOutcome:
    """Start (RunInput), resume after approval (PlanDecision) or go on from the last step
    (None)."""
    config = thread_config(thread_id, context.settings.max_agent_steps)
    payload: Any = Command(resume=start) if _is_decision(start) else start
    try:
        while True:
            # Durability "sync": a step's checkpoint is written before the next step starts,
            # so a checkpoint that cannot be written stops the run at once (a transient
            # fault, waited out), never after the next step published. The agents inside the
            # steps run with durability "exit" of their own (app.agent.agents).
            result = await graph.ainvoke(
                payload, config, context=context, version="v2", durability="sync"
            )
            state: RunState = result.value
            if not result.interrupts:
                return outcome_of(state)
            value = result.interrupts[0].value
            decision = await context.host.decide(ApprovalRequest(value["plan"], value["revision"]))
            if decision is None:
                return RunOutcome("waiting", state["run_id"], Usage.from_dict(state.get("usage")))
            payload = Command(resume=decision)
    except Exception as exc:
        fault = transient(exc)
        if fault is not None:
            log.warning("run.faulted", what=fault.what, detail=context.redactor.scrub(fault.detail))
            raise Faulted(fault) from exc
        reason = describe_failure(exc, context.settings)
        return await unfinished_outcome(graph, context, thread_id, "failed", reason, start)


def _is_decision(start: object) -> bool:
    return isinstance(start, dict) and "verb" in start


def describe_failure(exc: BaseException, settings: Settings | None = None) -> str:
    """One line a person can act on; never a stack trace. A limit names itself (and its
    status comment the setting that raises it), never "internal error"."""
    if isinstance(exc, BudgetExhausted | RunFailed | ConfigError):
        return str(exc)
    if isinstance(exc, GraphRecursionError):
        return str(steps_exhausted(settings))
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


async def unfinished_outcome(
    graph: Graph,
    context: RunContext,
    thread_id: str,
    status: OutcomeStatus,
    reason: str,
    start: RunInput | PlanDecision | None,
) -> RunOutcome:
    """How a run the workflow did not finish turned out (failed, or stopped), with what its
    last checkpoint knows (usage, branch, plan). Never raises."""
    reason = context.redactor.scrub(reason)[:MAX_REASON_CHARS]
    state: dict[str, Any] = {}
    try:
        state = dict((await graph.aget_state(thread_config(thread_id))).values)
    except Exception as exc:  # a broken checkpointer must not hide the original failure
        log.warning("run.state_unreadable", error=str(exc))
    if isinstance(start, dict) and "run_id" in start:
        state = {**start, **state}
    return RunOutcome(
        status=status,
        run_id=str(state.get("run_id", "")),
        usage=Usage.from_dict(state.get("usage")),
        reason=reason,
        branch=state.get("branch"),
        plan=state.get("plan"),
    )


def stop_reason(exc: asyncio.CancelledError) -> str:
    """Why a run was stopped: the cancellation's message, or the bare fact."""
    return str(exc.args[0]) if exc.args and exc.args[0] else STOPPED
