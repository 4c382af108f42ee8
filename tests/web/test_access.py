"""Who sees what: a person's repositories, from their own token, fetched once a minute."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.runs.models import Run
from app.web.access import ACCESS_TTL, Access, AccessCache
from app.web.oauth import GitHubOAuth, RepoGrant
from tests.fakes.github import FakeGitHub
from tests.fakes.github_oauth import CLIENT_ID, CLIENT_SECRET
from tests.web.test_oauth import CALLBACK, code_for
from tests.webhooks.conftest import MAINTAINER, REPO


@pytest.fixture
async def oauth(gh: FakeGitHub) -> AsyncIterator[GitHubOAuth]:
    async with httpx.AsyncClient() as http:
        yield GitHubOAuth(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            web_url=gh.web_url,
            api_url=gh.url,
            http=http,
        )


async def test_listings_are_shared_and_kept_for_a_minute(
    gh: FakeGitHub, oauth: GitHubOAuth
) -> None:
    now = [0.0]
    cache = AccessCache(oauth, clock=lambda: now[0])
    token = (
        await oauth.exchange_code(await code_for(gh, oauth, MAINTAINER), redirect_uri=CALLBACK)
    ).access_token

    first = await asyncio.gather(*(cache.access(token) for _ in range(5)))
    now[0] += ACCESS_TTL - 1
    again = await cache.access(token)
    listings = len(gh.calls_matching("GET", "/user/installations"))
    now[0] += 2
    gh.set_permission(REPO, MAINTAINER, "read")  # owners are admins; an explicit role wins
    later = await cache.access(token)

    assert all(a is first[0] for a in first)
    assert again is first[0]
    assert listings == 1
    assert len(gh.calls_matching("GET", "/user/installations")) == 2
    grant = later.grant(REPO)
    assert grant is not None
    assert not grant.can_write
    cache.forget(token)
    await cache.access(token)
    assert len(gh.calls_matching("GET", "/user/installations")) == 3


def run(repo: str, installation: int) -> Run:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Run(
        "r",
        f"{repo}#1",
        repo,
        1,
        "issue",
        installation,
        "x",
        False,
        "running",
        now,
        now,
        None,
        None,
        None,
        None,
        None,
    )


def test_a_run_is_seen_through_its_own_installation_only() -> None:
    access = Access.of(
        [
            RepoGrant("Acme/Widgets", 1, frozenset({"pull"})),
            RepoGrant("acme/tools", 1, frozenset({"push", "pull"})),
        ]
    )

    assert access.sees(run("acme/widgets", 1))  # names compare case-insensitively
    assert not access.sees(run("acme/widgets", 2))  # same name, another installation
    assert not access.sees(run("acme/other", 1))
    assert not access.can_act(run("acme/widgets", 1))
    assert access.can_act(run("acme/tools", 1))
    assert sorted(access.scope) == [(1, "acme/tools"), (1, "acme/widgets")]
    assert access.repos == ["acme/tools", "Acme/Widgets"]
