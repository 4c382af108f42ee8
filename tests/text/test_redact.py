"""The one redaction policy: known values in every spelling, token shapes, URL credentials."""

from __future__ import annotations

import pytest

import app.text.redact as redact_module
from app.text.redact import REDACTED, Redactor, redact, secret_forms


def test_known_secrets_token_shapes_and_url_credentials_are_redacted() -> None:
    scrub = Redactor(["correct-horse-battery"])
    scrub.add("staple-and-more")
    text = (
        "a correct-horse-battery b staple-and-more c ghs_abcdefghijklmnopqrstuvwxyz0123 "
        "d github_pat_11ABCDEFG0123456789_abcdefghij e sk-proj-abcdefghijklmnop "
        "f https://x-access-token:t0ken@github.com/acme/widgets.git"
    )
    assert scrub(text) == (
        "a [redacted] b [redacted] c [redacted] d [redacted] e [redacted] "
        "f https://[redacted]@github.com/acme/widgets.git"
    )
    assert scrub("ghs_short and sk-no") == "ghs_short and sk-no"


def test_learned_secrets_are_bounded_keeping_the_newest_and_every_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redact_module, "MAX_LEARNED_SECRETS", 2)
    redactor = Redactor(["configured-secret"])
    for token in ("token-one", "token-two", "token-three"):
        redactor.add(token)

    assert redactor.scrub("configured-secret token-two token-three") == " ".join([REDACTED] * 3)
    assert redactor.scrub("token-one") == "token-one"  # the oldest, long expired, went first


def test_a_secret_containing_another_is_replaced_whole() -> None:
    redactor = Redactor(["abcd"])
    redactor.add("abcdefgh")
    assert redactor.scrub("x abcdefgh y") == f"x {REDACTED} y"


def test_scrub_walks_events_and_message_content() -> None:
    redactor = Redactor(["hunter22"])
    event = {"a": ["x hunter22", ("hunter22",)], "b": {"c": "hunter22"}, "n": 3}
    assert redactor.scrub(event) == {
        "a": [f"x {REDACTED}", (REDACTED,)],
        "b": {"c": REDACTED},
        "n": 3,
    }


@pytest.mark.parametrize(
    "token",
    [
        "ghp_" + "a" * 36,
        "gho_" + "b" * 36,
        "ghu_" + "c" * 36,
        "ghs_" + "d" * 36,
        "ghr_" + "e" * 36,
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "sk-ant-api03-" + "f" * 40,
        "sk-proj-" + "g" * 40,
    ],
)
def test_token_shapes_are_redacted_without_being_known(token: str) -> None:
    assert redact(f"token={token};") == f"token={REDACTED};"


def test_url_user_info_is_redacted_whatever_it_holds() -> None:
    assert redact("git clone https://x-access-token@host/r.git") == (
        f"git clone https://{REDACTED}@host/r.git"
    )


def test_every_spelling_of_a_secret_is_a_form() -> None:
    forms = secret_forms(["p@ss/w+rd", ""])
    assert forms[0] == "p%40ss%2Fw%2Brd"
    assert set(forms) == {"p@ss/w+rd", "p%40ss%2Fw%2Brd", "p%40ss/w%2Brd"}
