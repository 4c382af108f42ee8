"""The fake GitHub's App webhook: deliveries it sends to the app, their history, redelivery.

Part of `FakeGitHub` (as `gh.hook`), after GitHub's webhook delivery API:

- `gh.hook.url` and `gh.hook.secret`: where deliveries go and the secret they are signed with
  (set by the test once the app listens).
- `gh.hook.add(event, payload, status_code=...)`: seed the history with an attempt (not sent).
- `gh.hook.deliver(event, payload)`: POST a delivery to the webhook URL, signed like GitHub
  signs it (X-Hub-Signature-256, a new X-GitHub-Delivery guid), and record the attempt with
  the status the app answered (0 when it could not be reached). Blocking: async tests call it
  in a thread.
- `GET /app/hook/deliveries` (JWT): the attempts, newest first, `per_page` at a time, the next
  page named by `cursor` in a Link header (rel="next").
- `GET /app/hook/deliveries/{id}` (JWT): one attempt.
- `POST /app/hook/deliveries/{id}/attempts` (JWT): 202, then the same delivery (same guid) is
  sent again in the background and recorded as a redelivery; `gh.hook.redeliveries` lists the
  attempt ids asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub

HOOK_ID = 448_811
Answer = tuple[int, Any, dict[str, str]]


@dataclass
class HookAttempt:
    id: int
    guid: str
    event: str
    payload: dict[str, Any]
    redelivery: bool
    delivered_at: datetime
    status_code: int = 0
    status: str = "pending"


class FakeHook:
    def __init__(self, gh: FakeGitHub) -> None:
        self._gh = gh
        self._lock = threading.RLock()
        self.url: str | None = None  # the app's webhook URL
        self.secret = ""
        self.attempts: list[HookAttempt] = []
        self.redeliveries: list[int] = []  # attempt ids GitHub was asked to redeliver
        self._ids = iter(range(90_000_001, 2**62))
        self._sending: list[threading.Thread] = []

    # Test controls ----------------------------------------------------------------------

    def deliver(
        self, event: str, payload: dict[str, Any], *, guid: str | None = None
    ) -> HookAttempt:
        """Send a delivery now, as GitHub does after an event; the attempt, answered."""
        attempt = self._record(event, payload, guid or str(uuid.uuid4()), redelivery=False)
        self._send(attempt)
        return attempt

    def add(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        status_code: int,
        guid: str | None = None,
        redelivery: bool = False,
        ago: timedelta = timedelta(0),
    ) -> HookAttempt:
        """Seed the history with an attempt made `ago`, answered `status_code` (nothing sent)."""
        attempt = self._record(event, payload, guid or str(uuid.uuid4()), redelivery=redelivery)
        attempt.status_code = status_code
        attempt.status = "OK" if 200 <= status_code < 300 else "failed to connect"
        attempt.delivered_at = datetime.now(UTC) - ago
        return attempt

    def of(self, guid: str) -> list[HookAttempt]:
        with self._lock:
            return [a for a in self.attempts if a.guid == guid]

    def join(self, timeout: float = 30) -> None:
        """Wait for redeliveries under way."""
        for thread in list(self._sending):
            thread.join(timeout)

    # API handlers (JWT) -------------------------------------------------------------------

    def list(self, query: dict[str, str]) -> Answer:
        per_page = max(1, min(100, int(query.get("per_page") or 30)))
        start = int(query["cursor"]) if query.get("cursor", "").isdigit() else None
        with self._lock:
            newest_first = sorted(self.attempts, key=lambda a: a.id, reverse=True)
        if start is not None:
            newest_first = [a for a in newest_first if a.id <= start]
        page, rest = newest_first[:per_page], newest_first[per_page:]
        headers = {}
        if rest:
            url = f"{self._gh.url}/app/hook/deliveries?per_page={per_page}&cursor={rest[0].id}"
            headers["Link"] = f'<{url}>; rel="next"'
        return 200, [self._json(a) for a in page], headers

    def get(self, attempt_id: int) -> Answer:
        found = self._find(attempt_id)
        if found is None:
            return 404, {"message": "Not Found"}, {}
        return 200, self._json(found) | {"request": {}, "response": {}}, {}

    def redeliver(self, attempt_id: int) -> Answer:
        found = self._find(attempt_id)
        if found is None:
            return 404, {"message": "Not Found"}, {}
        with self._lock:
            self.redeliveries.append(attempt_id)
        again = self._record(found.event, found.payload, found.guid, redelivery=True)
        thread = threading.Thread(target=self._send, args=(again,), daemon=True)
        self._sending.append(thread)
        thread.start()
        return 202, {}, {}

    # Delivering ----------------------------------------------------------------------------

    def _record(
        self, event: str, payload: dict[str, Any], guid: str, *, redelivery: bool
    ) -> HookAttempt:
        with self._lock:
            attempt = HookAttempt(
                next(self._ids), guid, event, payload, redelivery, datetime.now(UTC)
            )
            self.attempts.append(attempt)
        return attempt

    def _send(self, attempt: HookAttempt) -> None:
        body = json.dumps(attempt.payload).encode()
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": attempt.event,
            "X-GitHub-Delivery": attempt.guid,
            "X-GitHub-Hook-ID": str(HOOK_ID),
            "X-Hub-Signature-256": f"sha256={digest}",
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fake",
        }
        try:
            if self.url is None:
                raise httpx.ConnectError("no webhook URL")
            answer = httpx.post(self.url, content=body, headers=headers, timeout=10)
            code, status = answer.status_code, answer.reason_phrase or "OK"
        except httpx.TimeoutException:
            code, status = 0, "timed out"
        except httpx.HTTPError:
            code, status = 0, "failed to connect"
        with self._lock:
            attempt.status_code, attempt.status = code, status
            attempt.delivered_at = datetime.now(UTC)

    def _find(self, attempt_id: int) -> HookAttempt | None:
        with self._lock:
            return next((a for a in self.attempts if a.id == attempt_id), None)

    def _json(self, attempt: HookAttempt) -> dict[str, Any]:
        installation = attempt.payload.get("installation") or {}
        repository = attempt.payload.get("repository") or {}
        return {
            "id": attempt.id,
            "guid": attempt.guid,
            "delivered_at": attempt.delivered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "redelivery": attempt.redelivery,
            "duration": 0.01,
            "status": attempt.status,
            "status_code": attempt.status_code,
            "event": attempt.event,
            "action": attempt.payload.get("action"),
            "installation_id": installation.get("id"),
            "repository_id": repository.get("id"),
            "throttled_at": None,
        }
