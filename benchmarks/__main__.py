"""`python -m benchmarks [--quick]`: every benchmark, one table each, figures beside baselines.

make bench                                  # the full suite (about a minute)
.venv/bin/python -m benchmarks --quick      # a few seconds: checks it all still works
.venv/bin/python -m benchmarks --postgres-url postgresql://user@host:5432/db
.venv/bin/python -m benchmarks --only-text   # untrusted-text tables alone (no servers)
.venv/bin/python -m benchmarks --no-runs     # without the real runs (benchmarks.agent_runs)
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from benchmarks import (
    agent_runs,
    context,
    ingress,
    label_to_pr,
    signature,
    startup,
    untrusted_text,
    webhook_ack,
)
from benchmarks.postgres import DEFAULT_URL
from benchmarks.processes import ServerError
from benchmarks.stats import render_table
from benchmarks.wrk import WrkError

FULL = webhook_ack.Sizes(rounds=40, block=10, warmup=30)
QUICK = webhook_ack.Sizes(rounds=3, block=4, warmup=3)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a few samples each (smoke run)")
    parser.add_argument("--postgres-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--only-text", action="store_true", help="only the untrusted-text tables (no servers)"
    )
    parser.add_argument(
        "--no-runs", action="store_true", help="skip the real runs (label to pull request)"
    )
    parser.add_argument("--rounds", type=_positive, help="interleaved rounds (default 40, quick 3)")
    parser.add_argument(
        "--block", type=_positive, help="samples per subject per round (default 10)"
    )
    return parser


def machine_line(postgres_version: str | None) -> str:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    database = f"SQLite {sqlite3.sqlite_version}"
    if postgres_version:
        database += f", PostgreSQL {postgres_version}"
    return (
        f"machine: {cpus} CPUs ({usable} usable), load {load}; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; uvicorn {version('uvicorn')} ({_uvicorn_parts()}), "
        f"httpx {version('httpx')}; {database}"
    )


def _uvicorn_parts() -> str:
    """What uvicorn's "auto" picks here: uvloop and httptools when installed (uvicorn[standard])."""
    from importlib.util import find_spec

    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    return f"{loop}, {http}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = webhook_ack.Sizes(
        rounds=args.rounds or base.rounds, block=args.block or base.block, warmup=base.warmup
    )
    postgres_url = None if args.no_postgres else args.postgres_url
    started = time.monotonic()
    if args.only_text:
        return _text_only(args.quick, started)
    print(
        f"open-swe benchmarks: {sizes.rounds} rounds x {sizes.block} samples per subject, "
        f"interleaved in rotating order after {sizes.warmup} warm-up; times in ms",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="open-swe-bench-") as work:
        try:
            report = webhook_ack.run(sizes, Path(work), postgres_url)
        except (ServerError, webhook_ack.BenchmarkError) as exc:
            print(f"benchmarks: {exc}", file=sys.stderr)
            return 1
    print(machine_line(report.postgres_version))
    print(webhook_ack.legend(sizes))
    for number, (title, baseline, rows) in enumerate(webhook_ack.summaries(report), start=1):
        print(f"\n{render_table(f'{number}. {title}', baseline, rows)}")
    sig_title, sig_baseline, sig_rows = signature.run(
        rounds=sizes.rounds, block=max(sizes.block // 2, 1), warmup=sizes.warmup // 3
    )
    print(f"\n{render_table(f'{len(report.tables) + 1}. {sig_title}', sig_baseline, sig_rows)}")
    first = _print_text_tables(args.quick, first=len(report.tables) + 2)
    notes = list(report.notes)
    with tempfile.TemporaryDirectory(prefix="open-swe-bench-") as work:
        try:
            first = _print_limits(args.quick, Path(work), first=first)
        except (ServerError, webhook_ack.BenchmarkError, WrkError) as exc:
            print(f"benchmarks: {exc}", file=sys.stderr)
            return 1
    if not args.no_runs:
        try:
            runs = _print_run_tables(args.quick, first=first, postgres_url=postgres_url)
        except agent_runs.WorkloadError as exc:
            print(f"benchmarks: {exc}", file=sys.stderr)
            return 1
        notes += runs.notes
        title, baseline, rows, note = context.run(args.quick)
        number = first + len(runs.tables)
        print(f"\n{render_table(f'{number}. {title}', baseline, rows, unit='ktok')}", flush=True)
        notes.append(note)
    print()
    for note in notes:
        print(note)
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


def _print_limits(quick: bool, work: Path, *, first: int) -> int:
    """Issue 12: ingress at saturation and at a fixed rate, label to PR, web start-up.
    Prints two tables numbered from `first`; returns the next number."""
    report = ingress.run(ingress.QUICK if quick else ingress.FULL, work)
    title = (
        f"{first}. Webhook ingress at the limit (SQLite, uvicorn[standard] for both; "
        "medians of rounds)"
    )
    if report.rows:
        print(f"\n{ingress.render(report, title)}", flush=True)
    for note in report.notes:
        print(note)
    times, rounds = label_to_pr.run(1 if quick else 3)
    unpaced, paced = times["unpaced"], times["paced"]
    boot = startup.run(1 if quick else 3)
    bare, web = boot["bare"], boot["web"]
    limits = ingress.IngressReport(
        rows=[
            ingress.Row(
                f"label to PR, scripted model, s (n={rounds})",
                f"{unpaced:.2f}",
                f"{paced:.2f}",
                f"{paced / unpaced:.2f}x",
                "< 3 s",
            ),
            ingress.Row(
                "web node imports (open-swe serve), s",
                f"{float(str(bare['seconds'])):.2f}",
                f"{float(str(web['seconds'])):.2f}",
                f"{float(str(web['seconds'])) / float(str(bare['seconds'])):.1f}x",
                "",
            ),
            ingress.Row(
                "web app RSS after imports, MB",
                f"{float(str(bare['rss_mb'])):.0f}",
                f"{float(str(web['rss_mb'])):.0f}",
                f"{float(str(web['rss_mb'])) / float(str(bare['rss_mb'])):.1f}x",
                "",
            ),
            ingress.Row(
                "agent code imported by the web app",
                "none",
                ", ".join(map(str, web["agent"])) or "none",  # type: ignore[call-overload]
                "",
                "none",
            ),
        ]
    )
    title = (
        f"{first + 1}. A run and the web node (baselines: the same run without any GitHub "
        "pacing; a bare Starlette import)"
    )
    print(f"\n{ingress.render(limits, title, baseline='baseline')}", flush=True)
    return first + 2


def _print_text_tables(quick: bool, *, first: int) -> int:
    """Prints the tables numbered from `first`; returns the next number."""
    sizes = (64 * untrusted_text.KIB,) if quick else (64 * untrusted_text.KIB, 1024**2)
    tables = untrusted_text.run(sizes=sizes, repeat=1 if quick else 5)
    for number, (title, baseline, rows) in enumerate(tables, start=first):
        print(f"\n{render_table(f'{number}. {title}', baseline, rows)}", flush=True)
    return first + len(tables)


def _print_run_tables(quick: bool, *, first: int, postgres_url: str | None) -> agent_runs.Report:
    with tempfile.TemporaryDirectory(prefix="open-swe-runs-") as work:
        report = agent_runs.run(quick, Path(work), postgres_url)
    for number, (title, baseline, rows) in enumerate(report.tables, start=first):
        print(f"\n{render_table(f'{number}. {title}', baseline, rows)}", flush=True)
    return report


def _text_only(quick: bool, started: float) -> int:
    print(machine_line(None))
    _print_text_tables(quick, first=1)
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
