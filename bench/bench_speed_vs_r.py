"""Benchmark (issue 20): doseesc's CPU time per simulated trial beside the R packages' recorded per-trial times.

10,000 trials per workload, target 0.3, cohorts of 3; process CPU time (all threads), best of 10 runs after a
warm-up (this machine's CPU times vary by up to +-40% from run to run; the best is the least disturbed), each a
first run: a fresh design object, and the engine's state graphs forgotten (nothing remembered from the run
before). A second table gives the time of a run whose design's graph is already known; a third, the time per
scenario of a study that runs one fresh design over 6 truth scenarios, as a scenario file does (the first
scenario works the graph out, the later ones reuse it). The R figures are those quoted in issue 20 (BOIN::get.oc
and dfcrm::crmsim on 10,000 trials of the same sizes, measured on this 2-core machine; one scenario per call, the
same cost for each); R need not be installed.

    python bench/bench_speed_vs_r.py
"""

from __future__ import annotations

import os
import platform

import numpy as np

import doseesc
from _timing import cpu_seconds, forget_graphs

N_TRIALS = 10_000
REPEAT = 10
TARGET = 0.30

#: workload -> (R function, R seconds for 10,000 trials, goal ratio), as quoted in issue 20.
R_SECONDS = {
    "BOIN, 3 tiers, N=18": ("BOIN::get.oc", 4.7, 500),
    "BOIN, 5 tiers, N=30": ("BOIN::get.oc", 6.1, 500),
    "CRM, 3 tiers, N=18": ("dfcrm::crmsim", 25.0, 400),
    "CRM, 6 tiers, N=36": ("dfcrm::crmsim", 113.0, 400),
}

TRUE_TOX = {
    3: [0.10, 0.30, 0.50],
    5: [0.05, 0.15, 0.30, 0.45, 0.60],
    6: [0.05, 0.10, 0.20, 0.30, 0.45, 0.60],
}


def study_truths(k: int) -> list[list[float]]:
    """6 truth scenarios of ``k`` tiers for the study table: the MTD at each position, none safe, all safe."""
    out = []
    for mtd in (0, k // 2, k - 1):
        out.append([round(min(0.95, max(0.01, 0.30 + 0.15 * (i - mtd))), 2) for i in range(k)])
    out.append([round(0.45 + 0.1 * i, 2) for i in range(k)])          # none tolerated
    out.append([round(0.02 + 0.03 * i, 2) for i in range(k)])         # all tolerated
    out.append([round(0.05 + 0.25 * i / (k - 1), 2) for i in range(k)])  # slowly rising
    return out


def workloads():
    """workload -> (a function making a fresh design, true P(DLT) per tier). Each run gets a fresh design, so
    nothing a design remembers (CRM's memo of posterior means) carries over from the run before: the times
    are those of a first run."""
    crm3 = tuple(doseesc.crm_skeleton(TARGET, 0.05, 2, 3))
    crm6 = tuple(doseesc.crm_skeleton(TARGET, 0.05, 3, 6))
    return {
        "BOIN, 3 tiers, N=18": (lambda: doseesc.BOIN(TARGET, 3, max_n=18), TRUE_TOX[3]),
        "BOIN, 5 tiers, N=30": (lambda: doseesc.BOIN(TARGET, 5, max_n=30), TRUE_TOX[5]),
        "CRM, 3 tiers, N=18": (lambda: doseesc.CRM(crm3, TARGET, max_n=18), TRUE_TOX[3]),
        "CRM, 6 tiers, N=36": (lambda: doseesc.CRM(crm6, TARGET, max_n=36), TRUE_TOX[6]),
    }


def main():
    print(f"doseesc {doseesc.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {N_TRIALS} trials, target {TARGET:g}, cohorts of 3")
    print(f"{'workload':<22} {'doseesc CPU (ms)':>17} {'per trial (us)':>15} {'R per trial (us)':>17} "
          f"{'ratio':>7} {'goal':>6}")
    known = {}
    for name, (make, tox) in workloads().items():
        scenario = doseesc.Scenario(true_tox=tox)

        def first_run():
            forget_graphs()
            doseesc.simulate(make(), scenario, N_TRIALS, rng=1)

        cpu = cpu_seconds(first_run, REPEAT)
        known[name] = cpu_seconds(lambda: doseesc.simulate(make(), scenario, N_TRIALS, rng=1), REPEAT)
        fn, r_sec, goal = R_SECONDS[name]
        per, r_per = 1e6 * cpu / N_TRIALS, 1e6 * r_sec / N_TRIALS
        print(f"{name:<22} {1e3 * cpu:>17.1f} {per:>15.2f} {r_per:>17.0f} {r_per / per:>6.0f}x {goal:>5}x"
              f"  ({fn})")
    print("\nA design whose graph is already known (an equal design ran before in this process: a study's later "
          "scenarios, a worker's later batches):")
    for name, cpu in known.items():
        per, r_per = 1e6 * cpu / N_TRIALS, 1e6 * R_SECONDS[name][1] / N_TRIALS
        print(f"{name:<22} {1e3 * cpu:>17.1f} {per:>15.2f} {r_per:>17.0f} {r_per / per:>6.0f}x")
    print("\nA study: one fresh design over 6 truth scenarios (CPU per scenario; R costs the same per scenario):")
    for name, (make, tox) in workloads().items():
        scenarios = [doseesc.Scenario(true_tox=t) for t in study_truths(len(tox))]

        def study():
            forget_graphs()
            design = make()
            for sc in scenarios:
                doseesc.simulate(design, sc, N_TRIALS, rng=1)

        cpu = cpu_seconds(study, repeat=max(3, REPEAT // 2)) / len(scenarios)
        per, r_per = 1e6 * cpu / N_TRIALS, 1e6 * R_SECONDS[name][1] / N_TRIALS
        print(f"{name:<22} {1e3 * cpu:>17.1f} {per:>15.2f} {r_per:>17.0f} {r_per / per:>6.0f}x "
              f"{R_SECONDS[name][2]:>5}x")




if __name__ == "__main__":
    main()
