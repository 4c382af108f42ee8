"""`GET /metrics`: Prometheus text, counted from the store, so every process tells the same story.

Served only when OPEN_SWE_METRICS_TOKEN is set (404 otherwise), and only with
`Authorization: Bearer <token>` (401 otherwise). Nothing is counted in memory: deliveries and
runs come from their tables, model usage from the runs' checkpoints (with, for both, the
store's running totals of what retention pruned, so counters never go down), the queue from
procrastinate's table (or, with the in-process queue, from the runs and deliveries waiting), so
any web process of a deployment sharing one PostgreSQL database answers the same totals.

The time sandboxes take to be created (`open_swe_sandbox_create_seconds`) comes from the
runs' transcripts (their "sandbox" events, app.runs.store.events), plus what retention folded
into the totals when it pruned them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.config import Settings
from app.runs import views
from app.runs.models import ACTIVE_STATUSES, FINISHED_STATUSES
from app.runs.store import Store
from app.runs.store.events import SANDBOX_CREATE, SANDBOX_CREATE_BUCKETS, sandbox_create_seconds
from app.runs.store.retention import DELIVERIES, MODEL_COST, MODEL_TOKENS, delivery_totals
from app.web.records import RunRecords

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


@dataclass
class Snapshot:
    """Everything /metrics says, read from the store at one moment."""

    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # finished, by outcome
    active: int = 0
    durations: list[float] = field(default_factory=list)  # seconds, finished runs
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    queue: dict[tuple[str, str], int] = field(default_factory=dict)
    sandbox_creates: list[float] = field(default_factory=list)  # seconds, from transcripts
    sandbox_pruned: dict[str, float] = field(default_factory=dict)  # retention's totals


async def snapshot(settings: Settings, store: Store, records: RunRecords) -> Snapshot:
    engine = store.engine
    counts = await views.run_counts(engine)
    finished = await views.finished_runs(engine)
    active = await views.active_runs(engine)
    # A pruned run's checkpoints are gone: its usage is in the store's totals instead.
    usage = await records.of([run for run in [*finished, *active] if run.pruned_at is None])
    deliveries = await views.delivery_counts(engine)
    for key, pruned in delivery_totals(await store.totals_of(DELIVERIES)).items():
        deliveries[key] = deliveries.get(key, 0) + pruned
    tokens, cost = await store.totals_of(MODEL_TOKENS), await store.totals_of(MODEL_COST)
    taken = Snapshot(
        deliveries=deliveries,
        runs={outcome: counts.get(outcome, 0) for outcome in FINISHED_STATUSES},
        active=sum(counts.get(status, 0) for status in ACTIVE_STATUSES),
        durations=[(r.updated_at - r.created_at).total_seconds() for r in finished],
        input_tokens=int(tokens.get("input", 0))
        + sum(record.usage.input_tokens for record in usage.values()),
        output_tokens=int(tokens.get("output", 0))
        + sum(record.usage.output_tokens for record in usage.values()),
        cost_usd=cost.get("", 0.0) + sum(record.usage.cost_usd for record in usage.values()),
        sandbox_creates=sandbox_create_seconds(await store.events_of_kind("sandbox")),
        sandbox_pruned=await store.totals_of(SANDBOX_CREATE),
    )
    if settings.queue_backend == "procrastinate":
        taken.queue = await views.procrastinate_jobs(engine, settings.queue_prefix)
    else:  # the in-process queue holds the unfinished deliveries and the queued/running runs
        taken.queue = {
            ("deliveries", "todo"): await views.unfinished_deliveries(engine),
            ("runs", "todo"): counts.get("queued", 0),
            ("runs", "doing"): counts.get("running", 0),
        }
    return taken


class SnapshotCollector(Collector):
    def __init__(self, taken: Snapshot) -> None:
        self._taken = taken

    def collect(self) -> Iterable[Metric]:
        taken = self._taken
        deliveries = CounterMetricFamily(
            "open_swe_deliveries",
            "Webhook deliveries received, by event and how they ended.",
            labels=["event", "outcome"],
        )
        for (event, outcome), count in sorted(taken.deliveries.items()):
            deliveries.add_metric([event, outcome], count)
        yield deliveries
        runs = CounterMetricFamily(
            "open_swe_runs", "Runs that ended, by outcome.", labels=["outcome"]
        )
        for outcome in FINISHED_STATUSES:
            runs.add_metric([outcome], taken.runs.get(outcome, 0))
        yield runs
        yield GaugeMetricFamily(
            "open_swe_runs_active", "Runs queued, running or waiting for approval.", taken.active
        )
        yield _histogram(
            "open_swe_run_duration_seconds",
            "Time from trigger to the end of finished runs (waits for approval included).",
            taken.durations,
            DURATION_BUCKETS,
        )
        tokens = CounterMetricFamily(
            "open_swe_model_tokens", "Model tokens used by runs, by kind.", labels=["kind"]
        )
        tokens.add_metric(["input"], taken.input_tokens)
        tokens.add_metric(["output"], taken.output_tokens)
        yield tokens
        yield CounterMetricFamily(
            "open_swe_model_cost_usd",
            "Estimated model cost of runs in US dollars (from a price table: an estimate).",
            value=taken.cost_usd,
        )
        queue = GaugeMetricFamily(
            "open_swe_queue_jobs",
            "Jobs in the work queues, by queue and status.",
            labels=["queue", "status"],
        )
        for (name, status), count in sorted(taken.queue.items()):
            queue.add_metric([name, status], count)
        yield queue
        yield _histogram(
            "open_swe_sandbox_create_seconds",
            "Time to create a sandbox for a run (reused sandboxes not counted).",
            taken.sandbox_creates,
            SANDBOX_CREATE_BUCKETS,
            taken.sandbox_pruned,
        )


def _histogram(
    name: str,
    documentation: str,
    values: Sequence[float],
    bounds: Sequence[float],
    pruned: dict[str, float] | None = None,
) -> HistogramMetricFamily:
    """The histogram of `values`, plus what `pruned` kept (cumulative bucket counts by bound,
    "count" and "sum") of values no longer stored."""
    before = pruned or {}
    buckets = [
        (_bound(bound), before.get(str(bound), 0.0) + sum(v <= bound for v in values))
        for bound in bounds
    ]
    buckets.append(("+Inf", before.get("count", 0.0) + len(values)))
    total = before.get("sum", 0.0) + sum(values)
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)


def _bound(bound: float) -> str:
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


def render(taken: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(taken))
    return generate_latest(registry)


async def metrics_endpoint(
    request: Request, settings: Settings, store: Store | None, records: RunRecords | None
) -> Response:
    token = settings.metrics_token
    if token is None or not token.get_secret_value():
        return PlainTextResponse("Not Found", status_code=404)
    given = request.headers.get("authorization", "")
    scheme, _, credential = given.partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        credential.strip().encode(), expected
    ):
        return PlainTextResponse(
            "Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    if store is None or records is None:
        return PlainTextResponse("starting", status_code=503)
    taken = await snapshot(settings, store, records)
    return Response(render(taken), media_type=CONTENT_TYPE)
