"""Signing in with GitHub (the App's user authorization), sessions, and the guard on every route.

`GET /` (or any page) without a session sends the browser to GitHub's authorize page with the
App's client id, a single-use `state` (also sealed in a ten-minute cookie of this browser) and
`redirect_uri=<public url>/auth/callback`. The callback checks the state, exchanges the code,
asks GitHub who signed in, and starts a session. A token about to expire is refreshed before
it is used (one refresh per token in this process, shared by concurrent requests); a token
GitHub refuses, or a refresh it refuses, ends the session. `/auth/logout` revokes the token
at GitHub and clears the cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.config import Settings
from app.web import csrf
from app.web.access import Access, AccessCache
from app.web.oauth import GitHubOAuth, GitHubUnavailable, OAuthError, TokenRejected, UserToken
from app.web.render import Renderer, json_answer
from app.web.sessions import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Session,
    SessionCodec,
    SignIn,
    new_session,
    safe_next,
)

CALLBACK_PATH = "/auth/callback"  # layer.py mounts the callback and /auth/logout
MAX_USED_STATES = 4096
REFRESH_SHARED_FOR = 60.0  # seconds a refresh's result serves other requests of that token
log = structlog.get_logger(__name__)

Kind = Literal["page", "api", "action"]


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their session and what they reach on GitHub."""

    session: Session
    access: Access
    refreshed: bool = False

    @property
    def login(self) -> str:
        return self.session.login


Handler = Callable[[Request, Viewer], Awaitable[Response]]


class Auth:
    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        codec: SessionCodec,
        oauth: GitHubOAuth | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._renderer = renderer
        self._codec = codec
        self.oauth = oauth
        self.access_cache = AccessCache(oauth) if oauth is not None else None
        self._clock = clock
        self._used_states: OrderedDict[str, None] = OrderedDict()
        self._refreshes: dict[str, tuple[float, asyncio.Future[UserToken]]] = {}

    # The guard --------------------------------------------------------------------------

    def guard(self, kind: Kind, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint: `handler(request, viewer)` for a signed-in person, else the answer
        that fits `kind` (a page goes to GitHub to sign in; the API answers 401)."""

        async def endpoint(request: Request) -> Response:
            if self.oauth is None:
                return self._not_enabled(request, kind)
            try:
                viewer = await self.viewer(request)
            except GitHubUnavailable as exc:
                log.warning("dashboard.github_unavailable", error=str(exc))
                return self._unavailable(kind)
            if viewer is None:
                return self._signed_out(request, kind)
            response = await handler(request, viewer)
            if viewer.refreshed:
                self._codec.save(response, viewer.session, secure=self.secure(request))
            return response

        return endpoint

    async def viewer(self, request: Request) -> Viewer | None:
        """The signed-in person, their token refreshed if due; None when they must sign in."""
        assert self.oauth is not None
        assert self.access_cache is not None
        session = self._codec.load(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        refreshed = False
        if session.needs_refresh(self._clock()):
            token = await self._refresh(session)
            if token is None:
                return None
            session, refreshed = session.with_token(token), True
        try:
            access = await self.access_cache.access(session.token.access_token)
        except TokenRejected:
            return None
        return Viewer(session, access, refreshed)

    def secure(self, request: Request) -> bool:
        public = self._settings.public_url or ""
        return public.startswith("https://") or request.url.scheme == "https"

    def public_base(self, request: Request) -> str:
        return (self._settings.public_url or str(request.base_url)).rstrip("/")

    # Routes -----------------------------------------------------------------------------

    def sign_in(self, request: Request) -> Response:
        """Off to GitHub, remembering the state and this page."""
        assert self.oauth is not None
        state = secrets.token_urlsafe(32)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        url = self.oauth.authorize_url(
            state=state, redirect_uri=self.public_base(request) + CALLBACK_PATH
        )
        response = RedirectResponse(url, status_code=303)
        self._codec.save_sign_in(
            response, SignIn(state, safe_next(here)), secure=self.secure(request)
        )
        return response

    async def callback(self, request: Request) -> Response:
        if self.oauth is None:
            return self._not_enabled(request, "page")
        query = request.query_params
        sign_in = self._codec.load_sign_in(request.cookies.get(SIGN_IN_COOKIE))
        state = query.get("state") or ""
        if (
            sign_in is None
            or not secrets.compare_digest(state.encode(), sign_in.state.encode())
            or not self._first_use(state)
        ):
            return self._message(
                "Sign-in expired",
                "This sign-in link is not valid any more (it was used, is older than ten "
                "minutes, or was started in another browser).",
                status=400,
            )
        if query.get("error"):
            return self._message(
                "Not signed in",
                f"GitHub did not sign you in: {query.get('error')} "
                f"{query.get('error_description') or ''}".strip(),
                status=403,
            )
        try:
            token = await self.oauth.exchange_code(
                query.get("code") or "", redirect_uri=self.public_base(request) + CALLBACK_PATH
            )
            user = await self.oauth.user(token.access_token)
        except OAuthError as exc:
            log.warning("dashboard.sign_in_refused", error=exc.code)
            return self._message(
                "Not signed in", f"GitHub refused the sign-in ({exc.code}).", status=400
            )
        except (GitHubUnavailable, TokenRejected):
            return self._unavailable("page")
        session = new_session(user.login, user.id, token, self._clock())
        log.info("dashboard.signed_in", login=user.login)
        response = RedirectResponse(sign_in.next_path, status_code=303)
        secure = self.secure(request)
        self._codec.save(response, session, secure=secure)
        self._codec.clear_sign_in(response, secure=secure)
        return response

    async def logout(self, request: Request) -> Response:
        session = self._codec.load(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return self._message("Signed out", "You are signed out.", link=("Sign in", "/"))
        if request.method == "GET":
            return self._renderer.page(
                "logout.html", login=session.login, csrf=session.csrf, signed_in=None
            )
        form = await request.form()
        if not csrf.valid_post(request, session, form.get(csrf.FIELD), self._settings.public_url):
            return self._message("Not signed out", "This form has expired; reload it.", status=403)
        if self.oauth is not None:
            try:
                await self.oauth.revoke(session.token.access_token)
            except Exception as exc:  # signing out must not depend on GitHub answering
                log.warning("dashboard.revoke_failed", error=type(exc).__name__)
        if self.access_cache is not None:
            self.access_cache.forget(session.token.access_token)
        log.info("dashboard.signed_out", login=session.login)
        response = self._message("Signed out", "You are signed out.", link=("Sign in", "/"))
        self._codec.clear(response, secure=self.secure(request))
        return response

    # Helpers ----------------------------------------------------------------------------

    async def _refresh(self, session: Session) -> UserToken | None:
        """A new token pair, or None when the session cannot be renewed (sign in again)."""
        assert self.oauth is not None
        old = session.token
        now = self._clock()
        if not old.refresh_token or (old.refresh_expires_at or now + 1) <= now:
            return None
        key = hashlib.sha256(old.refresh_token.encode()).hexdigest()
        for stale in [k for k, (until, _) in self._refreshes.items() if until < now]:
            del self._refreshes[stale]
        shared = self._refreshes.get(key)
        if shared is None:
            future = asyncio.ensure_future(self.oauth.refresh(old.refresh_token))
            shared = (now + REFRESH_SHARED_FOR, future)
            self._refreshes[key] = shared
        try:
            return await asyncio.shield(shared[1])
        except OAuthError as exc:
            log.info("dashboard.refresh_refused", login=session.login, error=exc.code)
            return None
        except GitHubUnavailable:
            if self._refreshes.get(key) is shared:
                del self._refreshes[key]  # GitHub may not have seen it: the next request tries
            raise

    def _first_use(self, state: str) -> bool:
        if state in self._used_states:
            return False
        self._used_states[state] = None
        while len(self._used_states) > MAX_USED_STATES:
            self._used_states.popitem(last=False)
        return True

    def _signed_out(self, request: Request, kind: Kind) -> Response:
        if kind == "api":
            return json_answer({"error": "sign in first, at /"}, 401)
        if kind == "action" or request.method != "GET":
            return self._message("Sign in first", "Your session has ended.", 401, ("Sign in", "/"))
        return self.sign_in(request)

    def _not_enabled(self, request: Request, kind: Kind) -> Response:
        if kind == "api":
            return json_answer({"error": "the dashboard is not enabled on this server"}, 503)
        callback = self.public_base(request) + CALLBACK_PATH
        return self._renderer.page("enable.html", callback=callback, signed_in=None)

    def _unavailable(self, kind: Kind) -> Response:
        if kind == "api":
            return json_answer({"error": "GitHub cannot be reached; try again shortly"}, 503)
        return self._message(
            "GitHub unavailable", "GitHub cannot be reached just now; try again shortly.", 503
        )

    def _message(
        self, title: str, text: str, status: int = 200, link: tuple[str, str] | None = None
    ) -> Response:
        return self._renderer.page(
            "message.html", http_status=status, title=title, text=text, link=link, signed_in=None
        )
