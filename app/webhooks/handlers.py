"""The top of the webhook features: their routers merged, and the background delivery job."""

from __future__ import annotations

import structlog

from app.github.errors import GitHubError
from app.runs.retry import DELIVERY_RETRY, RetryPolicy, as_transient
from app.runs.store.deliveries import ERROR
from app.webhooks import checks, comments, endings, installations, labels
from app.webhooks.context import HandlerContext
from app.webhooks.event import Event
from app.webhooks.routing import Outcome, Router

ROUTER = Router(labels.router, comments.router, installations.router, endings.router, checks.router)
log = structlog.get_logger(__name__)


class DeliveryProcessor:
    """The ProcessDelivery job: load a recorded delivery, run its handler, record the outcome.

    Safe to run twice for one delivery (after a crash, or a retry): every step is idempotent
    (runs and commands are keyed by delivery, replies are remembered, reactions are set-like).
    A transient fault (GitHub 5xx or rate limit, no connection, the database gone) leaves the
    delivery unfinished and raises TryAgain, so its queue runs it again later; after
    `retry.attempts` tries, or for any other error, the delivery is finished as an error
    (which a redelivery from GitHub then takes up again).
    """

    def __init__(
        self, ctx: HandlerContext, router: Router = ROUTER, retry: RetryPolicy = DELIVERY_RETRY
    ) -> None:
        self._ctx = ctx
        self._router = router
        self._retry = retry

    async def __call__(self, delivery_id: str) -> None:
        try:
            await self._process(delivery_id)
        except Exception as exc:  # the store's own faults, outside any handler
            fault = as_transient(exc)
            if fault is None or fault is exc:
                raise
            raise fault from exc

    async def _process(self, delivery_id: str) -> None:
        store = self._ctx.store
        delivery = await store.delivery(delivery_id)
        if delivery is None or delivery.processed_at is not None or delivery.payload is None:
            return  # unknown, or already done (a coalesced resubmission)
        tries = await store.begin_delivery_attempt(delivery_id)
        if tries is None:
            return  # finished meanwhile, by another worker
        event = Event(delivery.event, delivery.id, delivery.payload)
        with structlog.contextvars.bound_contextvars(
            delivery=delivery_id, event=f"{event.name}.{event.action}", repo=event.repo
        ):
            outcome = await self._handle(event, tries)
            log.info("delivery processed", outcome=outcome.status, detail=outcome.detail)
        await store.finish_delivery(delivery_id, outcome.status, outcome.detail)

    async def _handle(self, event: Event, tries: int) -> Outcome:
        route = self._router.match(event)
        if route is None:  # routes changed since the delivery was accepted
            return Outcome("ignored", "no handler")
        try:
            return await route.handler(self._ctx, event)
        except Exception as exc:
            fault = as_transient(exc)
            if fault is None:
                if isinstance(exc, GitHubError):
                    log.warning("GitHub call failed", error=str(exc))
                    return Outcome(ERROR, str(exc))
                log.exception("delivery handler failed")
                return Outcome(ERROR, f"{type(exc).__name__}: {exc}")
            if tries < self._retry.attempts:
                log.warning("delivery will be tried again", tries=tries, error=str(fault))
                raise fault from exc
            log.error("delivery failed after its last try", tries=tries, error=str(fault))
            return Outcome(ERROR, f"{fault} (gave up after {tries} tries)")
