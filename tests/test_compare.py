"""Paired comparison and decision tables."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main

TRUTH = [doseesc.Scenario(true_tox=[0.05, 0.12, 0.25, 0.4], target=0.25, name="mid"),
         doseesc.Scenario(true_tox=[0.3, 0.45, 0.6, 0.7], target=0.25, name="toxic")]
DESIGNS = {"3+3": doseesc.ThreePlusThree(4), "BOIN": doseesc.BOIN(0.25, 4, max_n=24),
           "mTPI-2": doseesc.MTPI2(0.25, 4, max_n=24)}


def test_paired_differences():
    c = doseesc.compare(DESIGNS, TRUTH, 4000, rng=5)
    t = c.table()
    assert set(t["design"]) == set(DESIGNS) and set(t["scenario"]) == {"mid", "toxic"}
    ref = t[t["design"] == "3+3"]
    assert np.all(ref["diff"] == 0) and np.all(ref["diff_mcse"] == 0)
    for s in ("mid", "toxic"):
        for d in ("BOIN", "mTPI-2"):
            row = t[(t.scenario == s) & (t.design == d) & (t.metric == "p_correct")].iloc[0]
            base = t[(t.scenario == s) & (t.design == "3+3") & (t.metric == "p_correct")].iloc[0]
            assert row["diff"] == pytest.approx(row["estimate"] - base["estimate"], abs=1e-12)
    # pairing: common patients make the difference's MCSE smaller than the unpaired one
    row = t[(t.scenario == "mid") & (t.design == "mTPI-2") & (t.metric == "expected_n")].iloc[0]
    base = t[(t.scenario == "mid") & (t.design == "BOIN") & (t.metric == "expected_n")].iloc[0]
    c2 = doseesc.compare({"BOIN": DESIGNS["BOIN"], "mTPI-2": DESIGNS["mTPI-2"]}, TRUTH[:1], 4000, rng=5)
    t2 = c2.table()
    d2 = t2[(t2.design == "mTPI-2") & (t2.metric == "p_correct")].iloc[0]
    assert d2["diff_mcse"] < np.hypot(d2["mcse"], t2[(t2.design == "BOIN") & (t2.metric == "p_correct")]
                                      .iloc[0]["mcse"])
    assert c.wide().shape == (2, 3)
    # same patients: compare() equals separate simulate() calls with the same seed
    one = doseesc.simulate(DESIGNS["BOIN"], TRUTH[0], 4000, rng=5)
    np.testing.assert_array_equal(c.results[("mid", "BOIN")].selected, one.selected)
    assert base["estimate"] == pytest.approx(one.expected_n)


def test_compare_errors():
    with pytest.raises(doseesc.DoseescError, match="reference = 'x'"):
        doseesc.compare(DESIGNS, TRUTH, 100, reference="x")
    with pytest.raises(doseesc.DoseescError, match="both named 'BOIN'"):
        doseesc.compare([doseesc.BOIN(0.25, 4, max_n=9), doseesc.BOIN(0.3, 4, max_n=9)], TRUTH, 100)


def test_decision_table_matches_count_boundaries():
    d = doseesc.BOIN(0.30, 3, max_n=36)
    t = doseesc.decision_table(d)
    cb = d.count_boundaries()
    np.testing.assert_array_equal(t["escalate_if_le"].to_numpy(dtype=int), cb["escalate_le"])
    np.testing.assert_array_equal(t["deescalate_if_ge"].to_numpy(dtype=int), cb["deescalate_ge"])
    elim = t["eliminate_if_ge"].to_numpy(dtype=float, na_value=np.nan)
    np.testing.assert_array_equal(np.nan_to_num(elim, nan=99), np.where(cb["eliminate_ge"] > cb["n"], 99,
                                                                         cb["eliminate_ge"]))
    assert t.loc[12, "stay"] == "3-4"
    t33 = doseesc.decision_table(doseesc.ThreePlusThree(3))
    assert list(t33.index) == [3, 6] and t33.loc[3, "stay"] == "1" and t33.loc[6, "escalate_if_le"] == 1


def test_cli_table(tmp_path):
    from test_validation import GOOD
    f = tmp_path / "p.toml"
    f.write_text(GOOD.replace('[[scenario]]', '[[design]]\nname = "BOIN"\ntype = "BOIN"\nmax_n = 18\n\n[[scenario]]'))
    r = CliRunner().invoke(main, ["table", str(f), "-d", "BOIN", "--plot", str(tmp_path / "t.png")])
    assert r.exit_code == 0, r.output
    assert "escalate_if_le" in r.stdout and (tmp_path / "t.png").stat().st_size > 10_000
    r = CliRunner().invoke(main, ["table", str(f), "-d", "BOIN", "--grid", "--format", "csv", "--max-n", "6"])
    assert r.exit_code == 0 and "DU" in r.stdout
    r = CliRunner().invoke(main, ["table", str(f), "-d", "BOIN", "--format", "json"])
    import json
    assert json.loads(r.stdout)["table"][2]["eliminate_if_ge"] == 3
    r = CliRunner().invoke(main, ["table", str(f), "-d", "BOIN", "--plot", str(tmp_path / "t.txt")])
    assert r.exit_code == 2 and "use a .png" in r.stderr
    r = CliRunner().invoke(main, ["simulate", str(f), "-n", "300", "--detail", "full"])
    assert r.exit_code == 0 and "Paired comparison" in r.stdout
