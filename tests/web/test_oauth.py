"""The App's user authorization and user-token reads, against the fake GitHub over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.web.oauth import GitHubOAuth, GitHubUnavailable, OAuthError, RepoGrant, TokenRejected
from tests.fakes.github import FakeGitHub
from tests.fakes.github_oauth import CLIENT_ID, CLIENT_SECRET
from tests.web.conftest import HIDDEN_ADMIN, HIDDEN_REPO, OTHER_INSTALLATION, READER
from tests.webhooks.conftest import INSTALLATION, MAINTAINER, OTHER_REPO, REPO

CALLBACK = "https://swe.example.com/auth/callback"


@pytest.fixture
async def oauth(gh: FakeGitHub) -> AsyncIterator[GitHubOAuth]:
    async with httpx.AsyncClient() as http:
        yield GitHubOAuth(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            web_url=gh.web_url,
            api_url=gh.url,
            http=http,
            clock=lambda: 1000.0,
            retry_pause=0.01,
        )


async def code_for(gh: FakeGitHub, oauth: GitHubOAuth, login: str) -> str:
    gh.oauth.sign_in_as = login
    async with httpx.AsyncClient() as browser:
        back = await browser.get(oauth.authorize_url(state="s", redirect_uri=CALLBACK))
    return httpx.URL(back.headers["location"]).params["code"]


async def test_a_code_becomes_a_token_pair_that_can_be_refreshed(
    gh: FakeGitHub, oauth: GitHubOAuth
) -> None:
    token = await oauth.exchange_code(await code_for(gh, oauth, READER), redirect_uri=CALLBACK)

    assert token.access_token.startswith("ghu_")
    assert token.expires_at == 1000.0 + 28800
    assert token.refresh_token is not None
    assert token.refresh_token.startswith("ghr_")
    assert token.refresh_expires_at == 1000.0 + 15811200
    assert (await oauth.user(token.access_token)).login == READER

    renewed = await oauth.refresh(token.refresh_token)
    assert renewed.access_token != token.access_token
    with pytest.raises(TokenRejected):
        await oauth.user(token.access_token)  # the old pair stopped working
    with pytest.raises(OAuthError) as refused:
        await oauth.refresh(token.refresh_token)
    assert refused.value.code == "bad_refresh_token"


async def test_errors_in_http_200_are_errors(gh: FakeGitHub, oauth: GitHubOAuth) -> None:
    with pytest.raises(OAuthError) as bad_code:
        await oauth.exchange_code("nope", redirect_uri=CALLBACK)
    assert bad_code.value.code == "bad_verification_code"
    code = await code_for(gh, oauth, READER)
    wrong_client = GitHubOAuth(
        client_id=CLIENT_ID,
        client_secret="wrong",
        web_url=gh.web_url,
        api_url=gh.url,
        http=httpx.AsyncClient(),
    )
    with pytest.raises(OAuthError) as credentials:
        await wrong_client.exchange_code(code, redirect_uri=CALLBACK)
    assert credentials.value.code == "incorrect_client_credentials"
    assert "wrong" not in repr(wrong_client)
    assert CLIENT_SECRET not in repr(oauth)


async def test_tokens_that_do_not_expire_are_understood(gh: FakeGitHub, oauth: GitHubOAuth) -> None:
    gh.oauth.expiring = False
    token = await oauth.exchange_code(await code_for(gh, oauth, READER), redirect_uri=CALLBACK)
    assert (token.expires_at, token.refresh_token, token.refresh_expires_at) == (None, None, None)


async def test_the_repositories_a_person_reaches_with_their_permissions(
    gh: FakeGitHub, oauth: GitHubOAuth
) -> None:
    maintainer = await oauth.exchange_code(
        await code_for(gh, oauth, MAINTAINER), redirect_uri=CALLBACK
    )
    reader = await oauth.exchange_code(await code_for(gh, oauth, READER), redirect_uri=CALLBACK)
    admin = await oauth.exchange_code(
        await code_for(gh, oauth, HIDDEN_ADMIN), redirect_uri=CALLBACK
    )

    grants = await oauth.repo_grants(maintainer.access_token)
    assert {(g.full_name, g.installation_id, g.can_write) for g in grants} == {
        (REPO, INSTALLATION, True),
        (OTHER_REPO, INSTALLATION, True),
    }
    [read_only] = await oauth.repo_grants(reader.access_token)
    assert (read_only.full_name, read_only.can_write) == (REPO, False)
    assert read_only.permissions == frozenset({"pull"})
    [hidden] = await oauth.repo_grants(admin.access_token)
    assert (hidden.full_name, hidden.installation_id) == (HIDDEN_REPO, OTHER_INSTALLATION)


async def test_every_page_is_read(gh: FakeGitHub, oauth: GitHubOAuth) -> None:
    names = [f"big/repo-{i:03d}" for i in range(130)]
    gh.add_installation(999, "big", names)
    for name in names:
        gh.set_permission(name, "reader", "read")
    token = await oauth.exchange_code(await code_for(gh, oauth, "reader"), redirect_uri=CALLBACK)

    grants = await oauth.repo_grants(token.access_token)

    assert sorted(g.full_name for g in grants) == names
    assert len(gh.calls_matching("GET", "/user/installations/999/repositories")) == 2


async def test_reads_wait_out_transient_faults_but_not_a_revoked_token(
    gh: FakeGitHub, oauth: GitHubOAuth
) -> None:
    token = await oauth.exchange_code(await code_for(gh, oauth, READER), redirect_uri=CALLBACK)
    gh.fail("GET", "/user/installations", 502, times=2)
    assert [g.full_name for g in await oauth.repo_grants(token.access_token)] == [REPO]

    gh.fail("GET", "/user", 503, times=3)
    with pytest.raises(GitHubUnavailable):
        await oauth.user(token.access_token)

    await oauth.revoke(token.access_token)
    assert gh.oauth.revoked == [token.access_token]
    with pytest.raises(TokenRejected):
        await oauth.repo_grants(token.access_token)


def test_write_maintain_and_admin_may_act() -> None:
    def grant(*flags: str) -> RepoGrant:
        return RepoGrant("a/b", 1, frozenset(flags))

    assert grant("admin", "maintain", "push", "triage", "pull").can_write
    assert grant("maintain", "push", "triage", "pull").can_write
    assert grant("push", "pull").can_write
    assert not grant("triage", "pull").can_write
    assert not grant().can_write
