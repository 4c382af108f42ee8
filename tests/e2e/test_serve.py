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
from tests.agent.conftest import git
from tests.e2e.conftest import (
    SLUG,
    WEBHOOK_SECRET,
    World,
    eventually,
    labeled,
)
from tests.unavailable import unavailable

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(
    tmp_path: Path, env: dict[str, str], *, port: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    port = port or free_port()
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


SETUP_PROBE = """\
setup: |
  python3 - <<'EOF'
  import socket
  for name, port in (("open-swe", {port}), ("postgres", 5432)):
      try:
          socket.create_connection(("127.0.0.1", port), 3).close()
          print(name, "reached")
      except OSError as exc:
          print(name, "unreachable, errno", exc.errno)
  EOF
  exit 3
"""


async def test_the_setup_script_reaches_neither_serve_nor_postgres(
    world: World, tmp_path: Path
) -> None:
    """A repository's setup script, which has the network, probes open-swe's own port and
    PostgreSQL on this machine's loopback (both answer this test), then fails on purpose, so
    the status comment shows what it saw."""
    gh = world.gh
    assert gh.private_key_pem is not None
    port = free_port()
    try:
        socket.create_connection(("127.0.0.1", 5432), 3).close()
    except OSError:
        unavailable("PostgreSQL is not listening on 127.0.0.1:5432")
    checkout = tmp_path / "push"
    git(tmp_path, "clone", "-q", str(world.remote), str(checkout))
    (checkout / ".open-swe.yml").write_text(SETUP_PROBE.format(port=port))
    identity = ("-c", "user.name=Tester", "-c", "user.email=tester@example.com")
    git(checkout, *identity, "commit", "-qam", "a setup script that probes this machine")
    git(checkout, "push", "-q", "origin", "HEAD")
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
            "ANTHROPIC_API_KEY": "sk-ant-not-used-the-run-ends-in-setup",
            "ANTHROPIC_BASE_URL": world.model.url,
            "OPEN_SWE_LOG_FORMAT": "json",
        },
        port=port,
    )
    try:
        body = json.dumps(labeled("open-swe-auto")).encode()
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "serve-probe",
            "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET.encode()),
            "Content-Type": "application/json",
        }
        async with httpx.AsyncClient() as client:
            healthz = await client.get(f"{base}/healthz")  # open-swe answers this test
            assert healthz.status_code == 200
            answer = await client.post(f"{base}/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202

        def failed_status() -> str | None:
            found = world.status_comments()
            return found[0].body if found and status.HEADER_FAILED[:10] in found[0].body else None

        comment = await eventually(failed_status, "the run's final status comment")
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert "the setup script from .open-swe.yml failed with exit code 3" in comment, err
    assert "open-swe unreachable, errno 111" in comment
    assert "postgres unreachable, errno 111" in comment
    assert "open-swe reached" not in comment
    assert "postgres reached" not in comment
