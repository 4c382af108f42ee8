"""Git helpers: URL checks, messages without secrets, commands that keep credentials out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.sandbox import git
from app.sandbox.base import GitCredentials, GitIdentity, SandboxError


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/widgets.git",
        "file:///srv/git/widgets.git",
        "git@github.com:octo/widgets.git",
        "ssh://git@github.com/octo/widgets.git",
        "/home/me/src/widgets",
        "../widgets",
    ],
)
def test_ordinary_sources_are_accepted(url: str) -> None:
    git.check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://x-access-token:ghs_secret@github.com/o/r.git", "carries credentials"),
        ("https://ghs_secret@github.com/o/r.git", "carries credentials"),
        ("ext::sh -c touch% /tmp/pwned", "remote helpers"),
        ("fd::17", "remote helpers"),
        ("--upload-pack=touch /tmp/x", "not a repository"),
        ("", "not a repository"),
    ],
)
def test_dangerous_sources_are_refused_without_echoing_secrets(url: str, why: str) -> None:
    with pytest.raises(SandboxError, match=why) as raised:
        git.check_url(url)
    assert "ghs_secret" not in str(raised.value)


def test_public_url_drops_user_info() -> None:
    assert git.public_url("https://u:p@github.com/o/r.git") == "https://github.com/o/r.git"
    assert git.public_url("https://github.com/o/r.git") == "https://github.com/o/r.git"


@pytest.mark.parametrize(
    "output",
    [
        "fatal: repository '/nope.git' does not exist",
        "fatal: '/nope.git' does not appear to be a git repository\n"
        "fatal: Could not read from remote repository.",
        "remote: Repository not found.\nfatal: repository 'https://github.com/o/r.git/' not found",
        "fatal: Authentication failed for 'https://github.com/o/r.git/'",
        "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
    ],
)
def test_clone_failures_for_missing_or_unreadable_repositories(output: str) -> None:
    error = git.clone_failure(output, url="https://github.com/o/r.git", branch="main")
    assert str(error) == (
        "cannot clone https://github.com/o/r.git: the repository does not exist "
        "or these credentials cannot read it"
    )


def test_clone_failure_for_a_missing_branch() -> None:
    output = (
        "warning: Could not find remote branch nope to clone.\n"
        "fatal: Remote branch nope not found in upstream origin"
    )
    error = git.clone_failure(output, url="file:///r.git", branch="nope")
    assert str(error) == "cannot clone file:///r.git: branch 'nope' does not exist"


def test_other_clone_failures_keep_git_last_line() -> None:
    error = git.clone_failure("Cloning...\nfatal: disk full\n", url="file:///r.git", branch=None)
    assert str(error) == "cannot clone file:///r.git: fatal: disk full"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (" ! [rejected]  abc -> main (fetch first)", "was rejected"),
        ("remote: Permission to o/r.git denied\nfatal: ... 403", "credentials were refused"),
        ("fatal: unable to access: Could not resolve host", "Could not resolve host"),
    ],
)
def test_push_failures(output: str, expected: str) -> None:
    assert expected in str(git.push_failure(output, url="https://github.com/o/r", branch="b"))


WORKFLOWS_REFUSAL = (
    "refusing to allow a GitHub App to create or update workflow `.github/workflows/x.yml` "
    "without `workflows` permission"
)
LEAKY_TOKEN = "ghs_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"  # a token shape nobody told us about


def rejected_push_output(tmp_path: Path, hook_says: list[str]) -> str:
    """What `git push` prints when the remote's pre-receive hook says `hook_says` and exits 1."""
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_GLOBAL": "/dev/null"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=env)

    assert run("git", "init", "-q", "--bare", "-b", "main", str(bare)).returncode == 0
    assert run("git", "init", "-q", "-b", "main", str(work)).returncode == 0
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    assert (
        run(
            "git", "-C", str(work), *identity, "commit", "-q", "--allow-empty", "-m", "i"
        ).returncode
        == 0
    )
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n" + "".join(f"echo '{line}' >&2\n" for line in hook_says) + "exit 1\n"
    )
    hook.chmod(0o755)
    pushed = run("git", "-C", str(work), "push", "--quiet", str(bare), "HEAD:refs/heads/open-swe/x")
    assert pushed.returncode != 0
    return pushed.stdout + pushed.stderr


def test_a_push_refused_by_a_hook_keeps_the_remotes_reason(tmp_path: Path) -> None:
    output = rejected_push_output(
        tmp_path,
        [WORKFLOWS_REFUSAL, f"details: https://x-access-token:{LEAKY_TOKEN}@example.com/o/r"],
    )
    assert "[remote rejected]" in output

    error = git.push_failure(output, url="https://github.com/o/r.git", branch="open-swe/x")

    assert isinstance(error, git.PushRefused)
    assert str(error).startswith(
        "push of 'open-swe/x' to https://github.com/o/r.git was refused by the remote: "
        + WORKFLOWS_REFUSAL
    )
    assert (
        "details: https://[redacted]@example.com/o/r" in error.reason
    )  # the URL stays, its user goes
    assert error.reason.endswith("(pre-receive hook declined)")
    assert LEAKY_TOKEN not in str(error)
    assert "x-access-token" not in str(error)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (  # github.com puts the reason in the rejection itself
            "To https://github.com/o/r.git\n"
            f" ! [remote rejected] open-swe/x -> open-swe/x ({WORKFLOWS_REFUSAL})\n"
            "error: failed to push some refs to 'https://github.com/o/r.git'\n",
            WORKFLOWS_REFUSAL,
        ),
        (  # a repository rule: the remote's lines say which, the rejection only that one did
            "remote: error: GH013: Repository rule violations found for refs/heads/main.\x1b[K\n"
            "remote: \n"
            "remote: - Changes must be made through a pull request.\n"
            " ! [remote rejected] main -> main (push declined due to repository rule violations)\n",
            "error: GH013: Repository rule violations found for refs/heads/main.; "
            "- Changes must be made through a pull request. "
            "(push declined due to repository rule violations)",
        ),
    ],
)
def test_remote_refusals_are_reported_in_the_remotes_words(output: str, reason: str) -> None:
    error = git.push_failure(output, url="https://github.com/o/r.git", branch="b")
    assert isinstance(error, git.PushRefused)
    assert error.reason == reason
    assert str(error).endswith(f"was refused by the remote: {reason}")


def test_a_refusal_reason_is_bounded() -> None:
    output = f"remote: {'x' * 5000}\n ! [remote rejected] b -> b (pre-receive hook declined)\n"
    assert len(git.remote_refusal(output) or "") == git.MAX_REASON_CHARS
    assert git.remote_refusal("fatal: unable to access: Could not resolve host") is None


def test_credentials_travel_only_in_the_environment() -> None:
    credentials = GitCredentials("ghs_token123")
    args = git.credential_args(credentials)
    assert "ghs_token123" not in " ".join(args)
    assert args[:2] == ["-c", "credential.helper="]  # no other helper gets asked
    assert git.credential_env(credentials) == {
        git.USERNAME_VAR: "x-access-token",
        git.PASSWORD_VAR: "ghs_token123",
    }
    assert git.credential_args(None) == []
    assert git.credential_env(None) == {}


def test_commit_command_quotes_everything() -> None:
    command = git.commit_command("it's $(rm -rf /)\n\n#1", GitIdentity("O'Brien", "o@x.test"))
    assert "'it'\"'\"'s $(rm -rf /)\n\n#1'" in command
    assert "--cleanup=whitespace" in command
    assert "--no-verify" in command
