"""Settings: the only reader of os.environ and .env. Secrets are SecretStr, hidden from repr."""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "anthropic:claude-sonnet-4-5"
MAX_WEBHOOK_BODY_BYTES = 25 * 1024 * 1024  # GitHub never delivers more


class ConfigError(Exception):
    """A setting is wrong or missing; the message names the variable and fits on one line."""


class Settings(BaseSettings):
    """Everything open-swe reads from its environment, grouped by the part that uses it."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    # GitHub App
    github_app_id: int | None = Field(None, validation_alias="GITHUB_APP_ID", gt=0)
    github_app_private_key: SecretStr | None = Field(
        None, validation_alias="GITHUB_APP_PRIVATE_KEY"
    )
    github_app_private_key_path: Path | None = Field(
        None, validation_alias="GITHUB_APP_PRIVATE_KEY_PATH"
    )
    github_app_slug: str | None = Field(None, validation_alias="GITHUB_APP_SLUG")
    github_webhook_secret: SecretStr | None = Field(None, validation_alias="GITHUB_WEBHOOK_SECRET")
    github_webhook_secret_previous: SecretStr | None = Field(
        None, validation_alias="GITHUB_WEBHOOK_SECRET_PREVIOUS"
    )
    # The App's OAuth client, for signing people in (setup writes them). GITHUB_CLIENT_ID/_SECRET
    # are what setup wrote before these names existed.
    github_app_client_id: str | None = Field(
        None, validation_alias=AliasChoices("GITHUB_APP_CLIENT_ID", "GITHUB_CLIENT_ID")
    )
    github_app_client_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GITHUB_APP_CLIENT_SECRET", "GITHUB_CLIENT_SECRET")
    )
    github_api_url: str = Field("https://api.github.com", validation_alias="GITHUB_API_URL")
    github_web_url: str = Field("https://github.com", validation_alias="GITHUB_WEB_URL")

    # Server and storage
    data_dir: Path = Field(Path(".open-swe"), validation_alias="OPEN_SWE_DATA_DIR")
    # repr=False: a PostgreSQL URL may carry a password.
    database_url_raw: str | None = Field(None, validation_alias="DATABASE_URL", repr=False)
    host: str = Field("127.0.0.1", validation_alias="HOST")
    port: int = Field(8000, validation_alias="PORT", ge=1, le=65535)
    public_url: str | None = Field(None, validation_alias="OPEN_SWE_PUBLIC_URL")
    env_file_path: Path = Field(Path(".env"), validation_alias="OPEN_SWE_ENV_FILE")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias="OPEN_SWE_LOG_LEVEL"
    )
    log_format: Literal["console", "json"] = Field(
        "console", validation_alias="OPEN_SWE_LOG_FORMAT"
    )
    max_concurrent_runs: int = Field(2, validation_alias="OPEN_SWE_MAX_CONCURRENT_RUNS", ge=1)
    # The webhook endpoint under abuse: a body must arrive whole within the timeout (GitHub
    # sends it at once), and bodies not yet verified hold at most this many bytes together
    # (at least one delivery of GitHub's largest, 25 MiB).
    webhook_read_timeout: float = Field(
        10.0, validation_alias="OPEN_SWE_WEBHOOK_READ_TIMEOUT", gt=0
    )
    webhook_max_pending_bytes: int = Field(
        64 * 1024 * 1024,
        validation_alias="OPEN_SWE_WEBHOOK_MAX_PENDING_BYTES",
        ge=MAX_WEBHOOK_BODY_BYTES,
    )
    # Work queue: in-process, or procrastinate on PostgreSQL (default there) for many workers
    queue: Literal["inprocess", "procrastinate"] | None = Field(
        None, validation_alias="OPEN_SWE_QUEUE"
    )
    # Queue names are `<prefix>-deliveries` and `<prefix>-runs`. procrastinate's notifications
    # are database-wide, so deployments sharing a database (in other schemas) need their own.
    queue_prefix: str = Field("open-swe", validation_alias="OPEN_SWE_QUEUE_PREFIX")
    serve_worker: bool = Field(True, validation_alias="OPEN_SWE_SERVE_WORKER")
    worker_shutdown_timeout: float = Field(
        30.0, validation_alias="OPEN_SWE_WORKER_SHUTDOWN_TIMEOUT", ge=0
    )
    # Faults never lose deliveries: missed ones are asked again of GitHub every N minutes (0:
    # never); work recorded but not queued is queued within seconds; old records are pruned.
    redelivery_sweep_minutes: float = Field(
        10.0, validation_alias="OPEN_SWE_REDELIVERY_SWEEP_MINUTES", ge=0
    )
    outbox_sweep_seconds: float = Field(5.0, validation_alias="OPEN_SWE_OUTBOX_SWEEP_SECONDS", gt=0)
    retention_days: int = Field(30, validation_alias="OPEN_SWE_RETENTION_DAYS", ge=1)
    # CI autofix (app.ci): fix runs per pull request before open-swe leaves CI to people.
    max_ci_fix_attempts: int = Field(3, validation_alias="OPEN_SWE_MAX_CI_FIX_ATTEMPTS", ge=0)

    # Sandboxes
    sandbox: Literal["daytona", "local"] | None = Field(None, validation_alias="OPEN_SWE_SANDBOX")
    local_mode: bool = Field(False, validation_alias="OPEN_SWE_LOCAL_MODE")
    local_project_path: Path | None = Field(None, validation_alias="OPEN_SWE_LOCAL_PROJECT_PATH")
    daytona_api_key: SecretStr | None = Field(None, validation_alias="DAYTONA_API_KEY")
    daytona_api_url: str = Field("https://app.daytona.io/api", validation_alias="DAYTONA_API_URL")
    daytona_target: str | None = Field(None, validation_alias="DAYTONA_TARGET")
    daytona_snapshot: str = Field(
        "open-swe-vcpu2-mem4-disk5", validation_alias="OPEN_SWE_DAYTONA_SNAPSHOT"
    )
    daytona_auto_stop_minutes: int = Field(
        60, validation_alias="OPEN_SWE_DAYTONA_AUTO_STOP_MINUTES", ge=0
    )
    daytona_auto_delete_minutes: int = Field(
        15, validation_alias="OPEN_SWE_DAYTONA_AUTO_DELETE_MINUTES", ge=-1
    )
    daytona_create_timeout: float = Field(
        600.0, validation_alias="OPEN_SWE_DAYTONA_CREATE_TIMEOUT", gt=0
    )
    command_timeout: float = Field(600.0, validation_alias="OPEN_SWE_COMMAND_TIMEOUT", gt=0)
    # The most network any repository's sandbox gets (.open-swe.yml `network:` cannot exceed it)
    sandbox_network: Literal["none", "setup", "always"] = Field(
        "always", validation_alias="OPEN_SWE_SANDBOX_NETWORK"
    )
    # Who local sandbox commands run as when open-swe runs as root
    sandbox_user: str = Field("nobody", validation_alias="OPEN_SWE_SANDBOX_USER", min_length=1)
    allow_unconfined: bool = Field(False, validation_alias="OPEN_SWE_ALLOW_UNCONFINED")
    daytona_network_allow_list: str | None = Field(
        None, validation_alias="OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST"
    )

    # Models
    model: str = Field(DEFAULT_MODEL, validation_alias="OPEN_SWE_MODEL")
    plan_model: str | None = Field(None, validation_alias="OPEN_SWE_PLAN_MODEL")
    implement_model: str | None = Field(None, validation_alias="OPEN_SWE_IMPLEMENT_MODEL")
    summarize_model: str | None = Field(None, validation_alias="OPEN_SWE_SUMMARIZE_MODEL")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, validation_alias="ANTHROPIC_BASE_URL")
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    # Provider SDKs retry 429/5xx/timeouts with exponential backoff (honouring retry-after).
    model_timeout: float = Field(300.0, validation_alias="OPEN_SWE_MODEL_TIMEOUT", gt=0)
    model_max_retries: int = Field(4, validation_alias="OPEN_SWE_MODEL_MAX_RETRIES", ge=0)

    # Run limits
    max_model_calls: int = Field(200, validation_alias="OPEN_SWE_MAX_MODEL_CALLS", ge=1)
    max_tokens_per_run: int = Field(3_000_000, validation_alias="OPEN_SWE_MAX_TOKENS_PER_RUN", ge=1)
    max_cost_usd: float = Field(10.0, validation_alias="OPEN_SWE_MAX_COST_USD", gt=0)
    max_run_minutes: float = Field(60.0, validation_alias="OPEN_SWE_MAX_RUN_MINUTES", gt=0)
    max_test_attempts: int = Field(3, validation_alias="OPEN_SWE_MAX_TEST_ATTEMPTS", ge=1)
    # Steps of one agent (a model call and its tool calls are a few each): LangGraph's
    # recursion limit, so a model that never finishes ends with a named limit.
    max_agent_steps: int = Field(1_000, validation_alias="OPEN_SWE_MAX_AGENT_STEPS", ge=10)
    # A run that meets a transient fault (model, GitHub, database unavailable) waits at its
    # last checkpoint and resumes by itself, backing off from the first wait; it fails only
    # once the fault has lasted this long.
    transient_retry_minutes: float = Field(
        30.0, validation_alias="OPEN_SWE_TRANSIENT_RETRY_MINUTES", gt=0
    )
    transient_first_wait_seconds: float = Field(
        15.0, validation_alias="OPEN_SWE_TRANSIENT_FIRST_WAIT_SECONDS", gt=0
    )

    # Web layer: dashboard sessions (generated into the env file when absent) and /metrics
    session_secret: SecretStr | None = Field(None, validation_alias="OPEN_SWE_SESSION_SECRET")
    metrics_token: SecretStr | None = Field(None, validation_alias="OPEN_SWE_METRICS_TOKEN")

    # Tracing with LangSmith (LangChain reads these; here so a .env file can set them too)
    langsmith_tracing: bool = Field(False, validation_alias="LANGSMITH_TRACING")
    langsmith_api_key: SecretStr | None = Field(None, validation_alias="LANGSMITH_API_KEY")
    langsmith_project: str | None = Field(None, validation_alias="LANGSMITH_PROJECT")
    langsmith_endpoint: str | None = Field(None, validation_alias="LANGSMITH_ENDPOINT")

    @field_validator("github_app_private_key", mode="before")
    @classmethod
    def _unescape_pem(cls, value: Any) -> Any:
        # Many hosts only accept one-line values: accept a PEM with literal "\n".
        if isinstance(value, str) and "\\n" in value:
            return value.replace("\\n", "\n")
        return value

    @field_validator("github_webhook_secret", "github_webhook_secret_previous")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty HMAC key is still a key: anyone could sign deliveries with it.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is blank: set the App's webhook secret, or remove the variable")
        return value

    @field_validator("github_api_url", "github_web_url", "daytona_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("daytona_network_allow_list")
    @classmethod
    def _ipv4_networks(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        networks = []
        for item in value.split(","):
            try:
                networks.append(str(ipaddress.IPv4Network(item.strip())))
            except ValueError:
                raise ValueError(
                    f"{item.strip()!r} is not an IPv4 network: use comma-separated CIDRs "
                    "such as 192.0.2.0/24"
                ) from None
        return ",".join(networks)

    @field_validator("database_url_raw")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgres")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @field_validator("queue")
    @classmethod
    def _queue_fits_database(cls, value: str | None, info: ValidationInfo) -> str | None:
        database = info.data.get("database_url_raw") or ""
        if value == "procrastinate" and not database.startswith("postgres"):
            raise ValueError("procrastinate needs DATABASE_URL to be PostgreSQL (postgresql://)")
        return value

    @field_validator("queue_prefix")
    @classmethod
    def _queue_prefix_fits_a_channel(cls, value: str) -> str:
        # procrastinate notifies on "procrastinate_queue_v1#<queue>"; PostgreSQL channel
        # names are at most 63 bytes.
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,29}", value):
            raise ValueError("use 1 to 29 letters, digits, '-' or '_'")
        return value

    # Derived values -------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """DATABASE_URL, or a SQLite file in the data dir (the embedded default)."""
        if self.database_url_raw:
            return self.database_url_raw
        return f"sqlite:///{(self.data_dir / 'open-swe.db').resolve()}"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith("postgres")

    @property
    def base_url(self) -> str:
        """OPEN_SWE_PUBLIC_URL, else the address this server listens on (a wildcard bind means
        the loopback address). Never a request's Host header: any client can send one."""
        if self.public_url:
            return self.public_url.rstrip("/")
        wildcards = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
        host = wildcards.get(self.host, self.host)
        if ":" in host:  # IPv6
            host = f"[{host.strip('[]')}]"
        return f"http://{host}:{self.port}"

    @property
    def queue_backend(self) -> Literal["inprocess", "procrastinate"]:
        """OPEN_SWE_QUEUE, else procrastinate on PostgreSQL and in-process on SQLite."""
        if self.queue is not None:
            return self.queue
        return "procrastinate" if self.uses_postgres else "inprocess"

    @cached_property
    def private_key_pem(self) -> SecretStr | None:
        """The App's private key, from the variable or from the file it names."""
        if self.github_app_private_key is not None:
            return self.github_app_private_key
        if self.github_app_private_key_path is None:
            return None
        try:
            return SecretStr(self.github_app_private_key_path.read_text())
        except OSError as exc:
            raise ConfigError(
                f"GITHUB_APP_PRIVATE_KEY_PATH: cannot read {self.github_app_private_key_path}: "
                f"{exc.strerror}"
            ) from exc

    @property
    def app_configured(self) -> bool:
        """True when the App can authenticate and verify deliveries; else setup mode."""
        return (
            self.github_app_id is not None
            and (
                self.github_app_private_key is not None
                or self.github_app_private_key_path is not None
            )
            and self.github_webhook_secret is not None
        )

    @property
    def webhook_secrets(self) -> list[bytes]:
        """Current secret first, then the previous one during a rotation."""
        secrets = [self.github_webhook_secret, self.github_webhook_secret_previous]
        return [s.get_secret_value().encode() for s in secrets if s is not None]

    @property
    def sandbox_kind(self) -> Literal["daytona", "local"]:
        if self.sandbox is not None:
            return self.sandbox
        if self.local_mode:
            return "local"
        return "daytona" if self.daytona_api_key is not None else "local"

    def model_for(self, step: Literal["plan", "implement", "summarize"]) -> str:
        override = {
            "plan": self.plan_model,
            "implement": self.implement_model,
            "summarize": self.summarize_model,
        }[step]
        return override or self.model

    def secret_values(self) -> list[str]:
        """Every secret this process holds, for redaction of logs and command output."""
        values: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        pem = self.private_key_pem if self.github_app_private_key_path else None
        if pem is not None:
            values.append(pem.get_secret_value())
        database_password = urlsplit(self.database_url).password
        if database_password:
            values.append(unquote(database_password))
        return values


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment (and .env), raising ConfigError with one clear line."""
    try:
        settings = Settings(**overrides)
        _ = settings.private_key_pem  # surface an unreadable key file at start-up
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return settings


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = first["loc"][0] if first["loc"] else "settings"
    field = Settings.model_fields.get(str(loc))
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        alias = str(alias.choices[0])
    name = str(alias) if alias else str(loc).upper()
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{name}: {first['msg']}{more}"
