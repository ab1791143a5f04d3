"""Benchmark: escalation paths. Goal (issue: paths): BOIN, 6 tiers, 3 cohorts of 3 from the start, <= 0.1 s.

    python bench/bench_paths.py
"""

from __future__ import annotations


import doseesc
from _timing import best_of


def main():
    six = doseesc.Scenario(true_tox=[0.05, 0.10, 0.20, 0.30, 0.45, 0.60])
    d = doseesc.BOIN(0.30, 6, max_n=36)
    for k in (3, 4, 5):
        t = best_of(lambda: doseesc.paths(d, k, scenario=six), repeat=3 if k > 3 else 7)
        print(f"BOIN, 6 tiers, {k} cohorts of 3 from the start: {doseesc.paths(d, k).n_nodes:>6} nodes, "
              f"{1e3 * t:8.1f} ms (with path probabilities)")
    t = best_of(lambda: doseesc.paths(doseesc.ThreePlusThree(6), 3))
    print(f"3+3, 6 tiers, 3 cohorts: {1e3 * t:.1f} ms")
    print("goal: BOIN, 6 tiers, 3 cohorts <= 100 ms")


if __name__ == "__main__":
    main()
