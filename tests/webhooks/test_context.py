"""The App's slug: asked of GitHub, and asked again (with a growing delay) while it fails."""

from __future__ import annotations

from app.github.app import GitHubApp
from app.webhooks.context import FIRST_RETRY_SECONDS, AppSlug
from tests.fakes.github import FakeGitHub


async def test_a_failed_lookup_is_retried_after_a_doubling_delay(
    gh: FakeGitHub, github_app: GitHubApp
) -> None:
    gh.fail("GET", "/app", 401, times=2, message="Bad credentials")
    now = [1000.0]
    slug = AppSlug(None, github_app, clock=lambda: now[0])
    asked = lambda: len(gh.calls_matching("GET", "/app"))  # noqa: E731

    assert await slug.resolve() is None
    assert asked() == 1
    now[0] += FIRST_RETRY_SECONDS - 1
    assert await slug.resolve() is None  # too soon: GitHub is not asked
    assert asked() == 1
    now[0] += 1
    assert await slug.resolve() is None  # asked again, failed again: the delay doubles
    assert asked() == 2
    now[0] += FIRST_RETRY_SECONDS
    assert await slug.resolve() is None
    assert asked() == 2
    now[0] += FIRST_RETRY_SECONDS
    assert await slug.resolve() == gh.app_slug
    assert slug.known == gh.app_slug
    assert await slug.resolve() == gh.app_slug
    assert asked() == 3  # then cached


async def test_learn_keeps_asking_until_the_slug_is_known(
    gh: FakeGitHub, github_app: GitHubApp
) -> None:
    gh.fail("GET", "/app", 401, times=3, message="Bad credentials")
    slug = AppSlug(None, github_app, first_retry=0.01)
    await slug.learn()
    assert slug.known == gh.app_slug
    assert len(gh.calls_matching("GET", "/app")) == 4


async def test_a_configured_slug_is_never_asked_for(gh: FakeGitHub, github_app: GitHubApp) -> None:
    slug = AppSlug("my-bot", github_app)
    await slug.learn()
    assert await slug.resolve() == "my-bot"
    assert gh.calls_matching("GET", "/app") == []
