"""The durable store: deliveries, installations, runs, the per-thread command inbox, usage,
the runs' transcripts and CI autofix.

One `Store`, its queries grouped by family of tables (a module each beside this one). Every
write that must not happen twice (a delivery, a run per thread, a command per delivery) is
guarded by a key in the database, not by a check-then-act in Python.
"""

from __future__ import annotations

from app.runs.store.base import async_url
from app.runs.store.ci import CiStore
from app.runs.store.commands import CommandStore
from app.runs.store.deliveries import DeliveryStore
from app.runs.store.events import EventStore
from app.runs.store.installations import InstallationStore
from app.runs.store.retention import RetentionStore
from app.runs.store.runs import RunStore
from app.runs.store.usage import UsageStore

__all__ = ["Store", "async_url"]


class Store(
    DeliveryStore,
    InstallationStore,
    RunStore,
    CommandStore,
    RetentionStore,
    EventStore,
    CiStore,
    UsageStore,
):
    """All persistence. Construct with `Store.open(url)`; call `migrate()` once at start-up."""
