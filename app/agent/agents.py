"""The model-driven parts of a run: the read-only planner, the coding agent, the PR writer.

Both agents are LangChain `create_agent` loops with middleware: deepagents' filesystem tools
over the sandbox, a todo list (coding), summarisation of long histories, a model-call limit,
our budget and the tool-result and secret filters. No subagents: every model call goes
through the same limits.

The agents keep no checkpoints of their own (`checkpointer=False`; they would otherwise
inherit the workflow's): a step that is retried starts its agent afresh, which is right when
its sandbox, and the work in it, was replaced in between. The workflow's own checkpoints
hold only the results of each step.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ModelCallLimitMiddleware,
    SummarizationMiddleware,
    TodoListMiddleware,
)
from langchain.agents.middleware.model_call_limit import ModelCallLimitExceededError
from langchain.agents.structured_output import ToolStrategy
from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from langgraph.errors import GraphRecursionError
from pydantic import BaseModel, Field

from app.agent import prompts
from app.agent.budget import (
    DEFAULT_OUTPUT_TOKENS,
    Budget,
    BudgetExhausted,
    BudgetMiddleware,
    UsageMeter,
    steps_exhausted,
)
from app.agent.followups import FollowUpMiddleware, FollowUps
from app.agent.toolcache import ToolSchemaCache
from app.agent.tools import (
    RepoWorkingDirectory,
    SecretScrubber,
    ToolResultLimit,
    ToolTranscript,
    filesystem,
)
from app.agent.workspace import RunFailed
from app.config import Settings
from app.sandbox.base import Sandbox
from app.text.redact import Redactor

SUMMARIZE_AT_TOKENS = 100_000  # below every supported model's context window
KEEP_MESSAGES = 20


class SubmitPlan(BaseModel):
    """Submit the plan for review."""

    title: str = Field(description="a short title for the change, under 72 characters")
    steps: list[str] = Field(
        description="1 to 10 concrete steps, one line each", min_length=1, max_length=10
    )


class PullRequestText(BaseModel):
    """Title and description of the pull request."""

    title: str = Field(description="imperative mood, under 72 characters")
    summary: str = Field(description="what changed and why, for a reviewer (markdown)")


@functools.cache
def _plan_format() -> ToolStrategy[SubmitPlan]:
    """Built once per process: building it generates SubmitPlan's JSON schema."""
    return ToolStrategy(SubmitPlan)


def _limits(
    redactor: Redactor,
    budget: Budget,
    model: BaseChatModel,
    summarizer: BaseChatModel,
    follow_ups: FollowUps | None,
) -> list[AgentMiddleware[Any, Any, Any]]:
    # Follow-ups first: what people added meanwhile is part of what gets summarised and
    # scrubbed, and counts against the budget like any other input.
    steering: list[AgentMiddleware[Any, Any, Any]] = (
        [FollowUpMiddleware(follow_ups)] if follow_ups is not None else []
    )
    return [
        *steering,
        BudgetMiddleware(budget),
        ModelCallLimitMiddleware(run_limit=budget.remaining_model_calls, exit_behavior="error"),
        SummarizationMiddleware(
            model,
            summarizer=summarizer,
            trigger=("tokens", SUMMARIZE_AT_TOKENS),
            keep=("messages", KEEP_MESSAGES),
        ),
        ToolTranscript(),  # outside the limit: the transcript bounds results on its own
        ToolResultLimit(),
        SecretScrubber(redactor),
    ]


def _parent_configurable() -> dict[str, Any]:
    """The configurable keys the agent would inherit from the workflow's step."""
    parent = var_child_runnable_config.get() or {}
    return dict(parent.get("configurable") or {})


async def _run_agent(agent: Any, message: str, budget: Budget) -> dict[str, Any]:
    """Invoke an agent under the budget: usage metered, wall time and call limits enforced."""
    config: RunnableConfig = {
        "callbacks": [UsageMeter(budget)],
        "recursion_limit": budget.settings.max_agent_steps,
        # The workflow writes each step's checkpoint before the next ("sync"); an agent
        # inherits that, but keeps no checkpoints, and langgraph 1.2 then awaits a write it
        # never made. Its own durability is "async" (nothing to write, nothing awaited).
        "configurable": {**_parent_configurable(), CONFIG_KEY_DURABILITY: "async"},
    }
    try:
        async with asyncio.timeout(max(budget.remaining_seconds, 0.001)):
            result: dict[str, Any] = await agent.ainvoke(
                {"messages": [HumanMessage(message)]}, config
            )
    except TimeoutError:
        raise BudgetExhausted("time", f"{budget.settings.max_run_minutes:g} minutes") from None
    except ModelCallLimitExceededError:
        raise BudgetExhausted("model calls", f"{budget.settings.max_model_calls} per run") from None
    except GraphRecursionError:
        raise steps_exhausted(budget.settings) from None
    return result


async def propose_plan(
    *,
    settings: Settings,
    redactor: Redactor,
    sandbox: Sandbox,
    budget: Budget,
    model: BaseChatModel,
    summarizer: BaseChatModel,
    system: str,
    request: str,
    follow_ups: FollowUps | None = None,
) -> SubmitPlan:
    middleware: list[AgentMiddleware[Any, Any, Any]] = [
        filesystem(sandbox, read_only=True, max_seconds=settings.command_timeout),
        *_limits(redactor, budget, model, summarizer, follow_ups),
        ToolSchemaCache(),  # innermost: the tools as the model will be sent them
    ]
    agent = create_agent(
        model,
        system_prompt=system,
        middleware=middleware,
        response_format=_plan_format(),
        checkpointer=False,
    )
    result = await _run_agent(agent, request, budget)
    plan = result.get("structured_response")
    if not isinstance(plan, SubmitPlan):
        raise RunFailed("the model stopped without submitting a plan; retry the run")
    return plan


async def implement(
    *,
    settings: Settings,
    redactor: Redactor,
    sandbox: Sandbox,
    budget: Budget,
    model: BaseChatModel,
    summarizer: BaseChatModel,
    repo_dir: str,
    system: str,
    request: str,
    follow_ups: FollowUps | None = None,
) -> str:
    """Run the coding agent; returns its closing summary."""
    middleware: list[AgentMiddleware[Any, Any, Any]] = [
        filesystem(sandbox, read_only=False, max_seconds=settings.command_timeout),
        RepoWorkingDirectory(repo_dir),
        TodoListMiddleware(),
        *_limits(redactor, budget, model, summarizer, follow_ups),
        AnthropicPromptCachingMiddleware(unsupported_model_behavior="ignore"),
        ToolSchemaCache(),  # innermost: after the caching mark on the last tool
    ]
    agent = create_agent(model, system_prompt=system, middleware=middleware, checkpointer=False)
    result = await _run_agent(agent, request, budget)
    messages = result.get("messages", [])
    last = messages[-1] if messages else None
    return last.text.strip() if isinstance(last, AIMessage) else ""


async def write_pull_request(
    *, budget: Budget, model: BaseChatModel, request: str
) -> PullRequestText:
    room = await budget.admit(len(prompts.PR_SYSTEM) + len(request))
    own = getattr(model, "max_tokens", None)
    if room < (own if isinstance(own, int) else DEFAULT_OUTPUT_TOKENS):
        # Structured output takes no per-call settings: a copy of the model, bounded.
        model = model.model_copy(update={"max_tokens": room})
    writer = model.with_structured_output(PullRequestText)
    config: RunnableConfig = {"callbacks": [UsageMeter(budget)]}
    result = await writer.ainvoke([SystemMessage(prompts.PR_SYSTEM), HumanMessage(request)], config)
    if not isinstance(result, PullRequestText):
        raise RunFailed("the model did not write a pull request title and summary; retry")
    return result
