"""Real runs, label to pull request: the orchestration's CPU per model call beside a
framework-free loop, many runs at once on one process, and the same on PostgreSQL with one
and with two `open-swe worker` processes.

The workloads are benchmarks.fleet's (the real app in child processes, the scripted model of
benchmarks.script) and benchmarks.bare_loop's (the floor). A workload that did not finish
correctly (a run failed, a pull request missing or doubled) stops the benchmark: its figures
would mean nothing.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.fleet import Batch, Fleet, FleetReport, bare_repo
from benchmarks.postgres import ThrowawaySchema
from benchmarks.processes import REPO_ROOT
from benchmarks.script import script_runs
from benchmarks.stats import Summary, percentile, render_table
from tests.fakes.model import ScriptedModel


class WorkloadError(RuntimeError):
    """A workload did not finish correctly."""


@dataclass(frozen=True)
class Sizes:
    singles: int  # runs measured one at a time (CPU per model call, N=1)
    many: int  # runs at once
    delay: float  # seconds the model takes per call when many runs go at once


FULL = Sizes(singles=5, many=50, delay=1.0)
QUICK = Sizes(singles=2, many=4, delay=0.2)


@dataclass
class Report:
    tables: list[tuple[str, Summary, list[Summary]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def summary(name: str, samples: list[float]) -> Summary:
    return Summary(name, len(samples), statistics.median(samples), percentile(samples, 0.95))


def check(report: FleetReport, what: str) -> FleetReport:
    problems = report.problems()
    if problems:
        raise WorkloadError(f"{what}: " + "; ".join(problems))
    return report


def bare_loop(work: Path, batches: list[int]) -> list[dict[str, float]]:
    """The floor, in a child process of its own, against its own scripted model."""
    work.mkdir(parents=True)
    work.chmod(0o711)
    remote = bare_repo(work)
    with ScriptedModel() as model:
        script_runs(model)
        runs = work / "runs"
        runs.mkdir()
        command = [sys.executable, "-m", "benchmarks.bare_loop", "--model-url", model.url]
        command += ["--remote", str(remote), "--work", str(runs)]
        command += ["--batches", ",".join(map(str, batches))]
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
        )
    if done.returncode != 0:
        raise WorkloadError(f"the framework-free loop failed: {done.stderr[-2000:]}")
    results: list[dict[str, float]] = json.loads(done.stdout)
    for batch in results:
        if batch["fixed"] != batch["runs"]:
            raise WorkloadError(f"the framework-free loop fixed {batch['fixed']} of {batch}")
    return results


def per_call(batch: Batch | dict[str, float]) -> float:
    if isinstance(batch, Batch):
        return batch.cpu_ms_per_call
    return 1000 * batch["cpu_seconds"] / max(batch["model_calls"], 1)


def run(quick: bool, work: Path, postgres_url: str | None) -> Report:
    sizes = QUICK if quick else FULL
    report = Report()
    work.chmod(0o711)  # as root, the sandboxes' user passes through to its checkouts
    floor = bare_loop(work / "bare", [1] * sizes.singles + [sizes.many])
    fleet = Fleet(
        work / "sqlite",
        batches=(1,) * sizes.singles + (sizes.many,),
        delays=(0.0,) * sizes.singles + (sizes.delay,),
        threads=64,
    )
    (work / "sqlite").mkdir()
    ours = check(asyncio.run(fleet.run()), "runs on SQLite")
    singles, many = ours.batches[:-1], ours.batches[-1]
    report.tables.append(
        (
            "Server CPU per model call, one run at a time (ms; scripted model answering at once)",
            summary("framework-free loop (floor)", [per_call(b) for b in floor[:-1]]),
            [summary("open-swe run (SQLite)", [per_call(b) for b in singles])],
        )
    )
    report.tables.append(
        (
            f"Server CPU per model call, {sizes.many} runs at once (ms)",
            summary(f"framework-free loop, {sizes.many} at once (floor)", [per_call(floor[-1])]),
            [summary(f"open-swe, {sizes.many} at once (SQLite)", [per_call(many)])],
        )
    )
    report.tables.append(
        (
            f"/healthz while {sizes.many} runs go at once (ms; model answers after "
            f"{sizes.delay:g} s)",
            summary("idle server (baseline)", ours.healthz_idle_ms),
            [summary(f"{sizes.many} runs at once (SQLite)", many.healthz_ms)],
        )
    )
    report.notes.append(
        f"runs on SQLite: all {ours.runs} succeeded, one pull request each; {sizes.many} at once "
        f"in {many.wall:.1f} s (model answering after {sizes.delay:g} s, 7 calls a run); "
        f"/healthz p99 {percentile(many.healthz_ms, 0.99):.1f} ms under load (goal < 50), "
        f"{percentile(ours.healthz_idle_ms, 0.99):.1f} ms idle; "
        f"memory: idle {ours.rss_idle_mb:.0f} MB, peak {many.rss_peak_mb:.0f} MB, "
        f"{many.rss_per_run_mb:.1f} MB per run (goal < 40)"
    )
    if postgres_url is not None:
        table = postgres(work, postgres_url, sizes, report)
        if table is not None:
            report.tables.append(table)
    return report


def postgres(
    work: Path, url: str, sizes: Sizes, report: Report
) -> tuple[str, Summary, list[Summary]] | None:
    walls = {}
    for workers in (1, 2):
        schema = ThrowawaySchema(url)
        why = schema.create()
        if why is not None:
            report.notes.append(f"runs on PostgreSQL skipped: {why}")
            return None
        try:
            fleet = Fleet(
                work / f"postgres-{workers}",
                runs=sizes.many,
                delay=sizes.delay,
                threads=64,
                database_url=schema.database_url,
                workers=workers,
                queue_prefix=schema.name,
                probe=False,
            )
            (work / f"postgres-{workers}").mkdir()
            done = check(asyncio.run(fleet.run()), f"runs on PostgreSQL, {workers} worker(s)")
        finally:
            schema.drop()
        walls[workers] = 1000 * done.batches[0].wall
        report.notes.append(
            f"runs on PostgreSQL, {workers} worker process(es): all {done.runs} succeeded, "
            f"one pull request each, none lost or duplicated"
        )
    return (
        f"Wall time of {sizes.many} runs at once on PostgreSQL (ms; a web node, N workers)",
        summary("one `open-swe worker` (baseline)", [walls[1]]),
        [summary("two `open-swe worker` processes", [walls[2]])],
    )


def main() -> int:  # `python -m benchmarks.agent_runs [--quick]`: these tables alone
    from benchmarks.postgres import DEFAULT_URL

    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory(prefix="open-swe-agent-bench-") as work:
        result = run(quick, Path(work), None if "--no-postgres" in sys.argv else DEFAULT_URL)
    for number, (title, baseline, rows) in enumerate(result.tables, start=1):
        print(f"\n{render_table(f'{number}. {title}', baseline, rows)}")
    print("\n" + "\n".join(result.notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
