"""A child process of the fleet benchmark: `python -m benchmarks.fleet_serve ROLE ...`.

- `serve`: open-swe's real app (`create_app`, default wiring: store, checkpointer, run job,
  local sandboxes) under uvicorn on 127.0.0.1, as `open-swe serve` runs it.
- `worker`: `open-swe worker`'s code (app.worker.run_worker) on PostgreSQL.

Both talk to the fakes the parent runs (GitHub, the model) on loopback. The only departure
from production: PyGithub's client-side pauses are off (the fake has no rate limits), as in
the other benchmarks. `--threads` sizes asyncio's default thread pool (where PyGithub, git
and the sandbox's blocking calls run). `serve` writes `{"url", "pid"}` to `--ready-file` once
it listens; `worker` writes `{"pid"}` once started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.serve import announce, serve_uvicorn

SECRET = "whsec-fleet-benchmark"
SLUG = "open-swe-fleet"
MODEL_KEY = "sk-ant-fleet-benchmark"


def settings_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "github_app_id": args.app_id,
        "github_app_private_key_path": args.key_file,
        "github_webhook_secret": SECRET,
        "github_app_slug": SLUG,
        "github_api_url": args.github_url,
        "github_web_url": args.github_web_url,
        "anthropic_api_key": MODEL_KEY,
        "anthropic_base_url": args.model_url,
        "data_dir": args.data_dir,
        "database_url_raw": args.database_url,
        "env_file_path": args.data_dir / ".env",
        "sandbox": "local",
        "max_concurrent_runs": args.max_runs,
        "serve_worker": args.role == "worker" or not args.no_worker,
        "queue_prefix": args.queue_prefix,
        "model_timeout": 60.0,
        "command_timeout": 120.0,
        "log_level": "warning",
    }


async def _main(args: argparse.Namespace) -> None:
    from app.config import Settings
    from app.github.app import GitHubApp
    from app.logs import configure_logging

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(args.threads, thread_name_prefix="pool"))
    settings = Settings(_env_file=None, **settings_values(args))  # type: ignore[call-arg]
    configure_logging(level="warning", fmt="console", secrets=settings.secret_values())
    pem = settings.private_key_pem
    assert pem is not None
    assert settings.github_app_id is not None
    github = GitHubApp(
        settings.github_app_id, pem.get_secret_value(), settings.github_api_url, throttle=False
    )
    if args.role == "worker":
        from app.runs.queue import worker_options
        from app.worker import run_worker

        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        options = worker_options(settings)
        announce(args.ready_file, {"pid": os.getpid()})
        await run_worker(settings, stop, options=options, github=github)
        return
    from app.server import create_app

    app = create_app(settings, github=github)
    await serve_uvicorn(app, args.ready_file, {"pid": os.getpid()})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_serve")
    parser.add_argument("role", choices=["serve", "worker"])
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--app-id", type=int, required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--github-url", required=True)
    parser.add_argument("--github-web-url", required=True)
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--max-runs", type=int, default=50)
    parser.add_argument("--no-worker", action="store_true", help="serve: a web-only node")
    parser.add_argument("--queue-prefix", default="open-swe")
    parser.add_argument(
        "--profile", type=Path, help="cProfile between SIGUSR1 and SIGUSR2, written here"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.profile is not None:
        _profile_on_signals(args.profile)
    asyncio.run(_main(args))
    return 0


def _profile_on_signals(path: Path) -> None:
    """SIGUSR1 starts a cProfile of the event loop's thread (where the orchestration runs),
    SIGUSR2 stops it and writes it to `path`: the parent profiles the window it measures."""
    import cProfile

    profile = cProfile.Profile()

    def start(*_: object) -> None:
        profile.enable()

    def stop(*_: object) -> None:
        profile.disable()
        profile.dump_stats(path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


if __name__ == "__main__":
    raise SystemExit(main())
