"""The HTTP app: routes and start-up wiring only (the webhook logic is in app.webhooks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.config import Settings
from app.github.app import GitHubApp
from app.runs.dispatch import Dispatcher, JobFunction, resubmit_unfinished
from app.runs.queue import ProcrastinateDispatcher, worker_options
from app.runs.store import Store
from app.sandbox.types import SandboxProvider
from app.setup_routes import SetupStateStore, setup_routes
from app.web.layer import WebLayer
from app.webhooks import messages
from app.webhooks.context import AppSlug
from app.webhooks.handlers import ROUTER
from app.webhooks.receiver import ReceiverDeps, WebhookReceiver
from app.wiring import wire

WEBHOOK_PATH = "/webhooks/github"
log = structlog.get_logger(__name__)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    dispatcher: Dispatcher | None = None,
    github: GitHubApp | None = None,
    run_job: JobFunction | None = None,
    setup_state: SetupStateStore | None = None,
    sandboxes: SandboxProvider | None = None,
) -> Starlette:
    """Build the app. Nothing connects until the lifespan starts (app.wiring builds it all).

    `store`, `dispatcher` and `github` default to what `settings` describe; an injected store is
    left open at shutdown (its owner closes it). `run_job(run_id)` runs or resumes an agent
    run; it is ignored when a dispatcher is injected (the dispatcher carries its own).
    `setup_state` holds the setup token (the CLI prints the link that carries it).
    The default run job (app.runs.jobs) runs the agent in `sandboxes`, by default the provider
    settings choose (built, and its isolation logged, when the lifespan starts).
    """

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "app_configured": settings.app_configured})

    async def setup_required(_request: Request) -> JSONResponse:
        url = settings.base_url + "/setup"
        return JSONResponse({"error": messages.SETUP_REQUIRED.format(url=url)}, status_code=503)

    receiver = (
        WebhookReceiver(
            settings.webhook_secrets,
            read_timeout=settings.webhook_read_timeout,
            max_pending=settings.webhook_max_pending_bytes,
        )
        if settings.app_configured
        else None
    )
    web = WebLayer(settings) if settings.app_configured else None  # the dashboard, API, metrics

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if receiver is None:
            yield  # setup mode: only the setup pages and /healthz do anything
            return
        async with wire(settings, store=store, github=github, sandboxes=sandboxes) as wiring:
            slug = AppSlug(settings.github_app_slug, wiring.github())
            worker = worker_options(settings) if settings.serve_worker else None
            queue = dispatcher or await wiring.queue(run_job, worker=worker)
            ctx = await wiring.start(queue, slug)
            receiver.deps = ReceiverDeps(await wiring.store(), queue, ROUTER, slug)
            if web is not None:
                await web.start(ctx)
            learn_slug = asyncio.create_task(slug.learn(), name="learn-app-slug")
            try:
                if not isinstance(queue, ProcrastinateDispatcher):  # it does on start
                    await resubmit_unfinished(await wiring.store(), queue)
                yield
            finally:
                receiver.deps = None
                receiver.drop_handoff()  # what waited is recorded: resubmitted at next start
                learn_slug.cancel()
                if web is not None:
                    await web.stop()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route(WEBHOOK_PATH, receiver.handle if receiver else setup_required, methods=["POST"]),
        *(web.routes() if web is not None else []),
        *setup_routes(settings, state_store=setup_state),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.webhook_receiver = receiver  # None in setup mode; holds the pending_bytes count
    return app
