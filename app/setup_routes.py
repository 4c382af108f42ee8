"""The setup pages: register the GitHub App from manifest.yml, then send the user to install it.

Mounted by the server in every mode. Until the App is configured, `/` and `/setup` offer a
button that POSTs the manifest to GitHub; GitHub comes back to `/setup/callback` with a code,
which we exchange for the App's credentials and write to the .env file.

Two checks keep strangers out of a fresh, publicly reachable server:
- a setup token, printed in the server log, must be in the setup page's URL; otherwise anyone
  could register their own App with this server's model keys behind it;
- the `state` GitHub returns must be one we issued in the last hour, and is used once (CSRF).

The page with the token also leaves it in a cookie (HttpOnly, for /setup only), so that when
GitHub sends the person who registered the App back to /setup after installing it, they are
told to restart. Anyone else only learns that the server is set up: not the App, not where
its credentials are. URLs given to GitHub come from OPEN_SWE_PUBLIC_URL, else the address the
server listens on, never from a request's Host header.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from html import escape
from importlib.resources import files
from string import Template
from urllib.parse import urlencode, urlsplit

import anyio.to_thread
import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from app.config import Settings
from app.github.errors import GitHubError
from app.github.manifest import (
    ManifestError,
    build_manifest,
    convert_manifest_code,
    install_url,
    load_manifest,
    manifest_form_url,
    write_env_credentials,
)
from app.github.types import AppCredentials

STATE_TTL = 3600.0  # GitHub wants the whole flow done within an hour
MAX_PENDING_STATES = 256  # page reloads cannot grow memory without bound
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "[::1]"}  # noqa: S104 (names, not binds)
SETUP_COOKIE = "open_swe_setup"  # holds the setup token
SET_UP = "This open-swe server is set up."

log = structlog.get_logger(__name__)


class SetupStateStore:
    """In-memory state of the setup flow (one process runs the setup)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        ttl: float = STATE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.registered: AppCredentials | None = None  # written to .env, not loaded yet
        self._ttl = ttl
        self._clock = clock
        self._states: OrderedDict[str, float] = OrderedDict()

    def token_matches(self, candidate: str | None) -> bool:
        # As bytes: compare_digest raises TypeError on a str with non-ASCII characters.
        return candidate is not None and secrets.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def is_operator(self, request: Request) -> bool:
        """The request carries the setup token: in its URL, or in the cookie the page left."""
        return self.token_matches(request.query_params.get("token")) or self.token_matches(
            request.cookies.get(SETUP_COOKIE)
        )

    def new_state(self) -> str:
        state = secrets.token_urlsafe(24)
        self._states[state] = self._clock() + self._ttl
        while len(self._states) > MAX_PENDING_STATES:
            self._states.popitem(last=False)
        return state

    def consume_state(self, state: str | None) -> bool:
        """True once for a state we issued less than an hour ago."""
        if not state:
            return False
        expires = self._states.pop(state, None)
        return expires is not None and self._clock() < expires


def setup_routes(settings: Settings, *, state_store: SetupStateStore | None = None) -> list[Route]:
    """`GET /`, `GET /setup` and `GET /setup/callback`, bound to these settings."""
    store = state_store or SetupStateStore()
    if not settings.app_configured:
        log.warning(
            "github_app_not_configured",
            setup_link=f"{settings.base_url}/setup?{urlencode({'token': store.token})}",
        )

    async def home(request: Request) -> Response:
        if settings.app_configured:
            return PlainTextResponse(SET_UP + "\n")
        return _setup_page(request, settings, store)

    async def setup(request: Request) -> Response:
        return _setup_page(request, settings, store)

    async def callback(request: Request) -> Response:
        return await _callback(request, settings, store)

    return [
        Route("/", home, methods=["GET"]),
        Route("/setup", setup, methods=["GET"]),
        Route("/setup/callback", callback, methods=["GET"]),
    ]


def _setup_page(request: Request, settings: Settings, store: SetupStateStore) -> Response:
    if settings.app_configured or store.registered is not None:
        return _configured_page(request, settings, store)
    if not store.token_matches(request.query_params.get("token")):
        return _page(
            "Set up open-swe",
            "<p>open-swe has no GitHub App yet. Open the setup link printed in the server's log "
            "(it carries a token that shows you run this server).</p>",
            status=403,
        )
    public_url = settings.base_url
    org = request.query_params.get("org", "").strip()
    name = request.query_params.get("name", "").strip() or None
    try:
        manifest = build_manifest(load_manifest(), public_url, name=name)
        action = manifest_form_url(settings.github_web_url, store.new_state(), org=org or None)
    except ManifestError as exc:
        return _page("Set up open-swe", _error(str(exc)) + _choice_form(store, org, name), 400)
    owner = f"the organization <code>{escape(org)}</code>" if org else "your personal account"
    content = (
        _local_warning(public_url)
        + "<p>Register a GitHub App for open-swe from its manifest. GitHub will show you the "
        "App's settings, create it and send you back here; then you pick the repositories "
        "to install it on.</p>"
        + f'<form method="post" action="{escape(action)}">'
        + f'<input type="hidden" name="manifest" value="{escape(json.dumps(manifest))}">'
        + f"<button>Register the GitHub App <code>{escape(manifest['name'])}</code> on "
        + f"{owner}</button></form>"
        + "<h2>Options</h2>"
        + _choice_form(store, org, name or manifest["name"])
    )
    page = _page("Set up open-swe", content)
    # Recognises this browser when GitHub sends it back after the install (see the docstring).
    page.set_cookie(
        SETUP_COOKIE,
        store.token,
        path="/setup",
        httponly=True,
        samesite="lax",
        secure=public_url.startswith("https://"),
    )
    return page


def _choice_form(store: SetupStateStore, org: str, name: str | None) -> str:
    return (
        '<form method="get" action="setup">'
        f'<input type="hidden" name="token" value="{escape(store.token)}">'
        '<label for="org">Organization (leave empty for your personal account)</label>'
        f'<input type="text" id="org" name="org" value="{escape(org)}">'
        '<label for="name">App name (unique on GitHub)</label>'
        f'<input type="text" id="name" name="name" value="{escape(name or "")}">'
        '<p><button class="secondary">Update</button></p></form>'
    )


def _local_warning(public_url: str) -> str:
    host = urlsplit(public_url).hostname or ""
    if host not in LOCAL_HOSTS and not host.startswith("127."):
        return ""
    return (
        f'<p class="note">GitHub cannot deliver webhooks to <code>{escape(public_url)}</code>. '
        "Set <code>OPEN_SWE_PUBLIC_URL</code> to an address GitHub can reach (for example a "
        "tunnel to this machine) and restart open-swe before registering.</p>"
    )


async def _callback(request: Request, settings: Settings, store: SetupStateStore) -> Response:
    if settings.app_configured or store.registered is not None:
        return _page(
            "Already set up",
            "<p>open-swe already has a GitHub App; nothing was changed.</p>",
            status=409,
        )
    code = request.query_params.get("code")
    if not store.consume_state(request.query_params.get("state")) or not code:
        return _page(
            "Setup link expired",
            "<p>This link is not valid any more (or did not come from this server's setup "
            'page). Please <a href="/setup">start again</a> from the link in the server log.</p>',
            status=400,
        )
    try:
        credentials = await anyio.to_thread.run_sync(
            convert_manifest_code, settings.github_api_url, code
        )
    except GitHubError as exc:
        return _page("Setup failed", _error(str(exc)), status=502)
    try:
        await anyio.to_thread.run_sync(write_env_credentials, settings.env_file_path, credentials)
    except (OSError, ManifestError) as exc:
        log.error("setup_env_write_failed", path=str(settings.env_file_path), error=str(exc))
        return _page(
            "Setup incomplete",
            _error(
                f"The App {credentials.slug} was created, but its credentials could not be "
                f"written to {settings.env_file_path}: {exc}."
            )
            + f'<p>In <a href="{escape(credentials.html_url)}">the App\'s settings</a>, generate '
            "a new private key and webhook secret and set the GITHUB_APP_* variables yourself.</p>",
            status=500,
        )
    store.registered = credentials
    log.info("github_app_registered", app_id=credentials.id, slug=credentials.slug)
    return RedirectResponse(install_url(credentials), status_code=303)


def _configured_page(request: Request, settings: Settings, store: SetupStateStore) -> Response:
    if not store.is_operator(request):
        return _page("open-swe", f"<p>{SET_UP}</p>")
    installed = request.query_params.get("setup_action") == "install"
    intro = "<p>The App is installed.</p>" if installed else ""
    registered = store.registered
    if registered is not None and not settings.app_configured:
        content = intro + (
            f"<p>The GitHub App <code>{escape(registered.slug)}</code> is registered and its "
            f"credentials are in <code>{escape(str(settings.env_file_path))}</code>. Restart "
            "open-swe to load them.</p>"
        )
        return _page("Restart open-swe", content)
    slug = settings.github_app_slug
    more = ""
    if slug:
        link = f"{settings.github_web_url}/apps/{slug}/installations/new"
        more = f'<p><a href="{escape(link)}">Install it on more repositories</a>.</p>'
    content = (
        intro
        + f"<p>open-swe is set up as GitHub App {escape(_app_name(settings))}. Label an issue "
        "<code>open-swe</code> to get a plan, or <code>open-swe-auto</code> to go straight to "
        "a pull request.</p>" + more
    )
    return _page("open-swe is set up", content)


def _app_name(settings: Settings) -> str:
    slug = settings.github_app_slug
    return f"{slug} (ID {settings.github_app_id})" if slug else f"ID {settings.github_app_id}"


def _error(message: str) -> str:
    return f'<p class="error">{escape(message)}</p>'


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    template = Template(files("app").joinpath("templates/setup.html").read_text(encoding="utf-8"))
    html = template.substitute(title=escape(title), content=content)
    return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)


_SECURITY_HEADERS = {
    # The page holds the setup token and a state: never cache it, frame it or leak it.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
