"""The servers the benchmarks talk to, each in its own process: `python -m benchmarks.serve KIND`.

- `bare`: the floor of HTTP + ASGI, a Starlette endpoint that reads the body and answers 202.
- `app`: open-swe's real app (`create_app`), its delivery jobs running in the background as in
  production (the dispatcher production picks for the database), against the fake GitHub; the
  run job records the run and finishes it at once.
  `GET /_bench/settle` waits for the background work and reports what it did.
- `github`: the loopback fake GitHub (tests/fakes/github.py), seeded for the benchmark payloads.

`bare` and `app` run under the same uvicorn configuration as `open-swe serve` (uvloop and
httptools from uvicorn[standard], log level info with access log, proxy headers), logging to the file given by the parent.
Each writes `{"url": ...}` to `--ready-file` once it accepts connections, then serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks import deliveries as payloads

# Each kind imports only what it serves (the bare floor must not pay for the app's imports).
if TYPE_CHECKING:
    from app.config import Settings
    from app.runs.store import Store

SETTLE_TIMEOUT = 120.0


def announce(ready_file: Path, details: dict[str, Any]) -> None:
    """Tell the parent where we listen: written whole, then renamed, so it never reads half."""
    partial = ready_file.with_suffix(".partial")
    partial.write_text(json.dumps(details))
    partial.rename(ready_file)


def run_like_uvicorn(main: Coroutine[Any, Any, None]) -> None:
    """Run on the event loop `uvicorn.run` picks (loop="auto": uvloop when installed, as for
    `open-swe serve`); `Server.serve()` inside a plain asyncio.run would not."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def serve_uvicorn(
    app: ASGIApp, ready_file: Path, details: dict[str, Any] | None = None
) -> None:
    """Serve `app` on 127.0.0.1, a free port, configured like `open-swe serve`; `details` are
    announced with the URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="info", proxy_headers=True)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise SystemExit("uvicorn stopped during start-up (see the log above)")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    announce(ready_file, {"url": f"http://127.0.0.1:{port}", **(details or {})})
    await serving


# bare -----------------------------------------------------------------------------------


def bare_app() -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"status": "accepted", "bytes": len(body)}, status_code=202)

    return Starlette(routes=[Route(payloads.WEBHOOK_PATH, receive, methods=["POST"])])


# app ------------------------------------------------------------------------------------


class BenchControl:
    """The app, plus `GET /_bench/settle`: wait for the background work, report what it did.

    Settled means every accepted delivery is processed and no run is queued or running, as the
    store says, whichever dispatcher production picked (in-process, or procrastinate).
    """

    def __init__(self, app: ASGIApp, store: Store, run_jobs: list[str]) -> None:
        self._app, self._store, self._run_jobs = app, store, run_jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == payloads.SETTLE_PATH:
            response = await self._settle()
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _settled(self) -> bool:
        unfinished = await self._store.unfinished_deliveries()
        return not unfinished and not await self._store.runs_to_resume()

    async def _settle(self) -> Response:
        from sqlalchemy import func, select

        from app.runs.models import deliveries

        # Polled: whichever dispatcher does the work (in-process, procrastinate), the store
        # is where it ends.
        deadline = time.monotonic() + SETTLE_TIMEOUT
        settled = await self._settled()
        while not settled and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            settled = await self._settled()
        query = select(deliveries.c.outcome, func.count()).group_by(deliveries.c.outcome)
        with_work = select(func.count()).where(deliveries.c.payload.is_not(None))
        await self._store.flush_deliveries()
        async with self._store.engine.connect() as conn:
            outcomes = {str(outcome): int(count) for outcome, count in await conn.execute(query)}
            accepted = int((await conn.execute(with_work)).scalar_one())
        # accepted: deliveries kept for background work (all processed, once settled)
        stats = {"outcomes": outcomes, "runs": len(self._run_jobs), "accepted": accepted}
        return JSONResponse(stats, status_code=200 if settled else 504)


def serve_app(args: argparse.Namespace) -> None:
    import app.server  # the slow part of start-up: done while the fake GitHub starts

    github = wait_for_announcement(args.github_ready_file)
    run_like_uvicorn(_serve_app(args, github, app.server.create_app))


def wait_for_announcement(ready_file: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{ready_file} did not appear within {timeout:.0f} s")
        time.sleep(0.01)
    details: dict[str, Any] = json.loads(ready_file.read_text())
    return details


async def _serve_app(
    args: argparse.Namespace, github_details: dict[str, Any], create_app: Callable[..., ASGIApp]
) -> None:
    from app.config import Settings
    from app.github.app import GitHubApp
    from app.logs import configure_logging
    from app.runs.store import Store

    github_url = str(github_details["url"])
    values: dict[str, Any] = {
        "github_app_id": args.app_id,
        "github_app_private_key_path": args.key_file,
        "github_webhook_secret": payloads.SECRET,
        "github_app_slug": payloads.SLUG,
        "github_api_url": github_url,
        "github_web_url": str(github_details["web_url"]),
        "data_dir": args.data_dir,
        "database_url_raw": args.database_url,
        "env_file_path": args.data_dir / ".env",
        "log_level": "info",
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    configure_logging(level="info", fmt="console", secrets=settings.secret_values())
    store = Store.open(settings.database_url)
    run_jobs: list[str] = []

    async def run_job(run_id: str) -> None:
        # A run that completes at once: the benchmark times the webhook, not the agent.
        run_jobs.append(run_id)
        await store.set_run_status(run_id, "succeeded")

    pem = settings.private_key_pem
    assert pem is not None
    # No client-side throttling: the fake has no secondary rate limits to respect.
    github = GitHubApp(args.app_id, pem.get_secret_value(), github_url, throttle=False)
    # The dispatcher is production's choice (create_app builds it): in-process on SQLite,
    # procrastinate with this process as a worker on PostgreSQL.
    app = create_app(settings, store=store, github=github, run_job=run_job)
    try:
        await serve_uvicorn(
            BenchControl(app, store, run_jobs), args.ready_file, {"queue": queue_name(settings)}
        )
    finally:
        await store.close()


def queue_name(settings: Settings) -> str:
    """The dispatcher create_app builds from these settings, in words."""
    if settings.queue_backend == "inprocess":
        return "in-process queue"
    worker = "worker in this process" if settings.serve_worker else "no worker in this process"
    return f"procrastinate queue, {worker}"


# github ---------------------------------------------------------------------------------


def serve_github(args: argparse.Namespace) -> int:
    """The fake, seeded; its App private key goes to --key-file for the app servers."""
    from tests.fakes.github import FakeGitHub

    # Block the stop signals before the server thread starts, so only sigwait sees them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    fake = FakeGitHub(app_id=args.app_id, app_slug=payloads.SLUG)
    assert fake.private_key_pem is not None, "the fake generated the key pair"
    args.key_file.touch(mode=0o600)
    args.key_file.write_text(fake.private_key_pem)
    with fake:
        fake.add_installation(
            payloads.INSTALLATION, payloads.OWNER, [payloads.REPO], account_type="User"
        )
        fake.set_permission(payloads.REPO, payloads.MAINTAINER, "admin")
        for number in range(1, payloads.FAKE_ISSUES + 1):
            fake.add_issue(payloads.REPO, title=f"Issue {number}", user=payloads.MAINTAINER)
        announce(args.ready_file, {"url": fake.url, "web_url": fake.web_url})
        signal.sigwait(stop_signals)
    if fake.errors:
        print(f"the fake GitHub failed: {fake.errors}", flush=True)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    parser.add_argument("kind", choices=["bare", "app", "github"])
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--app-id", type=int, default=4242)
    parser.add_argument("--key-file", type=Path)
    parser.add_argument("--github-ready-file", type=Path, help="where the fake GitHub announces")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.kind == "bare":
        run_like_uvicorn(serve_uvicorn(bare_app(), args.ready_file))
        return 0
    if args.kind == "app":
        serve_app(args)
        return 0
    return serve_github(args)


if __name__ == "__main__":
    raise SystemExit(main())
