"""The benchmark suite: its statistics, its interleaving, and a quick run end to end (so the
benchmark code cannot rot unnoticed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from benchmarks import deliveries, untrusted_text, wrk
from benchmarks.interleave import Subject, rotation, run_interleaved
from benchmarks.postgres import ThrowawaySchema
from benchmarks.processes import REPO_ROOT, ServerProcess
from benchmarks.stats import Summary, percentile, render_table, summarize
from benchmarks.webhook_ack import Backend, BenchmarkError, WebhookClient, check_background

ROW = re.compile(
    r"^(?P<name>\S.*?)\s{2,}(?P<n>\d+)\s+(?P<median>\d+\.\d+)\s+(?P<p95>\d+\.\d+)"
    r"\s+(?P<ratio>\d+\.\d+)\s+(?P<delta>[+-]\d+\.\d+)$"
)


def test_the_benchmarks_post_where_the_app_listens() -> None:
    from app.server import WEBHOOK_PATH

    assert deliveries.WEBHOOK_PATH == WEBHOOK_PATH


def test_percentile_is_nearest_rank() -> None:
    samples = list(range(1, 101))  # 1..100
    assert percentile(samples, 0.95) == 95
    assert percentile(samples, 0.5) == 50
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3, 1, 2], 1.0) == 3
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_summarize_converts_nanoseconds_to_milliseconds() -> None:
    summary = summarize("x", [1_000_000, 3_000_000, 2_000_000, 10_000_000])
    assert summary == Summary("x", 4, 2.5, 10.0)


def test_the_table_puts_the_baseline_first_with_ratios_to_it() -> None:
    table = render_table(
        "1. Title", Summary("floor", 10, 1.0, 2.0), [Summary("subject", 10, 2.5, 4.0)]
    )
    title, header, rule, *rows = table.splitlines()
    assert title == "1. Title"
    assert header.split()[:3] == ["name", "n", "median"]
    assert len({len(line) for line in (header, rule, *rows)}) == 1  # aligned
    parsed = [ROW.match(row) for row in rows]
    assert [m and (m["name"], m["ratio"], m["delta"]) for m in parsed] == [
        ("floor", "1.00", "+0.000"),
        ("subject", "2.50", "+1.500"),
    ]


def test_rounds_rotate_the_order_and_settle_after_each_block() -> None:
    log: list[str] = []

    def subject(name: str) -> Subject:
        def measure() -> int:
            log.append(name)
            return 1

        return Subject(name, measure, lambda: log.append(f"settle {name}"))

    a, b = subject("a"), subject("b")
    assert [s.name for s in rotation([a, b], 1)] == ["b", "a"]
    samples = run_interleaved([a, b], rounds=2, block=2, warmup=1)
    assert samples == {"a": [1, 1, 1, 1], "b": [1, 1, 1, 1]}  # warm-up not counted
    assert log == [
        *["a", "settle a", "b", "settle b"],  # warm-up
        *["a", "a", "settle a", "b", "b", "settle b"],  # round 0: a first
        *["b", "b", "settle b", "a", "a", "settle a"],  # round 1: b first
    ]


def test_an_unexpected_answer_stops_the_benchmark_instead_of_being_timed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "database unavailable"})

    client = WebhookClient("http://app", transport=httpx.MockTransport(refuse))
    delivery = deliveries.issues_labeled(label="open-swe")
    with pytest.raises(BenchmarkError, match=r"expected \(202, 'accepted'\), got \(503"):
        client.post(delivery, "d-1", (202, "accepted"))


def test_background_work_left_undone_fails_the_run(tmp_path: Path) -> None:
    def settle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == deliveries.SETTLE_PATH
        return httpx.Response(200, json={"outcomes": {"started": 2, "error": 1}, "runs": 2})

    backend = Backend("SQLite", ServerProcess("app", [], tmp_path), accepted=3)
    backend.client = WebhookClient("http://app", transport=httpx.MockTransport(settle))
    with pytest.raises(BenchmarkError, match="3 deliveries accepted"):
        check_background(backend)
    backend.accepted = 2
    backend.client = WebhookClient(
        "http://app",
        transport=httpx.MockTransport(
            lambda _: httpx.Response(200, json={"outcomes": {"started": 2}, "runs": 2})
        ),
    )
    assert "all 2 accepted deliveries processed" in check_background(backend)


def test_the_throwaway_schema_is_chosen_by_the_search_path_in_the_url() -> None:
    schema = ThrowawaySchema("postgresql://127.0.0.1:5432/test")
    assert schema.database_url == (
        f"postgresql://127.0.0.1:5432/test?options=-csearch_path%3D{schema.name}"
    )
    assert ThrowawaySchema("postgresql://h/db?sslmode=disable").database_url.startswith(
        "postgresql://h/db?sslmode=disable&options=-csearch_path%3Dbench_"
    )


@pytest.mark.slow
def test_quick_run_prints_every_table_with_positive_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^machine: \d+ CPUs .*Python 3\.", out, re.MULTILINE)
    titles = re.findall(r"^\d+\. (.+)$", out, re.MULTILINE)
    postgres = "PostgreSQL skipped" not in out
    expected = ["Webhook acknowledgement on SQLite"]
    expected += ["Webhook acknowledgement on PostgreSQL"] if postgres else []
    expected += ["Duplicate delivery", "Signature verification of a 1 MiB body"]
    expected += [f"{name} on 64 KiB of untrusted text" for name in untrusted_text.FUNCTIONS]
    expected += ["Server CPU per model call, one run at a time", "Server CPU per model call, 4 "]
    expected += ["/healthz while 4 runs go at once"]
    expected += ["Wall time of 4 runs at once on PostgreSQL"] if postgres else []
    has_wrk = wrk.available() is not None  # without it, a note says the table was skipped
    expected += ["Webhook ingress at the limit"] if has_wrk else []
    expected += ["A run and the web node"]
    expected += ["Input tokens over a 16-call trajectory"]
    assert [t for t in titles if not any(t.startswith(e) for e in expected)] == []
    assert len(titles) == len(expected)

    rows = [m for line in out.splitlines() if (m := ROW.match(line))]
    names = {m["name"] for m in rows}
    assert {"bare Starlette 202 (floor)", "accepted 202, idle (SQLite)"} <= names
    assert "duplicate 200 (SQLite)" in names
    for row in rows:
        assert int(row["n"]) > 0
        assert 0 < float(row["median"]) <= float(row["p95"])
        # An adversarial family can take a sliver of what ordinary prose takes ("0.00").
        text_row = row["name"] in untrusted_text.FAMILIES
        assert float(row["ratio"]) >= 0 if text_row else float(row["ratio"]) > 0
    assert "background on SQLite: all " in out
    # The real runs finished correctly (a failed run or a missing pull request fails the run).
    assert "runs on SQLite: all 7 succeeded, one pull request each" in out
    assert {"framework-free loop (floor)", "open-swe run (SQLite)"} <= names
    if postgres:
        assert "runs on PostgreSQL, 2 worker process(es): all 5 succeeded" in out
    # ingress: every delivery answered 202 was recorded and processed (nothing lost)
    assert has_wrk or "ingress skipped: wrk is not installed" in out
    workloads = ("saturation, recorded mix", "saturation, trigger label", "fixed rate")
    for workload in workloads if has_wrk else ():
        assert re.search(rf"^{workload}.*: all \d+ deliveries answered 202", out, re.MULTILINE)
    row = r"^label to PR, scripted model, s \(n=1\)\s+\d+\.\d+\s+\d+\.\d+"
    assert re.search(row, out, re.MULTILINE)  # the run opened its pull request
    assert {"keep-everything agent (baseline)", "open-swe: cache reads"} <= names
    assert {"ordinary prose", "backtick runs", "unclosed hidden tags"} <= names
