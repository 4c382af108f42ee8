"""The web layer under test: the real app (create_app) over ASGI, the fake GitHub with its
OAuth endpoints, a SQLite store; people sign in through the fake's web flow."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.github.app import GitHubApp
from app.runs.models import Run, RunKind, RunStatus, thread_key
from app.runs.store import Store
from app.web.sessions import SESSION_COOKIE
from tests.fakes.github import FakeGitHub
from tests.fakes.github_oauth import CLIENT_ID, CLIENT_SECRET
from tests.webhooks.conftest import (
    INSTALLATION,
    MAINTAINER,
    OTHER_REPO,
    REPO,
    Harness,
    app_client,
    seeded_github,
    start_harness,
)

WRITER = "carol"  # write access to REPO
READER = "mallory"  # read access to REPO only
STRANGER = "eve"  # no access to anything
OTHER_INSTALLATION = 4711
HIDDEN_REPO = "acme/secret"  # another installation's repository; only its admin sees it
HIDDEN_ADMIN = "alice"
WEB = {"github_app_client_id": CLIENT_ID, "github_app_client_secret": CLIENT_SECRET}


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with seeded_github() as fake:
        fake.set_permission(REPO, WRITER, "write")
        fake.set_permission(REPO, READER, "read")
        fake.add_installation(OTHER_INSTALLATION, "acme", [HIDDEN_REPO])
        fake.set_permission(HIDDEN_REPO, HIDDEN_ADMIN, "admin")
        fake.add_issue(HIDDEN_REPO, title="Secret issue", user=HIDDEN_ADMIN)  # #1
        yield fake


@pytest.fixture
def github_app(gh: FakeGitHub) -> GitHubApp:
    return app_client(gh)


@pytest.fixture
async def web(tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp) -> AsyncIterator[Harness]:
    async with start_harness(tmp_path, gh, github_app, **WEB) as started:
        yield started


async def sign_in(
    client: httpx.AsyncClient, gh: FakeGitHub, login: str, path: str = "/"
) -> httpx.Response:
    """Sign `login` in through the fake GitHub's web flow; the answer after the callback."""
    gh.oauth.sign_in_as = login
    start = await client.get(path)
    assert start.status_code in (302, 303), start.text
    async with httpx.AsyncClient() as browser:  # the hop to GitHub and back
        back = await browser.get(start.headers["location"])
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["location"])
    done = await client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 303, done.text
    assert client.cookies.get(SESSION_COOKIE)
    return done


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class Runs:
    store: Store

    async def add(
        self,
        status: RunStatus = "running",
        *,
        repo: str = REPO,
        number: int = 1,
        installation: int = INSTALLATION,
        kind: RunKind = "issue",
        by: str = MAINTAINER,
        error: str | None = None,
        **fields: Any,
    ) -> Run:
        started = await self.store.start_run(
            thread=thread_key(repo, number),
            repo=repo,
            number=number,
            kind=kind,
            installation_id=installation,
            requested_by=by,
            auto_approve=False,
            delivery_id=None,
        )
        assert isinstance(started, Run)
        if status != "queued":
            updated = await self.store.set_run_status(started.id, status, error=error)
            assert updated is not None
            started = updated
        for name, value in fields.items():
            if name == "pr_number":
                await self.store.set_pr_number(started.id, value)
        found = await self.store.run(started.id)
        assert found is not None
        return found


@pytest.fixture
def runs(web: Harness) -> Runs:
    return Runs(web.store)


__all__ = ["HIDDEN_REPO", "OTHER_REPO"]
