"""Sealed cookies: what one holds cannot be read, altered or reused for something else."""

from __future__ import annotations

from starlette.responses import Response

from app.web.oauth import UserToken
from app.web.sessions import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SIGN_IN_COOKIE,
    SessionCodec,
    SignIn,
    new_session,
    safe_next,
)

TOKEN = UserToken("ghu_secret_access", 1_000_000.0, "ghr_secret_refresh", 2_000_000.0)


def cookie_of(response: Response, name: str) -> str:
    for key, value in response.raw_headers:
        if key == b"set-cookie" and value.decode().startswith(f"{name}="):
            return value.decode()
    raise AssertionError(f"no {name} cookie")


def value_of(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def test_a_session_round_trips_sealed_and_with_the_cookie_flags() -> None:
    codec = SessionCodec("s3cret", clock=lambda: 1000.0)
    session = new_session("octocat", 1, TOKEN, 1000.0)
    response = Response()
    codec.save(response, session, secure=True)

    header = cookie_of(response, SESSION_COOKIE)
    assert "HttpOnly" in header
    assert "SameSite=lax" in header
    assert "Secure" in header
    assert f"Max-Age={SESSION_MAX_AGE}" in header
    sealed = value_of(header)
    assert "ghu_secret_access" not in sealed
    assert "octocat" not in sealed  # sealed, not only signed
    assert codec.load(sealed) == session
    plain = Response()
    codec.save(plain, session, secure=False)
    assert "Secure" not in cookie_of(plain, SESSION_COOKIE)


def test_a_tampered_foreign_or_expired_cookie_is_no_session() -> None:
    now = [1000.0]
    codec = SessionCodec("s3cret", clock=lambda: now[0])
    response = Response()
    codec.save(response, new_session("octocat", 1, TOKEN, 1000.0), secure=False)
    sealed = value_of(cookie_of(response, SESSION_COOKIE))

    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    assert codec.load(flipped) is None
    assert SessionCodec("another secret", clock=lambda: now[0]).load(sealed) is None
    assert codec.load("") is None
    assert codec.load("not a token") is None
    now[0] += SESSION_MAX_AGE + 61
    assert codec.load(sealed) is None


def test_the_sign_in_cookie_cannot_pass_for_a_session() -> None:
    codec = SessionCodec("s3cret", clock=lambda: 1000.0)
    response = Response()
    codec.save_sign_in(response, SignIn("state-1", "/runs/x"), secure=False)
    sealed = value_of(cookie_of(response, SIGN_IN_COOKIE))

    assert codec.load_sign_in(sealed) == SignIn("state-1", "/runs/x")
    assert codec.load(sealed) is None


def test_a_token_is_refreshed_five_minutes_before_it_expires() -> None:
    session = new_session("octocat", 1, TOKEN, 0.0)
    assert not session.needs_refresh(1_000_000.0 - 301)
    assert session.needs_refresh(1_000_000.0 - 299)
    lasting = new_session("octocat", 1, UserToken("ghu_x", None, None, None), 0.0)
    assert not lasting.needs_refresh(10**12)


def test_only_local_paths_are_returned_to_after_signing_in() -> None:
    assert safe_next("/runs/abc?x=1") == "/runs/abc?x=1"
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/"
