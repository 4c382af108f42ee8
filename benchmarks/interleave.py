"""Running subjects interleaved: warm-up, then rounds of short blocks in rotating order.

On a shared machine the load drifts over seconds; blocks of a few samples taken in turn (ABAB,
not AAAA..BBBB) expose every subject to the same drift. The order rotates each round so no
subject always runs right after the same neighbour.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def _nothing() -> None:
    pass


@dataclass
class Subject:
    """One thing to time. `measure()` does it once and returns the elapsed nanoseconds;
    `settle()` runs untimed after each block (e.g. lets background work finish)."""

    name: str
    measure: Callable[[], int]
    settle: Callable[[], None] = field(default=_nothing)


def rotation(subjects: Sequence[Subject], round_index: int) -> list[Subject]:
    shift = round_index % len(subjects)
    return [*subjects[shift:], *subjects[:shift]]


def run_interleaved(
    subjects: Sequence[Subject], *, rounds: int, block: int, warmup: int
) -> dict[str, list[int]]:
    """Samples (ns) per subject name: `rounds * block` each, after `warmup` untimed ones."""
    if not subjects:
        raise ValueError("no subjects")
    if rounds < 1 or block < 1 or warmup < 0:
        raise ValueError("rounds and block must be >= 1, warmup >= 0")
    for subject in subjects:
        for _ in range(warmup):
            subject.measure()
        subject.settle()
    samples: dict[str, list[int]] = {subject.name: [] for subject in subjects}
    for round_index in range(rounds):
        for subject in rotation(subjects, round_index):
            gc.disable()  # a collection in the driver is noise, not the subject's cost
            try:
                samples[subject.name].extend(subject.measure() for _ in range(block))
            finally:
                gc.enable()
            subject.settle()
    return samples
