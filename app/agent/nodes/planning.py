"""plan and approval: a read-only exploration that ends in a short plan, then a person's word."""

from __future__ import annotations

import asyncio
from typing import Literal

from langgraph.types import Command, interrupt

from app.agent import agents, prompts
from app.agent.models import chat_model
from app.agent.nodes.common import Rt, announce, budget_for, done, open_workspace
from app.agent.state import (
    ApprovalUpdate,
    OutcomeDict,
    PlanDecision,
    PlanDict,
    PlanUpdate,
    RunState,
)
from app.agent.usage import Usage
from app.text.sanitize import fence, sanitize

MAX_STEP_CHARS = 300


async def plan(state: RunState, runtime: Rt) -> PlanUpdate:
    settings = runtime.context.settings
    budget = budget_for(state, runtime, "plan")
    sandbox, fields, _ = await open_workspace(state, runtime)
    instructions = fields.get("instructions", state.get("instructions"))
    source = fields.get("instructions_file", state.get("instructions_file"))
    proposal = await agents.propose_plan(
        settings=settings,
        redactor=runtime.context.redactor,
        sandbox=sandbox,
        budget=budget,
        model=chat_model(settings, "plan"),
        summarizer=chat_model(settings, "summarize"),
        follow_ups=runtime.context.follow_ups,
        system=prompts.plan_system(fields["repo_dir"], instructions, source),
        request=prompts.plan_request(
            state["task"], previous=state.get("plan"), feedback=state.get("feedback", [])
        ),
    )
    # The plan is shown to people as written by the model: keep it plain and bounded.
    new_plan = PlanDict(
        title=sanitize(proposal.title).replace("\n", " ")[:120] or state["title"],
        steps=[
            sanitize(s).replace("\n", " ")[:MAX_STEP_CHARS] for s in proposal.steps if sanitize(s)
        ],
    )
    revision = state.get("plan_revision", 0) + 1
    usage = budget.spent()
    await runtime.context.host.post_plan(
        new_plan, awaiting_approval=not state["auto_approve"], revision=revision
    )
    await announce(
        runtime,
        "plan",
        f"{len(new_plan['steps'])} steps (revision {revision})",
        Usage.from_dict(usage),
    )
    return PlanUpdate(
        **fields, plan=new_plan, plan_revision=revision, usage=usage, steps_done=done(state, "plan")
    )


async def approval(state: RunState, runtime: Rt) -> Command[Literal["plan", "implement", "report"]]:
    """Auto-approved runs pass; others pause here (durably) until a person decides.

    The resume value is a PlanDecision: approve, revise (with feedback: back to plan), or stop.
    """
    usage = Usage.from_dict(state.get("usage"))
    if state["auto_approve"]:
        await announce(runtime, "approval", "auto-approved", usage)
        auto = ApprovalUpdate(approved_by="auto", steps_done=done(state, "approval"))
        return Command(goto="implement", update=auto)
    decision: PlanDecision = interrupt(
        {"plan": state["plan"], "revision": state.get("plan_revision", 1)}
    )
    who = decision.get("by") or "someone"
    if decision.get("verb") == "approve":
        await announce(runtime, "approval", f"approved by {who}", usage)
        approved = ApprovalUpdate(approved_by=who, steps_done=done(state, "approval"))
        return Command(goto="implement", update=approved)
    feedback_text = decision.get("feedback", "")
    revising = decision.get("verb") == "revise"
    visible: str = await asyncio.to_thread(sanitize, feedback_text) if revising else ""
    if visible:
        feedback = await asyncio.to_thread(fence, f"plan feedback from {who}", feedback_text)
        await announce(runtime, "approval", f"revision requested by {who}", usage)
        revise = ApprovalUpdate(feedback=[*state.get("feedback", []), feedback])
        return Command(goto="plan", update=revise)
    if decision.get("verb") == "stop":
        reason = decision.get("reason") or f"stopped by {who} at plan approval"
        await announce(runtime, "approval", reason, usage)
        outcome = OutcomeDict(
            status="stopped",
            branch=state["branch"],
            url=None,
            commit=None,
            title=None,
            reason=reason,
        )
        return Command(goto="report", update=ApprovalUpdate(outcome=outcome))
    raise ValueError(f"not a plan decision: {decision!r} (want approve, or revise with feedback)")
