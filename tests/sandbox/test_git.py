"""Git helpers: URL checks, messages without secrets, commands that keep credentials out."""

from __future__ import annotations

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
