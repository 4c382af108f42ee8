"""Backend-independent tests every sandbox backend must pass.

Use: subclass `SandboxContract` in a test module and give the class a `provider` fixture
returning a ready `SandboxProvider`, e.g.

    class TestDaytona(SandboxContract):
        @pytest.fixture
        def provider(self, ...) -> SandboxProvider:
            return DaytonaProvider(settings)

Tests use only the public interface and `sandbox.work_dir`; git remotes are bare repositories
on this machine (file:// URLs) and a loopback smart-HTTP server that demands a token. The
class attributes below size the heavier tests; a backend may tune them, with a reason.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.sandbox.base import (
    GitCredentials,
    GitIdentity,
    PathOutsideSandbox,
    Sandbox,
    SandboxError,
    SandboxGone,
    SandboxProvider,
)
from app.text.redact import REDACTED
from tests.fakes.git_http import GitHttpServer

AUTHOR = GitIdentity("open-swe[bot]", "bot@open-swe.test")
TOKEN = "ghs_contractDummyToken0123456789abcdef"


@dataclass(frozen=True)
class Remote:
    """A bare repository on disk with a `main` branch holding README.md."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        return host_git("--git-dir", str(self.path), *args)


def host_git(*args: str, cwd: Path | None = None) -> str:
    """Run git on the host (test set-up and read-back), isolated from the user's config."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Seed",
        "GIT_AUTHOR_EMAIL": "seed@example.test",
        "GIT_COMMITTER_NAME": "Seed",
        "GIT_COMMITTER_EMAIL": "seed@example.test",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def make_remote(root: Path, name: str = "remote.git") -> Remote:
    seed = root / f"{name}.seed"
    seed.mkdir(parents=True)
    host_git("init", "--quiet", "--initial-branch=main", cwd=seed)
    (seed / "README.md").write_text("# widgets\n")
    host_git("add", "README.md", cwd=seed)
    host_git("commit", "--quiet", "-m", "Initial commit", cwd=seed)
    host_git("clone", "--quiet", "--bare", str(seed), str(root / name))
    return Remote(root / name)


class SandboxContract:
    """The behaviour open-swe relies on from any sandbox backend."""

    big_output_bytes = 100_000_000
    big_output_seconds = 15.0
    #: Peak Python memory while running the big printer; None when the backend cannot bound it.
    big_output_memory: int | None = 48 * 2**20
    #: Seconds a timed-out command may take beyond its timeout (kill grace, round trips).
    timeout_slack = 4.0
    #: Whether the backend reaches the loopback HTTP git server with credentials.
    http_git_remote = True

    # --- fixtures ---------------------------------------------------------------------

    @pytest.fixture
    def labels(self) -> dict[str, str]:
        return {"repo": "octo/widgets", "issue": "7", "run": uuid.uuid4().hex[:12]}

    @pytest.fixture
    def sandbox(self, provider: SandboxProvider, labels: dict[str, str]) -> Iterator[Sandbox]:
        box = provider.acquire(labels)
        yield box
        box.destroy()

    @pytest.fixture
    def remote(self, tmp_path: Path) -> Remote:
        return make_remote(tmp_path / "remotes")

    @pytest.fixture
    def git_server(self, tmp_path: Path) -> Iterator[GitHttpServer]:
        if not self.http_git_remote:
            pytest.skip("this backend's double cannot reach a loopback HTTP git remote")
        make_remote(tmp_path / "served", "widgets.git")
        with GitHttpServer(tmp_path / "served", token=TOKEN) as server:
            yield server

    def at(self, sandbox: Sandbox, *parts: str) -> str:
        return posixpath.join(sandbox.work_dir, *parts)

    # --- commands ---------------------------------------------------------------------

    def test_exit_code_and_interleaved_output(self, sandbox: Sandbox) -> None:
        result = sandbox.run("echo out; echo err >&2; exit 3")
        assert result.exit_code == 3
        assert not result.ok
        assert not result.timed_out
        assert "out\n" in result.output
        assert "err\n" in result.output

    def test_success(self, sandbox: Sandbox) -> None:
        result = sandbox.run("true")
        assert result.ok
        assert result.exit_code == 0

    def test_default_cwd_is_work_dir(self, sandbox: Sandbox) -> None:
        assert sandbox.run("pwd").output.strip() == sandbox.work_dir

    def test_cwd_and_env(self, sandbox: Sandbox) -> None:
        sandbox.run("mkdir -p sub/dir")
        result = sandbox.run(
            'pwd; echo "greeting=$GREETING"',
            cwd=self.at(sandbox, "sub", "dir"),
            env={"GREETING": "hello world"},
        )
        assert result.output.splitlines() == [
            self.at(sandbox, "sub", "dir"),
            "greeting=hello world",
        ]

    def test_timeout_kills_the_whole_process_tree(self, sandbox: Sandbox) -> None:
        # A background child writes a heartbeat; once the command timed out it must stop.
        script = "(while :; do date +%s%N > beat; sleep 0.05; done) & echo started; sleep 60"
        started = time.monotonic()
        result = sandbox.run(script, timeout=1)
        assert time.monotonic() - started < 1 + self.timeout_slack
        assert result.timed_out
        assert not result.ok
        first = sandbox.read_file("beat")
        time.sleep(0.5)
        assert sandbox.read_file("beat") == first, "the background child outlived the timeout"

    def test_big_output_is_capped_quickly_in_bounded_memory(self, sandbox: Sandbox) -> None:
        command = f"head -c {self.big_output_bytes} /dev/zero | tr '\\0' x; echo; echo the-end"
        tracemalloc.start()
        try:
            started = time.monotonic()
            result = sandbox.run(command)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.ok
        assert result.truncated
        assert len(result.output) <= sandbox.output_limit + 200
        assert result.output.rstrip().endswith("the-end")
        assert "characters" in result.output
        assert "cut from the middle" in result.output
        assert elapsed < self.big_output_seconds
        if self.big_output_memory is not None:
            assert peak < self.big_output_memory, f"peak {peak:,} bytes"

    def test_non_utf8_output_is_decoded_with_replacement(self, sandbox: Sandbox) -> None:
        result = sandbox.run(r"printf 'caf\351 ok\n'")
        assert result.output == "caf\ufffd ok\n"

    def test_terminal_escapes_are_stripped(self, sandbox: Sandbox) -> None:
        result = sandbox.run(r"printf '\033[1;31mred\033[0m plain \033]0;title\007end\n'")
        assert result.output == "red plain end\n"

    def test_registered_secret_is_redacted_in_every_spelling(self, sandbox: Sandbox) -> None:
        secret = "tok-abc/123+xyz"
        sandbox.add_secret(secret)
        result = sandbox.run("echo 'plain tok-abc/123+xyz'; echo 'url tok-abc%2F123%2Bxyz'")
        assert result.output == f"plain {REDACTED}\nurl {REDACTED}\n"
        assert "tok-abc" not in sandbox.execute("echo tok-abc/123+xyz").output

    def test_python_writes_no_bytecode(self, sandbox: Sandbox) -> None:
        assert "PYTHONDONTWRITEBYTECODE=1" in sandbox.run("env").output.splitlines()

    def test_python_runs_a_module_as_just_edited(self, sandbox: Sandbox) -> None:
        # Python trusts a cached .pyc whose recorded source mtime (whole seconds) and size
        # match: an agent that edits a module and runs the tests at once would test the old
        # code. The pinned mtime makes both versions "the same second", whatever the clock.
        same_second = "touch -d @1700000000 calc.py"
        run = f"{same_second} && python3 -c 'import calc; print(calc.VALUE)'"
        sandbox.write_file("calc.py", b"VALUE = 1\n")
        assert sandbox.run(run).output == "1\n"
        edited = sandbox.edit(self.at(sandbox, "calc.py"), "VALUE = 1", "VALUE = 2")
        assert edited.error is None
        assert sandbox.run(run).output == "2\n"

    # --- files ------------------------------------------------------------------------

    def test_read_and_write_bytes(self, sandbox: Sandbox) -> None:
        data = bytes(range(256)) * 3
        sandbox.write_file("nested/dir/blob.bin", data)
        assert sandbox.read_file("nested/dir/blob.bin") == data
        assert sandbox.read_file(self.at(sandbox, "nested", "dir", "blob.bin")) == data
        with pytest.raises(SandboxError):
            sandbox.read_file("missing.txt")

    def test_agent_file_tools(self, sandbox: Sandbox) -> None:
        path = self.at(sandbox, "src", "app.py")
        assert sandbox.write(path, "def greet():\n    return 'hello'\n").error is None
        read = sandbox.read(path)
        assert read.error is None
        assert read.file_data is not None
        assert "return 'hello'" in read.file_data["content"]
        edited = sandbox.edit(path, "'hello'", "'bonjour'")
        assert edited.error is None
        assert edited.occurrences == 1
        assert b"bonjour" in sandbox.read_file(path)
        listing = sandbox.ls(self.at(sandbox, "src"))
        assert listing.entries is not None
        assert [entry["path"] for entry in listing.entries] == [path]
        grep = sandbox.grep("bonjour", path=sandbox.work_dir)
        assert grep.matches is not None
        assert [(m["path"], m["line"]) for m in grep.matches] == [(path, 2)]
        found = sandbox.glob("**/*.py", path=sandbox.work_dir)
        assert found.matches is not None
        assert [m["path"] for m in found.matches] == [path]

    def test_agent_reads_a_large_file_whole(self, sandbox: Sandbox) -> None:
        lines = [f"line {i:05d} " + "x" * 90 for i in range(3000)]  # ~300 kB
        sandbox.write_file("big.txt", ("\n".join(lines) + "\n").encode())
        read = sandbox.read(self.at(sandbox, "big.txt"), offset=0, limit=2000)
        assert read.error is None
        assert read.file_data is not None
        assert read.file_data["content"].splitlines() == lines[:2000]

    def test_agent_large_edit(self, sandbox: Sandbox) -> None:
        path = self.at(sandbox, "large.txt")
        old = "a" * 40_000
        sandbox.write_file(path, f"start\n{old}\nend\n".encode())
        edited = sandbox.edit(path, old, "b" * 40_000)
        assert edited.error is None, edited.error
        assert sandbox.read_file(path) == f"start\n{'b' * 40_000}\nend\n".encode()

    def test_paths_outside_work_dir_are_refused(self, sandbox: Sandbox) -> None:
        for path in ("../escape.txt", "a/../../escape.txt", "/etc/hostname"):
            with pytest.raises(PathOutsideSandbox):
                sandbox.read_file(path)
            with pytest.raises(PathOutsideSandbox):
                sandbox.write_file(path, b"nope")
        assert sandbox.write("/etc/open-swe-contract", "nope").error is not None
        assert not sandbox.run("test -e /etc/open-swe-contract").ok

    def test_symlinks_out_of_work_dir_are_refused(self, sandbox: Sandbox) -> None:
        assert sandbox.run("ln -s /etc escape && ln -s /etc/hostname host").ok
        with pytest.raises(PathOutsideSandbox):
            sandbox.read_file("escape/hostname")
        with pytest.raises(PathOutsideSandbox):
            sandbox.read_file("host")
        with pytest.raises(PathOutsideSandbox):
            sandbox.write_file("escape/evil", b"nope")

    # --- git --------------------------------------------------------------------------

    def test_clone_edit_commit_push(self, sandbox: Sandbox, remote: Remote) -> None:
        credentials = GitCredentials(TOKEN)
        sandbox.clone(remote.url, "repo", branch="main", credentials=credentials)
        assert sandbox.read_file("repo/README.md") == b"# widgets\n"
        assert sandbox.run("git checkout -q -b open-swe/issue-7", cwd=self.at(sandbox, "repo")).ok
        sandbox.write_file("repo/feature.txt", b"new feature\n")
        message = "Add feature\n\n#7 needed it.\n\nCo-authored-by: Octo Cat <octo@example.test>"
        sha = sandbox.commit("repo", message, author=AUTHOR)
        assert sha is not None
        sandbox.push("repo", "open-swe/issue-7", credentials=credentials)

        log = remote.git("log", "-1", "--format=%H%n%an <%ae>%n%B", "open-swe/issue-7")
        pushed, who, *body = log.splitlines()
        assert pushed == sha
        assert who == "open-swe[bot] <bot@open-swe.test>"
        assert "\n".join(body).strip() == message
        assert remote.git("show", "open-swe/issue-7:feature.txt") == "new feature\n"
        assert TOKEN not in sandbox.read_file("repo/.git/config").decode()

    def test_commit_without_changes_returns_none(self, sandbox: Sandbox, remote: Remote) -> None:
        sandbox.clone(remote.url, "repo")
        assert sandbox.commit("repo", "Nothing", author=AUTHOR) is None

    def test_push_never_forces(self, sandbox: Sandbox, remote: Remote, tmp_path: Path) -> None:
        sandbox.clone(remote.url, "repo", branch="main")
        sandbox.write_file("repo/mine.txt", b"mine\n")
        assert sandbox.commit("repo", "Mine", author=AUTHOR) is not None
        # Someone else pushes to main first.
        other = tmp_path / "other"
        host_git("clone", "--quiet", remote.url, str(other))
        (other / "theirs.txt").write_text("theirs\n")
        host_git("add", "theirs.txt", cwd=other)
        host_git("commit", "--quiet", "-m", "Theirs", cwd=other)
        host_git("push", "--quiet", "origin", "main", cwd=other)
        theirs = remote.git("rev-parse", "main").strip()

        with pytest.raises(SandboxError, match="rejected"):
            sandbox.push("repo", "main")
        assert remote.git("rev-parse", "main").strip() == theirs

    def test_clone_of_a_missing_repository(self, sandbox: Sandbox, tmp_path: Path) -> None:
        url = (tmp_path / "nowhere.git").as_uri()
        with pytest.raises(SandboxError, match="does not exist") as raised:
            sandbox.clone(url, "repo", credentials=GitCredentials(TOKEN))
        assert "repository" in str(raised.value)
        assert TOKEN not in str(raised.value)

    def test_clone_of_a_missing_branch(self, sandbox: Sandbox, remote: Remote) -> None:
        with pytest.raises(SandboxError, match="branch 'nope' does not exist") as raised:
            sandbox.clone(remote.url, "repo", branch="nope", credentials=GitCredentials(TOKEN))
        assert TOKEN not in str(raised.value)

    def test_clone_and_push_over_https_with_a_token(
        self, sandbox: Sandbox, git_server: GitHttpServer
    ) -> None:
        credentials = GitCredentials(TOKEN)
        url = git_server.url("widgets.git")
        sandbox.clone(url, "repo", credentials=credentials)
        assert sandbox.run("git checkout -q -b feature", cwd=self.at(sandbox, "repo")).ok
        sandbox.write_file("repo/x.txt", b"x\n")
        sha = sandbox.commit("repo", "Add x", author=AUTHOR)
        sandbox.push("repo", "feature", credentials=credentials)

        served = Remote(git_server.root / "widgets.git")
        assert served.git("rev-parse", "feature").strip() == sha
        assert ("x-access-token", TOKEN) in {r.credentials for r in git_server.requests}
        config = sandbox.read_file("repo/.git/config").decode()
        assert TOKEN not in config
        assert "x-access-token" not in config
        remote_url = sandbox.run("git remote get-url origin", cwd=self.at(sandbox, "repo"))
        assert remote_url.output.strip() == url

    def test_clone_with_a_refused_token(self, sandbox: Sandbox, git_server: GitHttpServer) -> None:
        wrong = "ghs_wrongToken0000000000000000000000000"
        with pytest.raises(SandboxError, match="does not exist or these credentials") as raised:
            sandbox.clone(git_server.url("widgets.git"), "repo", credentials=GitCredentials(wrong))
        assert wrong not in str(raised.value)

    # --- lifecycle --------------------------------------------------------------------

    def test_acquire_reuses_the_sandbox_with_the_same_labels(
        self, provider: SandboxProvider, sandbox: Sandbox, labels: dict[str, str]
    ) -> None:
        sandbox.write_file("kept.txt", b"kept")
        again = provider.acquire(labels)
        assert again.id == sandbox.id
        assert again.read_file("kept.txt") == b"kept"
        other = provider.acquire({**labels, "run": labels["run"] + "-other"})
        try:
            assert other.id != sandbox.id
        finally:
            other.destroy()

    def test_find_by_labels(
        self, provider: SandboxProvider, sandbox: Sandbox, labels: dict[str, str]
    ) -> None:
        assert [box.id for box in provider.find({"run": labels["run"]})] == [sandbox.id]
        assert [box.id for box in provider.find(labels)] == [sandbox.id]
        assert provider.find({"run": labels["run"], "issue": "other"}) == []

    def test_stop_and_resume_keep_files(self, sandbox: Sandbox) -> None:
        sandbox.write_file("kept.txt", b"kept")
        sandbox.stop()
        sandbox.resume()
        assert sandbox.read_file("kept.txt") == b"kept"
        assert sandbox.run("cat kept.txt").output == "kept"

    def test_destroy_is_idempotent_and_removes_the_sandbox(
        self, provider: SandboxProvider, sandbox: Sandbox, labels: dict[str, str]
    ) -> None:
        sandbox.write_file("gone.txt", b"gone")
        sandbox.destroy()
        sandbox.destroy()
        assert provider.find({"run": labels["run"]}) == []
        with pytest.raises(SandboxGone):
            sandbox.resume()
        fresh = provider.acquire(labels)
        try:
            assert fresh.id != sandbox.id
            with pytest.raises(SandboxError):
                fresh.read_file("gone.txt")
        finally:
            fresh.destroy()
