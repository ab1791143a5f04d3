"""Benchmark: wall time of a 2,000-unit calibration grid in-process, on 2 local processes and on a Dask
LocalCluster of 2 processes (issue 21), and a check that the three give identical numbers.

The grid: BOIN (target 0.25, 5 tiers) over max_n (10 values, 12..30) x 2 scenarios x 100 units of
``--unit-trials`` trials each (default 100: 10,000 trials per point and scenario, 200,000 trials in all).
The times include starting the workers (the process pool and the LocalCluster), which is what a user waits
for. Each runner runs once (no repeats: this is a multi-second benchmark on a shared machine). Run:

    python bench/bench_grid.py                    # 2,000 units
    python bench/bench_grid.py --unit-trials 20   # a reduced run: same 2,000 units, smaller units
    python bench/bench_grid.py --scheduler tcp://host:8786   # also time a real Dask cluster

On a cluster: start a scheduler (``dask scheduler``) and workers (``dask worker tcp://host:8786``, or
dask-jobqueue on SLURM/PBS, dask-kubernetes, Coiled) with doseesc installed in the same version on every
worker, then pass its address as ``--scheduler`` (``Grid.run(scheduler="tcp://host:8786")``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

import doseesc
from doseesc.grid import Grid


def make_grid(unit_trials: int) -> Grid:
    scenarios = [doseesc.Scenario(true_tox=[0.05, 0.10, 0.18, 0.30, 0.45], target=0.25, name="mtd-3"),
                 doseesc.Scenario(true_tox=[0.15, 0.32, 0.45, 0.55, 0.65], target=0.25, name="mtd-1")]
    base = doseesc.BOIN(n_tiers=5, target=0.25, max_n=30)
    return Grid(base, {"max_n": list(range(12, 31, 2))}, scenarios, 100 * unit_trials, rng=2026,
                unit_trials=unit_trials, constraints=["mean(p_above_mtd) <= 0.5"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unit-trials", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scheduler", default=None, help="also time a running Dask cluster at this address")
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args()
    print(f"doseesc {doseesc.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    grid = make_grid(args.unit_trials)
    print(f"{grid!r}")
    runs = [("in-process", {}), (f"workers={args.workers}", {"workers": args.workers})]
    if not args.skip_dask:
        runs.append((f"dask_local={args.workers}", {"dask_local": args.workers}))
    if args.scheduler:
        runs.append((f"scheduler={args.scheduler}", {"scheduler": args.scheduler}))
    ref = None
    print(f"{'runner':>28} {'wall (s)':>9} {'units/s':>8} {'identical':>9}")
    for name, options in runs:
        t = time.perf_counter()
        result = grid.run(**options)
        wall = time.perf_counter() - t
        table = result.table().drop(columns="design")
        same = "" if ref is None else str(table.equals(ref))
        ref = table if ref is None else ref
        print(f"{name:>28} {wall:9.2f} {grid.n_units / wall:8.0f} {same:>9}")
    best = result.best()
    print("best feasible point:", None if best is None else {k: best[k] for k in grid.params},
          "objective", None if best is None else round(float(best["objective"]), 4))


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
