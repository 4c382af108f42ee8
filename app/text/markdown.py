"""Markdown as GitHub renders it, read as a person reads it.

GitHub renders issues and comments with cmark-gfm; `render` uses the same C library (through
`cmarkgfm`), so code spans, indented and fenced code, block quotes with their lazy continuation
lines, HTML blocks and link reference definitions are what a reader gets, not what a regular
expression guesses. Raw HTML is passed through so `html.walk` can drop what a browser hides.
Linear: cmark-gfm parses in linear time and the input is bounded by GitHub's own limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import cmarkgfm  # type: ignore[import-untyped]
from cmarkgfm.cmark import Options  # type: ignore[import-untyped]

from app.text.html import Start, walk
from app.text.invisible import bounded, strip_invisible

_OPTIONS = Options.CMARK_OPT_UNSAFE
# Where a reader sees code or a quotation: nothing there is a command or a mention.
CODE = frozenset({"code", "kbd", "samp", "tt", "pre", "var"})
QUOTED = frozenset({"blockquote", "q"})
BLOCKS = frozenset(
    {
        "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
        "table", "tr", "td", "th", "thead", "tbody", "blockquote", "pre", "hr", "br",
        "details", "summary", "section", "article", "figure", "figcaption", "center",
    }
)  # fmt: skip
_SPECIAL = CODE | QUOTED  # the elements that change how the text inside is read
MASK = "\x1a"  # stands in for code in the visible text, so words around it stay apart
_SOURCE_LINE = re.compile(r"(\d++):\d++-")
# Quote and list markers opening a line; past MAX_NESTING of them the rest are dropped, so a
# line of 64 K ">" is 8 nested quotes, not 64 K (each costs tags to read, nothing to a reader).
MAX_NESTING = 8
_CONTAINER = r"[ \t]*+(?:>|(?:[-+*]|\d{1,9}+[.)])(?=[ \t]))"
_TOO_DEEP = re.compile(f"^((?:{_CONTAINER}){{{MAX_NESTING}}})(?:{_CONTAINER})++", re.MULTILINE)


def render(text: str, *, lines: bool = False) -> str:
    """HTML of `text` (invisible characters removed, at most GitHub's maximum length); with
    `lines`, each block's source lines in `data-sourcepos`."""
    clean = strip_invisible(bounded(text)[0])
    options = _OPTIONS | (Options.CMARK_OPT_SOURCEPOS if lines else 0)
    return str(cmarkgfm.markdown_to_html(_TOO_DEEP.sub(r"\1", clean), options))


@dataclass
class Reading:
    """What a reader sees first, and the visible prose (code masked, quotes left out)."""

    first_line: int | None = None  # source line of the first visible text, when it opens a
    # top-level paragraph
    first_text: str = ""  # that paragraph's visible text up to its first line break
    prose: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self) -> None:
        self.reading = Reading()
        self._stack: list[str] = []
        self._code = 0
        self._quoted = 0
        self._pre = 0
        self._seen = False  # any visible text (or image) yet
        self._first: list[str] | None = None  # collecting the first paragraph's first line
        self._paragraph_line: int | None = None

    def start(self, token: Start) -> None:
        name = token.name
        self._stack.append(name)
        if name in _SPECIAL:
            self._code += name in CODE
            self._quoted += name in QUOTED
            self._pre += name == "pre"
        if name in BLOCKS:
            self.reading.prose.append("\n")
            self._first = None
        if self._seen:
            return
        if name == "p" and len(self._stack) == 1:
            match = _SOURCE_LINE.match(token.attrs.get("data-sourcepos", ""))
            self._paragraph_line = int(match.group(1)) if match else None
        elif name == "img":
            self._seen = True
            self._first = None

    def end(self, name: str) -> None:
        if self._stack:
            self._stack.pop()
        if name in _SPECIAL:
            self._code -= name in CODE
            self._quoted -= name in QUOTED
            self._pre -= name == "pre"
        if name in BLOCKS:
            self.reading.prose.append("\n")
            self._first = None

    def text(self, data: str) -> None:
        # Quotations and code blocks are skipped when looking for the first line: a reply
        # may quote (or show code) before it says what it wants.
        aside = self._quoted or self._pre
        if not self._seen and not aside and data.strip():
            self._seen = True
            if self._stack == ["p"] and self._paragraph_line is not None:
                self.reading.first_line = self._paragraph_line
                self._first = []
        if self._first is not None:
            if self._code:
                self._first = None
            else:
                line, newline, _ = data.partition("\n")
                self._first.append(line)
                self.reading.first_text = "".join(self._first)
                if newline:
                    self._first = None
        if not self._quoted:
            self.reading.prose.append(MASK if self._code else data)


def read(text: str) -> Reading:
    """How a person reads `text` once GitHub renders it."""
    reader = _Reader()
    walk(render(text, lines=True), reader)
    return reader.reading
