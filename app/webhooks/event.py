"""A webhook delivery as the rest of the code sees it: verified, parsed, with typed helpers.

Pure: no I/O. Payloads are signed by GitHub but their shape still varies between events and
over time, so every helper returns None for a missing or mistyped field instead of raising.

What no GitHub payload holds and no database column can store is refused whole by `parse`
(the answer is 400): nesting deeper than MAX_DEPTH, integers beyond 64 bits, NaN or infinite
numbers, NUL characters (PostgreSQL text and JSON refuse them), unpaired surrogates (they have
no UTF-8: no database, GitHub API call or log line takes them). A value of the right kind but
outside what GitHub sends for that field (an issue number past 2^31, a repository name with
spaces) makes its helper return None, so the delivery is ignored like any other that does not
concern us.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SIGNATURE_PREFIX = "sha256="
TRIGGER_LABELS = ("open-swe", "open-swe-auto")
MAX_DEPTH = 32  # GitHub's payloads nest 7 levels at most
INT64 = 2**63  # JSON integers must fit a signed 64-bit integer (PostgreSQL bigint)
MAX_ID = INT64 - 1  # ids are stored as bigint
MAX_NUMBER = 2**31 - 1  # issue, pull request and line numbers are stored as integer
# GitHub's own syntax for the names stored in columns of bounded length.
_ACTION = re.compile(r"[a-z0-9_]{1,64}")
_LOGIN = re.compile(r"[A-Za-z0-9_.-]{1,90}(?:\[bot\])?")
_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_ACCOUNT_TYPE = re.compile(r"[A-Za-z]{1,20}")
_TOO_DEEP = f"body is nested deeper than {MAX_DEPTH} levels"
# Text only holds NUL or a lone surrogate when the JSON escapes one: \u0000, \uD800-\uDFFF.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

TextSource = Literal["issue_comment", "review_comment", "review"]
# Event name -> (payload key holding the text, what kind of text it is).
_TEXT_NODES: dict[str, tuple[str, TextSource]] = {
    "issue_comment": ("comment", "issue_comment"),
    "pull_request_review_comment": ("comment", "review_comment"),
    "pull_request_review": ("review", "review"),
}


class PayloadError(ValueError):
    """The body is not a JSON object in UTF-8, or holds what no GitHub payload does."""


def sign(body: bytes, secret: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body` (also used by tests)."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: Sequence[bytes]) -> bool:
    """True if `header` is a valid sha256 signature of the raw `body` under any of `secrets`.

    Every secret is compared (no early exit), each in constant time, so timing reveals neither
    the signature nor which secret matched.
    """
    if not header or not header.startswith(SIGNATURE_PREFIX) or not secrets:
        return False
    given = header.encode("ascii", "replace")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(body, secret).encode(), given)
    return matched


@dataclass(frozen=True, slots=True)
class Comment:
    """The text-bearing part of a delivery: an issue comment, a review comment or a review."""

    id: int
    body: str
    author: str
    source: TextSource
    path: str | None = None  # review comments only
    line: int | None = None
    thread_root: int | None = None  # review comments: the thread's first comment (replies go there)


@dataclass(frozen=True, slots=True)
class Event:
    """One delivery: its name (`X-GitHub-Event`), id (`X-GitHub-Delivery`) and JSON payload."""

    name: str
    delivery_id: str
    payload: Mapping[str, Any]

    @classmethod
    def parse(cls, name: str, delivery_id: str, body: bytes) -> Event:
        """Parse a raw body; raises PayloadError for non-UTF-8, invalid JSON, a non-object, or
        a value no GitHub payload holds (see the module's docstring)."""
        try:
            payload = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError as exc:
            raise PayloadError("body is not valid UTF-8") from exc
        except RecursionError:  # the C decoder's own guard, far beyond MAX_DEPTH
            raise PayloadError(_TOO_DEEP) from None
        except PayloadError:
            raise
        except ValueError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise PayloadError("body is not a JSON object")
        _check_values(payload, strings=_SUSPECT_ESCAPE.search(body) is not None)
        return cls(name, delivery_id, payload)

    # Generic access ---------------------------------------------------------------------

    def get(self, *path: str) -> Any:
        """The value at `path` in the payload, or None if any step is missing or not an object."""
        node: Any = self.payload
        for key in path:
            if not isinstance(node, Mapping):
                return None
            node = node.get(key)
        return node

    def _str(self, *path: str) -> str | None:
        value = self.get(*path)
        return value if isinstance(value, str) else None

    def _int(self, *path: str, maximum: int = MAX_ID) -> int | None:
        """A positive integer up to `maximum` (ids and numbers on GitHub start at 1)."""
        value = self.get(*path)
        # bool is an int in Python; GitHub ids never are.
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        return value if 1 <= value <= maximum else None

    def _name(self, pattern: re.Pattern[str], *path: str) -> str | None:
        """A string in GitHub's syntax for that kind of name (which bounds its length)."""
        value = self._str(*path)
        return value if value is not None and pattern.fullmatch(value) else None

    # Helpers ----------------------------------------------------------------------------

    @property
    def action(self) -> str | None:
        return self._name(_ACTION, "action")

    @property
    def key(self) -> tuple[str, str | None]:
        """(event, action): what routing is keyed on."""
        return self.name, self.action

    @property
    def installation_id(self) -> int | None:
        return self._int("installation", "id")

    @property
    def repo(self) -> str | None:
        """The repository's full name, `owner/name`."""
        return self._name(_REPO, "repository", "full_name")

    @property
    def sender(self) -> str | None:
        return self._name(_LOGIN, "sender", "login")

    @property
    def is_bot(self) -> bool:
        """A bot sent it (any App, this one included): never act on it, to avoid loops."""
        login = self._str("sender", "login") or ""
        return self._str("sender", "type") == "Bot" or login.endswith("[bot]")

    @property
    def issue_number(self) -> int | None:
        """The issue or pull request number the delivery is about."""
        return self._int("issue", "number", maximum=MAX_NUMBER) or self._int(
            "pull_request", "number", maximum=MAX_NUMBER
        )

    @property
    def is_pull_request(self) -> bool:
        if self.get("pull_request") is not None:
            return True
        return isinstance(self.get("issue", "pull_request"), Mapping)

    @property
    def thread(self) -> str | None:
        """`owner/repo#N`: the conversation a run or command belongs to."""
        if self.repo is None or self.issue_number is None:
            return None
        return f"{self.repo}#{self.issue_number}"

    @property
    def label(self) -> str | None:
        """The label added or removed (issues.labeled / unlabeled)."""
        return self._str("label", "name")

    @property
    def comment(self) -> Comment | None:
        """The comment or review whose text may address the bot, if the delivery carries one."""
        where = _TEXT_NODES.get(self.name)
        if where is None:
            return None
        node, source = where
        comment_id = self._int(node, "id")
        if comment_id is None:
            return None
        line = self._int(node, "line", maximum=MAX_NUMBER)
        return Comment(
            id=comment_id,
            body=self._str(node, "body") or "",
            author=self._name(_LOGIN, node, "user", "login") or self.sender or "",
            source=source,
            path=self._str(node, "path"),
            line=line,
            thread_root=(
                (self._int(node, "in_reply_to_id") or comment_id)
                if source == "review_comment"
                else None
            ),
        )

    @property
    def repositories(self) -> list[tuple[int, str]]:
        """(id, full name) of the repos an installation event adds (or lists, when created)."""
        key = "repositories_added" if self.name == "installation_repositories" else "repositories"
        return _repo_list(self.get(key))

    @property
    def repositories_removed(self) -> list[tuple[int, str]]:
        return _repo_list(self.get("repositories_removed"))

    @property
    def account(self) -> tuple[str | None, str | None]:
        """(login, type) of the account an installation belongs to."""
        return self._name(_LOGIN, "installation", "account", "login"), self._name(
            _ACCOUNT_TYPE, "installation", "account", "type"
        )


def _no_constant(name: str) -> Any:
    raise PayloadError(f"body is not valid JSON: {name} is not a JSON number")


def _check_values(payload: dict[str, Any], *, strings: bool) -> None:
    """Refuse what no GitHub payload holds and no column can store; one pass, no recursion.

    json.loads already turned 1e999 into inf and joined escaped surrogate pairs; `strings`
    also looks for NUL and lone surrogates in keys and strings.
    """
    pending: list[tuple[Any, int]] = [(payload, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(_TOO_DEEP)
        if isinstance(node, dict):
            if strings:
                for key in node:
                    _check_text(key)
            values = node.values()
        else:
            values = node
        for value in values:
            kind = type(value)
            if kind is dict or kind is list:
                pending.append((value, depth + 1))
            elif kind is int:
                if not -INT64 <= value < INT64:
                    raise PayloadError("body holds an integer beyond 64 bits")
            elif kind is float:
                if not math.isfinite(value):
                    raise PayloadError("body holds a number too large for a double")
            elif strings and kind is str:
                _check_text(value)


def _check_text(text: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    if found.group() == "\0":
        raise PayloadError("body holds a NUL character (\\u0000)")
    raise PayloadError(f"body holds an unpaired surrogate (\\u{ord(found.group()):04x})")


def _repo_list(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        return []
    repos = []
    for item in value:
        if not isinstance(item, Mapping):
            continue
        repo_id, full_name = item.get("id"), item.get("full_name")
        if (
            isinstance(repo_id, int)
            and not isinstance(repo_id, bool)
            and 1 <= repo_id <= MAX_ID
            and isinstance(full_name, str)
            and _REPO.fullmatch(full_name)
        ):
            repos.append((repo_id, full_name))
    return repos
