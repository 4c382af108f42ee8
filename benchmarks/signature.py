"""Signature verification of a 1 MiB body against `hmac.new` alone: the overhead is the HMAC.

`verify_signature` checks every configured secret (no early exit, so timing reveals nothing),
so during a secret rotation it costs two HMACs; with one secret it should match the baseline.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable

from app.webhooks.event import sign, verify_signature
from benchmarks.interleave import Subject, run_interleaved
from benchmarks.stats import Summary, summarize

BODY_BYTES = 1024 * 1024
BASELINE = "hmac.new(secret, body, sha256) alone"
CURRENT, PREVIOUS = b"current-webhook-secret", b"previous-webhook-secret"


def _timed(call: Callable[[], object], expect: object) -> Callable[[], int]:
    def measure() -> int:
        start = time.perf_counter_ns()
        result = call()
        elapsed = time.perf_counter_ns() - start
        if result != expect:
            raise AssertionError(f"unexpected result {result!r}")
        return elapsed

    return measure


def run(*, rounds: int, block: int, warmup: int) -> tuple[str, Summary, list[Summary]]:
    body = random.Random(2).randbytes(BODY_BYTES)  # fixed content: same work every run
    header = sign(body, CURRENT)
    expected_digest = header.removeprefix("sha256=")
    subjects = [
        Subject(
            BASELINE,
            _timed(lambda: hmac.new(CURRENT, body, hashlib.sha256).hexdigest(), expected_digest),
        ),
        Subject(
            "verify_signature, 1 secret",
            _timed(lambda: verify_signature(body, header, [CURRENT]), True),
        ),
        Subject(
            "verify_signature, 2 secrets (rotation)",
            _timed(lambda: verify_signature(body, header, [CURRENT, PREVIOUS]), True),
        ),
    ]
    samples = run_interleaved(subjects, rounds=rounds, block=block, warmup=warmup)
    rows = [summarize(s.name, samples[s.name]) for s in subjects[1:]]
    title = "Signature verification of a 1 MiB body (X-Hub-Signature-256)"
    return title, summarize(BASELINE, samples[BASELINE]), rows
