"""`GET /api/runs/{id}/stream`: a run's new transcript events as server-sent events.

The stream sends the events stored after the one the browser saw last (its `Last-Event-ID`
header when it reconnects, else `?after=`), then each new one as it is stored (the store is
read every POLL_SECONDS: any process may be writing them), a comment every
HEARTBEAT_SECONDS so proxies keep the connection, and `event: end` once the run has ended and
its last events are in (END_GRACE_SECONDS after its end). A browser that leaves ends it (the
server cancels it at once). After MAX_SECONDS it closes on its own and the browser
reconnects, passing the guard again: access removed on GitHub ends a stream within minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from app.runs.store import Store
from app.transcript import RunEvent
from app.web.render import SECURITY_HEADERS

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
END_GRACE_SECONDS = 2.0  # a run's job stores its last events just after its end
MAX_SECONDS = 300.0
RETRY_MS = 3000  # how long the browser waits before it reconnects


def resume_point(request: Request) -> int:
    """The last event the browser saw: Last-Event-ID, else `?after=`, else none (0)."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if value and value.strip().isdigit():
            return int(value.strip())
    return 0


def message(event: RunEvent) -> str:
    data = json.dumps(event.shown(), separators=(",", ":"), ensure_ascii=True)
    return f"id: {event.seq}\ndata: {data}\n\n"


async def run_stream(store: Store, run_id: str, after: int) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    started = beat = time.monotonic()
    ended_at: float | None = None
    while True:
        events = await store.run_events(run_id, after=after)
        for event in events:
            yield message(event)
            after = event.seq
        if events:
            beat = time.monotonic()
            continue  # more may wait already
        now = time.monotonic()
        run = await store.run(run_id)
        if run is None or not run.active:
            ended_at = ended_at if ended_at is not None else now
            if now - ended_at >= END_GRACE_SECONDS:
                status = run.status if run is not None else "gone"
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                return
        else:
            ended_at = None
        if now - started >= MAX_SECONDS:
            return  # the browser reconnects from the last id, through the guard again
        if now - beat >= HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            beat = now
        await asyncio.sleep(POLL_SECONDS)


def stream_response(store: Store, run_id: str, after: int) -> StreamingResponse:
    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}  # nginx: do not buffer it
    return StreamingResponse(
        run_stream(store, run_id, after), media_type="text/event-stream", headers=headers
    )
