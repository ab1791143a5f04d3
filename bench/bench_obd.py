"""Benchmark: OBD designs. Goal (issue: OBD): BOIN12, 10,000 trials, 5 tiers, N = 36 in at most 0.2 s.

    python bench/bench_obd.py
"""

from __future__ import annotations


import doseesc
from _timing import best_of


def main():
    five = doseesc.Scenario(true_tox=[0.05, 0.10, 0.20, 0.30, 0.45], true_eff=[0.2, 0.4, 0.6, 0.6, 0.6],
                            association=1.5)
    for d in (doseesc.BOIN12(5, max_n=36), doseesc.BOINET(5, max_n=36),
              doseesc.OBDPick(doseesc.ThreePlusThree(5), expansion=3)):
        t = best_of(lambda: doseesc.simulate(d, five, 10_000, rng=1))
        print(f"{d.label:>32}, 10,000 trials, 5 tiers: {1e3 * t:7.1f} ms")
    three = doseesc.Scenario(true_tox=[0.05, 0.15, 0.40], true_eff=[0.2, 0.6, 0.65])
    for n in (18, 24):
        d = doseesc.BOIN12(3, max_n=n)
        t = best_of(lambda: doseesc.exact(d, three, max_states=10_000_000), repeat=1)
        print(f"exact BOIN12, 3 tiers, N = {n}: {t:.2f} s")
    print("goal: BOIN12 10,000 trials, 5 tiers, N = 36 <= 200 ms")


if __name__ == "__main__":
    main()
