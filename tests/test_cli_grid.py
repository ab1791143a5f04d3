"""`doseesc grid FILE --out DIR`: the [[grid]] tables of a file, from the command line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main
from doseesc.grid import Grid

from test_validation import GOOD

SWEEP = """
[[grid]]
name = "size"
design = "3+3"
n_trials = 300
sample_size = [6, 9]
"""


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def proto(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(GOOD + SWEEP)
    return f


def test_grid_writes_the_result_and_matches_the_library(proto, tmp_path):
    out = tmp_path / "g"
    r = run("grid", proto, "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "grid 'size': 2 points x 1 scenarios, 300 trials each" in r.output
    assert "best point: max_n = " in r.output
    assert sorted(p.name for p in out.iterdir()) == ["best.json", "grid.csv", "pareto.png", "points.csv",
                                                      "provenance.json"]   # the default checkpoint is removed
    # The same grid through the library: same seed ([run] seed = 1), same numbers.
    p = doseesc.load_protocol(proto)
    lib = Grid.sample_size(p.designs["3+3"], list(p.scenarios.values()), [6, 9], n_trials=300, rng=1,
                           target=0.25).run().points()
    pts = pd.read_csv(out / "points.csv", index_col="point")
    assert pts["objective"].tolist() == pytest.approx(lib["objective"].tolist(), abs=1e-12)
    best = json.loads((out / "best.json").read_text())
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["sha256"] == p.sha256 and "doseesc grid" in prov["command"]
    assert best  # a feasible point exists (no constraints)


def test_grid_errors_name_what_is_wrong(proto, tmp_path):
    bare = tmp_path / "bare.toml"
    bare.write_text(GOOD)
    r = run("grid", bare, "--out", tmp_path / "x")
    assert r.exit_code == 2 and "no [[grid]] table" in r.output
    r = run("grid", proto, "--out", tmp_path / "x", "--name", "nope")
    assert r.exit_code == 2 and "no [[grid]] named 'nope' (grids: size)" in r.output
    r = run("grid", proto, "--out", tmp_path / "missing" / "x")
    assert r.exit_code == 2 and "does not exist" in r.output
    assert not (tmp_path / "x").exists()


def test_bad_grid_table_is_refused_at_load_naming_file_and_key(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(GOOD + SWEEP.replace('design = "3+3"', 'design = "BOIN"'))
    with pytest.raises(doseesc.DoseescError, match=r"p.toml: \[\[grid\]\] 'size': design = 'BOIN' is not a "):
        doseesc.load_protocol(f)
    f.write_text(GOOD + SWEEP + SWEEP)
    with pytest.raises(doseesc.DoseescError, match=r"two \[\[grid\]\] tables are named 'size'"):
        doseesc.load_protocol(f)
    f.write_text(GOOD + SWEEP.replace("sample_size = [6, 9]", "sample_size = []"))
    with pytest.raises(doseesc.DoseescError, match="sample_size"):
        doseesc.load_protocol(f)
