"""Reading CI: check suites and check runs of a commit, GitHub Actions runs, jobs and logs.

A mixin of `InstallationClient` (app.github.client). Every call is a GET, retried like any
idempotent request. The answers are plain values (app.github.types); nothing here trusts what
the CI wrote: callers sanitise and bound it (app.ci).

A job's log is a redirect to a short-lived download URL (`GET .../actions/jobs/{id}/logs`
answers 302): the download is streamed and only its last `MAX_LOG_BYTES` are kept.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any
from urllib.parse import quote

import requests
from github import Github

from app.github.errors import GitHubError
from app.github.transport import TIMEOUT, github_errors
from app.github.types import (
    CheckAnnotation,
    CheckRunInfo,
    CheckSuiteInfo,
    CommitAuthor,
    JobInfo,
    JobStep,
    WorkflowRunInfo,
)

PER_PAGE = 100  # one page: a commit with more check runs than this is not one to fix alone
MAX_LOG_BYTES = 256 * 1024  # the tail of a job's log kept (the failure is at its end)
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # read no further than this, whatever the log's size
CHUNK = 64 * 1024


class ChecksMixin:
    """CI reads for `InstallationClient`."""

    _github: Github

    def _get(self, path: str, action: str, **params: Any) -> Any:
        with github_errors(action):
            _, data = self._github.requester.requestJsonAndCheck(
                "GET", path, parameters=params or None
            )
        return data

    def check_suites(self, full_name: str, ref: str) -> list[CheckSuiteInfo]:
        data = self._get(
            f"/repos/{full_name}/commits/{quote(ref, safe='')}/check-suites",
            f"list check suites of {ref[:12]} in {full_name}",
            per_page=PER_PAGE,
        )
        return [_suite(s) for s in _items(data, "check_suites")]

    def check_runs(self, full_name: str, ref: str) -> list[CheckRunInfo]:
        """The latest check run of each check on `ref` (re-runs replace earlier ones)."""
        data = self._get(
            f"/repos/{full_name}/commits/{quote(ref, safe='')}/check-runs",
            f"list check runs of {ref[:12]} in {full_name}",
            filter="latest",
            per_page=PER_PAGE,
        )
        return [_check_run(r) for r in _items(data, "check_runs")]

    def check_annotations(self, full_name: str, check_run_id: int) -> list[CheckAnnotation]:
        data = self._get(
            f"/repos/{full_name}/check-runs/{check_run_id}/annotations",
            f"list annotations of check run {check_run_id} in {full_name}",
            per_page=50,
        )
        return (
            [_annotation(a) for a in data if isinstance(a, dict)] if isinstance(data, list) else []
        )

    def workflow_runs(self, full_name: str, head_sha: str) -> list[WorkflowRunInfo]:
        data = self._get(
            f"/repos/{full_name}/actions/runs",
            f"list workflow runs of {head_sha[:12]} in {full_name}",
            head_sha=head_sha,
            per_page=PER_PAGE,
        )
        return [_workflow_run(r) for r in _items(data, "workflow_runs")]

    def workflow_jobs(self, full_name: str, run_id: int) -> list[JobInfo]:
        """The jobs of a workflow run's latest attempt."""
        data = self._get(
            f"/repos/{full_name}/actions/runs/{run_id}/jobs",
            f"list jobs of workflow run {run_id} in {full_name}",
            filter="latest",
            per_page=PER_PAGE,
        )
        return [_job(j) for j in _items(data, "jobs")]

    def job_log_tail(self, full_name: str, job_id: int) -> str:
        """The end of a job's log (at most MAX_LOG_BYTES, decoded leniently)."""
        action = f"download the log of job {job_id} in {full_name}"
        with github_errors(action):
            headers, _ = self._github.requester.requestBlobAndCheck(
                "GET", f"/repos/{full_name}/actions/jobs/{job_id}/logs"
            )
        location = {k.lower(): v for k, v in headers.items()}.get("location")
        if not location:
            raise GitHubError(f"{action}: GitHub gave no download address")
        return _download_tail(location, action)

    def branch_head(self, full_name: str, branch: str) -> str:
        """The sha of the newest commit on `branch`."""
        data = self._get(
            f"/repos/{full_name}/branches/{quote(branch, safe='')}",
            f"get branch {branch} of {full_name}",
        )
        sha = (data.get("commit") or {}).get("sha") if isinstance(data, dict) else None
        if not isinstance(sha, str):
            raise GitHubError(f"get branch {branch} of {full_name}: no commit in the answer")
        return sha

    def pulls_of_commit(self, full_name: str, sha: str) -> list[int]:
        """Numbers of the open pull requests whose head is (or contains) `sha`."""
        data = self._get(
            f"/repos/{full_name}/commits/{sha}/pulls",
            f"list pull requests of {sha[:12]} in {full_name}",
        )
        if not isinstance(data, list):
            return []
        return [
            p["number"]
            for p in data
            if isinstance(p, dict) and isinstance(p.get("number"), int) and p.get("state") == "open"
        ]

    def file_text(self, full_name: str, path: str, ref: str | None = None) -> str | None:
        """A file's text on `ref` (the default branch when None); None when it does not exist."""
        params = {"ref": ref} if ref else {}
        try:
            data = self._get(
                f"/repos/{full_name}/contents/{quote(path)}",
                f"read {path} of {full_name}",
                **params,
            )
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("encoding") != "base64":
            return None
        raw = base64.b64decode(str(data.get("content", "")))
        return raw.decode("utf-8", "replace")


def _download_tail(url: str, action: str) -> str:
    """Stream the log, keeping its last MAX_LOG_BYTES (no credentials: the URL is signed)."""
    tail: deque[bytes] = deque()
    kept = read = 0
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT, allow_redirects=True) as answer:
            if answer.status_code >= 400:
                raise GitHubError(f"{action}: {answer.status_code}", status=answer.status_code)
            for chunk in answer.iter_content(CHUNK):
                tail.append(chunk)
                kept += len(chunk)
                read += len(chunk)
                while kept - len(tail[0]) >= MAX_LOG_BYTES:
                    kept -= len(tail.popleft())
                if read >= MAX_DOWNLOAD_BYTES:
                    break
    except requests.RequestException as exc:
        raise GitHubError(f"{action}: {type(exc).__name__}") from None
    data = b"".join(tail)[-MAX_LOG_BYTES:]
    return data.decode("utf-8", "replace")


def _items(data: Any, key: str) -> list[dict[str, Any]]:
    items = data.get(key) if isinstance(data, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _app_slug(data: dict[str, Any]) -> str | None:
    app = data.get("app")
    return _str(app.get("slug")) if isinstance(app, dict) else None


def _suite(data: dict[str, Any]) -> CheckSuiteInfo:
    commit = data.get("head_commit")
    author = commit.get("author") if isinstance(commit, dict) else None
    return CheckSuiteInfo(
        id=_int(data.get("id")),
        status=_str(data.get("status")) or "",
        conclusion=_str(data.get("conclusion")),
        app_slug=_app_slug(data),
        runs_count=_int(data.get("latest_check_runs_count")),
        head_author=(
            CommitAuthor(_str(author.get("name")) or "", _str(author.get("email")) or "")
            if isinstance(author, dict)
            else None
        ),
    )


def _check_run(data: dict[str, Any]) -> CheckRunInfo:
    output = data.get("output") if isinstance(data.get("output"), dict) else {}
    assert isinstance(output, dict)
    return CheckRunInfo(
        id=_int(data.get("id")),
        name=_str(data.get("name")) or "",
        status=_str(data.get("status")) or "",
        conclusion=_str(data.get("conclusion")),
        app_slug=_app_slug(data),
        html_url=_str(data.get("html_url")),
        title=_str(output.get("title")),
        summary=_str(output.get("summary")),
        text=_str(output.get("text")),
        annotations_count=_int(output.get("annotations_count")),
    )


def _annotation(data: dict[str, Any]) -> CheckAnnotation:
    line = data.get("start_line")
    return CheckAnnotation(
        path=_str(data.get("path")) or "",
        start_line=_int(line) or None,
        level=_str(data.get("annotation_level")),
        title=_str(data.get("title")),
        message=_str(data.get("message")) or "",
    )


def _workflow_run(data: dict[str, Any]) -> WorkflowRunInfo:
    return WorkflowRunInfo(
        id=_int(data.get("id")),
        name=_str(data.get("name")) or "",
        status=_str(data.get("status")) or "",
        conclusion=_str(data.get("conclusion")),
        path=_str(data.get("path")) or "",
        html_url=_str(data.get("html_url")),
        run_attempt=_int(data.get("run_attempt"), 1),
    )


def _job(data: dict[str, Any]) -> JobInfo:
    steps = data.get("steps")
    return JobInfo(
        id=_int(data.get("id")),
        name=_str(data.get("name")) or "",
        status=_str(data.get("status")) or "",
        conclusion=_str(data.get("conclusion")),
        html_url=_str(data.get("html_url")),
        steps=tuple(
            JobStep(_int(s.get("number")), _str(s.get("name")) or "", _str(s.get("conclusion")))
            for s in (steps if isinstance(steps, list) else [])
            if isinstance(s, dict)
        ),
    )
