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


def best_of_interleaved(fns, repeat: int = 9) -> list[float]:
    """Best wall time of each function in ``fns``, in seconds, calling them in turn ``repeat`` times after
    one warm-up call each: a ratio of two timings taken this way is not skewed by the machine's load
    drifting between them."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [min(t) for t in times]
