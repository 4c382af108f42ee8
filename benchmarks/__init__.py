"""open-swe's benchmarks: `python -m benchmarks` (or `make bench`); `--quick` for a smoke run.

Machines here are noisy, so every figure is printed beside a baseline measured in the same run,
subjects and baselines are interleaved in rotating blocks, and medians and p95 are quoted, never
means. See benchmarks/__main__.py for the options.
"""
