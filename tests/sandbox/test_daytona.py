"""The Daytona backend: the real `daytona` SDK against the loopback double (tests/fakes/daytona.py).

Every fault ends in a retry, a recreate or a clear error, and the double's state shows that
no sandbox is left behind.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from app.config import ConfigError, Settings
from app.sandbox.backoff import RetryPolicy
from app.sandbox.base import (
    GitCredentials,
    GitIdentity,
    SandboxError,
    SandboxGone,
    SandboxProvider,
)
from app.sandbox.daytona import (
    ATTEMPT_LABEL,
    OWNER_LABEL,
    DaytonaProvider,
    DaytonaSandbox,
    DaytonaTimings,
)
from tests.fakes.daytona import API_KEY, DEFAULT_SNAPSHOT, DROP, FakeDaytona, bare_repo
from tests.sandbox.contract import SandboxContract

TOKEN = "ghs_installationTOKEN1234567890"
LABELS = {"repo": "octo/widgets", "issue": "7"}
FAST = DaytonaTimings(
    request=10, transfer=20, start=5, stop=5, poll_initial=0.01, poll_max=0.05, kill_grace=2
)
AUTHOR = GitIdentity("open-swe[bot]", "bot@example.com")


class Sleeps:
    """Records the backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture(scope="module")
def shared_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeDaytona]:
    # One double and one provider for the module: building an SDK client costs ~0.1 s.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.chdir(tmp_path_factory.mktemp("cwd"))  # the SDK reads .env files from the cwd
        with FakeDaytona(tmp_path_factory.mktemp("daytona")) as double:
            yield double


@pytest.fixture
def fake(shared_fake: FakeDaytona) -> FakeDaytona:
    shared_fake.reset()
    return shared_fake


@pytest.fixture(scope="module")
def shared_sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sleeps(shared_sleeps: Sleeps) -> Sleeps:
    shared_sleeps.delays.clear()
    return shared_sleeps


@pytest.fixture(scope="module")
def shared_provider(shared_fake: FakeDaytona, shared_sleeps: Sleeps) -> Iterator[DaytonaProvider]:
    with make_provider(shared_fake, shared_sleeps) as daytona:
        yield daytona


@pytest.fixture
def provider(
    shared_provider: DaytonaProvider, fake: FakeDaytona, sleeps: Sleeps
) -> DaytonaProvider:
    return shared_provider


def make_settings(fake: FakeDaytona, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DAYTONA_API_KEY": API_KEY,
        "DAYTONA_API_URL": fake.api_url,
        "DAYTONA_TARGET": "us",
        "OPEN_SWE_DAYTONA_CREATE_TIMEOUT": 5,
        "OPEN_SWE_COMMAND_TIMEOUT": 20,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_provider(fake: FakeDaytona, sleeps: Sleeps, **settings: object) -> DaytonaProvider:
    policy = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
    return DaytonaProvider(
        make_settings(fake, **settings), retry=policy, timings=FAST, sleep=sleeps
    )


@pytest.fixture
def sandbox(provider: DaytonaProvider) -> DaytonaSandbox:
    return provider.acquire(LABELS)


@pytest.fixture
def remote(tmp_path: Path) -> str:
    return bare_repo(tmp_path / "remote", {"README.md": "hello\n", "src/app.py": "print(1)\n"})


class TestDaytonaContract(SandboxContract):
    """The backend-independent suite, on Daytona. The double runs commands on this machine, so
    the loopback HTTP git server is reachable, as GitHub is from a real sandbox."""

    @pytest.fixture
    def provider(self, provider: DaytonaProvider) -> SandboxProvider:
        return provider


# --- creation and reuse ------------------------------------------------------------------


def test_creates_from_the_snapshot_with_user_intervals_and_labels(
    fake: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    [create] = fake.calls("POST", "^/api/sandbox$")
    body = create.body
    assert body["snapshot"] == DEFAULT_SNAPSHOT
    assert body["user"] == "daytona"
    assert body["autoDeleteInterval"] == 15
    assert body["autoStopInterval"] == 60
    assert body["target"] == "us"
    assert body["env"] == {}  # nothing secret travels into the sandbox's environment
    assert body["labels"].items() >= {**LABELS, OWNER_LABEL: "1"}.items()
    assert len(body["labels"][ATTEMPT_LABEL]) == 32
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    assert sandbox.labels == LABELS
    assert sandbox.work_dir == str(fake.sandboxes[sandbox.id].home)


def test_intervals_come_from_settings(fake: FakeDaytona, sleeps: Sleeps) -> None:
    with make_provider(
        fake,
        sleeps,
        OPEN_SWE_DAYTONA_AUTO_STOP_MINUTES=240,
        OPEN_SWE_DAYTONA_AUTO_DELETE_MINUTES=30,
        OPEN_SWE_DAYTONA_SNAPSHOT="custom-snap",
    ) as provider:
        fake.snapshots["custom-snap"] = "active"
        provider.acquire(LABELS)
    [create] = fake.calls("POST", "^/api/sandbox$")
    assert (create.body["autoStopInterval"], create.body["autoDeleteInterval"]) == (240, 30)
    assert create.body["snapshot"] == "custom-snap"


def test_acquire_reuses_a_live_sandbox_with_exactly_the_same_labels(
    fake: FakeDaytona, provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    assert provider.acquire(dict(LABELS)).id == sandbox.id
    other = provider.acquire({"repo": "octo/widgets"})  # a subset is not the same sandbox
    assert other.id != sandbox.id
    assert len(fake.calls("POST", "^/api/sandbox$")) == 2


def test_acquire_starts_a_stopped_sandbox(
    fake: FakeDaytona, provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    sandbox.write_file("kept.txt", b"kept")
    fake.set_state(sandbox.id, "stopped")
    again = provider.acquire(LABELS)
    assert again.id == sandbox.id
    assert fake.sandboxes[sandbox.id].state == "started"
    assert fake.calls("POST", f"/api/sandbox/{sandbox.id}/start")
    assert again.read_file("kept.txt") == b"kept"


def test_acquire_replaces_an_archived_sandbox_rather_than_wait_for_a_restore(
    fake: FakeDaytona, provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "archived")
    fresh = provider.acquire(LABELS)
    assert fresh.id != sandbox.id
    assert [s.id for s in fake.live()] == [fresh.id]


@pytest.mark.parametrize("state", ["error", "build_failed"])
def test_acquire_replaces_a_failed_sandbox_and_deletes_it(
    fake: FakeDaytona, provider: DaytonaProvider, sandbox: DaytonaSandbox, state: str
) -> None:
    fake.set_state(sandbox.id, state)
    fresh = provider.acquire(LABELS)
    assert fresh.id != sandbox.id
    assert [s.id for s in fake.live()] == [fresh.id]


def test_find_lists_by_label_for_reuse_and_leak_sweeps(
    fake: FakeDaytona, provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    other = provider.acquire({"repo": "octo/other"})
    assert [s.id for s in provider.find({"issue": "7"})] == [sandbox.id]
    assert {s.id for s in provider.find({})} == {sandbox.id, other.id}
    listing = fake.calls("GET", "^/api/sandbox$")[-1]
    assert OWNER_LABEL in listing.query["labels"][0]


def test_a_missing_api_key_is_a_config_error(fake: FakeDaytona) -> None:
    with pytest.raises(ConfigError, match="DAYTONA_API_KEY"):
        DaytonaProvider(Settings(_env_file=None, DAYTONA_API_URL=fake.api_url))  # type: ignore[call-arg]


def test_a_rejected_api_key_says_which_setting_to_fix(fake: FakeDaytona, sleeps: Sleeps) -> None:
    with (
        make_provider(fake, sleeps, DAYTONA_API_KEY="wrong") as provider,
        pytest.raises(SandboxError, match="DAYTONA_API_KEY"),
    ):
        provider.acquire(LABELS)


@pytest.mark.parametrize("state", ["missing", "inactive"])
def test_an_unusable_snapshot_says_how_to_fix_it(
    fake: FakeDaytona, provider: DaytonaProvider, state: str
) -> None:
    if state == "missing":
        del fake.snapshots[DEFAULT_SNAPSHOT]
    else:
        fake.snapshots[DEFAULT_SNAPSHOT] = "inactive"
    with pytest.raises(SandboxError) as raised:
        provider.acquire(LABELS)
    message = str(raised.value)
    assert f"snapshot {DEFAULT_SNAPSHOT} not found or inactive" in message
    assert f"activate('{DEFAULT_SNAPSHOT}')" in message
    assert fake.live() == []


# --- faults at creation --------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_delay(
    fake: FakeDaytona, provider: DaytonaProvider, sleeps: Sleeps
) -> None:
    fake.fail("POST", "^/api/sandbox$", 429, headers={"Retry-After": "7"}, times=2)
    sandbox = provider.acquire(LABELS)
    assert sleeps.delays == [7.0, 7.0]
    assert len(fake.calls("POST", "^/api/sandbox$")) == 3
    assert [s.id for s in fake.live()] == [sandbox.id]


def test_429_without_retry_after_backs_off_exponentially(
    fake: FakeDaytona, provider: DaytonaProvider, sleeps: Sleeps
) -> None:
    fake.fail("GET", "^/api/sandbox$", 429, times=3)
    provider.find({})
    assert len(sleeps.delays) == 3
    assert 0.005 <= sleeps.delays[0] <= 0.01 < sleeps.delays[2] <= 0.04


def test_429_that_never_ends_is_a_clear_error(
    fake: FakeDaytona, provider: DaytonaProvider, sleeps: Sleeps
) -> None:
    fake.fail("POST", "^/api/sandbox$", 429, headers={"Retry-After": "1"}, times=100)
    with pytest.raises(SandboxError, match=r"rate-limiting.*429.*OPEN_SWE_MAX_CONCURRENT_RUNS"):
        provider.acquire(LABELS)
    assert len(sleeps.delays) == 3  # four attempts in all
    assert fake.live() == []


def test_502_after_the_sandbox_was_made_deletes_it_before_retrying(
    fake: FakeDaytona, provider: DaytonaProvider
) -> None:
    fake.fail("POST", "^/api/sandbox$", 502, after=True)  # made, but the answer is lost
    sandbox = provider.acquire(LABELS)
    assert len(fake.calls("POST", "^/api/sandbox$")) == 2
    assert [s.id for s in fake.live()] == [sandbox.id]
    assert len(fake.sandboxes) == 2  # the orphan existed, and was deleted


def test_a_sandbox_stuck_in_creating_is_deleted_with_a_clear_error(
    fake: FakeDaytona, sleeps: Sleeps
) -> None:
    fake.plan_create("creating")
    with make_provider(fake, sleeps, OPEN_SWE_DAYTONA_CREATE_TIMEOUT=0.3) as provider:
        started = time.monotonic()
        with pytest.raises(SandboxError, match="OPEN_SWE_DAYTONA_CREATE_TIMEOUT") as raised:
            provider.acquire(LABELS)
        assert time.monotonic() - started < 3
    [stuck] = fake.sandboxes.values()
    assert stuck.id in str(raised.value)
    assert fake.calls("DELETE", f"/api/sandbox/{stuck.id}$")
    assert fake.live() == []


@pytest.mark.parametrize("state", ["error", "build_failed"])
def test_a_sandbox_ending_in_error_raises_its_reason_and_is_deleted(
    fake: FakeDaytona, provider: DaytonaProvider, state: str
) -> None:
    fake.plan_create("creating", state, error_reason="no space left on runner")
    with pytest.raises(SandboxError, match=f"ended in {state}: no space left on runner"):
        provider.acquire(LABELS)
    assert fake.live() == []


# --- faults on a running sandbox -------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, DROP])
def test_bare_502_refreshes_state_then_retries(
    fake: FakeDaytona, sandbox: DaytonaSandbox, status: int
) -> None:
    fake.fail("POST", "/process/session$", status)  # empty body, like the proxy's
    before = len(fake.calls("GET", f"/api/sandbox/{sandbox.id}$"))
    with structlog.testing.capture_logs() as events:
        assert sandbox.run("echo fine").output == "fine\n"
    assert len(fake.calls("GET", f"/api/sandbox/{sandbox.id}$")) == before + 1
    assert [e["operation"] for e in events if e["event"] == "daytona.retry"] == [
        "opening a command session"
    ]


def test_502_that_never_ends_is_a_clear_error(
    fake: FakeDaytona, sandbox: DaytonaSandbox, sleeps: Sleeps
) -> None:
    fake.fail("GET", "/work-dir$|/files", 502, times=100)
    fake.fail("POST", "/files/bulk-download$", 502, times=100)
    with pytest.raises(SandboxError, match=r"unavailable \(HTTP 502\) while downloading files"):
        sandbox.read_file("anything")
    assert len(sleeps.delays) == 3


def test_a_sandbox_made_but_unreachable_is_not_left_behind(
    fake: FakeDaytona, provider: DaytonaProvider
) -> None:
    fake.fail("GET", "/work-dir$", 500, body={"statusCode": 500, "message": "daemon crashed"})
    with pytest.raises(SandboxError, match="daemon crashed"):
        provider.acquire(LABELS)
    assert len(fake.sandboxes) == 1
    assert fake.live() == []


def test_502_when_the_sandbox_is_gone_raises_gone_and_acquire_recreates(
    fake: FakeDaytona, provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    fake.fail("POST", "/process/session$", 502)
    fake.set_state(sandbox.id, "destroyed")
    with pytest.raises(SandboxGone):
        sandbox.run("true")
    fresh = provider.acquire(LABELS)
    assert fresh.id != sandbox.id
    assert fresh.run("echo again").output == "again\n"


@pytest.mark.parametrize("state", ["stopped", "archived"])
def test_a_sandbox_stopped_under_us_is_started_again(
    fake: FakeDaytona, sandbox: DaytonaSandbox, state: str
) -> None:
    # Auto-stop or archiving mid-run: the proxy answers 404 (misleading for archived sandboxes).
    fake.set_state(sandbox.id, state)
    assert sandbox.run("echo back").output == "back\n"
    assert fake.calls("POST", f"/api/sandbox/{sandbox.id}/start")


def test_a_command_the_daemon_started_before_a_502_is_not_run_twice(
    fake: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    fake.fail("POST", "/process/session/[^/]+/exec$", 502, after=True)
    result = sandbox.run("echo once >> runs.txt && cat runs.txt")
    assert result.exit_code == 0
    assert (Path(sandbox.work_dir) / "runs.txt").read_text() == "once\n"


# --- commands ------------------------------------------------------------------------------


def test_run_merges_streams_and_honours_cwd_env_and_exit_code(sandbox: DaytonaSandbox) -> None:
    sandbox.run("mkdir -p sub")
    result = sandbox.run(
        'echo "$GREETING"; echo oops >&2; pwd; exit 3', cwd="sub", env={"GREETING": "hi there"}
    )
    assert result.exit_code == 3
    assert result.output == f"hi there\noops\n{sandbox.work_dir}/sub\n"
    assert not result.timed_out


def test_run_uses_sh_semantics_and_closes_stdin(sandbox: DaytonaSandbox) -> None:
    result = sandbox.run('read line; echo "[$line]"; set -- a b; echo $#')
    assert result.output == "[]\n2\n"


def test_a_timeout_keeps_partial_output_and_kills_the_process_group(
    sandbox: DaytonaSandbox,
) -> None:
    started = time.monotonic()
    result = sandbox.run("echo started; sleep 30 & echo $! > child.pid; wait", timeout=1)
    assert time.monotonic() - started < 5
    assert result.timed_out
    assert not result.ok
    assert result.output.startswith("started\n")
    child = int((Path(sandbox.work_dir) / "child.pid").read_text())
    deadline = time.monotonic() + 3
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_bad_environment_names_are_refused(sandbox: DaytonaSandbox) -> None:
    with pytest.raises(SandboxError, match="invalid environment variable name"):
        sandbox.run("true", env={"A B": "x"})


def test_commands_get_secrets_redacted(sandbox: DaytonaSandbox) -> None:
    sandbox.add_secret(TOKEN)
    output = sandbox.run(f"echo {TOKEN} {API_KEY}").output  # settings' secrets too
    assert output == "[redacted] [redacted]\n"


# --- files ---------------------------------------------------------------------------------


def test_files_round_trip_bytes_relative_and_absolute(sandbox: DaytonaSandbox) -> None:
    data = bytes(range(256)) + b"\r\n\x00end"
    absolute = f"{sandbox.work_dir}/deep/er/blob.bin"
    assert [r.error for r in sandbox.upload_files([("notes/a.txt", b"a\n"), (absolute, data)])] == [
        None,
        None,
    ]
    downloaded = sandbox.download_files(["notes/a.txt", absolute])
    assert [(r.content, r.error) for r in downloaded] == [(b"a\n", None), (data, None)]
    assert sandbox.read_file("notes/a.txt") == b"a\n"


def test_file_errors_use_deepagents_codes(sandbox: DaytonaSandbox) -> None:
    sandbox.write_file("dir/inner.txt", b"x")
    results = sandbox.download_files(["missing.txt", "dir", "", "dir/inner.txt"])
    assert [r.error for r in results] == ["file_not_found", "is_directory", "invalid_path", None]


def test_one_failed_upload_does_not_fail_the_others(sandbox: DaytonaSandbox) -> None:
    sandbox.write_file("plain", b"a file, not a directory")
    results = sandbox.upload_files([("ok.txt", b"1"), ("plain/child.txt", b"2"), ("", b"3")])
    assert results[0].error is None
    assert results[1].error is not None
    assert results[2].error == "invalid_path"
    assert sandbox.read_file("ok.txt") == b"1"


# --- git -----------------------------------------------------------------------------------


def test_clone_sends_credentials_per_call_and_never_stores_them(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str
) -> None:
    fake.git_credentials = ("x-access-token", TOKEN)
    sandbox.clone(remote, "widgets", credentials=GitCredentials(TOKEN))
    [clone] = fake.calls("POST", "/git/clone$")
    assert (clone.body["username"], clone.body["password"]) == ("x-access-token", TOKEN)
    assert clone.body["url"] == remote
    repo = Path(sandbox.work_dir) / "widgets"
    assert (repo / "README.md").read_text() == "hello\n"
    assert TOKEN not in (repo / ".git" / "config").read_text()
    assert TOKEN not in sandbox.run("git config --list --show-origin; env", cwd="widgets").output


def test_the_token_never_reaches_a_log_line(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.git_credentials = ("x-access-token", TOKEN)
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        fake.fail("POST", "/git/clone$", 502)  # a retry is logged too
        sandbox.clone(remote, "widgets", credentials=GitCredentials(TOKEN))
        sandbox.write_file("widgets/new.txt", b"new\n")
        sandbox.commit("widgets", "Add new", author=AUTHOR)
        sandbox.push("widgets", "main", credentials=GitCredentials(TOKEN))
        with pytest.raises(SandboxError) as raised:
            sandbox.push("widgets", "main", credentials=GitCredentials(TOKEN + "-stale"))
    assert events, "expected structured log events"
    assert any(e["event"] == "daytona.retry" for e in events)
    assert TOKEN not in repr(events)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(raised.value)
    assert "credentials were refused" in str(raised.value)


def test_commit_returns_the_sha_or_none_and_stages_deletions(
    sandbox: DaytonaSandbox, remote: str
) -> None:
    sandbox.clone(remote, "widgets")
    assert sandbox.commit("widgets", "Nothing", author=AUTHOR) is None
    sandbox.run("rm src/app.py && echo more >> README.md", cwd="widgets")
    sha = sandbox.commit("widgets", "Tidy", author=AUTHOR)
    head = sandbox.run(
        "git log -1 --format='%H %an <%ae> %s'; git status --porcelain", cwd="widgets"
    )
    assert head.output == f"{sha} {AUTHOR.name} <{AUTHOR.email}> Tidy\n"


def test_a_commit_that_went_through_before_a_502_is_not_repeated(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str
) -> None:
    sandbox.clone(remote, "widgets")
    sandbox.write_file("widgets/new.txt", b"new\n")
    fake.fail("POST", "/git/commit$", 502, after=True)
    sha = sandbox.commit("widgets", "Add new", author=AUTHOR)
    log = sandbox.run("git log --format=%H%x20%s", cwd="widgets").output.splitlines()
    assert log[0] == f"{sha} Add new"
    assert len(log) == 2


def test_a_clone_cut_by_a_502_is_redone_from_scratch(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str
) -> None:
    fake.fail("POST", "/git/clone$", 502, after=True)  # the daemon cloned; the proxy gave up
    sandbox.clone(remote, "widgets")
    assert len(fake.calls("POST", "/git/clone$")) == 2
    assert sandbox.run("git status --porcelain", cwd="widgets").output == ""


def test_push_sends_the_branch_and_never_forces(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str, tmp_path: Path
) -> None:
    fake.git_credentials = ("x-access-token", TOKEN)
    creds = GitCredentials(TOKEN)
    sandbox.clone(remote, "widgets", credentials=creds)
    sandbox.run("git checkout -q -b open-swe/issue-7", cwd="widgets")
    sandbox.write_file("widgets/fix.txt", b"fix\n")
    sha = sandbox.commit("widgets", "Fix", author=AUTHOR)
    sandbox.push("widgets", "open-swe/issue-7", credentials=creds)
    [push] = fake.calls("POST", "/git/push$")
    assert push.body["branch"] == "open-swe/issue-7"
    assert _remote_ref(remote, "open-swe/issue-7") == sha

    # Someone else moves the branch: our next push is rejected, not forced over theirs.
    sandbox.run("git reset -q --hard HEAD~1", cwd="widgets")
    sandbox.write_file("widgets/other.txt", b"other\n")
    sandbox.commit("widgets", "Diverge", author=AUTHOR)
    with pytest.raises(SandboxError, match="rejected"):
        sandbox.push("widgets", "open-swe/issue-7", credentials=creds)
    assert _remote_ref(remote, "open-swe/issue-7") == sha


def test_a_push_goes_where_the_clone_came_from_whatever_the_agent_configured(
    fake: FakeDaytona,
    provider: DaytonaProvider,
    sandbox: DaytonaSandbox,
    remote: str,
    tmp_path: Path,
) -> None:
    creds = GitCredentials(TOKEN)
    sandbox.clone(remote, "widgets", credentials=creds)
    attacker = bare_repo(tmp_path / "attacker", {"x": "x\n"})
    included = tmp_path / "included.cfg"
    included.write_text(f'[url "{attacker}"]\n\tpushInsteadOf = {remote}\n')
    # What a prompt-injected agent could do to .git/config before we push.
    for command in (
        f"git remote set-url origin {attacker}",
        f"git config remote.origin.pushurl {attacker}",
        f"git config url.{attacker}.insteadOf {remote}",
        f"git config include.path {included}",
        f"git config includeIf.gitdir:/.path {included}",
        "git checkout -q -b open-swe/issue-7",
    ):
        assert sandbox.run(command, cwd="widgets").exit_code == 0, command
    sandbox.write_file("widgets/fix.txt", b"fix\n")
    sha = sandbox.commit("widgets", "Fix", author=AUTHOR)

    sandbox.push("widgets", "open-swe/issue-7", credentials=creds)
    assert _remote_ref(remote, "open-swe/issue-7") == sha
    assert _ref_or_empty(attacker, "open-swe/issue-7") == ""

    # Another process acquiring this sandbox still knows where the clone came from (a label),
    # and the label does not change which labels acquire() matches on.
    again = provider.acquire(LABELS)
    assert (again is not sandbox, again.id, again.labels) == (True, sandbox.id, LABELS)
    sandbox.run(f"git remote set-url origin {attacker}", cwd="widgets")
    sandbox.write_file("widgets/more.txt", b"more\n")
    more = sandbox.commit("widgets", "More", author=AUTHOR)
    again.push("widgets", "open-swe/issue-7", credentials=creds)
    assert _remote_ref(remote, "open-swe/issue-7") == more
    assert _ref_or_empty(attacker, "open-swe/issue-7") == ""


def test_a_push_with_credentials_from_a_repo_it_did_not_clone_is_refused(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str
) -> None:
    sandbox.run(f"git clone -q {remote} widgets")
    sandbox.run("git checkout -q -b feature", cwd="widgets")
    with pytest.raises(SandboxError, match="did not clone it") as raised:
        sandbox.push("widgets", "feature", credentials=GitCredentials(TOKEN))
    assert TOKEN not in str(raised.value)
    assert not fake.calls("POST", "/git/push$")
    assert _ref_or_empty(remote, "feature") == ""


def test_a_git_config_that_is_not_put_back_is_refused(
    fake: FakeDaytona, sandbox: DaytonaSandbox, remote: str
) -> None:
    sandbox.clone(remote, "widgets", credentials=GitCredentials(TOKEN))
    sandbox.run("git config remote.origin.receivepack 'sh -c evil'", cwd="widgets")
    with pytest.raises(SandboxError, match=r"tampered with \(remote.origin.receivepack is set"):
        sandbox.push("widgets", "main", credentials=GitCredentials(TOKEN))
    assert not fake.calls("POST", "/git/push$")


def _ref_or_empty(remote: str, branch: str) -> str:
    result = subprocess.run(
        [
            "git",
            "--git-dir",
            remote.removeprefix("file://"),
            "rev-parse",
            "--verify",
            "-q",
            f"refs/heads/{branch}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


# --- lifecycle -----------------------------------------------------------------------------


def test_stop_resume_destroy(fake: FakeDaytona, sandbox: DaytonaSandbox) -> None:
    sandbox.write_file("kept.txt", b"kept")
    sandbox.stop()
    assert fake.sandboxes[sandbox.id].state == "stopped"
    sandbox.resume()
    assert fake.sandboxes[sandbox.id].state == "started"
    assert sandbox.read_file("kept.txt") == b"kept"
    sandbox.destroy()
    sandbox.destroy()  # idempotent
    assert fake.live() == []
    with pytest.raises(SandboxGone):
        sandbox.resume()


def test_resume_of_an_archived_sandbox_starts_it(
    fake: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    sandbox.stop()
    fake.set_state(sandbox.id, "archived")
    sandbox.resume()
    assert sandbox.run("echo restored").output == "restored\n"


def test_resume_of_a_failed_sandbox_is_gone_and_deletes_it(
    fake: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    fake.set_state(sandbox.id, "error")
    with pytest.raises(SandboxGone, match="error"):
        sandbox.resume()
    assert fake.live() == []


# --- the double itself ---------------------------------------------------------------------


def test_the_double_serves_the_sync_sdk_too(fake: FakeDaytona, remote: str) -> None:
    # The sync client speaks urllib3 (control plane, exec, git) and httpx (file transfer).
    from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

    client = Daytona(DaytonaConfig(api_key=API_KEY, api_url=fake.api_url, target="us"))
    sandbox = client.create(CreateSandboxFromSnapshotParams(snapshot=DEFAULT_SNAPSHOT), timeout=10)
    home = sandbox.get_work_dir()
    response = sandbox.process.exec("echo sync; exit 4", timeout=10)
    assert (response.exit_code, response.result) == (4, "sync\n")
    sandbox.fs.upload_file(b"needle in here\n", f"{home}/hay/stack.txt")
    assert sandbox.fs.download_file(f"{home}/hay/stack.txt") == b"needle in here\n"
    assert [f.name for f in sandbox.fs.list_files(f"{home}/hay")] == ["stack.txt"]
    [match] = sandbox.fs.find_files(f"{home}/hay", "needle")
    assert (match.file, match.line) == (f"{home}/hay/stack.txt", 1)
    sandbox.git.clone(remote, f"{home}/repo")
    assert sandbox.git.status(f"{home}/repo").current_branch == "main"
    sandbox.delete()
    assert fake.live() == []


# --- helpers -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; only a running process counts.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _remote_ref(remote: str, branch: str) -> str:
    result = subprocess.run(
        ["git", "--git-dir", remote.removeprefix("file://"), "rev-parse", f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()
