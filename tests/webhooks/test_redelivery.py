"""The redelivery sweep against the fake GitHub: deliveries the store never recorded, whose every
attempt failed, are asked for again, once each, oldest first, a bounded number per sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.github.app import GitHubApp
from app.runs.store import Store
from app.webhooks.redelivery import RedeliverySweep
from tests.fakes.github import FakeGitHub
from tests.webhooks.conftest import labeled, payload


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    await opened.migrate()
    yield opened
    await opened.close()


async def recorded(store: Store, guid: str) -> None:
    await store.record_delivery(
        delivery_id=guid,
        event="issues",
        action="labeled",
        installation_id=1,
        repo="o/r",
        outcome="accepted",
        payload={"action": "labeled"},
    )


def asked(gh: FakeGitHub) -> list[str]:
    """The guids GitHub was asked to redeliver, in order."""
    by_id = {attempt.id: attempt.guid for attempt in gh.hook.attempts}
    return [by_id[attempt_id] for attempt_id in gh.hook.redeliveries]


async def test_only_deliveries_missed_for_good_are_asked_for_once_oldest_first(
    gh: FakeGitHub, github_app: GitHubApp, store: Store
) -> None:
    """Finding 8: a delivery missed while the server was down (or answered 503) was gone."""
    hook = gh.hook
    down = hook.add("issues", labeled(), status_code=0, ago=timedelta(hours=5))  # server down
    outage = hook.add("issues", labeled(), status_code=503, ago=timedelta(hours=2))  # no store
    # Recorded, but the answer was lost (a timeout): the store has it.
    late = hook.add("issues", labeled(), status_code=0, ago=timedelta(hours=1))
    await recorded(store, late.guid)
    # Failed once, then redelivered by hand: done.
    healed = hook.add("issues", labeled(), status_code=502, ago=timedelta(hours=4))
    hook.add("issues", labeled(), guid=healed.guid, status_code=202, redelivery=True)
    hook.add("issues", labeled(), status_code=202)  # fine
    hook.add("issues", labeled(), status_code=500, ago=timedelta(days=4))  # too old to redeliver
    # Failed twice: asked for once, for its latest attempt.
    twice = hook.add("ping", payload("ping"), status_code=0, ago=timedelta(hours=3))
    latest = hook.add("ping", payload("ping"), guid=twice.guid, status_code=0, redelivery=True)

    sweep = RedeliverySweep(store, github_app)
    assert await sweep() == 3
    gh.hook.join()
    assert asked(gh) == [down.guid, twice.guid, outage.guid]
    assert latest.id in gh.hook.redeliveries

    # Nobody listens (the redeliveries failed too): still never asked twice, by any process.
    assert await sweep() == 0
    assert await RedeliverySweep(store, github_app)() == 0
    assert len(gh.hook.redeliveries) == 3


async def test_a_sweep_asks_a_bounded_number_and_leaves_the_rest_for_the_next(
    gh: FakeGitHub, github_app: GitHubApp, store: Store
) -> None:
    missed = [gh.hook.add("issues", labeled(), status_code=0) for _ in range(130)]  # 2 pages
    sweep = RedeliverySweep(store, github_app, max_asks=100)
    assert await sweep() == 100
    assert await sweep() == 30
    gh.hook.join()
    assert sorted(asked(gh)) == sorted(attempt.guid for attempt in missed)


async def test_an_ask_github_refused_is_made_again_at_the_next_sweep(
    gh: FakeGitHub, github_app: GitHubApp, store: Store
) -> None:
    missed = gh.hook.add("issues", labeled(), status_code=0)
    gh.fail("POST", "/app/hook/deliveries/*/attempts", 422, message="Validation Failed")
    sweep = RedeliverySweep(store, github_app)
    assert await sweep() == 0
    assert await sweep() == 1
    gh.hook.join()
    assert asked(gh) == [missed.guid]


async def test_nothing_missed_costs_one_page(
    gh: FakeGitHub, github_app: GitHubApp, store: Store
) -> None:
    for _ in range(3):
        gh.hook.add("issues", labeled(), status_code=202)
    assert await RedeliverySweep(store, github_app)() == 0
    assert len(gh.calls_matching("GET", "/app/hook/deliveries")) == 1
    assert gh.calls_matching("POST", "/app/hook/deliveries/*/attempts") == []
