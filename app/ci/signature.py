"""A failure's signature: the same checks failing with the same errors give the same one, so
"the same failure came back after a fix" is one comparison.

What changes between two runs of the same failure is left out: timestamps, durations, memory
addresses, temporary paths, run and job numbers in URLs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from app.ci.failures import Failure

_VOLATILE = (
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d++)?Z?"), "<time>"),
    (re.compile(r"\b\d++(?:\.\d++)?+ ?(?:ms|s|sec|seconds|m|min)\b"), "<duration>"),
    (re.compile(r"\b0x[0-9a-fA-F]++\b"), "<address>"),
    (re.compile(r"/(?:tmp|var/folders|home/runner/work/_temp)/[^\s:'\"]*+"), "<temp>"),
    (re.compile(r"/(?:runs|job|jobs)/\d++"), "/<id>"),
)


def normalise(line: str) -> str:
    for pattern, replacement in _VOLATILE:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def signature(failures: Iterable[Failure]) -> str:
    """sha256 (hex) of the failed checks' names and their normalised error lines."""
    parts = sorted(
        f"{f.name}\x1f" + "\x1e".join(sorted({normalise(e) for e in f.errors})) for f in failures
    )
    return hashlib.sha256("\x1d".join(parts).encode()).hexdigest()
