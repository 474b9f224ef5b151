"""What the benchmarks share: timing. (The anny cache and the pack import are in
``scripts/devpack.py``, shared with the tests.)

Every benchmark times its figure and its named reference side by side in one process and
quotes medians, since these machines are noisy.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, list[float], object]:
    """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones
    (first-call costs: lazy initialisation, the allocator growing); also every call's
    seconds and the last result. The previous result is freed before each call."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        out = None
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


def timed_side_by_side(fns: dict[str, Callable[[], object]], repeats: int) -> tuple[dict, dict]:
    """Time each function ``repeats`` times, interleaved (one call of each per round), so a
    change in the machine's load hits them all alike. One untimed warm-up call each first.
    Returns the warm-up results and the seconds of each call, per name."""
    results = {name: fn() for name, fn in fns.items()}
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()  # the result is dropped at once: one output at a time in memory
            times[name].append(time.perf_counter() - start)
    return results, times
