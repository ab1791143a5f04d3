"""Benchmark (issue 20): doseesc against R's BOIN::get.oc measured at the same moment, in turns.

bench_speed_vs_r.py compares doseesc with R per-trial times recorded once (issue 20). This machine's CPU speed
drifts by up to a factor of 2 within an hour, so a ratio of two timings taken at different moments carries that
drift. This script times both in turns: R's get.oc on 10,000 trials (CPU time, system.time user + system, one
call, the better of two in one R session), then doseesc's first run of the same workload (process CPU time, best of 10 fresh designs with the
engine's graphs forgotten), for a few rounds; each round's ratio is taken at one moment.

It needs R with the BOIN package (see ../shared/r-references.md; give its library in R_LIBS). Without them it
says so and exits: the tests and the other benches never need R.

    R_LIBS=/path/to/rlib python bench/bench_speed_same_moment.py [rounds]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys

import doseesc
from _timing import cpu_seconds, forget_graphs

N_TRIALS = 10_000
TARGET = 0.30
REPEAT = 10
#: workload -> (tiers' true P(DLT), max N): as in bench_speed_vs_r.py
WORKLOADS = {
    "BOIN, 3 tiers, N=18": ([0.10, 0.30, 0.50], 18),
    "BOIN, 5 tiers, N=30": ([0.05, 0.15, 0.30, 0.45, 0.60], 30),
}

#: R: the best CPU time of two calls in one session (the first call of a session can be slower)
R_CODE = ("suppressMessages(library(BOIN)); best <- Inf; for (i in 1:2) {{ t <- system.time(BOIN::get.oc("
          "target={target}, p.true=c({p}), ncohort={ncohort}, cohortsize=3, ntrial={n}, seed=i)); "
          "best <- min(best, t[['user.self']] + t[['sys.self']]) }}; cat(best)")


def r_seconds(tox, max_n) -> float:
    code = R_CODE.format(target=TARGET, p=", ".join(map(str, tox)), ncohort=max_n // 3, n=N_TRIALS)
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().split()[-1])


def doseesc_seconds(tox, max_n) -> float:
    scenario = doseesc.Scenario(true_tox=tox)
    k = len(tox)

    def first_run():
        forget_graphs()
        doseesc.simulate(doseesc.BOIN(TARGET, k, max_n=max_n), scenario, N_TRIALS, rng=1)

    return cpu_seconds(first_run, REPEAT)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if shutil.which("Rscript") is None:
        print("Rscript not found: this bench needs R with the BOIN package (../shared/r-references.md)")
        return
    probe = subprocess.run(["Rscript", "-e", "suppressMessages(library(BOIN))"], capture_output=True, text=True)
    if probe.returncode != 0:
        print("R has no BOIN package here: install it and give its library in R_LIBS (../shared/r-references.md)")
        return
    print(f"{N_TRIALS} trials, target {TARGET:g}, cohorts of 3; R get.oc CPU time (better of 2 calls), doseesc CPU time "
          f"of its first run (best of {REPEAT}); {rounds} rounds in turns")
    print(f"{'workload':<22} {'round':>5} {'R (s)':>7} {'doseesc (ms)':>13} {'ratio':>7}")
    for name, (tox, max_n) in WORKLOADS.items():
        ratios = []
        for i in range(rounds):
            r = r_seconds(tox, max_n)
            d = doseesc_seconds(tox, max_n)
            ratios.append(r / d)
            print(f"{name:<22} {i + 1:>5} {r:>7.2f} {1e3 * d:>13.1f} {r / d:>6.0f}x")
        print(f"{name:<22} {'median':>5} {'':>7} {'':>13} {statistics.median(ratios):>6.0f}x  (goal 500x)")


if __name__ == "__main__":
    main()
