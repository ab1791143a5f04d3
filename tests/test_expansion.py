"""The expansion design (issue 19 item 3): escalation, then expansion cohorts up to a total N.

Boundary used in the hand-worked logs (Beta(1, 1) prior, target 0.25, cutoff 0.95, n >= 3):
P(p > 0.25 | Beta(1 + y, 1 + n - y)) > 0.95 first at y = 3 of 3, 4 of 6, 5 of 9, 6 of 12
(e.g. 5 of 9: 0.980; 4 of 9: 0.922; 3 of 6: 0.929; 2 of 3: 0.949).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import doseesc
from doseesc import DesignError, Expansion, StopReason
from doseesc.designs import design_from_dict
from doseesc.outcomes import parse_outcomes

TPT = doseesc.ThreePlusThree(4)
SC = doseesc.Scenario(true_tox=[0.05, 0.12, 0.25, 0.40], name="mid", target=0.25)
SC_EFF = doseesc.Scenario(true_tox=[0.05, 0.15, 0.35], true_eff=[0.2, 0.45, 0.55], name="eff", target=0.25)


def rec(design, log):
    return doseesc.recommend(design, log, warn=False)


def test_boundary_numbers_used_below():
    p = lambda y, n: special.betaincc(1 + y, 1 + n - y, 0.25)  # noqa: E731
    assert p(5, 9) > 0.95 > p(4, 9)
    assert p(4, 6) > 0.95 > p(3, 6)
    assert p(3, 3) > 0.95 > p(2, 3)
    assert p(6, 12) > 0.95 > p(5, 12)


def test_selected_layout_moves_down_on_crossing_and_never_returns():
    d = Expansion(TPT, to_n=24, layout="selected", target=0.25)
    # 3+3: tier 3 has 2/3 -> stop, MTD tier 2; expansion cohorts of 3 at tier 2 (0-based 1)
    r = rec(d, "1NNN 2NNN 3TTN")
    assert not r.stop and r.next_tier == 1 and int(r.state.size[0]) == 3
    # tier 2: 3/6 (0.929 <= 0.95): stays at tier 2
    assert rec(d, "1NNN 2NNN 3TTN 2TTT").next_tier == 1
    # tier 2: 5/9 (0.980 > 0.95): tier 2 (and 3, 4) closed, the expansion moves to tier 1
    r = rec(d, "1NNN 2NNN 3TTN 2TTT 2TTN")
    assert r.next_tier == 0 and r.state.fired[0] & doseesc.Rule.ELIMINATION
    # never back to tier 2, whatever tier 1 shows
    assert rec(d, "1NNN 2NNN 3TTN 2TTT 2TTN 1NNN 1NNN").next_tier == 0
    # 24 patients: the expansion is complete; isotonic pick among open tiers: tier 1 alone
    r = rec(d, "1NNN 2NNN 3TTN 2TTT 2TTN 1NNN 1NNN 1NNN")
    assert r.stop and r.reason == StopReason.EXPANSION_DONE and r.selected == 0
    assert sum(r.n) == 24


def test_crossing_at_the_lowest_tier_stops_with_no_dose():
    d = Expansion(TPT, to_n=24, layout="selected", target=0.25)
    # 3+3: 2/3 at tier 2 -> MTD tier 1; expansion at tier 1; tier 1 5/9 crosses -> no open tier
    assert rec(d, "1NNN 2TTN").next_tier == 0
    assert rec(d, "1NNN 2TTN 1TTT").next_tier == 0          # 3/6: 0.929, no crossing
    r = rec(d, "1NNN 2TTN 1TTT 1TTN")                       # 5/9: 0.980
    assert r.stop and r.reason == StopReason.TOO_TOXIC and r.selected == -1
    # on_crossing = "stop": the expansion ends at the crossing, the pick stays below the closed tier
    s = Expansion(TPT, to_n=24, layout="selected", target=0.25, on_crossing="stop")
    r = rec(s, "1NNN 2NNN 3TTN 2TTT 2TTN")
    assert r.stop and r.reason == StopReason.EXPANSION_DONE and r.selected == 0


def test_selected_and_below_alternates_and_randomised_keeps_the_surviving_arm():
    d = Expansion(TPT, to_n=24, layout="selected+below", target=0.25)
    assert rec(d, "1NNN 2NNN 3TTN").next_tier == 1            # the selected tier first
    assert rec(d, "1NNN 2NNN 3TTN 2NNN").next_tier == 0       # then the tier below
    assert rec(d, "1NNN 2NNN 3TTN 2NNN 1NNN").next_tier == 1  # alternating
    # MTD tier 3 (0-based 2) of 4, N = 30: pair (3, 2); tier 3 reaches 5/9 after 21 patients
    log = "1NNN 2NNN 3NNN 4TTN 3TTT 2NNN 3TTN"
    below = Expansion(TPT, to_n=30, layout="selected+below", target=0.25)
    rand = Expansion(TPT, to_n=30, layout="randomised", target=0.25)
    for design in (below, rand):
        assert rec(design, "1NNN 2NNN 3NNN 4TTN").next_tier == 2
        assert rec(design, "1NNN 2NNN 3NNN 4TTN 3TTT").next_tier == 1   # 3/6 at tier 3: no crossing
        assert rec(design, "1NNN 2NNN 3NNN 4TTN 3TTT 2NNN").next_tier == 2
        assert rec(design, log).next_tier == 1                           # tier 3 closed
    # selected+below: the pair moves down to (2, 1) and alternates; randomised: tier 2 alone
    assert rec(below, log + " 2NNN").next_tier == 0
    assert rec(rand, log + " 2NNN").next_tier == 1
    r = rec(rand, log + " 2NNN 2NNN 2NNN")
    assert r.stop and r.reason == StopReason.EXPANSION_DONE and sum(r.n) == 30


def test_blocks_order_and_a_short_last_cohort():
    d = Expansion(TPT, to_n=24, layout="selected+below", order="blocks", target=0.25)
    # 9 treated, R = 15 left: ceil(15 / 2) = 8 at tier 2 (cohorts 3, 3, 2), then 7 at tier 1 (3, 3, 1)
    log = "1NNN 2NNN 3TTN"
    for add, tier, size in (("", 1, 3), (" 2NNN", 1, 3), (" 2NNN", 1, 2), (" 2NN", 0, 3), (" 1NNN", 0, 3),
                            (" 1NNN", 0, 1)):
        log += add
        r = rec(d, log)
        assert (r.next_tier, int(r.state.size[0])) == (tier, size), log
    r = rec(d, log + " 1N")
    assert r.stop and sum(r.n) == 24 and r.n[:2] == (3 + 7, 3 + 8)


def test_final_selection_from_all_data():
    # selected+below after "1NNN 2NNN 3TTN": tier 2 ends with 5/12 (0.920: no crossing), tier 1 with 1/9
    log = "1NNN 2NNN 3TTN 2TTN 1TNN 2TTN 1NNN 2TNN"
    iso = Expansion(TPT, to_n=24, layout="selected+below", target=0.25)
    r = rec(iso, log)
    assert r.stop and r.reason == StopReason.EXPANSION_DONE and r.n[:3] == (9, 12, 3) and r.y[:3] == (1, 5, 2)
    # isotonic (no violation): tier 1 (1 + 0.05) / (9 + 0.1) = 0.115, tier 2 (5.05) / 12.1 = 0.417;
    # tier 3 is above the expansion's highest tier. |0.115 - 0.25| = 0.135 < |0.417 - 0.25| = 0.167
    assert r.selected == 0
    esc = Expansion(TPT, to_n=24, layout="selected+below", target=0.25, selection="escalation")
    assert rec(esc, log).selected == 1
    # the OBD pick (utility 40 neither, 0 DLT only, 100 response only, 60 both): tier 1 "NNN TNN NNN"
    # with E for every N: 8 x 100 + 1 x 0 = 800 / 9 = 88.9; tier 2 all N -> 40 x 7 / 12 = 23.3
    pick = Expansion(TPT, to_n=24, layout="selected+below", target=0.25, selection="obd-pick")
    r = rec(pick, "1EEE 2NNN 3TTN 2TTN 1TEE 2TTN 1EEE 2TNN")
    assert r.selected == 0


def test_obd_pick_fill_is_a_case_of_the_expansion():
    """OBDPick(fill) = Expansion(blocks, no monitoring, OBD pick, target 1/3): trial for trial (Monte Carlo)
    and exactly (exact engine)."""
    base = doseesc.ThreePlusThree(3, max_n=15)
    old = doseesc.OBDPick(base, fill=True)
    new = Expansion(base, layout="selected+below", order="blocks", monitor=False, selection="obd-pick",
                    target=1 / 3)
    assert new.to_n == 15
    a, b = doseesc.simulate(old, SC_EFF, 2000, rng=5).trials(), doseesc.simulate(new, SC_EFF, 2000, rng=5).trials()
    for col in a.columns:
        if col != "log":   # the expansion treats the same patients in cohorts of 3 rather than 2 blocks
            assert (a[col].astype(str) == b[col].astype(str)).all(), col
    ea, eb = doseesc.exact(old, SC_EFF), doseesc.exact(new, SC_EFF)
    np.testing.assert_allclose(ea.p_select, eb.p_select, atol=1e-12)


def _agree(design, scenario, n_trials, seed):
    ex = doseesc.exact(design, scenario)
    mc = doseesc.simulate(design, scenario, n_trials, rng=seed)
    p = np.clip(ex.p_select, 0, 1)
    se = np.sqrt(p * (1 - p) / n_trials)
    assert abs(ex.p_select.sum() - 1) < 1e-9
    assert np.all(np.abs(mc.p_select - p) <= 4 * se + 1e-12), (mc.p_select, p)
    return ex, mc


def test_exact_and_monte_carlo_agree_3plus3_to_24():
    d = Expansion(TPT, to_n=24, layout="selected+below", target=0.25)
    ex, mc = _agree(d, SC, 4000, 11)
    assert ex.n.sum(axis=1).max() <= 24 and mc.n.sum(axis=1).max() <= 24
    # every trial that names an MTD treats 24 (the 3+3 alone treats 6 x 4 at most, fewer on average)
    full = (ex.n.sum(axis=1) == 24) | (ex.selected < 0)
    assert ex.weight[~full].sum() < 0.1


def test_exact_and_monte_carlo_agree_boin_to_30():
    boin = doseesc.BOIN(target=0.25, n_tiers=4, max_n=12)
    d = Expansion(boin, to_n=30, layout="randomised")
    assert d.selection == "base" and d.target == 0.25
    hot = doseesc.Scenario(true_tox=[0.10, 0.25, 0.45, 0.6], name="hot", target=0.25)
    ex, mc = _agree(d, hot, 4000, 12)
    assert ex.n.sum(axis=1).max() <= 30 and mc.n.sum(axis=1).max() <= 30
    # the boundary acted in some trials (tier closed during the expansion)
    assert (ex.fired & doseesc.Rule.ELIMINATION).any()


def _never_at_crossing(trials, n_tiers, target=0.25):
    """Each cohort of each logged trial is treated below the lowest tier whose data before it cross."""
    for log in trials["log"]:
        n = np.zeros(n_tiers)
        y = np.zeros(n_tiers)
        for c in parse_outcomes(log, n_tiers):
            over = (n >= 3) & (special.betaincc(1 + y, 1 + n - y, target) > 0.95)
            assert not over[: c.tier + 1].any(), log
            n[c.tier] += c.size
            y[c.tier] += sum(c.tox)


def test_never_above_to_n_and_never_treats_at_a_closed_tier():
    tox = doseesc.Scenario(true_tox=[0.2, 0.35, 0.5, 0.6], name="tox", target=0.25)
    for d in (Expansion(TPT, to_n=30, layout="selected+below", target=0.25),
              Expansion(doseesc.BOIN(target=0.25, n_tiers=4, max_n=12), to_n=24, layout="selected")):
        mc = doseesc.simulate(d, tox, 400, rng=3)
        assert mc.n.sum(axis=1).max() <= d.to_n
        _never_at_crossing(mc.trials(), 4)


def test_round_trip_file_table_and_check_design():
    d = Expansion(TPT, to_n=30, layout="selected+below", order="blocks", target=0.2, prior=(0.5, 1.5),
                  cutoff=0.9, selection="obd-pick", on_crossing="stop")
    again = design_from_dict(d.to_dict())
    assert again == d and again.to_dict() == d.to_dict()
    table = {"type": "expansion", "base": {"type": "3+3", "n_tiers": 4, "max_n": 36}, "layout": "selected+below",
             "target": 0.25, "selection": "obd-pick"}
    kn = design_from_dict(table)
    assert kn.to_n == 36 and kn.max_n == 36 and kn.largest_n() == 36 and kn.uses_efficacy
    assert kn.conduct().expansion_text == "expansion to N = 36"
    from doseesc.testing import check_design
    check_design(Expansion.example())


@pytest.mark.parametrize("kwargs,words", [
    ({"to_n": 20}, "to_n = 20 is below the 24"),
    ({"layout": "both"}, "layout = 'both'"),
    ({"order": "random"}, "order = 'random'"),
    ({"layout": "selected", "order": "blocks"}, "order = 'blocks' applies"),
    ({"prior": (0, 1)}, "prior[0] = 0"),
    ({"prior": (1, float("nan"))}, "prior[1] = nan"),
    ({"prior": (1,)}, "prior = (1,)"),
    ({"prior": "flat"}, "prior = 'flat'"),
    ({"cutoff": 1.2}, "cutoff = 1.2"),
    ({"min_n": 0}, "min_n = 0"),
    ({"on_crossing": "up"}, "on_crossing = 'up'"),
    ({"selection": "best"}, "selection = 'best'"),
    ({"selection": "base"}, "selection = 'base'"),
    ({"target": None}, "target: the base design"),
    ({"tier_cap": 6}, "tier_cap = 6: give the rule slots to the base design"),
])
def test_bad_input(kwargs, words):
    args = {"base": TPT, "to_n": 24, "layout": "selected", "target": 0.25, **kwargs}
    with pytest.raises(DesignError, match=None) as info:
        Expansion(**args)
    assert words in str(info.value)


def test_bad_base():
    with pytest.raises(DesignError, match="already has an expansion"):
        Expansion(doseesc.OBDPick(TPT), target=0.25)
    with pytest.raises(DesignError, match="base: type = 'nope'"):
        design_from_dict({"type": "expansion", "base": {"type": "nope"}, "target": 0.25})


@pytest.mark.parametrize("design", [
    Expansion(doseesc.BOIN(target=0.25, n_tiers=3, max_n=9), to_n=15, layout="randomised"),
    Expansion(doseesc.BOIN12(n_tiers=3, max_n=9), to_n=12, layout="selected+below"),
], ids=["BOIN", "BOIN12"])
def test_contract_with_other_bases(design):
    """The public contract (kernel = scalar replay, paths, batch invariance, bounds, exact vs MC) with an
    interval base and an OBD base (their own selection rule on all the data, tables sized for to_n)."""
    from doseesc.testing import check_design
    report = check_design(design)
    assert set(report.values()) == {"passed"}


def test_the_escalation_keeps_the_base_max_n_and_conduct():
    d = Expansion(doseesc.BOIN(target=0.25, n_tiers=4, max_n=10), to_n=21)
    # 9 treated: BOIN alone would treat 1 more (max_n 10), so the escalation's last cohort is of 1
    r = rec(d, "1NNN 2NNN 3NNN")
    assert r.next_tier == 3 and int(r.state.size[0]) == 1
    # 10 treated: BOIN stops (max_n) and names tier 4: estimates (0 + 0.05) / (3 + 0.1) = 0.016 at tiers
    # 1-3 and 0.05 / 1.1 = 0.045 at tier 4 (already non-decreasing); 0.045 is the closest to 0.25.
    # Layout "selected": expansion cohorts of 3 there
    r = rec(d, "1NNN 2NNN 3NNN 4N")
    assert r.next_tier == 3 and int(r.state.size[0]) == 3 and int(r.state.phase[0]) == 3
    c = d.conduct()
    assert c.max_n == 21 and c.safety_stop and c.expansion_text == "expansion to N = 21" and c.question == "MTD"
    assert Expansion(doseesc.CRM([0.1, 0.2, 0.3], target=0.25, max_n=12), monitor=False).conduct().safety_stop \
        is False


def test_no_place_left_is_the_base_alone():
    """to_n = the base's max_n with a base that uses every place (BOIN): no expansion, the base's own trials
    (its elimination is the boundary, so the cap by the boundary never bites)."""
    boin = doseesc.BOIN(target=0.25, n_tiers=4, max_n=15)
    a = doseesc.simulate(boin, SC, 1500, rng=21).trials()
    b = doseesc.simulate(Expansion(boin), SC, 1500, rng=21).trials()
    assert a.equals(b)
