"""Everything that runs on untrusted text, on adversarial inputs of 64 KiB and 1 MiB.

Each function gets a table: the baseline is the same function on ordinary prose of the same
size, the rows are adversarial families (the shapes that made regular expressions and
markdown parsers quadratic or cubic: backtick runs, nested and unclosed tags, long attribute
lists, deep quotes, many `<`, `&`, `[`, emphasis delimiters...). Comments and issue bodies are
parsed up to GitHub's own maximum (65,536 characters); the rest of a 1 MiB input is left out.
`tests/text/test_linear.py` uses the same families to fail when a function goes quadratic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.commands import parse_command
from app.text.github import defuse_mentions, inline, unclose_others
from app.text.redact import Redactor
from app.text.sanitize import fence, sanitize
from benchmarks.stats import Summary, summarize

KIB = 1024
Make = Callable[[int], str]


def _repeat(unit: str) -> Make:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


def _growing_backticks(size: int) -> str:
    """`` `a``a```a... ``: the comment that froze the server (issue 11)."""
    parts, total, run = [], 0, 1
    while total < size:
        part = "`" * run + "a"
        parts.append(part)
        total += len(part)
        run += 1
    return "".join(parts)[:size]


def _nested_lists(size: int) -> str:
    return "".join("  " * depth + "- a\n" for depth in range(400)) * (size // 160_000 + 1)


PROSE = _repeat(
    "Please fix the **flaky** test in `tests/test_api.py`: it fails on CI (see #12) when "
    "[the cache](https://example.com/cache) is cold. Thanks @alice!\n\n"
)

FAMILIES: dict[str, Make] = {
    "backtick runs": _growing_backticks,
    "backticks": _repeat("`"),
    "hidden attributes": _repeat("<x hidden "),
    "unclosed hidden tags": _repeat("<div hidden>"),
    "nested tags": _repeat("<div><span>"),
    "unclosed tags": _repeat("<a>"),
    "long attribute list": lambda size: "<a " + _repeat("x=1 ")(size - 3),
    "open quote attribute": lambda size: '<a title="' + _repeat("x ")(size - 10),
    "deep quotes": _repeat(">"),
    "quotes and lists": _repeat("> - "),
    "nested lists": lambda size: _nested_lists(size)[:size],
    "many <": _repeat("<"),
    "many </": _repeat("</"),
    "many <!--": _repeat("<!--"),
    "many &": _repeat("&"),
    "many &#": _repeat("&#"),
    "many [": _repeat("["),
    "emphasis": _repeat("*a_"),
    "paragraphs": _repeat("a\n\n"),
    "mentions": _repeat("@a "),
    "at entities": _repeat("&#64;"),
    "closing keywords": _repeat("fixes "),
    "keyword then spaces": lambda size: "fixes" + " " * (size - 5),
    "url schemes": _repeat("://a"),
    "token prefixes": _repeat("ghp_"),
    "combining marks": lambda size: "a" + _repeat("\u0301\u0316")(size - 1),
    "zero-width": _repeat("\u200d"),
}

_REDACTOR = Redactor(
    ["correct-horse-battery-staple", "-----BEGIN KEY-----\nabc\n-----END KEY-----"]
)

FUNCTIONS: dict[str, Callable[[str], object]] = {
    "parse_command": lambda text: parse_command(text, "open-swe"),
    "sanitize": sanitize,
    "fence": lambda text: fence("issue #1 description", text),
    "defuse_mentions": defuse_mentions,
    "unclose_others": lambda text: unclose_others(text, repo="acme/widgets", issue_number=1),
    # Its callers clip at most to 1,000 characters (a feedback trail); status lines far less.
    "inline": lambda text: inline(text, 1_000),
    "redact": _REDACTOR,
}


def time_once(function: Callable[[str], object], text: str) -> int:
    start = time.perf_counter_ns()
    function(text)
    return time.perf_counter_ns() - start


def best_of(function: Callable[[str], object], text: str, repeat: int) -> int:
    """The fastest of `repeat` runs: load on the machine only ever adds time."""
    return min(time_once(function, text) for _ in range(repeat))


def run(*, sizes: tuple[int, ...], repeat: int) -> list[tuple[str, Summary, list[Summary]]]:
    """One table per (function, size): baseline prose, then each family."""
    tables = []
    for size in sizes:
        inputs = {name: make(size) for name, make in FAMILIES.items()}
        prose = PROSE(size)
        for name, function in FUNCTIONS.items():
            baseline = summarize(
                "ordinary prose", [time_once(function, prose) for _ in range(repeat)]
            )
            rows = [
                summarize(family, [time_once(function, text) for _ in range(repeat)])
                for family, text in inputs.items()
            ]
            title = f"{name} on {size // KIB:,} KiB of untrusted text (adversarial families)"
            tables.append((title, baseline, rows))
    return tables
