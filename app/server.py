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
from app.runs.dispatch import Dispatcher, InProcessDispatcher, JobFunction, resubmit_unfinished
from app.runs.jobs import make_run_job
from app.runs.queue import ProcrastinateDispatcher, worker_options
from app.runs.store import Store
from app.sandbox.base import SandboxProvider
from app.sandbox.factory import make_provider
from app.setup_routes import SetupStateStore, setup_routes
from app.webhooks import messages
from app.webhooks.context import AppSlug, HandlerContext
from app.webhooks.handlers import ROUTER, DeliveryProcessor
from app.webhooks.receiver import ReceiverDeps, WebhookReceiver

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
    """Build the app. Nothing connects until the lifespan starts.

    `store`, `dispatcher` and `github` default to what `settings` describe; an injected store is
    left open at shutdown (its owner closes it). `run_job(run_id)` runs or resumes an agent
    run; it is ignored when a dispatcher is injected (the dispatcher carries its own).
    `setup_state` holds the setup token (the CLI prints the link that carries it).
    The default run job (app.runs.jobs) runs the agent in `sandboxes`, by default the provider
    settings choose (built, and its isolation logged, when the lifespan starts).
    """

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "app_configured": settings.app_configured})

    async def setup_required(request: Request) -> JSONResponse:
        base = settings.public_url or str(request.base_url)
        url = base.rstrip("/") + "/setup"
        return JSONResponse({"error": messages.SETUP_REQUIRED.format(url=url)}, status_code=503)

    receiver = WebhookReceiver(settings.webhook_secrets) if settings.app_configured else None

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if receiver is None:
            yield  # setup mode: only the setup pages and /healthz do anything
            return
        own_store = store is None
        live_store = store or Store.open(settings.database_url)
        live_github = github or build_github_app(settings)
        slug = AppSlug(settings.github_app_slug, live_github)
        live_dispatcher = dispatcher or build_dispatcher(
            settings,
            live_store,
            run_job=run_job
            or make_run_job(
                settings, live_store, live_github, sandboxes or make_provider(settings)
            ),
        )
        await live_store.create_all()
        ctx = HandlerContext(
            live_store, live_github, live_dispatcher, slug, settings.github_web_url
        )
        await live_dispatcher.start(DeliveryProcessor(ctx))
        receiver.deps = ReceiverDeps(live_store, live_dispatcher, ROUTER, slug)
        learn_slug = asyncio.create_task(slug.learn(), name="learn-app-slug")
        try:
            if not isinstance(live_dispatcher, ProcrastinateDispatcher):  # it does on start
                await resubmit_unfinished(live_store, live_dispatcher)
            yield
        finally:
            receiver.deps = None
            learn_slug.cancel()
            await live_dispatcher.aclose()
            if own_store:
                await live_store.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route(WEBHOOK_PATH, receiver.handle if receiver else setup_required, methods=["POST"]),
        *setup_routes(settings, state_store=setup_state),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def build_dispatcher(settings: Settings, store: Store, *, run_job: JobFunction) -> Dispatcher:
    """The queue settings choose: in-process, or procrastinate on PostgreSQL, worked by this
    process too unless OPEN_SWE_SERVE_WORKER is off (`serve --no-worker`)."""
    if settings.queue_backend == "inprocess":
        return InProcessDispatcher(
            run_job=run_job, max_concurrent_runs=settings.max_concurrent_runs
        )
    worker = worker_options(settings) if settings.serve_worker else None
    return ProcrastinateDispatcher(
        settings.database_url,
        store=store,
        run_job=run_job,
        worker=worker,
        queue_prefix=settings.queue_prefix,
    )


def build_github_app(settings: Settings) -> GitHubApp:
    """The App as `settings` configure it (raises GitHubError for a key that is not a PEM)."""
    pem = settings.private_key_pem
    assert settings.github_app_id is not None, "app_configured checked"
    assert pem is not None, "app_configured checked"
    return GitHubApp(settings.github_app_id, pem.get_secret_value(), settings.github_api_url)
