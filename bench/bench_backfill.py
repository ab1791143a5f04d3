"""Benchmark: backfill cohorts (issue 19 item 2). Goal: a backfill run costs at most 3x the same design without
backfill (today's calendar run), 10,000 trials.

    python bench/bench_backfill.py

Scenario and calendar of the tests: 4 tiers, N = 24, Poisson accrual of 3 patients a month, 28-day windows;
backfill up to 6 patients per trial at the highest cleared tier below the current one.
"""

from __future__ import annotations

from _timing import best_of_interleaved

import doseesc
from doseesc.backfill import Backfill
from doseesc.engines.backfill import simulate_backfill


def main():
    sc = doseesc.Scenario(true_tox=(0.05, 0.12, 0.25, 0.4), true_eff=(0.2, 0.4, 0.5, 0.5), target=0.3)
    cal = doseesc.Calendar(accrual_rate=3, dlt_window_days=28)
    designs = [doseesc.BOIN(n_tiers=4, target=0.3, max_n=24), doseesc.I3Plus3(n_tiers=4, target=0.3, max_n=24),
               doseesc.CRM(skeleton=(0.05, 0.12, 0.25, 0.4), target=0.3, max_n=24),
               doseesc.BOIN12(n_tiers=4, max_n=24), doseesc.BOINET(n_tiers=4, max_n=24)]
    worst = 0.0
    for des in designs:
        today, off, on = best_of_interleaved([
            lambda: doseesc.simulate(des, sc, 10_000, rng=1, calendar=cal),
            lambda: simulate_backfill(des, sc, 10_000, backfill=Backfill(cap=0), rng=1, calendar=cal),
            lambda: simulate_backfill(des, sc, 10_000, backfill=Backfill(cap=6), rng=1, calendar=cal)], repeat=3)
        worst = max(worst, on / today)
        print(f"{des.label:<28} today {today:6.3f} s | backfill engine cap 0 {off:6.3f} s | cap 6 {on:6.3f} s "
              f"= {on / today:4.2f}x today")
    print(f"worst ratio {worst:.2f}x; goal: at most 3x")


if __name__ == "__main__":
    main()
