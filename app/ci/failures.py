"""What failed on a commit: its check suites and runs read from GitHub, the failed ones with
what the CI said about them (GitHub Actions: the failed jobs and the end of each failed step's
log; any other CI: the check run's output and annotations).

Blocking (the GitHub layer is): the webhook side calls these in a thread. Everything the CI
wrote is untrusted text, bounded here and fenced when shown (app.ci.report).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.ci.logs import MAX_CHARS, error_lines, failed_step_tail
from app.github.client import InstallationClient
from app.github.errors import GitHubError
from app.github.types import CheckRunInfo, CommitAuthor, JobInfo, WorkflowRunInfo

FAILED = frozenset({"failure", "timed_out"})  # `action_required` waits for a person: not a failure
ACTIONS_APP = "github-actions"
MAX_FAILURES = 10  # checks described in detail; more are named only
MAX_ANNOTATIONS = 20
MAX_OUTPUT_CHARS = 3_000


@dataclass(frozen=True)
class Failure:
    """One failed check, as the model and the status comment see it."""

    name: str  # the check run's name (an Actions job's name)
    conclusion: str
    url: str | None = None
    workflow: str | None = None  # Actions: the workflow's name ...
    workflow_path: str | None = None  # ... and file
    failed_steps: tuple[str, ...] = ()
    details: str = ""  # the log tail, or the output and annotations: untrusted, bounded
    errors: tuple[str, ...] = ()  # the lines that name the failure (for its signature)

    @property
    def label(self) -> str:
        return f"{self.workflow} / {self.name}" if self.workflow else self.name


@dataclass(frozen=True)
class CiReading:
    """A commit's CI at one moment."""

    completed: bool  # every suite with check runs, and every check run, has completed
    failed: tuple[CheckRunInfo, ...] = ()
    author: CommitAuthor | None = None  # of the commit, as its check suites report it
    pending: tuple[str, ...] = field(default=())  # what still runs (for logs)


def read_ci(client: InstallationClient, repo: str, sha: str) -> CiReading:
    """Has the commit's CI completed, and which check runs failed?

    A suite without check runs never completes (GitHub makes one for every App that may add
    checks): it is not waited for.
    """
    suites = client.check_suites(repo, sha)
    runs = client.check_runs(repo, sha)
    author = next((s.head_author for s in suites if s.head_author is not None), None)
    pending = [f"suite {s.id}" for s in suites if s.runs_count > 0 and s.status != "completed"]
    pending += [r.name for r in runs if r.status != "completed"]
    if pending:
        return CiReading(False, author=author, pending=tuple(pending))
    failed = tuple(r for r in runs if r.conclusion in FAILED)
    return CiReading(True, failed, author)


def failing_names(client: InstallationClient, repo: str, sha: str) -> set[str]:
    """Names of the checks that failed on `sha` (the base branch's head)."""
    return {r.name for r in client.check_runs(repo, sha) if r.conclusion in FAILED}


def describe(
    client: InstallationClient, repo: str, sha: str, failed: list[CheckRunInfo]
) -> list[Failure]:
    """What the CI said about each failed check (the first MAX_FAILURES in detail)."""
    jobs = _failed_jobs(client, repo, sha) if any(_is_actions(r) for r in failed) else {}
    described = []
    for index, run in enumerate(failed):
        if index >= MAX_FAILURES:
            described.append(Failure(run.name, run.conclusion or "failure", run.html_url))
        elif run.id in jobs:
            workflow, job = jobs[run.id]
            described.append(_from_job(client, repo, run, workflow, job))
        else:
            described.append(_from_output(client, repo, run))
    return described


def _is_actions(run: CheckRunInfo) -> bool:
    return run.app_slug == ACTIONS_APP


def _failed_jobs(
    client: InstallationClient, repo: str, sha: str
) -> dict[int, tuple[WorkflowRunInfo, JobInfo]]:
    """Failed Actions jobs of the commit by id (a job's id is its check run's id)."""
    found: dict[int, tuple[WorkflowRunInfo, JobInfo]] = {}
    for workflow in client.workflow_runs(repo, sha):
        if workflow.conclusion not in FAILED:
            continue
        for job in client.workflow_jobs(repo, workflow.id):
            if job.conclusion in FAILED:
                found[job.id] = (workflow, job)
    return found


def _from_job(
    client: InstallationClient,
    repo: str,
    run: CheckRunInfo,
    workflow: WorkflowRunInfo,
    job: JobInfo,
) -> Failure:
    steps = tuple(s.name for s in job.steps if s.conclusion in FAILED)
    try:
        tail = failed_step_tail(client.job_log_tail(repo, job.id))
    except GitHubError as exc:  # logs expire, or are too large: the rest still helps
        tail = f"(the log could not be read: {exc})"
    return Failure(
        name=run.name,
        conclusion=job.conclusion or "failure",
        url=job.html_url or run.html_url,
        workflow=workflow.name or None,
        workflow_path=workflow.path or None,
        failed_steps=steps,
        details=tail,
        errors=tuple(error_lines(tail)) or steps,
    )


def _from_output(client: InstallationClient, repo: str, run: CheckRunInfo) -> Failure:
    parts = [p for p in (run.title, run.summary, run.text) if p]
    errors: list[str] = [run.title] if run.title else []
    if run.annotations_count:
        try:
            notes = client.check_annotations(repo, run.id)[:MAX_ANNOTATIONS]
        except GitHubError:
            notes = []
        for note in notes:
            where = f"{note.path}:{note.start_line}" if note.start_line else note.path
            line = f"{where}: {note.level or 'failure'}: {note.title or ''} {note.message}"
            parts.append(line)
            errors.append(line[:300])
    details = "\n\n".join(parts)[:MAX_OUTPUT_CHARS]
    if not errors:
        errors = error_lines(details) or [details[:300]]
    return Failure(
        name=run.name,
        conclusion=run.conclusion or "failure",
        url=run.html_url,
        details=details[:MAX_CHARS],
        errors=tuple(errors),
    )
