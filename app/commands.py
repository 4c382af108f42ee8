"""Comment text -> Command. Pure: no I/O, no knowledge of runs.

Grammar (ASCII, case-insensitive; invisible characters such as zero-width joiners and bidi
controls are removed first, and nothing is matched through Unicode case folding):
- The comment is read as GitHub renders it (`app.text.markdown`). It addresses the bot when its
  first visible line opens a top-level paragraph with `/open-swe` or `@<app-slug>` (the trigger),
  or when it mentions `@<app-slug>` anywhere else in its visible prose. Quotations (including
  their lazy continuation lines), code (spans, fenced and indented blocks, `<pre>`), HTML
  comments and hidden HTML are invisible: quoting or showing a command never triggers one. The
  first visible line is looked for after any leading quotation or code block.
- While the App's slug is unknown (`slug=None`), mentions never address the bot: only
  `/open-swe` and the bare plan commands do.
- After a leading trigger, the first line decides:
  `approve`, `stop`, `retry`, `status`, `help` alone on the line are those commands (later lines
  are ignored); `revise <feedback>` revises the plan (the feedback may span lines); nothing at all
  is `help`; a single word that is none of these is `unknown` (answered with help rather than
  started as an instruction, so a typo such as `aprove` costs nothing); anything else is
  free-text instructions. `autofix on` / `autofix off` (alone on the line) turn CI autofix on
  or off for a pull request; `autofix` with anything else is `unknown`.
- A mention elsewhere in the text makes the whole comment the instructions.
- A bare `/approve` or `/revise <feedback>` leading a comment is the same command with
  `bare=True`: it counts only where a plan is waiting for approval (the handler checks).
  `/approve` followed by more words is instructions (`bare=True`) for the waiting run.

Linear in the length of the comment: cmark-gfm parses, `app.text.html` reads the result, and
the only patterns here are anchored or possessive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from app.text.invisible import bounded, strip_invisible
from app.text.markdown import Reading, read

COMMAND_PREFIX = "/open-swe"


class Verb(StrEnum):
    APPROVE = "approve"
    REVISE = "revise"
    STOP = "stop"
    RETRY = "retry"
    STATUS = "status"
    HELP = "help"
    AUTOFIX = "autofix"  # CI autofix on a pull request; text is "on" or "off"
    INSTRUCT = "instruct"  # free-text instructions (a follow-up change)
    UNKNOWN = "unknown"  # a one-word command we do not know; text holds the word


ALONE_ON_LINE = frozenset({Verb.APPROVE, Verb.STOP, Verb.RETRY, Verb.STATUS, Verb.HELP})
BARE_VERBS = (Verb.APPROVE, Verb.REVISE)
AUTOFIX_SWITCHES = ("on", "off")


@dataclass(frozen=True, slots=True)
class Command:
    verb: Verb
    text: str = ""  # revise feedback, instructions, or the unknown word
    bare: bool = False  # `/approve` / `/revise` without addressing the bot


# A GitHub login: ASCII letters, digits and single hyphens, at most 39 characters.
_MENTION = re.compile(
    r"(?<![\w`@/])@([A-Za-z0-9][A-Za-z0-9-]{0,38}+(?:\[bot\])?)(?![\w/-])", re.ASCII
)
_NAME_GOES_ON = re.compile(r"[\w-]", re.ASCII)
_PUNCTUATION = ".,:;!?"


def _clean(text: str) -> str:
    return strip_invisible(bounded(text)[0])


def strip_hidden_markup(text: str) -> str:
    """The text without HTML comments (invisible on GitHub, so never instructions). Linear."""
    parts, position = [], 0
    while (start := text.find("<!--", position)) >= 0:
        parts.append(text[position:start])
        end = text.find("-->", start + 4)
        if end < 0:
            return "".join(parts)
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


def mentions(text: str) -> set[str]:
    """Lower-cased logins @-mentioned in the visible prose."""
    return _mentions(read(text))


def _mentions(reading: Reading) -> set[str]:
    prose = "".join(reading.prose)
    return {match.group(1).lower() for match in _MENTION.finditer(prose)}


def _is_slug(login: str, slug: str | None) -> bool:
    """Is `login` the App? Never while its slug is unknown."""
    if slug is None or not login.isascii():
        return False
    return login.lower() in {slug.lower(), f"{slug.lower()}[bot]"}


def parse_command(text: str, slug: str | None) -> Command | None:
    """The command in a comment, or None when it does not address the bot."""
    clean = _clean(text)
    reading = read(clean)
    if reading.first_line is not None:
        lines = clean.split("\n")
        trigger = _after_trigger(lines[reading.first_line - 1].lstrip(), reading.first_text, slug)
        if trigger is not None:
            bare, rest_of_line = trigger
            rest = "\n".join([rest_of_line, *lines[reading.first_line :]])
            return _interpret(strip_hidden_markup(rest), bare=bare)
    if any(_is_slug(login, slug) for login in _mentions(reading)):
        return Command(Verb.INSTRUCT, strip_hidden_markup(clean).strip())
    return None


def addresses_bot(text: str, slug: str | None) -> bool:
    return parse_command(text, slug) is not None


def _starts_with(line: str, word: str) -> bool:
    """Does `line` start with `word` (ASCII, any case) as a whole word?"""
    head = line[: len(word)]
    if not head.isascii() or head.lower() != word:
        return False
    return not _NAME_GOES_ON.match(line, len(word))


def _after_trigger(raw: str, shown: str, slug: str | None) -> tuple[bool, str] | None:
    """(bare, rest of the raw line after the trigger), or None if the line has no trigger.

    The trigger must open both the source line and the text a reader sees (so an escaped or
    entity-encoded look-alike is not one).
    """
    shown = shown.lstrip()
    if _starts_with(raw, COMMAND_PREFIX) and _starts_with(shown, COMMAND_PREFIX):
        return False, raw[len(COMMAND_PREFIX) :]
    match = _MENTION.match(raw) if slug is not None else None
    if match and _is_slug(match.group(1), slug) and shown.startswith(match.group(0)):
        return False, raw[match.end() :].lstrip(",:")
    for verb in BARE_VERBS:
        word = f"/{verb}"
        if _starts_with(raw, word) and _starts_with(shown, word):
            return True, raw[1:]  # keep the verb: "/revise x" reads as "revise x"
    return None


def _interpret(rest: str, *, bare: bool) -> Command:
    rest = rest.strip()
    if not rest:
        return Command(Verb.HELP)
    first_line = rest.split("\n", 1)[0]
    words = first_line.split()
    head = words[0].rstrip(_PUNCTUATION)
    head = head.lower() if head.isascii() else head
    if head in ALONE_ON_LINE and len(words) == 1:
        return Command(Verb(head), bare=bare)
    if head == Verb.AUTOFIX and not bare:
        switch = words[1].lower() if len(words) == 2 and words[1].isascii() else ""
        if switch in AUTOFIX_SWITCHES:
            return Command(Verb.AUTOFIX, switch)
        return Command(Verb.UNKNOWN, " ".join(words[:2]))
    if head == Verb.REVISE:
        feedback = rest[len(words[0]) :].strip()
        return (
            Command(Verb.REVISE, feedback, bare) if feedback else Command(Verb.UNKNOWN, head, bare)
        )
    if bare:  # "/approve, but ...": words for the waiting run to read, like any follow-up
        return Command(Verb.INSTRUCT, rest, bare=True)
    if len(rest.split(maxsplit=1)) == 1:  # "/open-swe aprove": a typo must not start a run
        return Command(Verb.UNKNOWN, head)
    return Command(Verb.INSTRUCT, rest)
