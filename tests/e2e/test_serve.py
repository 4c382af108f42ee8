"""`open-swe serve` as people start it: a process configured by its environment runs labelled
issues with the agent job by default, in the sandbox whose isolation it announced at start-up.

(The server's default GitHub client paces its requests like GitHub asks, a second between
writes, so this test takes the quickest real path: a run that fails at once, on its
status comment, for want of a model key.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.hosts import status
from app.sandbox.factory import LOCAL_WARNING
from app.webhooks.event import sign
from tests.e2e.conftest import (
    SLUG,
    WEBHOOK_SECRET,
    World,
    eventually,
    labeled,
)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PORT": str(port), **env},
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.communicate()}")
        try:
            httpx.get(f"{base}/healthz", timeout=0.5)
            return process, base
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"serve did not start: {process.communicate()}")


async def test_serve_runs_labelled_issues_with_the_agent_job(world: World, tmp_path: Path) -> None:
    gh = world.gh
    assert gh.private_key_pem is not None
    process, base = start_serve(
        tmp_path,
        {
            "GITHUB_APP_ID": str(gh.app_id),
            "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem.replace("\n", "\\n"),
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GITHUB_APP_SLUG": SLUG,
            "GITHUB_API_URL": gh.url,
            "GITHUB_WEB_URL": gh.web_url,
            "OPEN_SWE_DATA_DIR": str(tmp_path / "data"),
            "OPEN_SWE_SANDBOX": "local",
            "ANTHROPIC_BASE_URL": world.model.url,
            "OPEN_SWE_LOG_FORMAT": "json",
        },
    )
    try:
        body = json.dumps(labeled("open-swe-auto")).encode()
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "serve-1",
            "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET.encode()),
            "Content-Type": "application/json",
        }
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{base}/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202

        def failed_status() -> str | None:
            found = world.status_comments()
            return found[0].body if found and status.HEADER_FAILED[:10] in found[0].body else None

        comment = await eventually(failed_status, "the run's final status comment")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert "ANTHROPIC_API_KEY is not set" in comment
    assert status.NEXT_SET_VARIABLE.format(variable="ANTHROPIC_API_KEY") in comment
    assert process.returncode == 0, err
    logs = out + err
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    [sandbox] = [e for e in events if e["event"] == LOCAL_WARNING]  # said once, at start-up
    assert sandbox["isolation"].startswith(("bubblewrap", "none"))
    [model] = [e for e in events if e["event"] == "runs will fail until this is fixed"]
    assert "ANTHROPIC_API_KEY is not set" in model["error"]
    delivered = next(i for i, e in enumerate(events) if e["event"] == "delivery processed")
    assert events.index(sandbox) < delivered  # at start-up, before any work
    assert events.index(model) < delivered
    for secret in world.secrets():
        assert secret not in logs
    assert world.model.requests == []
