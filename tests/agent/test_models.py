"""Models by name, keys and base URLs from Settings, through the real SDKs to the fake server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.tools import tool as as_tool
from langchain_openai import ChatOpenAI

from app.agent.models import chat_model, check_models, model_label, parse_model_spec
from app.config import ConfigError
from tests.agent.conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, make_settings
from tests.fakes.model import ScriptedModel, anything, text, tool


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("anthropic:claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("openai:gpt-4.1", ("openai", "gpt-4.1")),
        ("openai:llama-3.1-70b", ("openai", "llama-3.1-70b")),  # an OpenAI-compatible server
        ("claude-haiku-4-5", ("anthropic", "claude-haiku-4-5")),
        ("gpt-5-mini", ("openai", "gpt-5-mini")),
        (" o3 ", ("openai", "o3")),
    ],
)
def test_model_specs(spec: str, parsed: tuple[str, str]) -> None:
    assert parse_model_spec(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "google_genai:gemini-2.5-pro",
            "OPEN_SWE_MODEL: unsupported model 'google_genai:gemini-2.5-pro'",
        ),
        ("llama3", "OPEN_SWE_MODEL: unsupported model 'llama3'"),
        ("anthropic:", "OPEN_SWE_MODEL: empty model name"),
    ],
)
def test_bad_model_specs_name_the_variable(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model_spec(spec)


def test_missing_key_names_the_variable_to_set(tmp_path: Path, model: ScriptedModel) -> None:
    settings = make_settings(tmp_path, model, openai_api_key=None, plan_model="openai:gpt-4.1")
    with pytest.raises(ConfigError) as caught:
        check_models(settings)
    assert str(caught.value) == (
        "OPENAI_API_KEY is not set: the plan model 'openai:gpt-4.1' (OPEN_SWE_PLAN_MODEL) needs it"
    )
    no_anthropic = make_settings(tmp_path, model, anthropic_api_key=None)
    with pytest.raises(ConfigError, match=r"^ANTHROPIC_API_KEY is not set: the plan model"):
        check_models(no_anthropic)
    check_models(make_settings(tmp_path, model))  # both keys: fine


def test_per_step_overrides(tmp_path: Path, model: ScriptedModel) -> None:
    settings = make_settings(tmp_path, model, summarize_model="anthropic:claude-haiku-4-5")
    assert model_label(settings, "summarize") == "claude-haiku-4-5"
    assert model_label(settings, "implement") == "claude-sonnet-4-5"
    assert isinstance(chat_model(settings, "summarize"), ChatAnthropic)


def test_keys_urls_and_retries_come_from_settings_not_the_environment(
    tmp_path: Path, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/elsewhere")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-the-environment")
    settings = make_settings(tmp_path, model, model_timeout=12.5, model_max_retries=3)
    anthropic = chat_model(settings, "plan")
    assert isinstance(anthropic, ChatAnthropic)
    assert anthropic.anthropic_api_url == model.url
    assert anthropic.anthropic_api_key.get_secret_value() == FAKE_ANTHROPIC_KEY
    assert (anthropic.max_retries, anthropic.default_request_timeout) == (3, 12.5)
    model.on(anything, text("hello"))
    assert anthropic.invoke("hi").text == "hello"
    headers = " ".join(model.requests[0].headers.values())
    assert FAKE_ANTHROPIC_KEY in headers
    assert "sk-from-the-environment" not in headers


async def test_streaming_goes_through_the_fake_too(tmp_path: Path, model: ScriptedModel) -> None:
    model.on(anything, tool("lookup", say="Let me look.", query="add"))
    llm = chat_model(make_settings(tmp_path, model), "implement")

    @as_tool
    def lookup(query: str) -> str:
        """Look something up."""
        return query

    chunks = [chunk async for chunk in llm.bind_tools([lookup]).astream("find add")]
    message: Any = chunks[0]
    for chunk in chunks[1:]:
        message = message + chunk
    assert model.requests[0].body["stream"] is True
    assert message.tool_calls[0]["name"] == "lookup"
    assert message.tool_calls[0]["args"] == {"query": "add"}
    assert message.usage_metadata["output_tokens"] > 0


async def test_openai_compatible_server(tmp_path: Path, model: ScriptedModel) -> None:
    settings = make_settings(
        tmp_path, model, model="openai:my-team-model", openai_base_url=model.openai_url
    )
    model.on(anything, tool("lookup", query="add"))
    llm = chat_model(settings, "plan")
    assert isinstance(llm, ChatOpenAI)

    @as_tool
    def lookup(query: str) -> str:
        """Look something up."""
        return query

    message = await llm.bind_tools([lookup]).ainvoke("find add")
    assert message.tool_calls[0]["args"] == {"query": "add"}
    [request] = model.requests
    assert request.api == "openai"
    assert request.body["model"] == "my-team-model"
    assert request.headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"
