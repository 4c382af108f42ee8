"""Webhook ingress at the limit (issue 12): saturation with wrk, and latency at a fixed rate.

Servers as in webhook_ack (each in its own process, uvicorn[standard]: uvloop + httptools for
both): the bare Starlette 202 floor and open-swe's app on SQLite, its background jobs running
in its process as in production. Two workloads of signed deliveries:

- recorded mix: the 19 recorded payloads in turn (6 of them need work: installation events,
  closed issues and pull requests; the rest are answered "ignored" without the durable path);
- trigger label: `issues.labeled` with the open-swe label, every one durable before its 202
  and gated, reacted to and started as a run in the background.

Saturation: wrk, 16 keep-alive connections, rounds alternating bare and app; the medians.
Fixed rate: an open-loop client (requests sent on a schedule, latency counted from the
scheduled time, so a stall is not hidden) at 200 req/s on 16 connections.
After each app round the driver waits for the background work and checks that every 202 was
recorded and processed: nothing lost.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from benchmarks import deliveries as payloads
from benchmarks import wrk
from benchmarks.processes import ServerProcess, stop_all
from benchmarks.stats import percentile
from benchmarks.webhook_ack import BenchmarkError

CONNECTIONS = 16
FIXED_RATE = 200.0


@dataclass(frozen=True)
class Sizes:
    rounds: int  # saturation rounds per workload (bare and app each)
    seconds: float  # per wrk run
    rate_seconds: float  # per fixed-rate run


FULL = Sizes(rounds=3, seconds=4, rate_seconds=5)
QUICK = Sizes(rounds=1, seconds=1, rate_seconds=1)


@dataclass
class Row:
    name: str
    bare: str
    app: str
    ratio: str
    goal: str


@dataclass
class IngressReport:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recorded_mix() -> list[payloads.Delivery]:
    from app.webhooks.event import sign

    mix = []
    for path in sorted(payloads.FIXTURES.glob("*.json")):
        body = path.read_bytes()
        mix.append(
            payloads.Delivery(path.name.split(".")[0], body, sign(body, payloads.SECRET.encode()))
        )
    return mix


def trigger_labels() -> list[payloads.Delivery]:
    return [
        payloads.issues_labeled(label=payloads.TRIGGER_LABEL, issue_number=number)
        for number in range(1, payloads.FAKE_ISSUES + 1)
    ]


# fixed rate -----------------------------------------------------------------------------


async def _fixed_rate(
    url: str, deliveries: Sequence[payloads.Delivery], rate: float, seconds: float
) -> tuple[list[float], dict[int, int]]:
    """Latencies (ms, from the scheduled send time) and answers by status code."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    total = max(int(rate * seconds), 1)
    queue: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()
    latencies: list[float] = []
    codes: dict[int, int] = {}
    run = f"rate-{time.monotonic_ns()}"

    async def connection(number: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                scheduled, index = item
                delivery = deliveries[index % len(deliveries)]
                headers = delivery.headers(f"{run}-{index}")
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(
                    f"POST {payloads.WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}\r\n{head}"
                    f"Content-Length: {len(delivery.body)}\r\n\r\n".encode()
                    + delivery.body
                )
                await writer.drain()
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - scheduled) * 1e3)
                code = int(status_line.split()[1])
                codes[code] = codes.get(code, 0) + 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection(n)) for n in range(CONNECTIONS)]
    await asyncio.sleep(0.2)  # connected
    start = time.perf_counter()
    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((scheduled, index))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, codes


# the run --------------------------------------------------------------------------------


_ACCEPTED: list[int] = []  # 202 answers the app gave so far (every workload, every round)


def _settle(url: str, accepted: int, label: str) -> str:
    """Wait for the background work; BenchmarkError if a 202 was lost or left undone (the
    store must hold at least as many processed deliveries as were answered 202 so far)."""
    _ACCEPTED.append(accepted)
    accepted_at_least = sum(_ACCEPTED)
    for _ in range(8):  # the server waits up to 2 minutes per ask
        response = httpx.get(url + payloads.SETTLE_PATH, timeout=900)
        if response.status_code == 200:
            break
    if response.status_code != 200:
        raise BenchmarkError(f"{label}: background work did not settle: {response.text}")
    stats = response.json()
    outcomes: dict[str, int] = stats["outcomes"]
    worked = int(stats["accepted"])
    if worked < accepted_at_least:
        raise BenchmarkError(
            f"{label}: {accepted_at_least} deliveries answered 202 but only {worked} recorded "
            f"and processed ({outcomes})"
        )
    return (
        f"{label}: all {accepted_at_least} deliveries answered 202 so far were recorded and "
        f"processed ({worked} in the store)"
    )


def run(sizes: Sizes, work_dir: Path) -> IngressReport:
    if wrk.available() is None:
        return IngressReport(notes=["ingress skipped: wrk is not installed (apt-get install wrk)"])
    report = IngressReport()
    _ACCEPTED.clear()
    key_file = work_dir / "ingress-key.pem"
    with ExitStack() as stack:
        github = ServerProcess("github", ["--key-file", str(key_file)], work_dir)
        bare = ServerProcess("bare", [], work_dir)
        app = ServerProcess(
            "app",
            [
                "--key-file", str(key_file),
                "--github-ready-file", str(github.ready_file),
                "--data-dir", str(work_dir / "ingress-data"),
                "--database-url", f"sqlite:///{work_dir / 'ingress-data' / 'bench.db'}",
            ],
            work_dir,
        )  # fmt: skip
        servers = [github, bare, app]
        stack.callback(stop_all, servers)
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        for title, deliveries in (
            ("recorded mix", recorded_mix()),
            ("trigger label", trigger_labels()),
        ):
            _saturation(report, title, deliveries, bare.url, app.url, sizes, work_dir)
        mix = recorded_mix()
        bare_ms, _ = asyncio.run(_fixed_rate(bare.url, mix, FIXED_RATE, sizes.rate_seconds))
        app_ms, codes = asyncio.run(_fixed_rate(app.url, mix, FIXED_RATE, sizes.rate_seconds))
        bad = {code: n for code, n in codes.items() if code >= 300}
        if bad:
            raise BenchmarkError(f"fixed rate: answers other than 2xx: {bad}")
        report.notes.append(_settle(app.url, codes.get(202, 0), "fixed rate, recorded mix"))
        for label, fraction, goal in (("p50", 0.5, ""), ("p99", 0.99, "< 20 ms")):
            b, a = percentile(bare_ms, fraction), percentile(app_ms, fraction)
            report.rows.append(
                Row(
                    f"{FIXED_RATE:.0f} req/s, recorded mix, {label} ms (n={len(app_ms)})",
                    f"{b:.1f}",
                    f"{a:.1f}",
                    f"{a / b:.2f}x",
                    goal,
                )
            )
    return report


def _saturation(
    report: IngressReport,
    title: str,
    deliveries: Sequence[payloads.Delivery],
    bare_url: str,
    app_url: str,
    sizes: Sizes,
    work_dir: Path,
) -> None:
    bare_runs: list[wrk.WrkResult] = []
    app_runs: list[wrk.WrkResult] = []
    target = payloads.WEBHOOK_PATH
    for _ in range(sizes.rounds):
        bare_runs.append(
            wrk.run(bare_url + target, deliveries, work_dir=work_dir, seconds=sizes.seconds)
        )
        result = wrk.run(app_url + target, deliveries, work_dir=work_dir, seconds=sizes.seconds)
        app_runs.append(result)
        failed = result.requests - result.answered(200, 202)
        if failed or result.socket_errors:
            raise BenchmarkError(
                f"{title}: {failed} answers other than 200/202, {result.socket_errors} socket "
                f"errors: {result.codes}"
            )
        note = _settle(app_url, result.answered(202), f"saturation, {title}")
    report.notes.append(f"{note} (last round)")
    bare_rate = statistics.median(r.rate for r in bare_runs)
    app_rate = statistics.median(r.rate for r in app_runs)
    bare_p99 = statistics.median(r.p99_ms for r in bare_runs)
    app_p99 = statistics.median(r.p99_ms for r in app_runs)
    prefix = f"saturation, {title}, {CONNECTIONS} connections"
    report.rows.append(
        Row(
            f"{prefix}: req/s",
            f"{bare_rate:.0f}",
            f"{app_rate:.0f}",
            f"{app_rate / bare_rate:.2f}x",
            ">= 0.5x",
        )
    )
    report.rows.append(
        Row(
            f"{prefix}: p99 ms",
            f"{bare_p99:.1f}",
            f"{app_p99:.1f}",
            f"{app_p99 / bare_p99:.2f}x",
            "< 50 ms",
        )
    )


def render(report: IngressReport, title: str, *, baseline: str = "bare Starlette 202") -> str:
    header = ("what", baseline, "open-swe", "ratio", "goal")
    lines = [header, *((r.name, r.bare, r.app, r.ratio, r.goal) for r in report.rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:
        first = line[0].ljust(widths[0])
        rest = (cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    rule = "-" * len(fmt(header))
    return "\n".join([title, fmt(header), rule, *(fmt(line) for line in lines[1:])])
