"""Benchmark: 3+3 Monte Carlo trials per second and exact evaluation time, 3 to 8 tiers.

Goals (issue: foundation): 10,000 3+3 trials in at most 20 ms; exact 3+3 with
6 tiers in at most 20 ms, on a 2-core machine. Run:

    python bench/bench_three_plus_three.py
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
    print(f"{'tiers':>5} {'variant':>14} {'MC 10k (ms)':>12} {'trials/s':>12} {'exact (ms)':>11} {'states':>7}")
    for k in range(3, 9):
        truth = doseesc.Scenario(true_tox=list(np.linspace(0.05, 0.6, k)))
        for de in (False, True):
            d = doseesc.ThreePlusThree(k, deescalation=de)
            mc_best = best_of(lambda: doseesc.simulate(d, truth, 10_000, rng=1), repeat=7)
            ex_best = best_of(lambda: doseesc.exact(d, truth))
            states = doseesc.exact(d, truth).provenance["terminal_states"]
            print(f"{k:>5} {'de-escalation' if de else 'traditional':>14} {1e3 * mc_best:>12.1f} "
                  f"{10_000 / mc_best:>12,.0f} {1e3 * ex_best:>11.2f} {states:>7}")
    print("goals: 10,000 trials <= 20 ms; exact with 6 tiers <= 20 ms")


if __name__ == "__main__":
    main()
