"""Many runs at once: N labelled issues become N pull requests on one open-swe process (SQLite,
in-process queue) or on a web node and W `open-swe worker` processes (PostgreSQL).

The parent runs the outside world on loopback (the fake GitHub, the scripted model of
benchmarks.script, a bare git repository as GitHub's copy) and the app in child processes
(benchmarks.fleet_serve), so what is measured is the app alone: its CPU (utime + stime of
the app processes, not of the commands its sandboxes run), its resident memory (idle, then
sampled while the runs go), `/healthz` latency while the runs go, wall time from the first
delivery to the last run's end, and what GitHub ended up with (pull requests per issue).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.webhooks.event import sign
from benchmarks import deliveries
from benchmarks.fleet_serve import SECRET, SLUG
from benchmarks.processes import ServerProcess, stop_all
from benchmarks.script import REPO_FILES, Pace, script_runs
from tests.fakes.github import FakeGitHub
from tests.fakes.model import ScriptedModel

APP_ID = 4343
REPO = deliveries.REPO
GIT_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": "/dev/null"}
FINISHED = ("succeeded", "failed", "stopped", "no_changes")
FIXES = re.compile(r"Fixes #(\d+)")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Batch:
    """Runs started together and measured together, after the warm-up."""

    runs: int
    wall: float = 0.0
    cpu_seconds: float = 0.0  # of the app's processes
    model_calls: int = 0
    healthz_ms: list[float] = field(default_factory=list)  # while the runs went
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_seconds / max(self.model_calls, 1)

    @property
    def rss_per_run_mb(self) -> float:
        return max(self.rss_peak_mb - self.rss_before_mb, 0.0) / max(self.runs, 1)


@dataclass
class FleetReport:
    """What one fleet did; `problems()` lists every way the workload went wrong."""

    runs: int  # all of them, the warm-up's too
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    pulls_per_issue: Counter[int] = field(default_factory=Counter)
    pull_creations: int = 0
    batches: list[Batch] = field(default_factory=list)
    healthz_idle_ms: list[float] = field(default_factory=list)  # before any run
    rss_idle_mb: float = 0.0  # after the warm-up, before the batches

    def problems(self) -> list[str]:
        found = []
        if self.statuses["succeeded"] != self.runs:
            found.append(f"{self.statuses['succeeded']} of {self.runs} runs succeeded")
        found += self.errors[:5]
        wrong = {n: c for n, c in self.pulls_per_issue.items() if c != 1}
        missing = self.runs - len(self.pulls_per_issue)
        if wrong or missing or self.pull_creations != self.runs:
            found.append(
                f"pull requests: {len(self.pulls_per_issue)} issues have one, {missing} none, "
                f"{wrong} more than one; {self.pull_creations} created"
            )
        return found


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, env={**GIT_ENV, "HOME": str(cwd)}, check=True, capture_output=True
    )


def bare_repo(work: Path) -> Path:
    source = work / "source"
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    git(source, "config", "user.name", "Ada Lovelace")
    git(source, "config", "user.email", "ada@example.com")
    for name, content in REPO_FILES.items():
        (source / name).write_text(content)
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "initial")
    bare = work / "remote.git"
    git(work, "clone", "-q", "--bare", str(source), str(bare))
    return bare


def labeled(number: int) -> tuple[bytes, dict[str, str]]:
    data: dict[str, Any] = json.loads((deliveries.FIXTURES / "issues.labeled.json").read_text())
    data["installation"] = {"id": deliveries.INSTALLATION, "node_id": "MDIz"}
    data["label"]["name"] = "open-swe-auto"
    data["issue"]["number"] = number
    body = json.dumps(data).encode()
    headers = {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": f"fleet-{uuid.uuid4()}",
        "X-Hub-Signature-256": sign(body, SECRET.encode()),
        "Content-Type": "application/json",
    }
    return body, headers


def _proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process itself, resident MB) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Fleet:
    """One fleet: `await fleet.run()` in a fresh `work` directory."""

    work: Path
    runs: int = 50
    delay: float = 1.0  # seconds the model takes per call
    threads: int = 64  # asyncio's default thread pool in each app process
    database_url: str | None = None  # PostgreSQL (then `workers` worker processes)
    workers: int = 0
    batches: tuple[int, ...] = ()  # runs started together, one batch after the other
    delays: tuple[float, ...] = ()  # the model's delay for each batch (default: `delay`)
    pace: Pace = field(default_factory=Pace)
    queue_prefix: str = "open-swe"
    timeout: float = 600.0
    warmup: int = 1  # runs done before measuring (one-time costs are not per-run costs)
    profile: Path | None = None
    spy: Path | None = None
    probe: bool = True  # GET /healthz every 50 ms while the runs go (its CPU counts too)  # py-spy's collapsed stacks of the web process, written here  # cProfile of the web process's event loop, written here

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.batches or (self.runs,)

    async def run(self) -> FleetReport:
        # As root, sandbox commands run as an unprivileged user who must pass through here.
        self.work.chmod(0o711)
        remote = bare_repo(self.work)
        with FakeGitHub(app_id=APP_ID, app_slug=SLUG) as gh, ScriptedModel() as model:
            gh.add_repo(REPO, clone_url=remote)
            gh.add_installation(
                deliveries.INSTALLATION, deliveries.OWNER, [REPO], account_type="User"
            )
            gh.set_permission(REPO, deliveries.MAINTAINER, "admin")
            numbers = [
                gh.add_issue(
                    REPO, title=f"add() is wrong ({i})", body="`add(2, 3)` returns -1."
                ).number
                for i in range(self.warmup + sum(self.sizes))
            ]
            self.pace = script_runs(model, delay=self.delay)
            processes = self._launch(gh, model)
            try:
                report = await self._drive(processes, numbers, gh, model)
            finally:
                stop_all(processes)
            if gh.errors:
                report.errors.append(f"the fake GitHub failed: {gh.errors[:3]}")
            return report

    def _launch(self, gh: FakeGitHub, model: ScriptedModel) -> list[ServerProcess]:
        key = self.work / "app.pem"
        key.touch(mode=0o600)
        assert gh.private_key_pem is not None
        key.write_text(gh.private_key_pem)
        database = self.database_url or f"sqlite:///{self.work / 'data' / 'open-swe.db'}"
        common = [
            "--app-id", str(APP_ID), "--key-file", str(key), "--github-url", gh.url,
            "--github-web-url", gh.web_url, "--model-url", model.url,
            "--data-dir", str(self.work / "data"), "--database-url", database,
            "--threads", str(self.threads), "--max-runs", str(self.runs),
            "--queue-prefix", self.queue_prefix,
        ]  # fmt: skip
        web_only = ["--no-worker"] if self.workers else []
        web_only += ["--profile", str(self.profile)] if self.profile else []
        processes = [
            ServerProcess("serve", common + web_only, self.work, module="benchmarks.fleet_serve")
        ]
        processes += [
            ServerProcess("worker", common, self.work, module="benchmarks.fleet_serve")
            for _ in range(self.workers)
        ]
        for process in processes:
            process.launch()
        try:
            for process in processes:
                process.wait_ready()
        except Exception:
            stop_all(processes)
            raise
        return processes

    async def _drive(
        self,
        processes: list[ServerProcess],
        numbers: list[int],
        gh: FakeGitHub,
        model: ScriptedModel,
    ) -> FleetReport:
        from app.runs.store import Store

        pids = [int(p.details["pid"]) for p in processes]
        report = FleetReport(len(numbers))
        store = Store.open(self.database_url or f"sqlite:///{self.work / 'data' / 'open-swe.db'}")
        url = processes[0].url
        warm, rest = numbers[: self.warmup], numbers[self.warmup :]
        async with httpx.AsyncClient(timeout=30) as client:
            try:
                report.healthz_idle_ms = await self._probe_idle(client, url)
                # One-time costs (lazy imports, first connections) are not per-run costs.
                if warm:
                    await self._deliver(client, url, warm, report)
                    await self._wait(store, processes, pids, Batch(len(warm)), report, len(warm))
                await asyncio.sleep(0.5)  # let the warm-up's leftovers settle
                report.rss_idle_mb = sum(_proc_stat(pid)[1] for pid in pids)
                if self.profile:
                    os.kill(pids[0], signal.SIGUSR1)
                spy = self._spy(pids[0])
                done = len(warm)
                for index, size in enumerate(self.sizes):
                    self.pace.seconds = self.delays[index] if self.delays else self.delay
                    batch = Batch(size, rss_before_mb=sum(_proc_stat(p)[1] for p in pids))
                    batch.rss_peak_mb = batch.rss_before_mb
                    cpu_before, calls_before = (
                        sum(_proc_stat(p)[0] for p in pids),
                        len(model.requests),
                    )
                    stop = asyncio.Event()
                    probe = asyncio.create_task(self._probe(client, url, stop, batch))
                    started = time.monotonic()
                    try:
                        await self._deliver(client, url, rest[:size], report)
                        rest, done = rest[size:], done + size
                        await self._wait(store, processes, pids, batch, report, done)
                        batch.wall = time.monotonic() - started
                    finally:
                        stop.set()
                        await probe
                    batch.cpu_seconds = sum(_proc_stat(p)[0] for p in pids) - cpu_before
                    batch.model_calls = len(model.requests) - calls_before
                    report.batches.append(batch)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
                if self.profile:
                    os.kill(pids[0], signal.SIGUSR2)
                    await asyncio.sleep(1.0)
            finally:
                await store.close()
        if model.unmatched:
            report.errors.append(f"{len(model.unmatched)} model requests had no scripted reply")
        report.pulls_per_issue = Counter(
            int(match.group(1))
            for c in gh.calls_matching("POST", f"/repos/{REPO}/pulls")
            if c.status < 300 and (match := FIXES.search(str(c.json.get("body", ""))))
        )
        report.pull_creations = sum(report.pulls_per_issue.values())
        return report

    def _spy(self, pid: int) -> subprocess.Popen[bytes] | None:
        """py-spy over the measured window (the thread holding the GIL: CPU in Python), when asked."""
        if self.spy is None:
            return None
        command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--threads"]
        command += ["--rate", "200", "--gil", "--output", str(self.spy)]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def _deliver(
        self, client: httpx.AsyncClient, url: str, numbers: list[int], report: FleetReport
    ) -> None:
        answers = await asyncio.gather(*(
            client.post(f"{url}{deliveries.WEBHOOK_PATH}", content=body, headers=headers)
            for body, headers in map(labeled, numbers)
        ))  # fmt: skip
        refused = [a.status_code for a in answers if a.status_code != 202]
        if refused:
            report.errors.append(f"deliveries refused: {refused[:5]}")

    async def _wait(
        self,
        store: Any,
        processes: list[ServerProcess],
        pids: list[int],
        batch: Batch,
        report: FleetReport,
        total: int,
    ) -> None:
        """Until `total` runs exist and all have finished; the peak memory meanwhile."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            batch.rss_peak_mb = max(batch.rss_peak_mb, sum(_proc_stat(p)[1] for p in pids))
            for process in processes:
                process.check_alive()
            if await self._finished(store, report, total):
                return
            await asyncio.sleep(0.25)
        report.errors.append(f"not finished after {self.timeout:.0f} s")

    async def _finished(self, store: Any, report: FleetReport, total: int) -> bool:
        from sqlalchemy import select

        from app.runs.models import runs

        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(runs.c.status, runs.c.error))).all()
        report.statuses = Counter(str(status) for status, _ in rows)
        report.errors[:] = [e for e in report.errors if not e.startswith("run failed")]
        report.errors += [f"run failed: {error}" for status, error in rows
                          if status == "failed"]  # fmt: skip
        return len(rows) >= total and all(status in FINISHED for status, _ in rows)

    async def _probe_idle(self, client: httpx.AsyncClient, url: str) -> list[float]:
        """/healthz on the idle server: the baseline of the figure under load."""
        samples: list[float] = []
        for _ in range(40 if self.probe else 0):
            start = time.perf_counter()
            answer = await client.get(f"{url}/healthz")
            if answer.status_code == 200:
                samples.append(1000 * (time.perf_counter() - start))
            await asyncio.sleep(0.02)
        return samples

    async def _probe(
        self, client: httpx.AsyncClient, url: str, done: asyncio.Event, report: Batch
    ) -> None:
        """GET /healthz every 50 ms while the runs go: what a load balancer sees."""
        while self.probe and not done.is_set():
            start = time.perf_counter()
            answer = await client.get(f"{url}/healthz")
            if answer.status_code == 200:
                report.healthz_ms.append(1000 * (time.perf_counter() - start))
            await asyncio.sleep(0.05)
