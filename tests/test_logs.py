from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

import app.logs as logs
from app.logs import configure_logging, redact_from_logs
from app.text.redact import REDACTED


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    logs._process_redactor = None
    root.handlers[:], root.level = handlers, level


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


def test_libraries_logging_through_stdlib_are_redacted_too(
    fresh_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="info", fmt="console", secrets=["sk-model-key-123"])
    redact_from_logs("ghs_minted_installation_token")
    library = logging.getLogger("some.library")
    try:
        raise ValueError("rejected ghs_minted_installation_token")
    except ValueError:
        library.exception("request with %s failed", "sk-model-key-123")

    err = capsys.readouterr().err
    assert "request with [redacted] failed" in err
    assert "ValueError: rejected [redacted]" in err  # the traceback, redacted too
    assert "sk-model-key-123" not in err
    assert "ghs_minted_installation_token" not in err


def test_libraries_stay_at_warning_even_when_our_logs_are_at_debug(
    fresh_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # At debug PyGithub logs raw answers, such as the one that mints a token, before anyone
    # could know the token to redact it.
    configure_logging(level="debug", fmt="json", secrets=[])
    logging.getLogger("github.Requester").debug('POST ==> 201 {"token": "ghs_new_token"}')
    logging.getLogger("procrastinate").warning("job failed")
    structlog.get_logger().debug("ours")

    err = capsys.readouterr().err
    assert "ghs_new_token" not in err
    assert "job failed" in err
    assert "ours" in err


def test_configuring_twice_keeps_one_stdlib_handler(fresh_logging: None) -> None:
    configure_logging(level="info", fmt="json", secrets=[])
    configure_logging(level="info", fmt="json", secrets=[])
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logs._RedactingHandler)]
    assert len(ours) == 1
