"""A worker process: runs the queued jobs (deliveries, runs) of the procrastinate queue.

The same wiring as the server's start-up (app.wiring), without HTTP, so a worker runs exactly
the code `serve` runs in-process.
"""

from __future__ import annotations

import asyncio

import structlog

from app.config import Settings
from app.github.app import GitHubApp
from app.runs.dispatch import JobFunction
from app.runs.queue import ProcrastinateDispatcher, WorkerOptions, worker_options
from app.sandbox.types import SandboxProvider
from app.webhooks.context import AppSlug
from app.wiring import wire

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
    async with wire(settings, github=github, sandboxes=sandboxes) as wiring:
        queue = await wiring.queue(run_job, worker=options)
        assert isinstance(queue, ProcrastinateDispatcher), "the CLI checked OPEN_SWE_QUEUE"
        await wiring.start(queue, AppSlug(settings.github_app_slug, wiring.github()))
        log.info("worker started", queues=list(options.queues), runs=options.run_concurrency)
        await stop.wait()
        log.info("worker stopping", grace_seconds=options.shutdown_timeout)
