"""Fair comparisons (issue 18 items 4 and 5): the question each design answers, and what a comparison must
say when designs differ in maximum N, safety stopping or expansion. Hand-worked on small designs built here."""

from __future__ import annotations

import math

import numpy as np
import pytest

import doseesc
from doseesc.compare import Comparison, conduct_notes, paired_difference
from doseesc.designs.base import Conduct, Design
from doseesc.designs.obd_pick import OBDPick

SKELETON = (0.05, 0.12, 0.25, 0.40)


def crm(max_n=12, **kw):
    return doseesc.CRM(SKELETON, 0.3, max_n=max_n, **kw)


# -- the question -------------------------------------------------------------------------------
def test_question_follows_uses_efficacy():
    assert doseesc.ThreePlusThree(4).question == "MTD"
    assert doseesc.BOIN(0.3, 4, max_n=12).question == "MTD"
    assert crm().question == "MTD"
    assert doseesc.BOIN12(4, max_n=12).question == "OBD"
    assert OBDPick(doseesc.ThreePlusThree(3)).question == "OBD"
    # declared on the class like the other capability tags (class access works, no instance needed)
    assert Design.question == "MTD" and doseesc.BOIN12.question == "OBD"


# -- safety stop, read from the design ------------------------------------------------------------
def test_three_plus_three_stops_at_the_lowest_tier():
    # 3/3 DLTs at the lowest tier: >= 2 of 3 -> MTD below the lowest tier -> stop, no dose
    assert doseesc.ThreePlusThree(4).stops_for_safety()


def test_boin_eliminates_the_lowest_tier():
    # target 0.3: 3/3 DLTs give Beta(1 + 3, 1 + 0); P(p > 0.3) = 1 - 0.3^4 = 0.9919 > 0.95 -> eliminated
    assert doseesc.BOIN(0.3, 4, max_n=12).stops_for_safety()


def test_crm_stops_only_with_a_safety_slot():
    assert not crm().stops_for_safety()                           # keeps treating at tier 1 however toxic
    assert crm().safety_stop(0.95).stops_for_safety()             # 3/3: P(p > 0.3 | Beta(4, 1)) = 0.9919 > 0.95
    # cutoff 0.9999: 3/3 gives 1 - 0.3^4 = 0.9919, 6/6 gives 1 - 0.3^7 = 0.99978: neither is above it, so
    # with max_n 6 the stop can never act; 9/9 gives 1 - 0.3^10 = 0.999994 > 0.9999: with max_n 9 it can
    assert not crm(max_n=6).safety_stop(0.9999).stops_for_safety()
    assert crm(max_n=9).safety_stop(0.9999).stops_for_safety()
    assert crm().stop_when_too_toxic("lowest", 0.35, 0.9).stops_for_safety()


def test_tite_crm_like_crm():
    tite = doseesc.TITECRM(SKELETON, 0.3, max_n=12)
    assert not tite.stops_for_safety()
    assert tite.safety_stop(0.95).stops_for_safety()


def test_obd_pick_inherits_its_base_safety():
    assert OBDPick(doseesc.ThreePlusThree(3)).stops_for_safety()
    assert not OBDPick(crm()).stops_for_safety()


# -- maximum N and expansion -----------------------------------------------------------------------
def test_largest_n():
    # 3+3 decides at 3 and 6 patients and never stays at 6: at most 6 per tier, 4 tiers -> 24 even with max_n 36
    assert doseesc.ThreePlusThree(4, max_n=36).largest_n() == 24
    assert doseesc.ThreePlusThree(4, max_n=18).largest_n() == 18
    assert doseesc.BOIN(0.3, 4, max_n=36).largest_n() == 36
    # tier_cap 5 with 4 tiers: at most 20
    assert doseesc.BOIN(0.3, 4, max_n=36).cap_per_tier(5).largest_n() == 20
    # OBD pick: its base's 24 plus 2 x 6 expansion (its max_n is 36 + 12 = 48)
    pick = OBDPick(doseesc.ThreePlusThree(4, max_n=36), expansion=6)
    assert pick.max_n == 48 and pick.largest_n() == 36


def test_conduct_summary():
    pick = OBDPick(doseesc.ThreePlusThree(4, max_n=36), expansion=6)
    assert pick.conduct() == Conduct(max_n=36, safety_stop=True, expansion=6, question="OBD",
                                     expansion_text="+6 per tier expansion")
    assert crm(max_n=36).conduct() == Conduct(max_n=36, safety_stop=False, expansion=0, question="MTD")
    assert doseesc.BOIN(0.3, 4, max_n=36).expansion == 0


def test_conduct_notes_name_every_difference():
    designs = {"3+3": doseesc.ThreePlusThree(4, max_n=36), "BOIN": doseesc.BOIN(0.3, 4, max_n=36),
               "CRM": crm(max_n=36), "pick": OBDPick(doseesc.ThreePlusThree(4, max_n=36), expansion=6)}
    notes = conduct_notes(designs)
    # largest N: 24, 36, 36, 36 (the pick 24 + 12): most designs 36, so only the 3+3 is flagged
    assert notes["3+3"] == ["max N 24 (others 36)"]
    assert notes["BOIN"] == []
    assert notes["CRM"] == ["no safety stop"]
    assert notes["pick"] == ["+6 per tier expansion"]
    # An expansion that fills the places up to max_n is named as such (the 3+3's max_n 24 here).
    fill = {"3+3": doseesc.ThreePlusThree(4, max_n=24), "pick": OBDPick(doseesc.ThreePlusThree(4, max_n=24), fill=True)}
    assert conduct_notes(fill) == {"3+3": [], "pick": ["expansion to N = 24"]}


def test_conduct_notes_empty_when_designs_agree():
    same = {"BOIN": doseesc.BOIN(0.3, 4, max_n=24), "CRM": crm(max_n=24).safety_stop()}
    assert conduct_notes(same) == {"BOIN": [], "CRM": []}
    # two values, one design each: both flagged
    two = {"a": doseesc.BOIN(0.3, 4, max_n=24), "b": doseesc.BOIN(0.3, 4, max_n=30)}
    assert conduct_notes(two) == {"a": ["max N 24 (others 30)"], "b": ["max N 30 (others 24)"]}


# -- the comparison table on each design's question -------------------------------------------------
TRUTH = doseesc.Scenario(true_tox=[0.05, 0.1, 0.3, 0.5], true_eff=[0.1, 0.5, 0.55, 0.6], target=0.3, name="s")


def test_table_reports_each_design_on_its_question():
    designs = {"3+3": doseesc.ThreePlusThree(4), "BOIN": doseesc.BOIN(0.3, 4, max_n=24),
               "BOIN12": doseesc.BOIN12(4, max_n=24), "pick": OBDPick(doseesc.ThreePlusThree(4))}
    c = doseesc.compare(designs, TRUTH, 600, rng=3)
    t = c.table()
    assert c.questions() == {"3+3": "MTD", "BOIN": "MTD", "BOIN12": "OBD", "pick": "OBD"}
    assert c.question_reference("MTD") == "3+3" and c.question_reference("OBD") == "BOIN12"
    q = t[t.metric == "p_correct_question"].set_index("design")
    for d in ("3+3", "BOIN"):
        assert q.loc[d, "estimate"] == c.results[("s", d)].p_correct and q.loc[d, "question"] == "MTD"
    for d in ("BOIN12", "pick"):
        assert q.loc[d, "estimate"] == c.results[("s", d)].p_select_obd and q.loc[d, "question"] == "OBD"
    # differences within a question only: pick against BOIN12 (paired), BOIN against 3+3
    pick, b12 = c.results[("s", "pick")], c.results[("s", "BOIN12")]
    delta = (pick.selected == pick.true_obd).astype(float) - (b12.selected == b12.true_obd).astype(float)
    assert q.loc["pick", "versus"] == "BOIN12"
    assert q.loc["pick", "diff"] == pytest.approx(delta.mean(), abs=1e-12)
    assert q.loc["pick", "diff_mcse"] == pytest.approx(delta.std(ddof=1) / math.sqrt(600), abs=1e-12)
    assert q.loc["BOIN12", "diff"] == 0 and q.loc["3+3", "diff"] == 0
    assert set(t["method"]) == {"monte carlo"}
    assert c.wide("p_correct_question").loc["s", "BOIN12"] == q.loc["BOIN12", "estimate"]


def test_exact_results_in_a_comparison_are_not_paired_and_say_so():
    a, b = doseesc.ThreePlusThree(3), doseesc.BOIN(0.3, 3, max_n=9)
    sc = doseesc.Scenario(true_tox=[0.1, 0.3, 0.5], target=0.3, name="s")
    ex_a, ex_b = doseesc.exact(a, sc), doseesc.exact(b, sc)
    mc_b = doseesc.simulate(b, sc, 400, rng=1)
    # both exact: the difference of exact values, MCSE 0
    d, se = paired_difference(ex_b, ex_a, "p_correct")
    assert d == pytest.approx(ex_b.p_correct - ex_a.p_correct, abs=1e-12) and se == 0
    # one exact, one Monte Carlo: the difference of the estimates, the MCSE of the Monte Carlo one
    d, se = paired_difference(mc_b, ex_a, "p_correct")
    assert d == pytest.approx(mc_b.p_correct - ex_a.p_correct) and se == pytest.approx(mc_b.p_correct_mcse)
    comp = Comparison(results={("s", "3+3"): ex_a, ("s", "BOIN"): ex_b}, designs=("3+3", "BOIN"), scenarios=("s",),
                      reference="3+3", n_trials=0, seed={})
    t = comp.table()
    assert set(t["method"]) == {"exact"} and (t["mcse"] == 0).all()
    row = t[(t.design == "BOIN") & (t.metric == "p_select[No dose]")].iloc[0]
    assert row["diff"] == pytest.approx(ex_b.p_select[0] - ex_a.p_select[0], abs=1e-12)
    assert row["estimate"] == pytest.approx(ex_b.p_select[0], abs=1e-12)
    np.testing.assert_allclose(t[t.design == "BOIN"]["diff_mcse"], 0)
