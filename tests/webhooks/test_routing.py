"""Routing by (event, action) and the request-time decision, on the recorded payloads."""

from __future__ import annotations

from typing import Any

import pytest

from app.webhooks.event import Event
from app.webhooks.handlers import ROUTER
from app.webhooks.routing import Outcome, Router, Verdict
from tests.webhooks.conftest import SLUG, labeled, payload


def decide(name: str, data: dict[str, Any]) -> Verdict:
    return ROUTER.decide(Event(name, "d", data), SLUG)


def commented(body: str) -> dict[str, Any]:
    data = payload("issue_comment.created")
    data["comment"]["body"] = body
    return data


@pytest.mark.parametrize(
    ("name", "data", "accepted"),
    [
        ("issues", labeled("open-swe"), True),
        ("issues", labeled("open-swe-auto"), True),
        ("issues", payload("issues.labeled"), False),  # "bug"
        ("issues", payload("issues.opened"), False),
        ("issues", labeled("open-swe") | {"action": "unlabeled"}, True),  # stops its run
        ("issues", payload("issues.unlabeled"), False),  # "bug"
        ("issues", payload("issues.closed"), True),  # stops the active run
        ("issue_comment", commented(f"@{SLUG} go"), True),
        ("issue_comment", commented("/open-swe status"), True),
        ("issue_comment", commented("/approve"), True),  # the job checks for a waiting plan
        ("issue_comment", payload("issue_comment.created"), False),
        ("issue_comment", commented(f"@{SLUG} go") | {"action": "edited"}, False),
        ("issue_comment", payload("issue_comment.created.on-pull-request"), False),  # "/rebase"
        ("pull_request_review_comment", payload("pull_request_review_comment.created"), False),
        ("pull_request", payload("pull_request.closed"), True),  # releases its sandbox
        ("pull_request", payload("pull_request.closed") | {"action": "edited"}, False),
        ("installation", payload("installation.created"), True),
        ("installation", payload("installation.deleted"), True),
        (
            "installation",
            payload("installation.created") | {"action": "new_permissions_accepted"},
            False,
        ),
        ("installation_repositories", payload("installation_repositories.added"), True),
        ("ping", payload("ping"), False),
    ],
)
def test_what_matters(name: str, data: dict[str, Any], accepted: bool) -> None:
    assert decide(name, data).accepted is accepted


def test_an_ignored_delivery_says_why() -> None:
    assert decide("issues", payload("issues.opened")).reason == "issues.opened is not handled"
    assert (
        decide("issues", payload("issues.labeled")).reason == "the label is not an open-swe label"
    )
    assert decide("fork", {}).reason == "fork is not handled"


def test_routers_merge_and_refuse_two_handlers_for_one_key() -> None:
    async def handler(ctx: Any, event: Event) -> Outcome:
        return Outcome("done")

    one, two = Router(), Router()
    one.route("issues", "labeled")(handler)
    two.route("issues", "closed")(handler)
    merged = Router(one, two)
    assert {(r.event, r.action) for r in merged.routes} == {
        ("issues", "labeled"),
        ("issues", "closed"),
    }
    with pytest.raises(ValueError, match="two handlers"):
        Router(one, one)


def test_every_feature_route_is_in_the_top_router() -> None:
    keys = {(r.event, r.action) for r in ROUTER.routes}
    assert {
        ("issues", "labeled"),
        ("issue_comment", "created"),
        ("pull_request_review_comment", "created"),
        ("pull_request_review", "submitted"),
        ("installation", "created"),
        ("installation", "deleted"),
        ("installation_repositories", "added"),
        ("installation_repositories", "removed"),
    } <= keys
