"""Escalation paths: hand enumeration, probabilities, agreement with the exact engine and recommend()."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import doseesc
from conftest import SCENARIO_FILES
from doseesc.cli import main


def test_three_plus_three_two_cohorts_by_hand():
    """3+3, 3 tiers, 2 cohorts of 3 from the start, enumerated by hand from the rules."""
    dp = doseesc.paths(doseesc.ThreePlusThree(3), 2)
    want = {
        "1NNN": "next cohort at Tier 2",
        "1NNT": "next cohort at Tier 1",
        "1NTT": "stop (lowest tier too toxic); select No dose",
        "1TTT": "stop (lowest tier too toxic); select No dose",
        "1NNN 2NNN": "next cohort at Tier 3",
        "1NNN 2NNT": "next cohort at Tier 2",
        "1NNN 2NTT": "stop (MTD identified by the escalation rule); select Tier 1",
        "1NNN 2TTT": "stop (MTD identified by the escalation rule); select Tier 1",
        "1NNT 1NNN": "next cohort at Tier 2",
        "1NNT 1NNT": "stop (lowest tier too toxic); select No dose",
        "1NNT 1NTT": "stop (lowest tier too toxic); select No dose",
        "1NNT 1TTT": "stop (lowest tier too toxic); select No dose",
    }
    got = dict(zip(dp.nodes()["path"], dp.nodes()["decision"]))
    assert dp.n_nodes == 12 and got == want
    assert len(dp.table()) == 10  # 2 early stops + 8 paths of two cohorts


SCEN = [doseesc.Scenario(true_tox=p) for p in ([0.05, 0.15, 0.3, 0.5], [0.4, 0.5, 0.6, 0.7], [0.0, 0.0, 0.01, 1.0])]


@pytest.mark.parametrize("design", [doseesc.ThreePlusThree(4), doseesc.ThreePlusThree(4, deescalation=True),
                                    doseesc.BOIN(0.25, 4, max_n=24), doseesc.I3Plus3(0.25, 4, max_n=24),
                                    doseesc.BOIN(0.25, 4, max_n=24, titration=True)], ids=lambda d: d.label)
@pytest.mark.parametrize("scenario", SCEN, ids=["mid", "toxic", "degenerate"])
def test_complete_path_probabilities_sum_to_one(design, scenario):
    for start in ("", "1NNN"):
        if start and getattr(design, "titration", False):
            start = "1N"
        dp = doseesc.paths(design, 4, start=start, scenario=scenario)
        assert abs(dp.leaves()["probability"].sum() - 1) < 1e-12


def _full(design, scenario, ladder=None):
    n_cohorts = -(-design.max_n // design.cohort_size)
    return doseesc.paths(design, n_cohorts, scenario=scenario, ladder=ladder, max_nodes=2_000_000)


CASES = []
for f in SCENARIO_FILES:
    p = doseesc.load_protocol(f)
    for dname, d in p.designs.items():
        if d.kind == "3+3" or (d.kind == "BOIN" and d.max_n <= 24):  # KN3601 (N = 36): 22M nodes, too many
            CASES += [(f, dname, s) for s in p.scenarios]


@pytest.mark.parametrize("path,design,scenario", CASES, ids=[f"{f.stem}-{d}-{s}" for f, d, s in CASES])
def test_paths_to_the_end_give_the_exact_results(path, design, scenario):
    p = doseesc.load_protocol(path)
    d, s = p.designs[design], p.scenarios[scenario]
    dp = _full(d, s, p.tiers)
    leaves = dp.leaves()
    assert leaves["stop"].all()
    ex = doseesc.exact(d, s, ladder=p.tiers)
    labels = ["No dose", *p.tiers.tier_labels]
    p_sel = np.array([leaves.loc[leaves["selected"] == lab, "probability"].sum() for lab in labels])
    np.testing.assert_allclose(p_sel, ex.p_select, atol=1e-12, rtol=0)
    n_total = leaves["path"].map(lambda t: sum(len(c) - len(str(int("".join(ch for ch in c if ch.isdigit()))))
                                               for c in t.split()))
    assert abs((n_total * leaves["probability"]).sum() - ex.expected_n) < 1e-10


@pytest.mark.parametrize("design,start", [
    (doseesc.ThreePlusThree(3, deescalation=True), "1NNN 2NTN"),
    (doseesc.BOIN(0.3, 5, max_n=30), "1NNN 2NTN"),
    (doseesc.MTPI2(0.3, 5, max_n=30), ""),
    (doseesc.BOIN(0.3, 5, max_n=30, titration=True), "1N 2T"),
    (doseesc.BOIN(0.3, 5, max_n=30).stop_when_n_at_tier(6), "1NNN"),
    (doseesc.CRM(tuple(doseesc.crm_skeleton(0.3, 0.05, 2, 5)), 0.3, max_n=30), "1NNN 2NTN"),
    (doseesc.BOIN12(4, max_n=24), "1NEN"),
    (doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=2), "1NEN 2ENE"),
])
def test_every_node_agrees_with_recommend(design, start):
    dp = doseesc.paths(design, 3, start=start)
    for _, row in dp.nodes().iterrows():
        rec = doseesc.recommend(design, row["path"], warn=False)
        assert rec.stop == row["stop"], row["path"]
        if rec.stop:
            assert rec.reason.name.lower() == row["reason"]
            assert doseesc.DoseLadder.unlabelled(design.n_tiers).label(rec.selected) == row["selected"]
        else:
            assert rec.next_tier + 1 == row["next_tier"]
        assert row["path"].startswith(start)


def test_incomplete_start_cohort_is_completed():
    dp = doseesc.paths(doseesc.ThreePlusThree(3), 1, start="1NNN 2N")
    assert sorted(dp.nodes()["path"]) == ["1NNN 2NNN", "1NNN 2NNT", "1NNN 2NTT"]
    assert (dp.nodes()["size"] == 2).all()


def test_refuses_large_trees_naming_a_smaller_k():
    d = doseesc.BOIN(0.25, 6, max_n=36)
    assert doseesc.paths.__module__ == "doseesc.engines.paths"
    from doseesc.engines.paths import count_nodes
    counts = count_nodes(d, 4)
    dp = doseesc.paths(d, 4)
    assert counts == list(dp.nodes().groupby("cohort").size())  # the count is exact
    assert counts[0] == 4 and counts[1] < 16  # 3 DLTs of 3 at tier 1 eliminates it: no children
    limit = sum(counts[:3])
    with pytest.raises(doseesc.DoseescError, match="use at most 3 cohorts"):
        doseesc.paths(d, 9, max_nodes=limit)
    assert doseesc.paths(d, 3, max_nodes=limit).n_nodes == limit
    with pytest.raises(doseesc.DoseescError, match="already stopped"):
        doseesc.paths(doseesc.ThreePlusThree(3), 2, start="1TTT")
    with pytest.raises(doseesc.DoseescError, match="n_cohorts = 0"):
        doseesc.paths(d, 0)


def test_cli_paths(tmp_path):
    f = [p for p in SCENARIO_FILES if p.stem == "ecar01"][0]
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["paths", str(f), "-d", "BOIN", "-k", "3", "-s", "mtd-middle", "--out", str(out),
                                  "--plot", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    assert "complete paths of the next 3 cohorts" in r.stdout and "probability" in r.stdout
    assert (out / "paths.csv").exists() and (tmp_path / "p.png").stat().st_size > 20_000
    import pandas as pd
    t = pd.read_csv(out / "paths.csv")
    assert abs(t["probability"].sum() - 1) < 1e-9 and "cohort 3 DLTs" in t.columns
    r = CliRunner().invoke(main, ["paths", str(f), "-d", "BOIN", "-k", "9", "--max-nodes", "500"])
    import re
    k = int(re.search(r"use at most (\d+) cohorts", r.stderr).group(1))
    assert r.exit_code == 2 and 1 <= k < 9
    assert CliRunner().invoke(main, ["paths", str(f), "-d", "BOIN", "-k", str(k), "--max-nodes", "500"]).exit_code == 0
    assert CliRunner().invoke(main, ["paths", str(f), "-d", "BOIN", "-k", str(k + 1), "--max-nodes", "500"]).exit_code == 2
    r = CliRunner().invoke(main, ["paths", str(f), "-d", "3+3", "-k", "2", "--start", "1NXN"])
    assert r.exit_code == 2 and "unknown outcome letter 'X'" in r.stderr


def test_obd_design_paths_branch_on_toxicity_and_response():
    d = doseesc.BOIN12(3, max_n=18)
    sc = doseesc.Scenario(true_tox=[0.05, 0.2, 0.4], true_eff=[0.2, 0.5, 0.6], association=2.0)
    dp = doseesc.paths(d, 2, scenario=sc)
    first = dp.nodes()[dp.nodes()["cohort"] == 1]
    assert len(first) == 20                       # (3 + 3 choose 3) outcome mixes of N, T, E, B in a cohort of 3
    assert set("".join(first["outcome"].str[1:])) == set("NTEB")
    assert {"responses", "dlts"} <= set(first.columns)
    # conditional probabilities of one cohort are the multinomial over the joint cells
    j = sc.joint()[0]
    row = first[first["outcome"] == "1NEB"].iloc[0]
    assert row["cond_probability"] == pytest.approx(6 * j[0] * j[2] * j[3], abs=1e-14)
    assert abs(dp.leaves()["probability"].sum() - 1) < 1e-12
    assert "cohort 1 responses" in dp.table().columns
