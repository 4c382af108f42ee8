"""Sessions in cookies: who is signed in, with their GitHub token, sealed by the server.

A session is the whole state (no table): the login, the user's token pair, a CSRF token and
when it began. The cookie is a Fernet token (AES with an HMAC-SHA256 signature) under a key
derived from OPEN_SWE_SESSION_SECRET: signed, so nobody can forge or alter one, and sealed,
so the GitHub token inside cannot be read from it either. Any process holding the secret can
read it, so several web processes serve the same people. HttpOnly (scripts never see it),
SameSite=Lax (other sites' forms do not carry it), Secure over https.

The sign-in cookie carries the `state` sent to GitHub and where to go afterwards, sealed under
another key, for ten minutes: the callback accepts only the state of the browser that left.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.responses import Response

from app.web.oauth import UserToken

SESSION_COOKIE = "open_swe_session"
SIGN_IN_COOKIE = "open_swe_sign_in"
SESSION_MAX_AGE = 7 * 24 * 3600  # renewed whenever the token is refreshed (every 8 hours)
SIGN_IN_MAX_AGE = 600  # GitHub's codes last ten minutes
REFRESH_MARGIN = 300.0  # refresh a token this many seconds before it expires


@dataclass(frozen=True, slots=True)
class Session:
    login: str
    user_id: int
    token: UserToken
    csrf: str
    signed_in_at: float

    def needs_refresh(self, now: float) -> bool:
        expires = self.token.expires_at
        return expires is not None and expires - now < REFRESH_MARGIN

    def with_token(self, token: UserToken) -> Session:
        return Session(self.login, self.user_id, token, self.csrf, self.signed_in_at)


@dataclass(frozen=True, slots=True)
class SignIn:
    """A sign-in under way: the state sent to GitHub and the page to return to."""

    state: str
    next_path: str


def new_session(login: str, user_id: int, token: UserToken, now: float) -> Session:
    return Session(login, user_id, token, secrets.token_urlsafe(32), now)


def safe_next(path: str | None) -> str:
    """A local path to return to after signing in; anything else (another site) is `/`."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


class SessionCodec:
    """Seals and opens the two cookies, and sets them on responses."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._session = Fernet(_derive(secret, b"open-swe dashboard session v1"))
        self._sign_in = Fernet(_derive(secret, b"open-swe sign-in state v1"))
        self._clock = clock

    # Sessions -------------------------------------------------------------------------

    def load(self, cookie: str | None) -> Session | None:
        data = self._open(self._session, cookie, SESSION_MAX_AGE)
        try:
            token = UserToken(**data.pop("token"))
            return Session(token=token, **data)
        except (TypeError, KeyError, AttributeError):
            return None

    def save(self, response: Response, session: Session, *, secure: bool) -> None:
        value = self._seal(self._session, asdict(session))
        _set(response, SESSION_COOKIE, value, SESSION_MAX_AGE, secure)

    def clear(self, response: Response, *, secure: bool) -> None:
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure)

    # The sign-in under way ------------------------------------------------------------

    def load_sign_in(self, cookie: str | None) -> SignIn | None:
        data = self._open(self._sign_in, cookie, SIGN_IN_MAX_AGE)
        try:
            return SignIn(**data)
        except TypeError:
            return None

    def save_sign_in(self, response: Response, sign_in: SignIn, *, secure: bool) -> None:
        value = self._seal(self._sign_in, asdict(sign_in))
        _set(response, SIGN_IN_COOKIE, value, SIGN_IN_MAX_AGE, secure)

    def clear_sign_in(self, response: Response, *, secure: bool) -> None:
        response.delete_cookie(SIGN_IN_COOKIE, httponly=True, samesite="lax", secure=secure)

    # ----------------------------------------------------------------------------------

    def _seal(self, fernet: Fernet, data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return fernet.encrypt_at_time(raw, int(self._clock())).decode()

    def _open(self, fernet: Fernet, cookie: str | None, max_age: int) -> dict[str, Any]:
        if not cookie:
            return {}
        try:
            raw = fernet.decrypt_at_time(cookie.encode(), max_age, int(self._clock()))
            data = json.loads(raw)
        except (InvalidToken, ValueError, UnicodeError):
            return {}
        return data if isinstance(data, dict) else {}


def _derive(secret: str, purpose: bytes) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(key)


def _set(response: Response, name: str, value: str, max_age: int, secure: bool) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
