"""Benchmark: TITE designs in the calendar engine. Goals (issue 8): 10,000 trials, 5 tiers, N = 30: TITE-CRM at
most 2 s, TITE-BOIN at most 1 s (2-core machine).

    python bench/bench_tite.py

Calendar: Poisson accrual of 2 patients a month, 28-day DLT window (uniform time to DLT, as Cheung & Chappell
2000 and dfcrm ``titesim``), no manufacturing delay: about two patients pending at each decision.
"""

from __future__ import annotations

from _timing import best_of

import doseesc


def main():
    five = doseesc.Scenario(true_tox=[0.05, 0.12, 0.25, 0.40, 0.55], target=0.25)
    cal = doseesc.Calendar(accrual_rate=2, dlt_window_days=28, tox_time="uniform")
    sk = tuple(doseesc.crm_skeleton(0.25, 0.05, 3, 5))
    crm = doseesc.TITECRM(sk, 0.25, max_n=30)
    t = best_of(lambda: doseesc.simulate(crm, five, 10_000, rng=1, calendar=cal), repeat=3)
    print(f"TITE-CRM (cohorts of 1), 10,000 trials, 5 tiers, N = 30: {t:.3f} s")
    crm201 = doseesc.TITECRM(sk, 0.25, max_n=30, grid_points=201)
    t = best_of(lambda: doseesc.simulate(crm201, five, 10_000, rng=1, calendar=cal), repeat=3)
    print(f"TITE-CRM, 201-point grid (posterior mean within 1e-9 of quadrature in the tests): {t:.3f} s")
    boin = doseesc.TITEBOIN(0.25, 5, max_n=30)
    t = best_of(lambda: doseesc.simulate(boin, five, 10_000, rng=1, calendar=cal), repeat=3)
    print(f"TITE-BOIN (cohorts of 3), 10,000 trials, 5 tiers, N = 30: {t:.3f} s")
    b = doseesc.BOIN(0.25, 5, max_n=30)
    t = best_of(lambda: doseesc.simulate(b, five, 10_000, rng=1, calendar=cal), repeat=3)
    print(f"BOIN with the same calendar (untimed engine + calendar): {t:.3f} s")
    print("goal: TITE-CRM <= 2 s, TITE-BOIN <= 1 s")


if __name__ == "__main__":
    main()
