"""Output hygiene: decoding, escape stripping, redaction and bounded head/tail cuts."""

from __future__ import annotations

import re
import tracemalloc

import pytest

from app.sandbox.output import Clipped, HeadTailBuffer, clean_output, strip_ansi
from app.text.redact import REDACTED, secret_forms

NOTE = re.compile(r"\[\.\.\. ([\d,]+) characters \(([\d,]+) lines\) cut from the middle")


def cut_counts(text: str) -> tuple[int, int]:
    match = NOTE.search(text)
    assert match, text
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


# --- decoding and escapes ---------------------------------------------------------------------


def test_short_output_passes_through() -> None:
    assert clean_output("hello\n", limit=100, secrets=[]) == ("hello\n", False)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    text, _ = clean_output(b"caf\xe9 \xff\xfe ok", limit=100, secrets=[])
    assert text == "caf\ufffd \ufffd\ufffd ok"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[1;31mred\x1b[0m", "red"),  # SGR colours
        ("a\x1b[2K\x1b[1Gb", "ab"),  # erase line, cursor column
        ("\x1b]0;title\x07text", "text"),  # OSC ended by BEL
        ("\x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),  # DCS (sixel)
        ("\x1b(Bplain\x1b=", "plain"),  # charset and keypad escapes
        ("\x9b31mc1\x9b0m", "c1"),  # 8-bit CSI
        ("cut \x1b[3", "cut "),  # a sequence cut short at the end
        ("keep\ttabs\0nul\r\n", "keep\ttabs\0nul\r\n"),  # not escapes: kept
    ],
)
def test_terminal_escapes_are_stripped(raw: str, expected: str) -> None:
    assert strip_ansi(raw) == expected


# --- redaction --------------------------------------------------------------------------------


def test_every_spelling_of_a_secret_is_redacted() -> None:
    secret = "p@ss/w+rd"
    raw = f"plain {secret} url p%40ss%2Fw%2Brd path p%40ss/w%2Brd form p%40ss%2Fw%2Brd"
    text, _ = clean_output(raw, limit=1000, secrets=[secret])
    assert text == f"plain {REDACTED} url {REDACTED} path {REDACTED} form {REDACTED}"


def test_secrets_of_any_length_and_overlapping_secrets() -> None:
    text, _ = clean_output("k abcdef abc", limit=100, secrets=["abc", "abcdef", "k", ""])
    assert text == f"{REDACTED} {REDACTED} {REDACTED}"


def test_a_coloured_secret_is_still_redacted() -> None:
    text, _ = clean_output("\x1b[32mtok\x1b[0men-123", limit=100, secrets=["token-123"])
    assert text == REDACTED


def test_lines_of_a_multiline_secret_are_redacted_alone() -> None:
    pem = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEAx1y2z3\nshort\n-----END KEY-----"
    text, _ = clean_output("head: MIIEowIBAAKCAQEAx1y2z3 short", limit=200, secrets=[pem])
    assert text == f"head: {REDACTED} short"
    assert "MIIEowIBAAKCAQEAx1y2z3" in secret_forms([pem])


def test_redaction_happens_before_the_cut() -> None:
    secret = "S" * 30
    raw = "x" * 45 + secret + "y" * 45  # the secret straddles the middle cut
    text, truncated = clean_output(raw, limit=60, secrets=[secret])
    assert truncated
    assert "SSSS" not in text


# --- truncation -------------------------------------------------------------------------------


def test_long_output_keeps_head_and_tail_and_says_what_was_cut() -> None:
    raw = "".join(f"line {i:04d}\n" for i in range(1000))  # 10,000 characters
    text, truncated = clean_output(raw, limit=200, secrets=[])
    assert truncated
    assert text.startswith("line 0000\n")
    assert text.endswith("line 0999\n")
    before, _, rest = text.partition("[...")
    after = rest.split("\n", 1)[1]
    chars, lines = cut_counts(text)
    assert chars == len(raw) - len(before) - len(after)
    assert lines == raw.count("\n") - before.count("\n") - after.count("\n")
    assert len(text) <= 200 + 100


def test_cuts_fall_on_line_boundaries_when_near() -> None:
    raw = "".join(f"row {i}\n" for i in range(100))
    text, _ = clean_output(raw, limit=100, secrets=[])
    before, after = text.split("[...")
    assert before.endswith("\n")
    assert after.split("]\n", 1)[1].startswith("row ")


def test_one_long_line_is_cut_mid_line() -> None:
    text, truncated = clean_output("a" * 500 + "b" * 500, limit=100, secrets=[])
    assert truncated
    assert text.startswith("a" * 50)
    assert text.endswith("b" * 50)
    assert cut_counts(text) == (900, 0)


def test_limit_zero_keeps_only_the_note() -> None:
    text, truncated = clean_output("abc", limit=0, secrets=[])
    assert truncated
    assert cut_counts(text) == (3, 0)


def test_negative_limit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="limit"):
        clean_output("x", limit=-1, secrets=[])


# --- streaming --------------------------------------------------------------------------------


def test_buffer_keeps_everything_that_fits() -> None:
    buffer = HeadTailBuffer(10, 10)
    for chunk in (b"abc", b"defgh", b"ijklmnop"):
        buffer.write(chunk)
    assert buffer.getvalue() == b"abcdefghijklmnop"


def test_buffer_keeps_head_and_tail_and_counts_the_middle() -> None:
    buffer = HeadTailBuffer(4, 4)
    for chunk in (b"ab", b"cd\ne", b"f\ng", b"\xc3\xa9h", b"ijkl"):  # \xc3\xa9 is one char
        buffer.write(chunk)
    clipped = buffer.getvalue()
    assert clipped == Clipped(b"abcd", b"ijkl", omitted_chars=7, omitted_lines=2)


def test_streaming_a_hundred_megabytes_holds_a_few() -> None:
    chunk = b"0123456789abcde\n" * 4096  # 64 KiB
    tracemalloc.start()
    try:
        buffer = HeadTailBuffer(1 << 20, 1 << 20)
        for _ in range(1600):  # 100 MiB
            buffer.write(chunk)
        clipped = buffer.getvalue()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(clipped, Clipped)
    assert peak < 8 << 20
    assert len(clipped.head) == len(clipped.tail) == 1 << 20
    assert clipped.omitted_chars == 1600 * len(chunk) - (2 << 20)
    assert clipped.omitted_lines == clipped.omitted_chars // 16


def test_clipped_output_drops_secret_fragments_at_the_clip() -> None:
    secret = "ghs_0123456789abcdefghij"
    clipped = Clipped(
        head=b"start\n" + secret[:10].encode(),  # the secret was cut after 10 characters
        tail=secret[-7:].encode() + b" and the rest\n" + b"z" * 200 + b"\nend\n",
        omitted_chars=1000,
        omitted_lines=10,
    )
    text, truncated = clean_output(clipped, limit=10_000, secrets=[secret])
    assert truncated
    assert secret[:10] not in text
    assert secret[:4] not in text
    assert secret[-7:] not in text
    assert text.endswith("end\n")
    chars, _ = cut_counts(text)
    assert chars > 1000  # the trimmed fragments count as cut


def test_clipped_output_drops_escape_fragments_at_the_clip() -> None:
    clipped = Clipped(
        head=b"ok\n" * 100 + b"\x1b]0;unfinished",
        tail=b"8;;]\x07x\n" + b"z" * 100 + b"\nend\n",
        omitted_chars=5,
        omitted_lines=0,
    )
    text, _ = clean_output(clipped, limit=10_000, secrets=[])
    assert "unfinished" not in text
    assert "8;;" not in text
    assert text.startswith("ok\n")
    assert text.endswith("end\n")
