"""What a run spends (model calls, tokens, estimated cost, working time), as plain data.

Split from app.agent.budget (which meters model calls through LangChain) so that code which
only shows or stores usage (the dashboard, the ledger, the run records) imports no agent
framework. The prices are an ESTIMATE (see app.agent.budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from typing_extensions import TypedDict


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


@dataclass(frozen=True)
class Call:
    """One model call's usage, as the ledger keeps it."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


class UsageLedger(Protocol):
    """Where a run's model calls are written as they end (app.runs.store: `model_calls`)."""

    async def record(self, call: Call) -> None: ...

    async def spent(self) -> Usage:
        """What the run and the runs it retries have spent so far."""
        ...
