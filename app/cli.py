"""The `open-swe` command: serve | worker | run. Nothing else parses argv."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from app.sandbox.types import SandboxProvider

NEEDS_QUEUE = (
    "needs the procrastinate queue: a PostgreSQL DATABASE_URL (and OPEN_SWE_QUEUE unset or "
    "procrastinate); with the in-process queue, `open-swe serve` runs the jobs itself"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="open-swe", description="A GitHub App that turns labelled issues into pull requests."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the webhook server and in-process workers")
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT or 8000)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="procrastinate queue only: accept and enqueue; `open-swe worker` processes run jobs",
    )
    worker = commands.add_parser(
        "worker", help="run queued jobs from the PostgreSQL queue until SIGINT/SIGTERM"
    )
    worker.add_argument(
        "--concurrency",
        type=_positive,
        help="agent runs at once in this process (default: OPEN_SWE_MAX_CONCURRENT_RUNS)",
    )
    worker.add_argument(
        "--queues",
        type=_queue_names,
        default=("deliveries", "runs"),
        help="comma-separated queues to work: deliveries, runs (default: both)",
    )
    run = commands.add_parser(
        "run", help="work on a task in a local repository (no GitHub); leaves a branch there"
    )
    run.add_argument("task", nargs="?", help="what to do (first line: the title)")
    run.add_argument(
        "--repo",
        type=Path,
        help="the git repository (default: OPEN_SWE_LOCAL_PROJECT_PATH, else .)",
    )
    run.add_argument("--issue-file", type=Path, help="read the task from this file instead")
    run.add_argument("--auto", action="store_true", help="approve the plan without asking")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"open-swe: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        if args.no_worker:
            if settings.queue_backend != "procrastinate":
                print(f"open-swe: configuration error: --no-worker: {NEEDS_QUEUE}", file=sys.stderr)
                return 2
            settings = settings.model_copy(update={"serve_worker": False})
        return _serve(settings, host=args.host, port=args.port)
    if args.command == "worker":
        return _worker(settings, args)
    if args.command == "run":
        return _run(settings, args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects others


def _serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    import uvicorn

    from app.github.errors import GitHubError
    from app.logs import configure_logging, redact_access_log_queries
    from app.sandbox.factory import make_provider
    from app.server import create_app
    from app.setup_routes import SetupStateStore
    from app.wiring import build_github_app

    # Where it listens, for the URLs it gives out (settings.base_url) as well as for uvicorn.
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port if port is not None else settings.port}
    )
    try:
        github = build_github_app(settings) if settings.app_configured else None
    except GitHubError as exc:  # e.g. a key that is not a PEM: say so now, not per delivery
        print(f"open-swe: configuration error: GITHUB_APP_PRIVATE_KEY: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values()
    )
    _tracing(settings)
    redact_access_log_queries()
    sandboxes = None
    if github is not None:
        try:
            sandboxes = make_provider(settings)  # logs the isolation runs will have
            _refuse_unconfined(settings, sandboxes)
        except ConfigError as exc:
            print(f"open-swe: configuration error: {exc}", file=sys.stderr)
            return 2
    setup_state = None
    if github is None:
        setup_state = SetupStateStore()
        link = f"{settings.base_url}/setup?token={setup_state.token}"
        print(f"open-swe: setup mode (no GitHub App configured yet): open {link}", file=sys.stderr)
    uvicorn.run(
        create_app(settings, github=github, setup_state=setup_state, sandboxes=sandboxes),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's logs (access lines, tracebacks) go through our redactor
        proxy_headers=True,
    )
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from app.hosts.terminal import EXIT_FAILED
    from app.local import run_local
    from app.logs import configure_logging

    # Progress has the terminal; logs only speak up for warnings.
    level = "warning" if settings.log_level == "info" else settings.log_level
    configure_logging(level=level, fmt=settings.log_format, secrets=settings.secret_values())
    _tracing(settings)
    try:
        return asyncio.run(
            run_local(
                settings,
                repo_path=args.repo or settings.local_project_path or Path("."),
                task=args.task,
                issue_file=args.issue_file,
                auto=args.auto,
                stdin=sys.stdin,
                stdout=sys.stdout,
                stderr=sys.stderr,
            )
        )
    except KeyboardInterrupt:  # the run has reported itself stopped and cleaned up
        return EXIT_FAILED


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from app.github.errors import GitHubError
    from app.logs import configure_logging
    from app.runs.queue import QueueSchemaError, worker_options
    from app.sandbox.factory import make_provider
    from app.wiring import build_github_app
    from app.worker import run_worker

    if settings.queue_backend != "procrastinate":
        print(f"open-swe: configuration error: open-swe worker {NEEDS_QUEUE}", file=sys.stderr)
        return 2
    if not settings.app_configured:
        print(
            "open-swe: configuration error: no GitHub App configured: register it with "
            "`open-swe serve` (its /setup page), then give workers the same settings",
            file=sys.stderr,
        )
        return 2
    try:
        github = build_github_app(settings)
        sandboxes = make_provider(settings)
        _refuse_unconfined(settings, sandboxes)
    except GitHubError as exc:
        print(f"open-swe: configuration error: GITHUB_APP_PRIVATE_KEY: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"open-swe: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values()
    )
    _tracing(settings)
    options = worker_options(settings, queues=args.queues, concurrency=args.concurrency)

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)  # graceful: running jobs get their grace
        await run_worker(settings, stop, options=options, github=github, sandboxes=sandboxes)

    try:
        asyncio.run(work())
    except QueueSchemaError as exc:
        print(f"open-swe: {exc}", file=sys.stderr)
        return 2
    return 0


def _refuse_unconfined(settings: Settings, sandboxes: SandboxProvider) -> None:
    """GitHub-triggered jobs never run unconfined on this machine unless the operator said so."""
    from app.sandbox.factory import UNCONFINED_REFUSAL, unconfined_reason

    why = unconfined_reason(sandboxes)
    if why is not None and not settings.allow_unconfined:
        raise ConfigError(UNCONFINED_REFUSAL.format(why=why))


def _tracing(settings: Settings) -> None:
    """LangSmith tracing, when its variables are set (in the environment or the .env file)."""
    import os

    from app.tracing import export_langsmith

    if export_langsmith(settings, os.environ):
        print("open-swe: tracing runs with LangSmith", file=sys.stderr)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _queue_names(value: str) -> tuple[str, ...]:
    from app.runs.queue import QUEUES

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names or not set(names) <= set(QUEUES):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(QUEUES)}, not {value!r}")
    return names
