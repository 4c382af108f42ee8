"""GitHub Actions job logs: the part of a failed step worth showing, and its error lines.

A job log is one text: every line starts with a timestamp, each step opens with a
`##[group]Run ...` line, and a failing step ends with `##[error]...`. What a model can use is
the end of the failed step, up to its error: `failed_step_tail` keeps that, bounded in lines
and characters. Linear: one split, one scan backwards; every pattern is anchored.
"""

from __future__ import annotations

import re

MAX_LINES = 80
MAX_CHARS = 6_000
MAX_LINE_CHARS = 500
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d++)?Z ?")
_STEP_START = "##[group]Run "
_ERROR = "##[error]"
# Lines that say what failed, in the output of common tools (pytest, unittest, mypy, ruff,
# tsc, eslint, go test, cargo, make).
_ERROR_LINE = re.compile(
    r"(?:##\[error\]|FAILED |FAIL[: ]|ERROR[: ]|E {3}|error(?:\[\w+\])?:|Error:|\w*Error: |"
    r"--- FAIL|panic:|Traceback |.*: error: |.*:\d+:\d+: [A-Z]+\d+ )",
    re.ASCII,
)


def plain(line: str) -> str:
    """A log line without its timestamp."""
    match = _TIMESTAMP.match(line)
    return line[match.end() :] if match else line


def failed_step_tail(log: str, *, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> str:
    """The end of the step that failed (up to and including its last error line), else the end
    of the log; at most `max_lines` lines and `max_chars` characters, timestamps removed."""
    lines = [plain(line) for line in log.splitlines()]
    end = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(_ERROR):
            end = index + 1
            break
    start = 0
    for index in range(end - 1, -1, -1):
        if lines[index].startswith(_STEP_START):
            start = index
            break
    kept = lines[max(start, end - max_lines) : end]
    text = "\n".join(kept)
    if len(text) > max_chars:
        text = "…" + text[-(max_chars - 1) :]
    return text


def error_lines(text: str, limit: int = 20) -> list[str]:
    """The lines of `text` that name a failure (at most `limit`, first ones first)."""
    found = []
    for line in text.splitlines():
        stripped = line.strip()[:MAX_LINE_CHARS]  # bounds the patterns' work per line
        if stripped and _ERROR_LINE.match(stripped):
            found.append(stripped[:300])
            if len(found) == limit:
                break
    return found
