"""`POST /webhooks/github`: verify, parse, decide, record, hand off, answer. Nothing else.

No GitHub call and no gating happens here: the answer must come in milliseconds, and every
accepted delivery is in the store before the 2xx, so a crash after answering loses nothing.

| answer | when |
|---|---|
| 503 | setup not finished; the store is down (GitHub shows a failed, redeliverable delivery) |
| 503 + Retry-After | unverified bodies being read already hold OPEN_SWE_WEBHOOK_MAX_PENDING_BYTES |
| 400 | bad X-GitHub-Event/-Delivery; body not a UTF-8 JSON object, or one no column can store |
| 415 | content type is not application/json (form deliveries are refused with a fix) |
| 413 | body over 25 MiB (Content-Length, then counted while streaming, before hashing) |
| 408 | the body did not arrive within OPEN_SWE_WEBHOOK_READ_TIMEOUT seconds (connection closed) |
| 401 | X-Hub-Signature-256 missing or wrong (sha1 alone is never accepted) |
| 200 | ping ("pong"); a delivery seen before ("duplicate": done, or being done; one whose work ended in error is taken again); one that does not matter ("ignored") |
| 202 | recorded for background work ("accepted") |

A body is held in memory until its signature is checked, so whoever can reach the endpoint can
make us hold bytes: each body must arrive whole within the read timeout (GitHub sends it at
once), and all bodies being read hold at most `max_pending` bytes together.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from app.config import MAX_WEBHOOK_BODY_BYTES
from app.runs.dispatch import Dispatcher, ProcessDelivery
from app.runs.store import Store
from app.webhooks import messages
from app.webhooks.context import AppSlug
from app.webhooks.event import Event, PayloadError, verify_signature
from app.webhooks.handoff import Handoff
from app.webhooks.routing import Router, Verdict

MAX_BODY_BYTES = MAX_WEBHOOK_BODY_BYTES
READ_TIMEOUT = 10.0  # seconds for the whole body
MAX_PENDING_BYTES = 64 * 1024 * 1024  # unverified body bytes held at once, all requests together
INLINE_DECIDE_CHARS = 4096  # comment text decided on the event loop (well under a millisecond)
_EVENT_NAME = re.compile(r"[a-z_]{1,64}")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")

log = structlog.get_logger(__name__)


class Refused(Exception):
    """The body is not wanted (too large, too slow, no room): answer, then close the connection
    (the server drops what the client still sends instead of reading it)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.response = _error(status, message)
        self.response.headers["Connection"] = "close"
        if retry_after is not None:
            self.response.headers["Retry-After"] = str(retry_after)


@dataclass
class ReceiverDeps:
    """What the receiver needs once the app has started (built in the lifespan)."""

    store: Store
    dispatcher: Dispatcher
    router: Router
    slug: AppSlug


def _answer(code: int, /, **body: Any) -> JSONResponse:
    return JSONResponse({k: v for k, v in body.items() if v is not None}, status_code=code)


def _error(status: int, message: str) -> JSONResponse:
    return _answer(status, error=message)


class WebhookReceiver:
    def __init__(
        self,
        secrets: Sequence[bytes],
        *,
        max_body: int = MAX_BODY_BYTES,
        read_timeout: float = READ_TIMEOUT,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        if any(not secret.strip() for secret in secrets):  # Settings refuse them too
            raise ValueError("a blank webhook secret would verify anyone's signature")
        self._secrets = list(secrets)
        self._max_body = max_body
        self._read_timeout = read_timeout
        self._max_pending = max_pending
        self.pending_bytes = 0  # body bytes held, not yet verified, by all requests together
        self.deps: ReceiverDeps | None = None  # set by the app's lifespan
        self._handoff: Handoff | None = None  # to the deps' dispatcher, when the door is quiet

    def handoff(self, deps: ReceiverDeps) -> Handoff:
        """The handoff to this lifespan's dispatcher (a new one after a restart)."""
        if self._handoff is None or self._handoff.dispatcher is not deps.dispatcher:
            if self._handoff is not None:
                self._handoff.cancel()
            self._handoff = Handoff(deps.dispatcher)
        return self._handoff

    def drop_handoff(self) -> None:
        if self._handoff is not None:
            self._handoff.cancel()
            self._handoff = None

    async def settle(self) -> None:
        """Hand over the accepted deliveries still waiting for a quiet moment."""
        if self._handoff is not None:
            await self._handoff.flush()

    async def handle(self, request: Request) -> JSONResponse:
        """The endpoint: never raises, never answers 500."""
        handoff = self.handoff(self.deps) if self.deps is not None else None
        if handoff is not None:
            handoff.arrived()
        try:
            return await self._receive(request)
        except Refused as refused:
            return refused.response
        except ClientDisconnect:
            return _error(400, "the client disconnected before sending the whole body")
        except Exception:
            # Never a 500: nothing was recorded, so ask GitHub to count it as failed
            # (it can be redelivered) and keep the details in the log.
            log.exception("webhook receiver failed")
            return _error(503, "internal error; the delivery was not recorded, redeliver it")
        finally:
            if handoff is not None:
                handoff.answered()

    async def _receive(self, request: Request) -> JSONResponse:
        headers = request.headers
        name, delivery_id = headers.get("x-github-event"), headers.get("x-github-delivery")
        if not name or not delivery_id:
            missing = "X-GitHub-Event" if not name else "X-GitHub-Delivery"
            return _error(400, f"missing {missing} header: is this a GitHub webhook delivery?")
        if not _EVENT_NAME.fullmatch(name) or not _DELIVERY_ID.fullmatch(delivery_id):
            return _error(400, "malformed X-GitHub-Event or X-GitHub-Delivery header")

        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "application/x-www-form-urlencoded":
            return _error(415, messages.FORM_CONTENT_TYPE)
        if media_type != "application/json":
            return _error(415, f"content type must be application/json, not {media_type!r}")

        body = await self._read_body(request)
        try:
            verified = verify_signature(body, headers.get("x-hub-signature-256"), self._secrets)
        finally:
            self.pending_bytes -= len(body)
        if not verified:
            reason = (
                "missing X-Hub-Signature-256 (sha1 signatures are not accepted)"
                if "x-hub-signature-256" not in headers
                else "X-Hub-Signature-256 does not match: check the webhook secret"
            )
            return _error(401, reason)
        try:
            event = Event.parse(name, delivery_id, body)
        except PayloadError as exc:
            return _error(400, str(exc))
        return await self._accept(event)

    async def _read_body(self, request: Request) -> bytes:
        """The raw body, read whole within the read timeout and counted while streaming, so an
        endless one is cut off at the limit. Its bytes stay in `pending_bytes` (the caller
        releases them once verified); raises Refused, having released them, when not wanted."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise Refused(400, "malformed Content-Length header")
            if int(declared) > self._max_body:
                raise self._too_large()
        if self.pending_bytes + int(declared or 0) > self._max_pending:
            raise self._busy()
        chunks: list[bytes] = []
        held = 0  # what this request added to pending_bytes
        try:
            async with asyncio.timeout(self._read_timeout):
                async for chunk in request.stream():
                    if held + len(chunk) > self._max_body:
                        raise self._too_large()
                    if self.pending_bytes + len(chunk) > self._max_pending:
                        raise self._busy()
                    self.pending_bytes += len(chunk)
                    held += len(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            self.pending_bytes -= held
            raise Refused(
                408, f"the body did not arrive within {self._read_timeout:g} seconds"
            ) from None
        except BaseException:  # refused, disconnected, cancelled: nothing is held any more
            self.pending_bytes -= held
            raise
        return b"".join(chunks)

    def _too_large(self) -> Refused:
        return Refused(413, f"body larger than {self._max_body} bytes")

    def _busy(self) -> Refused:
        # Every body held now is verified or dropped within one read timeout.
        return Refused(
            503,
            "too many deliveries are being received at once; redeliver it",
            retry_after=math.ceil(self._read_timeout),
        )

    async def _accept(self, event: Event) -> JSONResponse:
        deps = self.deps
        if deps is None:
            return _error(503, "the server is starting; redeliver in a moment")
        if event.name == "ping":
            status, decision_reason, work = "pong", None, False
        else:
            decision = await _decide(deps, event)
            status = "accepted" if decision.accepted else "ignored"
            decision_reason, work = decision.reason or None, decision.accepted
        facts: dict[str, Any] = {
            "delivery_id": event.delivery_id,
            "event": event.name,
            "action": event.action,
            "installation_id": event.installation_id,
            "repo": event.repo,
            "outcome": status,
            "detail": decision_reason,
        }
        if not work:
            # Nothing to do later, so nothing to lose: kept for the counts with the next batch
            # of writes, and answered without waiting for the database.
            try:
                deps.store.note_delivery(**facts)
            except Exception:
                log.exception("cannot note delivery", delivery=event.delivery_id)
            return _answer(200, status=status, delivery=event.delivery_id, reason=decision_reason)
        try:
            # Durable before the 2xx (a group commit with concurrent deliveries).
            receipt = await deps.store.record_delivery(**facts, payload=event.payload)
        except Exception:
            log.exception("cannot record delivery", delivery=event.delivery_id)
            return _error(503, "cannot record the delivery (database unavailable); redeliver it")
        if receipt == "duplicate":  # done (or being done): only work that failed is redone
            return _answer(200, status="duplicate", delivery=event.delivery_id)
        # Its background work starts once the front door is quiet (app.webhooks.handoff).
        self.handoff(deps).submit(ProcessDelivery(event.delivery_id))
        return _answer(202, status="accepted", delivery=event.delivery_id)


async def _decide(deps: ReceiverDeps, event: Event) -> Verdict:
    """The router's verdict. Deciding parses untrusted comment text (linear, still CPU): a
    long text is decided in a worker thread so the event loop keeps answering; a short one
    (nearly every delivery) costs less than the hop to a thread and is decided here."""
    comment = event.comment
    if comment is not None and len(comment.body) > INLINE_DECIDE_CHARS:
        return await anyio.to_thread.run_sync(deps.router.decide, event, deps.slug.known)
    return deps.router.decide(event, deps.slug.known)
