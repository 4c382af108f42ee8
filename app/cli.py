"""The `open-swe` command: serve | worker | run. Nothing else parses argv."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.config import ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="open-swe", description="A GitHub App that turns labelled issues into pull requests."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the webhook server and in-process workers")
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT or 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"open-swe: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings, host=args.host, port=args.port)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects others


def _serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    import uvicorn

    from app.logs import configure_logging
    from app.server import create_app

    configure_logging(
        level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values()
    )
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )
    return 0
