"""Benchmark: interval designs, Monte Carlo and exact.

Goals (issue: interval designs): BOIN, 10,000 trials, 6 tiers, N = 36: at most 50 ms;
exact BOIN with 5 tiers and N = 30: at most 1 s (on a 2-core machine). Run:

    python bench/bench_interval.py
"""

from __future__ import annotations

import os
import platform

import numpy as np

import doseesc
from _timing import best_of


def main():
    print(f"doseesc {doseesc.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    six = doseesc.Scenario(true_tox=[0.05, 0.10, 0.20, 0.30, 0.45, 0.60])
    five = doseesc.Scenario(true_tox=[0.05, 0.12, 0.25, 0.40, 0.55])
    print(f"{'design':>10} {'MC 10k, 6 tiers, N=36 (ms)':>28} {'exact, 5 tiers, N=30 (s)':>26} {'states':>8}")
    for cls in (doseesc.BOIN, doseesc.Keyboard, doseesc.MTPI2, doseesc.MTPI, doseesc.TPI, doseesc.I3Plus3):
        d6 = cls(0.30, 6, max_n=36)
        d5 = cls(0.25, 5, max_n=30)
        mc = best_of(lambda: doseesc.simulate(d6, six, 10_000, rng=1))
        ex = best_of(lambda: doseesc.exact(d5, five), repeat=3)
        states = doseesc.exact(d5, five).provenance["terminal_states"]
        print(f"{d6.label:>10} {1e3 * mc:>28.1f} {ex:>26.3f} {states:>8}")
    print("goals: BOIN MC <= 50 ms; exact BOIN <= 1 s")


if __name__ == "__main__":
    main()
