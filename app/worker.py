"""A worker process: runs the queued jobs (deliveries, runs) of the procrastinate queue.

The same wiring as the server's start-up, without HTTP: the store, the GitHub App, the
delivery processor and the run job, so a worker runs exactly the code `serve` runs in-process.
"""

from __future__ import annotations

import asyncio

import structlog

from app.config import Settings
from app.github.app import GitHubApp
from app.runs.dispatch import JobFunction
from app.runs.jobs import make_run_job
from app.runs.queue import ProcrastinateDispatcher, WorkerOptions, worker_options
from app.runs.store import Store
from app.sandbox.base import SandboxProvider
from app.sandbox.factory import make_provider
from app.server import build_github_app
from app.webhooks.context import AppSlug, HandlerContext
from app.webhooks.handlers import DeliveryProcessor

log = structlog.get_logger(__name__)


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    options: WorkerOptions | None = None,
    github: GitHubApp | None = None,
    run_job: JobFunction | None = None,
    sandboxes: SandboxProvider | None = None,
) -> None:
    """Work until `stop` is set, then stop gracefully (see WorkerOptions.shutdown_timeout)."""
    options = options or worker_options(settings)
    store = Store.open(settings.database_url)
    live_github = github or build_github_app(settings)
    dispatcher = ProcrastinateDispatcher(
        settings.database_url,
        store=store,
        run_job=run_job
        or make_run_job(settings, store, live_github, sandboxes or make_provider(settings)),
        worker=options,
        queue_prefix=settings.queue_prefix,
    )
    try:
        await store.create_all()
        slug = AppSlug(settings.github_app_slug, live_github)
        ctx = HandlerContext(store, live_github, dispatcher, slug, settings.github_web_url)
        await dispatcher.start(DeliveryProcessor(ctx))
        log.info("worker started", queues=list(options.queues), runs=options.run_concurrency)
        await stop.wait()
        log.info("worker stopping", grace_seconds=options.shutdown_timeout)
    finally:
        await dispatcher.aclose()
        await store.close()
