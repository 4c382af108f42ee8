"""Starting and stopping the benchmark servers (benchmarks/serve.py) as child processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class ServerError(RuntimeError):
    """A server did not start, or died; the message carries the end of its log."""


class ServerProcess:
    """`python -m benchmarks.serve KIND ARGS...` (or another `module`), its output in `log_file`.

    `launch()` returns at once (start several in parallel), `wait_ready()` returns what the
    server announced (at least its "url"), `stop()` sends SIGTERM and waits.
    """

    def __init__(
        self, kind: str, args: Sequence[str], work_dir: Path, *, module: str = "benchmarks.serve"
    ) -> None:
        self.kind = kind
        self._module = module
        self._args = list(args)
        self.ready_file = work_dir / f"{kind}-{id(self)}.ready"
        self.log_file = work_dir / f"{kind}-{id(self)}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.details: dict[str, Any] = {}

    def launch(self) -> ServerProcess:
        command = [sys.executable, "-m", self._module, self.kind]
        command += ["--ready-file", str(self.ready_file), *self._args]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        process = self._running()
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if process.poll() is not None:
                raise ServerError(
                    f"{self.kind} server exited with {process.returncode}{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.kind} server not ready after {timeout:.0f} s{self.tail()}"
                )
            time.sleep(0.01)
        self.details = json.loads(self.ready_file.read_text())
        return self.details

    @property
    def url(self) -> str:
        return str(self.details["url"])

    def check_alive(self) -> None:
        process = self._running()
        if process.poll() is not None:
            raise ServerError(f"{self.kind} server died (exit {process.returncode}){self.tail()}")

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM), without waiting."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it hangs; the exit code (None if it was never launched)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServerError(f"{self.kind} server was not launched")
        return self._process

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- end of its log ---\n" + "\n".join(text.splitlines()[-lines:])


def stop_all(servers: Sequence[ServerProcess]) -> None:
    """Stop servers in parallel (each takes a moment to shut down); ServerError if one failed."""
    for server in servers:
        server.terminate()
    # uvicorn re-raises the SIGTERM it handled once shut down: -SIGTERM is a clean exit too.
    clean = (0, -signal.SIGTERM, None)
    failed = [(server, code) for server in servers if (code := server.stop()) not in clean]
    if failed:
        server, code = failed[0]
        raise ServerError(f"{server.kind} server exited with {code}{server.tail()}")
