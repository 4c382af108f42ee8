"""What runs inside one fake Daytona sandbox: the daemon's process, session, file and git
routes, executed for real under the sandbox's directory (see tests/fakes/daytona.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from python_multipart.multipart import MultipartParser, parse_options_header

DAEMON = "DAYTONA_DAEMON"  # the `source` of the daemon's error envelopes
_BOUNDARY = "DAYTONA-FILE-BOUNDARY"

Response = tuple[int, bytes, str, dict[str, str]]


@dataclass
class FakeSandbox:
    id: str
    request: dict[str, Any]
    state: str
    home: Path
    pending_states: list[str] = field(default_factory=list)
    error_reason: str | None = None
    sessions: dict[str, dict[str, Command]] = field(default_factory=dict)
    # What ran, and whether the sandbox's network was open then: ("exec", script), ("git", op)
    activity: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.request.get("labels") or {})

    @property
    def network_open(self) -> bool:
        return not self.request.get("networkBlockAll") and not self.request.get("networkAllowList")

    def set_network(self, body: dict[str, Any]) -> None:
        """Daytona's update: block all, or an allow list (not blocking), or open (clears it)."""
        if body.get("networkAllowList"):
            self.request["networkAllowList"] = body["networkAllowList"]
            self.request["networkBlockAll"] = False
        elif body.get("networkBlockAll") is not None:
            self.request["networkBlockAll"] = body["networkBlockAll"]
            if not body["networkBlockAll"]:
                self.request["networkAllowList"] = None

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
            "networkBlockAll": bool(self.request.get("networkBlockAll")),
            "networkAllowList": self.request.get("networkAllowList"),
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
class Command:
    id: str
    command: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path


class Toolbox:
    """The daemon's routes for one started sandbox."""

    def __init__(self, sandbox: FakeSandbox, *, git_credentials: tuple[str, str] | None) -> None:
        self.sandbox = sandbox
        self.git_credentials = git_credentials  # required by clone and push when set

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
            return json_response({"dir": str(self.sandbox.home)})
        if method == "POST" and path == "/process/execute":
            return json_response(self.execute(body))
        if path.startswith("/process/session"):
            return self.session(method, path.removeprefix("/process/session"), body)
        if method == "POST" and path == "/files/bulk-upload":
            return json_response(self.upload(raw, content_type))
        if method == "POST" and path == "/files/bulk-download":
            return self.download(body["paths"])
        if method == "GET" and path == "/files":
            return json_response(self.list_files(self.path(arg.get("path", ""))))
        if method == "DELETE" and path == "/files":
            target = self.path(arg["path"])
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                raise HttpError(404, f"file not found: {target}", "FILE_NOT_FOUND", DAEMON)
            return 200, b"", "application/json", {}
        if method == "GET" and path == "/files/find":
            return json_response(self.find(self.path(arg["path"]), arg["pattern"]))
        if path.startswith("/git/"):
            return json_response(self.git(method, path.removeprefix("/git/"), body, arg))
        raise HttpError(404, f"Cannot {method} {path}")

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
            raise HttpError(
                408, "command execution timeout", "PROCESS_EXECUTION_TIMEOUT", DAEMON
            ) from None
        return {"exitCode": process.returncode, "result": out.decode(errors="replace")}

    def session(self, method: str, rest: str, body: Any) -> Response:
        sessions = self.sandbox.sessions
        if method == "POST" and rest == "":
            sessions[body["sessionId"]] = {}
            return 201, b"", "application/json", {}
        match = re.fullmatch(r"/([^/]+)(?:/(exec|command/([^/]+)(/logs)?))?", rest)
        if not match or match.group(1) not in sessions:
            raise HttpError(404, "session not found", "NOT_FOUND", DAEMON)
        session_id, action, command_id, logs = match.groups()
        commands = sessions[session_id]
        if method == "DELETE" and action is None:
            kill_all(commands.values())
            del sessions[session_id]
            return 204, b"", "application/json", {}
        if method == "GET" and action is None:
            return json_response(
                {"sessionId": session_id, "commands": [_describe(c) for c in commands.values()]}
            )
        if method == "POST" and action == "exec":
            self.sandbox.activity.append(("exec", body["command"], self.sandbox.network_open))
            command = self.spawn(body["command"])
            commands[command.id] = command
            if body.get("runAsync") or body.get("async"):
                return json_response({"cmdId": command.id})
            command.process.wait()
            out, err = command.stdout.read_text(), command.stderr.read_text()
            return json_response(
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
                return json_response({"output": out + err, "stdout": out, "stderr": err})
            return json_response(_describe(command))
        raise HttpError(404, "command not found", "NOT_FOUND", DAEMON)

    def spawn(self, script: str) -> Command:
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
        return Command(command_id, script, process, stdout, stderr)

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
            raise HttpError(400, "; ".join(errors), extra={"errors": errors, "files": written})
        return {"files": written}

    def download(self, paths: list[str]) -> Response:
        chunks: list[bytes] = []
        for raw_path in paths:
            target = self.path(raw_path)
            if target.is_dir():
                part = _part(
                    "error",
                    raw_path,
                    error_json(400, f"path is a directory: {raw_path}", "INVALID_FILE_PATH"),
                    "application/json",
                )
            elif not target.exists():
                part = _part(
                    "error",
                    raw_path,
                    error_json(404, f"file not found: {raw_path}", "FILE_NOT_FOUND"),
                    "application/json",
                )
            else:
                try:
                    part = _part("file", raw_path, target.read_bytes(), "application/octet-stream")
                except PermissionError:
                    part = _part(
                        "error",
                        raw_path,
                        error_json(403, f"permission denied: {raw_path}", "FILE_ACCESS_DENIED"),
                        "application/json",
                    )
            chunks.append(part)
        chunks.append(f"--{_BOUNDARY}--\r\n".encode())
        return 200, b"".join(chunks), f"multipart/form-data; boundary={_BOUNDARY}", {}

    def list_files(self, directory: Path) -> list[dict[str, Any]]:
        if not directory.is_dir():
            raise HttpError(404, f"directory not found: {directory}", "FILE_NOT_FOUND", DAEMON)
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
        if method == "POST":
            self.sandbox.activity.append(("git", action, self.sandbox.network_open))
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
            raise HttpError(404, f"Cannot GET /git/{action}")
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
                raise HttpError(400, "cannot create empty commit: clean working tree")
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
        raise HttpError(404, f"Cannot {method} /git/{action}")

    def check_credentials(self, body: dict[str, Any]) -> None:
        wanted = self.git_credentials
        if wanted is not None and (body.get("username"), body.get("password")) != wanted:
            raise HttpError(401, "authentication required", "GIT_AUTH_FAILED", DAEMON)

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


def _git_error(stderr: str) -> HttpError:
    for pattern, status, message, code in _GIT_ERRORS:
        found = re.search(pattern, stderr)
        if found:
            return HttpError(status, message.format(*found.groups()), code, DAEMON)
    return HttpError(400, stderr, "BAD_REQUEST", DAEMON)


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


class HttpError(Exception):
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


def json_response(payload: Any) -> Response:
    return 200, json.dumps(payload).encode(), "application/json", {}


def error_json(
    status: int, message: str, code: str | None = None, source: str | None = DAEMON, **extra: Any
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


def _describe(command: Command) -> dict[str, Any]:
    return {"id": command.id, "command": command.command, "exitCode": command.process.poll()}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def kill_all(commands: Iterable[Command]) -> None:
    for command in commands:
        if command.process.poll() is None:
            _kill_group(command.process)
            command.process.wait()
