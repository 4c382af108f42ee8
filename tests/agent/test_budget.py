from typing import Any

import pytest
from langchain.agents.middleware import ModelRequest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from app.agent.budget import (
    DEFAULT_PRICE,
    MIN_OUTPUT_TOKENS,
    PRICES,
    Budget,
    BudgetExhausted,
    BudgetMiddleware,
    Call,
    Usage,
    UsageMeter,
    cost_of,
    price_for,
)
from app.config import Settings


def settings(**limits: Any) -> Settings:
    return Settings(_env_file=None, **limits)  # type: ignore[call-arg]


def reply(
    input_tokens: int,
    output_tokens: int,
    *,
    model: str = "",
    cache_read: int = 0,
    cache_write: int = 0,
) -> AIMessage:
    return AIMessage(
        "ok",
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_token_details": {"cache_read": cache_read, "cache_creation": cache_write},
        },
        response_metadata={"model_name": model} if model else {},
    )


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("claude-sonnet-4-5-20250929", PRICES["claude-sonnet-4"]),
        ("anthropic:claude-opus-4-1", PRICES["claude-opus-4"]),
        ("claude-opus-4-5", PRICES["claude-opus-4-5"]),
        ("gpt-4.1-mini-2025-04-14", PRICES["gpt-4.1-mini"]),
        ("openai:gpt-4.1", PRICES["gpt-4.1"]),
        ("my-team/llama-70b", DEFAULT_PRICE),
    ],
)
def test_longest_prefix_prices_a_model(model: str, price: object) -> None:
    assert price_for(model) == price


def test_cost_counts_cached_tokens_at_their_own_rates() -> None:
    # Sonnet: $3/M input, $15/M output, cache reads 10%, cache writes 125% of input.
    message = reply(
        1_000_000, 100_000, model="claude-sonnet-4-5", cache_read=400_000, cache_write=100_000
    )
    uncached = 500_000 * 3.0
    expected = (uncached + 400_000 * 0.3 + 100_000 * 3.75 + 100_000 * 15.0) / 1_000_000
    assert cost_of(message, "claude-sonnet-4-5") == pytest.approx(expected)
    assert cost_of(AIMessage("no usage"), "claude-sonnet-4-5") == 0


async def test_meter_records_every_response_and_uses_the_reported_model() -> None:
    budget = Budget(settings(), None, model="claude-sonnet-4-5")
    meter = UsageMeter(budget)
    result = LLMResult(generations=[[ChatGeneration(message=reply(1000, 200, model="gpt-4.1"))]])
    await meter.on_llm_end(result)
    await meter.on_llm_end(LLMResult(generations=[[ChatGeneration(message=reply(10, 5))]]))
    assert (budget.usage.model_calls, budget.usage.tokens) == (2, 1215)
    expected = (1000 * 2.0 + 200 * 8.0 + 10 * 3.0 + 5 * 15.0) / 1_000_000
    assert budget.usage.cost_usd == pytest.approx(expected)


def test_usage_carries_over_between_steps() -> None:
    first = Budget(settings(), None, model="claude-sonnet-4-5")
    first.record(reply(100, 10))
    spent = first.spent()
    second = Budget(settings(), spent, model="claude-sonnet-4-5")
    second.record(reply(1, 1))
    assert second.spent()["model_calls"] == 2
    assert second.spent()["input_tokens"] == 101
    assert second.spent()["seconds"] >= spent["seconds"]
    assert (
        Usage.from_dict(second.spent())
        .describe()
        .startswith("112 tokens, ~$0.00 (estimate), 2 model calls")
    )


@pytest.mark.parametrize(
    ("limits", "responses", "message"),
    [
        ({"max_model_calls": 2}, [(1, 1), (1, 1)], "budget exhausted: model calls (2 of 2)"),
        ({"max_tokens_per_run": 100}, [(90, 10)], "budget exhausted: tokens (100 of 100)"),
        ({"max_cost_usd": 0.5}, [(100_000, 20_000)], "budget exhausted: cost (~$0.60 of $0.50)"),
    ],
)
def test_each_limit_is_named_when_reached(
    limits: dict[str, Any], responses: list[tuple[int, int]], message: str
) -> None:
    budget = Budget(settings(**limits), None, model="claude-sonnet-4-5")
    budget.check()
    for input_tokens, output_tokens in responses[:-1]:
        budget.record(reply(input_tokens, output_tokens))
        budget.check()
    budget.record(reply(*responses[-1]))
    with pytest.raises(
        BudgetExhausted, match=message.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")
    ) as caught:
        budget.check()
    assert caught.value.limit == message.split(": ")[1].split(" (")[0]


def test_wall_time_counts_earlier_steps() -> None:
    spent = Usage(seconds=59.9 * 60).as_dict()
    budget = Budget(settings(max_run_minutes=60), spent, model="x")
    assert 0 < budget.remaining_seconds <= 6
    late = Budget(settings(max_run_minutes=1), Usage(seconds=61).as_dict(), model="x")
    with pytest.raises(BudgetExhausted, match=r"budget exhausted: time \(1 minutes\)"):
        late.check()


def model_request(text: str) -> ModelRequest[Any]:
    return ModelRequest(
        model=FakeListChatModel(responses=["ok"]),
        messages=[HumanMessage(text)],
        system_message=None,
        tool_choice=None,
        tools=[],
        response_format=None,
        state={"messages": []},
        runtime=None,  # type: ignore[arg-type]
        model_settings={},
    )


async def test_middleware_bounds_the_call_then_refuses_the_next() -> None:
    budget = Budget(settings(max_tokens_per_run=10_000), None, model="x")
    middleware = BudgetMiddleware(budget)
    calls: list[ModelRequest[Any]] = []

    async def handler(request: ModelRequest[Any]) -> Any:
        calls.append(request)
        return "response"

    assert await middleware.awrap_model_call(model_request("x" * 4_000), handler) == "response"
    assert calls[0].model_settings["max_tokens"] == 10_000 - 1_000
    budget.record(reply(9_000, 900))
    with pytest.raises(BudgetExhausted):
        await middleware.awrap_model_call(model_request("again"), handler)
    assert len(calls) == 1


class Ledger:
    """An in-memory UsageLedger: what the store's model_calls would hold."""

    def __init__(self, *before: Call) -> None:
        self.calls = list(before)

    async def record(self, call: Call) -> None:
        self.calls.append(call)

    async def spent(self) -> Usage:
        return Usage(
            model_calls=len(self.calls),
            input_tokens=sum(c.input_tokens for c in self.calls),
            output_tokens=sum(c.output_tokens for c in self.calls),
            cost_usd=sum(c.cost_usd for c in self.calls),
        )


async def test_a_call_the_remaining_tokens_cannot_cover_is_never_started() -> None:
    """Finding 7: a probe billed 800k tokens under a 500k cap (checked only before a call,
    against what earlier calls used). Now the next call's input is foreseen (at least the
    last call's input and output), and its output bounded by what remains."""
    budget = Budget(settings(max_tokens_per_run=500_000), None, model="claude-sonnet-4-5")
    meter = UsageMeter(budget)
    billed: list[int] = []

    async def probe() -> None:
        while True:
            room = await budget.admit(input_chars=4_000)
            assert room >= MIN_OUTPUT_TOKENS
            message = reply(200_000, 100)
            await meter.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))
            billed.append(200_100)

    with pytest.raises(BudgetExhausted, match=r"tokens \(400,200 of 500,000; the next call"):
        await probe()
    assert sum(billed) == 400_200 <= 500_000


async def test_the_output_is_bounded_by_what_remains_of_the_token_and_cost_caps() -> None:
    tokens = Budget(settings(max_tokens_per_run=10_000), None, model="claude-sonnet-4-5")
    assert await tokens.admit(input_chars=8_000) == 10_000 - 2_000
    cost = Budget(settings(max_cost_usd=0.03), None, model="claude-sonnet-4-5")
    # $0.03, less 2,000 input tokens at $3/M, leaves $0.024: 1,600 output tokens at $15/M.
    assert await cost.admit(input_chars=8_000) == 1_600


async def test_the_ledger_keeps_the_count_across_a_crash_a_suspend_and_a_retry() -> None:
    ledger = Ledger()
    first = Budget(settings(), None, model="claude-sonnet-4-5", ledger=ledger)
    await first.admit()
    await UsageMeter(first).on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=reply(900, 100))]])
    )
    assert len(ledger.calls) == 1  # written as the call ended, before any checkpoint
    # The step never checkpointed (a crash): the next budget starts from the ledger.
    again = Budget(
        settings(max_tokens_per_run=1_200), None, model="claude-sonnet-4-5", ledger=ledger
    )
    with pytest.raises(BudgetExhausted, match=r"tokens \(1,000 of 1,200"):
        await again.admit()
    assert again.usage.model_calls == 1


async def test_a_call_that_cannot_be_written_is_not_forgotten_silently() -> None:
    class Gone(Ledger):
        async def record(self, call: Call) -> None:
            raise ConnectionError("the database went away")

    budget = Budget(settings(), None, model="x", ledger=Gone())
    with pytest.raises(ConnectionError):
        await UsageMeter(budget).on_llm_end(
            LLMResult(generations=[[ChatGeneration(message=reply(1, 1))]])
        )
