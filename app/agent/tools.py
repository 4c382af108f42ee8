"""The agents' tools and the middleware that keeps what they return small and secret-free.

Tools come from deepagents' FilesystemMiddleware over our Sandbox (a deepagents
BaseSandbox): ls/read_file/glob/grep for planning, plus write_file/edit_file/execute for
implementing. Its eviction of large results to files is off: it would write into the
sandbox (the repository) and end up committed; results are cut head-and-tail here instead.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from deepagents.middleware.filesystem import FilesystemMiddleware, FsToolName
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from app.sandbox.base import Sandbox
from app.text.redact import Redactor
from app.transcript import Stopwatch, commands_quiet, current

READ_ONLY_TOOLS: list[FsToolName] = ["ls", "read_file", "glob", "grep"]
CODING_TOOLS: list[FsToolName] = [*READ_ONLY_TOOLS, "write_file", "edit_file", "execute"]
TOOL_RESULT_LIMIT = 24_000  # characters of one tool result the model sees (head + tail)


def filesystem(sandbox: Sandbox, *, read_only: bool, max_seconds: float) -> FilesystemMiddleware:
    return FilesystemMiddleware(
        backend=sandbox,
        tools=READ_ONLY_TOOLS if read_only else CODING_TOOLS,
        tool_token_limit_before_evict=None,
        human_message_token_limit_before_evict=None,
        max_execute_timeout=max(1, int(max_seconds)),
    )


def clip(text: str, limit: int = TOOL_RESULT_LIMIT) -> str:
    """Keep the head and the tail (errors are usually at the end), saying what was cut."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 5], text[-(limit * 3 // 5) :]
    return f"{head}\n[... {len(text) - len(head) - len(tail):,} characters cut ...]\n{tail}"


class ToolResultLimit(AgentMiddleware[Any, Any, Any]):
    """Cuts long tool results so one `cat` of a log cannot flood the context window."""

    def __init__(self, limit: int = TOOL_RESULT_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def _cut(self, result: ToolMessage | Command[Any]) -> ToolMessage | Command[Any]:
        content = result.content if isinstance(result, ToolMessage) else None
        if isinstance(content, str) and len(content) > self.limit:
            assert isinstance(result, ToolMessage)
            return result.model_copy(update={"content": clip(content, self.limit)})
        return result

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        return self._cut(handler(request))

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        return self._cut(await handler(request))


class ToolTranscript(AgentMiddleware[Any, Any, Any]):
    """Each tool call into the run's transcript: its name, arguments, how long it took and
    what it returned. A file tool's own sandbox commands are its detail, not recorded apart;
    `execute` is recorded by the sandbox too (exit code and output), so here only its call."""

    def _record(self, request: ToolCallRequest, result: object, watch: Stopwatch) -> None:
        call = request.tool_call
        data: dict[str, Any] = {
            "name": call["name"],
            "args": call["args"],
            "seconds": watch.seconds,
        }
        if isinstance(result, ToolMessage):
            data["status"] = result.status
            if call["name"] != "execute":
                data["result"] = result.text
        current().emit("tool", **data)

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        watch = Stopwatch()
        if request.tool_call["name"] == "execute":
            result = handler(request)
        else:
            with commands_quiet():
                result = handler(request)
        self._record(request, result, watch)
        return result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        watch = Stopwatch()
        if request.tool_call["name"] == "execute":
            result = await handler(request)
        else:
            with commands_quiet():
                result = await handler(request)
        self._record(request, result, watch)
        return result


class RepoWorkingDirectory(AgentMiddleware[Any, Any, Any]):
    """`execute` commands start in the repository's checkout, not in the sandbox's root."""

    def __init__(self, repo_dir: str) -> None:
        super().__init__()
        self.repo_dir = repo_dir

    def _moved(self, request: ToolCallRequest) -> ToolCallRequest:
        call = request.tool_call
        command = call["args"].get("command")
        if call["name"] != "execute" or not isinstance(command, str):
            return request
        # A newline, not "&&": the command may be a script (heredocs, several lines).
        moved = f"cd {shlex.quote(self.repo_dir)} || exit 1\n{command}"
        return request.override(tool_call={**call, "args": {**call["args"], "command": moved}})

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        return handler(self._moved(request))

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        return await handler(self._moved(request))


class SecretScrubber(AgentMiddleware[Any, Any, Any]):
    """Last line of defence: replaces any known secret in what is about to go to the model.

    The sandbox already redacts command output; this catches anything else (a file read
    through another path, an error message quoting a URL with a token).
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        # The history is resent on every call: each message is scanned once, when first seen
        # (keyed by identity; the message is kept so that its id cannot be reused).
        self._seen: dict[int, tuple[BaseMessage, BaseMessage, str]] = {}
        self._forms = redactor.forms

    def _scrub(self, message: BaseMessage) -> BaseMessage:
        if self.redactor.forms is not self._forms:  # a secret was learned: scan all again
            self._forms, self._seen = self.redactor.forms, {}
        seen = self._seen.get(id(message))
        if seen is not None and seen[0] is message and seen[2] is message.content:
            return seen[1]
        content = self.redactor.scrub(message.content)
        scrubbed = (
            message
            if content == message.content
            else message.model_copy(update={"content": content})
        )
        if isinstance(message.content, str):  # a str cannot change under us; a list could
            self._seen[id(message)] = (message, scrubbed, message.content)
        return scrubbed

    def _clean(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        overrides: dict[str, Any] = {"messages": [self._scrub(m) for m in request.messages]}
        if request.system_message is not None:
            overrides["system_message"] = self._scrub(request.system_message)
        return request.override(**overrides)

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage:
        return handler(self._clean(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        return await handler(self._clean(request))
