"""Web node start-up (issue 12): what importing the web app costs, beside a bare Starlette.

Each measured in a fresh interpreter: the wall time of the imports `open-swe serve` needs to
build its app (`app.server`, the CLI, the sandbox provider, uvicorn), the RSS after them, and
which agent code (LangChain, LangGraph, deepagents, the model SDKs) was pulled in: none, since
a web-only node (`serve --no-worker`) runs no agent; a node with a worker imports it when the
worker's run job is built. The baseline imports only Starlette and uvicorn. Bytecode caches
are written by an untimed warm-up first, as an installed server has them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from benchmarks.processes import REPO_ROOT

AGENT = ("langchain", "langgraph", "deepagents", "anthropic", "openai")
_PROBE = (
    f"AGENT = {AGENT!r}\n"
    + """
import json, sys, time
started = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
elapsed = time.perf_counter() - started
agent = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0].startswith(AGENT)})
# VmRSS now (ru_maxrss would carry the parent's peak across exec on Linux).
status = open("/proc/self/status").read().split("VmRSS:")[1].split()[0]
rss = int(status) / 1024
print(json.dumps({"seconds": elapsed, "rss_mb": rss, "agent": agent}))
"""
)

BARE = ("starlette.applications", "uvicorn")
# What `open-swe serve` imports to build its app (app.cli._serve).
WEB = ("app.cli", "app.server", "app.sandbox.factory", "app.sandbox.local", "app.logs", "uvicorn")


def _probe(modules: tuple[str, ...]) -> dict[str, object]:
    # As installed for production: bytecode cached (PYTHONDONTWRITEBYTECODE, set on some
    # machines, would make every start compile all of it again).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def run(rounds: int) -> dict[str, dict[str, object]]:
    """Medians of `rounds` fresh interpreters each, alternating: {"bare": ..., "web": ...}."""
    samples: dict[str, list[dict[str, object]]] = {"bare": [], "web": []}
    _probe(BARE + WEB)  # warm-up, untimed: writes the bytecode caches
    for _ in range(rounds):
        samples["bare"].append(_probe(BARE))
        samples["web"].append(_probe(WEB))
    return {
        kind: {
            "seconds": statistics.median(float(str(s["seconds"])) for s in runs),
            "rss_mb": statistics.median(float(str(s["rss_mb"])) for s in runs),
            "agent": runs[-1]["agent"],
        }
        for kind, runs in samples.items()
    }
