"""Done when (issue 8): one labelled issue through the faults a real deployment meets in a week
ends in exactly one draft pull request and a final status that links it, with no command typed
by anyone; on SQLite with the in-process queue, and on PostgreSQL with procrastinate.

The faults: eight 500s in a row on the permission check (more than the HTTP client's own
tries: the delivery job is tried again), a model outage longer than the SDK's retries (the run
waits at its last checkpoint and the reaper resumes it, with backoff), two secondary rate
limits on the status comment's edits (Retry-After honoured) and three 502s on opening the pull
request. Time is scaled (OUTAGE, the transient-retry limit, the sweeps) so the test takes
seconds; the semantics are the real ones: a real outage, real waits, the real sweeps.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.faults import MODEL
from app.hosts import status
from tests.agent.conftest import script_fix, script_plan, script_pr
from tests.e2e.conftest import BRANCH, REPO, World
from tests.fakes.model import Fault, ModelRequest
from tests.runs.postgres_schema import postgres_schema

pytestmark = pytest.mark.slow

SCALE = 1 / 10  # of the real durations: a 45 s outage, 30 minutes of patience
OUTAGE = 45 * SCALE


class Outage:
    """The model provider is down for `seconds` from the first request it sees."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.began: float | None = None
        self.refused = 0

    def __call__(self, request: ModelRequest) -> bool:
        now = time.monotonic()
        self.began = self.began if self.began is not None else now
        down = now - self.began < self.seconds
        self.refused += down
        return down


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, world: World) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
        return
    async with postgres_schema() as pg:
        world.overrides |= {
            "database_url_raw": pg.url,
            "queue_prefix": pg.name,
            "worker_shutdown_timeout": 1.0,
        }
        try:
            yield "postgres"
        finally:
            await world.stop()  # before the schema is dropped


async def test_a_week_of_faults_ends_in_one_draft_pull_request_with_no_command_typed(
    world: World, backend: str, tmp_path: Path
) -> None:
    gh, model = world.gh, world.model
    gh.fail("GET", "/repos/*/collaborators/*/permission", 500, times=8)
    outage = Outage(OUTAGE)
    model.on(outage, Fault(529, message="Overloaded"), repeat_last=True)
    script_plan(model)
    script_fix(model)
    script_pr(model)
    gh.rate_limit("PATCH", "/repos/*/issues/comments/*", retry_after=1, times=2)
    gh.fail("POST", f"/repos/{REPO}/pulls", 502, times=3)
    await world.start(
        model_max_retries=1,
        transient_retry_minutes=30 * SCALE,
        transient_first_wait_seconds=0.5,
        outbox_sweep_seconds=1,
    )
    if backend == "postgres":
        assert world.settings.queue_backend == "procrastinate"

    await world.label("open-swe-auto")
    run = await world.finished_run()

    assert run.status == "succeeded", run.error
    assert outage.refused >= 4  # the SDK's two tries, twice at least: the run waited
    shown = [
        str((call.json or {}).get("body", ""))
        for call in gh.calls
        if call.method in ("POST", "PATCH") and "/comments" in call.path
    ]
    waiting = f"waiting: {MODEL} unavailable, retrying at "
    assert any(waiting in body for body in shown), "the status said what it waited for"
    limited = gh.calls_matching("PATCH", "/repos/*/issues/comments/*")
    assert [call.status for call in limited].count(403) == 2
    assert len(gh.calls_matching("GET", "/repos/*/collaborators/*/permission")) >= 9
    assert len(gh.calls_matching("POST", f"/repos/{REPO}/pulls")) >= 4
    [pull] = gh.pulls.values()
    assert pull.draft
    assert pull.head_ref == BRANCH
    link = f"{gh.web_url}/{REPO}/pull/{pull.issue.number}"
    [comment] = world.status_comments()
    assert status.HEADER_SUCCEEDED.format(link=link) in comment.body
    assert f"waiting: {MODEL} unavailable" not in comment.body  # the wait is over
    people = [c for c in world.comments() if not c.user.endswith("[bot]")]
    assert people == []  # no command typed by anyone
    assert world.sandboxes() == []
