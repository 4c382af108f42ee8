"""Markdown as GitHub renders it, read as a person reads it."""

from __future__ import annotations

from app.text.markdown import MASK, read, render


def test_the_first_visible_line_is_found_after_quotes_and_code() -> None:
    reading = read("> quoted\n\n```\ncode\n```\n\n  /open-swe stop\nmore")
    assert reading.first_line == 7
    assert reading.first_text == "/open-swe stop"


def test_a_first_line_in_a_list_or_heading_opens_no_paragraph() -> None:
    assert read("- /open-swe stop").first_line is None
    assert read("# /open-swe stop").first_line is None


def test_prose_masks_code_and_leaves_out_quotes() -> None:
    prose = "".join(read("a `b` c\n\n> d\n\n    e\n\nf").prose)
    assert "d" not in prose
    assert MASK in prose
    assert "a " in prose
    assert "f" in prose


def test_nesting_deeper_than_eight_levels_reads_as_the_eighth() -> None:
    assert render(">" * 100 + " x").count("<blockquote>") == 8
