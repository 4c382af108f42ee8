"""Acting as the GitHub App: the JWT, installation lookups and cached, repo-scoped tokens."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from github import Auth, Github
from requests.utils import parse_header_links

from app.github.client import InstallationClient
from app.github.errors import GitHubError, NotFound
from app.github.pacing import WRITE_INTERVAL, Pacer
from app.github.transport import backoff_factor, github_errors, github_options, repeatable_posts
from app.github.types import HookDelivery, InstallationInfo, InstallationToken
from app.logs import redact_from_logs

JWT_BACKDATE = 60  # seconds: tolerate a server clock slightly ahead of ours (GitHub's advice)
JWT_LIFETIME = 540  # seconds: GitHub refuses exp more than 10 min ahead; keep a margin
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)  # renew a token this long before it expires


class _AppJWT(Auth.JWT):
    """PyGithub auth that signs a fresh JWT for every request (so it never expires mid-use)."""

    def __init__(self, app: GitHubApp) -> None:
        self._app = app

    @property
    def token(self) -> str:
        return self._app.jwt()


class _CachedInstallationToken(Auth.Auth):
    """PyGithub auth that asks the App for the current token: a long-lived client refreshes."""

    def __init__(self, app: GitHubApp, installation_id: int, repo: str | None) -> None:
        self._app, self._installation_id, self._repo = app, installation_id, repo

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._app.installation_token(self._installation_id, self._repo).token


class GitHubApp:
    """One GitHub App. Thread-safe; share one per process. All calls are blocking (requests)."""

    def __init__(
        self,
        app_id: int,
        private_key: str,
        api_url: str,
        *,
        max_retry_wait: float = 60,
        throttle: bool = True,
    ) -> None:
        self.app_id = app_id
        self.api_url = api_url.rstrip("/")
        self._private_key = _load_private_key(private_key)
        self._options = github_options(max_retry_wait=max_retry_wait, throttle=throttle)
        self._backoff = backoff_factor(throttle=throttle)
        # Writes are paced per installation, shared by every client of this process.
        self.pacer = Pacer(WRITE_INTERVAL if throttle else 0)
        self._github = Github(auth=_AppJWT(self), base_url=self.api_url, **self._options)
        self._slug: str | None = None
        self._tokens: dict[tuple[int, str | None], InstallationToken] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # no key material, ever
        return f"GitHubApp(app_id={self.app_id}, api_url={self.api_url!r})"

    def jwt(self) -> str:
        """A JWT for App-level endpoints: RS256, iss = App ID, valid from 60 s ago for 9 min."""
        now = int(time.time())
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}
        return pyjwt.encode(claims, self._private_key, algorithm="RS256")

    def slug(self) -> str:
        """The App's slug (its bot user is `<slug>[bot]`); fetched once."""
        if self._slug is None:
            with github_errors("get the App"):
                _, data = self._github.requester.requestJsonAndCheck("GET", "/app")
            self._slug = str(data["slug"])
        return self._slug

    def installation(self, installation_id: int) -> InstallationInfo | None:
        """The installation, or None when it does not exist (uninstalled)."""
        return self._installation_at(
            f"/app/installations/{installation_id}", f"get installation {installation_id}"
        )

    def repo_installation(self, full_name: str) -> InstallationInfo | None:
        """The installation covering `owner/name`, or None when the App is not installed there."""
        return self._installation_at(
            f"/repos/{full_name}/installation", f"find the installation for {full_name}"
        )

    def _installation_at(self, path: str, what: str) -> InstallationInfo | None:
        try:
            with github_errors(what):
                _, data = self._github.requester.requestJsonAndCheck("GET", path)
        except NotFound:
            return None
        return _installation_info(data)

    def installation_token(
        self, installation_id: int, repo: str | None = None
    ) -> InstallationToken:
        """A token for the installation, scoped to one repository when `repo` is given.

        `repo` is `owner/name` or `name`. Tokens are cached per (installation, repo) and renewed
        60 s before they expire.
        """
        name = repo.rsplit("/", 1)[-1] if repo else None
        key = (installation_id, name)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached.expires_at - TOKEN_REFRESH_MARGIN > datetime.now(UTC):
                return cached
            body: dict[str, Any] = {"repositories": [name]} if name else {}
            scope = f" for {name}" if name else ""
            action = f"create an installation token{scope} (installation {installation_id})"
            with github_errors(action), repeatable_posts():  # a spare token is harmless
                _, data = self._github.requester.requestJsonAndCheck(
                    "POST", f"/app/installations/{installation_id}/access_tokens", input=body
                )
            token = InstallationToken(str(data["token"]), _parse_time(data["expires_at"]))
            redact_from_logs(token.token)  # e.g. should a library's error ever quote it
            self._tokens[key] = token
            return token

    def client(self, installation_id: int, repo: str | None = None) -> InstallationClient:
        """A client acting as the installation; its token refreshes itself when needed."""
        auth = _CachedInstallationToken(self, installation_id, repo)
        github = Github(auth=auth, base_url=self.api_url, **self._options)
        return InstallationClient(
            github,
            lambda: auth.token,
            backoff=self._backoff,
            pace=self.pacer.pace_for(installation_id),
        )

    def forget_installation(self, installation_id: int) -> int:
        """Drop the installation's cached tokens (it was uninstalled or suspended); how many."""
        with self._lock:
            keys = [key for key in self._tokens if key[0] == installation_id]
            for key in keys:
                del self._tokens[key]
        return len(keys)

    def hook_deliveries(
        self, *, cursor: str | None = None, per_page: int = 100
    ) -> tuple[list[HookDelivery], str | None]:
        """One page of the App webhook's deliveries, newest first, and the cursor of the next
        page (None on the last)."""
        parameters: dict[str, Any] = {"per_page": per_page}
        if cursor is not None:
            parameters["cursor"] = cursor
        with github_errors("list the App's webhook deliveries"):
            headers, data = self._github.requester.requestJsonAndCheck(
                "GET", "/app/hook/deliveries", parameters=parameters
            )
        links = {key.lower(): value for key, value in (headers or {}).items()}.get("link")
        return [_hook_delivery(item) for item in data or []], _next_cursor(links)

    def redeliver(self, hook_delivery_id: int) -> None:
        """Ask GitHub to send a delivery again (to the App's webhook URL, same X-GitHub-Delivery).

        Repeating the request after a lost answer is harmless: the receiver takes a delivery
        id once."""
        with github_errors(f"redeliver webhook delivery {hook_delivery_id}"), repeatable_posts():
            self._github.requester.requestJsonAndCheck(
                "POST", f"/app/hook/deliveries/{hook_delivery_id}/attempts"
            )


def _load_private_key(pem: str) -> RSAPrivateKey:
    """Parse the key once: PyJWT would re-parse (and re-check) a PEM string on every JWT."""
    try:
        # The key is our own configuration, not input: skip the slow (~0.1 s) RSA consistency
        # check; a damaged key still fails loudly, as a 401 from GitHub.
        key = serialization.load_pem_private_key(
            pem.strip().encode(), password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise GitHubError(
            "the App private key is not a readable PEM (expected the .pem file GitHub "
            "generated, with its BEGIN/END lines, and no passphrase)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise GitHubError("the App private key must be an RSA key (GitHub signs Apps with RS256)")
    return key


def _installation_info(data: dict[str, Any]) -> InstallationInfo:
    account = data.get("account") or {}
    kind: Literal["User", "Organization"] = (
        "Organization" if account.get("type") == "Organization" else "User"
    )
    return InstallationInfo(
        id=int(data["id"]),
        account=str(account.get("login", "")),
        account_type=kind,
        suspended=data.get("suspended_at") is not None,
    )


def _hook_delivery(data: dict[str, Any]) -> HookDelivery:
    return HookDelivery(
        id=int(data["id"]),
        guid=str(data["guid"]),
        delivered_at=_parse_time(str(data["delivered_at"])),
        redelivery=bool(data.get("redelivery")),
        status_code=int(data.get("status_code") or 0),
        event=str(data.get("event") or ""),
        action=data.get("action"),
    )


def _next_cursor(link: str | None) -> str | None:
    """The `cursor` of the Link header's rel="next" page."""
    for found in parse_header_links(link or ""):
        if found.get("rel") == "next":
            cursors = parse_qs(urlsplit(found.get("url", "")).query).get("cursor")
            return cursors[0] if cursors else None
    return None


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
