"""Summaries and tables: medians, p95 and ratios to a baseline. Pure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    name: str
    n: int
    median_ms: float
    p95_ms: float


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `fraction` of them at or below."""
    if not samples:
        raise ValueError("no samples")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    ordered = sorted(samples)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def summarize(name: str, samples_ns: Sequence[int]) -> Summary:
    if not samples_ns:
        raise ValueError(f"{name}: no samples")
    millis = [s / 1e6 for s in samples_ns]
    return Summary(name, len(millis), statistics.median(millis), percentile(millis, 0.95))


def render_table(
    title: str, baseline: Summary, rows: Sequence[Summary], *, unit: str = "ms"
) -> str:
    """An aligned table: the baseline first, then each row with its ratio to the baseline."""
    header = ("name", "n", f"median {unit}", f"p95 {unit}", "x baseline", f"+{unit} vs baseline")
    lines = [header]
    for row in (baseline, *rows):
        lines.append(
            (
                row.name,
                str(row.n),
                f"{row.median_ms:.3f}",
                f"{row.p95_ms:.3f}",
                f"{row.median_ms / baseline.median_ms:.2f}",
                f"{row.median_ms - baseline.median_ms:+.3f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:
        first = line[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    rule = "-" * len(fmt(header))
    return "\n".join([title, fmt(header), rule, *(fmt(line) for line in lines[1:])])
