"""`open-swe worker` (and `serve --no-worker`): refused without the queue, a real process with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from app import cli
from app.cli import main
from app.config import Settings, load_settings
from app.runs.models import thread_key
from app.server import create_app
from tests.runs.postgres_schema import postgres_schema
from tests.webhooks.conftest import (
    REPO,
    SECRET,
    SLUG,
    app_client,
    labeled,
    make_settings,
    seeded_github,
    signed_headers,
)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No settings from the outer environment or a .env: only what the test sets."""
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, str):
            monkeypatch.delenv(field.validation_alias, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv", [["worker"], ["serve", "--no-worker"]])
def test_without_postgres_there_is_no_queue_to_work(
    clean_env: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("open-swe: configuration error: ")
    assert "needs the procrastinate queue: a PostgreSQL DATABASE_URL" in err


def test_procrastinate_on_sqlite_is_a_configuration_error(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPEN_SWE_QUEUE", "procrastinate")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("open-swe: configuration error: OPEN_SWE_QUEUE: ")
    assert "PostgreSQL" in err


def test_the_queue_follows_the_database(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().queue_backend == "inprocess"  # SQLite, the embedded default
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    assert load_settings().queue_backend == "procrastinate"
    monkeypatch.setenv("OPEN_SWE_QUEUE", "inprocess")  # one process on PostgreSQL, by choice
    assert load_settings().queue_backend == "inprocess"


def test_serve_no_worker_only_enqueues(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Settings] = []

    def serve(settings: Settings, **_: object) -> int:
        served.append(settings)
        return 0

    monkeypatch.setattr(cli, "_serve", serve)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    assert main(["serve"]) == 0
    assert main(["serve", "--no-worker"]) == 0
    assert [s.serve_worker for s in served] == [True, False]


def test_a_worker_needs_the_github_app(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    assert main(["worker"]) == 2
    assert "no GitHub App configured" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.postgres
async def test_open_swe_worker_processes_a_delivery_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with postgres_schema() as pg:
        with seeded_github() as gh:
            assert gh.private_key_pem is not None
            settings = make_settings(tmp_path, gh, database_url_raw=pg.url, serve_worker=False)
            web = create_app(settings, github=app_client(gh))  # accepts and enqueues only
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(tmp_path),
                "OPEN_SWE_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": pg.url,
                "GITHUB_APP_ID": str(gh.app_id),
                "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem.replace("\n", "\\n"),
                "GITHUB_WEBHOOK_SECRET": SECRET,
                "GITHUB_APP_SLUG": SLUG,
                "GITHUB_API_URL": gh.url,
                "GITHUB_WEB_URL": gh.web_url,
                "OPEN_SWE_SANDBOX": "local",
                "OPEN_SWE_WORKER_SHUTDOWN_TIMEOUT": "1",
            }
            worker = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "app", "worker", "--queues", "deliveries"),
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                async with (
                    web.router.lifespan_context(web),
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=web), base_url="http://web"
                    ) as client,
                ):
                    body = json.dumps(labeled("open-swe")).encode()
                    headers = signed_headers("issues", body, delivery="from-the-front-door")
                    answer = await client.post("/webhooks/github", content=body, headers=headers)
                    assert answer.status_code == 202
                    async with asyncio.timeout(60):  # a cold interpreter imports a lot
                        while not gh.reactions_on(REPO, "issue", 1):
                            assert worker.returncode is None, await worker.communicate()
                            await asyncio.sleep(0.1)
                worker.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    err = (await worker.communicate())[1].decode()
            finally:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
            assert worker.returncode == 0, err
            assert "worker started" in err
            assert "Traceback" not in err
            assert SECRET not in err
            assert len(gh.reactions_on(REPO, "issue", 1)) == 1
            delivery = await pg.store.delivery("from-the-front-door")
            assert delivery is not None
            assert delivery.outcome == "started"
            run = await pg.store.active_run(thread_key(REPO, 1))
            assert run is not None
            jobs = await pg.rows("SELECT task_name, lock, status::text FROM procrastinate_jobs")
            # The run waits on the runs queue, locked to its thread, for a runs worker.
            assert jobs == [("open_swe.run", f"thread:{thread_key(REPO, 1)}", "todo")]
