"""The runtime context of a run: settings, host and sandbox provider (never checkpointed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.agent.followups import FollowUps
from app.agent.host import RunHost
from app.agent.usage import UsageLedger
from app.config import Settings
from app.sandbox.base import Sandbox, SandboxProvider
from app.text.redact import Redactor
from app.transcript import NO_TRANSCRIPT, Emitter, Stopwatch, commands_quiet


@dataclass(frozen=True)
class RunContext:
    """Passed to `graph.ainvoke(..., context=...)`; nodes read it from `runtime.context`."""

    settings: Settings
    host: RunHost
    sandboxes: SandboxProvider
    # Instructions sent while the run works, delivered to its agents (None: nobody can).
    follow_ups: FollowUps | None = None
    # Where each model call's usage is written as it ends (None: only the checkpoint keeps it).
    ledger: UsageLedger | None = None
    # Every secret of the run (settings' keys, tokens the host hands out), scrubbed from
    # anything bound for the model or for a person (failure reasons).
    redactor: Redactor = field(default_factory=lambda: Redactor(()), repr=False, compare=False)
    # The run's transcript (app.transcript): what the steps do, as they do it.
    events: Emitter = field(default=NO_TRANSCRIPT, repr=False, compare=False)
    # Sandboxes acquired in this process, by label set: nodes share one without re-listing.
    _acquired: dict[tuple[tuple[str, str], ...], Sandbox] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for secret in self.settings.secret_values():
            self.redactor.add(secret)

    async def sandbox(self, labels: dict[str, str]) -> Sandbox:
        """The run's sandbox: reused while this process holds it, else acquired by labels."""
        key = tuple(sorted(labels.items()))
        if key not in self._acquired:
            watch = Stopwatch()
            with commands_quiet():  # a provider's own housekeeping is not the run's work
                sandbox = await asyncio.to_thread(self.sandboxes.acquire, labels)
            self._acquired[key] = sandbox
            self.events.emit("sandbox", created=sandbox.created, seconds=watch.seconds)
        return self._acquired[key]

    def forget(self, labels: dict[str, str]) -> None:
        self._acquired.pop(tuple(sorted(labels.items())), None)
