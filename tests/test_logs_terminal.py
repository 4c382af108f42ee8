"""Log colours only on a terminal: `serve > file` gets plain text."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

import app.logs as logs
from app.logs import configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    logs._process_redactor = None
    root.handlers[:], root.level = handlers, level


@pytest.mark.parametrize(("stream", "coloured"), [(io.StringIO, False), (Terminal, True)])
def test_colours_only_when_the_output_is_a_terminal(
    fresh_logging: None, monkeypatch: pytest.MonkeyPatch, stream: type[io.StringIO], coloured: bool
) -> None:
    out = stream()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(level="info", fmt="console", secrets=[])
    structlog.get_logger().warning("run.ended", status="failed")
    logging.getLogger("some.library").warning("a library speaks")

    text = out.getvalue()
    assert "run.ended" in text
    assert "a library speaks" in text
    assert ("\x1b[" in text) is coloured
