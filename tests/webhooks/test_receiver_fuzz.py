"""POST /webhooks/github fuzzed with hypothesis: the recorded real payloads, mutated, signed.

Mutations: values replaced by hostile ones (integers past 64 bits, NUL and lone surrogates,
long strings, wrong types, deep nesting), keys removed, raw JSON spliced in (NaN, 1e999,
100,000 brackets), bodies truncated or made invalid UTF-8, and headers changed (event names,
delivery ids, content types, signatures). Most are signed with the real secret, so they reach
the parser, the router, the store and the background handlers.

Whatever arrives: no answer is 5xx, /healthz stays ok, and the store holds nothing
half-written: a refused delivery is not recorded at all; a recorded one is finished once its
background work settles, never with an error, and an accepted one is stored as it was sent.
Derandomized: every run (CI included) tries the same examples, in seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.github.app import GitHubApp
from app.webhooks.event import sign
from tests.fakes.github import FakeGitHub
from tests.runs.postgres_schema import postgres_schema
from tests.webhooks.conftest import (
    PREVIOUS_SECRET,
    SECRET,
    SHARED,
    SLUG,
    Harness,
    payload,
    start_harness,
)

URL = "/webhooks/github"
RECORDED = sorted(path.stem for path in (SHARED / "webhooks").glob("*.json"))
EVENT_NAMES = sorted({name.split(".")[0] for name in RECORDED} | {"ping", "star", "push"})
# Recorded payloads made into requests open-swe acts on, so mutations reach the handlers too.
TRIGGERS: list[tuple[str, tuple[tuple[str, ...], str]]] = [
    ("issues.labeled", (("label", "name"), "open-swe")),
    ("issues.labeled", (("label", "name"), "open-swe-auto")),
    ("issue_comment.created", (("comment", "body"), "/open-swe status")),
    ("issue_comment.created", (("comment", "body"), "/open-swe stop")),
    ("issue_comment.created.on-pull-request", (("comment", "body"), f"@{SLUG} add tests")),
    ("pull_request_review_comment.created", (("comment", "body"), "/open-swe rename it")),
]
# Where a value changes what the receiver and the handlers do: mutated more often.
KEY_PATHS = [
    ("action",),
    ("installation", "id"),
    ("installation", "account", "login"),
    ("issue", "number"),
    ("issue", "pull_request"),
    ("pull_request", "number"),
    ("repository", "full_name"),
    ("sender", "login"),
    ("sender", "type"),
    ("label", "name"),
    ("comment", "id"),
    ("comment", "body"),
    ("comment", "line"),
    ("comment", "in_reply_to_id"),
    ("review", "body"),
    ("repositories",),
    ("repositories_added",),
]
HOSTILE_SCALARS: list[Any] = [
    2**63,
    2**63 - 1,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**40,
    2**31,
    2**31 - 1,
    0,
    -1,
    True,
    None,
    1e308,
    -0.0,
    float("nan"),  # json.dumps writes NaN, which is not JSON
    "",
    " ",
    "1",
    "x" * 5000,
    "\x00",
    "open\x00ed",
    "\ud800",
    "a\udfffb",
    "\U0001f600",
    "\u202erlo",
    "open-swe",
    "open-swe-auto",
    "/open-swe approve",
    "/open-swe stop",
    f"@{SLUG} fix it",
    "Bot",
    "labeled",
    "created",
    "a/b",
    "a/" + "b" * 400,
    "user[bot]",
]
RAW_VALUES = [
    b"[" * 1000 + b"]" * 1000,
    b"NaN",
    b"123456789012345678901234567890",
    b'"\\u0000"',
    b'"\\ud83d"',
    b"-Infinity",
    b"1e999",
    b'"\\ud83d\\ude00"',
    b'{"a":' * 40 + b"1" + b"}" * 40,
    b"[" * 100_000 + b"]" * 100_000,
]
DELIVERY_IDS = itertools.count()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


hostile_values = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),  # those two are in HOSTILE_SCALARS
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=4),
    st.dictionaries(st.text(max_size=4), st.sampled_from(HOSTILE_SCALARS), max_size=3),
    st.integers(min_value=1, max_value=60).map(nested),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a member or item of `value` (not the root)."""
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def parent_of(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    delivery_id: str

    @classmethod
    def signed(cls, event: str, body: bytes) -> Delivery:
        delivery_id = f"fuzz-{next(DELIVERY_IDS)}"
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": sign(body, SECRET.encode()),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fuzz",
        }
        return cls(headers, body, delivery_id)


def issue_found(
    name: str, path: tuple[str, ...] = (), value: Any = None, *, raw: bytes = b""
) -> Delivery:
    """A finding of issue 11, always among the examples: the recorded payload or trigger
    `name` with `value` at `path`, or with `raw` spliced in as a member."""
    start = RECORDED.index(name) if name in RECORDED else len(RECORDED) + int(name)
    event, data = recorded_or_trigger(start)
    if path:
        parent_of(data, path)[path[-1]] = value
    return Delivery.signed(event, splice(json.dumps(data).encode(), raw))


def splice(body: bytes, raw: bytes) -> bytes:
    """`body` with a member `"spliced": <raw>` no json.dumps would write."""
    return body[:-1] + b', "spliced": ' + raw + b"}" if raw else body


def recorded_or_trigger(index: int) -> tuple[str, dict[str, Any]]:
    """The recorded payloads, then the TRIGGERS made from them: (event name, payload)."""
    if index < len(RECORDED):
        return RECORDED[index].split(".")[0], payload(RECORDED[index])
    name, ((node, key), text) = TRIGGERS[index - len(RECORDED)]
    data = payload(name)
    data[node][key] = text
    return name.split(".")[0], data


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    event, data = recorded_or_trigger(draw(st.integers(0, len(RECORDED) + len(TRIGGERS) - 1)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        existing = list(paths(data))
        targeted = [path for path in KEY_PATHS if path in existing]
        pool = draw(st.sampled_from([targeted, existing])) if targeted else existing
        if not pool:
            break
        path = draw(st.sampled_from(pool))
        parent = parent_of(data, path)
        if isinstance(parent, dict) and draw(st.integers(0, 5)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(hostile_values)
    body = json.dumps(data).encode()
    raw = draw(st.integers(0, 19))
    if raw == 0:
        body = splice(body, draw(st.sampled_from(RAW_VALUES)))
    elif raw == 1:
        body = body[: draw(st.integers(0, len(body)))]
    elif raw == 2:
        body = body.replace(b'"', b'"\xff', 1)

    headers = Delivery.signed(event, body).headers
    header = draw(st.integers(0, 24))
    if header == 0:
        headers["X-GitHub-Event"] = draw(st.sampled_from(EVENT_NAMES) | st.text(max_size=70))
    elif header == 1:
        headers["X-GitHub-Delivery"] = draw(st.text(max_size=120))
    elif header == 2:
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json; charset=utf-8", "text/plain", "", "a/b;;;"])
        )
    elif header == 3:
        headers["X-Hub-Signature-256"] = draw(
            st.sampled_from(
                ["", "sha256=", sign(body, b"wrong"), sign(body + b" ", SECRET.encode())]
            )
        )
    elif header == 4:
        headers["X-Hub-Signature-256"] = sign(body, PREVIOUS_SECRET.encode())  # still valid
    elif header == 5:
        del headers[draw(st.sampled_from(sorted(headers)))]
    # Header values must be latin-1 on the wire; what cannot be sent is not sent.
    headers = {k: v for k, v in headers.items() if v.isprintable() and v.isascii()}
    return Delivery(headers, body, headers.get("X-GitHub-Delivery", ""))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def fuzzed(
    request: pytest.FixtureRequest, tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> AsyncIterator[Harness]:
    """One server for the whole sequence of examples, as in real life: it must stay healthy."""
    if request.param == "sqlite":
        async with start_harness(tmp_path, gh, github_app) as harness:
            yield harness
        return
    async with (
        postgres_schema() as pg,
        start_harness(tmp_path, gh, github_app, database_url_raw=pg.url) as harness,
    ):
        yield harness


@settings(
    max_examples=150,
    derandomize=True,  # the same examples on every run
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one server across examples, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(delivery=deliveries())
@example(delivery=issue_found("issues.labeled", ("installation", "id"), 2**63))
@example(delivery=issue_found("0", ("issue", "number"), 2**31))  # TRIGGERS[0]: labelled
@example(delivery=issue_found("0", raw=b"[" * 1000 + b"]" * 1000))
@example(delivery=issue_found("issues.opened", ("action",), "open\x00ed"))
@example(delivery=issue_found("2", ("comment", "body"), "/open-swe fix\x00 it"))
@example(delivery=issue_found("issues.opened", ("repository", "full_name"), "a/" + "b" * 400))
async def test_no_mutated_delivery_gets_a_5xx_or_leaves_anything_half_written(
    fuzzed: Harness, delivery: Delivery
) -> None:
    recorded_before = await fuzzed.store.count("deliveries")
    response = await fuzzed.client.post(URL, content=delivery.body, headers=delivery.headers)
    await fuzzed.settle()

    assert response.status_code < 500, (response.status_code, response.text, delivery)
    health = await fuzzed.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    recorded = await fuzzed.store.delivery(delivery.delivery_id) if delivery.delivery_id else None
    if response.status_code >= 300:
        assert await fuzzed.store.count("deliveries") == recorded_before  # nothing recorded
        return
    assert response.json()["status"] in {"accepted", "ignored", "pong"}, response.text
    assert recorded is not None
    assert recorded.processed_at is not None, recorded
    assert recorded.outcome != "error", recorded
    if response.status_code == 202:
        assert recorded.payload == json.loads(delivery.body)
