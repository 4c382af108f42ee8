"""LangSmith tracing: its variables work from .env too, stay secret, never reach a sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.config import Settings
from app.tracing import export_langsmith
from tests.sandbox.conftest import fast_provider

KEY = "lsv2_pt_0123456789abcdef_SECRET"


def test_the_variables_a_dotenv_file_sets_are_handed_to_langchain(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"LANGSMITH_TRACING=true\nLANGSMITH_API_KEY={KEY}\nLANGSMITH_PROJECT=swe\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    environ = {"LANGSMITH_PROJECT": "chosen-by-the-environment"}

    assert export_langsmith(settings, environ)
    assert environ == {
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_API_KEY": KEY,
        "LANGSMITH_PROJECT": "chosen-by-the-environment",  # the environment wins, as usual
    }
    assert KEY in settings.secret_values()  # redacted from logs and command output
    assert KEY not in repr(settings)


def test_nothing_is_exported_when_tracing_is_off() -> None:
    settings = Settings(_env_file=None, LANGSMITH_API_KEY=KEY)  # type: ignore[call-arg]
    environ: dict[str, str] = {}
    assert not export_langsmith(settings, environ)
    assert environ == {}


def test_sandbox_commands_never_see_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_API_KEY", KEY)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    assert os.environ["LANGSMITH_API_KEY"] == KEY
    sandbox = fast_provider(tmp_path / "sandboxes", use_bwrap=False).acquire({"repo": "a/b"})
    try:
        output = sandbox.run("env").output
    finally:
        sandbox.destroy()
    assert "LANGSMITH" not in output
    assert KEY not in output
