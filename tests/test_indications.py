"""Several indications (or strata) in one protocol: model, parsing, pooled, parallel and staggered conduct."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

import doseesc
from doseesc.engines.strata import indication_seed, simulate_indications
from doseesc.errors import DesignError, ScenarioError
from doseesc.indications import (Conduct, Indication, Indications, IndicationScenario, conduct_from_toml,
                                 indications_from_toml, scenario_from_toml)

TOX = [0.05, 0.15, 0.30, 0.45]
EFF = [0.20, 0.30, 0.50, 0.50]
THREE = Indications((Indication("RA", share=0.5), Indication("SLE", share=0.3), Indication("SSc", share=0.2)))
TWO = Indications((Indication("adults", share=0.5, age=(18, 50)), Indication("children", share=0.5, age=(1, 17))))


def _designs():
    return [doseesc.ThreePlusThree(n_tiers=4),
            doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3),
            doseesc.CRM(target=0.25, n_tiers=4, max_n=18, cohort_size=3,
                        skeleton=tuple(doseesc.crm_skeleton(0.25, 0.05, 1, 4))),
            doseesc.BOIN12(n_tiers=4, max_n=24, cohort_size=3)]


def _same_arrays(a, b):
    for key in ("n", "y", "selected", "reason", "fired"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    if a.e is not None:
        assert np.array_equal(a.e, b.e)
    for key in a.patients:
        assert np.array_equal(a.patients[key], b.patients[key]), key


# -- model and parsing -------------------------------------------------------------------------------------
def test_shares_must_sum_to_one_and_errors_name_key_and_value():
    with pytest.raises(ScenarioError, match=r"0.5 \(RA\) \+ 0.3 \(SLE\) = 0.8; the shares of accrual must sum to 1"):
        Indications((Indication("RA", share=0.5), Indication("SLE", share=0.3)))
    with pytest.raises(ScenarioError, match="share = 1.5 must lie in"):
        Indication("RA", share=1.5)
    with pytest.raises(ScenarioError, match="exactly one of share"):
        Indication("RA")
    with pytest.raises(ScenarioError, match="not a mix"):
        Indications((Indication("RA", share=1.0), Indication("SLE", accrual_per_month=2)))
    with pytest.raises(ScenarioError, match="age = \\[17.0, 1.0\\]|age = \\[17, 1\\]"):
        Indication("kids", share=1, age=(17, 1))
    # own accrual rates: shares are rates over their sum (1 + 3 = 4: 0.25 and 0.75)
    rates = Indications((Indication("a", accrual_per_month=1), Indication("b", accrual_per_month=3)))
    assert rates.shares.tolist() == [0.25, 0.75]


def test_indication_drawn_by_share():
    # cumulative shares 0.5, 0.8: u < 0.5 -> RA, 0.5 <= u < 0.8 -> SLE, else SSc
    u = np.array([0.0, 0.49, 0.5, 0.79, 0.8, 0.999])
    assert THREE.draw(u).tolist() == [0, 0, 1, 1, 2, 2]


FILE = """
[[indication]]
name = "RA"
share = 0.6
eligibility = "adults with refractory RA"
[[indication]]
name = "SLE"
share = 0.4
age = [18, 65]

[[scenario]]
name = "split"
true_tox = [0.05, 0.15, 0.30, 0.45]
[scenario.indication.SLE]
true_tox = [0.10, 0.25, 0.45, 0.60]
"""


def test_file_schema_and_pooled_mixture():
    data = tomllib.loads(FILE)
    inds = indications_from_toml(data, "x.toml")
    assert inds.names == ("RA", "SLE") and inds.entries[1].age == (18.0, 65.0)
    sc = scenario_from_toml(data["scenario"][0], inds, "x.toml: [[scenario]] 'split'", target=0.25)
    assert sc.truth("RA").true_tox == tuple(TOX)
    assert sc.truth("SLE").true_tox == (0.10, 0.25, 0.45, 0.60)
    # pooled P(DLT) at tier 1: 0.6 * 0.05 + 0.4 * 0.10 = 0.07; tier 4: 0.6 * 0.45 + 0.4 * 0.60 = 0.51
    assert sc.pooled.true_tox[0] == pytest.approx(0.07) and sc.pooled.true_tox[3] == pytest.approx(0.51)
    assert not sc.identical and sc.pooled.target == 0.25
    # a single list means the same for all: the pooled scenario is the scenario itself
    same = scenario_from_toml({"name": "s", "true_tox": TOX}, inds, "x")
    assert same.identical and same.pooled.true_tox == tuple(TOX)


def test_file_errors_name_file_key_and_value():
    inds = indications_from_toml(tomllib.loads(FILE), "x.toml")
    with pytest.raises(ScenarioError, match=r"x.toml: \[\[scenario\]\] 's': indication 'SSc' is not declared in "
                                            r"\[\[indication\]\] \(declared: RA, SLE\)"):
        scenario_from_toml({"name": "s", "true_tox": TOX, "indication": {"SSc": {"true_tox": TOX}}}, inds,
                           "x.toml: [[scenario]] 's'")
    with pytest.raises(ScenarioError, match=r"indication.SLE.true_tox\[2\] = 1.3 is not a probability"):
        scenario_from_toml({"name": "s", "true_tox": TOX, "indication": {"SLE": {"true_tox": [0.1, 0.2, 1.3, 0.5]}}},
                           inds, "x")
    with pytest.raises(ScenarioError, match="no true_tox for indication 'RA'"):
        scenario_from_toml({"name": "s", "indication": {"SLE": {"true_tox": TOX}}}, inds, "x")
    with pytest.raises(ScenarioError, match="declares no \\[\\[indication\\]\\] tables"):
        scenario_from_toml({"name": "s", "true_tox": TOX, "indication": {"SLE": {}}}, None, "x")
    with pytest.raises(ScenarioError, match=r"x.toml: \[\[indication\]\] share: 0.6 \(RA\) \+ 0.6 \(SLE\) = 1.2"):
        indications_from_toml({"indication": [{"name": "RA", "share": 0.6}, {"name": "SLE", "share": 0.6}]}, "x.toml")
    with pytest.raises(ScenarioError, match="unknown key 'shar'"):
        indications_from_toml({"indication": [{"name": "RA", "shar": 1}]}, "x.toml")


def test_conduct_parsing_and_errors():
    d = doseesc.ThreePlusThree(n_tiers=4)
    boin = doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3)
    c = conduct_from_toml({"policy": "parallel", "indication": {"adults": {"design": "BOIN", "max_n": 12, "start": 2}}},
                          TWO, {"BOIN": boin}, 4, "x: [[design]] '3+3'")
    design, start = c.design_for("adults", d)
    assert design.max_n == 12 and design.kind == boin.kind and start == 1      # start = 2 (1-based) -> 1
    assert c.design_for("children", d) == (d, 0)
    with pytest.raises(DesignError, match="offset = 4 puts the second stratum below the lowest tier"):
        conduct_from_toml({"policy": "staggered", "offset": 4}, TWO, {}, 4, "x")
    with pytest.raises(DesignError, match="conduct.indication 'teens' is not declared"):
        conduct_from_toml({"policy": "parallel", "indication": {"teens": {"max_n": 6}}}, TWO, {}, 4, "x")
    with pytest.raises(DesignError, match="policy = 'sequential' must be one of pooled, parallel, staggered"):
        conduct_from_toml("sequential", TWO, {}, 4, "x")
    with pytest.raises(DesignError, match="needs exactly two strata"):
        conduct_from_toml("staggered", THREE, {}, 4, "x")
    with pytest.raises(DesignError, match="declares no \\[\\[indication\\]\\]"):
        conduct_from_toml("pooled", None, {}, 4, "x")


# -- pooled conduct ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("design", _designs(), ids=lambda d: d.kind)
def test_pooled_with_identical_truths_is_the_plain_run(design):
    sc = doseesc.Scenario(true_tox=TOX, true_eff=EFF, target=0.25, name="s")
    plain = doseesc.simulate(design, sc, 1500, rng=7, batch_size=1000)
    r = simulate_indications(design, sc, THREE, "pooled", 1500, rng=7, batch_size=700)
    _same_arrays(plain, r.pooled)
    # per-indication counts add up to the pooled ones
    for key in ("n", "y", "e"):
        assert np.array_equal(sum(getattr(r.results[i], key) for i in THREE.names), getattr(r.pooled, key))
    # shares: about 50/30/20% of the patients (1500 trials, > 20,000 patients: within 2 points)
    share = np.array([r.results[i].n.sum() for i in THREE.names]) / r.pooled.n.sum()
    assert np.allclose(share, [0.5, 0.3, 0.2], atol=0.02)


def test_pooled_outcomes_follow_each_patients_indication():
    # RA never has a DLT, SLE always: every DLT is an SLE patient's and every SLE patient has one
    sc = IndicationScenario.build("x", Indications((Indication("RA", share=0.5), Indication("SLE", share=0.5))),
                                  [doseesc.Scenario(true_tox=[0, 0, 0, 0]), doseesc.Scenario(true_tox=[1, 1, 1, 1])],
                                  target=0.25)
    r = simulate_indications(doseesc.ThreePlusThree(n_tiers=4), sc, None, "pooled", 300, rng=3)
    ra, sle = r.results["RA"], r.results["SLE"]
    assert ra.y.sum() == 0 and np.array_equal(sle.y, sle.n) and sle.n.sum() > 0
    # the indication of each patient slot is recorded; DLT iff SLE among treated patients
    tier, tox = r.pooled.patients["tier"], r.pooled.patients["tox"]
    on = tier >= 0
    assert np.array_equal(tox[on], r.patient_indication[on] == 1)


def test_by_indication_tables():
    sc = scenario_from_toml({"name": "split", "true_tox": TOX, "true_eff": EFF,
                             "indication": {"SLE": {"true_tox": [0.10, 0.30, 0.45, 0.60]}}},
                            Indications((Indication("RA", share=0.6), Indication("SLE", share=0.4))), "x", 0.25)
    r = simulate_indications(doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3), sc, None, "pooled",
                             2000, rng=11)
    t = r.by_indication()
    assert set(t["indication"]) == {"RA", "SLE", "pooled"} and len(t) == 3 * 5
    m = r.indication_metrics().set_index("indication")
    # true MTD: RA tier 2 (0.15 <= 0.25 < 0.30), SLE tier 1 (0.10 <= 0.25 < 0.30)
    assert m.loc["RA", "true_mtd"] == "Tier 2" and m.loc["SLE", "true_mtd"] == "Tier 1"
    sel = r.pooled.selected
    # P(pooled selection above SLE's true MTD) = P(selected > tier index 0)
    assert m.loc["SLE", "p_above_mtd"] == pytest.approx((sel > 0).mean())
    assert m.loc["RA", "p_correct"] == pytest.approx((sel == 1).mean())
    assert m.loc["RA", "expected_n"] + m.loc["SLE", "expected_n"] == pytest.approx(m.loc["pooled", "expected_n"])
    ra = t[(t.indication == "RA") & (t.tier == "Tier 2")].iloc[0]
    assert ra["true_mtd"] and ra["p_select"] == pytest.approx((sel == 1).mean())
    assert r.to_dict()["indication_metrics"][0]["indication"] == "RA"


# -- parallel conduct ----------------------------------------------------------------------------------------
def test_parallel_with_one_indication_is_the_plain_run():
    d = doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3)
    sc = doseesc.Scenario(true_tox=TOX, target=0.25, name="s")
    r = simulate_indications(d, sc, Indications.one("all"), "parallel", 1000, rng=5, batch_size=300)
    _same_arrays(doseesc.simulate(d, sc, 1000, rng=5), r.results["all"])


def test_parallel_each_indication_is_its_own_run():
    d = doseesc.ThreePlusThree(n_tiers=4)
    boin = doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3)
    adults = doseesc.Scenario(true_tox=TOX, target=0.25)
    kids = doseesc.Scenario(true_tox=[0.10, 0.25, 0.40, 0.55], target=0.25)
    sc = IndicationScenario.build("x", TWO, [adults, kids], target=0.25)
    conduct = Conduct("parallel", overrides=(doseesc.indications.IndicationConduct("children", design=boin,
                                                                                     max_n=12),))
    r = simulate_indications(d, sc, None, conduct, 4000, rng=9)
    # bit-identical to a plain run of each indication's own design on its own seed stream
    _same_arrays(doseesc.simulate(d, sc.truths[0], 4000, rng=9), r.results["adults"])
    kid_design = conduct.design_for("children", d)[0]
    seq = indication_seed(np.random.SeedSequence(9), 1)
    _same_arrays(doseesc.simulate(kid_design, sc.truths[1], 4000, rng=seq), r.results["children"])
    assert r.results["children"].total_n.max() <= 12
    # and within 4 MCSE of exact enumeration
    for name, design in (("adults", d), ("children", kid_design)):
        oc = r.results[name]
        ex = doseesc.exact(design, oc.scenario)
        assert np.all(np.abs(oc.p_select - ex.p_select) <= 4 * np.maximum(oc.p_select_mcse, 1e-3))


def test_parallel_start_tier():
    # start at tier 3 (0-based 2): every trial's first patient is treated there
    d = doseesc.BOIN(target=0.25, n_tiers=4, max_n=12, cohort_size=3)
    conduct = Conduct("parallel", overrides=(doseesc.indications.IndicationConduct("children", start=2),))
    r = simulate_indications(d, doseesc.Scenario(true_tox=TOX, target=0.25), TWO, conduct, 200, rng=1)
    assert (r.results["children"].patients["tier"][:, 0] == 2).all()
    assert (r.results["adults"].patients["tier"][:, 0] == 0).all()


# -- staggered strata --------------------------------------------------------------------------------------
def test_staggered_hand_worked_trial():
    # 3+3 without de-escalation in both strata; adults P(DLT) = 0, 0, 0, 1; children 0, 0, 1, 1;
    # the children open once adults have cleared tier 2 (opens_after = 1, 0-based), offset 1.
    # round 1: adults T1 0/3 -> T2 (T1 cleared); children not open (need tier 2 cleared)
    # round 2: adults T2 0/3 -> T3 (T2 cleared); children open at min(T3 - 1, T2) = T2 after 6 adults;
    #          children T2 0/3 -> T3 (T3 is not cleared yet but adults clear it before their next cohort)
    # round 3: adults T3 0/3 -> T4 (T3 cleared); children T3 3/3 -> stop, MTD T2
    # round 4: adults T4 3/3 -> stop, MTD T3
    sc = IndicationScenario.build("h", TWO, [doseesc.Scenario(true_tox=[0, 0, 0, 1]),
                                             doseesc.Scenario(true_tox=[0, 0, 1, 1])], target=0.25)
    r = simulate_indications(doseesc.ThreePlusThree(n_tiers=4), sc, None,
                             Conduct("staggered", offset=1, opens_after=1), 2, rng=1)
    a, b = r.results["adults"], r.results["children"]
    assert a.n[0].tolist() == [3, 3, 3, 3] and a.y[0].tolist() == [0, 0, 0, 3] and a.selected[0] == 2
    assert b.n[0].tolist() == [0, 3, 3, 0] and b.y[0].tolist() == [0, 0, 3, 0] and b.selected[0] == 1
    assert r.extra["open_n"][0] == 6 and r.extra["opened"][0]
    assert r.extra["cap"][0, :6].tolist() == [1, 1, 1, 2, 2, 2]      # cleared tier when each child was treated


def test_staggered_children_wait_and_stop_at_the_cleared_tier():
    # adults: T1 0/3, T2 3/3 -> stop, MTD T1 (cleared tier 0 then final 0); children never toxic:
    # round 1: adults T1 0/3 -> T2 (T1 cleared); children open at max(min(T2 - 1, T1), T1) = T1: 0/3 -> want T2
    # round 2: adults T2 3/3 -> stop, MTD T1; children want T2 > cleared T1 and adults stopped: stop, MTD T1
    sc = IndicationScenario.build("h", TWO, [doseesc.Scenario(true_tox=[0, 1, 1, 1]),
                                             doseesc.Scenario(true_tox=[0, 0, 0, 0])], target=0.25)
    r = simulate_indications(doseesc.ThreePlusThree(n_tiers=4), sc, None, Conduct("staggered", offset=1), 2, rng=1)
    b = r.results["children"]
    assert b.n[0].tolist() == [3, 0, 0, 0] and b.selected[0] == 0
    assert b.reason[0] == doseesc.StopReason.TIER_CAP


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_staggered_children_never_above_cleared_tier(offset):
    adults = doseesc.Scenario(true_tox=[0.05, 0.15, 0.30, 0.45])
    kids = doseesc.Scenario(true_tox=[0.02, 0.08, 0.15, 0.25])         # children would go higher on their own
    sc = IndicationScenario.build("mc", TWO, [adults, kids], target=0.25)
    for design in _designs()[:2]:
        r = simulate_indications(design, sc, None, Conduct("staggered", offset=offset), 3000, rng=4,
                                 batch_size=1024)
        tier, cap = r.results["children"].patients["tier"], r.extra["cap"]
        on = tier >= 0
        assert on.any() and (tier[on] <= cap[on]).all() and (cap[on] >= 0).all()
        assert (r.results["children"].selected <= r.extra["cleared"]).all()
        # the cap binds sometimes: with their lower toxicity, children alone would select above it
        assert (r.results["children"].reason == doseesc.StopReason.TIER_CAP).any()


def test_staggered_batch_invariance():
    sc = IndicationScenario.build("mc", TWO, [doseesc.Scenario(true_tox=TOX),
                                              doseesc.Scenario(true_tox=[0.1, 0.2, 0.3, 0.4])], target=0.25)
    d = doseesc.BOIN(target=0.25, n_tiers=4, max_n=24, cohort_size=3)
    r1 = simulate_indications(d, sc, None, "staggered", 1500, rng=8, batch_size=1500)
    r2 = simulate_indications(d, sc, None, "staggered", 1500, rng=8, batch_size=400)
    for name in TWO.names:
        _same_arrays(r1.results[name], r2.results[name])
