from typing import Any

from langchain.agents.middleware import ModelRequest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest

from app.agent.tools import (
    READ_ONLY_TOOLS,
    RepoWorkingDirectory,
    SecretScrubber,
    ToolResultLimit,
    clip,
)
from app.text.redact import Redactor


def test_clip_keeps_head_and_tail() -> None:
    text = "H" * 50 + "M" * 1000 + "T" * 50
    cut = clip(text, 100)
    assert cut.startswith("H" * 40)
    assert cut.endswith("T" * 50)
    assert "[... 1,000 characters cut ...]" in cut
    assert clip("short", 100) == "short"


def call(name: str, **args: Any) -> ToolCallRequest:
    return ToolCallRequest(
        tool_call={"name": name, "args": args, "id": "t1", "type": "tool_call"},
        tool=None,
        state={},
        runtime=None,  # type: ignore[arg-type]
    )


async def test_long_tool_results_are_cut() -> None:
    async def handler(_request: ToolCallRequest) -> ToolMessage:
        return ToolMessage("x" * 500, tool_call_id="t1")

    result = await ToolResultLimit(limit=100).awrap_tool_call(call("read_file"), handler)
    assert isinstance(result, ToolMessage)
    assert len(result.content) < 200
    assert "characters cut" in str(result.content)


async def test_execute_starts_in_the_checkout_other_tools_untouched() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: ToolCallRequest) -> ToolMessage:
        seen.append(request.tool_call["args"])
        return ToolMessage("ok", tool_call_id="t1")

    middleware = RepoWorkingDirectory("/w/my repo")
    await middleware.awrap_tool_call(call("execute", command="pytest -q\nls"), handler)
    await middleware.awrap_tool_call(call("read_file", file_path="/w/x"), handler)
    assert seen == [
        {"command": "cd '/w/my repo' || exit 1\npytest -q\nls"},
        {"file_path": "/w/x"},
    ]


async def test_secrets_are_scrubbed_from_what_goes_to_the_model() -> None:
    redactor = Redactor(["sk-secret-value"])
    redactor.add("ghs_token_value")
    request = ModelRequest(
        model=None,  # type: ignore[arg-type]
        messages=[
            HumanMessage("key sk-secret-value"),
            HumanMessage([{"type": "text", "text": "token ghs_token_value"}]),
            HumanMessage("clean"),
        ],
        system_message=SystemMessage("sys sk-secret-value"),
    )
    sent: list[ModelRequest[Any]] = []

    async def handler(request: ModelRequest[Any]) -> str:
        sent.append(request)
        return "response"

    assert await SecretScrubber(redactor).awrap_model_call(request, handler) == "response"  # type: ignore[arg-type]
    [clean] = sent
    assert [m.content for m in clean.messages] == [
        "key [redacted]",
        [{"type": "text", "text": "token [redacted]"}],
        "clean",
    ]
    assert clean.system_message is not None
    assert clean.system_message.content == "sys [redacted]"


def test_planning_tools_cannot_edit_or_run() -> None:
    assert set(READ_ONLY_TOOLS) == {"ls", "read_file", "glob", "grep"}


async def test_the_scrubber_scans_a_message_once_until_a_secret_is_learned() -> None:
    redactor = Redactor(["sk-secret-value"])
    scrubber = SecretScrubber(redactor)
    old = HumanMessage("key sk-secret-value, token ghs_learned_later")
    sent: list[ModelRequest[Any]] = []

    async def handler(request: ModelRequest[Any]) -> str:
        sent.append(request)
        return "response"

    def request(*messages: HumanMessage) -> ModelRequest[Any]:
        return ModelRequest(model=None, messages=list(messages))  # type: ignore[arg-type]

    await scrubber.awrap_model_call(request(old), handler)  # type: ignore[arg-type]
    first = sent[-1].messages[0]
    await scrubber.awrap_model_call(request(old, HumanMessage("new")), handler)  # type: ignore[arg-type]
    assert sent[-1].messages[0] is first  # not scanned again
    redactor.add("ghs_learned_later")
    await scrubber.awrap_model_call(request(old), handler)  # type: ignore[arg-type]
    assert sent[-1].messages[0].content == "key [redacted], token [redacted]"
