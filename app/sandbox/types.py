"""What callers of a sandbox name without holding one: errors, results, network policies,
credentials and the provider interface.

Split from app.sandbox.base (the `Sandbox` class is a deepagents backend) so that code which
only hands sandboxes around (a web-only node, the fault classifier, the run lifecycle) does
not import deepagents and, through it, LangChain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from app.sandbox.output import Clipped

if TYPE_CHECKING:
    from app.sandbox.base import Sandbox

DEFAULT_OUTPUT_LIMIT = 30_000  # characters kept from one command's output (head + tail)
# deepagents' file tools (read, ls, grep, glob) parse JSON printed by commands through
# execute(); a read page is up to 500 KiB of text, i.e. ~1 M characters once JSON-escaped.
# Cutting that would break the tool, so execute() keeps more (the agent middleware evicts
# large results on its own).
TOOL_OUTPUT_LIMIT = 1_200_000
# Given to every command (a caller's env may override it). Python trusts a cached .pyc whose
# recorded source mtime (whole seconds) and size match, so a module edited to the same size
# within the second it was last imported would run stale: no bytecode cache, no stale code.
COMMAND_ENV: Mapping[str, str] = {"PYTHONDONTWRITEBYTECODE": "1"}
# Per-file error upload_files/download_files report for a path outside work_dir;
# read_file/write_file turn it into PathOutsideSandbox.
OUTSIDE_WORK_DIR = "permission_denied: outside the sandbox work directory"

# How much network a sandbox's commands get. none: no command; setup: only commands that ask
# for it (the repository's setup script), agent commands and tests never; always: every command.
NetworkPolicy = Literal["none", "setup", "always"]
NETWORK_POLICIES: tuple[NetworkPolicy, ...] = ("none", "setup", "always")  # least first


def capped(wanted: NetworkPolicy, ceiling: NetworkPolicy) -> NetworkPolicy:
    """The lesser of a repository's wish and the server's ceiling."""
    return min(wanted, ceiling, key=NETWORK_POLICIES.index)


def granted(policy: NetworkPolicy, networked: bool) -> bool:
    """Whether a command gets the network under `policy`; `networked`: it asked for it."""
    return policy == "always" or (policy == "setup" and networked)


class SandboxError(Exception):
    """A sandbox operation failed in a way the caller should report (message is user-facing)."""


class SandboxGone(SandboxError):
    """The sandbox no longer exists (deleted, archived or lost); callers may recreate it."""


class PathOutsideSandbox(SandboxError):
    """A path resolves outside the sandbox's work directory."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str  # stdout and stderr interleaved, cleaned (ANSI stripped, truncated, redacted)
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class RawResult:
    """What a backend's primitive returns before the base class cleans it."""

    exit_code: int
    output: bytes | str | Clipped  # Clipped: the backend dropped the middle while streaming
    timed_out: bool = False


@dataclass(frozen=True)
class GitIdentity:
    name: str
    email: str


@dataclass(frozen=True)
class GitCredentials:
    """HTTPS credentials for one clone or push; GitHub: username x-access-token + token."""

    password: str = field(repr=False)
    username: str = "x-access-token"


class SandboxProvider(ABC):
    """Creates sandboxes and finds them again by labels (e.g. repo, issue, run)."""

    #: One line for the start-up log saying which isolation is in effect.
    isolation: str = ""
    #: False when code in its sandboxes runs on this machine without confinement.
    confined: bool = True

    @abstractmethod
    def acquire(self, labels: Mapping[str, str]) -> Sandbox:
        """Reuse a live sandbox carrying exactly these labels, else create one."""

    @abstractmethod
    def find(self, labels: Mapping[str, str]) -> list[Sandbox]:
        """Sandboxes whose labels include these (for reuse and for sweeping leaks)."""
