"""The web layer of the server: its routes, and the parts it builds when the app starts.

`create_app` makes one WebLayer, mounts `routes()` (before the setup pages, so `/` is the
dashboard once the App is configured), `start`s it in the lifespan with the handlers' context
and `stop`s it at shutdown. Until started, its routes answer 503.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio.to_thread
import httpx
import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.config import Settings
from app.web.api import Api
from app.web.auth import CALLBACK_PATH, Auth, Handler, Kind
from app.web.dashboard import Dashboard
from app.web.metrics import metrics_endpoint
from app.web.oauth import GitHubOAuth
from app.web.pages import Pages
from app.web.records import RunRecords
from app.web.render import Renderer
from app.web.secret_file import ensure_session_secret
from app.web.sessions import SessionCodec
from app.webhooks.context import HandlerContext

Endpoint = Callable[[Request], Awaitable[Response]]
log = structlog.get_logger(__name__)


@dataclass
class _Started:
    auth: Auth
    pages: Pages
    api: Api
    records: RunRecords
    http: httpx.AsyncClient
    ctx: HandlerContext


class WebLayer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._renderer = Renderer()
        self._started: _Started | None = None

    async def start(self, ctx: HandlerContext) -> None:
        settings = self._settings
        secret = settings.session_secret
        value = secret.get_secret_value() if secret is not None else ""
        if not value:
            try:
                value = await anyio.to_thread.run_sync(
                    ensure_session_secret, settings.env_file_path
                )
            except OSError as exc:
                value = secrets.token_urlsafe(48)
                log.error(
                    "dashboard.session_secret_not_saved",
                    path=str(settings.env_file_path),
                    error=exc.strerror,
                    consequence="sessions end when this process stops; set OPEN_SWE_SESSION_SECRET",
                )
        http = httpx.AsyncClient(follow_redirects=False)
        oauth = None
        client_secret = settings.github_app_client_secret
        if settings.github_app_client_id and client_secret is not None:
            oauth = GitHubOAuth(
                client_id=settings.github_app_client_id,
                client_secret=client_secret.get_secret_value(),
                web_url=settings.github_web_url,
                api_url=settings.github_api_url,
                http=http,
            )
        records = RunRecords(settings, ctx.store.engine)
        dashboard = Dashboard(settings, ctx.store, records)
        self._started = _Started(
            auth=Auth(settings, self._renderer, SessionCodec(value), oauth),
            pages=Pages(settings, self._renderer, dashboard, ctx),
            api=Api(dashboard),
            records=records,
            http=http,
            ctx=ctx,
        )

    async def stop(self) -> None:
        started, self._started = self._started, None
        if started is not None:
            await started.records.aclose()
            await started.http.aclose()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._guarded("page", lambda s: s.pages.runs), methods=["GET"]),
            Route(
                "/runs/{run_id:str}", self._guarded("page", lambda s: s.pages.run), methods=["GET"]
            ),
            Route(
                "/runs/{run_id:str}/{verb:str}",
                self._guarded("action", lambda s: s.pages.act),
                methods=["POST"],
            ),
            Route(
                "/repos/{owner:str}/{name:str}",
                self._guarded("page", lambda s: s.pages.repo),
                methods=["GET"],
            ),
            Route("/api/runs", self._guarded("api", lambda s: s.api.runs), methods=["GET"]),
            Route(
                "/api/runs/{run_id:str}", self._guarded("api", lambda s: s.api.run), methods=["GET"]
            ),
            Route(
                "/api/runs/{run_id:str}/events",
                self._guarded("api", lambda s: s.api.events),
                methods=["GET"],
            ),
            Route(
                "/api/runs/{run_id:str}/stream",
                self._guarded("api", lambda s: s.api.stream),
                methods=["GET"],
            ),
            Route(CALLBACK_PATH, self._auth("callback"), methods=["GET"]),
            Route("/auth/logout", self._auth("logout"), methods=["GET", "POST"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Mount("/static", StaticFiles(packages=[("app.web", "static")]), name="static"),
        ]

    def _guarded(self, kind: Kind, pick: Callable[[_Started], Handler]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            started = self._started
            if started is None:
                return PlainTextResponse("starting", status_code=503)
            return await started.auth.guard(kind, pick(started))(request)

        return endpoint

    def _auth(self, name: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            started = self._started
            if started is None:
                return PlainTextResponse("starting", status_code=503)
            handler: Endpoint = getattr(started.auth, name)
            return await handler(request)

        return endpoint

    async def _metrics(self, request: Request) -> Response:
        started = self._started
        return await metrics_endpoint(
            request,
            self._settings,
            started.ctx.store if started else None,
            started.records if started else None,
        )
