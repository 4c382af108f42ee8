"""What the benchmarks post, and where: recorded GitHub payloads, signed like GitHub signs them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.webhooks.event import sign

FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/github/webhooks"
SECRET = "bench-webhook-secret"
INSTALLATION = 957387  # the installation of the recorded payloads
OWNER = "Codertocat"
REPO = "Codertocat/Hello-World"  # the repository of issues.labeled.json
MAINTAINER = "Codertocat"  # its sender, given admin on the fake GitHub
SLUG = "open-swe-bench"
TRIGGER_LABEL = "open-swe"
WEBHOOK_PATH = "/webhooks/github"  # app.server.WEBHOOK_PATH (a test keeps them equal)
SETTLE_PATH = "/_bench/settle"  # benchmarks.serve: waits for the app's background work
FAKE_ISSUES = 64  # accepted deliveries cycle over issues #1..#64 (one run per issue at a time)


@dataclass(frozen=True)
class Delivery:
    """A body and its signature; each post gets its own X-GitHub-Delivery."""

    event: str
    body: bytes
    signature: str

    def headers(self, delivery_id: str | None = None) -> dict[str, str]:
        return {
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": delivery_id or new_delivery_id(),
            "X-Hub-Signature-256": self.signature,
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/bench",
        }


def new_delivery_id() -> str:
    return f"bench-{uuid.uuid4()}"


def issues_labeled(*, label: str, issue_number: int = 1) -> Delivery:
    """issues.labeled on `issue_number` of REPO, with the installation an App always receives."""
    path = FIXTURES / "issues.labeled.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SystemExit(f"benchmarks: the recorded payload {path} is missing") from exc
    data["installation"] = {"id": INSTALLATION, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u"}
    data["label"]["name"] = label
    data["issue"]["number"] = issue_number
    body = json.dumps(data).encode()
    return Delivery("issues", body, sign(body, SECRET.encode()))
