"""/metrics: Prometheus text counted from the store, behind a bearer token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.github.app import GitHubApp
from app.runs.queue import ensure_schema
from app.runs.views import procrastinate_jobs
from app.transcript import RunEvent
from app.web.metrics import Snapshot, render
from tests.fakes.github import FakeGitHub
from tests.runs.postgres_schema import postgres_schema
from tests.web.conftest import Runs
from tests.webhooks.conftest import Harness, labeled, start_harness

TOKEN = "metrics-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_are_not_served_without_a_token_configured(web: Harness) -> None:
    assert (await web.client.get("/metrics")).status_code == 404


async def test_metrics_need_the_bearer_token(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    async with start_harness(tmp_path, gh, github_app, metrics_token=TOKEN) as harness:
        answers = [
            await harness.client.get("/metrics"),
            await harness.client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
            await harness.client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
            await harness.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}),
        ]
    assert [a.status_code for a in answers] == [401, 401, 401, 200]
    assert answers[0].headers["www-authenticate"] == "Bearer"
    assert answers[3].headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_metrics_count_what_the_store_holds(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    async with start_harness(tmp_path, gh, github_app, metrics_token=TOKEN) as harness:
        await harness.deliver("issues", labeled("open-swe"))  # a run starts (queued)
        await harness.deliver("issues", labeled("bug"))  # ignored
        runs = Runs(harness.store)
        await runs.add("succeeded", number=2)
        await runs.add("failed", number=3)
        waiting = await runs.add("waiting", number=4)
        now = datetime.now(UTC)
        await harness.store.add_events(
            waiting.id,
            [
                RunEvent(waiting.id, "sandbox", now, {"created": True, "seconds": 4.0}),
                RunEvent(waiting.id, "sandbox", now, {"created": False, "seconds": 0.2}),
            ],
        )
        text = (
            await harness.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        ).text

    found = samples(text)
    deliveries = {
        labels: value
        for (name, labels), value in found.items()
        if name == "open_swe_deliveries_total"
    }
    assert sum(deliveries.values()) == 2
    assert all(dict(labels)["event"] == "issues" for labels in deliveries)
    assert found[("open_swe_runs_total", (("outcome", "succeeded"),))] == 1
    assert found[("open_swe_runs_total", (("outcome", "failed"),))] == 1
    assert found[("open_swe_runs_total", (("outcome", "stopped"),))] == 0
    assert found[("open_swe_runs_active", ())] == 2  # the labelled one and the waiting one
    assert found[("open_swe_run_duration_seconds_count", ())] == 2
    assert found[("open_swe_run_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert found[("open_swe_model_tokens_total", (("kind", "input"),))] == 0
    assert found[("open_swe_model_cost_usd_total", ())] == 0
    assert found[("open_swe_sandbox_create_seconds_count", ())] == 1  # the reused one: no
    assert found[("open_swe_sandbox_create_seconds_bucket", (("le", "5.0"),))] == 1
    assert found[("open_swe_sandbox_create_seconds_bucket", (("le", "2.5"),))] == 0
    queue = {dict(labels)["queue"] for (name, labels) in found if name == "open_swe_queue_jobs"}
    assert queue == {"deliveries", "runs"}


def test_the_text_format_of_every_family() -> None:
    text = render(
        Snapshot(
            deliveries={("issues", "started"): 3},
            runs={"succeeded": 2, "failed": 1, "stopped": 0},
            active=4,
            durations=[30.0, 400.0, 90_000.0],
            input_tokens=1200,
            output_tokens=300,
            cost_usd=0.25,
            queue={("runs", "todo"): 1},
            sandbox_creates=[0.5, 7.0],
            sandbox_pruned={"1.0": 2.0, "10.0": 3.0, "60.0": 3.0, "count": 3.0, "sum": 14.0},
        )
    ).decode()

    found = samples(text)
    assert found[("open_swe_deliveries_total", (("event", "issues"), ("outcome", "started")))] == 3
    assert found[("open_swe_runs_active", ())] == 4
    assert found[("open_swe_run_duration_seconds_bucket", (("le", "60.0"),))] == 1
    assert found[("open_swe_run_duration_seconds_bucket", (("le", "600.0"),))] == 2
    assert found[("open_swe_run_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert found[("open_swe_run_duration_seconds_sum", ())] == 90_430.0
    assert found[("open_swe_model_tokens_total", (("kind", "output"),))] == 300
    assert found[("open_swe_model_cost_usd_total", ())] == 0.25
    assert found[("open_swe_queue_jobs", (("queue", "runs"), ("status", "todo")))] == 1
    assert "# TYPE open_swe_run_duration_seconds histogram" in text
    # Sandboxes: two still in transcripts, three pruned (kept as totals).
    assert found[("open_swe_sandbox_create_seconds_bucket", (("le", "1.0"),))] == 3
    assert found[("open_swe_sandbox_create_seconds_bucket", (("le", "10.0"),))] == 5
    assert found[("open_swe_sandbox_create_seconds_bucket", (("le", "+Inf"),))] == 5
    assert found[("open_swe_sandbox_create_seconds_count", ())] == 5
    assert found[("open_swe_sandbox_create_seconds_sum", ())] == 21.5
    assert "# TYPE open_swe_sandbox_create_seconds histogram" in text


@pytest.mark.postgres
async def test_procrastinate_jobs_are_counted_by_queue_and_status() -> None:
    import procrastinate

    from app.runs.queue import libpq_url

    async with postgres_schema() as pg:
        connector = procrastinate.PsycopgConnector(conninfo=libpq_url(pg.url))
        app = procrastinate.App(connector=connector)
        await app.open_async()
        try:
            await ensure_schema(connector)
        finally:
            await app.close_async()
        for queue, status in [
            ("swe-deliveries", "todo"),
            ("swe-runs", "todo"),
            ("swe-runs", "doing"),
            ("swe-runs", "todo"),
            ("other_x-runs", "todo"),
        ]:
            await pg.rows(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, status, args)"
                " VALUES (%s, 't', %s, '{}')",
                queue,
                status,
            )
        counts = await procrastinate_jobs(pg.store.engine, "swe")
        assert counts == {("deliveries", "todo"): 1, ("runs", "todo"): 2, ("runs", "doing"): 1}
        assert await procrastinate_jobs(pg.store.engine, "other_x") == {("runs", "todo"): 1}
