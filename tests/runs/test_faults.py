"""Runs survive transient faults: a run that meets one waits at its last checkpoint (its
sandbox kept, its status comment saying what is unavailable and until when), the reaper
resumes it when due, and it fails only once the fault outlasted OPEN_SWE_TRANSIENT_RETRY_MINUTES.
The reaper also finishes runs whose final status was never stored (finding 5)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver

from app.faults import DATABASE, GIT, GITHUB, MODEL, Transient, transient
from app.github.app import GitHubApp
from app.github.errors import GitHubError, RateLimited
from app.hosts import status
from app.runs.dispatch import ResumeRun
from app.runs.faults import FaultPolicy
from app.runs.jobs import RunJob
from app.runs.models import Run
from app.runs.reaper import Reaper
from app.runs.retry import TryAgain
from app.runs.store import Store
from app.sandbox.base import SandboxError
from app.sandbox.git import PushRefused
from app.sandbox.local import LocalProvider
from tests.agent.conftest import PLAN, read_calc, script_fix, script_pr
from tests.e2e.conftest import INSTALLATION, MAINTAINER, REPO, make_settings
from tests.fakes.github import FakeGitHub, PullRequest
from tests.fakes.model import Fault, ScriptedModel, offers, tool
from tests.runs import test_jobs
from tests.runs.test_jobs import status_comments

# The run job's fixtures (the store, the fake GitHub and model, the local sandbox).
checkpointer, cloneable, gh, github = (
    test_jobs.checkpointer,
    test_jobs.cloneable,
    test_jobs.gh,
    test_jobs.github,
)
model, provider, settings, store = (
    test_jobs.model,
    test_jobs.provider,
    test_jobs.settings,
    test_jobs.store,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


async def auto_run(store: Store) -> Run:
    """A queued run whose plan is auto-approved (label open-swe-auto)."""
    run = await store.start_run(
        thread=f"{REPO}#1",
        repo=REPO,
        number=1,
        kind="issue",
        installation_id=INSTALLATION,
        requested_by=MAINTAINER,
        auto_approve=True,
        delivery_id="delivery-1",
    )
    assert isinstance(run, Run)
    return run


def opened(gh: FakeGitHub) -> list[PullRequest]:
    """The pull requests the run opened (the fixture's #2 is someone else's)."""
    return [pull for pull in gh.pulls.values() if pull.head_ref.startswith("open-swe/")]


class Recorder:
    """A queue that records what is submitted, and carries what it is told."""

    def __init__(self, carried: set[str] | None = None) -> None:
        self.submitted: list[object] = []
        self._carried = carried or set()

    async def submit(self, job: object) -> None:
        self.submitted.append(job)

    async def carried(self) -> set[str]:
        return set(self._carried)


def test_one_classifier_names_what_is_unavailable() -> None:
    limited = RateLimited("secondary rate limit", status=403, retry_after=60)
    assert transient(limited) == Transient(GITHUB, "secondary rate limit", 60)
    assert transient(GitHubError("bad gateway", status=502)) == Transient(GITHUB, "bad gateway")
    assert transient(GitHubError("no such issue", status=404)) is None
    assert transient(sqlite3.OperationalError("database is locked")) is not None
    assert transient(sqlite3.OperationalError("no such table: x")) is None
    wrapped = RuntimeError("while writing")
    wrapped.__cause__ = sqlite3.OperationalError("disk I/O error")
    found = transient(wrapped)
    assert found is not None
    assert found.what == DATABASE
    assert transient(ValueError("a bug")) is None
    unreachable = SandboxError(
        "git push failed: fatal: unable to access 'https://github.com/a/b.git/': "
        "The requested URL returned error: 502"
    )
    assert transient(unreachable) == Transient(GIT, "git: returned error: 502")
    refused = PushRefused("git push failed: returned error: 502", reason="a hook said no")
    assert transient(refused) is None
    assert transient(SandboxError("clone failed: repository not found")) is None


def test_the_backoff_doubles_honours_retry_after_and_ends_at_the_deadline() -> None:
    policy = FaultPolicy(first_wait=10, give_up_after=timedelta(minutes=30))
    assert policy.next_try(NOW, 0, NOW) == NOW + timedelta(seconds=10)
    assert policy.next_try(NOW, 2, NOW) == NOW + timedelta(seconds=40)
    assert policy.next_try(NOW, 0, NOW, hint=120) == NOW + timedelta(seconds=120)
    assert policy.next_try(NOW, 20, NOW) == NOW + timedelta(seconds=300)  # at most MAX_WAIT
    late = NOW + timedelta(minutes=29, seconds=50)
    assert policy.next_try(NOW, 9, late) == NOW + timedelta(minutes=30)  # one last try
    assert policy.next_try(NOW, 10, NOW + timedelta(minutes=30)) is None


@pytest.fixture
def fault_settings(tmp_path: Path, gh: FakeGitHub, model: ScriptedModel) -> Any:
    return make_settings(
        tmp_path,
        gh,
        model,
        model_max_retries=0,
        transient_first_wait_seconds=30,
        transient_retry_minutes=30,
    )


async def test_a_model_outage_suspends_the_run_which_the_reaper_resumes_from_its_checkpoint(
    fault_settings: Any,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
    cloneable: Path,
) -> None:
    """Finding 2: an outage no longer fails the run nor deletes its sandbox."""
    model.on(offers("SubmitPlan"), Fault(529, message="Overloaded"), read_calc)
    model.on(offers("SubmitPlan"), tool("SubmitPlan", **PLAN))
    script_fix(model)
    script_pr(model)
    job = RunJob(fault_settings, store, github, provider, checkpointer)
    run = await auto_run(store)

    await job(run.id)

    faulted = await store.run(run.id)
    assert faulted is not None
    assert faulted.status == "faulted"
    assert faulted.retry_at is not None
    assert faulted.fault_since is not None
    assert faulted.retry_at - faulted.fault_since == timedelta(seconds=30)
    [comment] = status_comments(gh)
    shown = faulted.retry_at.strftime("%H:%M")
    assert f"waiting: {MODEL} unavailable, retrying at {shown} UTC" in comment.body
    assert provider.find({"open-swe.run": run.id}) != []  # kept for the resumption
    prepared = list(model.requests)

    queue = Recorder()
    assert await Reaper(store, queue)() == 0  # not due yet  # type: ignore[arg-type]
    later = faulted.retry_at + timedelta(seconds=1)
    assert await Reaper(store, queue, clock=lambda: later)() == 1  # type: ignore[arg-type]
    assert queue.submitted == [ResumeRun(run.id)]

    await job(run.id)

    done = await store.run(run.id)
    assert done is not None
    assert done.status == "succeeded", done.error
    [pull] = opened(gh)
    [comment] = status_comments(gh)
    assert f"/pull/{pull.issue.number}" in comment.body
    assert len(model.requests) > len(prepared)


async def test_a_fault_that_outlasts_the_limit_fails_the_run_with_the_retry_hint(
    tmp_path: Path,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
    cloneable: Path,
) -> None:
    settings = make_settings(tmp_path, gh, model, model_max_retries=0)
    model.on(offers("SubmitPlan"), Fault(503, message="down"), repeat_last=True)
    job = RunJob(settings, store, github, provider, checkpointer)
    run = await auto_run(store)

    await job(run.id)  # faulted: the first try of a fault always waits
    first = await store.run(run.id)
    assert first is not None
    assert first.status == "faulted"
    assert first.fault_since is not None
    await job(run.id)  # resumed, the same fault again: it waits on, with the same deadline
    second = await store.run(run.id)
    assert second is not None
    assert (second.status, second.fault_since, second.fault_tries) == (
        "faulted",
        first.fault_since,
        2,
    )
    assert second.retry_at is not None
    assert first.retry_at is not None
    assert second.retry_at - first.retry_at > timedelta(
        seconds=settings.transient_first_wait_seconds
    )
    # Thirty minutes pass (the store's clock of the fault moved back instead).
    since = first.fault_since - timedelta(minutes=settings.transient_retry_minutes)
    await store.set_run_status(
        run.id, "faulted", expected=("faulted",), extra={"fault_since": since}
    )
    await job(run.id)  # resumed past the deadline: the fault met again ends it

    failed = await store.run(run.id)
    assert failed is not None
    assert failed.status == "failed"
    reason = FaultPolicy.from_settings(settings).gave_up(Transient(MODEL, "HTTP 503"))
    assert failed.error == reason
    [comment] = status_comments(gh)
    assert status.NEXT.format(what=status.NEXT_RETRY) in comment.body
    assert provider.find({"open-swe.run": run.id}) == []


async def test_a_run_whose_final_status_was_not_stored_is_finished_by_the_reaper(
    settings: Any,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
    cloneable: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 5: GitHub said succeeded while the store said running, blocking the issue."""
    model.on(offers("SubmitPlan"), read_calc, tool("SubmitPlan", **PLAN))
    script_fix(model)
    script_pr(model)
    job = RunJob(settings, store, github, provider, checkpointer)
    run = await auto_run(store)
    real = store.set_run_status

    async def store_gone(run_id: str, status_: str, **kwargs: Any) -> Any:
        if status_ in ("succeeded", "failed"):
            raise ConnectionError("the database went away")
        return await real(run_id, status_, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("app.runs.lifecycle.RECORD_END_WAITS", (0.01,))
    monkeypatch.setattr(store, "set_run_status", store_gone)
    await job(run.id)
    monkeypatch.setattr(store, "set_run_status", real)

    orphan = await store.run(run.id)
    assert orphan is not None
    assert orphan.status == "running"  # the phantom: every new label would be refused
    [comment] = status_comments(gh)
    assert status.HEADER_WORKING not in comment.body  # GitHub already shows the end
    queue = Recorder()
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert await Reaper(store, queue, clock=lambda: soon)() == 0  # within the window
    later = datetime.now(UTC) + timedelta(minutes=2)
    busy = Recorder(carried={ResumeRun(run.id).key})
    assert await Reaper(store, busy, clock=lambda: later)() == 0  # a live job has it
    assert await Reaper(store, queue, clock=lambda: later)() == 1
    calls = len(model.requests)

    await job(run.id)  # what the queue does with the resubmission

    done = await store.run(run.id)
    assert done is not None
    assert done.status == "succeeded"
    assert len(model.requests) == calls  # nothing redone
    spent = await store.spent_by([run.id])
    assert spent.model_calls == calls  # every call in the ledger, as it ended
    assert len(opened(gh)) == 1
    [again] = status_comments(gh)
    assert re.search(r"/pull/\d+", again.body)
    assert await store.active_run(run.thread) is None


async def test_a_checkpoint_that_cannot_be_written_suspends_the_run_before_it_publishes(
    fault_settings: Any,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
    cloneable: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 4: the checkpoint writes failed while the run went on to push, open the pull
    request, then report an internal error and delete its sandbox. Now the step whose
    checkpoint cannot be written stops the run there, waiting on the database."""
    model.on(offers("SubmitPlan"), read_calc, tool("SubmitPlan", **PLAN))
    script_fix(model)
    script_pr(model)
    job = RunJob(fault_settings, store, github, provider, checkpointer)
    run = await auto_run(store)
    real = checkpointer.aput
    failed: list[str] = []

    async def disk_gone(config: Any, checkpoint: Any, *args: Any) -> Any:
        if "tests" in checkpoint["channel_values"] and not failed:  # the step after verify
            failed.append("verify")
            raise sqlite3.OperationalError("disk I/O error")
        return await real(config, checkpoint, *args)

    monkeypatch.setattr(checkpointer, "aput", disk_gone)
    await job(run.id)

    faulted = await store.run(run.id)
    assert faulted is not None
    assert failed == ["verify"]
    assert faulted.status == "faulted", faulted.error
    assert opened(gh) == []  # nothing published past a checkpoint that was not written
    assert model.requests_offering("PullRequestText") == []
    [comment] = status_comments(gh)
    assert f"waiting: {DATABASE} unavailable" in comment.body
    assert provider.find({"open-swe.run": run.id}) != []

    await job(run.id)  # the reaper's resumption: from the last checkpoint that was written

    done = await store.run(run.id)
    assert done is not None
    assert done.status == "succeeded", done.error
    assert len(opened(gh)) == 1


async def test_a_run_job_that_cannot_read_its_run_is_tried_again_by_the_queue(
    settings: Any,
    store: Store,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def gone(run_id: str) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store, "run", gone)
    with pytest.raises(TryAgain, match="the database is unavailable"):
        await RunJob(settings, store, github, provider, checkpointer)("some-run")
