"""Efficacy outcomes, the true OBD, and the OBD pick after an MTD design."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import doseesc
from doseesc.designs.obd_pick import observed_utility
from doseesc.state import TrialState

S = doseesc.Scenario(true_tox=[0.05, 0.15, 0.35], true_eff=[0.3, 0.6, 0.65], association=2.0, target=0.25)


@pytest.mark.parametrize("psi", [0.3, 1.0, 2.0, 8.0])
def test_joint_probabilities_have_the_marginals_and_odds_ratio(psi):
    sc = dataclasses.replace(S, association=psi)
    j = sc.joint()  # N, T, E, B
    np.testing.assert_allclose(j.sum(axis=1), 1, atol=1e-14)
    np.testing.assert_allclose(j[:, 1] + j[:, 3], sc.true_tox, atol=1e-14)
    np.testing.assert_allclose(j[:, 2] + j[:, 3], sc.true_eff, atol=1e-14)
    np.testing.assert_allclose(j[:, 3] * j[:, 0] / (j[:, 1] * j[:, 2]), psi, rtol=1e-10)


def test_simulated_outcomes_follow_the_joint_distribution():
    d = doseesc.ThreePlusThree(1, max_n=6)
    sc = doseesc.Scenario(true_tox=[0.3], true_eff=[0.5], association=4.0)
    r = doseesc.simulate(d, sc, 40000, rng=5)
    tier, tox, eff = r.patients["tier"], r.patients["tox"], r.patients["eff"]
    on = tier >= 0
    cells = np.array([(~tox & ~eff)[on].mean(), (tox & ~eff)[on].mean(), (~tox & eff)[on].mean(), (tox & eff)[on].mean()])
    m = on.sum()
    p = sc.joint()[0]
    # patients within a trial are independent given their tier, whatever the design does next
    assert np.all(np.abs(cells - p) <= 4 * np.sqrt(p * (1 - p) / m))


def test_adding_efficacy_never_changes_toxicity_outcomes():
    tox_only = doseesc.Scenario(true_tox=list(S.true_tox))
    for d in (doseesc.BOIN(0.25, 3, max_n=18), doseesc.ThreePlusThree(3)):
        a = doseesc.simulate(d, tox_only, 3000, rng=2)
        b = doseesc.simulate(d, S, 3000, rng=2)
        np.testing.assert_array_equal(a.n, b.n)
        np.testing.assert_array_equal(a.selected, b.selected)
        assert a.e is None and b.e is not None


def test_true_obd_definitions_by_hand():
    # utility per tier with independence: 40 P(N) + 100 P(E) + 60 P(B)
    sc = doseesc.Scenario(true_tox=[0.05, 0.2, 0.4], true_eff=[0.2, 0.7, 0.75])
    j = sc.joint()
    u = j @ np.array([40, 0, 100, 60])
    d = doseesc.OBDDefinition()
    np.testing.assert_allclose(d.true_utility(sc), u)
    assert d.true_obd(sc) == 1                      # tier 1 fails phi_e = 0.25, tier 3 fails phi_t = 0.35
    assert doseesc.OBDDefinition(rule="below_mtd").true_obd(sc) == int(np.argmax(u[:2]))
    futile = doseesc.Scenario(true_tox=[0.05, 0.1, 0.2], true_eff=[0.05, 0.1, 0.2])
    assert d.true_obd(futile) == -1
    assert doseesc.OBDDefinition(rule="below_mtd").true_obd(futile) == 2
    with pytest.raises(doseesc.ScenarioError, match="rule = 'best'"):
        doseesc.OBDDefinition(rule="best")


def test_results_report_obd_and_responses():
    d = doseesc.BOIN(0.25, 3, max_n=18)
    ex = doseesc.exact(d, S)
    mc = doseesc.simulate(d, S, 20000, rng=4)
    assert ex.true_obd == 1 and "true OBD" in ex.headline()
    for col in ("true_eff", "true_utility", "mean_eff", "mean_eff_mcse", "true_obd"):
        assert col in mc.summary().columns
    a, b = ex.summary(), mc.summary()
    z = ((b["mean_eff"] - a["mean_eff"]) / b["mean_eff_mcse"]).to_numpy()[1:]
    assert np.all(np.abs(z) < 4)
    assert abs(mc.p_select_obd - ex.p_select_obd) <= 4 * mc.p_select_obd_mcse
    assert "p_select_obd" in mc.metrics().index


def test_observed_utility_and_pick_by_hand():
    pick = doseesc.OBDPick(doseesc.ThreePlusThree(3))
    # "1NEN 2EEN": tier 1: N E N -> (40+100+40)/3 = 60; tier 2: E E N -> 80
    st = TrialState.from_counts([[3, 3, 0]], [[0, 0, 0]], [1], e=[[1, 2, 0]], ye=[[0, 0, 0]])
    np.testing.assert_allclose(observed_utility(st)[0, :2], [60, 80])
    rec = doseesc.recommend(pick, "1NEN 2EEN 3TTN")   # 3+3 stops: MTD tier 2; best utility at or below: tier 2
    assert rec.stop and rec.selected == 1
    rec = doseesc.recommend(pick, "1EEE 2NEN 3TTN")   # tier 1 (100) beats tier 2 (60)
    assert rec.selected == 0
    rec = doseesc.recommend(pick, "1NEN 2NEN 3TTN")   # tie (60, 60): the lower tier
    assert rec.selected == 0


def test_expansion_by_hand():
    pick = doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=3)
    assert doseesc.recommend(pick, "1NEN 2NEN 3TTN").next_tier == 1      # expand at the MTD (tier 2)
    assert doseesc.recommend(pick, "1NEN 2NEN 3TTN 2EEN").next_tier == 0  # then at the tier below
    rec = doseesc.recommend(pick, "1NEN 2NEN 3TTN 2EEN 1NNN")
    assert rec.stop and rec.reason == doseesc.StopReason.EXPANSION_DONE
    assert rec.selected == 1   # tier 2: (40+100+40+100+100+40)/6 = 70 > tier 1: (60*3... ) = 50
    assert pick.max_n == 18 + 6


@dataclasses.dataclass(frozen=True)
class _FullKey(doseesc.OBDPick):
    def merge_key(self, state):
        return None


@pytest.mark.parametrize("base,expansion", [(doseesc.ThreePlusThree(3), 0), (doseesc.ThreePlusThree(3), 2),
                                            (doseesc.ThreePlusThree(3, deescalation=True), 1)])
def test_exact_merging_on_sufficient_statistics_is_exact(base, expansion):
    a = doseesc.exact(doseesc.OBDPick(base, expansion=expansion), S)
    b = doseesc.exact(_FullKey(base, expansion=expansion), S)
    np.testing.assert_allclose(a.p_select, b.p_select, atol=1e-13)
    np.testing.assert_allclose(a.summary()["mean_eff"].to_numpy()[1:], b.summary()["mean_eff"].to_numpy()[1:],
                               atol=1e-12)


def test_obd_pick_exact_equals_paths_and_simulation():
    d = doseesc.OBDPick(doseesc.ThreePlusThree(3))
    ex = doseesc.exact(d, S)
    dp = doseesc.paths(d, 6, scenario=S, max_nodes=3_000_000)
    leaves = dp.leaves()
    assert abs(leaves["probability"].sum() - 1) < 1e-12
    sel = [leaves.loc[leaves["selected"] == lab, "probability"].sum() for lab in ["No dose", "Tier 1", "Tier 2", "Tier 3"]]
    np.testing.assert_allclose(sel, ex.p_select, atol=1e-12)
    assert set(leaves["outcome"].str[1:].str.cat()) <= set("NTEB")
    mc = doseesc.simulate(d, S, 20000, rng=8)
    ps = np.clip(ex.p_select, 0, 1)
    assert np.all(np.abs(mc.p_select - ps) <= 4 * np.sqrt(ps * (1 - ps) / 20000) + 1e-15)


def test_obd_pick_errors():
    with pytest.raises(doseesc.DesignError, match="base = 3"):
        doseesc.OBDPick(3)
    with pytest.raises(doseesc.DesignError, match="expansion = -1"):
        doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=-1)
    with pytest.raises(doseesc.DoseescError, match="needs true_eff"):
        doseesc.simulate(doseesc.OBDPick(doseesc.ThreePlusThree(3)), doseesc.Scenario(true_tox=[0.1, 0.2, 0.3]), 10)
    with pytest.raises(doseesc.ScenarioError, match="association = -1"):
        doseesc.Scenario(true_tox=[0.1], true_eff=[0.2], association=-1)


@pytest.mark.parametrize("utility,match", [("abcd", "4 finite numbers"), (5, "4 finite numbers"),
                                           ([1, 2, 3, float("nan")], "4 finite numbers"), ([[1], [2], [3], [4]], "4 finite")])
def test_obd_definition_rejects_bad_utilities(utility, match):
    with pytest.raises(doseesc.ScenarioError, match=match):
        doseesc.OBDDefinition(utility=utility)
    with pytest.raises(doseesc.ScenarioError, match="rule"):
        doseesc.OBDDefinition(rule=[3])


def test_exact_refuses_before_expanding_too_many_states():
    d = doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=30)
    with pytest.raises(doseesc.DoseescError, match="max_states"):
        doseesc.exact(d, S, max_states=100_000)
    with pytest.raises(doseesc.DesignError, match="expansion = 1000"):
        doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=1000)


def test_obd_pick_never_names_a_tier_its_expansion_shows_too_toxic():
    """BOIN (target 0.25) names tier 2 (0/3 at tier 1, 1/6 at tier 2); the expansion of 6 at tier 2 has 5 DLTs:
    6/12 there, P(p_T > 0.25 | Beta(7, 7)) = 0.976 > 0.95. Tier 2 has the better observed utility (many
    responses) but cannot be named: the OBD is tier 1. With the screen set off (tox_cutoff 0.9999) tier 2 is
    named, which shows the screen is what decides."""
    from scipy import stats
    assert stats.beta.sf(0.25, 7, 7) == pytest.approx(0.9757, abs=1e-4)
    st = doseesc.TrialState.from_counts([[3, 12, 0]], [[0, 6, 0]], [1], e=[[0, 12, 0]], ye=[[0, 6, 0]],
                                        phase=[2], aux=[1])
    d = doseesc.OBDPick(doseesc.BOIN(0.25, 3, max_n=18), expansion=6)
    assert d.too_toxic(st).tolist() == [[False, True, True]]
    assert d.conclude(st, np.array([doseesc.StopReason.EXPANSION_DONE], dtype=np.int8))[0] == 0
    loose = doseesc.OBDPick(doseesc.BOIN(0.25, 3, max_n=18), expansion=6, tox_cutoff=0.9999)
    assert loose.conclude(st, np.array([doseesc.StopReason.EXPANSION_DONE], dtype=np.int8))[0] == 1
    assert doseesc.design_from_dict(loose.to_dict()) == loose
    assert "P(DLT rate > 0.25) > 0.95" in d.describe()
    assert "P(DLT rate > 0.333) > 0.95" in doseesc.OBDPick(doseesc.ThreePlusThree(3)).describe()
