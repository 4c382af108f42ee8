"""Choose the sandbox backend from settings (OPEN_SWE_SANDBOX, DAYTONA_API_KEY, local mode)."""

from __future__ import annotations

from pathlib import Path

import structlog

from app.config import Settings
from app.sandbox.base import SandboxProvider

LOCAL_WARNING = (
    "local sandbox: code from the repositories open-swe works on runs on this machine; "
    "set DAYTONA_API_KEY (or OPEN_SWE_SANDBOX=daytona) to run it in Daytona sandboxes instead"
)


def local_root(settings: Settings) -> Path:
    """Where local sandboxes live: OPEN_SWE_LOCAL_PROJECT_PATH, else <data dir>/sandboxes."""
    return settings.local_project_path or settings.data_dir / "sandboxes"


def make_provider(settings: Settings) -> SandboxProvider:
    """The provider for settings.sandbox_kind; logs the isolation in effect."""
    log = structlog.get_logger(__name__)
    if settings.sandbox_kind == "daytona":
        # Imported here: the Daytona SDK is heavy and local mode never needs it. The provider
        # raises ConfigError itself when DAYTONA_API_KEY is missing.
        from app.sandbox.daytona import DaytonaProvider

        daytona: SandboxProvider = DaytonaProvider(settings)
        log.info("sandbox backend", backend="daytona", isolation=daytona.isolation)
        return daytona

    from app.sandbox.local import LocalProvider

    local = LocalProvider(
        local_root(settings),
        secrets=settings.secret_values(),
        command_timeout=settings.command_timeout,
    )
    log.warning(LOCAL_WARNING, backend="local", isolation=local.isolation, root=str(local.root))
    return local
