"""Where a Daytona push may go: the URL a clone came from, never what .git/config says now.

The daemon pushes to `origin` as the repository's own .git/config describes it, and the agent
can edit that file (remote.origin.url/pushurl, url.*.insteadOf, include.path): the token
would then go to a host of its choosing. So the clone URL is recorded (in memory and in a
sandbox label, which nothing inside the sandbox can change), the config is put back before a
push with credentials, and the file as the daemon will read it is checked afterwards.
"""

from __future__ import annotations

import hashlib
import re
import shlex

ORIGIN_LABEL_PREFIX = "open-swe-origin-"  # + a digest of the repository's path; value: its URL

_SECTION = re.compile(r'\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\\n]|\\.)*)")?\s*\]\s*(?:[#;].*)?$')
_ENTRY = re.compile(r"([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*?))?\s*$")
_PLAIN_VALUE = re.compile(r'[^"\\#;]*')


def origin_label(path: str) -> str:
    """The label recording where the clone at `path` came from."""
    return ORIGIN_LABEL_PREFIX + hashlib.sha256(path.encode()).hexdigest()[:16]


def reset_script(url: str) -> str:
    """Shell that points origin back at `url` and drops every way of redirecting it. Run with
    --local only, so git does not follow includes while reading."""
    quoted = shlex.quote(url)
    return "\n".join(
        [
            "git config --local --unset-all remote.origin.pushurl",
            "git config --local --remove-section include 2>/dev/null",
            "git config --local --name-only --get-regexp '^(url|includeif)\\.' "
            # --name-only lowercases, --remove-section does not match case-insensitively
            "| sed -e 's/\\.[^.]*$//' -e 's/^includeif\\./includeIf./' | sort -u "
            '| while IFS= read -r section; do git config --local --remove-section "$section"; done',
            f"git config --local --replace-all remote.origin.url {quoted}",
            "true",
        ]
    )


def config_problem(text: str, url: str) -> str | None:
    """Why this .git/config could send a push anywhere but `url` (None when it cannot).

    Strict on purpose: anything not understood is a problem, as git may read it differently.
    """
    section: tuple[str, str | None] | None = None
    origin_urls: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                return f"line {number} is not a section header git config would write"
            name, sub = match.group(1).lower(), match.group(2)
            if "." in name:
                return f"section [{match.group(1)}] uses the old subsection form"
            if name in ("include", "includeif"):
                return "it includes another config file"
            if name == "url":
                return "it rewrites URLs (url.*.insteadOf)"
            section = (name, sub)
            continue
        entry = _ENTRY.match(line)
        if section is None or entry is None or line.endswith("\\"):
            return f"line {number} is not an entry git config would write"
        if section != ("remote", "origin"):
            continue
        key, value = entry.group(1).lower(), entry.group(2)
        if key == "url" and value is not None and _PLAIN_VALUE.fullmatch(value):
            origin_urls.append(value)
        elif key == "url":
            return "remote.origin.url is written in a form this check does not read"
        elif key != "fetch":
            return f"remote.origin.{key} is set"
    if origin_urls != [url]:
        return "remote.origin.url is not the URL it was cloned from"
    return None
