"""Benchmark (issue 20 item 7): start-up time of `import doseesc` and `doseesc --help`, target under 0.4 s.

Wall time of fresh Python processes, median of a few, beside bare Python and `import numpy` for scale. Each
command runs once first, so that Python's bytecode cache is written (as `pip install` does for a user); where
PYTHONDONTWRITEBYTECODE is set, every process compiles the sources again and the times say so.

    python bench/bench_import.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

REPEAT = 7
TARGET = 0.4


def commands() -> dict[str, list[str]]:
    cli = shutil.which("doseesc")
    py = sys.executable
    out = {
        "python (nothing imported)": [py, "-c", "pass"],
        "import numpy": [py, "-c", "import numpy"],
        "import doseesc": [py, "-c", "import doseesc"],
        "doseesc --help": [cli, "--help"] if cli else [py, "-m", "doseesc", "--help"],
        "doseesc simulate --help": ([cli] if cli else [py, "-m", "doseesc"]) + ["simulate", "--help"],
        "import doseesc; doseesc.BOIN": [py, "-c", "import doseesc; doseesc.BOIN"],
    }
    return out


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    cached = not (os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.flags.dont_write_bytecode)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; bytecode cache "
          f"{'on' if cached else 'OFF (PYTHONDONTWRITEBYTECODE): every process compiles the sources'}; "
          f"median wall time of {REPEAT} processes")
    for name, cmd in commands().items():
        wall(cmd)   # writes the bytecode cache
        times = [wall(cmd) for _ in range(REPEAT)]
        goal = f"goal < {TARGET:g} s" if name in ("import doseesc", "doseesc --help") else ""
        print(f"{name:<32} {statistics.median(times):6.3f} s  (min {min(times):.3f})  {goal}")


if __name__ == "__main__":
    main()
