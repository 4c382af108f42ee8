"""The one redaction policy, for logs, model input, sandbox output and text posted on GitHub.

Three things are redacted, everywhere:
- known values (configured secrets, tokens handed out at run time) in every spelling a tool may
  print them: as is, URL-encoded (both ways) and, for a multi-line secret such as a PEM key,
  line by line;
- anything shaped like a token even when nobody told us its value: GitHub tokens (`ghp_`,
  `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`) and model keys (`sk-...`, `sk-ant-...`);
- credentials inside URLs (`https://user:token@host` keeps the host, loses the user info).

Longest known form first, so a secret containing another is replaced whole. Linear in the text
for a given set of secrets: substring search per form, possessive patterns for the shapes.
`app.sandbox.output` adds the cut-aware part for streamed output: a secret straddling a clip.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
#: Secrets learned at run time (installation tokens, minted hourly per repository) a redactor
#: keeps; the oldest go first, long expired, so a server running for months stays fast.
MAX_LEARNED_SECRETS = 4096
# A multi-line secret (a PEM key) is also redacted line by line when a line is this long.
MIN_SECRET_LINE = 16

TOKEN_SHAPES = re.compile(
    # The first letter, then "not after a word character" (a leading \b would be tried at
    # every position; a charset lets the regex engine skip ahead).
    r"[gs](?<!\w[gs])(?:(?<=g)h[pousr]_[A-Za-z0-9_.-]{16,}+|(?<=g)ithub_pat_[A-Za-z0-9_]{16,}+"
    r"|(?<=s)k-[A-Za-z0-9_-]{16,}+)"
)
_URL_USERINFO = re.compile(r"://[^/\s@]++@")


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Every spelling of each secret to redact, longest first (so a longer form wins)."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.update({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})
        if "\n" in secret:  # a PEM key may be printed in part, one line at a time
            forms.update(
                line.strip() for line in secret.splitlines() if len(line.strip()) >= MIN_SECRET_LINE
            )
    return sorted(forms, key=len, reverse=True)


def redact(text: str, forms: Iterable[str] = ()) -> str:
    """`text` with every form (from `secret_forms`), token shape and URL credential redacted."""
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    text = _URL_USERINFO.sub(f"://{REDACTED}@", text)
    return TOKEN_SHAPES.sub(REDACTED, text)


class Redactor:
    """The policy with its secrets: fixed ones, and ones learned while running (thread-safe).

    Call it on a string; `scrub` also walks dicts, lists and tuples (a structlog event, a
    message's content blocks).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._fixed = {s for s in secrets if s}
        self._learned: dict[str, None] = {}  # insertion-ordered: the oldest is dropped first
        self._lock = threading.Lock()  # tokens are minted in worker threads
        self._forms = secret_forms(self._fixed)

    @property
    def forms(self) -> list[str]:
        return self._forms

    def add(self, secret: str) -> None:
        with self._lock:
            if not secret or secret in self._fixed or secret in self._learned:
                return
            self._learned[secret] = None
            while len(self._learned) > MAX_LEARNED_SECRETS:
                del self._learned[next(iter(self._learned))]
            self._forms = secret_forms({*self._fixed, *self._learned})

    def __call__(self, text: str) -> str:
        return redact(text, self._forms)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self._forms)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        return value
