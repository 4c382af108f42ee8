from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

import app.logs as logs
from app.logs import (
    configure_logging,
    redact_access_log_queries,
    redact_from_logs,
    redact_query,
)
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


@pytest.mark.parametrize(
    ("target", "redacted"),
    [
        ("/setup/callback?code=abc&state=xyz", "/setup/callback?code=[redacted]&state=[redacted]"),
        (
            "/auth/callback?state=s&code=c&x=1",
            "/auth/callback?state=[redacted]&code=[redacted]&x=1",
        ),
        ("/setup?token=t&org=acme", "/setup?token=[redacted]&org=acme"),
        ("/setup?%63ode=abc", "/setup?%63ode=[redacted]"),  # %63 is "c"
        ("/setup?codex=1&flag", "/setup?codex=1&flag"),
    ],
)
def test_credentials_in_a_query_are_redacted(target: str, redacted: str) -> None:
    assert redact_query(target) == redacted


def test_uvicorns_access_lines_lose_the_credentials_in_their_query() -> None:
    access = logging.getLogger("uvicorn.access")
    filters, disabled, level = list(access.filters), access.disabled, access.level
    lines: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    access.addHandler(catcher)
    access.disabled, access.level = False, logging.INFO
    # An earlier test in this process (an in-process `serve`) may have added it already.
    access.filters[:] = [f for f in filters if type(f).__name__ != "_AccessLogQueryFilter"]
    try:
        redact_access_log_queries()
        redact_access_log_queries()  # once per process, however often asked
        added = [f for f in access.filters if type(f).__name__ == "_AccessLogQueryFilter"]
        assert len(added) == 1
        access.info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/setup/callback?code=c0de", "1.1", 400
        )
    finally:
        access.removeHandler(catcher)
        access.filters[:], access.disabled, access.level = filters, disabled, level
    assert lines == ['1.2.3.4:5 - "GET /setup/callback?code=[redacted] HTTP/1.1" 400']
