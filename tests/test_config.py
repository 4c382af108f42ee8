"""Settings: read from the environment only, secrets hidden, one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings, load_settings

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, str):
            monkeypatch.delenv(field.validation_alias, raising=False)
    monkeypatch.chdir(tmp_path)


def test_nothing_configured_is_setup_mode() -> None:
    settings = load_settings()
    assert not settings.app_configured
    assert settings.webhook_secrets == []


def test_app_configured_needs_id_key_and_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GITHUB_APP_ID", "12")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
    assert not load_settings().app_configured
    key = tmp_path / "key.pem"
    key.write_text(PEM)
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY_PATH", str(key))
    settings = load_settings()
    assert settings.app_configured
    assert settings.private_key_pem is not None
    assert settings.private_key_pem.get_secret_value() == PEM
    assert PEM in settings.secret_values()


def test_webhook_secrets_current_first_then_previous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "new")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET_PREVIOUS", "old")
    assert load_settings().webhook_secrets == [b"new", b"old"]


def test_a_one_line_pem_is_unescaped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", PEM.replace("\n", "\\n"))
    key = load_settings().github_app_private_key
    assert key is not None
    assert key.get_secret_value() == PEM


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "hunter2-webhook")
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", PEM)
    settings = load_settings()
    assert "hunter2-webhook" not in repr(settings)
    assert "MIIE" not in repr(settings)
    assert "hunter2-webhook" in settings.secret_values()


def test_the_database_defaults_to_sqlite_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPEN_SWE_DATA_DIR", str(tmp_path / "d"))
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'open-swe.db'}"
    assert not settings.uses_postgres
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = load_settings()
    assert (settings.database_url, settings.uses_postgres) == ("postgresql://u@h/db", True)


def test_urls_lose_their_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3/")
    assert load_settings().github_api_url == "https://ghe.example.com/api/v3"


def test_the_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPEN_SWE_MAX_CONCURRENT_RUNS=5\nGITHUB_APP_SLUG=my-bot\n")
    settings = load_settings()
    assert (settings.max_concurrent_runs, settings.github_app_slug) == (5, "my-bot")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "0"),
        ("PORT", "http"),
        ("GITHUB_APP_ID", "abc"),
        ("GITHUB_API_URL", "ftp://example.com"),
        ("DATABASE_URL", "mysql://x/y"),
        ("OPEN_SWE_MAX_CONCURRENT_RUNS", "0"),
        ("OPEN_SWE_SANDBOX", "docker"),
        ("OPEN_SWE_QUEUE_PREFIX", "open swe"),
        ("OPEN_SWE_QUEUE_PREFIX", "p" * 30),  # its channel names would exceed 63 bytes
        ("OPEN_SWE_SANDBOX_NETWORK", "open"),
        ("OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST", "203.0.113.0/24,github.com"),
        ("OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST", "2001:db8::/32"),  # IPv4 only, as Daytona
        ("OPEN_SWE_ALLOW_UNCONFINED", "maybe"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


def test_an_unreadable_key_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY_PATH", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"^GITHUB_APP_PRIVATE_KEY_PATH: cannot read"):
        load_settings()


def test_the_queue_prefix_may_take_the_longest_name_postgresql_notifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().queue_prefix == "open-swe"
    monkeypatch.setenv("OPEN_SWE_QUEUE_PREFIX", "test_0123456789abcdef-_ABCDEF")
    assert load_settings().queue_prefix == "test_0123456789abcdef-_ABCDEF"


def test_a_database_password_is_a_secret_and_hidden_from_repr() -> None:
    settings = load_settings(_env_file=None, DATABASE_URL="postgresql://swe:p%40ss-w0rd@db/openswe")
    assert "p@ss-w0rd" in settings.secret_values()
    assert "w0rd" not in repr(settings)


def test_sandbox_network_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.sandbox_network == "always"  # repositories choose (default setup)
    assert settings.sandbox_user == "nobody"
    assert settings.allow_unconfined is False
    assert settings.daytona_network_allow_list is None
    monkeypatch.setenv("OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST", " 203.0.113.0/24, 198.51.100.7 ")
    assert load_settings().daytona_network_allow_list == "203.0.113.0/24,198.51.100.7/32"
