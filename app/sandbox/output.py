"""Output hygiene for sandbox commands: decode, strip terminal escapes, redact, bound.

Redaction is the one policy of `app.text.redact`; this module adds what streaming needs. Used by `Sandbox.run()` for every backend, and by the local
backend while streaming, so a command that prints 100 MB never holds 100 MB in memory.

Order matters: escapes are stripped before redaction (a token printed in colour is still caught),
and redaction happens before the cut. When the stream was already clipped, the head and tail are
redacted separately and then trimmed by the longest secret's length at the clip, so no fragment of
a secret that straddled the clip survives (the fragment is too short to be recognised).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from app.text.redact import redact, secret_forms

# ESC-introduced sequences (ECMA-48): CSI, OSC and the other string commands (DCS, SOS, PM,
# APC, possibly unterminated at the end of a clip), then two-byte and nF escapes; plus the
# 8-bit CSI. Control characters such as NUL, TAB and CR are kept: tools rely on them
# (deepagents' grep separates fields with NUL).
_ANSI = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*(?:[@-~]|\Z)           # CSI: colours, cursor movement
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\|\Z)    # OSC: window titles, hyperlinks
    | \x1b[PX^_][^\x1b]*(?:\x1b\\|\Z)        # DCS, SOS, PM, APC
    | \x1b[ -/]*[0-~]                        # nF and two-byte escapes (charset, keypad...)
    | \x9b[0-?]*[ -/]*[@-~]                  # 8-bit CSI
    | \x1b                                   # a lone ESC left by a cut
    """,
    re.VERBOSE,
)

# Characters trimmed at a clip on top of the longest secret, for fragments of escape sequences
# (a token shape cut by the clip loses its prefix or is too short to be a token).
_CLIP_MARGIN = 64
# UTF-8 continuation bytes: every other byte starts a character.
_CONTINUATION = bytes(range(0x80, 0xC0))


@dataclass(frozen=True)
class Clipped:
    """Output whose middle was dropped while streaming (see HeadTailBuffer)."""

    head: bytes
    tail: bytes
    omitted_chars: int
    omitted_lines: int


class HeadTailBuffer:
    """Keeps the first `head` and last `tail` bytes of a stream, counting what falls between."""

    def __init__(self, head: int, tail: int) -> None:
        if head < 0 or tail < 0:
            raise ValueError("head and tail must not be negative")
        self._head_limit = head
        self._tail_limit = tail
        self._head = bytearray()
        self._tail = bytearray()
        self._omitted_chars = 0
        self._omitted_lines = 0
        self._clipped = False

    def write(self, chunk: bytes) -> None:
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self._tail += chunk
        # Compact only when the tail doubles, so dropping costs O(total) rather than O(n^2).
        if len(self._tail) > 2 * self._tail_limit + len(chunk):
            self._drop(len(self._tail) - self._tail_limit)

    def _drop(self, count: int) -> None:
        dropped = bytes(self._tail[:count])
        del self._tail[:count]
        self._omitted_chars += len(dropped.translate(None, _CONTINUATION))
        self._omitted_lines += dropped.count(b"\n")
        self._clipped = True

    def getvalue(self) -> bytes | Clipped:
        """Everything, when it fit; else the head, the tail and a count of what was dropped."""
        if len(self._tail) > self._tail_limit:
            self._drop(len(self._tail) - self._tail_limit)
        if not self._clipped:
            return bytes(self._head + self._tail)
        return Clipped(
            bytes(self._head), bytes(self._tail), self._omitted_chars, self._omitted_lines
        )


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clean_output(
    raw: bytes | str | Clipped, *, limit: int, secrets: Iterable[str]
) -> tuple[str, bool]:
    """Decode, strip escapes, redact secrets and keep at most `limit` characters (head + tail).

    Returns the text and whether anything was cut. A cut is marked in place with a note saying
    how many characters and lines were left out.
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    forms = secret_forms(secrets)
    if not isinstance(raw, Clipped):
        text = redact(strip_ansi(_decode(raw)), forms)
        if len(text) <= limit:
            return text, False
        middle = len(text) // 2
        return _cut(text[:middle], text[middle:], 0, 0, limit), True

    margin = max((len(form) for form in forms), default=0) + _CLIP_MARGIN
    head = redact(strip_ansi(_decode(raw.head)), forms)
    tail = redact(strip_ansi(_decode(raw.tail)), forms)
    # Drop what sits next to the clip: it may be a fragment of a secret or escape sequence.
    head_end, tail_start = max(len(head) - margin, 0), min(margin, len(tail))
    chars = raw.omitted_chars + (len(head) - head_end) + tail_start
    lines = raw.omitted_lines + head[head_end:].count("\n") + tail[:tail_start].count("\n")
    return _cut(head[:head_end], tail[tail_start:], chars, lines, limit), True


def _decode(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def _cut(head: str, tail: str, chars: int, lines: int, limit: int) -> str:
    """Join head and tail into at most `limit` characters, preferring cuts at line ends."""
    keep_head = min(len(head), limit // 2)
    keep_tail = min(len(tail), limit - keep_head)
    keep_head = min(len(head), limit - keep_tail)  # give unused tail room back to the head
    head_cut = _snap_head(head, keep_head)
    tail_cut = _snap_tail(tail, keep_tail)
    left_out = head[head_cut:] + tail[: len(tail) - tail_cut]
    chars += len(left_out)
    lines += left_out.count("\n")
    kept_head = head[:head_cut]
    kept_tail = tail[len(tail) - tail_cut :] if tail_cut else ""
    opening = "" if not kept_head or kept_head.endswith("\n") else "\n"
    note = f"[... {chars:,} characters ({lines:,} lines) cut from the middle of the output ...]\n"
    return kept_head + opening + note + kept_tail


def _snap_head(head: str, keep: int) -> int:
    """A cut point at most `keep`, moved back to a line end when one is near."""
    keep = min(keep, len(head))
    newline = head.rfind("\n", keep - keep // 4, keep)
    return newline + 1 if newline >= 0 else keep


def _snap_tail(tail: str, keep: int) -> int:
    """How many characters to keep from the end, moved forward to a line start when near."""
    keep = min(keep, len(tail))
    start = len(tail) - keep
    newline = tail.find("\n", start, start + keep // 4)
    return len(tail) - (newline + 1) if newline >= 0 else keep
