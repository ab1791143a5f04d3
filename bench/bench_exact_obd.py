"""Benchmark: exact BOIN12 and BOIN-ET (issue 20 item 6). Goal: 3 and 4 tiers, N = 24, <= 5 s and < 500 MB.

Each case runs in a fresh process (so that peak memory is its own): CPU time of the ``doseesc.exact`` call
(``cold``: the first call, with the one-off loading of scipy submodules and the design's tables; ``warm``: a
second call in the same process), its peak resident memory, the largest number of live states held at once and
the number of terminal records. Scenario: P(DLT) 0.05, 0.15, 0.30, 0.45 and P(response) 0.20, 0.40, 0.50, 0.55
(the first k), cohorts of 3, each design's defaults.

    python bench/bench_exact_obd.py                 # the table
    python bench/bench_exact_obd.py --one boin12 4 24   # one case (what the table runs per process)
    python bench/bench_exact_obd.py --limits        # the largest N that exact takes at the default max_states
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys
import time

TOX = (0.05, 0.15, 0.30, 0.45, 0.55, 0.65)
EFF = (0.20, 0.40, 0.50, 0.55, 0.60, 0.60)
CASES = [("boin12", 3, 24), ("boin12", 4, 24), ("boin12-app", 4, 24), ("boinet", 3, 24), ("boinet", 4, 24)]


def _design(kind: str, k: int, n: int):
    import doseesc
    if kind == "boin12":
        return doseesc.BOIN12(k, max_n=n)
    if kind == "boin12-app":
        return doseesc.BOIN12(k, max_n=n, variant="app")
    return doseesc.BOINET(k, max_n=n)


def one(kind: str, k: int, n: int, max_states: int | None = None, warm: bool = True) -> dict:
    import doseesc
    exact_engine = importlib.import_module("doseesc.engines.exact")
    sc = doseesc.Scenario(true_tox=TOX[:k], true_eff=EFF[:k])
    design = _design(kind, k, n)
    live = [0]
    concat = exact_engine._concat

    def counting(states):          # the live states of each cohort pass here once
        out = concat(states)
        live[0] = max(live[0], out.n_trials)
        return out
    exact_engine._concat = counting
    opts = {} if max_states is None else {"max_states": max_states}
    t = time.process_time()
    try:
        oc = doseesc.exact(design, sc, **opts)
    except doseesc.DoseescError as err:
        return {"refused": str(err)}
    cold = time.process_time() - t
    out = {"cold_s": cold, "records": oc.provenance["terminal_states"], "live_max": live[0]}
    if warm:
        t = time.process_time()
        doseesc.exact(design, sc, **opts)
        out["warm_s"] = time.process_time() - t
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run(args: list, timeout: float | None = None) -> dict:
    res = subprocess.run([sys.executable, __file__, "--one", *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode:
        return {"refused": res.stderr.strip().splitlines()[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def table():
    print("exact OBD designs, cohorts of 3 (CPU seconds of the exact() call; peak memory of the process)")
    print(f"{'design':>12} {'tiers':>5} {'N':>3} {'cold s':>7} {'warm s':>7} {'peak MB':>8} {'live max':>9} "
          f"{'records':>8}")
    for kind, k, n in CASES:
        r = _run([kind, k, n])
        if "refused" in r:
            print(f"{kind:>12} {k:>5} {n:>3}  refused: {r['refused']}")
            continue
        print(f"{kind:>12} {k:>5} {n:>3} {r['cold_s']:7.2f} {r['warm_s']:7.2f} {r['peak_mb']:8.0f} "
              f"{r['live_max']:9d} {r['records']:8d}")
    print("goal: 3 and 4 tiers, N = 24: <= 5 s, < 500 MB")


def limits():
    """Per design and number of tiers, the largest N (cohorts of 3) that exact takes at the default max_states
    (each case in its own process; a case over 150 s is reported as such)."""
    for kind in ("boin12", "boinet"):
        for k, sizes in ((3, range(27, 49, 3)), (4, range(27, 37, 3)), (5, range(18, 31, 3))):
            last = None
            for n in sizes:
                try:
                    r = _run([kind, k, n, "nowarm"], timeout=150)
                except subprocess.TimeoutExpired:
                    print(f"{kind} {k} tiers: N = {n} takes over 150 s", flush=True)
                    break
                if "refused" in r:
                    print(f"{kind} {k} tiers: refused at N = {n} (largest taken: {last})", flush=True)
                    break
                last = n
                print(f"  {kind} {k} tiers N = {n}: {r['cold_s']:.1f} s, {r['peak_mb']:.0f} MB, live max "
                      f"{r['live_max']}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        kind, k, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(one(kind, k, n, warm="nowarm" not in sys.argv)))
    elif len(sys.argv) > 1 and sys.argv[1] == "--limits":
        limits()
    else:
        table()
