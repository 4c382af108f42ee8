"""Driving a server at saturation with `wrk`: signed deliveries, each with its own delivery id.

wrk (https://github.com/wg/wrk) is a C load generator: on a 2-core machine a Python client
would saturate itself before the server. The deliveries are written into a Lua script that
rotates over them; each request gets a fresh X-GitHub-Delivery (thread number + counter), and
the script counts answers by status code, so the driver knows how many were accepted (2xx
only after the delivery is durable) and can check that none of them was lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.deliveries import WEBHOOK_PATH, Delivery

_SCRIPT = """
local deliveries = {
%(deliveries)s
}
local run = "%(run)s"
local threads = {}

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  codes = {}
end

function request()
  sent = sent + 1
  local d = deliveries[(sent + number) %% #deliveries + 1]
  local headers = {
    ["X-GitHub-Event"] = d.event,
    ["X-GitHub-Delivery"] = run .. "-" .. number .. "-" .. sent,
    ["X-Hub-Signature-256"] = d.signature,
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
  }
  return wrk.format("POST", "%(path)s", headers, d.body)
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("codes")) do
      totals[tostring(status)] = (totals[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(totals) do
    table.insert(parts, string.format('"%%s": %%d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "socket_errors": %%d, "codes": {%%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, errors.connect + errors.read + errors.write + errors.timeout,
    table.concat(parts, ", ")))
end
"""


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    codes: dict[int, int]  # answers by HTTP status

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def answered(self, *codes: int) -> int:
        return sum(self.codes.get(code, 0) for code in codes)


def available() -> str | None:
    """The path of wrk, if installed."""
    return shutil.which("wrk")


def _lua_string(data: bytes) -> str:
    # A long bracket no body contains: [==[ ... ]==] with enough '='.
    level = 1
    while b"]" + b"=" * level + b"]" in data:
        level += 1
    equals = "=" * level
    # A long bracket drops a first newline; the JSON never starts with one.
    return f"[{equals}[{data.decode()}]{equals}]"


def script(deliveries: Sequence[Delivery], *, path: str = WEBHOOK_PATH) -> str:
    rows = ",\n".join(
        f'  {{event = "{d.event}", signature = "{d.signature}", body = {_lua_string(d.body)}}}'
        for d in deliveries
    )
    run = f"wrk-{uuid.uuid4().hex[:12]}"
    return _SCRIPT % {"deliveries": rows, "run": run, "path": path}


def run(
    url: str,
    deliveries: Sequence[Delivery],
    *,
    work_dir: Path,
    seconds: float,
    connections: int = 16,
    threads: int = 2,
) -> WrkResult:
    """Post `deliveries` in rotation over `connections` keep-alive connections for `seconds`."""
    binary = available()
    if binary is None:
        raise WrkError("wrk is not installed (apt-get install wrk)")
    lua = work_dir / f"deliveries-{uuid.uuid4().hex[:8]}.lua"
    lua.write_text(script(deliveries))
    command = [
        binary,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(round(seconds), 1)}s",
        "--timeout=10s",
        f"--script={lua}",
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=int(data["duration_us"]) / 1e6,
        p50_ms=int(data["p50_us"]) / 1e3,
        p99_ms=int(data["p99_us"]) / 1e3,
        max_ms=int(data["max_us"]) / 1e3,
        socket_errors=int(data["socket_errors"]),
        codes={int(code): int(count) for code, count in data["codes"].items()},
    )
