"""GitHub's user authorization for the App (the OAuth web flow) and the user-token API calls.

See shared/fixtures/github/oauth.md: the browser goes to `<web>/login/oauth/authorize`, comes
back with a code, which `<web>/login/oauth/access_token` exchanges for a user access token
(`ghu_`, 8 hours) and a refresh token (`ghr_`, 6 months; both replaced on each refresh). That
endpoint answers errors with HTTP 200 and an `error` field, so the body is always checked.
With the user's token, `/user/installations` and `/user/installations/{id}/repositories` list
what the user can reach through the App's installations, with their permissions.

Reads are retried after a transient fault (a network error, 5xx, 429); the token exchanges
are not: a code and a refresh token work once, so a blind repeat could only fail.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
PER_PAGE = 100
MAX_PAGES = 50  # 5,000 installations or repositories: far more than a dashboard shows
READ_ATTEMPTS = 3
RETRY_PAUSE = 0.5  # seconds, doubled after each failed attempt
TIMEOUT = 10.0


class OAuthError(Exception):
    """GitHub refused a code or a refresh token (`code` is GitHub's `error` value)."""

    def __init__(self, code: str, description: str = "") -> None:
        self.code = code
        super().__init__(f"{code}: {description}" if description else code)


class TokenRejected(Exception):
    """The user's token no longer works (401): revoked, expired, or the App was uninstalled."""


class GitHubUnavailable(Exception):
    """GitHub did not answer usefully, even after retries."""


@dataclass(frozen=True, slots=True)
class UserToken:
    access_token: str
    expires_at: float | None  # epoch seconds; None when the App's user tokens do not expire
    refresh_token: str | None
    refresh_expires_at: float | None


@dataclass(frozen=True, slots=True)
class GitHubUser:
    login: str
    id: int


@dataclass(frozen=True, slots=True)
class RepoGrant:
    """A repository the user reaches through an installation, and what they may do there."""

    full_name: str
    installation_id: int
    permissions: frozenset[str]  # of admin, maintain, push, triage, pull

    @property
    def can_write(self) -> bool:
        """Write, maintain or admin: the rule comment commands follow."""
        return bool(self.permissions & {"admin", "maintain", "push"})


class GitHubOAuth:
    """The App's side of the web flow, and reads made with a user's token."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        web_url: str,
        api_url: str,
        http: httpx.AsyncClient,
        clock: Any = time.time,
        retry_pause: float = RETRY_PAUSE,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self._web = web_url.rstrip("/")
        self._api = api_url.rstrip("/")
        self._http = http
        self._clock = clock
        self._retry_pause = retry_pause

    def __repr__(self) -> str:  # never the client secret
        return f"GitHubOAuth(client_id={self.client_id!r})"

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        query = urlencode(
            {"client_id": self.client_id, "redirect_uri": redirect_uri, "state": state}
        )
        return f"{self._web}/login/oauth/authorize?{query}"

    async def exchange_code(self, code: str, *, redirect_uri: str) -> UserToken:
        return await self._token_request({"code": code, "redirect_uri": redirect_uri})

    async def refresh(self, refresh_token: str) -> UserToken:
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def revoke(self, access_token: str) -> None:
        """Revoke the token at GitHub (signing out); best effort, errors are the caller's."""
        response = await self._http.request(
            "DELETE",
            f"{self._api}/applications/{self.client_id}/token",
            json={"access_token": access_token},
            auth=(self.client_id, self._client_secret),
            headers=API_HEADERS,
            timeout=TIMEOUT,
        )
        if response.status_code not in (204, 404, 422):  # 404/422: already gone
            raise GitHubUnavailable(f"revoking the token: HTTP {response.status_code}")

    async def user(self, token: str) -> GitHubUser:
        data = await self._get(token, "/user")
        if not isinstance(data, dict) or not isinstance(data.get("login"), str):
            raise GitHubUnavailable("GitHub's /user answer has no login")
        return GitHubUser(data["login"], int(data.get("id") or 0))

    async def repo_grants(self, token: str) -> list[RepoGrant]:
        """Every repository the user reaches through the App's installations."""
        grants: list[RepoGrant] = []
        for installation in await self._pages(token, "/user/installations", "installations"):
            installation_id = installation.get("id")
            if not isinstance(installation_id, int):
                continue
            path = f"/user/installations/{installation_id}/repositories"
            for repo in await self._pages(token, path, "repositories"):
                full_name = repo.get("full_name")
                if not isinstance(full_name, str):
                    continue
                flags = repo.get("permissions")
                allowed = (
                    frozenset(k for k, v in flags.items() if v is True)
                    if isinstance(flags, dict)
                    else frozenset()
                )
                grants.append(RepoGrant(full_name, installation_id, allowed))
        return grants

    # ----------------------------------------------------------------------------------

    async def _token_request(self, fields: dict[str, str]) -> UserToken:
        body = {"client_id": self.client_id, "client_secret": self._client_secret, **fields}
        try:
            response = await self._http.post(
                f"{self._web}/login/oauth/access_token",
                data=body,
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise GitHubUnavailable(f"cannot reach GitHub ({type(exc).__name__})") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GitHubUnavailable(
                f"GitHub's token answer is not JSON (HTTP {response.status_code})"
            )
        if "error" in data or not isinstance(data.get("access_token"), str):
            raise OAuthError(
                str(data.get("error") or "no_token"), str(data.get("error_description") or "")
            )
        now = self._clock()
        return UserToken(
            access_token=data["access_token"],
            expires_at=_after(now, data.get("expires_in")),
            refresh_token=data.get("refresh_token") or None,
            refresh_expires_at=_after(now, data.get("refresh_token_expires_in")),
        )

    async def _pages(self, token: str, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            data = await self._get(token, path, {"per_page": PER_PAGE, "page": page})
            batch = data.get(key) if isinstance(data, dict) else None
            if not isinstance(batch, list):
                raise GitHubUnavailable(f"GitHub's {path} answer has no {key}")
            items += [item for item in batch if isinstance(item, dict)]
            if len(batch) < PER_PAGE:
                break
        return items

    async def _get(self, token: str, path: str, params: dict[str, Any] | None = None) -> Any:
        headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
        pause = self._retry_pause
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = await self._http.get(
                    self._api + path, params=params, headers=headers, timeout=TIMEOUT
                )
            except httpx.HTTPError as exc:
                failure = f"cannot reach GitHub ({type(exc).__name__})"
            else:
                if response.status_code == 401:
                    raise TokenRejected(path)
                if response.status_code < 300:
                    return response.json()
                failure = f"GET {path}: HTTP {response.status_code}"
                if response.status_code not in (429, 500, 502, 503, 504):
                    break
            if attempt < READ_ATTEMPTS:
                await asyncio.sleep(pause)
                pause *= 2
        raise GitHubUnavailable(failure)


def _after(now: float, seconds: Any) -> float | None:
    return now + float(seconds) if isinstance(seconds, int | float) and seconds > 0 else None
