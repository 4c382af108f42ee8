"""Text people wrote (issues, comments, task files), as the model may see it.

Hidden text is the classic prompt-injection channel: invisible to the people reviewing an issue
but plain to a model. So the model gets what a reader sees, no more: the text is rendered as
GitHub renders it (`markdown.render`), the visible part is read (`html.walk`, which drops
comments, `<script>`, `<style>`, `<template>`, `<noscript>`, hidden elements, even nested or
left open) and written back as plain markdown. What never renders (link reference definitions,
`[//]: #` comments) never appears; images keep their address but not their alt or title text.
`fence` then wraps it in an `<untrusted>` block the system prompt explains, with every
look-alike of the block's tags defused. Linear time throughout, on at most GitHub's maximum
length.
"""

from __future__ import annotations

import re

from app.text.html import Start, walk
from app.text.invisible import MAX_PARSED_CHARS
from app.text.markdown import render

UNTRUSTED_TAG = "untrusted"
MAX_DEPTH = 8  # quote and list levels shown; deeper ones read as the eighth
# Something an LLM could read as an `<untrusted>` tag: an opening angle bracket (or its entity,
# or a look-alike), optional slashes and spaces, then the name.
_TAG_LOOKALIKE = re.compile(
    r"(<|&lt;?|&#0*+60;?|&#x0*+3c;?|\uff1c|\ufe64|\u2039|\u3008|\u27e8)([\s/]{0,16}+)"
    + UNTRUSTED_TAG,
    re.IGNORECASE | re.ASCII,
)
_BLANK_RUNS = re.compile(r"\n{3,}+")
_BACKTICKS = re.compile(r"`++")
_HEADINGS = {f"h{n}": "#" * n + " " for n in range(1, 7)}
_PARAGRAPHS = frozenset(
    {"p", "div", "section", "article", "figure", "center", "table", "details", "dl", "ul", "ol"}
)
_LINES = frozenset({"summary", "dt", "dd", "tr", "figcaption", "caption"})
_EMPHASIS = {"em": "*", "i": "*", "strong": "**", "b": "**", "del": "~~", "s": "~~"}


def longest_run(text: str, char: str = "`") -> int:
    """The longest run of `char` in `text` (backticks by default)."""
    pattern = _BACKTICKS if char == "`" else re.compile(re.escape(char) + "++")
    return max((len(m.group(0)) for m in pattern.finditer(text)), default=0)


def _language(token: Start) -> str:
    classes = token.attrs.get("class", "").split()
    return next((c.removeprefix("language-") for c in classes if c.startswith("language-")), "")


class _Writer:
    """Writes what `walk` reports as markdown: blocks, quotes, lists, code, links, images."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._line: list[str] = []
        self._prefixes: list[str] = []  # "> " per quote, indentation per list item
        self._prefix = ""  # the prefixes joined
        self._levels: list[bool] = []  # per open quote or list item: has it a prefix?
        self._marker: str | None = None  # a list item's marker, for its first line
        self._lists: list[int | None] = []  # the next number of each open list (None: bullets)
        self._code: list[str] | None = None  # text of the code element being read
        self._code_depth = 0
        self._language = ""
        self._in_pre = 0
        self._links: list[str] = []
        self._cells = 0
        self._blank_wanted: str | None = None  # the prefix when a blank line was asked for

    # Lines -----------------------------------------------------------------------------------

    def _newline(self) -> None:
        """End the current line; an empty one is dropped (blank lines come from `_blank`)."""
        if not self._line:
            return
        text = "".join(self._line).rstrip()
        self._line = []
        if not text:
            return
        prefix, wanted = self._prefix, self._blank_wanted
        if wanted is not None and self.lines:
            shorter = prefix if len(prefix) <= len(wanted) else wanted  # between two quotes
            self.lines.append(shorter.rstrip())
        self._blank_wanted = None
        if self._marker is not None:
            prefix, self._marker = prefix[: -len(self._marker)] + self._marker, None
        self.lines.append(prefix + text)

    def _blank(self) -> None:
        """End the current line; the next one comes after a blank line."""
        self._newline()
        if self._blank_wanted is None:
            self._blank_wanted = self._prefix

    def _indent(self, prefix: str) -> bool:
        """Open a quote or list level; past MAX_DEPTH levels show no deeper (so the output
        stays linear in the input however deep the nesting)."""
        shown = len(self._prefixes) < MAX_DEPTH
        if shown:
            self._prefixes.append(prefix)
            self._prefix += prefix
        self._levels.append(shown)
        return shown

    def _dedent(self) -> None:
        if self._levels and self._levels.pop():
            self._prefix = self._prefix[: -len(self._prefixes.pop())]

    def _emit(self, text: str) -> None:
        self._line.append(text)

    # Reader ----------------------------------------------------------------------------------

    def start(self, token: Start) -> None:
        name = token.name
        if self._code is not None:
            if name == "code" and self._in_pre and not self._code_depth and not self._code:
                self._language = _language(token)
            self._code_depth += 1
            return
        if name == "pre":
            self._blank()
            self._in_pre += 1
            self._code, self._code_depth, self._language = [], 0, ""
        elif name == "code":
            self._code, self._code_depth = [], 0
        elif name in _HEADINGS:
            self._blank()
            self._emit(_HEADINGS[name])
        elif name == "blockquote":
            self._blank()
            self._indent("> ")
        elif name in ("ul", "ol"):
            self._newline() if self._lists else self._blank()
            self._lists.append(1 if name == "ol" else None)
        elif name == "li":
            self._newline()
            number = self._lists[-1] if self._lists else None
            marker = "- " if number is None else f"{number}. "
            if self._lists and number is not None:
                self._lists[-1] = number + 1
            if self._indent(" " * len(marker)):
                self._marker = marker
        elif name in _PARAGRAPHS:
            self._blank()
        elif name in _LINES:
            self._newline()
            self._cells = 0
        elif name in ("td", "th"):
            self._emit(" | " if self._cells else "")
            self._cells += 1
        elif name == "br":
            self._newline()
        elif name == "hr":
            self._blank()
            self._emit("---")
            self._blank()
        elif name == "img":
            source = token.attrs.get("src", "").strip()
            self._emit(f"![image]({source})" if source else "[image]")
        elif name == "a":
            self._links.append(token.attrs.get("href", "").strip())
            self._emit("[" if self._links[-1] else "")
        elif name in _EMPHASIS:
            self._emit(_EMPHASIS[name])

    def end(self, name: str) -> None:
        if self._code is not None:
            if self._code_depth:
                self._code_depth -= 1
                return
            if name in ("code", "pre"):
                self._end_code(block=bool(self._in_pre))
                if name == "pre":
                    self._in_pre -= 1
            return
        if name == "pre":
            self._in_pre -= 1
            self._blank()
        elif name in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._newline() if self._lists else self._blank()
        elif name in _HEADINGS or name in _PARAGRAPHS:
            self._newline() if name == "p" and self._lists else self._blank()
        elif name == "blockquote":
            self._newline()
            self._dedent()
            self._blank()
        elif name == "li":
            self._newline()
            self._dedent()
            self._marker = None
        elif name in _LINES:
            self._newline()
        elif name == "a" and self._links:
            href = self._links.pop()
            self._emit(f"]({href})" if href else "")
        elif name in _EMPHASIS:
            self._emit(_EMPHASIS[name])

    def text(self, data: str) -> None:
        if self._code is not None:
            self._code.append(data)
            return
        if "\n" not in data:  # the common case, kept cheap
            self._line.append(data if self._line else data.lstrip())
            return
        first, *rest = data.split("\n")
        self._emit(first.lstrip() if not self._line else first)
        for line in rest:
            self._newline()
            self._emit(line.lstrip())

    def _end_code(self, *, block: bool) -> None:
        text = "".join(self._code or [])
        self._code = None
        if not block:
            ticks = "`" * (longest_run(text) + 1)
            pad = " " if text.startswith("`") or text.endswith("`") else ""
            self._emit(f"{ticks}{pad}{text}{pad}{ticks}")
            return
        fence = "`" * max(3, longest_run(text) + 1)
        self._blank()
        self._emit(fence + self._language)
        for line in text.rstrip("\n").split("\n"):
            self._newline()
            self._emit(line)
        self._newline()
        self._emit(fence)
        self._blank()

    def result(self) -> str:
        self._newline()
        return _BLANK_RUNS.sub("\n\n", "\n".join(self.lines)).strip()


def sanitize(text: str) -> str:
    """Text as a person sees it rendered on GitHub, written as markdown, minus invisible
    characters. Beyond GitHub's maximum length the rest is left out, and the text says so."""
    writer = _Writer()
    walk(render(text), writer)
    visible = writer.result()
    if len(text) > MAX_PARSED_CHARS:
        visible += f"\n\n[... {len(text) - MAX_PARSED_CHARS:,} more characters left out ...]"
    return visible


def defuse_tags(text: str) -> str:
    """`</untrusted>` and every look-alike (`< /untrusted>`, `&lt;/untrusted&gt;`, any case)
    becomes `</_untrusted>`: text cannot end the block it is fenced in."""
    return _TAG_LOOKALIKE.sub(lambda m: f"{m.group(1)}{m.group(2)}_{UNTRUSTED_TAG}", text)


def fence(source: str, text: str) -> str:
    """Wrap sanitised text in a delimited block the model is told to treat as data."""
    body = defuse_tags(sanitize(text))
    label = "".join(c for c in source if c.isalnum() or c in " _.#@/-")[:80]
    return f'<{UNTRUSTED_TAG} source="{label}">\n{body}\n</{UNTRUSTED_TAG}>'
