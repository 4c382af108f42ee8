"""The answer table of POST /webhooks/github, through the real HTTP app."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.github.app import GitHubApp
from app.runs.store import Store
from app.server import create_app
from app.webhooks import messages
from app.webhooks.event import sign
from app.webhooks.receiver import MAX_BODY_BYTES, WebhookReceiver
from tests.fakes.github import FakeGitHub
from tests.runs.postgres_schema import postgres_schema
from tests.webhooks.conftest import (
    PREVIOUS_SECRET,
    SECRET,
    SHARED,
    Harness,
    RecordingDispatcher,
    github_work,
    labeled,
    make_settings,
    payload,
    signed_headers,
    start_harness,
)

URL = "/webhooks/github"


async def post(harness: Harness, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await harness.client.post(URL, content=body, headers=headers)


async def test_ping_answers_pong(harness: Harness) -> None:
    response = await harness.deliver("ping", payload("ping", installation=None), delivery="p-1")
    assert response.status_code == 200
    assert response.json() == {"status": "pong", "delivery": "p-1"}


async def test_a_delivery_that_matters_is_recorded_and_accepted(harness: Harness) -> None:
    response = await harness.deliver("issues", labeled(), delivery="d-1", settle=False)
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "delivery": "d-1"}
    recorded = await harness.store.delivery("d-1")
    assert recorded is not None
    assert (recorded.event, recorded.action, recorded.repo) == (
        "issues",
        "labeled",
        "Codertocat/Hello-World",
    )
    assert recorded.installation_id == 957387
    assert recorded.payload is not None
    assert recorded.payload["label"]["name"] == "open-swe"


async def test_a_duplicate_delivery_is_answered_200_without_new_work(harness: Harness) -> None:
    first = await harness.deliver("issues", labeled(), delivery="dup")
    again = await harness.deliver("issues", labeled(), delivery="dup")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "delivery": "dup"}
    assert len(harness.run_jobs) == 1


@pytest.mark.parametrize(
    ("event", "data", "reason"),
    [
        ("issues", payload("issues.opened"), "issues.opened is not handled"),
        (
            "pull_request",
            payload("pull_request.synchronize") | {"action": "edited"},
            "pull_request.edited is not handled",
        ),
        ("issues", payload("issues.labeled"), "the label is not an open-swe label"),
        ("issue_comment", payload("issue_comment.created"), "does not address open-swe"),
        ("star", {"action": "created"}, "star.created is not handled"),
    ],
)
async def test_events_that_do_not_matter_are_ignored(
    harness: Harness, event: str, data: dict[str, Any], reason: str
) -> None:
    response = await harness.deliver(event, data, delivery="ign")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ignored"
    assert reason in body["reason"]
    recorded = await harness.store.delivery("ign")
    assert recorded is not None
    assert recorded.payload is None  # nothing to do later, so nothing kept
    assert recorded.processed_at is not None
    assert github_work(harness.gh) == []


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_github_headers_are_400(harness: Harness, missing: str) -> None:
    body = json.dumps(labeled()).encode()
    headers = signed_headers("issues", body)
    del headers[missing]
    response = await post(harness, body, headers)
    assert response.status_code == 400
    assert missing in response.json()["error"]


async def test_malformed_delivery_id_is_400(harness: Harness) -> None:
    body = json.dumps(labeled()).encode()
    response = await post(harness, body, signed_headers("issues", body, delivery="a b/../c"))
    assert response.status_code == 400


async def test_wrong_signature_is_401(harness: Harness) -> None:
    body = json.dumps(labeled()).encode()
    response = await post(harness, body, signed_headers("issues", body, secret="not-the-secret"))
    assert response.status_code == 401
    assert "does not match" in response.json()["error"]
    assert await harness.store.count("deliveries") == 0


async def test_missing_signature_is_401(harness: Harness) -> None:
    body = json.dumps(labeled()).encode()
    headers = signed_headers("issues", body)
    del headers["X-Hub-Signature-256"]
    response = await post(harness, body, headers)
    assert response.status_code == 401


async def test_sha1_signature_alone_is_401(harness: Harness) -> None:
    import hashlib
    import hmac

    body = json.dumps(labeled()).encode()
    headers = signed_headers("issues", body)
    del headers["X-Hub-Signature-256"]
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    response = await post(harness, body, headers)
    assert response.status_code == 401
    assert "sha1" in response.json()["error"]


async def test_the_previous_secret_is_accepted_during_rotation(harness: Harness) -> None:
    response = await harness.deliver("issues", labeled(), secret=PREVIOUS_SECRET)
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 202),
        ("application/json; charset=utf-8", 202),
        ("Application/JSON;charset=UTF-8", 202),
        ("text/plain", 415),
        ("application/jsonp", 415),
        ("", 415),
    ],
)
async def test_content_type_must_be_json(harness: Harness, content_type: str, status: int) -> None:
    body = json.dumps(labeled()).encode()
    headers = signed_headers("issues", body) | {"Content-Type": content_type}
    response = await post(harness, body, headers)
    assert response.status_code == status


async def test_form_deliveries_are_refused_with_the_fix(harness: Harness) -> None:
    body = b"payload=" + json.dumps(labeled()).encode()
    headers = signed_headers("issues", body) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = await post(harness, body, headers)
    assert response.status_code == 415
    assert response.json() == {"error": messages.FORM_CONTENT_TYPE}


class CountingBody:
    """An endless (or bounded) request body that counts what the server consumed."""

    def __init__(self, total: int | None, chunk: int = 1024 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.total is None or self.sent < self.total:
            size = self.chunk if self.total is None else min(self.chunk, self.total - self.sent)
            self.sent += size
            yield b"x" * size


async def test_a_declared_oversized_body_is_413_before_reading_it(harness: Harness) -> None:
    body = CountingBody(MAX_BODY_BYTES + 1)
    headers = signed_headers("issues", b"") | {"Content-Length": str(MAX_BODY_BYTES + 1)}
    response = await harness.client.post(URL, content=body, headers=headers)
    assert response.status_code == 413
    assert body.sent <= body.chunk  # at most what the transport pre-fetched


async def test_a_streamed_body_of_25_mib_plus_one_byte_is_413(harness: Harness) -> None:
    body = CountingBody(MAX_BODY_BYTES + 1)  # no Content-Length: chunked
    response = await harness.client.post(URL, content=body, headers=signed_headers("issues", b""))
    assert response.status_code == 413
    assert await harness.store.count("deliveries") == 0


async def test_an_endless_body_is_cut_off_at_the_limit(harness: Harness) -> None:
    body = CountingBody(None)
    response = await harness.client.post(URL, content=body, headers=signed_headers("issues", b""))
    assert response.status_code == 413
    assert body.sent <= MAX_BODY_BYTES + 2 * body.chunk


async def test_a_body_of_exactly_25_mib_is_not_refused_for_size(harness: Harness) -> None:
    body = b" " * (MAX_BODY_BYTES - 2) + b"{}"
    response = await post(harness, body, signed_headers("issues", body))
    assert response.status_code == 200  # whitespace then {}: valid JSON, nothing to do


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"\xff\xfe{not utf-8}", "not valid UTF-8"),
        (b"Hello, World!", "not valid JSON"),
        (b'{"action": "labeled"', "not valid JSON"),
        (b'["a", "list"]', "not a JSON object"),
        (b"", "not valid JSON"),
    ],
)
async def test_a_validly_signed_body_that_is_not_a_json_object_is_400(
    harness: Harness, body: bytes, error: str
) -> None:
    response = await post(harness, body, signed_headers("issues", body))
    assert response.status_code == 400
    assert error in response.json()["error"]


def _vectors() -> list[dict[str, Any]]:
    data = json.loads((SHARED / "signature-vectors.json").read_text())
    return [v | {"valid": True} for v in data["vectors"]] + data["negative"]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v.get("why", v["secret"]))
async def test_github_signature_vectors_through_http(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp, vector: dict[str, Any]
) -> None:
    async with start_harness(
        tmp_path, gh, github_app, github_webhook_secret=vector["secret"]
    ) as harness:
        body = vector["body"].encode()
        headers = signed_headers("issues", body) | {
            "X-Hub-Signature-256": vector["x_hub_signature_256"]
        }
        response = await post(harness, body, headers)
    if vector["valid"]:
        # Past the signature check; "Hello, World!" is not JSON, the JSON ones are ignored.
        assert response.status_code in {200, 400}
        assert "signature" not in response.text.lower()
    else:
        assert response.status_code == 401


async def test_no_input_causes_a_500(harness: Harness) -> None:
    """Payloads of the right events with fields of the wrong types never break anything."""
    oddities: list[tuple[str, Any]] = [
        ("issues", {"action": "labeled", "label": {"name": "open-swe"}}),
        ("issues", {"action": "labeled", "label": "open-swe", "issue": 5}),
        (
            "issues",
            {
                "action": "labeled",
                "label": {"name": "open-swe"},
                "issue": {"number": "1"},
                "repository": {"full_name": 7},
                "installation": {"id": "957387"},
                "sender": None,
            },
        ),
        ("issue_comment", {"action": "created", "comment": {"id": 1, "body": None}}),
        ("issue_comment", {"action": "created", "comment": {"id": True, "body": "/open-swe go"}}),
        ("installation", {"action": "created", "installation": {"id": 5}, "repositories": 3}),
        ("installation_repositories", {"action": "added", "installation": None}),
        ("issues", {"action": ["labeled"]}),
        ("ping", {}),
    ]
    for index, (event, data) in enumerate(oddities):
        response = await harness.deliver(event, data, delivery=f"odd-{index}")
        assert response.status_code < 500, (event, data, response.text)
    for index in range(len(oddities)):
        recorded = await harness.store.delivery(f"odd-{index}")
        assert recorded is not None
        assert recorded.processed_at is not None, recorded
        assert recorded.outcome != "error", recorded


async def test_a_store_that_is_down_answers_503_so_github_can_redeliver(
    harness: Harness,
) -> None:
    async with harness.store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE deliveries"))
    response = await harness.deliver("issues", labeled())
    assert response.status_code == 503
    assert "redeliver" in response.json()["error"]
    assert harness.run_jobs == []


async def test_the_request_does_no_github_work_and_acknowledges_fast(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'fast.db'}")
    dispatcher = RecordingDispatcher()
    settings = make_settings(tmp_path, gh, github_app_slug="open-swe-test")
    app = create_app(settings, store=store, dispatcher=dispatcher, github=github_app)
    timings = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        for index in range(30):
            body = json.dumps(labeled()).encode()
            headers = signed_headers("issues", body, delivery=f"fast-{index}")
            started = time.perf_counter()
            response = await client.post(URL, content=body, headers=headers)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 202
        assert dispatcher.jobs == []  # handed over once the front door is quiet
        await app.state.webhook_receiver.settle()
    await store.close()
    assert gh.calls == []  # no permission check, reaction or comment in the request
    assert [job.delivery_id for job in dispatcher.jobs] == [f"fast-{i}" for i in range(30)]  # type: ignore[union-attr]
    # Generous bound for slow CI machines; typically ~2.5 ms with fsync per commit.
    assert statistics.median(timings) < 0.05, timings


async def test_setup_mode_answers_503_with_how_to_finish(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None, github_app_id=None, github_app_private_key=None)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        body = json.dumps(labeled()).encode()
        response = await client.post(URL, content=body, headers=signed_headers("issues", body))
    assert response.status_code == 503
    assert "not set up yet" in response.json()["error"]
    # Where the server listens, not the Host header the client chose.
    assert "http://127.0.0.1:8000/setup" in response.json()["error"]
    assert "http://t/" not in response.json()["error"]


@pytest.mark.parametrize("blank", [b"", b"  "])
def test_a_receiver_never_takes_a_blank_secret(blank: bytes) -> None:
    with pytest.raises(ValueError, match="blank webhook secret"):
        WebhookReceiver([SECRET.encode(), blank])


def test_sign_matches_the_documented_example() -> None:
    assert sign(b"Hello, World!", b"It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


# Out-of-range values: the same answers on SQLite and on PostgreSQL ------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> AsyncIterator[Harness]:
    """The harness on SQLite, and on PostgreSQL (a throwaway schema), whose columns are strict."""
    if request.param == "sqlite":
        async with start_harness(tmp_path, gh, github_app) as harness:
            yield harness
        return
    async with (
        postgres_schema() as pg,
        start_harness(tmp_path, gh, github_app, database_url_raw=pg.url) as harness,
    ):
        yield harness


def with_extra(data: dict[str, Any], raw: bytes) -> bytes:
    """`data` as JSON with one more member, `"extra": <raw>`, written by hand."""
    return json.dumps(data)[:-1].encode() + b', "extra": ' + raw + b"}"


def addressed(body: str) -> dict[str, Any]:
    data = payload("issue_comment.created")
    data["comment"]["body"] = body
    return data


REFUSED: list[tuple[str, str, bytes, str]] = [
    # (what, event, body, error): none of it fits a column, none of it is ever sent by GitHub
    (
        "installation id 2^63",
        "issues",
        json.dumps(labeled(installation={"id": 2**63})).encode(),
        "beyond 64 bits",
    ),
    (
        "comment id -2^63 - 1",
        "issue_comment",
        json.dumps(addressed("/open-swe status") | {"comment": {"id": -(2**63) - 1}}).encode(),
        "beyond 64 bits",
    ),
    (
        "1,000 levels deep",
        "issues",
        with_extra(labeled(), b'{"a":' * 999 + b"{}" + b"}" * 999),
        "nested deeper",
    ),
    ("100,000 levels deep", "issues", with_extra(labeled(), b"[" * 10**5 + b"]" * 10**5), "deeper"),
    (
        "NUL in the action of an ignored event",
        "issues",
        json.dumps(payload("issues.opened") | {"action": "open\0ed"}).encode(),
        "NUL",
    ),
    (
        "NUL in a command",
        "issue_comment",
        json.dumps(addressed("/open-swe fix\0 it")).encode(),
        "NUL",
    ),
    (
        "an unpaired surrogate in a command",
        "issue_comment",
        json.dumps(addressed("/open-swe fix \ud83d it")).encode(),
        "unpaired surrogate",
    ),
    ("NaN", "issues", with_extra(labeled(), b"NaN"), "NaN"),
    ("1e999", "issues", with_extra(labeled(), b"1e999"), "too large"),
]


@pytest.mark.parametrize(
    ("event", "body", "error"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_values_no_column_can_store_are_400_and_change_nothing(
    any_store: Harness, event: str, body: bytes, error: str
) -> None:
    response = await post(any_store, body, signed_headers(event, body))
    await any_store.settle()
    assert response.status_code == 400, response.text
    assert error in response.json()["error"]
    assert await any_store.store.count("deliveries") == 0
    assert any_store.run_jobs == []
    assert github_work(any_store.gh) == []


def _issue_number(number: int) -> dict[str, Any]:
    data = labeled()
    data["issue"]["number"] = number
    return data


IGNORED: list[tuple[str, str, dict[str, Any]]] = [
    # (what, event, payload): of a storable kind, but not what GitHub sends for that field
    ("issue number 2^31", "issues", _issue_number(2**31)),
    ("issue number 0", "issues", _issue_number(0)),
    ("an action of 200 characters", "issues", payload("issues.opened") | {"action": "x" * 200}),
    (
        "a repository name of 400 characters",
        "issues",
        labeled(repository={"full_name": "a/" + "b" * 400, "id": 1}),
    ),
    ("installation id 2^63 - 1", "ping", payload("ping") | {"installation": {"id": 2**63 - 1}}),
]


@pytest.mark.parametrize(("event", "data"), [r[1:] for r in IGNORED], ids=[r[0] for r in IGNORED])
async def test_values_github_never_sends_for_their_field_are_ignored(
    any_store: Harness, event: str, data: dict[str, Any]
) -> None:
    response = await any_store.deliver(event, data, delivery="odd")
    assert response.status_code in {200, 202}, response.text
    recorded = await any_store.store.delivery("odd")
    assert recorded is not None
    assert recorded.outcome in {"ignored", "pong"}, recorded
    assert recorded.processed_at is not None
    assert any_store.run_jobs == []
    assert github_work(any_store.gh) == []
