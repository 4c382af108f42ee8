"""Invisible characters and the parsing bound."""

from __future__ import annotations

from app.text.invisible import MAX_PARSED_CHARS, bounded, strip_invisible


def test_invisible_and_control_characters_go_line_ends_become_newlines() -> None:
    text = "a\u200bb\u200dc\u202ed\u2066e\ufefff\u00adg\U000e0041h\x07i\r\nj\rk\tl"
    assert strip_invisible(text) == "abcdefghi\nj\nk\tl"


def test_no_unicode_normalisation_happens() -> None:
    assert strip_invisible("e\u0301 \u212a") == "e\u0301 \u212a"


def test_bounded_keeps_githubs_maximum_and_counts_the_rest() -> None:
    assert bounded("x" * 10) == ("x" * 10, 0)
    text, cut = bounded("x" * (MAX_PARSED_CHARS + 5))
    assert len(text) == MAX_PARSED_CHARS
    assert cut == 5
