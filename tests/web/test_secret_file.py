"""The session secret: written once to the env file, privately; every process reads the same."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from app.config import Settings
from app.web.secret_file import SESSION_SECRET_KEY, ensure_session_secret


def test_a_missing_secret_is_written_privately_and_kept(tmp_path: Path) -> None:
    env = tmp_path / "conf" / ".env"
    env.parent.mkdir()
    env.write_text("GITHUB_APP_ID='42'\nOPEN_SWE_LOG_LEVEL=debug")  # no final newline

    secret = ensure_session_secret(env)

    assert len(secret) >= 48
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    lines = env.read_text().splitlines()
    assert lines == [
        "GITHUB_APP_ID='42'",
        "OPEN_SWE_LOG_LEVEL=debug",
        f"{SESSION_SECRET_KEY}='{secret}'",
    ]
    assert ensure_session_secret(env) == secret  # the file is the source of truth
    loaded = Settings(_env_file=env)  # type: ignore[call-arg]
    assert loaded.session_secret is not None
    assert loaded.session_secret.get_secret_value() == secret
    assert [p.name for p in env.parent.iterdir()] == [".env"]  # no temporary file left


def test_an_existing_secret_is_used(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"{SESSION_SECRET_KEY}=already-there\n")
    assert ensure_session_secret(env) == "already-there"
    assert env.read_text() == f"{SESSION_SECRET_KEY}=already-there\n"


def _ensure(path: str, results: multiprocessing.Queue[str]) -> None:
    results.put(ensure_session_secret(Path(path)))


def test_processes_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [context.Process(target=_ensure, args=(str(env), results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    secrets = {results.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(timeout=60)

    assert len(secrets) == 1
    assert env.read_text().count(SESSION_SECRET_KEY) == 1
