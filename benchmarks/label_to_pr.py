"""One run, label to pull request, with the scripted model answering at once (issue 12).

The real app (the end-to-end harness of tests/e2e: create_app under uvicorn, SQLite, the
in-process queue, the local sandbox, real git) with GitHub and the model faked at the wire.
Timed: from posting the `open-swe-auto` label to the draft pull request existing on the fake
GitHub, two ways, alternating in the same run:
- "unpaced": no pacing of GitHub requests at all (the floor: what the run itself costs);
- "paced": as production paces now (1 s between writes per installation, asynchronous, the run
  waiting only for its pull request; app.github.pacing).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.github.app import GitHubApp

MODES = ("unpaced", "paced")


def _github(gh: Any, mode: str) -> GitHubApp:
    github = GitHubApp(
        gh.app_id, gh.private_key_pem, gh.url, max_retry_wait=1, throttle=mode == "paced"
    )
    return github


async def _one(work: Path, *, mode: str) -> float:
    from tests.agent.conftest import REPO_FILES, script_fix, script_plan, script_pr
    from tests.fakes.github import FakeGitHub
    from tests.fakes.model import ScriptedModel

    # The end-to-end harness (a pytest conftest: imported by name, not type-checked here).
    e2e: Any = importlib.import_module("tests.e2e.conftest")
    INSTALLATION, ISSUE_BODY, ISSUE_TITLE = e2e.INSTALLATION, e2e.ISSUE_BODY, e2e.ISSUE_TITLE
    MAINTAINER, REPO, SLUG, World, bare_repo = (
        e2e.MAINTAINER, e2e.REPO, e2e.SLUG, e2e.World, e2e.bare_repo
    )  # fmt: skip

    remote = bare_repo(work, REPO_FILES)
    with FakeGitHub(app_slug=SLUG) as gh, ScriptedModel() as model:
        gh.add_repo(REPO, clone_url=remote)
        gh.add_installation(INSTALLATION, "Codertocat", [REPO], account_type="User")
        gh.set_permission(REPO, MAINTAINER, "admin")
        gh.add_issue(REPO, title=ISSUE_TITLE, body=ISSUE_BODY, user="octocat")
        assert gh.private_key_pem is not None
        github = _github(gh, mode)
        world = World(work, gh, model, remote, github)
        script_plan(model)
        script_fix(model)
        script_pr(model)
        try:
            await world.start()
            started = time.perf_counter()
            await world.label("open-swe-auto")
            while not gh.pulls:
                if time.perf_counter() - started > 120:
                    raise RuntimeError("no pull request after 120 s")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            run = await world.finished_run()
        finally:
            await world.close()
        if run.status != "succeeded" or len(gh.pulls) != 1:
            raise RuntimeError(f"the run ended {run.status} ({run.error}) with {len(gh.pulls)} PRs")
    return elapsed


def run(rounds: int) -> tuple[dict[str, float], int]:
    """Median seconds per mode (MODES), and the runs each; modes alternate within a round."""
    from app.logs import configure_logging

    configure_logging(level="error", fmt="console", secrets=())  # the tables only
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    for number in range(rounds):
        for mode in MODES:
            with tempfile.TemporaryDirectory(prefix=f"open-swe-l2p-{number}-") as work:
                os.chmod(work, 0o755)  # noqa: S103 (the sandbox user must reach the data dir below)
                samples[mode].append(asyncio.run(_one(Path(work), mode=mode)))
    return {mode: statistics.median(times) for mode, times in samples.items()}, rounds
