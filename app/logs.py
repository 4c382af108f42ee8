"""Logging set-up (structlog over stdlib), every event redacted by the one policy
(`app.text.redact`: known secrets, token shapes, URL credentials)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import unquote_plus

import structlog

from app.text.redact import REDACTED, Redactor

#: Query parameters that carry one-time credentials: the `code` and `state` GitHub sends back
#: to the setup and sign-in callbacks, the setup page's `token`.
CREDENTIAL_QUERY_PARAMS = frozenset({"code", "state", "token"})

# The redactor of this process's logs, set by configure_logging.
_process_redactor: Redactor | None = None


def _processor(redactor: Redactor) -> Any:
    """A structlog processor applying the redaction policy to every value of an event."""

    def redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        return {key: redactor.scrub(value) for key, value in event.items()}

    return redact_event


def configure_logging(*, level: str, fmt: str, secrets: Iterable[str]) -> Redactor:
    """Configure structlog once per process; returns the redactor so tokens can be added."""
    global _process_redactor
    redactor = Redactor(secrets)
    _process_redactor = redactor
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Colours only on a terminal: `serve > file` must not fill the file with escape codes.
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(sys.stderr))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            _processor(redactor),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(redactor, renderer)
    return redactor


class _RedactingHandler(logging.StreamHandler[TextIO]):
    """Marks the root handler configure_logging installed, so configuring again replaces it."""


def _route_stdlib_logging(redactor: Redactor, renderer: Any) -> None:
    """Send libraries' stdlib logging (procrastinate, httpx, PyGithub...) through the same
    redaction and renderer, at WARNING and above whatever our level: at debug some of them log
    raw HTTP bodies, e.g. PyGithub the answer that mints an installation token, before anyone
    could know the token to redact it."""
    handler = _RedactingHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso"),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # the traceback as text, then redacted
                _processor(redactor),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RedactingHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def redact_from_logs(secret: str) -> None:
    """Redact a secret learned after start-up (an installation token) from this process's logs."""
    if _process_redactor is not None:
        _process_redactor.add(secret)


class _AccessLogQueryFilter(logging.Filter):
    """Redacts CREDENTIAL_QUERY_PARAMS from the request targets in uvicorn's access lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_query(arg) if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


def redact_query(target: str) -> str:
    """`/setup/callback?code=abc&x=1` -> `/setup/callback?code=[redacted]&x=1`."""
    path, _, query = target.partition("?")
    pairs = []
    for pair in query.split("&"):
        name = pair.partition("=")[0]
        pairs.append(
            f"{name}={REDACTED}" if unquote_plus(name) in CREDENTIAL_QUERY_PARAMS else pair
        )
    return f"{path}?{'&'.join(pairs)}"


def redact_access_log_queries() -> None:
    """Keep one-time credentials sent in URLs out of uvicorn's access log (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _AccessLogQueryFilter) for f in access.filters):
        access.addFilter(_AccessLogQueryFilter())
