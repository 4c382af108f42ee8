"""The fake GitHub's user authorization for the App (the OAuth web flow) and user-token reads.

Part of `FakeGitHub` (as `gh.oauth`), following shared/fixtures/github/oauth.md:

- `GET /login/oauth/authorize` redirects the browser back to `redirect_uri` with a code for
  the test user chosen by `gh.oauth.sign_in_as = "login"` (or an `error` when
  `gh.oauth.deny` names one); with nobody chosen it shows a page saying so.
- `POST /login/oauth/access_token` exchanges a code (once, ten minutes) or a refresh token
  (`grant_type=refresh_token`: a new pair; the old pair stops working) for `ghu_` / `ghr_`
  tokens; errors are HTTP 200 with `error` (bad_verification_code, incorrect_client_credentials,
  redirect_uri_mismatch, bad_refresh_token). JSON with `Accept: application/json`, else
  form-encoded, like GitHub.
- With a user token (API, under the prefix): `GET /user`, `GET /user/installations` and
  `GET /user/installations/{id}/repositories` (with `permissions`), listing what the user
  reaches: repositories of the App's installations where they have a role, paginated.
- `DELETE /applications/{client_id}/token` (basic auth with the client credentials) revokes.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub

CLIENT_ID = "Iv1.fake0000000000"
CLIENT_SECRET = "fake-client-secret"
ERROR_URI = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
ROLES = ("admin", "maintain", "write", "triage", "read")
Answer = tuple[int, Any, dict[str, str]]  # status, JSON (or text) body, headers


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class UserGrant:
    login: str
    expires_at: datetime | None


@dataclass
class CodeGrant:
    login: str
    redirect_uri: str | None
    expires_at: datetime


class FakeOAuth:
    def __init__(self, gh: FakeGitHub) -> None:
        self._gh = gh
        self._lock = threading.RLock()
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.callback_urls: list[str] = []  # registered; empty: any redirect_uri is accepted
        self.sign_in_as: str | None = None  # who signs in at the next authorize
        self.deny: str | None = None  # e.g. "access_denied": authorize answers with this error
        self.expiring = True  # False: tokens without expiry, as Apps that opted out get
        self.access_ttl = timedelta(hours=8)
        self.refresh_ttl = timedelta(days=183)
        self.codes: dict[str, CodeGrant] = {}
        self.access_tokens: dict[str, UserGrant] = {}
        self.refresh_tokens: dict[str, tuple[UserGrant, str]] = {}  # -> (grant, access token)
        self.revoked: list[str] = []

    # Test controls ----------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        with self._lock:
            for grant in self.access_tokens.values():
                grant.expires_at = _now() - timedelta(seconds=1)

    def tokens_of(self, login: str) -> list[str]:
        with self._lock:
            return [t for t, g in self.access_tokens.items() if g.login == login]

    # The web flow -----------------------------------------------------------------------

    def web(self, method: str, path: str, params: dict[str, str], accept: str) -> Answer:
        if (method, path) == ("GET", "/login/oauth/authorize"):
            return self._authorize(params)
        if (method, path) == ("POST", "/login/oauth/access_token"):
            data = self._exchange(params)
            if "application/json" in accept:
                return 200, data, {}
            body = urlencode({k: str(v) for k, v in data.items()})
            return 200, body, {"content-type": "application/x-www-form-urlencoded"}
        return 404, "Not Found", {"content-type": "text/plain"}

    def _authorize(self, params: dict[str, str]) -> Answer:
        if params.get("client_id") != self.client_id:
            return 404, "Not Found: unknown client_id", {"content-type": "text/plain"}
        redirect = params.get("redirect_uri") or (self.callback_urls or [""])[0]
        state = params.get("state", "")
        if self.callback_urls and redirect not in self.callback_urls:
            return self._back(
                self.callback_urls[0],
                state,
                error="redirect_uri_mismatch",
                error_description="The redirect_uri MUST match the registered callback URL.",
            )
        if self.deny:
            return self._back(redirect, state, error=self.deny, error_description="denied")
        if self.sign_in_as is None:
            page = "<!doctype html><title>Sign in</title><p>No test user chosen.</p>"
            return 200, page, {"content-type": "text/html"}
        code = secrets.token_hex(10)
        with self._lock:
            self.codes[code] = CodeGrant(
                self.sign_in_as, params.get("redirect_uri"), _now() + timedelta(minutes=10)
            )
        return self._back(redirect, state, code=code)

    @staticmethod
    def _back(redirect: str, state: str, **fields: str) -> Answer:
        query = urlencode({**fields, "state": state})
        return 302, "", {"location": f"{redirect}?{query}"}

    def _exchange(self, params: dict[str, str]) -> dict[str, Any]:
        if (params.get("client_id"), params.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return _error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        with self._lock:
            if params.get("grant_type") == "refresh_token":
                held = self.refresh_tokens.pop(params.get("refresh_token", ""), None)
                if held is None or (held[0].expires_at and held[0].expires_at <= _now()):
                    return _error(
                        "bad_refresh_token", "The refresh token passed is incorrect or expired."
                    )
                self.access_tokens.pop(held[1], None)  # the old pair stops working
                return self._issue(held[0].login)
            grant = self.codes.pop(params.get("code", ""), None)
            if grant is None or grant.expires_at <= _now():
                return _error("bad_verification_code", "The code passed is incorrect or expired.")
            given = params.get("redirect_uri")
            if given and grant.redirect_uri and given != grant.redirect_uri:
                return _error(
                    "redirect_uri_mismatch",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                )
            return self._issue(grant.login)

    def _issue(self, login: str) -> dict[str, Any]:
        access = f"ghu_{secrets.token_urlsafe(27)}"
        if not self.expiring:
            self.access_tokens[access] = UserGrant(login, None)
            return {"access_token": access, "token_type": "bearer", "scope": ""}
        refresh = f"ghr_{secrets.token_urlsafe(54)}"
        self.access_tokens[access] = UserGrant(login, _now() + self.access_ttl)
        self.refresh_tokens[refresh] = (UserGrant(login, _now() + self.refresh_ttl), access)
        return {
            "access_token": access,
            "expires_in": int(self.access_ttl.total_seconds()),
            "refresh_token": refresh,
            "refresh_token_expires_in": int(self.refresh_ttl.total_seconds()),
            "token_type": "bearer",
            "scope": "",
        }

    # Authentication of API calls --------------------------------------------------------

    def user_for(self, token: str) -> str | None:
        """The login a valid user token belongs to."""
        with self._lock:
            grant = self.access_tokens.get(token)
        if grant is None or (grant.expires_at is not None and grant.expires_at <= _now()):
            return None
        return grant.login

    def is_client(self, username: str, password: str) -> bool:
        return secrets.compare_digest(username, self.client_id) and secrets.compare_digest(
            password, self.client_secret
        )

    # API handlers (called by FakeGitHub with the user's login) ---------------------------

    def user(self, login: str) -> tuple[int, Any]:
        return 200, self._gh._user_json(login) | {"name": login, "email": None}

    def installations(self, login: str, query: dict[str, str]) -> tuple[int, Any]:
        gh = self._gh
        visible = [
            gh._installation_json(inst)
            for inst in gh.installations.values()
            if any(self._role(login, name) for name in inst.repos)
        ]
        page = _page(visible, query)
        return 200, {"total_count": len(visible), "installations": page}

    def installation_repos(
        self, login: str, installation_id: int, query: dict[str, str]
    ) -> tuple[int, Any]:
        gh = self._gh
        inst = gh.installations.get(installation_id)
        names = [n for n in inst.repos if self._role(login, n)] if inst else []
        if not names:
            return 404, {"message": "Not Found"}
        repos = [
            gh._repo_json(gh.repos[name]) | {"permissions": _permissions(self._role(login, name))}
            for name in names
        ]
        page = _page(repos, query)
        body = {"total_count": len(repos), "repository_selection": "selected"}
        return 200, body | {"repositories": page}

    def revoke(self, body: Any) -> tuple[int, Any]:
        token = body.get("access_token") if isinstance(body, dict) else None
        with self._lock:
            grant = self.access_tokens.pop(token or "", None)
            if grant is None:
                return 404, {"message": "Not Found"}
            self.revoked.append(str(token))
            for refresh, (_, access) in list(self.refresh_tokens.items()):
                if access == token:
                    del self.refresh_tokens[refresh]
        return 204, None

    def _role(self, login: str, full_name: str) -> str | None:
        repo = self._gh.repos.get(full_name)
        if repo is None:
            return None
        role = repo.permissions.get(login) or ("admin" if repo.owner == login else None)
        return role if role in ROLES else None


def _permissions(role: str | None) -> dict[str, bool]:
    rank = ROLES.index(role) if role in ROLES else len(ROLES)
    return {
        "admin": rank <= 0,
        "maintain": rank <= 1,
        "push": rank <= 2,
        "triage": rank <= 3,
        "pull": rank <= 4,
    }


def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
    per_page = max(1, min(100, int(query.get("per_page") or 30)))
    page = max(1, int(query.get("page") or 1))
    return items[(page - 1) * per_page : page * per_page]


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description, "error_uri": ERROR_URI}
