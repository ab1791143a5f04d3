"""Run the benches of two checkouts in turn (A, B, A, B, ...) and print B's timings over A's.

Usage::

    git worktree add /tmp/before <commit>
    python tools/bench_ab.py /tmp/before . [--rounds 3] [--only interval,paths]

Each bench script runs as its own process with ``PYTHONPATH`` set to the checkout's ``src``, so both
versions see the same machine load (interleaved). Every number printed by a bench is kept at its best
(smallest) over the rounds, line by line; the report shows each line of B with ``[B/A = r]`` after every
number whose A value is non-zero. Lines whose numbers are counts (states, trials) show a ratio of 1.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")


def _run(checkout: Path, script: Path) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(checkout / "src"))
    out = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.splitlines()


def _best(runs: list[list[str]]) -> list[tuple[str, list[float]]]:
    lines = []
    for rows in zip(*runs):
        values = [[float(x) for x in NUMBER.findall(r)] for r in rows]
        best = [min(col) for col in zip(*values)] if values and all(len(v) == len(values[0]) for v in values) \
            else values[0]
        lines.append((rows[0], best))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    for script in sorted((args.b / "bench").glob("bench_*.py")):
        if wanted and not any(w in script.stem for w in wanted):
            continue
        runs = {"a": [], "b": []}
        for _ in range(args.rounds):
            runs["a"].append(_run(args.a.resolve(), (args.a / "bench" / script.name).resolve()))
            runs["b"].append(_run(args.b.resolve(), script.resolve()))
        a, b = _best(runs["a"]), _best(runs["b"])
        print(f"== {script.name} (best of {args.rounds}, interleaved)")
        for (line, bv), (_, av) in zip(b, a):
            if not bv or len(av) != len(bv):
                print(f"   {line}")
                continue
            ratios = " ".join(f"{y / x:.2f}" for x, y in zip(av, bv) if x > 0)
            print(f"   {line}   [B/A = {ratios}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
