"""Choose the sandbox backend from settings (OPEN_SWE_SANDBOX, DAYTONA_API_KEY, local mode)."""

from __future__ import annotations

from pathlib import Path

import structlog

from app.config import ConfigError, Settings
from app.sandbox.types import SandboxError, SandboxProvider

LOCAL_WARNING = (
    "local sandbox: code from the repositories open-swe works on runs on this machine; "
    "set DAYTONA_API_KEY (or OPEN_SWE_SANDBOX=daytona) to run it in Daytona sandboxes instead"
)
# One line each: `serve` and `worker` refuse, `run` warns (it works on your own repository).
UNCONFINED_REFUSAL = (
    "the local sandbox is not confined here ({why}): code from GitHub would run on this "
    "machine with its network and files; install bubblewrap, use Daytona (DAYTONA_API_KEY), "
    "or set OPEN_SWE_ALLOW_UNCONFINED=true to accept that"
)
UNCONFINED_WARNING = (
    "warning: the local sandbox is not confined here ({why}): the task's commands run on this "
    "machine with its network and your user's files"
)


def local_root(settings: Settings) -> Path:
    """Where local sandboxes live: <data dir>/sandboxes (never the project path)."""
    return settings.data_dir / "sandboxes"


def make_provider(settings: Settings) -> SandboxProvider:
    """The provider for settings.sandbox_kind; logs the isolation in effect. ConfigError when
    the settings cannot work (no Daytona key, no such sandbox user, an unreachable root)."""
    log = structlog.get_logger(__name__)
    if settings.sandbox_kind == "daytona":
        # Imported here: the Daytona SDK is heavy and local mode never needs it. The provider
        # raises ConfigError itself when DAYTONA_API_KEY is missing.
        from app.sandbox.daytona import DaytonaProvider

        daytona: SandboxProvider = DaytonaProvider(settings)
        log.info("sandbox backend", backend="daytona", isolation=daytona.isolation)
        return daytona

    from app.sandbox.local import LocalProvider
    from app.sandbox.local_user import sandbox_user

    try:
        local = LocalProvider(
            local_root(settings),
            user=sandbox_user(settings.sandbox_user),
            network_ceiling=settings.sandbox_network,
            secrets=settings.secret_values(),
            command_timeout=settings.command_timeout,
        )
    except SandboxError as exc:
        raise ConfigError(str(exc)) from None
    log.warning(LOCAL_WARNING, backend="local", isolation=local.isolation, root=str(local.root))
    return local


def unconfined_reason(provider: SandboxProvider) -> str | None:
    """Why the provider's code would run unconfined on this machine, or None when it is not."""
    if provider.confined:
        return None
    return provider.isolation.split(";", 1)[0].removeprefix("none: ")
