from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

import app.logs as logs
from app.logs import REDACTED, SecretRedactor, configure_logging, redact_from_logs


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logs._process_redactor = None


def test_configured_secrets_are_redacted_from_events_and_tracebacks(
    fresh_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="info", fmt="json", secrets=["sk-model-key-123"])
    try:
        raise RuntimeError("auth failed with sk-model-key-123")
    except RuntimeError:
        structlog.get_logger().exception("boom", detail={"key": "sk-model-key-123"})

    err = capsys.readouterr().err
    assert "sk-model-key-123" not in err
    assert REDACTED in err


def test_a_secret_learned_after_start_up_is_redacted_from_the_process_logs(
    fresh_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="info", fmt="console", secrets=[])
    redact_from_logs("ghs_minted_installation_token")
    structlog.get_logger().warning("push failed", output="token ghs_minted_installation_token")

    err = capsys.readouterr().err
    assert "ghs_minted_installation_token" not in err
    assert REDACTED in err


def test_learning_a_secret_before_logging_is_configured_is_harmless(fresh_logging: None) -> None:
    redact_from_logs("ghs_too_early_token")  # nothing to add it to; must not raise


def test_learned_secrets_are_bounded_keeping_the_newest_and_every_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "MAX_LEARNED_SECRETS", 2)
    redactor = SecretRedactor(["configured-secret"])
    for token in ("token-one", "token-two", "token-three"):
        redactor.add(token)

    assert redactor.scrub("configured-secret token-two token-three") == " ".join([REDACTED] * 3)
    assert redactor.scrub("token-one") == "token-one"  # the oldest, long expired, went first


def test_a_secret_containing_another_is_replaced_whole() -> None:
    redactor = SecretRedactor(["abcd"])
    redactor.add("abcdefgh")
    assert redactor.scrub("x abcdefgh y") == f"x {REDACTED} y"
