"""Tool schemas converted once per agent, not once per model call.

LangChain's agent binds its tools to the model on every call, and binding converts each tool
to the provider's wire format: a JSON schema built from the tool's pydantic model, every time
(about 7.6 ms for our 8 tools, the largest single cost of a step). This middleware, innermost,
hands the model the tools already converted; the provider's `bind_tools` passes converted
definitions through untouched. The result is the same request, byte for byte.

A conversion depends only on the tool's class, name, description, argument schema and extras
(cache_control): with a schema that is a class (deepagents' tools share theirs across
instances), it is kept for the process, since every step builds its agent's tools afresh.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_anthropic import ChatAnthropic
from langchain_anthropic.chat_models import convert_to_anthropic_tool
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai.chat_models.base import BaseChatOpenAI

MAX_SHARED = 512  # conversions kept for the process (a handful of tools in practice)
_shared: dict[tuple[Any, ...], dict[str, Any]] = {}


class ToolSchemaCache(AgentMiddleware[Any, Any, Any]):
    """Converts each tool once: per process when its schema is a class, else per agent."""

    def __init__(self) -> None:
        super().__init__()
        self._own: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _convert(self, tool: Any, provider: str) -> Any:
        if not isinstance(tool, BaseTool):
            return tool
        extras = json.dumps(tool.extras or {}, sort_keys=True, default=str)
        schema = tool.args_schema
        shared = isinstance(schema, type)  # a class is hashable and never mutated in place
        key: tuple[Any, ...] = (provider, type(tool), tool.name, tool.description, extras)
        key += (schema,) if shared else ()
        cache = _shared if shared else self._own
        converted = cache.get(key)
        if converted is None:
            if provider == "anthropic":
                converted = dict(convert_to_anthropic_tool(tool))
            else:
                converted = convert_to_openai_tool(tool)
            if len(cache) >= MAX_SHARED:
                cache.clear()
            cache[key] = converted
        return converted

    def _request(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        provider = _provider(request.model)
        if provider is None or not request.tools:
            return request
        return request.override(tools=[self._convert(t, provider) for t in request.tools])

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage:
        return handler(self._request(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        return await handler(self._request(request))


def _provider(model: Any) -> str | None:
    """Whose wire format `model` binds tools in (None: leave its tools as they are)."""
    if isinstance(model, ChatAnthropic):
        return "anthropic"
    if isinstance(model, BaseChatOpenAI):
        return "openai"
    return None
