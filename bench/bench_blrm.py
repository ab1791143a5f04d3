"""Benchmark: BLRM with EWOC. Goal (issue 22): 10,000 trials, 5 tiers, N = 30 in under 2 s on one core.

Also the per-patient fit (the actual-dose model: each patient's infused dose enters the likelihood, so no memo by
counts): ECAR01's BLRM, scenario mtd-middle, 10,000 trials with the file's actual-dose model.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/bench_blrm.py
"""

from __future__ import annotations

import os
from pathlib import Path

for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")   # one core, before numpy loads

import doseesc  # noqa: E402
from _timing import best_of  # noqa: E402

ECAR01 = Path(__file__).resolve().parents[1] / "scenarios" / "ecar01.toml"


def design():
    # a fresh design per run: BLRM remembers posterior summaries, and a warm memo would time a second run
    return doseesc.BLRM((10.0, 20.0, 40.0, 80.0, 160.0), 40.0, cohort_size=3, max_n=30,
                        prior_mean=(-1.0, 0.0), prior_sd=(2.0, 1.0))


def per_patient(n_trials: int = 10_000):
    proto = doseesc.load_protocol(ECAR01)
    d, sc = proto.design("BLRM"), proto.scenario("mtd-middle")
    d._cheb                                  # the expansion's set-up (once per design, ~0.1 s) outside the timing
    return lambda: doseesc.simulate(d, sc, n_trials, rng=1, ladder=proto.tiers, obd=proto.obd,
                                    dose_model=proto.dose_model)


def main():
    five = doseesc.Scenario(true_tox=[0.05, 0.12, 0.25, 0.40, 0.55])
    t = best_of(lambda: doseesc.simulate(design(), five, 10_000, rng=1), repeat=3)
    oc = doseesc.simulate(design(), five, 10_000, rng=1)
    print(f"BLRM (EWOC), 10,000 trials, 5 tiers, N = 30, cohorts of 3: {t:.3f} s "
          f"(mean N {oc.summary()['mean_n'].sum():.1f})")
    print("goal: under 2 s on one core")
    run = per_patient()
    t = best_of(run, repeat=2)
    print(f"BLRM per-patient fit (ECAR01 mtd-middle, actual-dose model), 10,000 trials: {t:.2f} s")


if __name__ == "__main__":
    main()
