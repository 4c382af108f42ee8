"""A loopback fake of GitHub's REST API for tests: real HTTP, real JWT and token checks.

`FakeGitHub` is a small Starlette app served by uvicorn on 127.0.0.1 (port 0) in a background
thread. PyGithub (or anything else) reaches it through `gh.url`, which carries a path prefix
(`/api/v3` by default, like GitHub Enterprise) so prefix handling is exercised too.

    with FakeGitHub() as gh:                       # generates an RSA key pair
        gh.add_installation(7, "acme", ["acme/widgets"])
        gh.add_repo("acme/widgets", clone_url="file:///tmp/x/widgets.git")
        ... GitHubApp(gh.app_id, gh.private_key_pem, gh.url, throttle=False) ...
        assert [c.path for c in gh.calls_matching("POST", "/repos/*/issues/*/reactions")] == [...]

What it models (in memory, seeded and inspected by tests through the attributes and `add_*`
helpers): installations, repos, collaborator permissions, labels, issues and pull requests (one
number sequence per repo, like GitHub), issue comments, review comments, reactions, requested
reviewers, installation tokens and manifest conversions. Answers follow the shapes of GitHub's
OpenAPI description (shared/fixtures/github/rest-openapi-subset.json); API URLs start with
`gh.url`, web URLs (`html_url`) with `gh.web_url` (the server's origin, standing in for
https://github.com).

Every request is recorded in `gh.calls` (method, path without prefix, query, JSON body, auth kind,
status). `gh.fail(...)` / `gh.rate_limit(...)` inject faults for the next N matching calls.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import functools
import itertools
import json
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.github_checks import FakeChecks, PlainText
from tests.fakes.github_hooks import FakeHook
from tests.fakes.github_oauth import FakeOAuth

AuthKind = Literal["none", "jwt", "token", "user", "client", "invalid"]
Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
REACTIONS = {"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}
DOCS = "https://docs.github.com/rest"


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """A fresh (private PEM, public PEM) pair, as GitHub hands out for an App."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@functools.cache
def shared_keypair() -> tuple[str, str]:
    """One key pair per test session: key generation costs ~0.1 s, most tests need any key."""
    return generate_rsa_keypair()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# State ----------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str  # without the base URL's prefix, decoded: "/repos/acme/widgets/issues/1"
    query: dict[str, str]
    json: Any
    auth: AuthKind
    token: str | None = None  # the installation token used, if any
    status: int = 0  # filled in once answered
    user: str | None = None  # whose user token (ghu_) was used, if one


@dataclass
class Fault:
    method: str
    pattern: str  # fnmatch pattern on Call.path
    status: int
    remaining: int
    headers: dict[str, str]
    body: Any
    applied: bool = False  # the call takes effect; only its answer is the failure


@dataclass
class Installation:
    id: int
    account: str
    repos: list[str]  # full names
    account_type: Literal["User", "Organization"] = "Organization"
    suspended: bool = False


@dataclass
class TokenGrant:
    token: str
    installation_id: int
    repositories: list[str] | None  # names (not full names) the token is scoped to
    expires_at: datetime


@dataclass
class Repo:
    id: int
    full_name: str
    default_branch: str = "main"
    clone_url: str | None = None
    private: bool = True
    fork: bool = False
    permissions: dict[str, str] = field(default_factory=dict)  # login -> permission
    labels: dict[str, Label] = field(default_factory=dict)  # lower-case name -> label
    next_number: int = 1

    @property
    def owner(self) -> str:
        return self.full_name.split("/")[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/")[1]


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Issue:
    id: int
    repo: str
    number: int
    title: str
    body: str | None
    user: str
    labels: list[str] = field(default_factory=list)  # names, as created
    state: Literal["open", "closed"] = "open"
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)


@dataclass
class PullRequest:
    issue: Issue
    head_ref: str
    base_ref: str
    head_repo: str  # full name; differs from issue.repo for a fork PR
    head_sha: str = "0" * 40
    draft: bool = False
    requested_reviewers: list[str] = field(default_factory=list)
    files: list[tuple[str, str, int, int]] = field(default_factory=list)
    live_files: bool = False  # files and patches from the bare clone (base...head), not `files`


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    body: str
    user: str
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)


@dataclass
class ReviewComment:
    id: int
    repo: str
    pull_number: int
    body: str
    user: str
    path: str = "README.md"
    line: int = 1
    in_reply_to_id: int | None = None
    created_at: datetime = field(default_factory=_now)


@dataclass
class Reaction:
    id: int
    repo: str
    target: tuple[str, int]  # ("issue", number) | ("issue_comment", id) | ("review_comment", id)
    content: str
    user: str


class HTTPError(Exception):
    def __init__(
        self, status: int, message: str, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "documentation_url": DOCS}
        if errors:
            self.body["errors"] = errors
        self.body["status"] = str(status)


def _not_found() -> HTTPError:
    return HTTPError(404, "Not Found")


def _validation(resource: str, field_: str, code: str, message: str | None = None) -> HTTPError:
    error = {"resource": resource, "field": field_, "code": code}
    if message:
        error["message"] = message
    return HTTPError(422, "Validation Failed", errors=[error])


# The server -----------------------------------------------------------------------------


class _QuickServer(uvicorn.Server):
    """uvicorn polls every 0.1 s and pauses on shutdown; a fake per test cannot afford that."""

    _loop: asyncio.AbstractEventLoop | None = None
    _stopped: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        if not self.should_exit:  # else stop() came before the event existed
            await self._stopped.wait()

    def request_stop(self) -> None:
        self.should_exit = True
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        for server in self.servers:
            await server.wait_closed()


Handler = Callable[["Ctx"], Any]


@dataclass
class Ctx:
    """One request as a handler sees it."""

    params: dict[str, str]
    query: dict[str, str]
    body: Any
    grant: TokenGrant | None
    user: str | None = None  # the user a user token (ghu_) belongs to


@dataclass
class _Endpoint:
    method: str
    template: str  # "/repos/{owner}/{repo}/issues/{number}"
    auth: Literal["jwt", "token", "user", "client", "none", "any"]
    handler: Handler

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        want = self.template.strip("/").split("/")
        got = path.strip("/").split("/")
        if len(want) != len(got):
            return None
        params: dict[str, str] = {}
        for w, g in zip(want, got, strict=True):
            if w.startswith("{"):
                if not g:
                    return None
                params[w[1:-1]] = g
            elif w != g:
                return None
        return params


class FakeGitHub:
    """The fake. Use as a context manager (starts and stops the server) or `start()`/`stop()`."""

    def __init__(
        self,
        *,
        app_id: int = 4242,
        app_slug: str = "open-swe-test",
        private_key_pem: str | None = None,
        public_key_pem: str | None = None,
        prefix: str = "/api/v3",
        token_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        if public_key_pem is None:
            private_key_pem, public_key_pem = (
                (private_key_pem, None) if private_key_pem else shared_keypair()
            )
            if public_key_pem is None:
                raise ValueError("pass public_key_pem with private_key_pem")
        self.app_id = app_id
        self.app_slug = app_slug
        self.private_key_pem = private_key_pem  # None when the test only gave the public key
        self.public_key_pem = public_key_pem
        public_key = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("GitHub Apps sign with RS256: pass an RSA public key")
        self._public_key = public_key
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.token_ttl = token_ttl

        self.installations: dict[int, Installation] = {}
        self.repos: dict[str, Repo] = {}
        self.issues: dict[tuple[str, int], Issue] = {}
        self.pulls: dict[tuple[str, int], PullRequest] = {}
        self.comments: dict[int, Comment] = {}
        self.review_comments: dict[int, ReviewComment] = {}
        self.reactions: list[Reaction] = []
        self.tokens: dict[str, TokenGrant] = {}
        self.manifest_conversions: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.errors: list[Exception] = []  # exceptions raised by handlers (bugs in the fake)

        self._ids = itertools.count(1000)
        self._user_ids: dict[str, int] = {}
        self._lock = threading.RLock()
        self._server: _QuickServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.oauth = FakeOAuth(self)  # the App's user authorization (github_oauth.py)
        self.hook = FakeHook(self)  # the App's webhook deliveries (github_hooks.py)
        self.checks = FakeChecks(self)  # check suites and runs, Actions (github_checks.py)
        self._endpoints = self._build_endpoints()

    # Lifecycle --------------------------------------------------------------------------

    @property
    def web_url(self) -> str:
        """The server's origin: stands in for https://github.com in html_url fields."""
        if not self._port:
            raise RuntimeError("FakeGitHub is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The API base URL to give PyGithub (`base_url`), e.g. http://127.0.0.1:PORT/api/v3."""
        return self.web_url + self.prefix

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    def start(self) -> FakeGitHub:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # protocol says TCP; without it every keep-alive request waits ~40 ms (delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._dispatch,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                )
            ]
        )
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", ws="none", access_log=False
        )
        self._server = _QuickServer(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-github"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake GitHub did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.request_stop()
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Seeding ----------------------------------------------------------------------------

    def add_installation(
        self,
        installation_id: int,
        account: str,
        repos: list[str] | None = None,
        *,
        account_type: Literal["User", "Organization"] = "Organization",
    ) -> Installation:
        """An installation on `account` with access to `repos` (full names; created if new)."""
        with self._lock:
            names = list(repos or [])
            for name in names:
                if name not in self.repos:
                    self.add_repo(name)
            inst = Installation(installation_id, account, names, account_type)
            self.installations[installation_id] = inst
            return inst

    def add_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        clone_url: str | Path | None = None,
        private: bool = True,
        fork: bool = False,
    ) -> Repo:
        with self._lock:
            url = Path(clone_url).resolve().as_uri() if isinstance(clone_url, Path) else clone_url
            repo = Repo(next(self._ids), full_name, default_branch, url, private, fork)
            self.repos[full_name] = repo
            return repo

    def set_permission(self, full_name: str, login: str, permission: Permission) -> None:
        with self._lock:
            self.repos[full_name].permissions[login] = permission

    def add_label(
        self, full_name: str, name: str, *, color: str = "ededed", description: str | None = None
    ) -> Label:
        with self._lock:
            label = Label(next(self._ids), name, color, description)
            self.repos[full_name].labels[name.lower()] = label
            return label

    def add_issue(
        self,
        full_name: str,
        *,
        title: str = "An issue",
        body: str | None = "",
        user: str = "octocat",
        labels: list[str] | None = None,
        state: Literal["open", "closed"] = "open",
    ) -> Issue:
        with self._lock:
            repo = self.repos[full_name]
            for name in labels or []:
                if name.lower() not in repo.labels:
                    self.add_label(full_name, name)
            issue = Issue(
                next(self._ids),
                full_name,
                repo.next_number,
                title,
                body,
                user,
                list(labels or []),
                state,
            )
            repo.next_number += 1
            self.issues[(full_name, issue.number)] = issue
            return issue

    def add_pull(
        self,
        full_name: str,
        *,
        head: str,
        base: str | None = None,
        title: str = "A pull request",
        body: str | None = "",
        user: str = "octocat",
        draft: bool = False,
        head_repo: str | None = None,
        files: list[tuple[str, str, int, int]] | None = None,
        state: Literal["open", "closed"] = "open",
    ) -> PullRequest:
        """A PR from branch `head` (of `head_repo`, default the repo itself; a fork if not)."""
        with self._lock:
            issue = self.add_issue(full_name, title=title, body=body, user=user, state=state)
            base_ref = base or self.repos[full_name].default_branch
            pull = PullRequest(
                issue, head, base_ref, head_repo or full_name, draft=draft, files=list(files or [])
            )
            self.pulls[(full_name, issue.number)] = pull
            return pull

    def add_comment(
        self, full_name: str, number: int, body: str, *, user: str = "octocat"
    ) -> Comment:
        with self._lock:
            if (full_name, number) not in self.issues:
                raise KeyError(f"no issue {full_name}#{number}")
            comment = Comment(next(self._ids), full_name, number, body, user)
            self.comments[comment.id] = comment
            return comment

    def add_review_comment(
        self,
        full_name: str,
        pull_number: int,
        body: str,
        *,
        user: str = "octocat",
        path: str = "README.md",
        line: int = 1,
        in_reply_to_id: int | None = None,
    ) -> ReviewComment:
        with self._lock:
            if (full_name, pull_number) not in self.pulls:
                raise KeyError(f"no pull {full_name}#{pull_number}")
            comment = ReviewComment(
                next(self._ids), full_name, pull_number, body, user, path, line, in_reply_to_id
            )
            self.review_comments[comment.id] = comment
            return comment

    def add_manifest_conversion(
        self,
        code: str,
        *,
        app_id: int | None = None,
        slug: str | None = None,
        pem: str | None = None,
        webhook_secret: str = "whsec-from-manifest",  # noqa: S107
        client_id: str = "Iv1.fake0000000000",
        client_secret: str = "fake-client-secret",  # noqa: S107
        name: str = "open-swe",
    ) -> dict[str, Any]:
        """Make `POST /app-manifests/{code}/conversions` answer once with these credentials."""
        with self._lock:
            app_id = app_id or self.app_id
            slug = slug or self.app_slug
            body = self._app_json(app_id, slug, name) | {
                "client_id": client_id,
                "client_secret": client_secret,
                "webhook_secret": webhook_secret,
                "pem": pem or (self.private_key_pem or ""),
            }
            self.manifest_conversions[code] = body
            return body

    def issue_token(
        self,
        installation_id: int,
        repositories: list[str] | None = None,
        *,
        ttl: timedelta | None = None,
    ) -> TokenGrant:
        """Mint a token directly (for tests of code that is handed a token)."""
        with self._lock:
            grant = TokenGrant(
                f"ghs_{secrets.token_urlsafe(27)}",
                installation_id,
                repositories,
                _now() + (ttl or self.token_ttl),
            )
            self.tokens[grant.token] = grant
            return grant

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (401 on use)."""
        with self._lock:
            for grant in self.tokens.values():
                grant.expires_at = _now() - timedelta(seconds=1)

    # Faults and inspection --------------------------------------------------------------

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str = "Server Error",
        body: Any = None,
        applied: bool = False,
    ) -> None:
        """The next `times` calls matching (method, fnmatch pattern on the path) get `status`.

        The answer is `{"message": message}`, or `body` when given (e.g. a stale list).
        `applied=True`: each call still takes effect, only the answer is lost (GitHub acted,
        then a proxy answered 502), which is what makes blind retries of POSTs duplicate.
        """
        payload = body if body is not None else {"message": message, "documentation_url": DOCS}
        with self._lock:
            self.faults.append(
                Fault(
                    method.upper(),
                    pattern,
                    status,
                    times,
                    dict(headers or {}),
                    payload,
                    applied,
                )
            )

    def rate_limit(
        self,
        method: str,
        pattern: str,
        *,
        status: Literal[403, 429] = 403,
        retry_after: float | None = None,
        reset_in: float | None = None,
        times: int = 1,
    ) -> None:
        """Rate-limit the next calls: secondary (Retry-After) or primary (X-RateLimit-Reset)."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
            message = "You have exceeded a secondary rate limit. Please wait a few minutes."
        else:
            reset = int(time.time() + (reset_in if reset_in is not None else 3600))
            headers |= {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
            message = "API rate limit exceeded for installation ID 1."
        self.fail(method, pattern, status, times=times, headers=headers, message=message)

    def calls_matching(self, method: str, pattern: str) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method == method.upper() and fnmatch.fnmatchcase(c.path, pattern)
            ]

    def reactions_on(self, full_name: str, kind: str, target_id: int) -> list[Reaction]:
        with self._lock:
            return [
                r for r in self.reactions if r.repo == full_name and r.target == (kind, target_id)
            ]

    # Dispatch ---------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        if path.startswith("/login/oauth/"):  # the web flow, outside the API prefix
            return await self._oauth_web(request, path)
        if self.prefix:
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                return JSONResponse({"message": "Not Found", "documentation_url": DOCS}, 404)
            path = path[len(self.prefix) :] or "/"
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = "<invalid json>"
        with self._lock:
            auth, grant, auth_error = self._authenticate(request.headers.get("authorization"))
            call = Call(
                request.method,
                path,
                dict(request.query_params),
                body,
                auth,
                grant.token if grant else None,
                user=self._user_login(request.headers.get("authorization"))
                if auth == "user"
                else None,
            )
            self.calls.append(call)
            status, payload, headers = self._answer(call, grant, auth_error)
            call.status = status
        headers = self._rate_headers() | headers  # a fault's own headers win
        if payload is None:
            return Response(status_code=status, headers=headers)
        if isinstance(payload, PlainText):
            return Response(str(payload), status, headers=headers, media_type="text/plain")
        return JSONResponse(payload, status, headers=headers)

    def _answer(
        self, call: Call, grant: TokenGrant | None, auth_error: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        for fault in self.faults:
            if (
                fault.remaining > 0
                and fault.method == call.method
                and fnmatch.fnmatchcase(call.path, fault.pattern)
            ):
                fault.remaining -= 1
                if fault.applied:
                    self._handle(call, grant, auth_error)
                return fault.status, fault.body, dict(fault.headers)
        return self._handle(call, grant, auth_error)

    def _handle(
        self, call: Call, grant: TokenGrant | None, auth_error: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if call.json == "<invalid json>":
            return 400, {"message": "Problems parsing JSON", "documentation_url": DOCS}, {}
        for endpoint in self._endpoints:
            params = endpoint.match(call.method, call.path)
            if params is None:
                continue
            try:
                self._check_auth(endpoint.auth, call.auth, auth_error)
                result = endpoint.handler(Ctx(params, call.query, call.json, grant, call.user))
            except HTTPError as exc:
                return exc.status, exc.body, {}
            except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test
                self.errors.append(exc)
                return 500, {"message": f"fake GitHub bug: {exc!r}"}, {}
            if isinstance(result, tuple) and len(result) == 3:  # with headers (e.g. Link)
                return result
            status, payload = result if isinstance(result, tuple) else (200, result)
            return status, payload, {}
        return 404, {"message": "Not Found", "documentation_url": DOCS}, {}

    async def _oauth_web(self, request: Request, path: str) -> Response:
        params = dict(request.query_params)
        raw = await request.body()
        if raw.strip():
            if "json" in request.headers.get("content-type", ""):
                data = json.loads(raw)
                params |= {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            else:
                params |= dict((await request.form()).items())  # type: ignore[arg-type]
        with self._lock:
            call = Call(request.method, path, dict(request.query_params), params, "none")
            self.calls.append(call)
            status, payload, headers = self.oauth.web(
                request.method, path, params, request.headers.get("accept", "")
            )
            call.status = status
        if isinstance(payload, dict):
            return JSONResponse(payload, status, headers=headers)
        return Response(payload, status_code=status, headers=headers)

    def _user_login(self, header: str | None) -> str | None:
        _, _, credential = (header or "").partition(" ")
        return self.oauth.user_for(credential.strip())

    def _rate_headers(self) -> dict[str, str]:
        reset = str(int(time.time()) + 3600)
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": reset,
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
            "X-GitHub-Request-Id": secrets.token_hex(8).upper(),
        }

    def _authenticate(self, header: str | None) -> tuple[AuthKind, TokenGrant | None, str | None]:
        if not header:
            return "none", None, None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "basic":  # the App's client credentials (revoking user tokens)
            try:
                username, _, password = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                return "invalid", None, "Bad credentials"
            if self.oauth.is_client(username, password):
                return "client", None, None
            return "invalid", None, "Bad credentials"
        if scheme.lower() not in {"bearer", "token"} or not credential:
            return "invalid", None, "Bad credentials"
        if scheme.lower() == "bearer" and credential.count(".") == 2:
            error = self._check_jwt(credential)
            return ("invalid", None, error) if error else ("jwt", None, None)
        if self.oauth.user_for(credential) is not None:
            return "user", None, None
        grant = self.tokens.get(credential)
        if grant is None or grant.expires_at <= _now():
            return "invalid", None, "Bad credentials"
        return "token", grant, None

    def _check_jwt(self, token: str) -> str | None:
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
        except jwt.PyJWTError:
            return "A JSON web token could not be decoded"
        now = time.time()
        if str(claims["iss"]) != str(self.app_id):
            return "'Issuer' claim ('iss') must be an Integer"
        if claims["iat"] > now + 1:
            return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
        if claims["exp"] > now + 600 + 1:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    @staticmethod
    def _check_auth(required: str, auth: AuthKind, error: str | None) -> None:
        if required in {"none", "any"} and auth != "invalid":
            return
        if auth == "invalid":
            raise HTTPError(401, error or "Bad credentials")
        if required == "jwt" and auth != "jwt":
            raise HTTPError(401, "A JSON web token could not be decoded")
        if required == "token" and auth != "token":
            raise HTTPError(401, "Bad credentials" if auth == "none" else "Requires authentication")
        if required == "user" and auth != "user":
            raise HTTPError(401, "Requires authentication")
        if required == "client" and auth != "client":
            raise HTTPError(404, "Not Found")  # GitHub hides it without the client's credentials

    # Access helpers ---------------------------------------------------------------------

    def _repo(self, ctx: Ctx) -> Repo:
        """The repo in the path, if the token may see it (GitHub hides the rest behind 404)."""
        full_name = f"{ctx.params['owner']}/{ctx.params['repo']}"
        repo = self.repos.get(full_name)
        grant = ctx.grant
        if repo is None or grant is None:
            raise _not_found()
        inst = self.installations.get(grant.installation_id)
        if inst is None or full_name not in inst.repos:
            raise _not_found()
        if grant.repositories is not None and repo.name not in grant.repositories:
            raise _not_found()
        return repo

    def _issue(self, ctx: Ctx) -> Issue:
        repo = self._repo(ctx)
        issue = self.issues.get((repo.full_name, _int(ctx.params["number"])))
        if issue is None:
            raise _not_found()
        return issue

    def _pull(self, ctx: Ctx) -> PullRequest:
        repo = self._repo(ctx)
        pull = self.pulls.get((repo.full_name, _int(ctx.params["number"])))
        if pull is None:
            raise _not_found()
        return pull

    def _actor(self, ctx: Ctx) -> str:
        return self.bot_login if ctx.grant else "octocat"

    def _ensure_label(self, repo: Repo, name: str) -> Label:
        label = repo.labels.get(name.lower())
        return label if label else self.add_label(repo.full_name, name)

    def _branch_sha(self, full_name: str, branch: str) -> str | None:
        """The branch's head in the repo's bare clone, or a placeholder if it has none on disk."""
        repo = self.repos.get(full_name)
        if repo is None or not repo.clone_url:
            return "0" * 40
        parsed = urlparse(repo.clone_url)
        if parsed.scheme not in {"file", ""}:
            return "0" * 40
        out = subprocess.run(
            [
                "git",
                "--git-dir",
                parsed.path,
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}^{{commit}}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() if out.returncode == 0 else None

    def _pull_head_sha(self, pull: PullRequest) -> str:
        """The head as seeded, else the head branch's commit in the bare clone (pushes move it)."""
        if pull.head_sha != "0" * 40 or pull.head_repo not in self.repos:
            return pull.head_sha
        return self._branch_sha(pull.head_repo, pull.head_ref) or pull.head_sha

    def _file_at(self, full_name: str, ref: str, path: str) -> str | None:
        """A file's text at `ref` in the repo's bare clone; None when absent."""
        repo = self.repos.get(full_name)
        if repo is None or not repo.clone_url:
            return None
        parsed = urlparse(repo.clone_url)
        if parsed.scheme not in {"file", ""}:
            return None
        out = subprocess.run(
            ["git", "--git-dir", parsed.path, "show", f"{ref}:{path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout if out.returncode == 0 else None

    # JSON builders (shapes from GitHub's OpenAPI examples) ------------------------------

    def _user_json(self, login: str) -> dict[str, Any]:
        uid = self._user_ids.setdefault(login, 100 + len(self._user_ids))
        api = f"{self.url}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_{uid}",
            "avatar_url": f"{self.web_url}/avatars/{uid}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.web_url}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def _app_json(self, app_id: int, slug: str, name: str) -> dict[str, Any]:
        now = _iso(_now())
        return {
            "id": app_id,
            "slug": slug,
            "node_id": f"A_{app_id}",
            "client_id": "Iv1.fake0000000000",
            "owner": self._user_json("octo-org"),
            "name": name,
            "description": "",
            "external_url": "https://example.com",
            "html_url": f"{self.web_url}/apps/{slug}",
            "created_at": now,
            "updated_at": now,
            "permissions": {
                "contents": "write",
                "issues": "write",
                "pull_requests": "write",
                "metadata": "read",
            },
            "events": ["issues", "issue_comment", "pull_request"],
            "installations_count": len(self.installations),
        }

    def _installation_json(self, inst: Installation) -> dict[str, Any]:
        base = f"{self.url}/app/installations/{inst.id}"
        account = self._user_json(inst.account) | {"type": inst.account_type}
        settings = (
            f"{self.web_url}/organizations/{inst.account}/settings/installations/{inst.id}"
            if inst.account_type == "Organization"
            else f"{self.web_url}/settings/installations/{inst.id}"
        )
        return {
            "id": inst.id,
            "account": account,
            "repository_selection": "selected",
            "access_tokens_url": f"{base}/access_tokens",
            "repositories_url": f"{self.url}/installation/repositories",
            "html_url": settings,
            "app_id": self.app_id,
            "app_slug": self.app_slug,
            "client_id": "Iv1.fake0000000000",
            "target_id": account["id"],
            "target_type": inst.account_type,
            "permissions": {
                "contents": "write",
                "issues": "write",
                "pull_requests": "write",
                "metadata": "read",
            },
            "events": ["issues", "issue_comment", "pull_request"],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "single_file_name": None,
            "suspended_at": "2024-02-01T00:00:00Z" if inst.suspended else None,
            "suspended_by": None,
        }

    def _repo_json(self, repo: Repo | str) -> dict[str, Any]:
        if isinstance(repo, str):  # a head repo we know only by name (a fork)
            repo = self.repos.get(repo) or Repo(0, repo, fork=True, private=False)
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"{self.web_url}/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": html,
            "description": None,
            "fork": repo.fork,
            "url": api,
            "clone_url": repo.clone_url or f"{html}.git",
            "git_url": f"git://127.0.0.1/{repo.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "svn_url": html,
            **{f"{name}_url": f"{api}/{path}" for name, path in _REPO_URLS.items()},
            "homepage": None,
            "language": None,
            "license": None,
            "mirror_url": None,
            "size": 0,
            "default_branch": repo.default_branch,
            "archived": False,
            "disabled": False,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": False,
            "has_discussions": False,
            "is_template": False,
            "topics": [],
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "open_issues": 0,
            "open_issues_count": 0,
            "network_count": 0,
            "subscribers_count": 0,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "pushed_at": "2024-01-01T00:00:00Z",
        }

    def _label_json(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": f"LA_{label.id}",
            "url": f"{self.url}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
        }

    def _issue_json(self, issue: Issue) -> dict[str, Any]:
        repo = self.repos[issue.repo]
        api = f"{self.url}/repos/{issue.repo}/issues/{issue.number}"
        pull = self.pulls.get((issue.repo, issue.number))
        kind = "pull" if pull else "issues"
        data: dict[str, Any] = {
            "id": issue.id,
            "node_id": f"I_{issue.id}",
            "url": api,
            "repository_url": f"{self.url}/repos/{issue.repo}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{self.web_url}/{issue.repo}/{kind}/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": None,
            "title": issue.title,
            "body": issue.body,
            "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, self._ensure_label(repo, n)) for n in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": sum(
                1
                for c in self.comments.values()
                if (c.repo, c.issue_number) == (issue.repo, issue.number)
            ),
            "closed_at": None,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "author_association": "MEMBER",
        }
        if pull:
            pr_api = f"{self.url}/repos/{issue.repo}/pulls/{issue.number}"
            html = data["html_url"]
            data["pull_request"] = {
                "url": pr_api,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": None,
            }
            data["draft"] = pull.draft
        return data

    def _comment_json(self, comment: Comment) -> dict[str, Any]:
        kind = "pull" if (comment.repo, comment.issue_number) in self.pulls else "issues"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{self.url}/repos/{comment.repo}/issues/comments/{comment.id}",
            "html_url": f"{self.web_url}/{comment.repo}/{kind}/{comment.issue_number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self._user_json(comment.user),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.updated_at),
            "issue_url": f"{self.url}/repos/{comment.repo}/issues/{comment.issue_number}",
            "author_association": "MEMBER",
        }

    def _ref_json(self, full_name: str, ref: str, sha: str) -> dict[str, Any]:
        owner = full_name.split("/")[0]
        return {
            "label": f"{owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self._user_json(owner),
            "repo": self._repo_json(full_name),
        }

    def _pull_json(self, pull: PullRequest) -> dict[str, Any]:
        issue = pull.issue
        api = f"{self.url}/repos/{issue.repo}/pulls/{issue.number}"
        issue_api = f"{self.url}/repos/{issue.repo}/issues/{issue.number}"
        html = f"{self.web_url}/{issue.repo}/pull/{issue.number}"
        repo = self.repos[issue.repo]
        return {
            "url": api,
            "id": issue.id,
            "node_id": f"PR_{issue.id}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_api,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": f"{self.url}/repos/{issue.repo}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": f"{self.url}/repos/{issue.repo}/statuses/{pull.head_sha}",
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self._user_json(issue.user),
            "body": issue.body,
            "labels": [self._label_json(repo, self._ensure_label(repo, n)) for n in issue.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [self._user_json(u) for u in pull.requested_reviewers],
            "requested_teams": [],
            "head": self._ref_json(pull.head_repo, pull.head_ref, self._pull_head_sha(pull)),
            "base": self._ref_json(issue.repo, pull.base_ref, "0" * 40),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": f"{issue_api}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {
                    "href": f"{self.url}/repos/{issue.repo}/pulls/comments{{/number}}"
                },
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": f"{self.url}/repos/{issue.repo}/statuses/{pull.head_sha}"},
            },
            "author_association": "MEMBER",
            "auto_merge": None,
            "draft": pull.draft,
            "merged": False,
            "merged_by": None,
            "mergeable": None,
            "mergeable_state": "unknown",
            "comments": 0,
            "review_comments": sum(
                1
                for c in self.review_comments.values()
                if (c.repo, c.pull_number) == (issue.repo, issue.number)
            ),
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": sum(f[2] for f in pull.files),
            "deletions": sum(f[3] for f in pull.files),
            "changed_files": len(pull.files),
        }

    def _review_comment_json(self, comment: ReviewComment) -> dict[str, Any]:
        api = f"{self.url}/repos/{comment.repo}/pulls/comments/{comment.id}"
        pr_api = f"{self.url}/repos/{comment.repo}/pulls/{comment.pull_number}"
        html = f"{self.web_url}/{comment.repo}/pull/{comment.pull_number}#discussion_r{comment.id}"
        data = {
            "url": api,
            "pull_request_review_id": comment.id,
            "id": comment.id,
            "node_id": f"PRRC_{comment.id}",
            "diff_hunk": "@@ -1 +1 @@",
            "path": comment.path,
            "position": comment.line,
            "original_position": comment.line,
            "commit_id": "0" * 40,
            "original_commit_id": "0" * 40,
            "user": self._user_json(comment.user),
            "body": comment.body,
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.created_at),
            "html_url": html,
            "pull_request_url": pr_api,
            "author_association": "MEMBER",
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "pull_request": {"href": pr_api},
            },
            "line": comment.line,
            "original_line": comment.line,
            "side": "RIGHT",
        }
        if comment.in_reply_to_id is not None:
            data["in_reply_to_id"] = comment.in_reply_to_id
        return data

    def _reaction_json(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": f"REA_{reaction.id}",
            "user": self._user_json(reaction.user),
            "content": reaction.content,
            "created_at": "2024-01-01T00:00:00Z",
        }

    # Endpoints --------------------------------------------------------------------------

    def _build_endpoints(self) -> list[_Endpoint]:
        e = _Endpoint
        repo = "/repos/{owner}/{repo}"
        return [
            # The App itself (JWT)
            e(
                "GET",
                "/app",
                "jwt",
                lambda c: self._app_json(self.app_id, self.app_slug, "open-swe"),
            ),
            e(
                "GET",
                "/app/installations",
                "jwt",
                lambda c: [self._installation_json(i) for i in self.installations.values()],
            ),
            e("GET", "/app/installations/{id}", "jwt", self._get_installation),
            e("POST", "/app/installations/{id}/access_tokens", "jwt", self._create_token),
            e("GET", repo + "/installation", "jwt", self._repo_installation),
            # The App's webhook deliveries (github_hooks.py)
            e("GET", "/app/hook/deliveries", "jwt", lambda c: self.hook.list(c.query)),
            e(
                "GET",
                "/app/hook/deliveries/{id}",
                "jwt",
                lambda c: self.hook.get(_int(c.params["id"])),
            ),
            e(
                "POST",
                "/app/hook/deliveries/{id}/attempts",
                "jwt",
                lambda c: self.hook.redeliver(_int(c.params["id"])),
            ),
            e("POST", "/app-manifests/{code}/conversions", "none", self._convert_manifest),
            e("GET", "/rate_limit", "any", self._rate_limit),
            # An installation (token)
            e("GET", "/installation/repositories", "token", self._installation_repos),
            e("DELETE", "/installation/token", "token", self._revoke_token),
            e("GET", repo, "token", lambda c: self._repo_json(self._repo(c))),
            e("GET", repo + "/collaborators/{user}/permission", "token", self._permission),
            e("GET", repo + "/labels", "token", self._list_labels),
            e("POST", repo + "/labels", "token", self._create_label),
            e("GET", repo + "/labels/{name}", "token", self._get_label),
            e(
                "GET",
                repo + "/issues/{number}",
                "token",
                lambda c: self._issue_json(self._issue(c)),
            ),
            e("GET", repo + "/issues/{number}/labels", "token", self._issue_labels),
            e("POST", repo + "/issues/{number}/labels", "token", self._add_issue_labels),
            e("DELETE", repo + "/issues/{number}/labels", "token", self._clear_issue_labels),
            e("DELETE", repo + "/issues/{number}/labels/{name}", "token", self._remove_issue_label),
            e("GET", repo + "/issues/{number}/comments", "token", self._list_comments),
            e("POST", repo + "/issues/{number}/comments", "token", self._create_comment),
            e("GET", repo + "/issues/comments/{id}", "token", self._get_comment),
            e("PATCH", repo + "/issues/comments/{id}", "token", self._update_comment),
            e("GET", repo + "/issues/{number}/reactions", "token", self._reactions("issue")),
            e("POST", repo + "/issues/{number}/reactions", "token", self._react("issue")),
            e(
                "GET",
                repo + "/issues/comments/{id}/reactions",
                "token",
                self._reactions("issue_comment"),
            ),
            e(
                "POST",
                repo + "/issues/comments/{id}/reactions",
                "token",
                self._react("issue_comment"),
            ),
            e(
                "GET",
                repo + "/pulls/comments/{id}/reactions",
                "token",
                self._reactions("review_comment"),
            ),
            e(
                "POST",
                repo + "/pulls/comments/{id}/reactions",
                "token",
                self._react("review_comment"),
            ),
            e("GET", repo + "/pulls", "token", self._list_pulls),
            e("POST", repo + "/pulls", "token", self._create_pull),
            e("GET", repo + "/pulls/{number}", "token", lambda c: self._pull_json(self._pull(c))),
            e("PATCH", repo + "/pulls/{number}", "token", self._update_pull),
            e(
                "POST",
                repo + "/pulls/{number}/requested_reviewers",
                "token",
                self._request_reviewers,
            ),
            e("GET", repo + "/pulls/{number}/files", "token", self._pull_files),
            e("GET", repo + "/pulls/{number}/comments", "token", self._list_review_comments),
            e("GET", repo + "/pulls/comments/{id}", "token", self._get_review_comment),
            e("POST", repo + "/pulls/{number}/comments/{id}/replies", "token", self._reply),
            *self.checks.endpoints(e, repo),  # CI: checks, Actions, branches, contents
            # A person, with their user token (github_oauth.py)
            e("GET", "/user", "user", lambda c: self.oauth.user(str(c.user))),
            e(
                "GET",
                "/user/installations",
                "user",
                lambda c: self.oauth.installations(str(c.user), c.query),
            ),
            e(
                "GET",
                "/user/installations/{id}/repositories",
                "user",
                lambda c: self.oauth.installation_repos(str(c.user), _int(c.params["id"]), c.query),
            ),
            e(
                "DELETE",
                "/applications/{client_id}/token",
                "client",
                lambda c: self.oauth.revoke(c.body),
            ),
        ]

    # App and installations

    def _get_installation(self, ctx: Ctx) -> Any:
        inst = self.installations.get(_int(ctx.params["id"]))
        if inst is None:
            raise _not_found()
        return self._installation_json(inst)

    def _repo_installation(self, ctx: Ctx) -> Any:
        full_name = f"{ctx.params['owner']}/{ctx.params['repo']}"
        for inst in self.installations.values():
            if full_name in inst.repos:
                return self._installation_json(inst)
        raise _not_found()

    def _create_token(self, ctx: Ctx) -> Any:
        inst = self.installations.get(_int(ctx.params["id"]))
        if inst is None:
            raise _not_found()
        if inst.suspended:
            raise HTTPError(403, "This installation has been suspended")
        body = ctx.body if isinstance(ctx.body, dict) else {}
        names: list[str] | None = body.get("repositories")
        if names is not None:
            known = {n.split("/")[1] for n in inst.repos}
            if not isinstance(names, list) or not all(n in known for n in names):
                raise HTTPError(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                )
        grant = self.issue_token(inst.id, names)
        repos = [self.repos[n] for n in inst.repos if names is None or n.split("/")[1] in names]
        return 201, {
            "token": grant.token,
            "expires_at": _iso(grant.expires_at),
            "permissions": body.get("permissions")
            or {
                "contents": "write",
                "issues": "write",
                "pull_requests": "write",
                "metadata": "read",
            },
            "repository_selection": "selected",
            "repositories": [self._repo_json(r) for r in repos],
        }

    def _installation_repos(self, ctx: Ctx) -> Any:
        assert ctx.grant is not None
        inst = self.installations[ctx.grant.installation_id]
        names = ctx.grant.repositories
        repos = [self.repos[n] for n in inst.repos if names is None or n.split("/")[1] in names]
        return {
            "total_count": len(repos),
            "repository_selection": "selected",
            "repositories": [self._repo_json(r) for r in repos],
        }

    def _revoke_token(self, ctx: Ctx) -> Any:
        assert ctx.grant is not None
        self.tokens.pop(ctx.grant.token, None)
        return 204, None

    def _convert_manifest(self, ctx: Ctx) -> Any:
        body = self.manifest_conversions.pop(ctx.params["code"], None)
        if body is None:
            raise _not_found()
        return 201, body

    def _rate_limit(self, ctx: Ctx) -> Any:
        reset = int(time.time()) + 3600
        core = {"limit": 5000, "remaining": 4999, "reset": reset, "used": 1}
        resources = {
            name: dict(core) for name in ("core", "search", "graphql", "integration_manifest")
        }
        return {"resources": resources, "rate": core}

    # Repos, permissions, labels

    def _permission(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        login = ctx.params["user"]
        role = repo.permissions.get(login, "none" if repo.private else "read")
        # `permission` is the legacy field: maintain shows as write, triage as read.
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        user = self._user_json(login) | {"role_name": role}
        return {"permission": legacy, "role_name": role, "user": user}

    def _list_labels(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        return [self._label_json(repo, label) for label in repo.labels.values()]

    def _create_label(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        name = body.get("name")
        if not name:
            raise _validation("Label", "name", "missing_field")
        if name.lower() in repo.labels:
            raise _validation("Label", "name", "already_exists")
        label = self.add_label(
            repo.full_name,
            name,
            color=body.get("color") or "ededed",
            description=body.get("description"),
        )
        return 201, self._label_json(repo, label)

    def _get_label(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        label = repo.labels.get(ctx.params["name"].lower())
        if label is None:
            raise _not_found()
        return self._label_json(repo, label)

    def _issue_labels(self, ctx: Ctx) -> Any:
        issue = self._issue(ctx)
        repo = self.repos[issue.repo]
        return [self._label_json(repo, self._ensure_label(repo, n)) for n in issue.labels]

    def _add_issue_labels(self, ctx: Ctx) -> Any:
        issue = self._issue(ctx)
        body = ctx.body
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list):
            raise _validation("Label", "labels", "invalid")
        repo = self.repos[issue.repo]
        for name in names:
            label = self._ensure_label(repo, str(name))
            if label.name.lower() not in {n.lower() for n in issue.labels}:
                issue.labels.append(label.name)
        return self._issue_labels(ctx)

    def _clear_issue_labels(self, ctx: Ctx) -> Any:
        self._issue(ctx).labels.clear()
        return 204, None

    def _remove_issue_label(self, ctx: Ctx) -> Any:
        issue = self._issue(ctx)
        wanted = ctx.params["name"].lower()
        kept = [n for n in issue.labels if n.lower() != wanted]
        if len(kept) == len(issue.labels):
            raise HTTPError(404, "Label does not exist")
        issue.labels[:] = kept
        return self._issue_labels(ctx)

    # Issue comments

    def _list_comments(self, ctx: Ctx) -> Any:
        issue = self._issue(ctx)
        found = [
            c
            for c in self.comments.values()
            if (c.repo, c.issue_number) == (issue.repo, issue.number)
        ]
        return [self._comment_json(c) for c in sorted(found, key=lambda c: c.id)]

    def _create_comment(self, ctx: Ctx) -> Any:
        issue = self._issue(ctx)
        body = ctx.body.get("body") if isinstance(ctx.body, dict) else None
        if not isinstance(body, str) or not body:
            raise _validation("IssueComment", "body", "missing_field")
        comment = self.add_comment(issue.repo, issue.number, body, user=self._actor(ctx))
        return 201, self._comment_json(comment)

    def _find_comment(self, ctx: Ctx) -> Comment:
        repo = self._repo(ctx)
        comment = self.comments.get(_int(ctx.params["id"]))
        if comment is None or comment.repo != repo.full_name:
            raise _not_found()
        return comment

    def _get_comment(self, ctx: Ctx) -> Any:
        return self._comment_json(self._find_comment(ctx))

    def _update_comment(self, ctx: Ctx) -> Any:
        comment = self._find_comment(ctx)
        body = ctx.body.get("body") if isinstance(ctx.body, dict) else None
        if not isinstance(body, str) or not body:
            raise _validation("IssueComment", "body", "missing_field")
        comment.body = body
        comment.updated_at = _now()
        return self._comment_json(comment)

    # Reactions

    def _reaction_target(self, kind: str, ctx: Ctx) -> tuple[str, int]:
        if kind == "issue":
            return self._issue(ctx).repo, _int(ctx.params["number"])
        if kind == "issue_comment":
            return self._find_comment(ctx).repo, _int(ctx.params["id"])
        repo = self._repo(ctx)
        comment = self.review_comments.get(_int(ctx.params["id"]))
        if comment is None or comment.repo != repo.full_name:
            raise _not_found()
        return repo.full_name, comment.id

    def _reactions(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Any:
            full_name, target = self._reaction_target(kind, ctx)
            return [self._reaction_json(r) for r in self.reactions_on(full_name, kind, target)]

        return handler

    def _react(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Any:
            full_name, target = self._reaction_target(kind, ctx)
            content = ctx.body.get("content") if isinstance(ctx.body, dict) else None
            if content not in REACTIONS:
                raise _validation("Reaction", "content", "invalid")
            user = self._actor(ctx)
            for existing in self.reactions_on(full_name, kind, target):
                if existing.content == content and existing.user == user:
                    return 200, self._reaction_json(existing)
            reaction = Reaction(next(self._ids), full_name, (kind, target), content, user)
            self.reactions.append(reaction)
            return 201, self._reaction_json(reaction)

        return handler

    # Pull requests

    def _list_pulls(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        state = ctx.query.get("state", "open")
        head = ctx.query.get("head")
        base = ctx.query.get("base")
        found = []
        for (name, _), pull in sorted(self.pulls.items(), key=lambda kv: -kv[0][1]):
            if name != repo.full_name:
                continue
            if state != "all" and pull.issue.state != state:
                continue
            if head is not None:
                owner, _, branch = head.partition(":")
                if (pull.head_repo.split("/")[0], pull.head_ref) != (owner, branch):
                    continue
            if base is not None and pull.base_ref != base:
                continue
            found.append(self._pull_json(pull))
        return found

    def _create_pull(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        title, head, base = body.get("title"), body.get("head"), body.get("base")
        if not title or not head or not base:
            raise _validation(
                "PullRequest",
                "title" if not title else "head" if not head else "base",
                "missing_field",
            )
        owner, _, branch = head.rpartition(":")
        head_repo = f"{owner}/{repo.name}" if owner and owner != repo.owner else repo.full_name
        for pull in self.pulls.values():
            if (pull.issue.repo, pull.head_repo, pull.head_ref, pull.issue.state) == (
                repo.full_name,
                head_repo,
                branch,
                "open",
            ):
                raise _validation(
                    "PullRequest",
                    "",
                    "custom",
                    f"A pull request already exists for {head_repo.split('/')[0]}:{branch}.",
                )
        sha = self._branch_sha(head_repo, branch)
        if sha is None:
            raise _validation("PullRequest", "head", "invalid")
        if self._branch_sha(repo.full_name, base) is None:
            raise _validation("PullRequest", "base", "invalid")
        pull = self.add_pull(
            repo.full_name,
            head=branch,
            base=base,
            title=title,
            body=body.get("body"),
            user=self._actor(ctx),
            draft=bool(body.get("draft")),
            head_repo=head_repo,
        )
        pull.head_sha = sha
        return 201, self._pull_json(pull)

    def _update_pull(self, ctx: Ctx) -> Any:
        pull = self._pull(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        if "title" in body:
            pull.issue.title = body["title"]
        if "body" in body:
            pull.issue.body = body["body"]
        if body.get("state") in {"open", "closed"}:
            pull.issue.state = body["state"]
        if "base" in body:
            pull.base_ref = body["base"]
        pull.issue.updated_at = _now()
        return self._pull_json(pull)

    def _request_reviewers(self, ctx: Ctx) -> Any:
        pull = self._pull(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        reviewers = body.get("reviewers") or []
        if pull.issue.user in reviewers:
            raise HTTPError(422, "Review cannot be requested from pull request author.")
        for login in reviewers:
            if login not in pull.requested_reviewers:
                pull.requested_reviewers.append(login)
        return 201, self._pull_json(pull)

    def _pull_files(self, ctx: Ctx) -> Any:
        pull = self._pull(ctx)
        if pull.live_files:
            return self.checks.diff_files(pull)
        base = f"{self.web_url}/{pull.issue.repo}"
        return [
            {
                "sha": "0" * 40,
                "filename": name,
                "status": status,
                "additions": adds,
                "deletions": dels,
                "changes": adds + dels,
                "blob_url": f"{base}/blob/{pull.head_sha}/{name}",
                "raw_url": f"{base}/raw/{pull.head_sha}/{name}",
                "contents_url": f"{self.url}/repos/{pull.issue.repo}/contents/{name}?ref={pull.head_sha}",
                "patch": "",
            }
            for name, status, adds, dels in pull.files
        ]

    def _list_review_comments(self, ctx: Ctx) -> Any:
        pull = self._pull(ctx)
        key = (pull.issue.repo, pull.issue.number)
        found = [c for c in self.review_comments.values() if (c.repo, c.pull_number) == key]
        return [self._review_comment_json(c) for c in sorted(found, key=lambda c: c.id)]

    def _get_review_comment(self, ctx: Ctx) -> Any:
        repo = self._repo(ctx)
        comment = self.review_comments.get(_int(ctx.params["id"]))
        if comment is None or comment.repo != repo.full_name:
            raise _not_found()
        return self._review_comment_json(comment)

    def _reply(self, ctx: Ctx) -> Any:
        pull = self._pull(ctx)
        parent = self.review_comments.get(_int(ctx.params["id"]))
        if parent is None or (parent.repo, parent.pull_number) != (
            pull.issue.repo,
            pull.issue.number,
        ):
            raise _not_found()
        body = ctx.body.get("body") if isinstance(ctx.body, dict) else None
        if not isinstance(body, str) or not body:
            raise _validation("PullRequestReviewComment", "body", "missing_field")
        # GitHub threads a reply to a reply under the thread's first comment.
        root = parent.in_reply_to_id or parent.id
        reply = self.add_review_comment(
            pull.issue.repo,
            pull.issue.number,
            body,
            user=self._actor(ctx),
            path=parent.path,
            line=parent.line,
            in_reply_to_id=root,
        )
        return 201, self._review_comment_json(reply)


# The `*_url` fields of a repository, relative to its API URL (GitHub's URI templates).
_REPO_URLS = {
    "archive": "{archive_format}{/ref}",
    "assignees": "assignees{/user}",
    "blobs": "git/blobs{/sha}",
    "branches": "branches{/branch}",
    "collaborators": "collaborators{/collaborator}",
    "comments": "comments{/number}",
    "commits": "commits{/sha}",
    "compare": "compare/{base}...{head}",
    "contents": "contents/{+path}",
    "contributors": "contributors",
    "deployments": "deployments",
    "downloads": "downloads",
    "events": "events",
    "forks": "forks",
    "git_commits": "git/commits{/sha}",
    "git_refs": "git/refs{/sha}",
    "git_tags": "git/tags{/sha}",
    "hooks": "hooks",
    "issue_comment": "issues/comments{/number}",
    "issue_events": "issues/events{/number}",
    "issues": "issues{/number}",
    "keys": "keys{/key_id}",
    "labels": "labels{/name}",
    "languages": "languages",
    "merges": "merges",
    "milestones": "milestones{/number}",
    "notifications": "notifications{?since,all,participating}",
    "pulls": "pulls{/number}",
    "releases": "releases{/id}",
    "stargazers": "stargazers",
    "statuses": "statuses/{sha}",
    "subscribers": "subscribers",
    "subscription": "subscription",
    "tags": "tags",
    "teams": "teams",
    "trees": "git/trees{/sha}",
}


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _not_found() from None


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A started fake GitHub (import this fixture into a conftest to use it)."""
    with FakeGitHub() as gh:
        yield gh
