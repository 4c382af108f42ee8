"""Settings: read from the environment only, secrets hidden, one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices

from app.config import ConfigError, Settings, load_settings

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        for name in alias.choices if isinstance(alias, AliasChoices) else [alias]:
            if isinstance(name, str):
                monkeypatch.delenv(name, raising=False)
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
        ("OPEN_SWE_MAX_CI_FIX_ATTEMPTS", "-1"),
        ("OPEN_SWE_MAX_CI_FIX_ATTEMPTS", "three"),
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


@pytest.mark.parametrize("name", ["GITHUB_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET_PREVIOUS"])
@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_a_blank_webhook_secret_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """An empty HMAC key is a key anyone can sign deliveries with (the finding)."""
    monkeypatch.setenv("GITHUB_APP_ID", "12")
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", PEM)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "the-real-secret")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{name}: ")
    assert "blank" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_blank_secret_in_the_env_file_stops_start_up_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GITHUB_APP_ID=12\nGITHUB_WEBHOOK_SECRET=\n")
    with pytest.raises(ConfigError, match=r"^GITHUB_WEBHOOK_SECRET: .*blank"):
        load_settings()


def test_webhook_limits_default_and_refuse_a_cap_below_one_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert (settings.webhook_read_timeout, settings.webhook_max_pending_bytes) == (10, 64 << 20)
    for name, value in [
        ("OPEN_SWE_WEBHOOK_READ_TIMEOUT", "0"),
        ("OPEN_SWE_WEBHOOK_MAX_PENDING_BYTES", str((25 << 20) - 1)),  # GitHub sends up to 25 MiB
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=f"^{name}: "):
            load_settings()
        monkeypatch.delenv(name)


def test_the_apps_oauth_client_is_read_and_its_secret_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_APP_CLIENT_ID", "Iv1.8a61f9b3a7aba766")
    monkeypatch.setenv("GITHUB_APP_CLIENT_SECRET", "client-secret-value")
    settings = load_settings()
    assert settings.github_app_client_id == "Iv1.8a61f9b3a7aba766"
    assert "client-secret-value" in settings.secret_values()
    assert "client-secret-value" not in repr(settings)


def test_the_oauth_client_names_setup_used_to_write_are_read_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GITHUB_CLIENT_ID=Iv1.old\nGITHUB_CLIENT_SECRET=old-secret\n")
    settings = load_settings()
    assert settings.github_app_client_id == "Iv1.old"
    assert settings.github_app_client_secret is not None
    assert settings.github_app_client_secret.get_secret_value() == "old-secret"


@pytest.mark.parametrize(
    ("variables", "base_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"HOST": "::"}, "http://[::1]:8000"),
        ({"HOST": "::1"}, "http://[::1]:8000"),
        ({"HOST": "203.0.113.5"}, "http://203.0.113.5:8000"),
        ({"OPEN_SWE_PUBLIC_URL": "https://swe.example.com/"}, "https://swe.example.com"),
    ],
)
def test_the_base_url_is_the_public_url_or_where_the_server_listens(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], base_url: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings().base_url == base_url


def test_ci_fix_attempts_default_to_three(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).max_ci_fix_attempts == 3  # type: ignore[call-arg]
    monkeypatch.setenv("OPEN_SWE_MAX_CI_FIX_ATTEMPTS", "5")
    assert Settings(_env_file=None).max_ci_fix_attempts == 5  # type: ignore[call-arg]
