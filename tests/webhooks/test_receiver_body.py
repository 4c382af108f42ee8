"""Reading the body under abuse, through uvicorn on loopback: slow bodies get 408 and a closed
connection, and the bytes held before the signature check stay under their cap.

The receiver's own accounting (`pending_bytes`) is what is measured, not the process's memory.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from app.github.app import GitHubApp
from app.runs.dispatch import InProcessDispatcher
from app.runs.store import Store
from app.server import create_app
from app.webhooks.receiver import WebhookReceiver
from tests.fakes.github import FakeGitHub
from tests.webhooks.conftest import make_settings, payload, signed_headers

MiB = 1024 * 1024
DEADLINE = 60.0  # generous: only ever waited out when something is broken

HTTP_IMPLEMENTATIONS = [
    "h11",
    pytest.param(
        "httptools",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("httptools") is None, reason="httptools is not installed"
        ),
    ),
]


@dataclass
class Served:
    app: Starlette
    server: uvicorn.Server
    port: int

    @property
    def receiver(self) -> WebhookReceiver:
        receiver = self.app.state.webhook_receiver
        assert isinstance(receiver, WebhookReceiver)
        return receiver

    @property
    def connections(self) -> int:
        return len(self.server.server_state.connections)


@asynccontextmanager
async def served(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp, *, http: str, **settings: Any
) -> AsyncIterator[Served]:
    """The real app (SQLite) under uvicorn on 127.0.0.1, in this test's event loop."""
    store = Store.open(f"sqlite:///{tmp_path / 'served.db'}")

    async def run_job(_run_id: str) -> None:
        pass

    dispatcher = InProcessDispatcher(run_job=run_job, max_concurrent_runs=1)
    app = create_app(
        make_settings(tmp_path, gh, **settings),
        store=store,
        dispatcher=dispatcher,
        github=github_app,
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=http,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # a failed test leaves no upload that holds up the exit
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn stopped during start-up"
            await asyncio.sleep(0.01)
        yield Served(app, server, server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await serving
        await store.close()


async def eventually(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not check():
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


def request_head(
    *,
    declared: int | None,
    delivery: str,
    event: str = "issues",
    body: bytes = b"",
    keep_alive: bool = False,
) -> bytes:
    """A delivery's request line and headers, signed for `body`; `declared=None`: chunked.
    `keep_alive`: the client does not ask to close, so only the server can."""
    headers = signed_headers(event, body, delivery=delivery)
    if declared is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(declared)
    lines = ["POST /webhooks/github HTTP/1.1", "Host: 127.0.0.1"]
    lines += [] if keep_alive else ["Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Upload:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def start(cls, port: int, head: bytes, body: bytes) -> Upload:
        """Send the request's head and the first part of its body, then stall."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body)
        await writer.drain()
        return cls(reader, writer)

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The response, read until the server closes the connection (EOF)."""
        raw = await asyncio.wait_for(self.reader.read(), DEADLINE)
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines)
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize("http", HTTP_IMPLEMENTATIONS)
async def test_a_stalled_body_is_answered_408_and_its_connection_closed(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp, http: str
) -> None:
    async with served(tmp_path, gh, github_app, http=http, webhook_read_timeout=0.5) as app:
        upload = await Upload.start(
            app.port,
            request_head(declared=10_000, delivery="slow", keep_alive=True),
            b'{"action": "lab',
        )
        await eventually(lambda: app.receiver.pending_bytes > 0, "the first bytes are held")

        status, headers, body = await upload.answer()  # read to EOF: the server closed it

        assert status == 408
        assert headers["connection"] == "close"
        assert "did not arrive within 0.5 seconds" in json.loads(body)["error"]
        assert app.receiver.pending_bytes == 0
        await eventually(lambda: app.connections == 0, "uvicorn dropped the connection")
        upload.close()


async def test_a_body_that_arrives_in_time_is_not_cut_off(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    """Slow but whole within the timeout: answered as usual."""
    ping = json.dumps(payload("ping", installation=None)).encode()
    head = request_head(declared=len(ping), delivery="in-time", event="ping", body=ping)
    async with served(tmp_path, gh, github_app, http="h11", webhook_read_timeout=30) as app:
        upload = await Upload.start(app.port, head, ping[:10])
        await eventually(lambda: app.receiver.pending_bytes == 10, "the first bytes are held")
        upload.writer.write(ping[10:])
        status, _, answer = await upload.answer()
        upload.close()
    assert (status, json.loads(answer)["status"]) == (200, "pong")
    assert app.receiver.pending_bytes == 0


async def test_stalled_uploads_hold_at_most_the_cap_and_new_ones_get_503(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    """The finding: uploads that announce 25 MB and stall pinned memory, forever. Now what
    they hold together is capped (64 MiB by default): a request whose announced body does not
    fit, or whose bytes would pass the cap, is told to retry, while small deliveries still
    fit; closing the stalled uploads releases everything."""
    cap = 64 * MiB
    uploads: list[Upload] = []

    async def upload(declared: int | None, body: bytes, delivery: str) -> Upload:
        started = await Upload.start(
            app.port, request_head(declared=declared, delivery=delivery), body
        )
        uploads.append(started)
        return started

    async with served(tmp_path, gh, github_app, http="h11", webhook_read_timeout=600) as app:
        try:
            for index in range(2):
                await upload(25 * MiB, b"x" * (24 * MiB), f"big-{index}")
            await eventually(lambda: app.receiver.pending_bytes == 48 * MiB, "48 MiB held")

            # Announcing is not holding: a stalled head counts nothing, and is let in.
            await upload(10 * MiB, b"", "announced")
            # 48 MiB held + 25 MiB announced > 64 MiB: refused before reading a byte.
            status, headers, body = await (await upload(25 * MiB, b"", "too-big")).answer()
            assert (status, headers["retry-after"], headers["connection"]) == (
                503,
                "600",  # the read timeout: by then every body held now is gone
                "close",
            )
            assert "redeliver" in json.loads(body)["error"]

            # No Content-Length: refused when its bytes would pass the cap, not before.
            chunk = b"1000001\r\n" + b"y" * (16 * MiB + 1)  # one chunk of 16 MiB + 1 byte
            status, headers, _ = await (await upload(None, chunk, "chunked")).answer()
            assert (status, headers["retry-after"]) == (503, "600")
            assert app.receiver.pending_bytes == 48 * MiB <= cap

            # A delivery that fits is served while the big ones stall.
            ping = json.dumps(payload("ping", installation=None)).encode()
            head = request_head(declared=len(ping), delivery="small", event="ping", body=ping)
            status, _, body = await (await Upload.start(app.port, head, ping)).answer()
            assert (status, json.loads(body)["status"]) == (200, "pong")
        finally:
            for started in uploads:
                started.close()
        await eventually(lambda: app.receiver.pending_bytes == 0, "everything released")
        await eventually(lambda: app.connections == 0, "uvicorn dropped the connections")
