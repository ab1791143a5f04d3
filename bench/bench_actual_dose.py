"""Benchmark: the actual-dose and manufacturing model against a plain run of the same design.

Goal (issue: actual infused dose): the model costs at most 2x a plain run of the same design
(10,000 trials). The model here is the heaviest one: ±20% normal release, 5% shortfall (patients
not evaluable and replaced), 5% manufacturing failures (replaced), a child/adult weight mix with a
flat cap on total cells, and P(DLT) as a logistic curve of the actual dose. A second table times the
models of the bundled scenario files (their own designs, first scenario). The runs being compared are
timed in turn, best of several, so that a drift in the machine's load does not skew their ratio. Run:

    python bench/bench_actual_dose.py
"""

from __future__ import annotations

import os
import platform

import numpy as np

import doseesc
from pathlib import Path

from _timing import best_of_interleaved
from doseesc.actual_dose import DoseModel, LogisticCurve, WeightGroup, scenario_from_curves


def main():
    print(f"doseesc {doseesc.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    ladder = doseesc.DoseLadder([1e5, 2e5, 4e5, 8e5, 1.6e6, 3.2e6], "cells/kg", tolerance=0.2)
    plain = doseesc.Scenario(true_tox=[0.05, 0.10, 0.20, 0.30, 0.45, 0.60], name="table")
    light = DoseModel()  # release factor uniform in the band, per-tier truth
    heavy = DoseModel(release="normal", release_sd=0.1, shortfall=0.05, below_band="not_evaluable", failure=0.05,
                      weights=(WeightGroup(0.3, 25, 10, 8, 50, "children"), WeightGroup(0.7, 72, 15, 40, 140)),
                      cap_total=2e8)
    curve = scenario_from_curves("curve", ladder, LogisticCurve(8e5, 0.30, 1.2), dose_model=heavy)
    print(f"{'design':>8} {'plain (ms)':>11} {'uniform release (ms)':>21} {'ratio':>6} "
          f"{'full model (ms)':>16} {'ratio':>6}")
    for design in (doseesc.ThreePlusThree(6), doseesc.BOIN(0.30, 6, max_n=36), doseesc.CRM(
            skeleton=doseesc.crm_skeleton(0.30, 0.06, 3, 6), target=0.30, max_n=36)):
        t0, t1, t2 = best_of_interleaved([
            lambda: doseesc.simulate(design, plain, 10_000, rng=1, ladder=ladder),
            lambda: doseesc.simulate(design, plain, 10_000, rng=1, ladder=ladder, dose_model=light),
            lambda: doseesc.simulate(design, curve, 10_000, rng=1, ladder=ladder, dose_model=heavy)],
            repeat=9 if "CRM" not in design.label else 3)
        print(f"{design.label:>8} {1e3 * t0:>11.1f} {1e3 * t1:>21.1f} {t1 / t0:>6.2f} {1e3 * t2:>16.1f} "
              f"{t2 / t0:>6.2f}")
    print("goal: ratio <= 2")
    print()
    print("bundled scenario files: each file's [actual_dose] model on its first scenario (10,000 trials)")
    print(f"{'file':>12} {'design':>24} {'plain (ms)':>11} {'model (ms)':>11} {'ratio':>6}")
    root = Path(__file__).resolve().parent.parent / "scenarios"
    for path in sorted(root.glob("*.toml")):
        proto = doseesc.load_protocol(path)
        if proto.dose_model is None:
            continue
        sc = next(iter(proto.scenarios.values()))
        for name, design in proto.designs.items():
            if "TITE" in design.label:
                continue
            t0, t1 = best_of_interleaved([
                lambda: doseesc.simulate(design, sc, 10_000, rng=1, ladder=proto.tiers),
                lambda: doseesc.simulate(design, sc, 10_000, rng=1, ladder=proto.tiers, dose_model=proto.dose_model)],
                repeat=7 if "CRM" not in design.label else 3)
            print(f"{path.stem:>12} {name[:24]:>24} {1e3 * t0:>11.1f} {1e3 * t1:>11.1f} {t1 / t0:>6.2f}")


if __name__ == "__main__":
    main()
