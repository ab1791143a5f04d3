"""Benchmark: EffTox. Goal (issue 22): 10,000 trials in under 5 s on one core.

    OPENBLAS_NUM_THREADS=1 python bench/bench_efftox.py

The Thall et al. (2014) design (5 doses, 39 patients in cohorts of 3) under Scenario 1 of its Table 1
(trialr's vignette): true P(response) 0.2, 0.4, 0.6, 0.8, 0.9 and P(DLT) 0.05, 0.10, 0.15, 0.20, 0.40.
Each run uses a fresh design (the design remembers each distinct state's posterior; a warm memo would
time a second run). The one-time import of scipy (the sampler's Sobol points) is done before the clocks
start. Wall and CPU seconds are printed: on a machine shared with other work the CPU time is the
one-core number. Set OPENBLAS_NUM_THREADS=1 (or OMP_NUM_THREADS=1) for the one-core number.
"""

from __future__ import annotations

import dataclasses
import time

import doseesc


def main():
    sc = doseesc.Scenario(true_tox=[0.05, 0.10, 0.15, 0.20, 0.40], true_eff=[0.2, 0.4, 0.6, 0.8, 0.9])
    doseesc.EffTox.thall2014(max_n=3)._points          # imports scipy.stats once, outside the timings
    for draws in (2 ** 7, 2 ** 6):
        design = dataclasses.replace(doseesc.EffTox.thall2014(), draws=draws)
        wall, cpu = time.perf_counter(), time.process_time()
        r = doseesc.simulate(design, sc, 10_000, rng=1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        sel = ", ".join(f"{p:.4f}" for p in r.p_select)
        default = " (default)" if draws == doseesc.EffTox.thall2014().draws else ""
        print(f"EffTox (draws = {draws}{default}), 10,000 trials, 5 tiers, N = 39: {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"{len(design._memo):,} distinct states; P(select) no dose, 1..5: {sel}")
    print("goal: EffTox 10,000 trials <= 5 s")


if __name__ == "__main__":
    main()
