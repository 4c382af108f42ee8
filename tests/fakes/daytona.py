"""A loopback double of the Daytona API: control plane and toolbox, commands and git run for real.

The real `daytona` SDK reaches it over HTTP like the real service (aiohttp, urllib3 and httpx
alike), so the whole SDK path runs in tests. Each sandbox is a directory on disk; its commands
run in a process group under that directory, and git clones from bare repositories given as
file:// URLs. Every request is recorded, and faults seen in production can be injected:
429 with Retry-After, a bare 502 with an empty body, sandboxes stuck in `creating` or ending in
`error`, the misleading 404 of an archived sandbox (the toolbox of any sandbox that is not
started answers 404). The Socket.IO endpoint answers 404, so the SDK falls back to polling.
What runs inside a sandbox (the daemon's routes) is in tests/fakes/daytona_toolbox.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.daytona_toolbox import (
    FakeSandbox,
    HttpError,
    Response,
    Toolbox,
    error_json,
    json_response,
    kill_all,
)

DEFAULT_SNAPSHOT = "open-swe-vcpu2-mem4-disk5"
API_KEY = "test-daytona-key"
DROP = 0  # a fault status: close the connection without answering


@dataclass
class Recorded:
    method: str
    path: str  # e.g. /api/sandbox or /toolbox/<sandbox id>/git/clone
    query: dict[str, list[str]]
    body: Any  # parsed JSON, raw bytes for other bodies, None when empty
    headers: dict[str, str]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: bytes
    headers: dict[str, str]
    times: int
    after: bool  # True: the request is processed first, then the answer is replaced


class FakeDaytona:
    """Start with `with FakeDaytona(tmp_path) as fake:`; point DaytonaConfig at `fake.api_url`."""

    def __init__(self, root: Path, *, api_key: str = API_KEY) -> None:
        self.root = root
        self.api_key = api_key
        self.snapshots: dict[str, str] = {DEFAULT_SNAPSHOT: "active"}
        self.git_credentials: tuple[str, str] | None = None  # required by clone/push when set
        self.requests: list[Recorded] = []
        self.sandboxes: dict[str, FakeSandbox] = {}
        self._faults: list[Fault] = []
        self._create_plans: list[tuple[list[str], str | None]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FakeDaytona:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self.reset()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def toolbox_url(self) -> str:
        return f"{self.base_url}/toolbox"

    # --- scripting ---------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        body: bytes | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Answer the next `times` requests whose path matches the regex `path` with `status`.

        Status 0 drops the connection without an answer; `after=True` processes the request
        first (the caller never learns that it happened).
        """
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        fault = Fault(method, re.compile(path), status, raw, headers or {}, times, after)
        with self._lock:
            self._faults.append(fault)

    def plan_create(self, *states: str, error_reason: str | None = None) -> None:
        """The next created sandbox goes through `states` (one per GET); the last one sticks."""
        with self._lock:
            self._create_plans.append((list(states), error_reason))

    def reset(self) -> None:
        """Forget every sandbox, request, fault and setting (one double for many tests)."""
        with self._lock:
            for sandbox in self.sandboxes.values():
                for commands in sandbox.sessions.values():
                    kill_all(commands.values())
            self.sandboxes.clear()
            self.requests.clear()
            self._faults.clear()
            self._create_plans.clear()
            self.snapshots = {DEFAULT_SNAPSHOT: "active"}
            self.git_credentials = None

    def set_state(self, sandbox_id: str, state: str) -> None:
        with self._lock:
            self.sandboxes[sandbox_id].state = state

    def live(self) -> list[FakeSandbox]:
        """Sandboxes that still exist (anything not destroyed)."""
        with self._lock:
            return [s for s in self.sandboxes.values() if s.state != "destroyed"]

    def calls(self, method: str | None = None, path: str = "") -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and re.search(path, r.path)
            ]

    # --- request handling (called from server threads) --------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> Response:
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        content_type = headers.get("content-type", "")
        body: Any = raw or None
        if raw and content_type.startswith("application/json"):
            body = json.loads(raw)
        with self._lock:
            self.requests.append(Recorded(method, path, query, body, headers))
            fault = self._take_fault(method, path)
        if fault is not None and not fault.after:
            return fault.status, fault.body, "application/json", fault.headers
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, error_json(401, "Unauthorized", source=None), "application/json", {}
        try:
            response = self._route(method, path, query, body, raw, content_type)
        except HttpError as exc:
            body_bytes = error_json(exc.status, exc.message, exc.code, exc.source, **exc.extra)
            response = exc.status, body_bytes, "application/json", {}
        if fault is not None:
            return fault.status, fault.body, "application/json", fault.headers
        return response

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.method == method and fault.pattern.search(path):
                fault.times -= 1
                return fault
        return None

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        raw: bytes,
        content_type: str,
    ) -> Response:
        if path.startswith("/api/sandbox"):
            return self._control(method, path.removeprefix("/api/sandbox"), query, body)
        match = re.fullmatch(r"/toolbox/([^/]+)(/.*)", path)
        if match:
            sandbox = self._sandbox(match.group(1))
            if sandbox.state != "started":
                # What the proxy answers for archived (and other not-running) sandboxes.
                raise HttpError(404, f"sandbox {sandbox.id} not found")
            route = Toolbox(sandbox, git_credentials=self.git_credentials)
            return route.dispatch(method, match.group(2), query, body, raw, content_type)
        raise HttpError(404, f"Cannot {method} {path}")

    # --- control plane -----------------------------------------------------------------

    def _control(self, method: str, rest: str, query: dict[str, list[str]], body: Any) -> Response:
        if method == "POST" and rest == "":
            return json_response(self._create(body))
        if method == "GET" and rest == "":
            return json_response(self._list(query))
        match = re.fullmatch(
            r"/([^/]+)(?:/(start|stop|archive|labels|network-settings|autostop|autodelete|autoarchive)"
            r"(?:/(-?\d+))?)?",
            rest,
        )
        if not match:
            raise HttpError(404, f"Cannot {method} /sandbox{rest}")
        sandbox_id, action, number = match.groups()
        with self._lock:
            sandbox = self._sandbox(sandbox_id)
            if method == "GET" and action is None:
                if sandbox.pending_states:
                    sandbox.state = sandbox.pending_states.pop(0)
            elif method == "DELETE" and action is None:
                sandbox.state = "destroyed"
                for commands in sandbox.sessions.values():
                    kill_all(commands.values())
                shutil.rmtree(sandbox.home.parent, ignore_errors=True)
            elif method == "POST" and action == "start":
                if sandbox.state in ("error", "build_failed"):
                    raise HttpError(400, f"Sandbox {sandbox.id} is in an errored state")
                sandbox.state = "started"
            elif method == "POST" and action == "network-settings":
                sandbox.set_network(body)
            elif method == "PUT" and action == "labels":
                sandbox.request["labels"] = dict(body["labels"])  # replaces them all, as Daytona
                return json_response({"labels": sandbox.labels})
            elif method == "POST" and action == "stop":
                sandbox.state = "stopped"
            elif method == "POST" and action == "archive":
                if sandbox.state != "stopped":
                    raise HttpError(400, "Sandbox must be stopped before archiving")
                sandbox.state = "archived"
            elif method == "POST" and action in ("autostop", "autodelete", "autoarchive"):
                key = {"autostop": "autoStopInterval", "autodelete": "autoDeleteInterval"}.get(
                    action, "autoArchiveInterval"
                )
                sandbox.request[key] = int(number)
                return 200, b"", "application/json", {}
            else:
                raise HttpError(404, f"Cannot {method} /sandbox{rest}")
            return json_response(sandbox.dto(self.toolbox_url))

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        snapshot = body.get("snapshot")
        if snapshot not in self.snapshots:
            raise HttpError(
                400, f"Snapshot {snapshot} not found. Did you add it through the Daytona Dashboard?"
            )
        if self.snapshots[snapshot] != "active":
            raise HttpError(400, f"Snapshot {snapshot} is {self.snapshots[snapshot]}")
        sandbox_id = uuid.uuid4().hex[:12]
        home = self.root / sandbox_id / "home" / "daytona"
        home.mkdir(parents=True)
        with self._lock:
            states, reason = (
                self._create_plans.pop(0) if self._create_plans else (["started"], None)
            )
            sandbox = FakeSandbox(sandbox_id, body, states[0], home, states[1:], reason)
            self.sandboxes[sandbox_id] = sandbox
            return sandbox.dto(self.toolbox_url)

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted: dict[str, str] = json.loads(query["labels"][0]) if "labels" in query else {}
        states = set(query.get("states", []))
        with self._lock:
            items = [
                s.dto(self.toolbox_url)
                for s in self.sandboxes.values()
                if s.state != "destroyed"
                and wanted.items() <= s.labels.items()
                and (not states or s.state in states)
            ]
        return {"items": items, "nextCursor": None}

    def _sandbox(self, sandbox_id: str) -> FakeSandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.state == "destroyed":
            raise HttpError(404, f"Sandbox with ID or name {sandbox_id} not found")
        return sandbox


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping keep-alive connections (a cancelled request, a closed session) is
        # normal; anything else is a bug in the double and must be loud.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeDaytona
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, content_type, extra = self.fake.handle(self.command, self.path, headers, raw)
        if status == DROP:
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def bare_repo(root: Path, files: dict[str, str], *, branch: str = "main") -> str:
    """A bare git repository with one commit of `files`; returns its file:// URL."""
    work, bare = root / "seed", root / "remote.git"
    work.mkdir(parents=True)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Seed",
        "GIT_AUTHOR_EMAIL": "seed@example.com",
        "GIT_COMMITTER_NAME": "Seed",
        "GIT_COMMITTER_EMAIL": "seed@example.com",
    }
    for args in (
        ["init", "--quiet", "-b", branch, str(work)],
        ["-C", str(work), "add", "-A"],
        ["-C", str(work), "commit", "--quiet", "-m", "seed"],
        ["clone", "--quiet", "--bare", str(work), str(bare)],
    ):
        subprocess.run(["git", *args], env=env, check=True, capture_output=True)
    return bare.as_uri()
