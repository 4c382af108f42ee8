"""Text open-swe posts on GitHub (comments, pull request titles and bodies, commit messages).

Whatever came from people or the model is made inert before it is posted: `inline` and `code`
show it without markup, `block` as a fenced block, `quote` as a short word fit for inline code.
`defuse_mentions` keeps every `@name` visible but pinging nobody, whatever markup surrounds it,
and `unclose_others` keeps closing keywords from closing any issue but the run's own. Linear:
code spans are found by one pass over backtick runs, and every pattern is possessive.
"""

from __future__ import annotations

import re

from app.text.sanitize import longest_run

ZERO_WIDTH_SPACE = "\u200b"  # "@\u200bname" renders as @name without pinging anyone
# Markdown-inert text: "&" shown as written, markup characters escaped.
_ESCAPES = str.maketrans({"&": "&amp;", **{c: "\\" + c for c in "\\`<>[]"}})
_UNSAFE = re.compile(r"[`@\s<>\[\]()*_~|\\]")
# "@" written as an entity renders as "@" (and pings): `&#64;`, `&#x40;`, `&commat;`.
_AT_ENTITY = re.compile(r"&(?:#0*+64|#[xX]0*+40|commat);?+")
# GitHub's closing keywords, a gap (spaces, a colon, emphasis), then one issue reference (#N,
# GH-N, owner/repo#N or an issue/pull URL): merged into the default branch, it closes that issue.
_CLOSING = re.compile(
    # The first letter, then "not after a word character": a charset first lets the regex
    # engine skip ahead, where a leading \b would be tried at every position.
    r"(?P<keyword>[CcFfRr](?<!\w[CcFfRr])"
    r"(?:(?<=[Cc])lose[sd]?+|(?<=[Ff])ix(?:e[sd])?+|(?<=[Rr])esolve[sd]?+))(?P<gap>[\s:*_]*+)"
    r"(?P<ref>(?:(?P<repo>[\w.-]++/[\w.-]++)#|#|gh-)(?P<number>\d++)"
    r"|https?://[^\s/]++/(?P<url_repo>[\w.-]++/[\w.-]++)/(?:issues|pull)/(?P<url_number>\d++))"
    r"(?![\w/])",
    re.IGNORECASE,
)
_BACKTICK_RUN = re.compile(r"`++")
_WORD = re.compile(r"\S++")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str, limit: int) -> str:
    """`" ".join(text.split())` clipped to `limit`, reading no further than the limit needs
    (a status line never pays for the megabyte behind its first words)."""
    words: list[str] = []
    size = -1
    for match in _WORD.finditer(text):
        words.append(match.group())
        size += len(words[-1]) + 1
        if size > limit:
            break
    return clip(" ".join(words), limit)


def escape(text: str) -> str:
    """Markdown-inert text: markup escaped, entities shown as written, mentions defused."""
    return defuse_mentions(text.translate(_ESCAPES))


def defuse_mentions(text: str) -> str:
    """Every @-mention stays visible but pings nobody (nor any bot), whatever markup is around
    it; `@` spelt as an HTML entity included."""
    if "&" in text:
        text = _AT_ENTITY.sub("@", text)
    # Every "@", whatever precedes it (`_@user_`, "`@user", "(@user)", "a@b"): the space
    # is invisible, so marking one that starts no name costs nothing.
    defused = "@" + ZERO_WIDTH_SPACE
    return text.replace(defused, "@").replace("@", defused)


def unclose_others(text: str, *, repo: str, issue_number: int | None) -> str:
    """Text that closes no issue but the run's own when merged (pull request bodies, commit
    messages). A closing keyword aimed at any other issue becomes "refs": the reference still
    links, nothing gets closed."""

    def rewrite(match: re.Match[str]) -> str:
        ref_repo = match.group("repo") or match.group("url_repo") or repo
        number = int(match.group("number") or match.group("url_number"))
        if ref_repo.lower() == repo.lower() and number == issue_number:
            return match.group(0)
        return f"refs {match.group('ref')}"

    return _CLOSING.sub(rewrite, text)


def code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each code span, as CommonMark pairs backtick runs: a run opens a span
    closed by the next run of the same length. One pass: runs are indexed by length."""
    runs = [(m.start(), m.end()) for m in _BACKTICK_RUN.finditer(text)]
    by_length: dict[int, list[int]] = {}
    for index, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(index)
    cursor = dict.fromkeys(by_length, 0)  # per length: the first run not yet passed
    spans: list[tuple[int, int]] = []
    index = 0
    while index < len(runs):
        start, end = runs[index]
        same = by_length[end - start]
        position = cursor[end - start]
        while position < len(same) and same[position] <= index:
            position += 1
        cursor[end - start] = position
        if position == len(same):
            index += 1
            continue
        closing = same[position]
        spans.append((start, runs[closing][1]))
        index = closing + 1
    return spans


def inline(text: str, limit: int) -> str:
    """Untrusted text as one line of plain markdown: code spans kept, everything else inert."""
    text = one_line(text, limit)
    parts, position = [], 0
    for start, end in code_spans(text):
        parts += [escape(text[position:start]), text[start:end]]
        position = end
    parts.append(escape(text[position:]))
    return "".join(parts)


def code(text: str, limit: int) -> str:
    """Untrusted text as one inline code span (a delimiter longer than any backtick run)."""
    text = one_line(text, limit)
    ticks = "`" * (longest_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def block(text: str, limit: int) -> str:
    """Untrusted multi-line text (e.g. command output) as a fenced block; its tail is kept."""
    text = text.strip("\n")
    if len(text) > limit:
        text = "…" + text[-limit:]
    fence = "`" * max(3, longest_run(text) + 1)
    return f"{fence}text\n{text}\n{fence}"


def quote(text: str, *, limit: int = 40) -> str:
    """User text fit to echo inside inline code: no markup, no mentions, bounded length."""
    cleaned = _UNSAFE.sub("", text)
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")
