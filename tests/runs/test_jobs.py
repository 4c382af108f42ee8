"""The run job on its own: the store, the fake GitHub, the local sandbox, the real checkpointer.

The paths through a whole workflow (start, approval, restart, failures) are in tests/e2e; these
are the job's own decisions: what it does for each stored status, and how it ends runs the
workflow could not end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from structlog.testing import capture_logs

from app.agent.checkpoint import open_checkpointer
from app.agent.runner import SUSPEND
from app.config import Settings
from app.github.app import GitHubApp
from app.hosts import status
from app.hosts.pull import FORK
from app.runs import jobs
from app.runs.jobs import (
    CHECKPOINT_LOST,
    CRASHED,
    RunJob,
    make_run_job,
    run_input,
)
from app.runs.lifecycle import Lifecycle
from app.runs.models import NewCommand, Run, RunKind, RunStatus
from app.runs.store import Store
from app.sandbox.local import LocalProvider
from app.webhooks import messages
from tests.agent.conftest import REPO_FILES, TEST_COMMAND, script_fix, script_plan, script_pr
from tests.e2e.conftest import (
    INSTALLATION,
    MAINTAINER,
    REPO,
    SLUG,
    WRITER,
    bare_repo,
    make_settings,
)
from tests.fakes.github import Comment, FakeGitHub
from tests.fakes.model import ScriptedModel
from tests.helpers import github_app_for


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(app_slug=SLUG) as fake:
        fake.add_installation(INSTALLATION, "Codertocat", [REPO], account_type="User")
        fake.add_issue(REPO, title="add() is wrong", body="it subtracts")  # #1
        fake.add_pull(REPO, head="feature", title="A pull request")  # #2
        yield fake
        assert not fake.errors, f"the fake GitHub itself failed: {fake.errors}"


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, gh: FakeGitHub, model: ScriptedModel) -> Settings:
    return make_settings(tmp_path, gh, model)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = Store.open(settings.database_url)
    await opened.migrate()
    yield opened
    await opened.close()


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "sandboxes", use_bwrap=False)


@pytest.fixture
def github(gh: FakeGitHub) -> GitHubApp:
    assert gh.private_key_pem is not None
    return github_app_for(gh)


@pytest.fixture
async def checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    async with open_checkpointer(settings) as saver:
        yield saver


@pytest.fixture
def job(
    settings: Settings,
    store: Store,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
) -> RunJob:
    return RunJob(settings, store, github, provider, checkpointer)


async def new_run(
    store: Store, *, number: int = 1, kind: RunKind = "issue", status: RunStatus = "queued"
) -> Run:
    run = await store.start_run(
        thread=f"{REPO}#{number}",
        repo=REPO,
        number=number,
        kind=kind,
        installation_id=INSTALLATION,
        requested_by=MAINTAINER,
        auto_approve=False,
        delivery_id=f"delivery-{number}",
    )
    assert isinstance(run, Run)
    if status != "queued":
        await store.set_run_status(run.id, status)
    found = await store.run(run.id)
    assert found is not None
    return found


async def answer(store: Store, run: Run, verb: str, text: str = "", *, by: str = WRITER) -> None:
    await store.add_command(
        thread=run.thread,
        run_id=run.id,
        verb=verb,
        text=text,
        author=by,
        source="issue_comment",
        delivery_id=f"answer-{verb}-{text}",
    )


def status_comments(gh: FakeGitHub, number: int = 1) -> list[Comment]:
    return [
        c
        for c in gh.comments.values()
        if c.issue_number == number and status.status_run_id(c.body) is not None
    ]


def writes(gh: FakeGitHub) -> list[str]:
    return [
        f"{c.method} {c.path}" for c in gh.calls if c.method != "GET" and "/access_" not in c.path
    ]


async def test_the_run_input_names_the_issue_branch_and_thread(store: Store) -> None:
    run = await new_run(store, number=7, status="queued")
    assert run_input(run) == {
        "thread_id": f"{REPO}#7",
        "run_id": run.id,
        "repo": REPO,
        "issue_number": 7,
        "branch": "open-swe/issue-7",
        "auto_approve": False,
    }


@pytest.mark.parametrize("state", ["succeeded", "failed", "stopped"])
async def test_a_finished_or_unknown_run_is_left_alone(
    job: RunJob, store: Store, gh: FakeGitHub, state: RunStatus
) -> None:
    run = await new_run(store, status=state)
    await job(run.id)
    await job("no-such-run")
    assert gh.calls == []
    assert (await store.run(run.id)) == run


async def test_a_waiting_run_without_an_answer_is_left_waiting(
    job: RunJob, store: Store, gh: FakeGitHub
) -> None:
    run = await new_run(store, status="waiting")
    await answer(store, run, "status")  # not an answer to the plan
    await job(run.id)
    assert writes(gh) == []
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "waiting"
    assert len(await store.pending_commands(run.thread)) == 1


async def test_an_answer_without_a_waiting_checkpoint_fails_the_run_cleanly(
    job: RunJob, store: Store, gh: FakeGitHub, provider: LocalProvider
) -> None:
    run = await new_run(store, status="waiting")
    provider.acquire({"open-swe.repo": REPO, "open-swe.thread": run.thread, "open-swe.run": run.id})
    await answer(store, run, "approve")
    await job(run.id)

    current = await store.run(run.id)
    assert current is not None
    assert (current.status, current.error) == ("failed", CHECKPOINT_LOST)
    [comment] = status_comments(gh)
    assert status.HEADER_FAILED.format(reason=status.inline(CHECKPOINT_LOST)) in comment.body
    assert current.status_comment_id == comment.id
    assert provider.find({"open-swe.run": run.id}) == []


async def test_a_stop_wins_over_earlier_answers_even_without_a_checkpoint(
    job: RunJob, store: Store, gh: FakeGitHub
) -> None:
    run = await new_run(store, status="waiting")
    await answer(store, run, "approve", by=MAINTAINER)
    await answer(store, run, "stop", by=WRITER)
    await job(run.id)
    current = await store.run(run.id)
    assert current is not None
    assert (current.status, current.error) == ("stopped", f"stopped by {WRITER}")
    [comment] = status_comments(gh)
    assert status.HEADER_STOPPED.format(reason=f"stopped by {WRITER}") in comment.body


async def test_a_follow_up_works_on_its_pull_requests_branch(store: Store) -> None:
    run = await new_run(store, number=2, kind="pull")
    assert run_input(run, "feature") == {
        "thread_id": f"{REPO}#2",
        "run_id": run.id,
        "repo": REPO,
        "issue_number": 2,
        "branch": "feature",
        "auto_approve": False,
        "kind": "pull",
    }


async def test_a_follow_up_on_a_fork_fails_before_any_work(
    job: RunJob, store: Store, gh: FakeGitHub, model: ScriptedModel
) -> None:
    fork = gh.add_pull(REPO, head="patch-1", head_repo="mallory/Hello-World")  # #3
    run = await new_run(store, number=fork.issue.number, kind="pull")
    await job(run.id)
    current = await store.run(run.id)
    assert current is not None
    reason = FORK.format(number=fork.issue.number, head="mallory/Hello-World")
    assert (current.status, current.error) == ("failed", reason)
    [comment] = status_comments(gh, number=fork.issue.number)
    assert "from a fork" in comment.body
    assert model.requests == []


async def test_a_run_that_died_before_its_first_checkpoint_starts_over(
    tmp_path: Path,
    gh: FakeGitHub,
    model: ScriptedModel,
    store: Store,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
) -> None:
    """Running, but no checkpoint of its own: a fresh start, which checks the model first."""
    settings = make_settings(tmp_path, gh, model, anthropic_api_key=None)
    run = await new_run(store, status="running")
    await RunJob(settings, store, github, provider, checkpointer)(run.id)
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "failed"
    assert (current.error or "").startswith("ANTHROPIC_API_KEY is not set")


async def test_an_unexpected_crash_still_ends_the_run_with_a_final_status(
    job: RunJob, store: Store, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("checkpoint store on fire")

    monkeypatch.setattr(jobs, "execute_run", crash)
    run = await new_run(store)
    await job(run.id)
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "failed"
    assert current.error == "internal error: RuntimeError: checkpoint store on fire"
    [comment] = status_comments(gh)
    assert "checkpoint store on fire" in comment.body
    assert status.HEADER_WORKING not in comment.body


async def test_a_run_whose_workflow_returns_nothing_final_is_not_left_running(
    job: RunJob, store: Store, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: whatever happened, the row does not stay active."""

    async def nothing(*_args: object) -> object:
        return jobs._NOTHING  # the run's host is up; its workflow never runs

    monkeypatch.setattr(jobs.RunJob, "_first_payload", nothing)
    run = await new_run(store)
    await job(run.id)
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "failed"
    assert current.error == CRASHED.format(detail="no outcome was recorded")
    [comment] = status_comments(gh)
    assert status.HEADER_FAILED.split("{")[0] in comment.body


@pytest.fixture
def stuck(monkeypatch: pytest.MonkeyPatch, checkpointer: BaseCheckpointSaver[str]) -> asyncio.Event:
    """The first read of the checkpoint hangs: the job is under way, its workflow not
    started yet."""
    entered = asyncio.Event()
    read = checkpointer.aget_tuple

    async def hanging(*args: Any) -> Any:
        if not entered.is_set():
            entered.set()
            await asyncio.Event().wait()
        return await read(*args)

    monkeypatch.setattr(checkpointer, "aget_tuple", hanging)
    return entered


async def test_stopping_a_run_before_its_workflow_runs_shows_it_stopped(
    job: RunJob, store: Store, gh: FakeGitHub, stuck: asyncio.Event
) -> None:
    run = await new_run(store)
    task = asyncio.create_task(job(run.id))
    await asyncio.wait_for(stuck.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "stopped"
    [comment] = status_comments(gh)
    assert status.HEADER_STOPPED.format(reason=status.inline(jobs.STOPPED)) in comment.body


async def test_a_suspended_job_leaves_the_run_to_the_next_start(
    job: RunJob, store: Store, gh: FakeGitHub, stuck: asyncio.Event
) -> None:
    run = await new_run(store)
    task = asyncio.create_task(job(run.id))
    await asyncio.wait_for(stuck.wait(), 10)
    task.cancel(SUSPEND)
    with pytest.raises(asyncio.CancelledError):
        await task
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "queued"  # resubmitted as it was at the next start
    assert status_comments(gh) == []


async def test_the_server_warns_at_start_up_when_runs_cannot_reach_a_model(
    tmp_path: Path,
    gh: FakeGitHub,
    model: ScriptedModel,
    store: Store,
    github: GitHubApp,
    provider: LocalProvider,
    checkpointer: BaseCheckpointSaver[str],
) -> None:
    with capture_logs() as events:
        make_run_job(make_settings(tmp_path, gh, model), store, github, provider, checkpointer)
    assert events == []
    with capture_logs() as events:
        make_run_job(
            make_settings(tmp_path, gh, model, anthropic_api_key=None),
            store,
            github,
            provider,
            checkpointer,
        )
    [warning] = events
    assert warning["log_level"] == "warning"
    assert "ANTHROPIC_API_KEY is not set" in warning["error"]


# --- parking races the front door: answers and stops that come in while the run parks ------

WAITING_HEADER = status.HEADER_WAITING.split(" (")[0]


@pytest.fixture
def cloneable(tmp_path: Path, gh: FakeGitHub) -> Path:
    """GitHub's copy of the repository, so the job's workflow can clone it and plan."""
    remote = bare_repo(tmp_path, REPO_FILES)
    gh.repos[REPO].clone_url = remote.resolve().as_uri()
    return remote


@pytest.fixture
def parking(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], Awaitable[None]]]:
    """Hooks run while the run parks: its plan shown, its sandbox stopped, the run still
    `running` in the store (what the front door sees for seconds on Daytona)."""
    hooks: list[Callable[[], Awaitable[None]]] = []
    release = jobs.release_sandbox

    async def released(*args: Any, keep: bool) -> None:
        await release(*args, keep=keep)
        while keep and hooks:
            await hooks.pop(0)()

    monkeypatch.setattr(jobs, "release_sandbox", released)
    return hooks


class Queue:
    """The front door's queue, for its `stop`: cancels the job's task, if it has one."""

    def __init__(self, task: asyncio.Task[None] | None = None) -> None:
        self.task = task

    async def submit(self, job: object) -> None:
        pass

    async def cancel(self, run_id: str) -> bool:
        if self.task is None:
            return False
        self.task.cancel()
        return True


async def front_door_stop(store: Store, run: Run, queue: Queue, *, by: str = WRITER) -> None:
    """What `/open-swe stop` by `by` does to the run (app.webhooks.comments)."""
    stop = NewCommand(run.thread, "stop", "", by, "issue_comment", f"stop-by-{by}")
    await Lifecycle(store, queue).stop(run, stop, messages.STOPPED_BY.format(user=by))  # type: ignore[arg-type]


async def assert_still_parking(store: Store, gh: FakeGitHub, run: Run) -> None:
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "running"
    assert [c for c in gh.comments.values() if status.plan_mark(c.body) is not None]
    assert current.plan_question == 1  # so the front door keeps answers for it


async def test_an_answer_sent_while_the_run_parks_resumes_it_at_once(
    job: RunJob,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    provider: LocalProvider,
    cloneable: Path,
    parking: list[Callable[[], Awaitable[None]]],
) -> None:
    script_plan(model)
    script_fix(model)
    script_pr(model)
    run = await new_run(store)

    async def approve() -> None:
        await assert_still_parking(store, gh, run)
        await answer(store, run, "approve", by=WRITER)  # what the front door records

    parking.append(approve)
    await job(run.id)

    assert parking == []
    current = await store.run(run.id)
    assert current is not None
    assert current.status == "succeeded", current.error
    [comment] = status_comments(gh)
    assert f"{status.STEP_LABELS['approval']}: approved by {WRITER}" in comment.body
    assert await store.pending_commands(run.thread) == []  # the answer and the question
    assert provider.find({"open-swe.run": run.id}) == []


async def test_a_run_stopped_while_it_parks_ends_stopped_without_its_sandbox(
    job: RunJob,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    provider: LocalProvider,
    cloneable: Path,
    parking: list[Callable[[], Awaitable[None]]],
) -> None:
    """The front door finished the run while it was running; its job had no task to cancel
    (it was parking): the job cannot store `waiting`, so it ends the run itself."""
    script_plan(model)
    run = await new_run(store)
    reason = messages.STOPPED_BY.format(user=WRITER)

    async def stop() -> None:
        await assert_still_parking(store, gh, run)
        await front_door_stop(store, run, Queue())

    parking.append(stop)
    await job(run.id)

    current = await store.run(run.id)
    assert current is not None
    assert (current.status, current.error) == ("stopped", reason)
    [comment] = status_comments(gh)
    assert status.HEADER_STOPPED.format(reason=status.inline(reason)) in comment.body
    assert WAITING_HEADER not in comment.body
    assert provider.find({"open-swe.run": run.id}) == []
    assert current.plan_question is None  # the question closed with the run


async def test_a_stop_recorded_while_the_run_parks_is_taken_once_it_waits(
    job: RunJob,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    provider: LocalProvider,
    cloneable: Path,
    parking: list[Callable[[], Awaitable[None]]],
) -> None:
    """The front door found the run already `waiting` (so it recorded the stop as the
    plan's answer) before this job read the inbox."""
    script_plan(model)
    run = await new_run(store)

    async def stop() -> None:
        await answer(store, run, "stop", by=WRITER)

    parking.append(stop)
    await job(run.id)

    current = await store.run(run.id)
    assert current is not None
    assert current.status == "stopped"
    [comment] = status_comments(gh)
    assert status.HEADER_STOPPED.split("{")[0] in comment.body
    assert f"stopped by {WRITER}" in comment.body
    assert provider.find({"open-swe.run": run.id}) == []
    assert await store.pending_commands(run.thread) == []


async def test_a_stop_just_after_an_answer_was_taken_stops_the_resumed_run(
    job: RunJob,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    provider: LocalProvider,
    cloneable: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The front door saw the plan waiting and recorded a stop just after the job took an
    approval: taking it moved the run to `running` in the same transaction, so the stop finds
    the run working, stops it and cancels its job before it implements anything."""
    script_plan(model)
    run = await new_run(store)
    await job(run.id)
    parked = await store.run(run.id)
    assert parked is not None
    assert parked.status == "waiting"
    await answer(store, run, "approve", by=MAINTAINER)
    queue = Queue()
    take = Lifecycle.take_answer

    async def then_stop(lifecycle: Lifecycle, run_id: str) -> Any:
        decision = await take(lifecycle, run_id)
        taken = await store.run(run_id)
        assert taken is not None
        assert (taken.status, taken.plan_question) == ("running", None)
        await front_door_stop(store, taken, queue)
        return decision

    monkeypatch.setattr(Lifecycle, "take_answer", then_stop)
    queue.task = asyncio.create_task(job(run.id))
    with pytest.raises(asyncio.CancelledError):
        await queue.task

    current = await store.run(run.id)
    assert current is not None
    assert (current.status, current.error) == ("stopped", messages.STOPPED_BY.format(user=WRITER))
    assert model.requests_offering("edit_file") == []  # never implemented
    [comment] = status_comments(gh)
    reason = status.inline(messages.STOPPED_BY.format(user=WRITER))
    assert status.HEADER_STOPPED.format(reason=reason) in comment.body
    assert provider.find({"open-swe.run": run.id}) == []
    assert await store.pending_commands(run.thread) == []


async def test_the_transcript_records_what_the_run_did_as_it_happened(
    job: RunJob,
    store: Store,
    gh: FakeGitHub,
    model: ScriptedModel,
    cloneable: Path,
    parking: list[Callable[[], Awaitable[None]]],
) -> None:
    """The audit log: steps, model calls, tool calls with their arguments, sandbox commands
    with exit codes and output, the tests, the push, GitHub writes, who approved."""
    script_plan(model)
    script_fix(model)
    script_pr(model)
    run = await new_run(store)

    async def approve() -> None:
        await answer(store, run, "approve", by=WRITER)

    parking.append(approve)
    await job(run.id)

    events = await store.run_events(run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = {e.kind for e in events}
    assert {"status", "step", "model", "tool", "command", "tests", "push", "github"} <= kinds
    assert {"sandbox", "decision"} <= kinds
    steps = [e.data["step"] for e in events if e.kind == "step"]
    assert steps[:3] == ["prepare", "plan", "approval"]
    assert "publish" in steps
    assert {"verb": "approve", "by": WRITER} in [e.data for e in events if e.kind == "decision"]
    statuses = [e.data["status"] for e in events if e.kind == "status"]
    assert statuses[-1] == "succeeded"
    assert "waiting" in statuses
    models = [e.data for e in events if e.kind == "model"]
    assert models
    assert all(m["input_tokens"] > 0 and m["cost_usd"] > 0 for m in models)
    tools = [e.data for e in events if e.kind == "tool"]
    [read, *_] = [t for t in tools if t["name"] == "read_file"]
    assert "def add" in read["result"]  # what the tool gave the model
    [edit] = [t for t in tools if t["name"] == "edit_file"]
    assert edit["args"]["file_path"].endswith("calc.py")
    commands = [e.data for e in events if e.kind == "command"]
    ran_tests = [c for c in commands if c["command"].endswith(TEST_COMMAND)]
    assert ran_tests
    assert ran_tests[-1]["exit_code"] == 0
    assert ran_tests[-1]["seconds"] >= 0
    assert not any('"file_path"' in c["command"] for c in commands)  # file tools: no noise
    assert any(c["command"].startswith("git clone ") for c in commands)
    [tests] = [e.data for e in events if e.kind == "tests"]
    assert (tests["command"], tests["passed"], tests["exit_code"]) == (TEST_COMMAND, True, 0)
    [push] = [e.data for e in events if e.kind == "push"]
    assert push["branch"] == "open-swe/issue-1"
    actions = [e.data["action"] for e in events if e.kind == "github"]
    assert "draft pull request opened" in actions
    assert "status comment posted" in actions
    assert "x-access-token" not in str([e.data for e in events])
