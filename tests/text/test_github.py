"""Text we post on GitHub: mentions defused, closing keywords kept to the run's own issue,
code spans found as CommonMark pairs them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.text.github import (
    clip,
    code_spans,
    defuse_mentions,
    escape,
    one_line,
    quote,
    unclose_others,
)

ZWSP = "\u200b"


def test_defuse_mentions_keeps_the_name_but_pings_nobody() -> None:
    text = "@alice, `@code` and (@bob-2)"
    assert defuse_mentions(text) == f"@{ZWSP}alice, `@{ZWSP}code` and (@{ZWSP}bob-2)"


@pytest.mark.parametrize(
    "text",
    [
        "_@user_",  # issue 11: emphasis around the mention
        "*@user*",
        "&#64;user",  # issue 11: the entity renders as "@" and pings
        "&#x40;user",
        "&#X0040;user",
        "&commat;user",
        "`@user",  # issue 11: a lone backtick opens no code span
        "[@user](https://example.com)",
        "mail a@user.example",
        "\\@user",
        "@@user",
    ],
)
def test_every_at_name_token_is_defused_whatever_surrounds_it(text: str) -> None:
    defused = defuse_mentions(text)
    assert "&#" not in defused
    assert "&commat" not in defused
    assert "@" in defused
    assert "user" in defused
    assert all(defused[i + 1] == ZWSP for i, c in enumerate(defused) if c == "@"), defused


def test_defusing_twice_changes_nothing_more() -> None:
    once = defuse_mentions("@alice and @bob")
    assert defuse_mentions(once) == once


def test_escape_shows_entities_as_written_and_defuses_mentions() -> None:
    assert escape("&#64;alice <b>") == "&amp;#64;alice \\<b\\>"
    assert escape("@alice") == f"@{ZWSP}alice"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fixes #99", "refs #99"),
        ("closes: #99.", "refs #99."),
        ("RESOLVED other/repo#5", "refs other/repo#5"),
        ("Fixed GH-12", "refs GH-12"),
        (
            "fix https://github.com/acme/other/issues/3",
            "refs https://github.com/acme/other/issues/3",
        ),
        (
            "Closes https://github.com/acme/widgets/pull/8",
            "refs https://github.com/acme/widgets/pull/8",
        ),
        ("Fixes #70", "refs #70"),  # not the run's #7
        ("Fixes #7", "Fixes #7"),
        ("resolves: ACME/Widgets#7", "resolves: ACME/Widgets#7"),
        (
            "close https://github.com/acme/widgets/issues/7",
            "close https://github.com/acme/widgets/issues/7",
        ),
        ("prefixes #99 and closest #99", "prefixes #99 and closest #99"),  # not keywords
        ("fixes **#99**", "refs #99**"),  # emphasis around the reference
        ("Fixes\n#99", "refs #99"),
    ],
)
def test_unclose_others_keeps_only_the_runs_own_closing_reference(text: str, expected: str) -> None:
    assert unclose_others(text, repo="acme/widgets", issue_number=7) == expected


def test_unclose_others_without_an_issue_closes_nothing() -> None:
    assert unclose_others("Fixes #7", repo="acme/widgets", issue_number=None) == "refs #7"


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("a `b` c", ["`b`"]),
        ("``a`b``", ["``a`b``"]),
        ("`a``b`", ["`a``b`"]),  # a run of two is not the closer of a run of one
        ("`unclosed", []),
        ("`a` `b`", ["`a`", "`b`"]),
        ("```a``b`c```", ["```a``b`c```"]),
        ("`` a ` b", []),
    ],
)
def test_code_spans_pair_runs_of_equal_length(text: str, spans: list[str]) -> None:
    assert [text[a:b] for a, b in code_spans(text)] == spans


def test_quote_leaves_no_markup_or_mention() -> None:
    assert quote("`@bob <x>` [a](b) *c*") == "bobxabc"
    assert quote("x" * 50) == "x" * 40 + "…"


@given(text=st.text(alphabet=" \t\n\u3000\u200da`b@", max_size=60), limit=st.integers(2, 40))
def test_one_line_reads_only_what_the_limit_needs_yet_equals_collapse_then_clip(
    text: str, limit: int
) -> None:
    assert one_line(text, limit) == clip(" ".join(text.split()), limit)


def test_one_line_stops_after_the_limit() -> None:
    long = "word " * 200_000
    assert one_line(long, 12) == "word word w…"
