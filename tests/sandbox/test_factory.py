"""Backend selection: Daytona when configured, else local with a warning."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.config import ConfigError, Settings
from app.sandbox.factory import LOCAL_WARNING, local_root, make_provider
from app.sandbox.local import LocalProvider

_SANDBOX_VARIABLES = (
    "OPEN_SWE_SANDBOX",
    "OPEN_SWE_LOCAL_MODE",
    "OPEN_SWE_LOCAL_PROJECT_PATH",
    "OPEN_SWE_DATA_DIR",
    "DAYTONA_API_KEY",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SANDBOX_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[call-arg]


class RecordingDaytonaProvider:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.isolation = "daytona: test double"


@pytest.fixture
def daytona_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("app.sandbox.daytona")
    module.DaytonaProvider = RecordingDaytonaProvider  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app.sandbox.daytona", module)
    return module


def test_local_by_default_with_a_warning(tmp_path: Path) -> None:
    with capture_logs() as logs:
        provider = make_provider(settings(tmp_path))
    assert isinstance(provider, LocalProvider)
    assert provider.root == (tmp_path / "data" / "sandboxes").resolve()
    [warning] = [log for log in logs if log["log_level"] == "warning"]
    assert warning["event"] == LOCAL_WARNING
    assert warning["isolation"] == provider.isolation


def test_sandboxes_live_in_the_data_dir_never_in_the_project_path(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    chosen = settings(tmp_path, local_mode=True, local_project_path=project)
    assert chosen.sandbox_kind == "local"
    provider = make_provider(chosen)
    assert isinstance(provider, LocalProvider)
    assert local_root(chosen) == tmp_path / "data" / "sandboxes"
    assert provider.root == (tmp_path / "data" / "sandboxes").resolve()
    provider.acquire({}).destroy()
    assert list(project.iterdir()) == []  # not even a lock file


def test_local_sandboxes_redact_every_configured_secret(tmp_path: Path) -> None:
    provider = make_provider(settings(tmp_path, github_webhook_secret="whsec-configured-123"))
    box = provider.acquire({})
    assert "whsec-configured-123" not in box.run("echo whsec-configured-123").output
    box.destroy()


def test_daytona_when_its_key_is_set(tmp_path: Path, daytona_module: types.ModuleType) -> None:
    chosen = settings(tmp_path, daytona_api_key="dtn-key")
    provider = make_provider(chosen)
    assert isinstance(provider, RecordingDaytonaProvider)
    assert provider.settings is chosen


def test_explicit_local_wins_over_a_daytona_key(
    tmp_path: Path, daytona_module: types.ModuleType
) -> None:
    provider = make_provider(settings(tmp_path, sandbox="local", daytona_api_key="dtn-key"))
    assert isinstance(provider, LocalProvider)


def test_explicit_daytona_without_a_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DAYTONA_API_KEY"):
        make_provider(settings(tmp_path, sandbox="daytona"))


def test_as_root_commands_run_as_the_sandbox_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root switches to a sandbox user")
    provider = make_provider(settings(tmp_path, sandbox_network="setup"))
    assert isinstance(provider, LocalProvider)
    assert provider.user is not None
    assert provider.user.name == "nobody"
    assert provider.network_ceiling == "setup"
    box = provider.acquire({})
    assert box.run("id -un").output == "nobody\n"
    box.destroy()


def test_a_sandbox_user_that_cannot_work_is_a_configuration_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root switches to a sandbox user")
    with pytest.raises(ConfigError, match="OPEN_SWE_SANDBOX_USER: there is no user"):
        make_provider(settings(tmp_path, sandbox_user="no-such-sandbox-user"))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="cannot reach"):
        make_provider(Settings(_env_file=None, data_dir=private / "data"))  # type: ignore[call-arg]
