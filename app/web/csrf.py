"""CSRF protection for every form post: a per-session token (synchroniser) and the Origin.

The token lives in the sealed session cookie and in a hidden field of each form; a post is
accepted only when they match. Browsers also send `Origin` with a post: when present, it
must be this server's. The session cookie is SameSite=Lax besides, so other sites' forms do
not even carry it.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from app.web.sessions import Session

FIELD = "csrf"


def valid_post(request: Request, session: Session, token: object, public_url: str | None) -> bool:
    if not isinstance(token, str) or not secrets.compare_digest(
        token.encode(), session.csrf.encode()
    ):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin in _own_origins(request, public_url)


def _own_origins(request: Request, public_url: str | None) -> set[str]:
    origins = {_origin(str(request.base_url))}
    if public_url:
        origins.add(_origin(public_url))
    return origins


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
