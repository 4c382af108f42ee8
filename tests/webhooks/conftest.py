"""The webhook pipeline under test: the real app over HTTP, a SQLite store, the fake GitHub.

Deliveries are the recorded real payloads from shared/fixtures/github/webhooks (with the
installation key a GitHub App always receives), signed like GitHub signs them.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.config import Settings
from app.github.app import GitHubApp
from app.runs.dispatch import Dispatcher, InProcessDispatcher, Job
from app.runs.retry import RetryPolicy
from app.runs.store import Store
from app.server import create_app
from app.webhooks.event import sign
from tests.fakes.github import Call, FakeGitHub
from tests.helpers import github_app_for

SHARED = Path(__file__).parents[3] / "shared/fixtures/github"
SECRET = "current-webhook-secret"
PREVIOUS_SECRET = "previous-webhook-secret"
INSTALLATION = 957387  # the installation in installation.created.json
OWNER = "Codertocat"
REPO = "Codertocat/Hello-World"  # the repository in the issue and comment payloads
OTHER_REPO = "Codertocat/Space"  # installation_repositories.added.json adds it
MAINTAINER = "Codertocat"  # the sender of the recorded payloads
SLUG = "open-swe-test"  # FakeGitHub's default App slug
QUICK_RETRY = RetryPolicy(first_wait=0.05, max_wait=0.2)  # DELIVERY_RETRY's tries, shorter waits


def payload(name: str, *, installation: int | None = INSTALLATION) -> dict[str, Any]:
    """A recorded payload, e.g. payload("issues.labeled"), for installation `installation`.

    The issue payloads carry no installation key (an App always gets one) and the PR ones a
    placeholder id; installation events keep theirs.
    """
    data: dict[str, Any] = json.loads((SHARED / "webhooks" / f"{name}.json").read_text())
    existing = data.get("installation") or {}
    if installation is not None and "account" not in existing:
        data["installation"] = existing | {"id": installation}
    return data


def make_settings(tmp_path: Path, gh: FakeGitHub | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "github_app_id": gh.app_id if gh else 1,
        "github_app_private_key": gh.private_key_pem if gh else "-----BEGIN RSA PRIVATE KEY-----",
        "github_webhook_secret": SECRET,
        "github_webhook_secret_previous": PREVIOUS_SECRET,
        "github_app_slug": SLUG,  # tests of learning it from GitHub set None
        "github_api_url": gh.url if gh else "http://127.0.0.1:9",
        "github_web_url": gh.web_url if gh else "http://127.0.0.1:9",
        "data_dir": tmp_path / "data",
        "database_url_raw": None,
        "env_file_path": tmp_path / ".env",
        # A recording run job leaves runs queued: the outbox sweep would queue them again
        # (tests of the sweeps turn them on).
        "outbox_sweep_seconds": 3600.0,
        "redelivery_sweep_minutes": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def signed_headers(
    event: str, body: bytes, *, delivery: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret.encode()),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }


@dataclass
class Harness:
    """A started app with its store, dispatcher and the runs its (recording) run job saw."""

    app: Starlette
    client: httpx.AsyncClient
    store: Store
    dispatcher: InProcessDispatcher
    gh: FakeGitHub
    run_jobs: list[str] = field(default_factory=list)

    async def deliver(
        self,
        event: str,
        data: dict[str, Any] | bytes,
        *,
        delivery: str | None = None,
        secret: str = SECRET,
        settle: bool = True,
    ) -> httpx.Response:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = signed_headers(event, body, delivery=delivery, secret=secret)
        response = await self.client.post("/webhooks/github", content=body, headers=headers)
        if settle:
            await self.settle()
        return response

    async def settle(self) -> None:
        """Wait for the background work (delivery jobs, run jobs) to finish."""
        await self.app.state.webhook_receiver.settle()  # handed over without waiting for quiet
        await self.dispatcher.drain()


class RecordingDispatcher:
    """Takes jobs and does nothing with them: what the request itself does is then visible."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    async def start(self, process_delivery: Any) -> None:
        pass

    async def submit(self, job: Job) -> None:
        self.jobs.append(job)

    async def cancel(self, run_id: str) -> bool:
        return False

    async def aclose(self) -> None:
        pass

    async def carried(self) -> set[str]:
        return {job.key for job in self.jobs}


@contextmanager
def seeded_github() -> Iterator[FakeGitHub]:
    """The fake GitHub with the installation, repos, people, issue #1 and PR #2 of the payloads."""
    with FakeGitHub(app_slug=SLUG) as fake:
        fake.add_installation(INSTALLATION, OWNER, [REPO, OTHER_REPO], account_type="User")
        fake.set_permission(REPO, MAINTAINER, "admin")
        fake.add_issue(REPO, title="Spelling error in the README file", user=MAINTAINER)  # #1
        fake.add_pull(REPO, head="changes", title="Update the README", user=MAINTAINER)  # #2
        yield fake
        assert not fake.errors, f"the fake GitHub itself failed: {fake.errors}"


def app_client(fake: FakeGitHub) -> GitHubApp:
    return github_app_for(fake)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with seeded_github() as fake:
        yield fake


@pytest.fixture
def github_app(gh: FakeGitHub) -> GitHubApp:
    return app_client(gh)


@pytest.fixture
async def harness(tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp) -> AsyncIterator[Harness]:
    async with start_harness(tmp_path, gh, github_app) as started:
        yield started


@asynccontextmanager
async def start_harness(
    tmp_path: Path,
    gh: FakeGitHub,
    github_app: GitHubApp,
    *,
    dispatcher: Dispatcher | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Build and start the app; several in a row on one tmp_path simulate restarts.

    `dispatcher` replaces the recording in-process one (e.g. one that drops jobs, as a crash
    right after the answer would).
    """
    config = make_settings(tmp_path, gh, **settings)
    store = Store.open(config.database_url)
    run_jobs: list[str] = []

    async def run_job(run_id: str) -> None:
        run_jobs.append(run_id)

    in_process = InProcessDispatcher(run_job=run_job, max_concurrent_runs=2, retry=QUICK_RETRY)
    app = create_app(config, store=store, dispatcher=dispatcher or in_process, github=github_app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as client,
        ):
            yield Harness(app, client, store, in_process, gh, run_jobs)
    finally:
        await store.close()


def shown(body: str) -> str:
    """A bot comment as people read it: without the hidden reply marker."""
    return re.sub(r"\n\n<!-- open-swe:reply [^>]* -->$", "", body)


def github_work(gh: FakeGitHub) -> list[Call]:
    """Calls made to GitHub, except learning the App's slug at start-up (GET /app)."""
    return [c for c in gh.calls if (c.method, c.path) != ("GET", "/app")]


def labeled(label: str = "open-swe", **changes: Any) -> dict[str, Any]:
    """issues.labeled for issue #1 of REPO with `label`."""
    data = payload("issues.labeled")
    data["label"]["name"] = label
    data.update(changes)
    return data


def comment_payload(body: str, *, comment_id: int, sender: str = MAINTAINER) -> dict[str, Any]:
    """issue_comment.created on issue #1 of REPO (comment_id must exist in the fake)."""
    data = payload("issue_comment.created")
    data["comment"]["body"] = body
    data["comment"]["id"] = comment_id
    set_sender(data, sender)
    return data


def set_sender(data: dict[str, Any], login: str, *, kind: str = "User") -> dict[str, Any]:
    data["sender"] = copy.deepcopy(data["sender"]) | {"login": login, "type": kind}
    for key in ("comment", "review"):
        if key in data:
            data[key]["user"] = copy.deepcopy(data[key]["user"]) | {"login": login, "type": kind}
    return data
