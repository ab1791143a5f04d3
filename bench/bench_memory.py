"""Benchmark (issue 20 item 3): peak memory of a BOIN run against the number of trials, and the wall time of
1, 2 workers.

Each measurement runs in a fresh Python process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, peak resident
memory of that process; "import MB": after the design and scenario are made, which loads the library); BOIN, 5 tiers, N = 30, target 0.3, cohorts of 3, seed 1.
``keep_records=False`` keeps per-trial summaries only (what the memory goal is about); the default run keeps
every patient's record as well, shown beside it.

    python bench/bench_memory.py                 # 10^5 and 10^6 trials
    python bench/bench_memory.py 100000 1000000 10000000   # and 10^7 (about 75 s of CPU)
    python bench/bench_memory.py 100000 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import doseesc
n, keep, workers = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
d = doseesc.BOIN(0.3, 5, cohort_size=3, max_n=30)
sc = doseesc.Scenario([0.05, 0.15, 0.30, 0.45, 0.60], target=0.3)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # the library loaded (its names load on first use)
t0, c0 = time.perf_counter(), time.process_time()
r = doseesc.simulate(d, sc, n, rng=1, keep_records=keep, workers=workers)
m = r.metrics()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "keep": keep, "workers": workers, "base_mb": base / 1024, "peak_mb": peak / 1024,
                  "wall_s": wall, "cpu_s": cpu, "p_correct": float(m.loc["p_correct", "estimate"])}))
"""


def measure(n: int, keep: bool, workers: int) -> dict:
    if workers > 1:   # the guard a script that starts worker processes needs
        code = "if __name__ == '__main__':\n" + "\n".join("    " + line for line in CHILD.strip().splitlines())
    else:
        code = CHILD
    res = subprocess.run([sys.executable, "-c", code, str(n), "1" if keep else "0", str(workers)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="*", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--records", action="store_true", help="also measure runs that keep per-patient records")
    a = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'trials':>10} {'records':>8} {'workers':>7} {'import MB':>9} {'peak MB':>8} {'wall s':>7} {'CPU s':>6}")
    rows = []
    for keep in ((False, True) if a.records else (False,)):
        for n in a.n:
            r = measure(n, keep, a.workers)
            rows.append(r)
            print(f"{r['n']:>10,} {'kept' if keep else 'no':>8} {r['workers']:>7} {r['base_mb']:>9.0f} "
                  f"{r['peak_mb']:>8.0f} {r['wall_s']:>7.2f} {r['cpu_s']:>6.2f}")
    lean = {r["n"]: r for r in rows if not r["keep"]}
    if 100_000 in lean and 1_000_000 in lean:
        print(f"peak memory, 10^6 vs 10^5 trials without records: "
              f"{lean[1_000_000]['peak_mb'] / lean[100_000]['peak_mb']:.2f}x (goal: within 1.5x)")
    if 10_000_000 in lean:
        print(f"peak memory of 10^7 trials without records: {lean[10_000_000]['peak_mb']:.0f} MB (goal: under 300 MB)")


if __name__ == "__main__":
    main()
