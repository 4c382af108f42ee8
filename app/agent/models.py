"""Chat models by name (`provider:model`), with keys and base URLs passed from Settings.

Only Anthropic and OpenAI (and OpenAI-compatible servers, through OPENAI_BASE_URL) are
accepted: their keys live in Settings, so they are redacted from logs and command output and
checked before a run starts. Keys and URLs are passed explicitly; nothing here reads the
environment, so a stray ANTHROPIC_BASE_URL in a worker's environment cannot redirect a run.
"""

from __future__ import annotations

from typing import Literal

from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel

from app.config import ConfigError, Settings

Step = Literal["plan", "implement", "summarize"]
Provider = Literal["anthropic", "openai"]

STEPS: tuple[Step, ...] = ("plan", "implement", "summarize")
KEY_VARIABLE: dict[Provider, str] = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_MODEL_VARIABLE: dict[Step, str] = {
    "plan": "OPEN_SWE_PLAN_MODEL",
    "implement": "OPEN_SWE_IMPLEMENT_MODEL",
    "summarize": "OPEN_SWE_SUMMARIZE_MODEL",
}
_DEFAULT_URL: dict[Provider, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
}
_OPENAI_PREFIXES = ("gpt-", "chatgpt", "o1", "o3", "o4", "text-davinci")


def parse_model_spec(spec: str, *, variable: str = "OPEN_SWE_MODEL") -> tuple[Provider, str]:
    """`anthropic:claude-sonnet-4-5` -> ("anthropic", "claude-sonnet-4-5"); bare names inferred."""
    provider, sep, name = spec.strip().partition(":")
    if not sep:
        provider, name = "", provider
        if name.startswith("claude"):
            provider = "anthropic"
        elif name.startswith(_OPENAI_PREFIXES):
            provider = "openai"
    if not name:
        raise ConfigError(f"{variable}: empty model name in {spec!r}")
    if provider == "anthropic":
        return "anthropic", name
    if provider == "openai":
        return "openai", name
    raise ConfigError(
        f"{variable}: unsupported model {spec!r}; use anthropic:<model> or openai:<model> "
        "(any OpenAI-compatible server through OPENAI_BASE_URL)"
    )


def model_variable(settings: Settings, step: Step) -> str:
    """The variable a step's model name comes from (for error messages)."""
    override = {
        "plan": settings.plan_model,
        "implement": settings.implement_model,
        "summarize": settings.summarize_model,
    }[step]
    return _MODEL_VARIABLE[step] if override else "OPEN_SWE_MODEL"


def check_models(settings: Settings) -> None:
    """Fail at once, with the variable to set, when a step's model cannot be used."""
    for step in STEPS:
        variable = model_variable(settings, step)
        provider, _ = parse_model_spec(settings.model_for(step), variable=variable)
        if _api_key(settings, provider) is None:
            raise ConfigError(
                f"{KEY_VARIABLE[provider]} is not set: the {step} model "
                f"{settings.model_for(step)!r} ({variable}) needs it"
            )


def model_label(settings: Settings, step: Step) -> str:
    """The bare model name a step uses (for the price table and status lines)."""
    return parse_model_spec(settings.model_for(step), variable=model_variable(settings, step))[1]


def chat_model(settings: Settings, step: Step) -> BaseChatModel:
    """The step's chat model, with retries (429/5xx/timeouts, backoff) done by the SDK."""
    variable = model_variable(settings, step)
    provider, name = parse_model_spec(settings.model_for(step), variable=variable)
    key = _api_key(settings, provider)
    if key is None:
        raise ConfigError(f"{KEY_VARIABLE[provider]} is not set: the {step} model needs it")
    base_url = (
        settings.anthropic_base_url if provider == "anthropic" else settings.openai_base_url
    ) or _DEFAULT_URL[provider]
    model = init_chat_model(
        name,
        model_provider=provider,
        api_key=key,
        base_url=base_url,
        timeout=settings.model_timeout,
        max_retries=settings.model_max_retries,
    )
    assert isinstance(model, BaseChatModel)
    return model


def _api_key(settings: Settings, provider: Provider) -> str | None:
    secret = settings.anthropic_api_key if provider == "anthropic" else settings.openai_api_key
    value = secret.get_secret_value() if secret is not None else ""
    return value or None
