"""Small helpers shared by test folders: real git in a clean environment, and a GitHub App
client pointed at the loopback fake GitHub (no pauses between requests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.github.app import GitHubApp
from tests.fakes.github import FakeGitHub

# No user or system git config: tests see git's defaults on every machine.
GIT_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(cwd: Path, *args: str) -> str:
    """Run git in cwd (with HOME there too); fail the test with git's stderr if it fails."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**GIT_ENV, "HOME": str(cwd)}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def github_app_for(fake: FakeGitHub, *, max_retry_wait: float = 1) -> GitHubApp:
    """The App as production builds it, authenticating to the fake with the fake's own key."""
    assert fake.private_key_pem is not None
    return GitHubApp(
        fake.app_id, fake.private_key_pem, fake.url, max_retry_wait=max_retry_wait, throttle=False
    )
