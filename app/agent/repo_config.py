"""What a repository tells open-swe about itself: config file, instructions, test command.

`.open-swe.yml` at the root of the default branch (all keys optional):

    setup: |              # shell script run in the checkout before the agent starts
      pip install -e '.[dev]'
    test: python3 -m pytest -q   # the command verify runs
    network: setup        # none | setup (default) | always: which commands may use the
                          # network (capped by the server's OPEN_SWE_SANDBOX_NETWORK)
    autofix: true         # CI autofix on the pull requests open-swe opens (default true);
                          # `/open-swe autofix on|off` on a pull request overrides it

Without `test`, the command comes from AGENTS.md (a line such as "Test command: `make test`"
or "Run tests with `npm test`"), else it is detected from the files: pytest, npm test,
go test, cargo test, make test, in that order. Everything is read from the default branch,
never from the work branch, so a run cannot rewrite the rules it is judged by.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import yaml

from app.sandbox.types import NETWORK_POLICIES, NetworkPolicy

CONFIG_FILE = ".open-swe.yml"
INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md")
MAX_INSTRUCTIONS_CHARS = 20_000


class RepoConfigError(ValueError):
    """The repository's config file is invalid; the message says what to fix."""


@dataclass(frozen=True)
class RepoConfig:
    setup: str | None = None
    test: str | None = None
    network: NetworkPolicy = "setup"
    autofix: bool = True


def parse_config(text: str | None) -> RepoConfig:
    if not text or not text.strip():
        return RepoConfig()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RepoConfigError(f"{CONFIG_FILE} is not valid YAML: {exc}") from None
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise RepoConfigError(
            f"{CONFIG_FILE} must be a mapping with keys setup, test, network, autofix"
        )
    unknown = sorted(set(map(str, data)) - {"setup", "test", "network", "autofix"})
    if unknown:
        raise RepoConfigError(f"{CONFIG_FILE}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, str | None] = {}
    for key in ("setup", "test"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise RepoConfigError(f"{CONFIG_FILE}: {key} must be a string (a shell command)")
        values[key] = value.strip() or None if isinstance(value, str) else None
    autofix = data.get("autofix", True)
    if not isinstance(autofix, bool):
        raise RepoConfigError(f"{CONFIG_FILE}: autofix must be true or false")
    return RepoConfig(
        setup=values["setup"], test=values["test"], network=_network(data), autofix=autofix
    )


def _network(data: dict[object, object]) -> NetworkPolicy:
    value = data.get("network", "setup")
    for policy in NETWORK_POLICIES:
        if value == policy:
            return policy
    choices = " | ".join(NETWORK_POLICIES)
    shown = repr(value)[:40]  # the repository's text: bounded
    raise RepoConfigError(f"{CONFIG_FILE}: network must be one of {choices}, not {shown}")


_INSTRUCTED_TEST = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?(?:\*\*)?"
    r"(?:test(?:s| command)?|run(?:ning)? (?:the )?tests?(?: with)?)"
    r"(?:\*\*)?[ \t]*:?(?:\*\*)?[ \t]*`([^`\n]+)`",
    re.IGNORECASE | re.MULTILINE,
)


def instructed_test_command(text: str | None) -> str | None:
    """The first line like "Test command: `...`" or "Run tests with `...`"."""
    if not text:
        return None
    match = _INSTRUCTED_TEST.search(text)
    return match.group(1).strip() if match else None


Reader = Callable[[str], "str | None"]


def detect_test_command(paths: Sequence[str], read: Reader) -> str | None:
    """Guess the test command from the repository's files (paths relative to its root)."""
    files = set(paths)
    if _uses_pytest(files, read):
        return "python3 -m pytest -q"
    if "package.json" in files and _npm_has_tests(read("package.json")):
        return "npm test"
    if "go.mod" in files:
        return "go test ./..."
    if "Cargo.toml" in files:
        return "cargo test"
    for makefile in ("GNUmakefile", "makefile", "Makefile"):
        if makefile in files and re.search(r"^test\s*:", read(makefile) or "", re.MULTILINE):
            return "make test"
    return None


def _uses_pytest(files: set[str], read: Reader) -> bool:
    if files & {"pytest.ini", "conftest.py"}:
        return True
    markers = {
        "pyproject.toml": "[tool.pytest",
        "setup.cfg": "[tool:pytest]",
        "tox.ini": "[pytest]",
    }
    if any(name in files and marker in (read(name) or "") for name, marker in markers.items()):
        return True
    test_file = re.compile(r"(?:^|/)(?:test_[^/]*|[^/]*_test)\.py$")
    return any(test_file.search(path) for path in files)


def _npm_has_tests(text: str | None) -> bool:
    try:
        script = json.loads(text or "{}").get("scripts", {}).get("test")
    except (ValueError, AttributeError):
        return False
    return isinstance(script, str) and "no test specified" not in script
