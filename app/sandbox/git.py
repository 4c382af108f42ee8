"""Git over a shell, for sandbox backends: credentials per command, hardening, clear errors.

Credentials reach git only through the environment of the one command that needs them, read
by an inline credential helper; the helper's text (in argv) names variables, never values. So
neither `.git/config`, the remote URL, nor `ps` ever shows a token.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from app.sandbox.types import GitCredentials, GitIdentity, SandboxError
from app.text.redact import redact

USERNAME_VAR = "OPEN_SWE_GIT_USERNAME"
PASSWORD_VAR = "OPEN_SWE_GIT_PASSWORD"  # noqa: S105 - a variable name, not a password
_HELPER = (
    f'!f() {{ test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    f'"${USERNAME_VAR}" "${PASSWORD_VAR}"; }}; f'
)

# Config that, set by code in a cloned repository, would run programs or send credentials
# elsewhere; command-line -c wins over every config file.
HARDENING: tuple[str, ...] = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "protocol.ext.allow=never",
    "-c", "commit.gpgSign=false",
    "-c", "advice.detachedHead=false",
)  # fmt: skip

#: Environment every git command gets: never prompt, never read the user's global config.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_GLOBAL": "/dev/null"}

MAX_REASON_CHARS = 1000  # a remote's explanation is kept, within reason
# ` ! [remote rejected] <src> -> <dst> (<reason>)`: a hook or a rule on the remote said no.
_REMOTE_REJECTED = re.compile(r"^\s*!\s*\[remote rejected\]\s+\S+\s+->\s+\S+\s+\((?P<why>.*)\)\s*$")
_REMOTE_LINE = re.compile(r"^remote:(?P<text>.*)$")
_PROGRESS = re.compile(r"^(Counting|Compressing|Resolving|Enumerating|Writing|Total) ")
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")
# Credentials a remote could echo back: user:password@ in URLs, GitHub token shapes.


class PushRefused(SandboxError):
    """The remote refused the push (a hook or a rule, e.g. GitHub's `workflows` permission);
    `reason` is the remote's own explanation, without credentials."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def credential_args(credentials: GitCredentials | None) -> list[str]:
    """`-c` options that make git ask our env-reading helper (and only it) for credentials."""
    if credentials is None:
        return []
    return ["-c", "credential.helper=", "-c", f"credential.helper={_HELPER}"]


def credential_env(credentials: GitCredentials | None) -> dict[str, str]:
    if credentials is None:
        return {}
    return {USERNAME_VAR: credentials.username, PASSWORD_VAR: credentials.password}


def check_url(url: str) -> None:
    """Refuse sources that would store credentials or be read as an option or a command."""
    if not url or url.startswith("-"):
        raise SandboxError(f"cannot clone {url!r}: not a repository URL or path")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*::", url):  # <transport>::<address>, e.g. ext::
        raise SandboxError(f"cannot clone {public_url(url)}: remote helpers are not allowed")
    parts = urlsplit(url) if "://" in url else None
    if parts and (parts.password or (parts.username and parts.scheme in ("http", "https"))):
        raise SandboxError(
            f"cannot clone {public_url(url)}: the URL carries credentials; "
            "pass them as GitCredentials so they never reach .git/config"
        )


def public_url(url: str) -> str:
    """The URL without any user:password part, safe to show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def clone_failure(output: str, *, url: str, branch: str | None) -> SandboxError:
    """A clear error for a failed clone, from git's (already redacted) output."""
    where = public_url(url)
    if branch and re.search(r"Remote branch .* not found|Could not find remote branch", output):
        return SandboxError(f"cannot clone {where}: branch {branch!r} does not exist")
    if re.search(
        r"does not exist|not found|does not appear to be a git repository|"
        r"Could not read from remote|Authentication failed|could not read Username|"
        r"returned error: 40[134]",
        output,
        re.IGNORECASE,
    ):
        return SandboxError(
            f"cannot clone {where}: the repository does not exist "
            "or these credentials cannot read it"
        )
    return SandboxError(f"cannot clone {where}: {last_line(output)}")


def push_failure(output: str, *, url: str, branch: str) -> SandboxError:
    """A clear error for a failed push, from git's (already redacted) output.

    A refusal by the remote keeps the remote's reason (`PushRefused`): without it nobody can
    tell a missing permission from a repository rule.
    """
    where = public_url(url)
    if re.search(r"\[rejected\]|non-fast-forward|fetch first", output):
        return SandboxError(
            f"push of {branch!r} to {where} was rejected: the remote branch has commits "
            "this one lacks (open-swe never force-pushes)"
        )
    reason = remote_refusal(output)
    if reason is not None:
        return PushRefused(
            f"push of {branch!r} to {where} was refused by the remote: {reason}", reason
        )
    if re.search(r"Authentication failed|could not read Username|403|denied", output):
        return SandboxError(f"push of {branch!r} to {where} failed: the credentials were refused")
    return SandboxError(f"push of {branch!r} to {where} failed: {last_line(output)}")


def remote_refusal(output: str) -> str | None:
    """Why the remote refused a push: its `remote:` messages, then the rejection's reason.

    None when no ref was refused by the remote. Never carries a token or URL credentials.
    """
    lines = [_TERMINAL_CODES.sub("", line).strip() for line in output.splitlines()]
    rejected = [m.group("why").strip() for line in lines if (m := _REMOTE_REJECTED.match(line))]
    if not rejected:
        return None
    said = []
    for line in lines:
        match = _REMOTE_LINE.match(line)
        text = match.group("text").strip() if match else ""
        if text and not _PROGRESS.match(text) and text not in rejected and text not in said:
            said.append(text)
    reason = "; ".join(said)
    reason += f" ({rejected[0]})" if said else rejected[0]
    return _without_credentials(reason)[:MAX_REASON_CHARS]


def _without_credentials(text: str) -> str:
    return redact(text)  # the one policy: token shapes and URL user info


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "git failed without a message"


def identity_args(author: GitIdentity) -> list[str]:
    return ["-c", f"user.name={author.name}", "-c", f"user.email={author.email}"]


def identity_env(author: GitIdentity) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_COMMITTER_NAME": author.name,
        "GIT_COMMITTER_EMAIL": author.email,
    }


def shell(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def stage_all_command() -> str:
    """Stage everything; exit 0 when nothing is staged, 1 when there is something to commit."""
    return (
        shell(["git", *HARDENING, "add", "-A"])
        + " && "
        + shell(["git", *HARDENING, "diff", "--cached", "--quiet"])
    )


def commit_command(message: str, author: GitIdentity) -> str:
    """Commit what is staged and print the new sha. The message is kept verbatim (a line
    starting with # is not a comment here), so trailers such as Co-authored-by survive."""
    commit = ["git", *HARDENING, *identity_args(author), "commit", "-q", "--no-verify"]
    commit += ["--cleanup=whitespace", "-m", message]
    return shell(commit) + " && " + shell(["git", "rev-parse", "HEAD"])


def branch_sha_command(branch: str) -> str:
    return shell(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"])
