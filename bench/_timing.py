"""Shared timing helper of the benchmark scripts."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
