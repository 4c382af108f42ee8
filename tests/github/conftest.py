"""Fixtures for the GitHub layer: a started fake GitHub and an App pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.github.app import GitHubApp
from app.github.client import InstallationClient
from tests.fakes.github import FakeGitHub
from tests.helpers import github_app_for

INSTALLATION = 7
REPO = "acme/widgets"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_installation(INSTALLATION, "acme", [REPO, "acme/other"])
        yield fake
        assert not fake.errors, f"the fake GitHub itself failed: {fake.errors}"


@pytest.fixture
def github_app(gh: FakeGitHub) -> GitHubApp:
    return github_app_for(gh, max_retry_wait=3)


@pytest.fixture
def client(github_app: GitHubApp) -> InstallationClient:
    return github_app.client(INSTALLATION, REPO)
