"""Start-up wiring, written once for the three ways open-swe runs: `serve` (app.server),
`worker` (app.worker) and `run` (app.local).

`wire(settings)` yields a `Wiring` that builds, on first use and once per process, what those
entry points share: the store (migrated to the current schema), the GitHub App, the sandbox
provider, the checkpointer (one connection pool for every run of the process) and the queue
with the run job and the deployment's sweeps (app.runs.periodic). On exit it closes what it
opened, last opened first: the queue (its sweeps stop, running jobs are suspended), then the
checkpointer, then the store. A web-only node (`serve --no-worker`) builds neither the
checkpointer nor the run job, so it imports no agent code. Anything injected (tests, the CLI's
early checks) is used as given; an injected store is left open for its owner to close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from app.agent.checkpoint import open_checkpointer
from app.config import Settings
from app.github.app import GitHubApp
from app.runs.dispatch import Dispatcher, InProcessDispatcher, JobFunction
from app.runs.exclusive import sole_queue
from app.runs.janitor import SandboxJanitor
from app.runs.outbox import queue_uncarried
from app.runs.periodic import Sweep, expressible
from app.runs.queue import ProcrastinateDispatcher, WorkerOptions
from app.runs.reaper import Reaper
from app.runs.retention import Retention
from app.runs.store import Store
from app.sandbox.factory import make_provider
from app.sandbox.types import SandboxProvider
from app.webhooks.ci_sweep import CiSweep
from app.webhooks.context import AppSlug, HandlerContext
from app.webhooks.handlers import DeliveryProcessor
from app.webhooks.redelivery import RedeliverySweep

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

HOURLY = 3600.0  # seconds between two retention sweeps, and two janitor sweeps


def build_github_app(settings: Settings) -> GitHubApp:
    """The App as `settings` configure it (raises GitHubError for a key that is not a PEM)."""
    pem = settings.private_key_pem
    assert settings.github_app_id is not None, "app_configured checked"
    assert pem is not None, "app_configured checked"
    return GitHubApp(settings.github_app_id, pem.get_secret_value(), settings.github_api_url)


async def runs_elsewhere(run_id: str) -> None:
    """The run job of a web-only node: it only enqueues; `open-swe worker` runs the jobs."""
    raise RuntimeError(f"run {run_id}: this node runs no jobs (serve --no-worker)")


class Wiring:
    """What one process builds once. Use it inside `wire(settings)`."""

    def __init__(
        self,
        settings: Settings,
        stack: AsyncExitStack,
        *,
        store: Store | None = None,
        github: GitHubApp | None = None,
        sandboxes: SandboxProvider | None = None,
    ) -> None:
        self.settings = settings
        self._stack = stack
        self._store = store
        self._migrated = False
        self._github = github
        self._sandboxes = sandboxes
        self._checkpointer: BaseCheckpointSaver[str] | None = None

    async def store(self) -> Store:
        """The store, migrated to the current schema before its first use."""
        if self._store is None:
            self._store = Store.open(self.settings.database_url)
            self._stack.push_async_callback(self._store.close)
        if not self._migrated:
            await self._store.migrate()
            self._migrated = True
        return self._store

    def github(self) -> GitHubApp:
        if self._github is None:
            self._github = build_github_app(self.settings)
        return self._github

    def sandboxes(self) -> SandboxProvider:
        """The sandbox provider settings choose (its isolation is logged when built)."""
        if self._sandboxes is None:
            self._sandboxes = make_provider(self.settings)
        return self._sandboxes

    async def checkpointer(self) -> BaseCheckpointSaver[str]:
        """The process's checkpointer: one SQLite connection, or one PostgreSQL pool, shared
        by all its runs."""
        if self._checkpointer is None:
            self._checkpointer = await self._stack.enter_async_context(
                open_checkpointer(self.settings)
            )
        return self._checkpointer

    async def run_job(self) -> JobFunction:
        """The agent's run job, on this process's store, App, sandboxes and checkpointer. Its
        transcript writer stores what waits when the process stops (after the queue, before
        the store)."""
        # The agent (LangGraph, LangChain, the model SDKs) is imported here, by the processes
        # that run jobs: a web-only node (`serve --no-worker`) never calls this.
        from app.runs.jobs import make_run_job

        job = make_run_job(
            self.settings,
            await self.store(),
            self.github(),
            self.sandboxes(),
            await self.checkpointer(),
        )
        self._stack.push_async_callback(job.aclose)
        return job

    async def queue(
        self, run_job: JobFunction | None = None, *, worker: WorkerOptions | None
    ) -> Dispatcher:
        """The queue settings choose: in-process, or procrastinate on PostgreSQL, worked by
        this process when `worker` options are given, with the deployment's sweeps
        registered. `run_job` defaults to the agent's, except on a web-only node (procrastinate
        without `worker`), which runs no job and so never imports the agent."""
        web_only = self.settings.queue_backend != "inprocess" and worker is None
        job = run_job or (runs_elsewhere if web_only else await self.run_job())
        queue: Dispatcher
        if self.settings.queue_backend == "inprocess":
            # Alone on its database, or not at all (app.runs.exclusive).
            await self._stack.enter_async_context(sole_queue(self.settings))
            queue = InProcessDispatcher(
                run_job=job, max_concurrent_runs=self.settings.max_concurrent_runs
            )
        else:
            queue = ProcrastinateDispatcher(
                self.settings.database_url,
                store=await self.store(),
                run_job=job,
                worker=worker,
                queue_prefix=self.settings.queue_prefix,
            )
        for sweep in await self.sweeps(queue):
            queue.schedule(sweep)
        return queue

    async def start(self, queue: Dispatcher, slug: AppSlug) -> HandlerContext:
        """Start `queue` with the delivery job; it is closed (its runs suspended) first on
        exit. Returns what the webhook handlers work with."""
        ctx = HandlerContext(
            await self.store(),
            self.github(),
            queue,
            slug,
            self.settings.github_web_url,
            sandboxes=self.sandboxes,
            max_ci_fix_attempts=self.settings.max_ci_fix_attempts,
        )
        self._stack.push_async_callback(queue.aclose)
        await queue.start(DeliveryProcessor(ctx))
        return ctx

    async def sweeps(self, queue: Dispatcher) -> list[Sweep]:
        """What the deployment repeats on a timer (app.runs.periodic), run wherever `queue`
        runs them: queue recorded work no job carries, resume runs whose fault is waited out
        or whose job was lost (the reaper), ask GitHub for missed deliveries,
        prune what retention lets go, delete orphaned sandboxes. Add a sweep here."""
        settings, store = self.settings, await self.store()
        prune_jobs = queue.prune_jobs if isinstance(queue, ProcrastinateDispatcher) else None

        async def retention() -> int:  # the checkpointer is opened on first use
            checkpointer = await self.checkpointer()
            return await Retention(store, settings.retention_days, checkpointer, prune_jobs)()

        async def janitor() -> int:
            kept = timedelta(days=settings.retention_days)
            return await SandboxJanitor(store, self.sandboxes(), kept_for=kept)()

        outbox = expressible(settings.outbox_sweep_seconds)
        sweeps = [
            Sweep(
                "outbox",
                outbox,
                partial(queue_uncarried, store, queue, grace=timedelta(seconds=outbox)),
            ),
            Sweep("reaper", outbox, Reaper(store, queue)),
            Sweep("retention", HOURLY, retention),
            Sweep("sandbox-janitor", HOURLY, janitor),
        ]
        sweeps.append(Sweep("ci-autofix", outbox, self._ci_sweep(queue)))
        if settings.redelivery_sweep_minutes > 0:
            every = expressible(settings.redelivery_sweep_minutes * 60)
            sweeps.append(Sweep("redelivery", every, RedeliverySweep(store, self.github())))
        return sweeps

    def _ci_sweep(self, queue: Dispatcher) -> CiSweep:
        """CI autofix: decisions that waited for a run, fix runs that ended (app.webhooks)."""

        async def context() -> HandlerContext:
            github = self.github()
            return HandlerContext(
                await self.store(),
                github,
                queue,
                AppSlug(self.settings.github_app_slug, github),
                self.settings.github_web_url,
                max_ci_fix_attempts=self.settings.max_ci_fix_attempts,
            )

        return CiSweep(context)


@asynccontextmanager
async def wire(
    settings: Settings,
    *,
    store: Store | None = None,
    github: GitHubApp | None = None,
    sandboxes: SandboxProvider | None = None,
) -> AsyncIterator[Wiring]:
    """The process's wiring; what it opened is closed on exit, last opened first."""
    async with AsyncExitStack() as stack:
        yield Wiring(settings, stack, store=store, github=github, sandboxes=sandboxes)
