from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from app.agent.budget import (
    DEFAULT_PRICE,
    PRICES,
    Budget,
    BudgetExhausted,
    BudgetMiddleware,
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


def test_meter_records_every_response_and_uses_the_reported_model() -> None:
    budget = Budget(settings(), None, model="claude-sonnet-4-5")
    meter = UsageMeter(budget)
    result = LLMResult(generations=[[ChatGeneration(message=reply(1000, 200, model="gpt-4.1"))]])
    meter.on_llm_end(result)
    meter.on_llm_end(LLMResult(generations=[[ChatGeneration(message=reply(10, 5))]]))
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


async def test_middleware_refuses_the_next_call() -> None:
    budget = Budget(settings(max_tokens_per_run=10), None, model="x")
    middleware = BudgetMiddleware(budget)
    calls: list[object] = []

    async def handler(request: object) -> object:
        calls.append(request)
        return "response"

    assert await middleware.awrap_model_call("request", handler) == "response"  # type: ignore[arg-type]
    budget.record(reply(20, 0))
    with pytest.raises(BudgetExhausted):
        await middleware.awrap_model_call("request", handler)  # type: ignore[arg-type]
    assert calls == ["request"]
