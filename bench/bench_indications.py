"""Benchmark: runs with several indications or strata against the plain pooled run of the same design.
Goal (issue 19): each costs at most 3x the pooled run (10,000 trials).

    python bench/bench_indications.py

Two indications (shares 0.6 / 0.4) on a 4-tier ladder, N = 24, cohorts of 3, the second indication more toxic:
- plain: ``doseesc.simulate`` with the pooled (mixture) truth, the run a file without [[indication]] makes;
- pooled: one escalation, each patient's indication drawn, per-indication counts (``simulate_indications``);
- parallel: an escalation per indication (two escalations, each up to N = 24);
- staggered: adults first, children opening once the adults have cleared tier 2, one tier below them.
"""

from __future__ import annotations

from _timing import best_of_interleaved

import doseesc
from doseesc.engines.strata import simulate_indications
from doseesc.indications import Conduct, Indication, Indications, IndicationScenario

N_TRIALS = 10_000


def main():
    inds = Indications((Indication("adults", share=0.6), Indication("children", share=0.4)))
    adults = doseesc.Scenario(true_tox=[0.05, 0.10, 0.20, 0.35], target=0.25, name="x / adults")
    children = doseesc.Scenario(true_tox=[0.10, 0.20, 0.35, 0.50], target=0.25, name="x / children")
    isc = IndicationScenario.build("x", inds, [adults, children], target=0.25)
    staggered = Conduct("staggered", first="adults", offset=1, opens_after=1)
    designs = {"3+3": doseesc.ThreePlusThree(n_tiers=4),
               "BOIN": doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3)}
    print(f"{N_TRIALS:,} trials, 4 tiers, N = 24, two indications; best of 3 (interleaved), seconds")
    worst = 0.0
    for name, d in designs.items():
        runs = [lambda d=d: doseesc.simulate(d, isc.pooled, N_TRIALS, rng=1),
                lambda d=d: simulate_indications(d, isc, conduct="pooled", n_trials=N_TRIALS, rng=1),
                lambda d=d: simulate_indications(d, isc, conduct="parallel", n_trials=N_TRIALS, rng=1),
                lambda d=d: simulate_indications(d, isc, conduct=staggered, n_trials=N_TRIALS, rng=1)]
        plain, pooled, parallel, stag = best_of_interleaved(runs, repeat=3)
        ratios = [pooled / plain, parallel / plain, stag / plain]
        worst = max(worst, *ratios)
        print(f"{name:5s} plain {plain:.3f}  pooled {pooled:.3f} ({ratios[0]:.2f}x)  parallel {parallel:.3f} "
              f"({ratios[1]:.2f}x)  staggered {stag:.3f} ({ratios[2]:.2f}x)")
    print(f"largest ratio {worst:.2f}x; goal: at most 3x the plain pooled run")


if __name__ == "__main__":
    main()
