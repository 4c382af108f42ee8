"""`open-swe serve`: configuration errors stop it with one line; it starts in both modes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from app.cli import main
from app.config import Settings
from app.webhooks.event import sign
from tests.fakes.github import FakeGitHub

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """serve and worker configure structlog for the process, writing to the (captured) stderr."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No settings from the outer environment or a .env: only what the test sets."""
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, str):
            monkeypatch.delenv(field.validation_alias, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"GITHUB_APP_ID": "-3"}, "GITHUB_APP_ID"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"OPEN_SWE_LOG_LEVEL": "loud"}, "OPEN_SWE_LOG_LEVEL"),
        ({"GITHUB_APP_PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "GITHUB_APP_PRIVATE_KEY_PATH"),
        (
            {
                "GITHUB_APP_ID": "12",
                "GITHUB_APP_PRIVATE_KEY": "not a key",
                "GITHUB_WEBHOOK_SECRET": "s",
            },
            "GITHUB_APP_PRIVATE_KEY",
        ),
    ],
)
def test_a_wrong_value_stops_start_up_with_one_line_naming_it(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    named: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"open-swe: configuration error: {named}:")
    assert "not a key" not in err  # a key's value is never echoed


def test_a_wrong_value_in_the_env_file_is_reported_too(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (clean_env / ".env").write_text("OPEN_SWE_MAX_CONCURRENT_RUNS=0\n")
    assert main(["serve"]) == 2
    assert "OPEN_SWE_MAX_CONCURRENT_RUNS" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    """Start `python -m app serve` with exactly the given environment; stop it after."""
    processes: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        full_env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "OPEN_SWE_DATA_DIR": str(tmp_path / "data"),
            "PORT": str(port),
            **env,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            cwd=tmp_path,
            env=full_env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # generous: CI machines can be busy
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                httpx.get(f"{base}/healthz", timeout=0.5)
                return process, base
            except httpx.TransportError:
                time.sleep(0.05)
        process.kill()
        raise AssertionError(f"serve did not start: {process.communicate()[1]}")

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    return err


@pytest.mark.slow
def test_serve_starts_in_setup_mode_and_says_where_to_go(serve: object) -> None:
    process, base = serve({})  # type: ignore[operator]
    assert process.stderr is not None
    line = ""
    while not line.startswith("open-swe: setup mode"):  # printed before the server starts
        line = process.stderr.readline()
        assert line, "serve ended its output without the setup line"
    link = line.rsplit(" ", 1)[-1].strip()
    assert link.startswith(f"{base}/setup?token=")
    assert httpx.get(link).status_code == 200  # the token in the link opens the setup page
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "app_configured": False}
    assert httpx.post(f"{base}/webhooks/github", content=b"{}").status_code == 503
    err = stop(process)
    assert "open-swe: setup mode" not in err  # said once


@pytest.mark.slow
def test_serve_runs_the_configured_app(serve: object) -> None:
    secret = "serve-secret"
    with FakeGitHub() as gh:
        assert gh.private_key_pem is not None
        process, base = serve(  # type: ignore[operator]
            {
                "GITHUB_APP_ID": str(gh.app_id),
                "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem.replace("\n", "\\n"),
                "GITHUB_WEBHOOK_SECRET": secret,
                "GITHUB_API_URL": gh.url,
            }
        )
        assert httpx.get(f"{base}/healthz").json()["app_configured"] is True
        body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
        headers = {
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "cli-ping",
            "X-Hub-Signature-256": sign(body, secret.encode()),
            "Content-Type": "application/json",
        }
        answer = httpx.post(f"{base}/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 200
        assert answer.json() == {"status": "pong", "delivery": "cli-ping"}
        # uvicorn's own access log goes through the redactor too (a query can carry anything)
        assert httpx.get(f"{base}/healthz", params={"probe": secret}).status_code == 200
        err = stop(process)
    assert "setup mode" not in err
    assert "GET /healthz?probe=[redacted]" in err
    assert secret not in err


@pytest.fixture
def without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as a container without bubblewrap: the local sandbox is unconfined."""
    monkeypatch.setattr("app.sandbox.bwrap.find_bubblewrap", lambda executable=None: None)


@pytest.fixture
def app_configured(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with FakeGitHub() as gh:
        assert gh.private_key_pem is not None
        monkeypatch.setenv("GITHUB_APP_ID", str(gh.app_id))
        monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", gh.private_key_pem)
        monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        monkeypatch.setenv("OPEN_SWE_DATA_DIR", str(clean_env / "data"))
        yield


@pytest.mark.usefixtures("app_configured", "without_bubblewrap")
def test_serve_refuses_github_jobs_in_an_unconfined_sandbox(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **_: served.append(app))
    assert main(["serve"]) == 2
    [line] = said(capsys.readouterr().err)
    assert line.startswith(
        "open-swe: configuration error: the local sandbox is not confined here "
        "(bwrap not found): code from GitHub would run on this machine"
    )
    assert "OPEN_SWE_ALLOW_UNCONFINED=true" in line
    assert served == []

    monkeypatch.setenv("OPEN_SWE_ALLOW_UNCONFINED", "true")  # the operator accepts it
    assert main(["serve"]) == 0
    assert len(served) == 1


@pytest.mark.usefixtures("clean_env", "without_bubblewrap")
def test_setup_mode_runs_no_jobs_so_it_is_not_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **_: served.append(app))
    assert main(["serve"]) == 0
    assert len(served) == 1
    assert "open-swe: setup mode" in capsys.readouterr().err


@pytest.mark.usefixtures("app_configured", "without_bubblewrap")
def test_workers_refuse_an_unconfined_sandbox_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    assert main(["worker"]) == 2
    [line] = said(capsys.readouterr().err)
    assert "OPEN_SWE_ALLOW_UNCONFINED=true" in line


def said(err: str) -> list[str]:
    """open-swe's own lines on stderr (the start-up log also names the isolation)."""
    return [line for line in err.splitlines() if line.startswith("open-swe: ")]
