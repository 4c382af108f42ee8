"""A scripted model server: a loopback double of the Anthropic Messages API (and OpenAI chat).

Tests point `ANTHROPIC_BASE_URL` (settings `anthropic_base_url`) or `OPENAI_BASE_URL` at it, so
the real LangChain -> provider SDK -> HTTP path runs. It replays scripted replies chosen by
matchers on the request (e.g. which tools are offered), records every request body, returns
realistic `usage`, and injects faults (429 with retry-after, 5xx, slow answers).

    model = ScriptedModel()
    model.on(offers("SubmitPlan"), tool("SubmitPlan", title="Fix", steps=["..."]))
    model.on(offers("edit_file"), tool("edit_file", ...), text("Done."))
    with model:
        settings = Settings(anthropic_base_url=model.url, ...)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.fakes.prompt_cache import PromptCache

Api = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class ModelRequest:
    """One request the server received, normalised across the two APIs."""

    api: Api
    path: str
    body: dict[str, Any]
    raw: str
    headers: dict[str, str]

    @property
    def tool_names(self) -> list[str]:
        names = []
        for spec in self.body.get("tools") or []:
            names.append(spec.get("name") or spec.get("function", {}).get("name", ""))
        return names

    @property
    def system(self) -> str:
        if self.api == "anthropic":
            return _flatten(self.body.get("system", ""))
        return "\n".join(
            _flatten(m.get("content"))
            for m in self.body.get("messages", [])
            if m.get("role") == "system"
        )

    @property
    def text(self) -> str:
        """All text the model is shown: system prompt, messages and tool results."""
        parts = [self.system]
        parts += [_flatten(m.get("content")) for m in self.body.get("messages", [])]
        return "\n".join(parts)

    def last_tool_result(self) -> str:
        """Text of the most recent tool result in the conversation ('' when none)."""
        for message in reversed(self.body.get("messages", [])):
            content = message.get("content")
            if message.get("role") == "tool":
                return _flatten(content)
            if isinstance(content, list):
                results = [b for b in content if b.get("type") == "tool_result"]
                if results:
                    return _flatten(results[-1].get("content"))
        return ""

    def find(self, pattern: str) -> str:
        """First group of a regex over the text the model is shown (fails loudly when absent)."""
        match = re.search(pattern, self.text)
        if match is None:
            raise LookupError(f"pattern {pattern!r} not found in the request")
        return match.group(1)


def _flatten(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_flatten(block) for block in content)
    if isinstance(content, dict):
        if "text" in content:
            return str(content["text"])
        if content.get("type") == "tool_use":
            return json.dumps(content.get("input", {}))
        if "content" in content:
            return _flatten(content["content"])
    return json.dumps(content)


# --- scripted replies -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An assistant turn: content blocks in Anthropic form, converted for OpenAI on the way out."""

    blocks: tuple[dict[str, Any], ...]
    usage: tuple[int, int] | None = None  # (input, output) tokens; estimated when None

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(b["type"] == "tool_use" for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class Fault:
    """An error answer; the SDK should retry it (429/5xx) honouring `retry-after-ms`."""

    status: int = 500
    retry_after_ms: int | None = 10
    message: str = "scripted fault"


@dataclass(frozen=True)
class Slow:
    """Wait before answering (longer than the client's timeout, to exercise timeouts)."""

    seconds: float
    then: ReplyLike


ReplyLike = Reply | Fault | Slow | Callable[[ModelRequest], "Reply | Fault"]


def text(content: str, *, usage: tuple[int, int] | None = None) -> Reply:
    return Reply(({"type": "text", "text": content},), usage)


_ids = itertools.count(1)


def tool(
    name: str, *, say: str = "", usage: tuple[int, int] | None = None, **arguments: Any
) -> Reply:
    """One tool call (optionally preceded by text)."""
    return calls((name, arguments), say=say, usage=usage)


def calls(
    *tool_calls: tuple[str, dict[str, Any]], say: str = "", usage: tuple[int, int] | None = None
) -> Reply:
    """Several tool calls in one turn."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": say}] if say else []
    for name, arguments in tool_calls:
        blocks.append(
            {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": arguments}
        )
    return Reply(tuple(blocks), usage)


def offers(tool_name: str) -> Callable[[ModelRequest], bool]:
    """Matcher: the request offers this tool (how the tests tell the workflow's steps apart)."""
    return lambda request: tool_name in request.tool_names


def anything(_request: ModelRequest) -> bool:
    return True


@dataclass
class _Rule:
    matcher: Callable[[ModelRequest], bool]
    replies: list[ReplyLike]
    repeat_last: bool
    served: int = 0

    def take(self) -> ReplyLike | None:
        if self.served < len(self.replies):
            self.served += 1
            return self.replies[self.served - 1]
        if self.repeat_last and self.replies:
            self.served += 1
            return self.replies[-1]
        return None


@dataclass
class ScriptedModel:
    """The server. Use as a context manager; `url` is the base URL to configure."""

    model_name: str = "claude-sonnet-4-5-20250929"
    requests: list[ModelRequest] = field(default_factory=list)
    unmatched: list[ModelRequest] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    prompt_cache: PromptCache = field(default_factory=PromptCache)

    def on(
        self,
        matcher: Callable[[ModelRequest], bool],
        *replies: ReplyLike,
        repeat_last: bool = False,
    ) -> ScriptedModel:
        """Add replies served, in order, to requests the matcher accepts (first rule wins)."""
        self._rules.append(_Rule(matcher, list(replies), repeat_last))
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def bodies(self) -> list[str]:
        """Every raw request body received (for assertions that nothing secret was sent)."""
        with self._lock:
            return [r.raw for r in self.requests]

    def requests_offering(self, tool_name: str) -> list[ModelRequest]:
        with self._lock:
            return [r for r in self.requests if tool_name in r.tool_names]

    def __enter__(self) -> ScriptedModel:
        handler = type("Handler", (_Handler,), {"model": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def cache_usage(self) -> list[tuple[int, int]]:
        """(cache reads, cache writes) in tokens of each Anthropic answer, in order."""
        return self.prompt_cache.usage

    def _cache_use(self, body: dict[str, Any]) -> tuple[int, int]:
        return self.prompt_cache.use(body)

    def _choose(self, request: ModelRequest) -> ReplyLike | None:
        with self._lock:
            self.requests.append(request)
            for rule in self._rules:
                if rule.matcher(request):
                    reply = rule.take()
                    if reply is not None:
                        return reply
            self.unmatched.append(request)
            return None


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a cancelled run, a server shutting down) is no error here."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    model: ScriptedModel
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_POST(self) -> None:
        # A client that gave up (a scripted timeout) gets no answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._handle()

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        body = json.loads(raw or "{}")
        path = self.path.split("?")[0]
        if path.endswith("/messages/count_tokens"):
            self._json(200, {"input_tokens": _estimate_tokens(raw)})
            return
        if path.endswith("/messages"):
            api: Api = "anthropic"
        elif path.endswith("/chat/completions"):
            api = "openai"
        else:
            self._json(404, _error_body("anthropic", 404, f"no route {path}"))
            return
        request = ModelRequest(
            api, path, body, raw, {k.lower(): v for k, v in self.headers.items()}
        )
        reply = self.model._choose(request)
        while isinstance(reply, Slow):
            time.sleep(reply.seconds)
            reply = reply.then
        if callable(reply):
            reply = reply(request)
        if reply is None:
            # A 400, not a 5xx: a script that ran out is the test's mistake, which must fail
            # the run at once, not an outage the run would wait out.
            message = f"no scripted reply for a request offering tools {request.tool_names}"
            self._json(400, _error_body(api, 400, message), {"x-should-retry": "false"})
        elif isinstance(reply, Fault):
            headers = {}
            if reply.retry_after_ms is not None:
                headers["retry-after-ms"] = str(reply.retry_after_ms)
            self._json(reply.status, _error_body(api, reply.status, reply.message), headers)
        elif isinstance(reply, Reply):
            usage = reply.usage or (
                _estimate_tokens(raw),
                _estimate_tokens(json.dumps(reply.blocks)),
            )
            cache = (0, 0)
            if api == "anthropic" and reply.usage is None:
                cache = self.model._cache_use(body)
            if api == "openai":
                self._json(200, _openai_completion(reply, usage, body.get("model", "")))
            elif body.get("stream"):
                self._sse(_anthropic_events(reply, usage, self.model.model_name, cache))
            else:
                self._json(200, _anthropic_message(reply, usage, self.model.model_name, cache))
        else:
            raise TypeError(f"bad scripted reply {reply!r}")

    def _json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{next(_ids):06d}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[dict[str, Any]]) -> None:
        data = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    if api == "openai":
        return {"error": {"message": message, "type": kind, "code": None, "param": None}}
    return {"type": "error", "error": {"type": kind, "message": message}}


def _anthropic_usage(usage: tuple[int, int], cache: tuple[int, int] = (0, 0)) -> dict[str, int]:
    read, written = cache
    return {
        "input_tokens": max(usage[0] - read - written, 0),
        "output_tokens": usage[1],
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def _anthropic_message(
    reply: Reply, usage: tuple[int, int], model: str, cache: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    return {
        "id": f"msg_{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(reply.blocks),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage, cache),
    }


def _anthropic_events(
    reply: Reply, usage: tuple[int, int], model: str, cache: tuple[int, int] = (0, 0)
) -> list[dict[str, Any]]:
    start = _anthropic_message(reply, (usage[0], 1), model, cache)
    start |= {"content": [], "stop_reason": None}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(reply.blocks):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            delta: dict[str, Any] = {"type": "text_delta", "text": block["text"]}
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            {"type": "content_block_start", "index": index, "content_block": opening},
            {"type": "content_block_delta", "index": index, "delta": delta},
            {"type": "content_block_stop", "index": index},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage[1]},
        },
        {"type": "message_stop"},
    ]
    return events


def _openai_completion(reply: Reply, usage: tuple[int, int], model: str) -> dict[str, Any]:
    texts = [b["text"] for b in reply.blocks if b["type"] == "text"]
    tool_calls = [
        {
            "id": b["id"].replace("toolu_", "call_"),
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in reply.blocks
        if b["type"] == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{next(_ids):06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }
