"""The fake GitHub's CI: check suites, check runs, GitHub Actions runs, jobs and job logs.

Part of `FakeGitHub` (as `gh.checks`), shaped after the check-suite, check-run, workflow-run and
job schemas of shared/fixtures/github/rest-openapi-subset.json:

- `gh.checks.suite(repo, sha, app=..., conclusion=..., author=...)`: a check suite on a commit
  (completed unless `status` says otherwise); `gh.checks.run(...)`: a check run in a suite,
  with its output and annotations (another CI than Actions);
- `gh.checks.workflow(repo, sha, name, path, jobs=[...])`: a GitHub Actions workflow run, its
  check suite (app `github-actions`) and, per job, a check run with the job's id and a log;
- `gh.checks.forbid()`: every checks/Actions read answers 403, as for an installation that
  has not accepted the `checks: read` / `actions: read` permissions.

`GET .../actions/jobs/{id}/logs` answers 302 to a download address (under the API prefix
here, unauthenticated like GitHub's signed URLs), which answers the log as text.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub, _Endpoint

ACTIONS = "github-actions"
FORBIDDEN = "Resource not accessible by integration"


@dataclass
class Annotation:
    path: str
    start_line: int
    message: str
    level: str = "failure"
    title: str | None = None


@dataclass
class FakeCheckRun:
    id: int
    suite_id: int
    repo: str
    sha: str
    name: str
    app: str
    status: str = "completed"
    conclusion: str | None = "success"
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class FakeSuite:
    id: int
    repo: str
    sha: str
    app: str
    status: str = "completed"
    conclusion: str | None = "success"
    author: str = "Codertocat"
    email: str = "codertocat@example.com"


@dataclass
class FakeJob:
    id: int
    run_id: int
    name: str
    conclusion: str | None = "success"
    status: str = "completed"
    steps: list[tuple[str, str | None]] = field(default_factory=list)  # (name, conclusion)
    log: str = ""


@dataclass
class FakeWorkflowRun:
    id: int
    suite_id: int
    repo: str
    sha: str
    name: str
    path: str
    status: str = "completed"
    conclusion: str | None = "success"
    run_attempt: int = 1
    jobs: list[FakeJob] = field(default_factory=list)


class FakeChecks:
    def __init__(self, gh: FakeGitHub) -> None:
        self._gh = gh
        self._ids = itertools.count(7_000_000)
        self.suites: list[FakeSuite] = []
        self.check_runs: list[FakeCheckRun] = []
        self.workflow_runs: list[FakeWorkflowRun] = []
        self.forbidden = False

    # Test controls ----------------------------------------------------------------------

    def forbid(self, forbidden: bool = True) -> None:
        self.forbidden = forbidden

    def suite(
        self,
        repo: str,
        sha: str,
        *,
        app: str = "octocoders",
        status: str = "completed",
        conclusion: str | None = "success",
        author: str = "Codertocat",
        email: str = "codertocat@example.com",
    ) -> FakeSuite:
        with self._gh._lock:
            made = FakeSuite(next(self._ids), repo, sha, app, status, conclusion, author, email)
            self.suites.append(made)
            return made

    def run(
        self,
        suite: FakeSuite,
        name: str,
        *,
        conclusion: str | None = "failure",
        status: str = "completed",
        title: str | None = None,
        summary: str | None = None,
        text: str | None = None,
        annotations: list[Annotation] | None = None,
        run_id: int | None = None,
    ) -> FakeCheckRun:
        with self._gh._lock:
            made = FakeCheckRun(
                run_id or next(self._ids),
                suite.id,
                suite.repo,
                suite.sha,
                name,
                suite.app,
                status,
                conclusion,
                title,
                summary,
                text,
                list(annotations or []),
            )
            self.check_runs.append(made)
            return made

    def workflow(
        self,
        repo: str,
        sha: str,
        name: str,
        *,
        path: str = ".github/workflows/ci.yml",
        jobs: list[FakeJob] | None = None,
        status: str = "completed",
        author: str = "Codertocat",
        email: str = "codertocat@example.com",
    ) -> FakeWorkflowRun:
        """A workflow run with its suite and one check run per job (the job's id)."""
        with self._gh._lock:
            jobs = list(jobs or [])
            failed = any(j.conclusion in ("failure", "timed_out") for j in jobs)
            conclusion = None if status != "completed" else ("failure" if failed else "success")
            made_suite = self.suite(
                repo,
                sha,
                app=ACTIONS,
                status=status,
                conclusion=conclusion,
                author=author,
                email=email,
            )
            made = FakeWorkflowRun(
                next(self._ids), made_suite.id, repo, sha, name, path, status, conclusion
            )
            for job in jobs:
                job.run_id = made.id
                self.run(
                    made_suite,
                    job.name,
                    conclusion=job.conclusion,
                    status=job.status,
                    run_id=job.id,
                )
            made.jobs = jobs
            self.workflow_runs.append(made)
            return made

    def job(
        self,
        name: str,
        *,
        conclusion: str | None = "failure",
        steps: list[tuple[str, str | None]] | None = None,
        log: str = "",
    ) -> FakeJob:
        return FakeJob(next(self._ids), 0, name, conclusion, "completed", list(steps or []), log)

    # Endpoints --------------------------------------------------------------------------

    def endpoints(self, e: type[_Endpoint], repo: str) -> list[_Endpoint]:
        return [
            e("GET", repo + "/commits/{ref}/check-suites", "token", self._list_suites),
            e("GET", repo + "/commits/{ref}/check-runs", "token", self._list_runs),
            e("GET", repo + "/check-runs/{id}/annotations", "token", self._annotations),
            e("GET", repo + "/actions/runs", "token", self._list_workflow_runs),
            e("GET", repo + "/actions/runs/{id}/jobs", "token", self._jobs),
            e("GET", repo + "/actions/jobs/{id}/logs", "token", self._log_redirect),
            e("GET", "/_fake/job-logs/{id}", "none", self._log),
            e("GET", repo + "/commits/{sha}/pulls", "token", self._pulls_of_commit),
            e("GET", repo + "/branches/{branch}", "token", self._branch),
            e("GET", repo + "/contents/{path}", "token", self._contents),
        ]

    def _check_access(self) -> None:
        if self.forbidden:
            raise _error(403, FORBIDDEN)

    def _full_name(self, ctx: Any) -> str:
        return f"{ctx.params['owner']}/{ctx.params['repo']}"

    def _list_suites(self, ctx: Any) -> Any:
        self._check_access()
        repo, sha = self._full_name(ctx), ctx.params["ref"]
        with self._gh._lock:
            found = [s for s in self.suites if (s.repo, s.sha) == (repo, sha)]
            return {"total_count": len(found), "check_suites": [self._suite_json(s) for s in found]}

    def _list_runs(self, ctx: Any) -> Any:
        self._check_access()
        repo, sha = self._full_name(ctx), ctx.params["ref"]
        with self._gh._lock:
            found = [r for r in self.check_runs if (r.repo, r.sha) == (repo, sha)]
            if ctx.query.get("filter", "latest") == "latest":  # a re-run replaces its check
                latest = {(r.suite_id, r.name): r for r in found}
                found = [r for r in found if latest[(r.suite_id, r.name)] is r]
            return {"total_count": len(found), "check_runs": [self._run_json(r) for r in found]}

    def _annotations(self, ctx: Any) -> Any:
        self._check_access()
        wanted = int(ctx.params["id"])
        with self._gh._lock:
            for run in self.check_runs:
                if run.id == wanted:
                    return [self._annotation_json(run, a) for a in run.annotations]
        raise _error(404, "Not Found")

    def _list_workflow_runs(self, ctx: Any) -> Any:
        self._check_access()
        repo, sha = self._full_name(ctx), ctx.query.get("head_sha")
        with self._gh._lock:
            found = [
                r for r in self.workflow_runs if r.repo == repo and (sha is None or r.sha == sha)
            ]
            return {
                "total_count": len(found),
                "workflow_runs": [self._workflow_run_json(r) for r in found],
            }

    def _workflow(self, run_id: int) -> FakeWorkflowRun:
        for run in self.workflow_runs:
            if run.id == run_id:
                return run
        raise _error(404, "Not Found")

    def _jobs(self, ctx: Any) -> Any:
        self._check_access()
        with self._gh._lock:
            run = self._workflow(int(ctx.params["id"]))
            return {
                "total_count": len(run.jobs),
                "jobs": [self._job_json(run, j) for j in run.jobs],
            }

    def _find_job(self, job_id: int) -> FakeJob:
        for run in self.workflow_runs:
            for job in run.jobs:
                if job.id == job_id:
                    return job
        raise _error(404, "Not Found")

    def _log_redirect(self, ctx: Any) -> Any:
        self._check_access()
        with self._gh._lock:
            job = self._find_job(int(ctx.params["id"]))
        return 302, None, {"Location": f"{self._gh.url}/_fake/job-logs/{job.id}?sig=e2e"}

    def _log(self, ctx: Any) -> Any:
        with self._gh._lock:
            job = self._find_job(int(ctx.params["id"]))
        return 200, PlainText(job.log), {}

    def _pulls_of_commit(self, ctx: Any) -> Any:
        repo, sha = self._full_name(ctx), ctx.params["sha"]
        gh = self._gh
        with gh._lock:
            return [
                gh._pull_json(p)
                for (name, _), p in sorted(gh.pulls.items())
                if name == repo and gh._pull_head_sha(p) == sha
            ]

    def _branch(self, ctx: Any) -> Any:
        repo, branch = self._full_name(ctx), ctx.params["branch"]
        sha = self._gh._branch_sha(repo, branch)
        if sha is None:
            raise _error(404, "Branch not found")
        return {
            "name": branch,
            "commit": {"sha": sha, "url": f"{self._gh.url}/repos/{repo}/commits/{sha}"},
            "protected": False,
        }

    def _contents(self, ctx: Any) -> Any:
        repo, path = self._full_name(ctx), ctx.params["path"]
        ref = ctx.query.get("ref") or self._gh.repos[repo].default_branch
        text = self._gh._file_at(repo, ref, path)
        if text is None:
            raise _error(404, "Not Found")
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(text.encode()),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.b64encode(text.encode()).decode(),
            "sha": "0" * 40,
        }

    def diff_files(self, pull: Any) -> list[dict[str, Any]]:
        """A pull request's files as GitHub lists them, from its bare clone: each file changed
        between the base branch and the head, with its unified diff as `patch`."""
        repo = self._gh.repos[pull.issue.repo]
        git_dir = urlparse(repo.clone_url or "").path
        spec = f"{pull.base_ref}...{pull.head_ref}"

        def run(*args: str) -> str:
            return subprocess.run(
                ["git", "--git-dir", git_dir, *args], capture_output=True, text=True, check=True
            ).stdout

        statuses = {"A": "added", "D": "removed", "M": "modified"}
        files = []
        for line in run("diff", "--name-status", spec).splitlines():
            code, name = line.split("\t", 1)
            patch = run("diff", spec, "--", name).split("\n@@", 1)
            counts = run("diff", "--numstat", spec, "--", name).split("\t")
            files.append(
                {
                    "sha": "0" * 40,
                    "filename": name,
                    "status": statuses.get(code[:1], "modified"),
                    "additions": int(counts[0]),
                    "deletions": int(counts[1]),
                    "changes": int(counts[0]) + int(counts[1]),
                    "patch": "@@" + patch[1] if len(patch) == 2 else "",
                }
            )
        return files

    # JSON ---------------------------------------------------------------------------------

    def _app_json(self, slug: str) -> dict[str, Any]:
        return {"id": abs(hash(slug)) % 100_000, "slug": slug, "name": slug, "node_id": "A_1"}

    def _suite_json(self, suite: FakeSuite) -> dict[str, Any]:
        runs = [r for r in self.check_runs if r.suite_id == suite.id]
        url = self._gh.url
        return {
            "id": suite.id,
            "node_id": f"CS_{suite.id}",
            "head_branch": None,
            "head_sha": suite.sha,
            "status": suite.status,
            "conclusion": suite.conclusion,
            "url": f"{url}/repos/{suite.repo}/check-suites/{suite.id}",
            "before": None,
            "after": suite.sha,
            "pull_requests": [],
            "app": self._app_json(suite.app),
            "repository": self._gh._repo_json(suite.repo),
            "created_at": "2026-12-03T12:00:00Z",
            "updated_at": "2026-12-03T12:01:00Z",
            "head_commit": {
                "id": suite.sha,
                "tree_id": "0" * 40,
                "message": "a commit",
                "timestamp": "2026-12-03T12:00:00Z",
                "author": {"name": suite.author, "email": suite.email},
                "committer": {"name": suite.author, "email": suite.email},
            },
            "latest_check_runs_count": len(runs),
            "check_runs_url": f"{url}/repos/{suite.repo}/check-suites/{suite.id}/check-runs",
            "rerequestable": True,
            "runs_rerequestable": True,
        }

    def _run_json(self, run: FakeCheckRun) -> dict[str, Any]:
        url, web = self._gh.url, self._gh.web_url
        return {
            "id": run.id,
            "head_sha": run.sha,
            "node_id": f"CR_{run.id}",
            "external_id": "",
            "url": f"{url}/repos/{run.repo}/check-runs/{run.id}",
            "html_url": f"{web}/{run.repo}/runs/{run.id}",
            "details_url": f"{web}/{run.repo}/runs/{run.id}",
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": "2026-12-03T12:00:00Z",
            "completed_at": "2026-12-03T12:01:00Z" if run.status == "completed" else None,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{url}/repos/{run.repo}/check-runs/{run.id}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.suite_id},
            "app": self._app_json(run.app),
            "pull_requests": [],
        }

    def _annotation_json(self, run: FakeCheckRun, note: Annotation) -> dict[str, Any]:
        return {
            "path": note.path,
            "start_line": note.start_line,
            "end_line": note.start_line,
            "start_column": None,
            "end_column": None,
            "annotation_level": note.level,
            "title": note.title,
            "message": note.message,
            "raw_details": None,
            "blob_href": f"{self._gh.web_url}/{run.repo}/blob/{run.sha}/{note.path}",
        }

    def _workflow_run_json(self, run: FakeWorkflowRun) -> dict[str, Any]:
        url, web = self._gh.url, self._gh.web_url
        return {
            "id": run.id,
            "name": run.name,
            "node_id": f"WFR_{run.id}",
            "check_suite_id": run.suite_id,
            "head_branch": None,
            "head_sha": run.sha,
            "path": run.path,
            "run_number": 1,
            "run_attempt": run.run_attempt,
            "event": "pull_request",
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": 1,
            "url": f"{url}/repos/{run.repo}/actions/runs/{run.id}",
            "html_url": f"{web}/{run.repo}/actions/runs/{run.id}",
            "jobs_url": f"{url}/repos/{run.repo}/actions/runs/{run.id}/jobs",
            "pull_requests": [],
            "created_at": "2026-12-03T12:00:00Z",
            "updated_at": "2026-12-03T12:01:00Z",
        }

    def _job_json(self, run: FakeWorkflowRun, job: FakeJob) -> dict[str, Any]:
        url, web = self._gh.url, self._gh.web_url
        return {
            "id": job.id,
            "run_id": run.id,
            "run_url": f"{url}/repos/{run.repo}/actions/runs/{run.id}",
            "run_attempt": run.run_attempt,
            "node_id": f"J_{job.id}",
            "head_sha": run.sha,
            "url": f"{url}/repos/{run.repo}/actions/jobs/{job.id}",
            "html_url": f"{web}/{run.repo}/actions/runs/{run.id}/job/{job.id}",
            "status": job.status,
            "conclusion": job.conclusion,
            "started_at": "2026-12-03T12:00:00Z",
            "completed_at": "2026-12-03T12:01:00Z",
            "name": job.name,
            "steps": [
                {"name": name, "status": "completed", "conclusion": conclusion, "number": i}
                for i, (name, conclusion) in enumerate(job.steps, 1)
            ],
            "check_run_url": f"{url}/repos/{run.repo}/check-runs/{job.id}",
            "labels": ["ubuntu-latest"],
            "workflow_name": run.name,
        }


class PlainText(str):
    """A plain-text answer (a job's log), not JSON."""


def _error(status: int, message: str) -> Exception:
    from tests.fakes.github import HTTPError  # github.py imports this module first

    return HTTPError(status, message)
