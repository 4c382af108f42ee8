"""Signing in with GitHub: the web flow, sessions, token refresh, signing out."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from app.github.app import GitHubApp
from app.web.secret_file import SESSION_SECRET_KEY
from app.web.sessions import SESSION_COOKIE, SIGN_IN_COOKIE
from tests.fakes.github import FakeGitHub
from tests.fakes.github_oauth import CLIENT_ID
from tests.web.conftest import WEB, query_of, sign_in
from tests.webhooks.conftest import MAINTAINER, Harness, start_harness


def set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


async def test_a_visit_without_a_session_goes_to_github_with_a_single_use_state(
    web: Harness,
) -> None:
    response = await web.client.get("/")

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{web.gh.web_url}/login/oauth/authorize?")
    query = query_of(location)
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://test/auth/callback"
    assert len(query["state"]) >= 32
    cookie = set_cookie(response, SIGN_IN_COOKIE)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert query["state"] not in cookie  # sealed
    again = await web.client.get("/")
    assert query_of(again.headers["location"])["state"] != query["state"]


async def test_signing_in_starts_a_session_and_returns_to_the_page_asked_for(
    web: Harness,
) -> None:
    done = await sign_in(web.client, web.gh, MAINTAINER, "/runs/some-run?x=1")

    assert done.headers["location"] == "/runs/some-run?x=1"
    cookie = set_cookie(done, SESSION_COOKIE)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert "ghu_" not in cookie
    [who] = web.gh.calls_matching("GET", "/user")
    assert (who.auth, who.user) == ("user", MAINTAINER)
    page = await web.client.get("/")
    assert page.status_code == 200
    assert f"Signed in as <strong>{MAINTAINER}</strong>" in page.text


async def test_the_callback_takes_only_the_state_this_browser_was_given_once(
    web: Harness,
) -> None:
    web.gh.oauth.sign_in_as = MAINTAINER
    start = await web.client.get("/")
    async with httpx.AsyncClient() as browser:
        back = await browser.get(start.headers["location"])
    callback = urlsplit(back.headers["location"])
    query = query_of(back.headers["location"])

    forged = await web.client.get(f"/auth/callback?code={query['code']}&state=forged")
    assert forged.status_code == 400
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.app), base_url="http://test"
    ) as other_browser:  # the right state, but not this browser's cookie
        stolen = await other_browser.get(f"{callback.path}?{callback.query}")
    assert stolen.status_code == 400
    first = await web.client.get(f"{callback.path}?{callback.query}")
    assert first.status_code == 303
    web.client.cookies.delete(SESSION_COOKIE)
    replayed = await web.client.get(f"{callback.path}?{callback.query}")
    assert replayed.status_code == 400
    assert "not valid any more" in replayed.text


async def test_github_refusals_are_pages_that_say_so(web: Harness) -> None:
    web.gh.oauth.deny = "access_denied"
    start = await web.client.get("/")
    async with httpx.AsyncClient() as browser:
        back = await browser.get(start.headers["location"])
    denied = await web.client.get(
        urlsplit(back.headers["location"]).path + "?" + urlsplit(back.headers["location"]).query
    )
    assert denied.status_code == 403
    assert "access_denied" in denied.text
    assert SESSION_COOKIE not in web.client.cookies

    web.gh.oauth.deny = None
    start = await web.client.get("/")
    state = query_of(start.headers["location"])["state"]
    wrong = await web.client.get(f"/auth/callback?code=not-a-code&state={state}")
    assert wrong.status_code == 400
    assert "bad_verification_code" in wrong.text  # an error GitHub answers with HTTP 200


async def test_a_token_about_to_expire_is_refreshed_once_for_concurrent_requests(
    web: Harness,
) -> None:
    web.gh.oauth.access_ttl = timedelta(seconds=120)  # within the refresh margin at once
    await sign_in(web.client, web.gh, MAINTAINER)
    [old_token] = web.gh.oauth.tokens_of(MAINTAINER)
    web.gh.oauth.access_ttl = timedelta(hours=8)

    pages = await asyncio.gather(*(web.client.get("/api/runs") for _ in range(3)))

    assert [p.status_code for p in pages] == [200, 200, 200]
    refreshes = [
        c
        for c in web.gh.calls_matching("POST", "/login/oauth/access_token")
        if c.json.get("grant_type") == "refresh_token"
    ]
    assert len(refreshes) == 1
    [new_token] = web.gh.oauth.tokens_of(MAINTAINER)
    assert new_token != old_token  # the old pair no longer works at GitHub
    assert all(SESSION_COOKIE in p.headers.get("set-cookie", "") for p in pages)
    web.client.cookies.set(SESSION_COOKIE, pages[0].cookies[SESSION_COOKIE])
    assert (await web.client.get("/api/runs")).status_code == 200
    assert len(web.gh.calls_matching("POST", "/login/oauth/access_token")) == 2  # code + 1


async def test_a_refused_refresh_or_a_revoked_token_means_signing_in_again(
    web: Harness,
) -> None:
    web.gh.oauth.access_ttl = timedelta(seconds=120)
    await sign_in(web.client, web.gh, MAINTAINER)
    web.gh.oauth.refresh_tokens.clear()  # the refresh token expired meanwhile

    assert (await web.client.get("/")).status_code == 303
    assert (await web.client.get("/api/runs")).status_code == 401

    web.gh.oauth.access_ttl = timedelta(hours=8)
    web.client.cookies.clear()
    await sign_in(web.client, web.gh, MAINTAINER)
    web.gh.oauth.access_tokens.clear()  # the person revoked the App's authorization
    page = await web.client.get("/")
    assert page.status_code == 303
    assert page.headers["location"].startswith(f"{web.gh.web_url}/login/oauth/authorize?")


async def test_signing_out_needs_the_form_and_revokes_the_token(web: Harness) -> None:
    await sign_in(web.client, web.gh, MAINTAINER)
    [token] = web.gh.oauth.tokens_of(MAINTAINER)
    form = await web.client.get("/auth/logout")
    assert form.status_code == 200
    assert 'action="/auth/logout"' in form.text

    refused = await web.client.post("/auth/logout", data={"csrf": "wrong"})
    assert refused.status_code == 403
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    cross_site = await web.client.post(
        "/auth/logout", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    done = await web.client.post("/auth/logout", data={"csrf": csrf})

    assert done.status_code == 200
    assert "signed out" in done.text
    assert f"{SESSION_COOKIE}=" in done.headers["set-cookie"]
    assert "Max-Age=0" in done.headers["set-cookie"]
    assert web.gh.oauth.revoked == [token]
    assert (await web.client.get("/")).status_code == 303


async def test_without_client_credentials_the_dashboard_says_how_to_enable_it(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    async with start_harness(tmp_path, gh, github_app) as harness:
        page = await harness.client.get("/")
        api = await harness.client.get("/api/runs")

    assert page.status_code == 200
    assert "GITHUB_APP_CLIENT_ID" in page.text
    assert "GITHUB_APP_CLIENT_SECRET" in page.text
    assert "http://test/auth/callback" in page.text
    assert api.status_code == 503


async def test_the_session_secret_is_generated_once_and_survives_a_restart(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    env = tmp_path / ".env"
    async with start_harness(tmp_path, gh, github_app, **WEB) as first:
        await sign_in(first.client, gh, MAINTAINER)
        cookie = first.client.cookies[SESSION_COOKIE]
    assert env.read_text().count(SESSION_SECRET_KEY) == 1

    async with start_harness(tmp_path, gh, github_app, **WEB) as second:
        second.client.cookies.set(SESSION_COOKIE, cookie)
        page = await second.client.get("/")
    assert page.status_code == 200  # still signed in: the same secret was read back
    assert env.read_text().count(SESSION_SECRET_KEY) == 1


async def test_cookies_are_secure_behind_an_https_public_url(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    async with start_harness(
        tmp_path, gh, github_app, public_url="https://swe.example.com", **WEB
    ) as harness:
        response = await harness.client.get("/")
    assert "Secure" in set_cookie(response, SIGN_IN_COOKIE)
    query = query_of(response.headers["location"])
    assert query["redirect_uri"] == "https://swe.example.com/auth/callback"
