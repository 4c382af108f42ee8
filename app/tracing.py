"""Tracing with LangSmith, for operators who want it: LangChain traces every model and tool
call when LANGSMITH_TRACING is true and LANGSMITH_API_KEY is set.

LangChain reads these from the process environment only; Settings also reads them from the
.env file, so `export_langsmith` hands those over once at start-up. They never reach a sandbox
(sandbox commands get a scrubbed environment), and the key is redacted like every secret.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from app.config import Settings


def export_langsmith(settings: Settings, environ: MutableMapping[str, str]) -> bool:
    """Put the LangSmith settings where LangChain looks; True when tracing is on."""
    if not settings.langsmith_tracing:
        return False
    values = {
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_API_KEY": (
            settings.langsmith_api_key.get_secret_value() if settings.langsmith_api_key else None
        ),
        "LANGSMITH_PROJECT": settings.langsmith_project,
        "LANGSMITH_ENDPOINT": settings.langsmith_endpoint,
    }
    for name, value in values.items():
        if value:
            environ.setdefault(name, value)
    return True
