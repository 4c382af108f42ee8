"""Comment text -> Command. Pure: no I/O, no knowledge of runs.

Grammar (case-insensitive):
- A comment addresses the bot when its first visible line starts with `/open-swe` or
  `@<app-slug>` (the trigger line), or when it mentions `@<app-slug>` anywhere else. Quoted lines
  (`> ...`), fenced code blocks, inline code and HTML comments are invisible: quoting or showing
  a command never triggers one.
- After a leading trigger, the first line decides:
  `approve`, `stop`, `retry`, `status`, `help` alone on the line are those commands (later lines
  are ignored); `revise <feedback>` revises the plan (the feedback may span lines); nothing at all
  is `help`; a single word that is none of these is `unknown` (answered with help rather than
  started as an instruction, so a typo such as `aprove` costs nothing); anything else is
  free-text instructions.
- A mention elsewhere in the text makes the whole comment the instructions.
- A bare `/approve` or `/revise <feedback>` leading a comment is the same command with
  `bare=True`: it counts only where a plan is waiting for approval (the handler checks).
  `/approve` followed by more words is instructions (`bare=True`) for the waiting run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

COMMAND_PREFIX = "/open-swe"


class Verb(StrEnum):
    APPROVE = "approve"
    REVISE = "revise"
    STOP = "stop"
    RETRY = "retry"
    STATUS = "status"
    HELP = "help"
    INSTRUCT = "instruct"  # free-text instructions (a follow-up change)
    UNKNOWN = "unknown"  # a one-word command we do not know; text holds the word


ALONE_ON_LINE = frozenset({Verb.APPROVE, Verb.STOP, Verb.RETRY, Verb.STATUS, Verb.HELP})


@dataclass(frozen=True, slots=True)
class Command:
    verb: Verb
    text: str = ""  # revise feedback, instructions, or the unknown word
    bare: bool = False  # `/approve` / `/revise` without addressing the bot


_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")
_MENTION = re.compile(
    r"(?<![\w`@/])@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\[bot\])?)(?![\w/-])"
)
_PREFIX = re.compile(re.escape(COMMAND_PREFIX) + r"(?![\w-])", re.IGNORECASE)
_BARE = re.compile(r"/(approve|revise)(?![\w-])", re.IGNORECASE)
_MASK = "\x1a"  # stands in for inline code so offsets stay those of the raw line
_PUNCTUATION = ".,:;!?"


def strip_hidden_markup(text: str) -> str:
    """The text without HTML comments (invisible on GitHub, so never instructions)."""
    return _HTML_COMMENT.sub("", text.replace("\r\n", "\n"))


def _visible_lines(text: str) -> list[tuple[str, str]]:
    """(raw, visible) per line. Fenced code and quoted lines are not visible at all ("");
    inline code is masked with a stand-in of the same length, so offsets stay those of `raw`."""
    lines: list[tuple[str, str]] = []
    fence: str | None = None
    for raw in text.split("\n"):
        opening = _FENCE.match(raw)
        if fence is not None:
            if opening and _closes(opening.group(1), fence) and not raw[opening.end() :].strip():
                fence = None
            lines.append((raw, ""))
        elif opening:
            fence = opening.group(1)
            lines.append((raw, ""))
        elif raw.lstrip().startswith(">"):
            lines.append((raw, ""))
        else:
            visible = _INLINE_CODE.sub(lambda m: _MASK * len(m.group(0)), raw)
            lines.append((raw, visible))
    return lines


def _closes(marker: str, fence: str) -> bool:
    """A fence closes with the same character, at least as many times."""
    return marker[0] == fence[0] and len(marker) >= len(fence)


def mentions(text: str) -> set[str]:
    """Lower-cased logins @-mentioned in the visible text."""
    found: set[str] = set()
    for _raw, visible in _visible_lines(strip_hidden_markup(text)):
        found.update(m.group(1).lower() for m in _MENTION.finditer(visible))
    return found


def _is_slug(login: str, slug: str | None) -> bool:
    """Is `login` the App? Without a known slug, any mention might be (request-time filter)."""
    if slug is None:
        return True
    return login.lower() in {slug.lower(), f"{slug.lower()}[bot]"}


def parse_command(text: str, slug: str | None) -> Command | None:
    """The command in a comment, or None when it does not address the bot.

    With `slug=None` (the App's slug not known yet) any mention counts: callers use that only
    as a cheap pre-filter and parse again once the slug is known.
    """
    clean = strip_hidden_markup(text)
    lines = _visible_lines(clean)
    for index, (raw, visible) in enumerate(lines):
        if not visible.strip():
            continue
        trigger = _after_trigger(raw, visible, slug)
        if trigger is not None:
            bare, rest_of_line = trigger
            following = [r for r, _ in lines[index + 1 :]]
            return _interpret("\n".join([rest_of_line, *following]), bare=bare)
        break  # only the first visible line can carry a leading trigger
    if any(_is_slug(login, slug) for login in mentions(clean)):
        return Command(Verb.INSTRUCT, clean.strip())
    return None


def addresses_bot(text: str, slug: str | None) -> bool:
    return parse_command(text, slug) is not None


def _after_trigger(raw: str, visible: str, slug: str | None) -> tuple[bool, str] | None:
    """(bare, rest of the raw line after the trigger), or None if the line has no trigger."""
    start = len(visible) - len(visible.lstrip())
    line = visible[start:]
    if match := _PREFIX.match(line):
        return False, raw[start + match.end() :]
    if (match := _MENTION.match(line)) and _is_slug(match.group(1), slug):
        return False, raw[start + match.end() :].lstrip(",:")
    if _BARE.match(line):
        return True, raw[start + 1 :]  # keep the verb: "/revise x" reads as "revise x"
    return None


def _interpret(rest: str, *, bare: bool) -> Command:
    rest = rest.strip()
    if not rest:
        return Command(Verb.HELP)
    first_line = rest.split("\n", 1)[0]
    words = first_line.split()
    head = words[0].lower().rstrip(_PUNCTUATION)
    if head in ALONE_ON_LINE and len(words) == 1:
        return Command(Verb(head), bare=bare)
    if head == Verb.REVISE:
        feedback = rest[len(words[0]) :].strip()
        return (
            Command(Verb.REVISE, feedback, bare) if feedback else Command(Verb.UNKNOWN, head, bare)
        )
    if bare:  # "/approve, but ...": words for the waiting run to read, like any follow-up
        return Command(Verb.INSTRUCT, rest, bare=True)
    if len(rest.split()) == 1:  # "/open-swe aprove": a typo must not start a run
        return Command(Verb.UNKNOWN, head)
    return Command(Verb.INSTRUCT, rest)
