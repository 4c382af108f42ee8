"""The top of the webhook features: their routers merged, and the background delivery job."""

from __future__ import annotations

import structlog

from app.github.errors import GitHubError
from app.webhooks import comments, installations, labels
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.routing import Outcome, Router

ROUTER = Router(labels.router, comments.router, installations.router)
log = structlog.get_logger(__name__)


class DeliveryProcessor:
    """The ProcessDelivery job: load a recorded delivery, run its handler, record the outcome.

    Safe to run twice for one delivery (after a crash): every step is idempotent (runs and
    commands are keyed by delivery, replies are remembered, reactions are set-like).
    """

    def __init__(self, ctx: HandlerContext, router: Router = ROUTER) -> None:
        self._ctx = ctx
        self._router = router

    async def __call__(self, delivery_id: str) -> None:
        delivery = await self._ctx.store.delivery(delivery_id)
        if delivery is None or delivery.processed_at is not None or delivery.payload is None:
            return  # unknown, or already done (a coalesced resubmission)
        event = Event(delivery.event, delivery.id, delivery.payload)
        with structlog.contextvars.bound_contextvars(
            delivery=delivery_id, event=f"{event.name}.{event.action}", repo=event.repo
        ):
            outcome = await self._handle(event)
            log.info("delivery processed", outcome=outcome.status, detail=outcome.detail)
        await self._ctx.store.finish_delivery(delivery_id, outcome.status, outcome.detail)

    async def _handle(self, event: Event) -> Outcome:
        route = self._router.match(event)
        if route is None:  # routes changed since the delivery was accepted
            return Outcome("ignored", "no handler")
        try:
            return await route.handler(self._ctx, event)
        except GitHubError as exc:
            log.warning("GitHub call failed", error=str(exc))
            return Outcome("error", str(exc))
        except Exception as exc:
            log.exception("delivery handler failed")
            return Outcome("error", f"{type(exc).__name__}: {exc}")
