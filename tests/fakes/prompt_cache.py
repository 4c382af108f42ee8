"""The prompt cache of the fake model server, counted as Anthropic counts it.

A request is a sequence of blocks (tools, system, then each message's content blocks); a
`cache_control` mark on a block, or at the top level (automatic caching: the last block),
is a breakpoint. Reaching a breakpoint writes the prefix ending there to the cache; a read is
the longest prefix written before that ends at a breakpoint or at one of the 20 blocks before
it. Sizes are in tokens of about 4 characters, like the server's other estimates.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

LOOKBACK_BLOCKS = 20  # how far before a breakpoint Anthropic looks for a cached prefix


@dataclass
class PromptCache:
    usage: list[tuple[int, int]] = field(default_factory=list)  # (read, written) per request
    _written: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def use(self, body: dict[str, Any]) -> tuple[int, int]:
        """(tokens read from, tokens written to) the cache by this request."""
        digests, tokens, marks = prefixes(body)
        with self._lock:
            read = max(
                (
                    tokens[j]
                    for k in marks
                    for j in range(max(k - LOOKBACK_BLOCKS, 0), k + 1)
                    if digests[j] in self._written
                ),
                default=0,
            )
            self._written.update(digests[k] for k in marks)
            use = (read, max(tokens[marks[-1]] - read, 0) if marks else 0)
            self.usage.append(use)
        return use


def prefixes(body: dict[str, Any]) -> tuple[list[str], list[int], list[int]]:
    """For each block in order: a digest of the prefix ending there and its size in tokens;
    and the indexes of the breakpoints."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else system or []
    for message in body.get("messages", []):
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks += [{"role": message.get("role"), **part} for part in parts or []]
    digests, tokens, marks = [], [], []
    digest, chars = hashlib.sha256(), 0
    for index, block in enumerate(blocks):
        unmarked = {k: v for k, v in block.items() if k != "cache_control"}
        encoded = json.dumps(unmarked, sort_keys=True)
        digest.update(encoded.encode())
        chars += len(encoded)
        digests.append(digest.copy().hexdigest())
        tokens.append(max(1, chars // 4))
        if block.get("cache_control"):
            marks.append(index)
    if body.get("cache_control") and blocks:  # automatic caching: up to the last block
        marks.append(len(blocks) - 1)
    return digests, tokens, sorted(set(marks))
