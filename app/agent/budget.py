"""Per-run accounting and limits: model calls, tokens, estimated cost, wall time.

Tokens come from each response's `usage_metadata`, seen by a callback handler on every model
call of a step (agent turns, summarisation, structured output). Cost is an ESTIMATE from the
small price table below (list prices in USD per million tokens, cache reads and writes priced
from the input price); unknown models are priced like Claude Sonnet so a cap still bites.
Wall time counts working time only: the hours a run waits for a person do not count.

The caps are hard. Each call's usage is written to the run's ledger (`UsageLedger`: the store's
`model_calls`) as the call ends, and a budget starts from the ledger's sum for the run and the
runs it retries: a suspend, a crash or a retry forgets nothing spent. A call is not started
when what remains cannot cover it: its input is estimated (at least the last call's input and
output, since a conversation only grows), and its `max_tokens` is bounded by what is left of
the token and cost caps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from app.agent.usage import DEFAULT_PRICE as DEFAULT_PRICE
from app.agent.usage import PRICES as PRICES
from app.agent.usage import Call as Call
from app.agent.usage import Price as Price
from app.agent.usage import Usage as Usage
from app.agent.usage import UsageDict as UsageDict
from app.agent.usage import UsageLedger as UsageLedger
from app.agent.usage import price_for as price_for
from app.config import Settings
from app.transcript import current


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


MIN_OUTPUT_TOKENS = 256  # a call that could not even answer this much is not started
DEFAULT_OUTPUT_TOKENS = 16_384  # what a model without a max_tokens of its own may write
CHARS_PER_TOKEN = 4  # a rough estimate of a request's input


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

    def __init__(
        self,
        settings: Settings,
        spent: UsageDict | None,
        *,
        model: str,
        ledger: UsageLedger | None = None,
    ) -> None:
        self.settings = settings
        self.usage = Usage.from_dict(spent)
        self.model = model  # priced when a response does not name its model
        self._ledger = ledger
        self._synced = ledger is None
        self._last_tokens = 0  # the last call's input and output: the next input is larger
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

    def record(self, message: BaseMessage) -> Call:
        usage = getattr(message, "usage_metadata", None) or {}
        model = str(message.response_metadata.get("model_name") or self.model)
        call = Call(
            model=model,
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cost_usd=cost_of(message, model),
        )
        with self._lock:
            self.usage.model_calls += 1
            self.usage.input_tokens += call.input_tokens
            self.usage.output_tokens += call.output_tokens
            self.usage.cost_usd += call.cost_usd
            self._last_tokens = call.input_tokens + call.output_tokens
        current().emit(
            "model",
            model=model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cost_usd=call.cost_usd,
            tool_calls=[c["name"] for c in getattr(message, "tool_calls", None) or []],
        )
        return call

    async def save(self, call: Call) -> None:
        """Write the call to the ledger (raises when it cannot: the run then waits the
        store's fault out rather than spend what it could not count)."""
        if self._ledger is not None:
            await self._ledger.record(call)

    async def admit(self, input_chars: int = 0) -> int:
        """Before a call: raise BudgetExhausted when a limit is reached or what remains
        cannot cover the call; else the most output tokens the call may use."""
        await self._sync()
        self.check()
        s, u = self.settings, self.usage
        need = max(input_chars // CHARS_PER_TOKEN, self._last_tokens)
        room = s.max_tokens_per_run - u.tokens - need
        if room < MIN_OUTPUT_TOKENS:
            detail = f"{u.tokens:,} of {s.max_tokens_per_run:,}; the next call needs ~{need:,}"
            raise BudgetExhausted("tokens", detail)
        price = price_for(self.model)
        dollars = s.max_cost_usd - u.cost_usd - need * price.input / 1_000_000
        affordable = int(dollars / price.output * 1_000_000) if dollars > 0 else 0
        if affordable < MIN_OUTPUT_TOKENS:
            detail = f"~${u.cost_usd:.2f} of ${s.max_cost_usd:.2f}; the next call costs more"
            raise BudgetExhausted("cost", detail)
        return min(room, affordable)

    async def _sync(self) -> None:
        """Once: take what the ledger knows was spent (calls after the last checkpoint, the
        runs this one retries) when it is more than the checkpoint's usage."""
        if self._synced or self._ledger is None:
            return
        spent = await self._ledger.spent()
        with self._lock:
            self.usage.model_calls = max(self.usage.model_calls, spent.model_calls)
            self.usage.input_tokens = max(self.usage.input_tokens, spent.input_tokens)
            self.usage.output_tokens = max(self.usage.output_tokens, spent.output_tokens)
            self.usage.cost_usd = max(self.usage.cost_usd, spent.cost_usd)
        self._synced = True

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


class UsageMeter(AsyncCallbackHandler):
    """Records every chat model response of a step into the budget and its ledger, before
    the call returns (so before the next call is admitted)."""

    run_inline = True  # awaited in the event loop, in order
    raise_error = True  # a call that could not be written stops the run (a store fault)

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                if isinstance(generation, ChatGeneration):
                    await self.budget.save(self.budget.record(generation.message))


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
        room = await self.budget.admit(_input_chars(request))
        own = request.model_settings.get("max_tokens") or getattr(request.model, "max_tokens", None)
        if room < (own if isinstance(own, int) else DEFAULT_OUTPUT_TOKENS):
            request = request.override(
                model_settings={**request.model_settings, "max_tokens": room}
            )
        return await handler(request)


def _input_chars(request: ModelRequest[Any]) -> int:
    """The size of what the call sends (messages, system prompt), in characters."""
    system = request.system_message
    chars = len(str(system.content)) if system is not None else 0
    return chars + sum(len(str(message.content)) for message in request.messages)
