"""Tie-robust OBD metrics of ``OperatingCharacteristics.metrics()`` (issue 18 item 3):
``expected_utility``, ``utility_loss`` and ``p_within_margin`` (margin ``UTILITY_MARGIN`` = 5 points).

Hand-worked on "3+3 + OBD pick" with 3 tiers from the exact P(select) and true utilities computed on paper,
and checked exact against Monte Carlo (within 4 MCSE) on the same design and on BOIN12.
"""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.results import UTILITY_MARGIN, UTILITY_METRICS

# Independent toxicity and response (default association), BOIN12's default utility N 40, T 0, E 100, B 60:
# U = 40 (1-t)(1-e) + 100 (1-t) e + 60 t e.
#   tier 1 (t .05, e .2):  40*.95*.8 + 100*.95*.2 + 60*.05*.2 = 30.4 + 19.0 + 0.6 = 50.0 (e < phi_e .25: not admissible)
#   tier 2 (t .15, e .5):  40*.85*.5 + 100*.85*.5 + 60*.15*.5 = 17.0 + 42.5 + 4.5 = 64.0 (admissible; true OBD)
#   tier 3 (t .30, e .55): 40*.7*.45 + 100*.7*.55 + 60*.3*.55 = 12.6 + 38.5 + 9.9 = 61.0 (admissible, t <= .35)
# Best admissible utility 64; within 5 points: tiers 2 (64) and 3 (61 >= 59); tier 1 (50) not. No dose scores 0.
SCEN = doseesc.Scenario(true_tox=[0.05, 0.15, 0.3], true_eff=[0.2, 0.5, 0.55], target=0.3)
PICK = doseesc.OBDPick(doseesc.ThreePlusThree(3))
U = np.array([50.0, 64.0, 61.0])


def test_true_utilities_and_margin_as_worked():
    r = doseesc.exact(PICK, SCEN)
    assert np.allclose(r.obd.true_utility(SCEN), U)
    assert r.true_obd == 1
    assert UTILITY_MARGIN == 5.0


def test_utility_metrics_hand_worked():
    r = doseesc.exact(PICK, SCEN)
    p0, p1, p2, p3 = r.p_select            # no dose, tiers 1-3 (exact)
    assert p0 + p1 + p2 + p3 == pytest.approx(1.0)
    assert min(p1, p2, p3) > 0.01           # every tier matters to the sums below
    eu = 0 * p0 + 50 * p1 + 64 * p2 + 61 * p3   # sum_k P(select k) U_k
    assert r.metric("expected_utility") == (pytest.approx(eu, abs=1e-10), 0.0)
    assert r.metric("utility_loss") == (pytest.approx(64 - eu, abs=1e-10), 0.0)
    assert r.metric("p_within_margin") == (pytest.approx(p2 + p3, abs=1e-12), 0.0)
    # robust to the near-tie: P(within margin) exceeds P(true OBD) by exactly P(select tier 3)
    assert r.metric("p_within_margin")[0] - r.p_select_obd == pytest.approx(p3, abs=1e-12)


def test_inadmissible_near_best_tier_is_not_within_margin():
    # Tier 3 t .5 > phi_t: U = 40*.5*.4 + 100*.5*.6 + 60*.5*.6 = 8 + 30 + 18 = 56, within 5 of tier 2's 58
    # (t .3, e .5: 40*.7*.5 + 100*.7*.5 + 60*.3*.5 = 14 + 35 + 9 = 58) but not admissible, so only tier 2 counts.
    sc = doseesc.Scenario(true_tox=[0.1, 0.3, 0.5], true_eff=[0.2, 0.5, 0.6], target=0.3)
    r = doseesc.exact(PICK, sc)
    assert np.allclose(r.obd.true_utility(sc), [48.0, 58.0, 56.0])
    assert r.metric("p_within_margin")[0] == pytest.approx(r.p_select[2], abs=1e-12)
    # the loss may count the better-scoring inadmissible tier as a gain: 58 - 56 = 2 per selection of tier 3
    eu = 48 * r.p_select[1] + 58 * r.p_select[2] + 56 * r.p_select[3]
    assert r.metric("utility_loss")[0] == pytest.approx(58 - eu, abs=1e-10)


def test_no_admissible_tier_best_is_no_dose():
    # Response .05-.2 < phi_e everywhere: no OBD, the best is no dose (utility 0); within margin = P(no dose).
    sc = doseesc.Scenario(true_tox=[0.05, 0.1, 0.2], true_eff=[0.05, 0.1, 0.2], target=0.3)
    r = doseesc.exact(PICK, sc)
    assert r.true_obd == -1
    u = r.obd.true_utility(sc)
    eu = float(r.p_select[1:] @ u)
    assert r.metric("expected_utility")[0] == pytest.approx(eu, abs=1e-10)
    assert r.metric("utility_loss")[0] == pytest.approx(0 - eu, abs=1e-10)
    assert r.metric("p_within_margin")[0] == pytest.approx(r.p_select[0], abs=1e-12)


def test_rows_in_metrics_only_with_an_obd():
    r = doseesc.exact(PICK, SCEN)
    table = r.metrics()
    for name in UTILITY_METRICS:
        assert name in table.index
        assert table.loc[name, "mcse"] == 0.0
    assert "within 5 utility points" in table.loc["p_within_margin", "definition"]
    tox_only = doseesc.exact(doseesc.ThreePlusThree(3), doseesc.Scenario(true_tox=[0.05, 0.15, 0.3], target=0.3))
    assert not set(UTILITY_METRICS) & set(tox_only.metrics().index)
    assert np.isnan(tox_only.metric("expected_utility")[0])


@pytest.mark.parametrize("design", [PICK, doseesc.BOIN12(3, max_n=12)], ids=["obd-pick", "boin12"])
def test_exact_matches_monte_carlo(design):
    ex = doseesc.exact(design, SCEN)
    mc = doseesc.simulate(design, SCEN, 20000, rng=2026)
    for name in UTILITY_METRICS:
        e, e_se = ex.metric(name)
        m, m_se = mc.metric(name)
        assert e_se == 0.0
        assert m_se > 0
        assert abs(e - m) <= 4 * m_se, (name, e, m, m_se)


@pytest.mark.parametrize("rule", ["admissible", "below_mtd"])
def test_admissible_tiers_agree_with_the_true_obd(rule):
    # results mirrors OBDDefinition's rule to find the admissible tiers; the best of them must be the true OBD
    defn = doseesc.OBDDefinition(rule=rule)
    rng = np.random.default_rng(3)
    for _ in range(20):
        tox = np.sort(rng.uniform(0, 0.6, 4))
        eff = rng.uniform(0, 0.8, 4)
        sc = doseesc.Scenario(true_tox=list(tox), true_eff=list(eff), target=0.3)
        r = doseesc.exact(doseesc.OBDPick(doseesc.ThreePlusThree(4)), sc, obd=defn)
        ok = r._admissible()
        u = defn.true_utility(sc)
        want = int(np.flatnonzero(ok)[np.argmax(u[ok])]) if ok.any() else -1
        assert want == r.true_obd
