"""Tool schemas converted once per agent: the model is sent the same tools, built once."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool as as_tool

from app.agent import toolcache
from app.agent.models import chat_model
from app.agent.toolcache import ToolSchemaCache
from app.config import Settings
from tests.fakes.model import ScriptedModel, offers, text, tool


@as_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@as_tool
def shout(words: str, times: int = 1) -> str:
    """Say it louder."""
    return words.upper() * times


async def run_agent(settings: Settings, model: ScriptedModel, cached: bool) -> list[Any]:
    model.on(offers("add"), tool("add", a=2, b=3), tool("shout", words="hi"), text("5"))
    middleware: list[AgentMiddleware[Any, Any, Any]] = [
        AnthropicPromptCachingMiddleware(unsupported_model_behavior="ignore")
    ]
    middleware += [ToolSchemaCache()] if cached else []
    agent = create_agent(
        chat_model(settings, "implement"), tools=[add, shout], middleware=middleware
    )
    before = len(model.requests)
    await agent.ainvoke({"messages": [HumanMessage("What is 2 + 3?")]})
    return [r.body["tools"] for r in model.requests[before:]]


async def test_the_model_is_sent_the_same_tools_converted_once(
    settings: Settings, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = await run_agent(settings, model, cached=False)
    conversions: list[str] = []
    convert = toolcache.convert_to_anthropic_tool

    def counting(tool: Any, **kwargs: Any) -> Any:
        conversions.append(tool.name)
        return convert(tool, **kwargs)

    monkeypatch.setattr(toolcache, "convert_to_anthropic_tool", counting)
    monkeypatch.setattr(toolcache, "_shared", {})
    cached = await run_agent(settings, model, cached=True)
    again = await run_agent(settings, model, cached=True)  # another agent, the same tools

    assert len(plain) == len(cached) == len(again) == 3
    assert cached == plain  # byte for byte what LangChain would have sent
    assert again == plain
    assert cached[0][-1]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert sorted(conversions) == ["add", "shout"]  # once each, for six calls of two agents


async def test_a_tool_with_another_schema_under_the_same_name_is_converted_afresh(
    settings: Settings,
) -> None:
    @as_tool("add")
    def add_three(a: int, b: int, c: int) -> int:
        """Add two numbers."""
        return a + b + c

    cache = ToolSchemaCache()
    first = cache._convert(add, "anthropic")
    second = cache._convert(add_three, "anthropic")
    assert set(first["input_schema"]["properties"]) == {"a", "b"}
    assert set(second["input_schema"]["properties"]) == {"a", "b", "c"}
