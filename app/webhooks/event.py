"""A webhook delivery as the rest of the code sees it: verified, parsed, with typed helpers.

Pure: no I/O. Payloads are signed by GitHub but their shape still varies between events and
over time, so every helper returns None for a missing or mistyped field instead of raising.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SIGNATURE_PREFIX = "sha256="
TRIGGER_LABELS = ("open-swe", "open-swe-auto")

TextSource = Literal["issue_comment", "review_comment", "review"]
# Event name -> (payload key holding the text, what kind of text it is).
_TEXT_NODES: dict[str, tuple[str, TextSource]] = {
    "issue_comment": ("comment", "issue_comment"),
    "pull_request_review_comment": ("comment", "review_comment"),
    "pull_request_review": ("review", "review"),
}


class PayloadError(ValueError):
    """The body is not a JSON object in UTF-8."""


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
        """Parse a raw body; raises PayloadError for non-UTF-8, invalid JSON or a non-object."""
        try:
            payload = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise PayloadError("body is not valid UTF-8") from exc
        except ValueError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise PayloadError("body is not a JSON object")
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

    def _int(self, *path: str) -> int | None:
        value = self.get(*path)
        # bool is an int in Python; GitHub ids never are.
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    # Helpers ----------------------------------------------------------------------------

    @property
    def action(self) -> str | None:
        return self._str("action")

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
        return self._str("repository", "full_name")

    @property
    def sender(self) -> str | None:
        return self._str("sender", "login")

    @property
    def is_bot(self) -> bool:
        """A bot sent it (any App, this one included): never act on it, to avoid loops."""
        login = self.sender or ""
        return self._str("sender", "type") == "Bot" or login.endswith("[bot]")

    @property
    def issue_number(self) -> int | None:
        """The issue or pull request number the delivery is about."""
        return self._int("issue", "number") or self._int("pull_request", "number")

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
        line = self._int(node, "line")
        return Comment(
            id=comment_id,
            body=self._str(node, "body") or "",
            author=self._str(node, "user", "login") or self.sender or "",
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
        return self._str("installation", "account", "login"), self._str(
            "installation", "account", "type"
        )


def _repo_list(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        return []
    repos = []
    for item in value:
        if not isinstance(item, Mapping):
            continue
        repo_id, full_name = item.get("id"), item.get("full_name")
        if isinstance(repo_id, int) and isinstance(full_name, str):
            repos.append((repo_id, full_name))
    return repos
