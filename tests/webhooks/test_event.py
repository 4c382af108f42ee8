"""Signature verification and the Event helpers, on GitHub's vectors and recorded payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from app.webhooks.event import (
    MAX_DEPTH,
    MAX_ID,
    MAX_NUMBER,
    Event,
    PayloadError,
    sign,
    verify_signature,
)
from tests.webhooks.conftest import SHARED, payload

VECTORS = json.loads((SHARED / "signature-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["source"][:40])
def test_githubs_signature_vectors_verify(vector: dict[str, Any]) -> None:
    body = vector["body"].encode()
    assert verify_signature(body, vector["x_hub_signature_256"], [vector["secret"].encode()])
    assert sign(body, vector["secret"].encode()) == vector["x_hub_signature_256"]


@pytest.mark.parametrize("vector", VECTORS["negative"], ids=lambda v: v["why"])
def test_githubs_negative_vectors_do_not_verify(vector: dict[str, Any]) -> None:
    body = vector["body"].encode()
    assert not verify_signature(body, vector["x_hub_signature_256"], [vector["secret"].encode()])


def test_any_of_several_secrets_verifies() -> None:
    body = b'{"a": 1}'
    header = sign(body, b"old")
    assert verify_signature(body, header, [b"new", b"old"])
    assert not verify_signature(body, header, [b"new"])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + hmac.new(b"s", b"{}", hashlib.sha1).hexdigest(),
        hmac.new(b"s", b"{}", hashlib.sha256).hexdigest(),  # no prefix
        "sha256=" + hmac.new(b"s", b"{}", hashlib.sha256).hexdigest().upper(),
        "sha256=ünïcode",
    ],
)
def test_malformed_or_foreign_signatures_do_not_verify(header: str | None) -> None:
    assert not verify_signature(b"{}", header, [b"s"])


def test_no_secret_verifies_nothing() -> None:
    assert not verify_signature(b"{}", sign(b"{}", b""), [])


def test_a_changed_body_does_not_verify() -> None:
    header = sign(b'{"a": 1}', b"s")
    assert not verify_signature(b'{"a": 2}', header, [b"s"])
    assert not verify_signature(b'{"a":1}', header, [b"s"])  # re-serialised JSON differs


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"\xc3\x28", "UTF-8"), (b"{", "JSON"), (b"null", "object"), (b"[]", "object")],
)
def test_parse_rejects_what_is_not_a_json_object(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        Event.parse("issues", "d", body)


def event(name: str, data: dict[str, Any] | None = None) -> Event:
    return Event(name.split(".")[0], "delivery-1", data if data is not None else payload(name))


def test_helpers_on_an_issue_label() -> None:
    e = event("issues.labeled")
    assert e.key == ("issues", "labeled")
    assert (e.repo, e.issue_number, e.thread) == (
        "Codertocat/Hello-World",
        1,
        "Codertocat/Hello-World#1",
    )
    assert (e.sender, e.is_bot, e.is_pull_request) == ("Codertocat", False, False)
    assert e.label == "bug"
    assert e.installation_id == 957387  # added, as a GitHub App receives it
    assert e.comment is None


def test_helpers_on_a_comment_on_a_pull_request() -> None:
    e = event("issue_comment.created.on-pull-request")
    assert e.is_pull_request
    assert e.installation_id == 957387
    assert e.comment is not None
    assert (e.comment.id, e.comment.body, e.comment.source) == (222, "/rebase", "issue_comment")
    assert e.comment.thread_root is None


def test_helpers_on_a_review_comment() -> None:
    e = event("pull_request_review_comment.created")
    assert (e.issue_number, e.is_pull_request) == (2, True)
    comment = e.comment
    assert comment is not None
    assert (comment.source, comment.path, comment.line) == ("review_comment", "README.md", 265)
    assert comment.thread_root == comment.id  # not a reply: it is its own thread


def test_helpers_on_installation_events() -> None:
    created = event("installation.created")
    assert created.installation_id == 957387
    assert created.account == ("Codertocat", "User")
    assert created.repositories == [(186853002, "Codertocat/Hello-World")]
    added = event("installation_repositories.added")
    assert added.repositories == [(186853007, "Codertocat/Space")]
    assert added.repositories_removed == []


def test_bots_are_recognised_by_type_or_login() -> None:
    assert event("issues", {"sender": {"login": "x", "type": "Bot"}}).is_bot
    assert event("issues", {"sender": {"login": "ci[bot]", "type": "User"}}).is_bot
    assert not event("issues", {"sender": {"login": "bot-fan", "type": "User"}}).is_bot


def test_helpers_never_raise_on_odd_shapes() -> None:
    odd = event(
        "issue_comment",
        {
            "action": 3,
            "issue": "nope",
            "repository": {"full_name": ["x"]},
            "installation": {"id": True},
            "sender": [],
            "comment": {"id": "12", "body": None},
            "repositories": [{"id": 1}, "x", {"id": 2, "full_name": "a/b"}],
        },
    )
    assert odd.action is None
    assert odd.issue_number is None
    assert odd.repo is None
    assert odd.installation_id is None
    assert odd.sender is None
    assert odd.thread is None
    assert odd.comment is None
    assert odd.repositories == [(2, "a/b")]


def nested(depth: int) -> bytes:
    """A JSON object `depth` levels deep: {"a": {"a": ... 1 ...}}."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_parse_accepts_every_recorded_payload() -> None:
    for path in sorted((SHARED / "webhooks").glob("*.json")):
        Event.parse(path.stem.split(".")[0], "d", path.read_bytes())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (nested(MAX_DEPTH + 1), "nested deeper than 32 levels"),
        (nested(1000), "nested deeper than 32 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),  # json's own guard
        (b'{"installation": {"id": 9223372036854775808}}', "beyond 64 bits"),  # 2^63
        (b'{"x": -9223372036854775809}', "beyond 64 bits"),
        (b'{"x": 1e999}', "too large for a double"),
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b'{"x": [-Infinity]}', "-Infinity is not a JSON number"),
        (b'{"action": "label\\u0000ed"}', "NUL"),
        (b'{"comment": {"body": ["fine", "no\\u0000"]}}', "NUL"),
        (b'{"a\\u0000": 1}', "NUL"),
        (b'{"action": "\\ud800"}', "unpaired surrogate \\(\\\\ud800\\)"),
        (b'{"x": {"\\uDFFF": 1}}', "unpaired surrogate"),
        (b'{"x": "\\ud83d\\ud83d\\ude00"}', "unpaired surrogate"),  # one too many
        (b'{"x": "\x00"}', "not valid JSON"),  # a raw NUL is a control character
    ],
)
def test_parse_refuses_what_no_github_payload_holds(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        Event.parse("issues", "d", body)


def test_parse_takes_the_limits_themselves() -> None:
    limits = b'{"a": [9223372036854775807, -9223372036854775808, 1.5e308], "b": "\\\\u0000"}'
    assert Event.parse("issues", "d", nested(MAX_DEPTH)).payload
    assert Event.parse("issues", "d", limits).payload["b"] == "\\u0000"  # an escaped backslash
    emoji = Event.parse("issues", "d", b'{"body": "\\ud83d\\ude00 \\u00e9"}')  # a pair: fine
    assert emoji.payload["body"] == "\U0001f600 \u00e9"


@pytest.mark.parametrize(
    ("changes", "helper", "value"),
    [
        ({"installation": {"id": MAX_ID}}, "installation_id", MAX_ID),
        ({"installation": {"id": 0}}, "installation_id", None),
        ({"installation": {"id": -5}}, "installation_id", None),
        ({"issue": {"number": MAX_NUMBER}}, "issue_number", MAX_NUMBER),
        ({"issue": {"number": MAX_NUMBER + 1}}, "issue_number", None),  # no integer column
        ({"issue": {"number": -1}}, "issue_number", None),
        ({"action": "x" * 65}, "action", None),
        ({"action": "Labeled!"}, "action", None),
        ({"repository": {"full_name": "a/" + "b" * 101}}, "repo", None),
        ({"repository": {"full_name": "a b/c"}}, "repo", None),
        ({"repository": {"full_name": "octo-org/my.repo_2"}}, "repo", "octo-org/my.repo_2"),
        ({"sender": {"login": "x" * 91}}, "sender", None),
        ({"sender": {"login": "dependabot[bot]"}}, "sender", "dependabot[bot]"),
        ({"sender": {"login": "octocat_acme"}}, "sender", "octocat_acme"),  # managed users
    ],
)
def test_a_value_github_never_sends_for_its_field_is_none(
    changes: dict[str, Any], helper: str, value: object
) -> None:
    assert getattr(event("issues.labeled", payload("issues.labeled") | changes), helper) == value


def test_comment_and_installation_helpers_keep_to_their_columns() -> None:
    data = payload("pull_request_review_comment.created")
    data["comment"] |= {"line": MAX_NUMBER + 1, "user": {"login": "<script>"}}
    comment = event("pull_request_review_comment", data).comment
    assert comment is not None
    assert comment.line is None
    assert comment.author == "Codertocat"  # the sender's login instead
    created = payload("installation.created")
    created["installation"]["account"] |= {"login": "a" * 200, "type": "Organization" * 3}
    created["repositories"].append({"id": 2**63, "full_name": "x/y"})
    created["repositories"].append({"id": 7, "full_name": "x/y z"})
    installed = event("installation", created)
    assert installed.account == (None, None)
    assert installed.repositories == [(186853002, "Codertocat/Hello-World")]


def test_a_bot_with_an_odd_login_is_still_a_bot() -> None:
    bot = event("issues", {"sender": {"login": "weird login[bot]", "type": "User"}})
    assert bot.is_bot
    assert bot.sender is None
