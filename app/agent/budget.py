"""Per-run accounting and limits: model calls, tokens, estimated cost, wall time.

Tokens come from each response's `usage_metadata`, seen by a callback handler on every model
call of a step (agent turns, summarisation, structured output). Cost is an ESTIMATE from the
small price table below (list prices in USD per million tokens, cache reads and writes priced
from the input price); unknown models are priced like Claude Sonnet so a cap still bites.
Wall time counts working time only: the hours a run waits for a person do not count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from typing_extensions import TypedDict

from app.config import Settings


@dataclass(frozen=True)
class Price:
    input: float  # USD per million uncached input tokens
    output: float
    cache_read_factor: float = 0.1  # share of the input price for cached reads
    cache_write_factor: float = 1.25


# Longest matching prefix wins. List prices, checked 2025; an estimate, not a bill.
PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-haiku-4": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "gpt-5-nano": Price(0.05, 0.4, 0.1, 1.0),
    "gpt-5-mini": Price(0.25, 2.0, 0.1, 1.0),
    "gpt-5": Price(1.25, 10.0, 0.1, 1.0),
    "gpt-4.1-nano": Price(0.1, 0.4, 0.25, 1.0),
    "gpt-4.1-mini": Price(0.4, 1.6, 0.25, 1.0),
    "gpt-4.1": Price(2.0, 8.0, 0.25, 1.0),
    "gpt-4o-mini": Price(0.15, 0.6, 0.5, 1.0),
    "gpt-4o": Price(2.5, 10.0, 0.5, 1.0),
    "o4-mini": Price(1.1, 4.4, 0.25, 1.0),
    "o3": Price(2.0, 8.0, 0.25, 1.0),
}
DEFAULT_PRICE = Price(3.0, 15.0)


def price_for(model: str) -> Price:
    name = model.rpartition(":")[2].lower()
    matches = [prefix for prefix in PRICES if name.startswith(prefix)]
    return PRICES[max(matches, key=len)] if matches else DEFAULT_PRICE


class UsageDict(TypedDict):
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    seconds: float  # working time so far


@dataclass
class Usage:
    model_calls: int = 0
    input_tokens: int = 0  # including cached input
    output_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> UsageDict:
        return UsageDict(
            model_calls=self.model_calls,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            seconds=self.seconds,
        )

    @classmethod
    def from_dict(cls, data: UsageDict | None) -> Usage:
        return cls(**data) if data else cls()

    def describe(self) -> str:
        return f"{self.tokens:,} tokens, ~${self.cost_usd:.2f} (estimate), {self.model_calls} model calls"


def cost_of(message: BaseMessage, model: str) -> float:
    """Estimated USD cost of one response, from its usage metadata."""
    usage = getattr(message, "usage_metadata", None) or {}
    details = usage.get("input_token_details") or {}
    cache_read = int(details.get("cache_read") or 0)
    cache_write = int(details.get("cache_creation") or 0)
    uncached = max(0, int(usage.get("input_tokens") or 0) - cache_read - cache_write)
    price = price_for(model)
    dollars = (
        uncached * price.input
        + cache_read * price.input * price.cache_read_factor
        + cache_write * price.input * price.cache_write_factor
        + int(usage.get("output_tokens") or 0) * price.output
    )
    return dollars / 1_000_000


class BudgetExhausted(Exception):
    """A run limit was reached; `limit` names it (model calls, tokens, cost, time)."""

    def __init__(self, limit: str, detail: str) -> None:
        self.limit = limit
        super().__init__(f"budget exhausted: {limit} ({detail})")


def steps_exhausted(settings: Settings | None) -> BudgetExhausted:
    """The steps limit (LangGraph's recursion limit) as a named limit: a model that never
    finishes (a planner that never submits its plan) ends with it, not an internal error."""
    steps = f"{settings.max_agent_steps:,} per agent" if settings else "the limit"
    return BudgetExhausted("steps", steps)


class Budget:
    """The run's usage so far plus this step's, checked against the Settings limits."""

    def __init__(self, settings: Settings, spent: UsageDict | None, *, model: str) -> None:
        self.settings = settings
        self.usage = Usage.from_dict(spent)
        self.model = model  # priced when a response does not name its model
        self._started = time.monotonic()
        self._seconds_before = self.usage.seconds
        self._lock = threading.Lock()

    @property
    def remaining_seconds(self) -> float:
        return self.settings.max_run_minutes * 60 - self._elapsed()

    @property
    def remaining_model_calls(self) -> int:
        return max(0, self.settings.max_model_calls - self.usage.model_calls)

    def _elapsed(self) -> float:
        return self._seconds_before + (time.monotonic() - self._started)

    def record(self, message: BaseMessage) -> None:
        usage = getattr(message, "usage_metadata", None) or {}
        model = str(message.response_metadata.get("model_name") or self.model)
        with self._lock:
            self.usage.model_calls += 1
            self.usage.input_tokens += int(usage.get("input_tokens") or 0)
            self.usage.output_tokens += int(usage.get("output_tokens") or 0)
            self.usage.cost_usd += cost_of(message, model)

    def check(self) -> None:
        """Raise BudgetExhausted when a limit is reached (called before each model call)."""
        s, u = self.settings, self.usage
        if u.model_calls >= s.max_model_calls:
            raise BudgetExhausted("model calls", f"{u.model_calls} of {s.max_model_calls}")
        if u.tokens >= s.max_tokens_per_run:
            raise BudgetExhausted("tokens", f"{u.tokens:,} of {s.max_tokens_per_run:,}")
        if u.cost_usd >= s.max_cost_usd:
            raise BudgetExhausted("cost", f"~${u.cost_usd:.2f} of ${s.max_cost_usd:.2f}")
        if self.remaining_seconds <= 0:
            raise BudgetExhausted("time", f"{s.max_run_minutes:g} minutes")

    def spent(self) -> UsageDict:
        """Usage to store in the run state (working time included)."""
        with self._lock:
            self.usage.seconds = self._elapsed()
            return self.usage.as_dict()


class UsageMeter(BaseCallbackHandler):
    """Records every chat model response of a step into the budget."""

    run_inline = True  # called in the event loop, in order, not in a thread pool

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                if isinstance(generation, ChatGeneration):
                    self.budget.record(generation.message)


class BudgetMiddleware(AgentMiddleware[Any, Any, Any]):
    """Refuses the next model call once a token, cost or time limit is reached."""

    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage:
        self.budget.check()
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        self.budget.check()
        return await handler(request)
