"""The local backend: the shared contract with and without bubblewrap, plus what only it does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox.base import (
    OUTSIDE_WORK_DIR,
    GitCredentials,
    PathOutsideSandbox,
    SandboxError,
)
from app.sandbox.local import LocalProvider, LocalSandbox
from app.sandbox.local_state import STATE_FILE
from app.sandbox.process import STREAM_KEEP_BYTES
from app.text.redact import REDACTED
from tests.sandbox.conftest import fast_provider, processes_with
from tests.sandbox.contract import AUTHOR, TOKEN, SandboxContract, host_git, make_remote

CHECKOUT = Path(__file__).resolve().parents[2]


class TestPlainContract(SandboxContract):
    @pytest.fixture
    def provider(self, plain_provider: LocalProvider) -> LocalProvider:
        return plain_provider


class TestBubblewrapContract(SandboxContract):
    @pytest.fixture
    def provider(self, bwrap_provider: LocalProvider) -> LocalProvider:
        return bwrap_provider


class TestSandboxUserContract(SandboxContract):
    """open-swe as root: commands, file operations and clones as the unprivileged user."""

    @pytest.fixture
    def provider(self, user_bwrap_provider: LocalProvider) -> LocalProvider:
        return user_bwrap_provider


class TestSandboxUserUnconfinedContract(SandboxContract):
    @pytest.fixture
    def provider(self, user_plain_provider: LocalProvider) -> LocalProvider:
        return user_plain_provider


@pytest.fixture(params=["plain", "bwrap", "user_bwrap"])
def provider(request: pytest.FixtureRequest) -> LocalProvider:
    provider: LocalProvider = request.getfixturevalue(f"{request.param}_provider")
    return provider


@pytest.fixture
def sandbox(provider: LocalProvider) -> Iterator[LocalSandbox]:
    box = provider.acquire({"repo": "octo/widgets", "issue": "7"})
    yield box
    box.destroy()


def wait_for(condition: object, seconds: float = 5.0) -> None:
    give_up = time.monotonic() + seconds
    while not callable(condition) or not condition():
        if time.monotonic() > give_up:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- environment and processes --------------------------------------------------------------


def test_commands_do_not_see_this_process_environment(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", "parent-private-key-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:parent-db-password@db/x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-parent-model-key")
    result = sandbox.run("env", env={"EXPLICIT": "passed"})
    assert "parent-" not in result.output
    names = {line.split("=", 1)[0] for line in result.output.splitlines() if "=" in line}
    allowed = {"PATH", "HOME", "LANG", "TERM", "TMPDIR", "GIT_TERMINAL_PROMPT", "EXPLICIT"}
    allowed.add("GIT_CEILING_DIRECTORIES")
    assert names - {"PWD", "SHLVL", "_", "OLDPWD"} == allowed | {"PYTHONDONTWRITEBYTECODE"}
    assert "EXPLICIT=passed" in result.output
    assert "TERM=dumb" in result.output


def test_home_and_tmp_belong_to_the_sandbox(sandbox: LocalSandbox) -> None:
    result = sandbox.run('echo "$HOME"; echo data > "$TMPDIR/x"; cat "$TMPDIR/x"')
    home, content = result.output.splitlines()
    assert home == str(sandbox.directory / "home")
    assert content == "data"
    assert (sandbox.directory / "tmp" / "x").read_text() == "data\n"


def test_timeout_kills_the_forked_sleeper_and_keeps_earlier_output(sandbox: LocalSandbox) -> None:
    started = time.monotonic()
    result = sandbox.run("echo before; sleep 31.4159 & sleep 60", timeout=0.5)
    assert time.monotonic() - started < 3
    assert result.timed_out
    assert result.exit_code == 124
    assert result.output == "before\n"
    assert processes_with("31.4159") == []


def test_background_children_end_with_their_command(sandbox: LocalSandbox) -> None:
    started = time.monotonic()
    result = sandbox.run("sleep 27.1828 & echo done")
    assert result.ok
    assert result.output == "done\n"
    assert time.monotonic() - started < 3  # did not wait for the child either
    assert processes_with("27.1828") == []


def test_stop_ends_running_commands_and_refuses_new_ones(sandbox: LocalSandbox) -> None:
    results = []
    worker = threading.Thread(target=lambda: results.append(sandbox.run("sleep 42.4242")))
    worker.start()
    wait_for(lambda: processes_with("42.4242"))
    sandbox.stop()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert not results[0].ok
    with pytest.raises(SandboxError, match="stopped"):
        sandbox.run("true")
    sandbox.resume()
    assert sandbox.run("true").ok


def test_cwd_must_be_an_existing_directory_inside(sandbox: LocalSandbox) -> None:
    with pytest.raises(PathOutsideSandbox):
        sandbox.run("pwd", cwd="/")
    with pytest.raises(PathOutsideSandbox):
        sandbox.run("pwd", cwd="..")
    with pytest.raises(SandboxError, match="no such directory"):
        sandbox.run("pwd", cwd="missing")
    sandbox.run("mkdir rel")
    assert sandbox.run("pwd", cwd="rel").output.strip() == f"{sandbox.work_dir}/rel"


@pytest.mark.parametrize("offset", [STREAM_KEEP_BYTES - 10, -STREAM_KEEP_BYTES - 10])
def test_no_fragment_of_a_secret_cut_by_the_stream_survives(
    sandbox: LocalSandbox, offset: int
) -> None:
    # The secret straddles the end of the kept head (offset > 0) or the start of the kept
    # tail (offset < 0, from the end); neither half may be shown.
    secret = "ghs_StraddlingSecret0123456789abcdefXYZ"
    sandbox.add_secret(secret)
    total = 3 * STREAM_KEEP_BYTES
    start = offset if offset > 0 else total + offset
    script = (
        "import sys; w = sys.stdout.write; "
        f"w('a' * {start}); w({secret!r}); w('b' * {total - start - len(secret)})"
    )
    result = sandbox.run(f"python3 -c {script!r}", output_limit=4 * STREAM_KEEP_BYTES)
    assert result.truncated
    assert "cut from the middle" in result.output
    for fragment in (secret[:8], secret[8:16], secret[-8:], secret[-16:-8]):
        assert fragment not in result.output


def test_registered_secret_is_redacted_from_agent_file_reads(sandbox: LocalSandbox) -> None:
    sandbox.add_secret("ghs_fileSecret123")
    sandbox.write_file("leak.txt", b"token=ghs_fileSecret123\n")
    read = sandbox.read(f"{sandbox.work_dir}/leak.txt")
    assert read.file_data is not None
    assert read.file_data["content"] == f"token={REDACTED}"


# --- files --------------------------------------------------------------------------------


def test_outside_paths_get_the_deepagents_error_not_an_exception(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "deep" / "file.txt"
    [upload] = sandbox.upload_files([(str(outside), b"x")])
    [download] = sandbox.download_files(["/etc/hostname"])
    assert upload.error == OUTSIDE_WORK_DIR
    assert download.error == OUTSIDE_WORK_DIR
    assert download.content is None
    assert sandbox.write(str(outside), "x").error is not None
    assert not (tmp_path / "outside").exists()  # no parent directories made for it
    edit = sandbox.edit("/etc/hostname", "a" * 30_000, "b" * 30_000)
    assert edit.error is not None
    assert "outside" in edit.error


def test_file_errors_use_deepagents_codes(sandbox: LocalSandbox) -> None:
    sandbox.run("mkdir adir")
    [missing, directory] = sandbox.download_files(["missing.txt", "adir"])
    assert missing.error == "file_not_found"
    assert directory.error == "is_directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_destroy_removes_read_only_trees(sandbox: LocalSandbox) -> None:
    assert sandbox.run("mkdir -p ro/x && touch ro/x/f && chmod -R a-w ro").ok
    sandbox.destroy()
    assert not sandbox.directory.exists()


# --- labels and reuse across processes ----------------------------------------------------


def test_another_process_reuses_the_sandbox(plain_provider: LocalProvider) -> None:
    sandbox = plain_provider.acquire({"repo": "octo/widgets", "issue": "7"})
    script = (
        "import sys; from app.sandbox.local import LocalProvider; "
        "p = LocalProvider(sys.argv[1], use_bwrap=False); "
        "print(p.acquire({'repo': 'octo/widgets', 'issue': '7'}).id)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(plain_provider.root)],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == sandbox.id
    assert (sandbox.directory / STATE_FILE).exists()


def test_acquire_resumes_a_stopped_sandbox(provider: LocalProvider, sandbox: LocalSandbox) -> None:
    sandbox.stop()
    again = provider.acquire(sandbox.labels)
    assert again.id == sandbox.id
    assert again.run("true").ok


def test_half_created_directories_are_ignored(provider: LocalProvider) -> None:
    (provider.root / "sbx-broken").mkdir()
    (provider.root / "sbx-garbled").mkdir()
    (provider.root / "sbx-garbled" / STATE_FILE).write_text("{not json")
    assert provider.find({}) == []


def test_labels_must_be_strings(provider: LocalProvider) -> None:
    with pytest.raises(SandboxError, match="strings"):
        provider.acquire({"issue": 7})  # type: ignore[dict-item]


# --- git ----------------------------------------------------------------------------------


def test_clone_of_a_local_checkout_copies_it(sandbox: LocalSandbox, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "remotes")
    checkout = tmp_path / "checkout"
    host_git("clone", "--quiet", remote.url, str(checkout))
    sandbox.clone(str(checkout), "repo")
    assert sandbox.read_file("repo/README.md") == b"# widgets\n"
    # Nothing shared with the user's checkout: no worktree, no hardlinked objects.
    assert host_git("worktree", "list", cwd=checkout).count("\n") == 1
    ours = sorted((sandbox.directory / "work/repo/.git/objects").rglob("*"))
    assert all(path.stat().st_nlink == 1 for path in ours if path.is_file())
    # The branch goes back to the checkout (as a branch, never into its working tree).
    sandbox.run("git checkout -q -b from-sandbox", cwd=f"{sandbox.work_dir}/repo")
    sandbox.write_file("repo/new.txt", b"new\n")
    sha = sandbox.commit("repo", "New", author=AUTHOR)
    sandbox.push("repo", "from-sandbox")
    assert host_git("rev-parse", "from-sandbox", cwd=checkout).strip() == sha
    assert not (checkout / "new.txt").exists()


def test_url_with_credentials_is_refused(sandbox: LocalSandbox) -> None:
    with pytest.raises(SandboxError, match="carries credentials") as raised:
        sandbox.clone("https://x-access-token:ghs_inUrl123@github.com/o/r.git", "repo")
    assert "ghs_inUrl123" not in str(raised.value)
    with pytest.raises(SandboxError, match="not allowed"):
        sandbox.clone("ext::sh -c touch% /tmp/pwned", "repo")
    with pytest.raises(SandboxError, match="not a repository"):
        sandbox.clone("--upload-pack=touch /tmp/pwned", "repo")


def test_commit_runs_no_repository_hooks(sandbox: LocalSandbox, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "remotes")
    sandbox.clone(remote.url, "repo")
    hook = '#!/bin/sh\ntouch "$(git rev-parse --show-toplevel)/../hooked"\n'
    sandbox.write_file("repo/.git/hooks/pre-commit", hook.encode())
    sandbox.run(
        "chmod +x repo/.git/hooks/pre-commit && git -C repo config core.hooksPath .git/hooks"
    )
    sandbox.write_file("repo/change.txt", b"change\n")
    assert sandbox.commit("repo", "Change", author=AUTHOR) is not None
    assert not (sandbox.directory / "work" / "hooked").exists()


def test_push_ignores_redirects_planted_in_the_clone(sandbox: LocalSandbox, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "remotes")
    evil = make_remote(tmp_path / "evil")
    sandbox.clone(remote.url, "repo")
    plant = (
        f"git config url.{evil.url}.insteadOf {remote.url} && "
        f"git config url.{evil.url}.pushInsteadOf {remote.url} && "
        f"git remote set-url origin {evil.url} && git config remote.origin.pushurl {evil.url}"
    )
    assert sandbox.run(plant, cwd=f"{sandbox.work_dir}/repo").ok
    sandbox.run("git checkout -q -b topic", cwd=f"{sandbox.work_dir}/repo")
    sandbox.write_file("repo/t.txt", b"t\n")
    sha = sandbox.commit("repo", "Topic", author=AUTHOR)
    sandbox.push("repo", "topic", credentials=GitCredentials(TOKEN))
    assert remote.git("rev-parse", "topic").strip() == sha
    assert "topic" not in evil.git("branch", "--list")


def test_push_refuses_objects_from_outside_the_sandbox(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    remote = make_remote(tmp_path / "remotes")
    private = make_remote(tmp_path / "private", "private.git")
    sandbox.clone(remote.url, "repo")
    sandbox.write_file(
        "repo/.git/objects/info/alternates", f"{private.path / 'objects'}\n".encode()
    )
    with pytest.raises(SandboxError, match="outside the sandbox"):
        sandbox.push("repo", "main")


def test_push_refuses_object_files_linked_from_outside(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    remote = make_remote(tmp_path / "remotes")
    private = make_remote(tmp_path / "private", "private.git")
    sandbox.clone(remote.url, "repo")
    secret_object = next(p for p in (private.path / "objects").rglob("*") if p.is_file())
    name = f"{secret_object.parent.name}/{secret_object.name}"
    sandbox.run(f"mkdir -p repo/.git/objects/{secret_object.parent.name}")
    assert sandbox.run(f"ln -sf {secret_object} repo/.git/objects/{name}").ok
    with pytest.raises(SandboxError, match="outside the sandbox"):
        sandbox.push("repo", "main")


def test_push_needs_a_clone_and_an_existing_valid_branch(
    sandbox: LocalSandbox, tmp_path: Path
) -> None:
    sandbox.run("mkdir plain && git -C plain init -q")
    with pytest.raises(SandboxError, match="not cloned by this sandbox"):
        sandbox.push("plain", "main")
    sandbox.clone(make_remote(tmp_path / "remotes").url, "repo")
    with pytest.raises(SandboxError, match="no such branch"):
        sandbox.push("repo", "missing")
    with pytest.raises(SandboxError, match="not a valid branch"):
        sandbox.push("repo", "bad..name")


def test_clone_into_a_non_empty_directory_is_refused(sandbox: LocalSandbox, tmp_path: Path) -> None:
    sandbox.write_file("repo/file", b"x")
    with pytest.raises(SandboxError, match="not empty"):
        sandbox.clone(make_remote(tmp_path / "remotes").url, "repo")


# --- isolation ----------------------------------------------------------------------------


def test_isolation_is_stated(plain_provider: LocalProvider, bwrap_provider: LocalProvider) -> None:
    assert plain_provider.isolation.startswith(
        "none: bubblewrap disabled; commands run with a scrubbed environment and this "
        "machine's network; commands run as "
    )
    assert plain_provider.isolation.endswith("network: this machine's, for every command")
    assert not plain_provider.confined
    assert bwrap_provider.isolation.startswith("bubblewrap: commands confined to their sandbox")
    assert str(bwrap_provider.root) in bwrap_provider.isolation
    assert "network: none unless the run's policy grants it (ceiling always)" in (
        bwrap_provider.isolation
    )
    assert bwrap_provider.confined


def test_missing_bwrap_falls_back_or_fails_when_required(tmp_path: Path) -> None:
    fallback = LocalProvider(tmp_path / "a", bwrap_executable="/nonexistent/bwrap")
    assert fallback.isolation.startswith("none: bwrap not found;")
    assert fallback.acquire({}).run("echo ok").output == "ok\n"
    with pytest.raises(SandboxError, match="required but bwrap not found"):
        LocalProvider(tmp_path / "b", use_bwrap=True, bwrap_executable="/nonexistent/bwrap")


def test_bwrap_that_cannot_start_falls_back(tmp_path: Path) -> None:
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    provider = fast_provider(tmp_path / "root", bwrap_executable=str(broken))
    assert provider.isolation.startswith(
        "none: bwrap failed to start (bwrap: No permissions to create new namespace); "
        "commands run with a scrubbed environment and this machine's network"
    )
    assert provider.acquire({}).run("echo ok").ok


def test_bwrap_confines_the_filesystem(bwrap_provider: LocalProvider) -> None:
    box = bwrap_provider.acquire({"confined": "yes"})
    neighbour = bwrap_provider.acquire({"confined": "neighbour"})
    checks = {
        "home directory": "ls /root",
        "open-swe checkout": f"ls {CHECKOUT}",
        "another sandbox": f"ls {neighbour.work_dir}",
        "its own state file": f"cat {box.directory / STATE_FILE}",
        "write to /usr": "touch /usr/open-swe-test",
        "write to /etc": "touch /etc/open-swe-test",
    }
    for what, command in checks.items():
        assert not box.run(command).ok, f"{what} is reachable"
    assert box.run("git --version && python3 -c 'print(1)'").ok
    # /tmp is the sandbox's own, and it persists between commands.
    marker = f"/tmp/open-swe-private-{box.id}"
    assert box.run(f"echo hi > {marker}").ok
    assert not Path(marker).exists()
    assert box.run(f"cat {marker}").output == "hi\n"
    box.destroy()
    neighbour.destroy()


def test_unconfined_commands_see_the_host(plain_provider: LocalProvider) -> None:
    # The contrast that makes the confinement test meaningful.
    box = plain_provider.acquire({})
    assert box.run(f"ls {CHECKOUT}").ok
    box.destroy()


# --- the sandbox user (open-swe as root) --------------------------------------------------


@pytest.mark.parametrize("confinement", ["user_bwrap", "user_plain"])
def test_commands_run_as_the_sandbox_user_and_root_only_files_stay_closed(
    request: pytest.FixtureRequest, confinement: str, tmp_path: Path
) -> None:
    provider: LocalProvider = request.getfixturevalue(f"{confinement}_provider")
    assert provider.user is not None
    assert f"commands run as user nobody (uid {provider.user.uid})" in provider.isolation
    secret = tmp_path / "root-only.txt"  # readable by root alone, in a directory others reach
    secret.write_text("root secret\n")
    secret.chmod(0o600)
    box = provider.acquire({"user": confinement})
    assert box.run("id -u").output.strip() == str(provider.user.uid)
    assert box.run("id -G").output.split() == [str(provider.user.gid)]  # no other groups
    shadow = box.run("cat /etc/shadow")
    assert not shadow.ok
    assert "Permission denied" in shadow.output
    if confinement == "user_plain":  # unconfined: the path is there, the kernel says no
        mine = box.run(f"cat {secret}")
        assert not mine.ok
        assert "Permission denied" in mine.output
        state = box.run(f"cat {box.directory / STATE_FILE}")  # the sandbox's own state is root's
        assert not state.ok
        assert "Permission denied" in state.output
    assert box.run("touch $HOME/h /tmp/t work-file && ls").ok
    for name in ("work", "home", "tmp"):
        assert (box.directory / name).stat().st_uid == provider.user.uid
    assert box.directory.stat().st_uid == 0
    assert oct(box.directory.stat().st_mode & 0o777) == oct(0o711)
    box.destroy()


def test_files_written_by_the_workflow_belong_to_the_sandbox_user(
    user_bwrap_provider: LocalProvider,
) -> None:
    box = user_bwrap_provider.acquire({})
    box.write_file("new/dir/file.txt", b"from the agent\n")
    target = Path(box.work_dir) / "new" / "dir" / "file.txt"
    assert user_bwrap_provider.user is not None
    assert target.stat().st_uid == user_bwrap_provider.user.uid
    assert target.parent.stat().st_uid == user_bwrap_provider.user.uid
    assert box.run("echo more >> new/dir/file.txt && rm -r new/dir && mkdir new/dir").ok
    box.destroy()


def test_a_file_operation_cannot_be_led_to_root_only_files(
    user_bwrap_provider: LocalProvider, tmp_path: Path
) -> None:
    # The resolved path is opened by the sandbox user, in the sandbox: even a link planted
    # after the check (simulated here by one the check allows) reaches only what it may.
    box = user_bwrap_provider.acquire({})
    assert box.run("mkdir inside && ln -s /etc/shadow inside/s").ok
    [read] = box.download_files(["inside/s"])
    assert read.error is not None
    assert read.content is None
    box.destroy()


def test_clones_belong_to_the_sandbox_user_and_credentials_never_reach_it(
    user_bwrap_provider: LocalProvider, tmp_path: Path
) -> None:
    remote = make_remote(tmp_path / "remotes")
    box = user_bwrap_provider.acquire({})
    box.clone(remote.url, "repo")
    assert user_bwrap_provider.user is not None
    owners = {p.stat().st_uid for p in (Path(box.work_dir) / "repo").rglob("*")}
    assert owners == {user_bwrap_provider.user.uid}
    assert box.run("git status --short && echo change >> README.md", cwd="repo").ok
    assert box.commit("repo", "change", author=AUTHOR)
    assert not [p for p in box.directory.iterdir() if p.name.startswith(".clone-")]
    box.destroy()
