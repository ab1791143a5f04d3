"""Property-based fuzz of the bundled scenario files (issue 24 item 6).

Each example mutates one bundled file, line-wise (a value replaced by a value of another kind or size, a line
deleted or duplicated) or byte-wise (a byte inserted, deleted or changed). Whatever the mutation: ``doseesc
check`` ends with exit 0 or with a one-line DoseescError and exit 2 (never another exception), writes no
file, and a file it accepts runs ``simulate -n 10`` without an error. Derandomised, so a failure reproduces.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from doseesc.cli import main  # noqa: E402

BUNDLED = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.toml"))
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in BUNDLED}
ASSIGN = re.compile(r"^(\s*[A-Za-z0-9_\"'.+ -]+?\s*=\s*)(.+)$")

#: Replacement values: other kinds, edges and sizes.
VALUES = ["1" + "0" * 400, "-1" + "0" * 30, "9223372036854775808", "0", "-1", "1", "2", "1e-300", "1e300", "nan",
          "inf", "-inf", "0.5", "true", '""', '"x"', '"$x^{"', '"=cmd()"', '["a"]', "[]", "[1, 2]", "{}",
          "{a = 1}", "{model = []}", "[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]", "1000000000", "40", '"１"', "[0.5, 0.5]",
          "[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]", '"TITE-BOIN"', '"BOIN"', '"CRM"']


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(TEXTS)))
    lines = TEXTS[name].splitlines(keepends=True)
    kind = draw(st.sampled_from(["value", "value", "value", "delete", "duplicate", "byte"]))
    if kind == "byte":
        data = bytearray(TEXTS[name].encode())
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["insert", "delete", "change"]))
        byte = draw(st.integers(0, 255))
        if op == "insert":
            data.insert(at, byte)
        elif op == "delete":
            del data[at]
        else:
            data[at] = byte
        return name, f"byte {op} at {at}: {byte}", bytes(data)
    candidates = [i for i, ln in enumerate(lines) if ASSIGN.match(ln) and not ln.lstrip().startswith("#")]
    i = draw(st.sampled_from(candidates))
    if kind == "delete":
        lines[i] = ""
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    else:
        value = draw(st.sampled_from(VALUES))
        m = ASSIGN.match(lines[i].rstrip("\n"))
        lines[i] = m.group(1) + value + "\n"
    return name, f"{kind} line {i + 1}", "".join(lines).encode()


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.skipif(not BUNDLED, reason="no bundled scenario files")
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_bundled_files_fail_cleanly_or_run(tmp_path_factory, case):
    name, how, data = case
    folder = tmp_path_factory.mktemp("fuzz")
    f = folder / name
    f.write_bytes(data)
    before = _listing(folder)
    r = CliRunner().invoke(main, ["check", str(f)])
    assert r.exit_code in (0, 2), (name, how, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), (name, how, repr(r.exception))
    assert _listing(folder) == before, (name, how)
    if r.exit_code == 2:
        assert r.stderr.startswith("error: ") and "Traceback" not in r.output, (name, how, r.output)
        return
    out = folder / "out"
    r = CliRunner().invoke(main, ["simulate", str(f), "-n", "10", "--no-exact", "--seed", "1", "--out", str(out)])
    assert r.exit_code == 0, (name, how, r.output, r.exception)
    shutil.rmtree(out, ignore_errors=True)
    os.sync() if hasattr(os, "sync") else None
