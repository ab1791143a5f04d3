"""Benchmark: CRM. Goal (issue: CRM): 10,000 trials, 6 tiers, N = 36 in at most 0.6 s on a 2-core machine.

    python bench/bench_crm.py
"""

from __future__ import annotations


import doseesc
from _timing import best_of


def main():
    six = doseesc.Scenario(true_tox=[0.05, 0.10, 0.20, 0.30, 0.45, 0.60])
    for model in ("empiric", "logistic"):
        sk = tuple(doseesc.crm_skeleton(0.25, 0.05, 3, 6, model=model))
        # a fresh design per run: CRM remembers posterior means, and a warm memo would time a second run
        t = best_of(lambda: doseesc.simulate(doseesc.CRM(sk, 0.25, max_n=36, model=model), six, 10_000, rng=1))
        print(f"CRM ({model}), 10,000 trials, 6 tiers, N = 36: {t:.3f} s")
    four = doseesc.Scenario(true_tox=[0.1, 0.25, 0.4, 0.55])
    sk4 = tuple(doseesc.crm_skeleton(0.25, 0.05, 2, 4))
    d4 = doseesc.CRM(sk4, 0.25, max_n=24)
    t = best_of(lambda: doseesc.exact(doseesc.CRM(sk4, 0.25, max_n=24), four))
    print(f"exact CRM, 4 tiers, N = 24: {t:.3f} s ({doseesc.exact(d4, four).provenance['terminal_states']} states)")
    print("goal: CRM 10,000 trials, 6 tiers, N = 36 <= 0.6 s (R dfcrm: about 2 minutes)")


if __name__ == "__main__":
    main()
