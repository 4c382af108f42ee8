"""RunHost wrappers the run job puts around a run's GitHub host, each changing one thing."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import structlog

from app.agent.budget import Usage
from app.agent.host import (
    ApprovalRequest,
    Change,
    Checkout,
    Publication,
    RunHost,
    RunOutcome,
    TaskText,
)
from app.agent.state import Decision, PlanDict, StepName
from app.sandbox.base import Sandbox

log = structlog.get_logger(__name__)


class HostWrapper:
    """A RunHost that hands everything to the wrapped host; subclasses change one thing."""

    def __init__(self, host: RunHost) -> None:
        self.host = host

    async def load_task(self) -> TaskText:
        return await self.host.load_task()

    async def checkout(self) -> Checkout:
        return await self.host.checkout()

    async def progress(self, step: StepName, detail: str, usage: Usage) -> None:
        await self.host.progress(step, detail, usage)

    async def post_plan(
        self, plan: PlanDict, *, awaiting_approval: bool, revision: int | None = None
    ) -> None:
        await self.host.post_plan(plan, awaiting_approval=awaiting_approval, revision=revision)

    async def decide(self, request: ApprovalRequest) -> Decision | None:
        return await self.host.decide(request)

    async def publish(self, sandbox: Sandbox, change: Change) -> Publication:
        return await self.host.publish(sandbox, change)

    async def finish(self, outcome: RunOutcome) -> None:
        await self.host.finish(outcome)


class AsksPlan(HostWrapper):
    """A RunHost that records the run's plan question (`ask`, with the revision) before a
    plan that waits for approval is shown: from then on, answers are kept for the run even
    while it is still parking."""

    def __init__(self, host: RunHost, ask: Callable[[int], Awaitable[None]]) -> None:
        super().__init__(host)
        self._ask = ask

    async def post_plan(
        self, plan: PlanDict, *, awaiting_approval: bool, revision: int | None = None
    ) -> None:
        if awaiting_approval:
            await self._ask(revision or 1)
        await self.host.post_plan(plan, awaiting_approval=awaiting_approval, revision=revision)


class StoppedReason(HostWrapper):
    """A RunHost that reports a run stopped from outside (the `stop` command, maybe taken by
    another process) with the reason the store holds for it ("stopped by @carol"), not the
    bare cancellation."""

    def __init__(self, host: RunHost, stored: Callable[[], Awaitable[str | None]]) -> None:
        super().__init__(host)
        self._stored = stored

    async def finish(self, outcome: RunOutcome) -> None:
        if outcome.status == "stopped":
            try:
                reason = await self._stored()
            except Exception as exc:  # the bare reason is better than no final status
                log.warning("run.stop_reason_unreadable", error=f"{type(exc).__name__}: {exc}")
                reason = None
            outcome = dataclasses.replace(outcome, reason=reason or outcome.reason)
        await self.host.finish(outcome)
