"""One run, label to pull request, with the scripted model answering at once (issue 12).

The real app (the end-to-end harness of tests/e2e: create_app under uvicorn, SQLite, the
in-process queue, the local sandbox, real git) with GitHub and the model faked at the wire.
Timed: from posting the `open-swe-auto` label to the draft pull request existing on the fake
GitHub. The subject paces GitHub writes as production does (1 s apart per installation,
app.github.pacing); the baseline, in the same run, does not pace at all: the difference is
what pacing costs the run.
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


async def _one(work: Path, *, paced: bool) -> float:
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
        github = GitHubApp(gh.app_id, gh.private_key_pem, gh.url, max_retry_wait=1, throttle=paced)
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


def run(rounds: int) -> tuple[float, float, int]:
    """(median seconds paced, median seconds unpaced, runs each), alternating."""
    paced: list[float] = []
    unpaced: list[float] = []
    for number in range(rounds):
        for flag, into in ((True, paced), (False, unpaced)):
            with tempfile.TemporaryDirectory(prefix=f"open-swe-l2p-{number}-") as work:
                os.chmod(work, 0o755)  # noqa: S103 (the sandbox user must reach the data dir below)
                into.append(asyncio.run(_one(Path(work), paced=flag)))
    return statistics.median(paced), statistics.median(unpaced), rounds
