"""Every function that runs on untrusted text stays linear on every adversarial family.

Not a speed test (speed lives in benchmarks/untrusted_text.py): each function is timed on n and
4n characters of each family, best of several runs so load on the machine cannot fake a
failure, and the test fails when the ratio says quadratic. Linear work gives about 4, quadratic
about 16; the bound is 12 (cmark-gfm itself takes about 7 times as long on 64 KiB of emphasis
delimiters or `[` as on 16 KiB, as its working set outgrows the CPU caches, and twice as long
per doubling beyond). The sizes stay within GitHub's 65,536
characters so the parsers see all of it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks.untrusted_text import FAMILIES, FUNCTIONS, best_of

SMALL = 16 * 1024
LARGE = 4 * SMALL
MAX_RATIO = 12
FLOOR_NS = 200_000  # below 0.2 ms a ratio is timer noise: such a time passes outright


def growth(function: Callable[[str], object], make: Callable[[int], str]) -> float:
    """Time on 4n characters over time on n (the best of several runs each)."""
    small, large = make(SMALL), make(LARGE)
    function(small)  # warm caches (regexes, imports) before timing
    large_ns = best_of(function, large, repeat=5)
    if large_ns < FLOOR_NS:
        return 1.0
    return large_ns / max(best_of(function, small, repeat=5), 1)


@pytest.mark.slow
@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_goes_quadratic_on_any_family(function: str) -> None:
    ratios = {family: growth(FUNCTIONS[function], make) for family, make in FAMILIES.items()}
    worst = max(ratios, key=lambda family: ratios[family])
    for family in ratios:
        for _ in range(3):  # measure again before blaming: a burst of load, not the code
            if ratios[family] <= MAX_RATIO:
                break
            ratios[family] = min(ratios[family], growth(FUNCTIONS[function], FAMILIES[family]))
    failing = {family: round(r, 1) for family, r in ratios.items() if r > MAX_RATIO}
    assert not failing, f"{function} grows faster than linear on {failing} (worst {worst})"


def quadratic(text: str) -> None:
    """A deliberately quadratic function: the check must catch it."""
    for index in range(0, len(text), 8):
        text.count(text[index], 0, index)


def test_the_check_catches_a_quadratic_function() -> None:
    # The best of three: a burst of load on the small input only ever hides growth.
    ratios = [growth(quadratic, FAMILIES["many <"]) for _ in range(3)]
    assert max(ratios) > MAX_RATIO, ratios
