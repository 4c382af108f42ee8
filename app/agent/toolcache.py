"""Tool schemas converted once per agent, not once per model call.

LangChain's agent binds its tools to the model on every call, and binding converts each tool
to the provider's wire format: a JSON schema built from the tool's pydantic model, every time
(about 7.6 ms for our 8 tools, the largest single cost of a step). This middleware, innermost,
hands the model the tools already converted; the provider's `bind_tools` passes converted
definitions through untouched. The result is the same request, byte for byte.
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


class ToolSchemaCache(AgentMiddleware[Any, Any, Any]):
    """Converts each tool once (per agent, per provider, per extras such as cache_control)."""

    def __init__(self) -> None:
        super().__init__()
        self._converted: dict[tuple[str, str, str], dict[str, Any]] = {}

    def _convert(self, tool: Any, provider: str | None) -> Any:
        if provider is None or not isinstance(tool, BaseTool):
            return tool
        extras = json.dumps(tool.extras or {}, sort_keys=True, default=str)
        key = (provider, tool.name, extras)
        converted = self._converted.get(key)
        if converted is None:
            if provider == "anthropic":
                converted = dict(convert_to_anthropic_tool(tool))
            else:
                converted = convert_to_openai_tool(tool)
            self._converted[key] = converted
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
