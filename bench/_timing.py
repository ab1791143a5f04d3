"""Shared timing helper of the benchmark scripts.

Every timed call is a first run: the Monte Carlo engine's state graphs (doseesc/engines/chain.py), which it keeps
for recent designs and shares between equal ones, are forgotten before each call, so a fresh design object works
its graph out again, as in a new process."""

from __future__ import annotations

import importlib
import time


def forget_graphs() -> None:
    """Forget the state graphs the Monte Carlo engine keeps for recent designs."""
    importlib.import_module("doseesc.engines.chain")._RECENT.clear()


def cpu_seconds(fn, repeat: int = 5) -> float:
    """Best process CPU time (all threads) of ``repeat`` calls after one warm-up call, in seconds. ``fn`` itself
    forgets the graphs where it means to time a first run."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def best_of(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeat):
        forget_graphs()
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
            forget_graphs()
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [min(t) for t in times]
