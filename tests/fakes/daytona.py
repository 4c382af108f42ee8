"""A loopback double of the Daytona API: control plane and toolbox, commands and git run for real.

The real `daytona` SDK reaches it over HTTP like the real service (aiohttp, urllib3 and httpx
alike), so the whole SDK path runs in tests. Each sandbox is a directory on disk; its commands
run in a process group under that directory, and git clones from bare repositories given as
file:// URLs. Every request is recorded, and faults seen in production can be injected:
429 with Retry-After, a bare 502 with an empty body, sandboxes stuck in `creating` or ending in
`error`, the misleading 404 of an archived sandbox (the toolbox of any sandbox that is not
started answers 404). The Socket.IO endpoint answers 404, so the SDK falls back to polling.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from python_multipart.multipart import MultipartParser, parse_options_header

DEFAULT_SNAPSHOT = "open-swe-vcpu2-mem4-disk5"
API_KEY = "test-daytona-key"
_BOUNDARY = "DAYTONA-FILE-BOUNDARY"
DROP = 0  # a fault status: close the connection without answering

Response = tuple[int, bytes, str, dict[str, str]]


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


@dataclass
class FakeSandbox:
    id: str
    request: dict[str, Any]
    state: str
    home: Path
    pending_states: list[str] = field(default_factory=list)
    error_reason: str | None = None
    sessions: dict[str, dict[str, _Command]] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.request.get("labels") or {})

    def dto(self, toolbox_url: str) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        return {
            "id": self.id,
            "organizationId": "org-test",
            "name": self.id,
            "snapshot": self.request.get("snapshot"),
            "user": self.request.get("user") or "daytona",
            "env": self.request.get("env") or {},
            "labels": self.labels,
            "public": False,
            "networkBlockAll": False,
            "kvm": False,
            "target": self.request.get("target") or "us",
            "cpu": 2,
            "gpu": 0,
            "memory": 4,
            "disk": 5,
            "state": self.state,
            "errorReason": self.error_reason,
            "autoStopInterval": self.request.get("autoStopInterval"),
            "autoArchiveInterval": self.request.get("autoArchiveInterval"),
            "autoDeleteInterval": self.request.get("autoDeleteInterval"),
            "createdAt": now,
            "updatedAt": now,
            "toolboxProxyUrl": toolbox_url,
        }


@dataclass
class _Command:
    id: str
    command: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path


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
                    _kill_all(commands.values())
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
            return 401, _error_json(401, "Unauthorized", source=None), "application/json", {}
        try:
            response = self._route(method, path, query, body, raw, content_type)
        except _HttpError as exc:
            body_bytes = _error_json(exc.status, exc.message, exc.code, exc.source, **exc.extra)
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
                raise _HttpError(404, f"sandbox {sandbox.id} not found")
            route = _Toolbox(self, sandbox)
            return route.dispatch(method, match.group(2), query, body, raw, content_type)
        raise _HttpError(404, f"Cannot {method} {path}")

    # --- control plane -----------------------------------------------------------------

    def _control(self, method: str, rest: str, query: dict[str, list[str]], body: Any) -> Response:
        if method == "POST" and rest == "":
            return _json(self._create(body))
        if method == "GET" and rest == "":
            return _json(self._list(query))
        match = re.fullmatch(
            r"/([^/]+)(?:/(start|stop|archive|autostop|autodelete|autoarchive)(?:/(-?\d+))?)?", rest
        )
        if not match:
            raise _HttpError(404, f"Cannot {method} /sandbox{rest}")
        sandbox_id, action, number = match.groups()
        with self._lock:
            sandbox = self._sandbox(sandbox_id)
            if method == "GET" and action is None:
                if sandbox.pending_states:
                    sandbox.state = sandbox.pending_states.pop(0)
            elif method == "DELETE" and action is None:
                sandbox.state = "destroyed"
                for commands in sandbox.sessions.values():
                    _kill_all(commands.values())
                shutil.rmtree(sandbox.home.parent, ignore_errors=True)
            elif method == "POST" and action == "start":
                if sandbox.state in ("error", "build_failed"):
                    raise _HttpError(400, f"Sandbox {sandbox.id} is in an errored state")
                sandbox.state = "started"
            elif method == "POST" and action == "stop":
                sandbox.state = "stopped"
            elif method == "POST" and action == "archive":
                if sandbox.state != "stopped":
                    raise _HttpError(400, "Sandbox must be stopped before archiving")
                sandbox.state = "archived"
            elif method == "POST" and action in ("autostop", "autodelete", "autoarchive"):
                key = {"autostop": "autoStopInterval", "autodelete": "autoDeleteInterval"}.get(
                    action, "autoArchiveInterval"
                )
                sandbox.request[key] = int(number)
                return 200, b"", "application/json", {}
            else:
                raise _HttpError(404, f"Cannot {method} /sandbox{rest}")
            return _json(sandbox.dto(self.toolbox_url))

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        snapshot = body.get("snapshot")
        if snapshot not in self.snapshots:
            raise _HttpError(
                400, f"Snapshot {snapshot} not found. Did you add it through the Daytona Dashboard?"
            )
        if self.snapshots[snapshot] != "active":
            raise _HttpError(400, f"Snapshot {snapshot} is {self.snapshots[snapshot]}")
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
            raise _HttpError(404, f"Sandbox with ID or name {sandbox_id} not found")
        return sandbox


class _Toolbox:
    """The daemon's routes for one started sandbox."""

    def __init__(self, fake: FakeDaytona, sandbox: FakeSandbox) -> None:
        self.fake = fake
        self.sandbox = sandbox

    def dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        raw: bytes,
        content_type: str,
    ) -> Response:
        arg = {k: v[0] for k, v in query.items()}
        if method == "GET" and path in ("/work-dir", "/user-home-dir"):
            return _json({"dir": str(self.sandbox.home)})
        if method == "POST" and path == "/process/execute":
            return _json(self.execute(body))
        if path.startswith("/process/session"):
            return self.session(method, path.removeprefix("/process/session"), body)
        if method == "POST" and path == "/files/bulk-upload":
            return _json(self.upload(raw, content_type))
        if method == "POST" and path == "/files/bulk-download":
            return self.download(body["paths"])
        if method == "GET" and path == "/files":
            return _json(self.list_files(self.path(arg.get("path", ""))))
        if method == "DELETE" and path == "/files":
            target = self.path(arg["path"])
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                raise _HttpError(404, f"file not found: {target}", "FILE_NOT_FOUND", _DAEMON)
            return 200, b"", "application/json", {}
        if method == "GET" and path == "/files/find":
            return _json(self.find(self.path(arg["path"]), arg["pattern"]))
        if path.startswith("/git/"):
            return _json(self.git(method, path.removeprefix("/git/"), body, arg))
        raise _HttpError(404, f"Cannot {method} {path}")

    def path(self, value: str) -> Path:
        return Path(value) if value.startswith("/") else self.sandbox.home / value

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # A clean environment, like a fresh container: nothing leaks in from the test process.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.sandbox.home),
            "USER": "daytona",
            "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
        return {**env, **(extra or {})}

    # --- process -----------------------------------------------------------------------

    def execute(self, body: dict[str, Any]) -> dict[str, Any]:
        timeout = body.get("timeout") or 10  # the daemon's default
        cwd = self.path(body.get("cwd") or str(self.sandbox.home))
        process = subprocess.Popen(
            ["sh", "-c", body["command"]],
            cwd=cwd,
            env=self.env(body.get("envs")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise _HttpError(
                408, "command execution timeout", "PROCESS_EXECUTION_TIMEOUT", _DAEMON
            ) from None
        return {"exitCode": process.returncode, "result": out.decode(errors="replace")}

    def session(self, method: str, rest: str, body: Any) -> Response:
        sessions = self.sandbox.sessions
        if method == "POST" and rest == "":
            sessions[body["sessionId"]] = {}
            return 201, b"", "application/json", {}
        match = re.fullmatch(r"/([^/]+)(?:/(exec|command/([^/]+)(/logs)?))?", rest)
        if not match or match.group(1) not in sessions:
            raise _HttpError(404, "session not found", "NOT_FOUND", _DAEMON)
        session_id, action, command_id, logs = match.groups()
        commands = sessions[session_id]
        if method == "DELETE" and action is None:
            _kill_all(commands.values())
            del sessions[session_id]
            return 204, b"", "application/json", {}
        if method == "GET" and action is None:
            return _json(
                {"sessionId": session_id, "commands": [_describe(c) for c in commands.values()]}
            )
        if method == "POST" and action == "exec":
            command = self.spawn(body["command"])
            commands[command.id] = command
            if body.get("runAsync") or body.get("async"):
                return _json({"cmdId": command.id})
            command.process.wait()
            out, err = command.stdout.read_text(), command.stderr.read_text()
            return _json(
                {
                    "cmdId": command.id,
                    "exitCode": command.process.returncode,
                    "output": out + err,
                    "stdout": out,
                    "stderr": err,
                }
            )
        if method == "GET" and command_id in commands:
            command = commands[command_id]
            if logs:
                out = command.stdout.read_bytes().decode(errors="replace")
                err = command.stderr.read_bytes().decode(errors="replace")
                return _json({"output": out + err, "stdout": out, "stderr": err})
            return _json(_describe(command))
        raise _HttpError(404, "command not found", "NOT_FOUND", _DAEMON)

    def spawn(self, script: str) -> _Command:
        command_id = uuid.uuid4().hex[:12]
        logs = self.sandbox.home.parent.parent / "logs"
        logs.mkdir(exist_ok=True)
        stdout, stderr = logs / f"{command_id}.out", logs / f"{command_id}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                ["sh", "-c", script],
                cwd=self.sandbox.home,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return _Command(command_id, script, process, stdout, stderr)

    # --- files -------------------------------------------------------------------------

    def upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        fields = _parse_multipart(raw, content_type)
        destinations = {
            name.removesuffix(".path"): data.decode()
            for name, data in fields
            if name.endswith(".path")
        }
        errors: list[str] = []
        written: list[dict[str, Any]] = []
        for name, data in fields:
            if not name.endswith(".file"):
                continue
            dest = destinations.get(name.removesuffix(".file"))
            if dest is None:
                errors.append(f"{name}: missing .path metadata")
                continue
            target = self.path(dest)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except OSError as exc:
                errors.append(f"{dest}: {exc.strerror.lower() if exc.strerror else exc}")
                continue
            written.append({"path": dest, "bytes": len(data)})
        if errors:
            raise _HttpError(400, "; ".join(errors), extra={"errors": errors, "files": written})
        return {"files": written}

    def download(self, paths: list[str]) -> Response:
        chunks: list[bytes] = []
        for raw_path in paths:
            target = self.path(raw_path)
            if target.is_dir():
                part = _part(
                    "error",
                    raw_path,
                    _error_json(400, f"path is a directory: {raw_path}", "INVALID_FILE_PATH"),
                    "application/json",
                )
            elif not target.exists():
                part = _part(
                    "error",
                    raw_path,
                    _error_json(404, f"file not found: {raw_path}", "FILE_NOT_FOUND"),
                    "application/json",
                )
            else:
                try:
                    part = _part("file", raw_path, target.read_bytes(), "application/octet-stream")
                except PermissionError:
                    part = _part(
                        "error",
                        raw_path,
                        _error_json(403, f"permission denied: {raw_path}", "FILE_ACCESS_DENIED"),
                        "application/json",
                    )
            chunks.append(part)
        chunks.append(f"--{_BOUNDARY}--\r\n".encode())
        return 200, b"".join(chunks), f"multipart/form-data; boundary={_BOUNDARY}", {}

    def list_files(self, directory: Path) -> list[dict[str, Any]]:
        if not directory.is_dir():
            raise _HttpError(404, f"directory not found: {directory}", "FILE_NOT_FOUND", _DAEMON)
        entries = []
        for entry in sorted(directory.iterdir()):
            info = entry.lstat()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info.st_mtime))
            entries.append(
                {
                    "name": entry.name,
                    "path": str(entry),
                    "isDir": entry.is_dir(),
                    "size": info.st_size,
                    "mode": oct(info.st_mode & 0o777),
                    "permissions": oct(info.st_mode & 0o777),
                    "owner": "daytona",
                    "group": "daytona",
                    "modTime": stamp,
                    "modifiedAt": stamp,
                }
            )
        return entries

    def find(self, directory: Path, pattern: str) -> list[dict[str, Any]]:
        result = subprocess.run(
            ["grep", "-rnI", "--", pattern, str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        matches = []
        for line in result.stdout.splitlines():
            file, number, content = line.split(":", 2)
            matches.append({"file": file, "line": int(number), "content": content})
        return matches

    # --- git ---------------------------------------------------------------------------

    def git(self, method: str, action: str, body: Any, arg: dict[str, str]) -> Any:
        if method == "GET":
            repo = self.path(arg["path"])
            if action == "status":
                return self.status(repo)
            if action == "branches":
                names = self.run_git(repo, "branch", "--format=%(refname:short)").split()
                return {
                    "branches": names,
                    "current": self.run_git(repo, "branch", "--show-current").strip(),
                }
            raise _HttpError(404, f"Cannot GET /git/{action}")
        if action == "clone":
            self.check_credentials(body)
            dest = self.path(body["path"])
            args = ["clone", "--single-branch"]
            if body.get("branch"):
                args += ["--branch", body["branch"]]
            if body.get("depth"):
                args += ["--depth", str(body["depth"])]
            auth, env = _basic_auth(body)
            self.run_git(self.sandbox.home, *auth, *args, "--", body["url"], str(dest), env=env)
            if body.get("commit_id"):
                self.run_git(dest, "checkout", "--quiet", body["commit_id"])
            return None
        repo = self.path(body["path"])
        if action == "add":
            self.run_git(repo, "add", "-A", "--", *body["files"])
            return None
        if action == "commit":
            identity = {
                "GIT_AUTHOR_NAME": body["author"],
                "GIT_AUTHOR_EMAIL": body["email"],
                "GIT_COMMITTER_NAME": body["author"],
                "GIT_COMMITTER_EMAIL": body["email"],
            }
            if not body.get("allow_empty") and not self.run_git(
                repo, "diff", "--cached", "--name-only"
            ):
                raise _HttpError(400, "cannot create empty commit: clean working tree")
            allow = ["--allow-empty"] if body.get("allow_empty") else []
            self.run_git(repo, "commit", "--quiet", "-m", body["message"], *allow, env=identity)
            return {"hash": self.run_git(repo, "rev-parse", "HEAD").strip()}
        if action == "push":
            self.check_credentials(body)
            branch = body.get("branch") or self.run_git(repo, "branch", "--show-current").strip()
            ref = f"refs/heads/{branch}"
            auth, env = _basic_auth(body)
            remote = body.get("remote") or "origin"
            self.run_git(repo, *auth, "push", "--quiet", remote, f"{ref}:{ref}", env=env)
            return None
        if action == "checkout":
            self.run_git(repo, "checkout", "--quiet", body["branch"])
            return None
        raise _HttpError(404, f"Cannot {method} /git/{action}")

    def check_credentials(self, body: dict[str, Any]) -> None:
        wanted = self.fake.git_credentials
        if wanted is not None and (body.get("username"), body.get("password")) != wanted:
            raise _HttpError(401, "authentication required", "GIT_AUTH_FAILED", _DAEMON)

    def status(self, repo: Path) -> dict[str, Any]:
        out = self.run_git(repo, "status", "--porcelain=v1", "--branch", "-z")
        entries = out.split("\0")
        header = entries.pop(0)
        files = []
        while entries:
            entry = entries.pop(0)
            if not entry:
                continue
            x, y, name = entry[0], entry[1], entry[3:]
            if "R" in (x, y) or "C" in (x, y):
                entries.pop(0)  # the original path of a rename or copy
            files.append({"name": name, "staging": _STATUS[x], "worktree": _STATUS[y], "extra": ""})
        branch = re.match(r"## (?:No commits yet on )?([^.\s]+)", header)
        ahead = re.search(r"ahead (\d+)", header)
        behind = re.search(r"behind (\d+)", header)
        return {
            "currentBranch": branch.group(1) if branch else "",
            "fileStatus": files,
            "ahead": int(ahead.group(1)) if ahead else 0,
            "behind": int(behind.group(1)) if behind else 0,
            "branchPublished": "..." in header,
        }

    def run_git(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env(env), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise _git_error((result.stderr or result.stdout).strip())
        return result.stdout


_DAEMON = "DAYTONA_DAEMON"
# git's complaints, and what the daemon (go-git) answers for them.
_GIT_ERRORS = [
    (
        r"Remote branch (\S+) not found",
        404,
        "couldn't find remote ref refs/heads/{0}",
        "GIT_BRANCH_NOT_FOUND",
    ),
    (
        r"does not appear to be a git repository|[Rr]epository not found|not found",
        404,
        "repository not found",
        "GIT_REPO_NOT_FOUND",
    ),
    (
        r"Authentication failed|could not read Username|returned error: 401",
        401,
        "authentication required",
        "GIT_AUTH_FAILED",
    ),
    (
        r"\[rejected\]|non-fast-forward|fetch first",
        409,
        "non-fast-forward update",
        "GIT_PUSH_REJECTED",
    ),
    (r"already exists and is not an empty directory", 409, "repository already exists", "CONFLICT"),
]


def _git_error(stderr: str) -> _HttpError:
    for pattern, status, message, code in _GIT_ERRORS:
        found = re.search(pattern, stderr)
        if found:
            return _HttpError(status, message.format(*found.groups()), code, _DAEMON)
    return _HttpError(400, stderr, "BAD_REQUEST", _DAEMON)


def _basic_auth(body: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """git options and environment for HTTP basic auth from the request, like go-git's
    BasicAuth: given to the one command, never written to the repository's config."""
    if body.get("username") is None or body.get("password") is None:
        return ["-c", "credential.helper="], {}
    helper = '!f() { echo "username=$FAKE_GIT_USER"; echo "password=$FAKE_GIT_PASS"; }; f'
    options = ["-c", "credential.helper=", "-c", f"credential.helper={helper}"]
    return options, {"FAKE_GIT_USER": body["username"], "FAKE_GIT_PASS": body["password"]}


_STATUS = {
    " ": "Unmodified",
    "?": "Untracked",
    "M": "Modified",
    "A": "Added",
    "D": "Deleted",
    "R": "Renamed",
    "C": "Copied",
    "U": "Updated but unmerged",
    "T": "Modified",
    "!": "Unmodified",
}


class _HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        source: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.source = status, message, code, source
        self.extra = extra or {}


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


def _json(payload: Any) -> Response:
    return 200, json.dumps(payload).encode(), "application/json", {}


def _error_json(
    status: int, message: str, code: str | None = None, source: str | None = _DAEMON, **extra: Any
) -> bytes:
    payload = {
        "statusCode": status,
        "message": message,
        "code": code
        or {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND"}.get(status, "ERROR"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "path": "",
        **extra,
    }
    if source:
        payload["source"] = source
    return json.dumps(payload).encode()


def _part(name: str, path: str, data: bytes, content_type: str) -> bytes:
    if path.isascii():
        disposition = f'form-data; name="{name}"; filename="{path.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
    else:
        disposition = f"form-data; name=\"{name}\"; filename*=UTF-8''{quote(path, safe='')}"
    head = f"--{_BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
    return head.encode() + data + b"\r\n"


def _parse_multipart(raw: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """(field name, data) pairs of a multipart/form-data body."""
    _, options = parse_options_header(content_type)
    fields: list[tuple[str, bytes]] = []
    current: dict[str, Any] = {}
    header_field, header_value = bytearray(), bytearray()

    def on_part_begin() -> None:
        current.clear()
        current["data"] = bytearray()

    def on_header_end() -> None:
        if header_field.lower() == b"content-disposition":
            _, params = parse_options_header(bytes(header_value))
            current["name"] = unquote(params[b"name"].decode())
        header_field.clear()
        header_value.clear()

    callbacks: dict[str, Callable[..., None]] = {
        "on_part_begin": on_part_begin,
        "on_header_field": lambda d, s, e: header_field.extend(d[s:e]),
        "on_header_value": lambda d, s, e: header_value.extend(d[s:e]),
        "on_header_end": on_header_end,
        "on_part_data": lambda d, s, e: current["data"].extend(d[s:e]),
        "on_part_end": lambda: fields.append((current["name"], bytes(current["data"]))),
    }
    parser = MultipartParser(options[b"boundary"], callbacks)  # type: ignore[arg-type]
    parser.write(raw)
    parser.finalize()
    return fields


def _describe(command: _Command) -> dict[str, Any]:
    return {"id": command.id, "command": command.command, "exitCode": command.process.poll()}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _kill_all(commands: Iterable[_Command]) -> None:
    for command in commands:
        if command.process.poll() is None:
            _kill_group(command.process)
            command.process.wait()


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
