"""Webhook acknowledgement latency (issue 2: "aim for single-digit milliseconds").

The real app (`create_app`) under uvicorn in its own process, on SQLite and on PostgreSQL,
driven over loopback by one keep-alive httpx client posting signed `issues.labeled` deliveries,
each with its own X-GitHub-Delivery. Measured: the time from sending a request to reading its
whole answer. Beside it, in the same rounds: a bare Starlette endpoint under the same uvicorn
configuration that reads the body and answers 202 (the floor of HTTP + ASGI).

Accepted deliveries start background jobs as in production (gating calls to a loopback fake
GitHub in its own process, a reaction, a run handed to a run job that finishes it at once).
They are not timed, but they run while the next requests arrive; after each block the driver
waits for them (untimed) and at the end checks every accepted delivery was processed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import deliveries as payloads
from benchmarks.interleave import Subject, run_interleaved
from benchmarks.postgres import ThrowawaySchema
from benchmarks.processes import ServerProcess, stop_all
from benchmarks.stats import Summary, summarize

BASELINE = "bare Starlette 202 (floor)"
DATABASE_NOTES = {"SQLite": "WAL, synchronous=FULL; ", "PostgreSQL": ""}


class BenchmarkError(RuntimeError):
    """An answer was not the one measured (e.g. 503 instead of 202): the figures would lie."""


@dataclass(frozen=True)
class Sizes:
    rounds: int
    block: int
    warmup: int


def legend(sizes: Sizes) -> str:
    return (
        "HTTP figures: one signed issues.labeled delivery posted over loopback (keep-alive) to\n"
        "uvicorn until the answer is read whole. idle: posted once earlier deliveries' background\n"
        f"work is done; burst: {sizes.block} posted back-to-back while their background jobs run "
        "in the app's process."
    )


@dataclass
class Backend:
    """One app server (one database) and what the driver saw it accept."""

    label: str  # "SQLite", "PostgreSQL"
    server: ServerProcess
    client: WebhookClient | None = None
    accepted: int = 0  # 202 answers, warm-up included: each must be processed in the background
    ignored: int = 0  # 200 "ignored" answers: recorded as finished, no background work


@dataclass
class Report:
    tables: list[tuple[str, list[str]]] = field(default_factory=list)  # (title, subject names)
    samples: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    postgres_version: str | None = None


class WebhookClient:
    """One keep-alive connection to a server: posts deliveries and times each answer."""

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=url, timeout=60, transport=transport)

    def close(self) -> None:
        self._client.close()

    def post(self, delivery: payloads.Delivery, delivery_id: str, expect: tuple[int, str]) -> int:
        """Post once; the elapsed nanoseconds, if the answer is `expect` (code, status)."""
        headers = delivery.headers(delivery_id)
        start = time.perf_counter_ns()
        response = self._client.post(payloads.WEBHOOK_PATH, content=delivery.body, headers=headers)
        elapsed = time.perf_counter_ns() - start
        got = (response.status_code, str(response.json().get("status")))
        if got != expect:
            raise BenchmarkError(f"expected {expect}, got {got}: {response.text}")
        return elapsed

    def settle(self) -> dict[str, Any]:
        """Wait for the server's background jobs; what they did (outcomes, runs)."""
        response = self._client.get(payloads.SETTLE_PATH, timeout=180)
        if response.status_code != 200:
            raise BenchmarkError(f"background work did not settle: {response.text}")
        stats: dict[str, Any] = response.json()
        return stats


def bare_subject(client: WebhookClient) -> Subject:
    delivery = payloads.issues_labeled(label=payloads.TRIGGER_LABEL)
    return Subject(
        BASELINE, lambda: client.post(delivery, payloads.new_delivery_id(), (202, "accepted"))
    )


def backend_subjects(backend: Backend) -> tuple[Subject, Subject, Subject, Subject]:
    """(ignored, accepted when idle, accepted in a burst, duplicate) deliveries to one server."""
    client = backend.client
    assert client is not None
    ignored = payloads.issues_labeled(label="bug")
    accepted: Iterator[payloads.Delivery] = itertools.cycle(
        [
            payloads.issues_labeled(label=payloads.TRIGGER_LABEL, issue_number=number)
            for number in range(1, payloads.FAKE_ISSUES + 1)
        ]
    )
    duplicate = payloads.issues_labeled(label=payloads.TRIGGER_LABEL)
    duplicate_id = payloads.new_delivery_id()

    def post_accepted() -> int:
        elapsed = client.post(next(accepted), payloads.new_delivery_id(), (202, "accepted"))
        backend.accepted += 1
        return elapsed

    def post_duplicate() -> int:
        return client.post(duplicate, duplicate_id, (200, "duplicate"))

    def post_accepted_idle() -> int:
        client.settle()  # untimed: nothing of the earlier deliveries is still running
        return post_accepted()

    def post_ignored() -> int:
        elapsed = client.post(ignored, payloads.new_delivery_id(), (200, "ignored"))
        backend.ignored += 1
        return elapsed

    def settle() -> None:
        client.settle()

    # The duplicate's first delivery, recorded before any timing.
    client.post(duplicate, duplicate_id, (202, "accepted"))
    backend.accepted += 1
    label = backend.label
    return (
        Subject(f"ignored 200 ({label})", post_ignored),
        Subject(f"accepted 202, idle ({label})", post_accepted_idle),
        Subject(f"accepted 202, burst ({label})", post_accepted, settle),
        Subject(f"duplicate 200 ({label})", post_duplicate, settle),
    )


def check_background(backend: Backend) -> str:
    """Every accepted delivery was processed and started its run; else BenchmarkError."""
    assert backend.client is not None
    stats = backend.client.settle()
    outcomes, runs = stats["outcomes"], stats["runs"]
    counts = {"started": backend.accepted, "ignored": backend.ignored}
    expected = {outcome: count for outcome, count in counts.items() if count}
    if outcomes != expected or runs != backend.accepted:
        raise BenchmarkError(
            f"{backend.label}: {backend.accepted} deliveries accepted, but background outcomes "
            f"are {outcomes} and {runs} runs reached the run job"
        )
    return (
        f"background on {backend.label}: all {backend.accepted} accepted deliveries processed "
        f"(gated, reacted, run started), {runs} runs handed to the run job"
    )


def run(sizes: Sizes, work_dir: Path, postgres_url: str | None) -> Report:
    """Start the servers, measure interleaved, check the background work, stop everything."""
    report = Report()
    key_file = work_dir / "app-key.pem"  # written by the fake GitHub, read by the app servers
    with ExitStack() as stack:
        schema: ThrowawaySchema | None = None
        if postgres_url is not None:
            schema = ThrowawaySchema(postgres_url)
            reason = schema.create()
            if reason is None:
                stack.callback(schema.drop)
                report.postgres_version = schema.server_version
            else:
                report.notes.append(f"PostgreSQL skipped: {postgres_url} is unreachable ({reason})")
                schema = None

        # The app servers import while the fake GitHub starts, then wait for its announcement.
        github = ServerProcess("github", ["--key-file", str(key_file)], work_dir)
        bare = ServerProcess("bare", [], work_dir)

        def app_server(database_url: str, *extra: str) -> ServerProcess:
            return ServerProcess(
                "app",
                [
                    "--key-file", str(key_file),
                    "--github-ready-file", str(github.ready_file),
                    "--data-dir", str(work_dir / "data"),
                    "--database-url", database_url,
                    *extra,
                ],
                work_dir,
            )  # fmt: skip

        backends = [Backend("SQLite", app_server(f"sqlite:///{work_dir / 'data' / 'bench.db'}"))]
        if schema is not None:
            backends.append(Backend("PostgreSQL", app_server(schema.database_url)))
        servers = [github, bare, *(b.server for b in backends)]
        stack.callback(stop_all, servers)  # before the schema is dropped
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()

        bare_client = WebhookClient(bare.url)
        stack.callback(bare_client.close)
        subjects = [bare_subject(bare_client)]
        per_backend: list[tuple[Backend, tuple[Subject, Subject, Subject, Subject]]] = []
        for backend in backends:
            backend.client = WebhookClient(backend.server.url)
            stack.callback(backend.client.close)
            made = backend_subjects(backend)
            per_backend.append((backend, made))
            subjects.extend(made)

        try:
            report.samples = run_interleaved(
                subjects, rounds=sizes.rounds, block=sizes.block, warmup=sizes.warmup
            )
        except (httpx.HTTPError, BenchmarkError):
            for server in servers:
                server.check_alive()  # a dead server explains the error better
            raise
        for backend, (ignored, idle, burst, _) in per_backend:
            report.notes.append(check_background(backend))
            setup = DATABASE_NOTES[backend.label] + str(backend.server.details["queue"])
            title = f"Webhook acknowledgement on {backend.label} ({setup})"
            report.tables.append((title, [ignored.name, idle.name, burst.name]))
        report.tables.append(
            (
                "Duplicate delivery (a redelivery: verified, parsed, refused by the store's key)",
                [duplicate.name for _, (*_, duplicate) in per_backend],
            )
        )
    return report


def summaries(report: Report) -> list[tuple[str, Summary, list[Summary]]]:
    """(title, baseline summary, row summaries) per table."""
    baseline = summarize(BASELINE, report.samples[BASELINE])
    return [
        (title, baseline, [summarize(name, report.samples[name]) for name in names])
        for title, names in report.tables
    ]
