"""Standard safety and accuracy metrics of ``OperatingCharacteristics.metrics()`` (issue 18 item 6).

Hand-worked on a 3+3 with 2 tiers, where every path is short enough to enumerate on paper, and checked
exact against Monte Carlo (within 4 MCSE) on a 3+3 with 3 tiers and a BOIN with 3 tiers and max_n 12.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import doseesc
from doseesc.results import SAFETY_METRICS

EXACT_METRICS = ("p_above_mtd", "p_overdose_60", "p_overdose_80", "p_poor_allocation")

# 3+3, 2 tiers, true P(DLT) 0.1 and 0.5, target 0.3: the true MTD is tier 1 (0-based 0).
# Per cohort of 3 at tier 1 (p = 0.1): P(0 DLT) = 0.9^3 = 0.729, P(1) = 3 * 0.1 * 0.81 = 0.243, P(>=2) = 0.028.
# At tier 2 (p = 0.5): P(0) = 0.125, P(1) = 0.375, P(>=2) = 0.5.
# The trial reaches tier 2 after 0/3 at tier 1 (0.729) or 1/3 then 0/3 (0.243 * 0.729 = 0.177147):
# P(reach tier 2) = 0.906147. At tier 2 (the top) the 3+3 selects tier 2 after 0/3 (0.125) or 1/3 then 0/3
# (0.375 * 0.125 = 0.046875), and 3 more are treated there only after 1/3.
TWO = doseesc.ThreePlusThree(2)
TWO_SCEN = doseesc.Scenario(true_tox=[0.1, 0.5], target=0.3)
REACH = 0.729 + 0.243 * 0.729


def test_p_above_mtd_hand_worked():
    # above the MTD = selecting tier 2 = reach tier 2 and select it: 0.906147 * (0.125 + 0.046875) = 0.155744
    r = doseesc.exact(TWO, TWO_SCEN)
    est, se = r.metric("p_above_mtd")
    assert est == pytest.approx(REACH * (0.125 + 0.375 * 0.125), abs=1e-12)
    assert est == pytest.approx(0.1557440, abs=1e-6)
    assert se == 0.0


def test_overdose_shares_hand_worked():
    # Patients (tier 1, tier 2) at the end: (3, 3) share above 3/6 = 0.5; (3, 6) 6/9 = 0.667; (6, 3) 3/9;
    # (6, 6) 0.5; (3, 0) and (6, 0) 0. Only (3, 6) exceeds 60%: 0/3 at tier 1 then 1/3 at tier 2 (then 3 more),
    # 0.729 * 0.375 = 0.273375. None exceeds 80%.
    r = doseesc.exact(TWO, TWO_SCEN)
    assert r.metric("p_overdose_60") == (pytest.approx(0.729 * 0.375, abs=1e-12), 0.0)
    assert r.metric("p_overdose_80") == (0.0, 0.0)


def test_poor_allocation_hand_worked():
    # Fewer patients at the MTD (tier 1) than at tier 2: only (3, 6), again 0.729 * 0.375 = 0.273375.
    r = doseesc.exact(TWO, TWO_SCEN)
    assert r.metric("p_poor_allocation") == (pytest.approx(0.273375, abs=1e-12), 0.0)
    # With the MTD at tier 2 (true P(DLT) 0.05, 0.1; target 0.3), poor allocation = fewer at tier 2 than
    # at tier 1: (3, 0) and (6, 0) (stopped at tier 1) and (6, 3). P(stop at tier 1) = P(>=2 of 3) +
    # P(1 of 3) * P(>=1 of 3) with p = 0.05: 0.007250 + 0.135375 * 0.142625 = 0.026558; (6, 3) = 1/3,
    # 0/3 at tier 1, then 0/3 at tier 2 ends the trial (p = 0.1: 0.729), or >=2/3 (0.028):
    # 0.135375 * 0.857375 * (0.729 + 0.028) = 0.087863. Total 0.026558 + 0.087863 = 0.114421.
    r2 = doseesc.exact(TWO, doseesc.Scenario(true_tox=[0.05, 0.1], target=0.3))
    a0, a1 = 0.95 ** 3, 3 * 0.05 * 0.95 ** 2
    stop1 = (1 - a0 - a1) + a1 * (1 - a0)
    b1 = 3 * 0.1 * 0.9 ** 2
    expected = stop1 + a1 * a0 * (1 - b1)
    assert r2.metric("p_poor_allocation")[0] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.114421, abs=1e-6)


def test_no_safe_tier_every_selection_is_above_and_poor_allocation_is_undefined():
    # true P(DLT) 0.5, 0.6 with target 0.3: the true MTD is 'No dose', so selecting any tier is above it,
    # every treated patient is above it (share 1 > 0.8), and 'patients at the MTD' is undefined.
    r = doseesc.exact(TWO, doseesc.Scenario(true_tox=[0.5, 0.6], target=0.3))
    assert r.metric("p_above_mtd")[0] == pytest.approx(1 - r.p_no_dose, abs=1e-12)
    assert r.metric("p_overdose_80") == (pytest.approx(1.0, abs=1e-12), 0.0)
    assert all(math.isnan(v) for v in r.metric("p_poor_allocation"))


def test_two_dlt_cohort_hand_worked_records():
    # Three made-up trials with cohort boundaries (new_cohort) and DLTs:
    #   trial 0: 1NNT 1NTN        -> at most 1 DLT per cohort: 0
    #   trial 1: 1NNN 2TNT        -> 2 DLTs in the second cohort: 1
    #   trial 2: 1TNN 1NTN 2TTT   -> 3 DLTs in the third cohort: 1
    # The two DLTs of trial 0 fall in different cohorts, which a per-trial DLT count would miss.
    # Mean 2/3; sample SD of (0, 1, 1) = sqrt(1/3), MCSE = sqrt(1/3) / sqrt(3) = 1/3.
    base = doseesc.simulate(TWO, TWO_SCEN, 3, rng=1)
    tier = np.array([[0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1],
                     [0, 0, 0, 1, 1, 1, -1, -1, -1, -1, -1, -1],
                     [0, 0, 0, 0, 0, 0, 1, 1, 1, -1, -1, -1]])
    tox = np.zeros(tier.shape, dtype=bool)
    tox[0, [2, 4]] = True
    tox[1, [3, 5]] = True
    tox[2, [0, 4, 6, 7, 8]] = True
    new = np.zeros(tier.shape, dtype=bool)
    new[:, [0, 3]] = True
    new[2, 6] = True
    r = dataclasses.replace(base, patients={**base.patients, "tier": tier, "tox": tox, "new_cohort": new})
    est, se = r.metric("p_two_dlt_cohort")
    assert est == pytest.approx(2 / 3)
    assert se == pytest.approx(1 / 3)


def test_two_dlt_cohort_monte_carlo_matches_hand_worked_3_plus_3():
    # P(some cohort has >= 2 DLTs) for the 2-tier 3+3 above:
    # from tier 2: 0.5 + 0.375 * 0.5 = 0.6875 (a second cohort there only after 1/3);
    # total = 0.028 + 0.729 * 0.6875 + 0.243 * (0.028 + 0.729 * 0.6875) = 0.657780
    # (after 1/3 then 1/3 at tier 1 the trial stops with 2 DLTs, but in two cohorts).
    expected = 0.028 + 0.729 * 0.6875 + 0.243 * (0.028 + 0.729 * 0.6875)
    assert expected == pytest.approx(0.657780, abs=1e-6)
    r = doseesc.simulate(TWO, TWO_SCEN, 20000, rng=7)
    est, se = r.metric("p_two_dlt_cohort")
    assert 0 < se < 0.01
    assert abs(est - expected) < 4 * se


def test_two_dlt_cohort_is_nan_for_exact_results():
    # exact records merge paths whose cohorts split the DLTs differently (1NNT 1NTN and 1NNN 1NTT both give
    # 2/6 at tier 1), so the metric is not computable there: NaN estimate and NaN MCSE, never a zero MCSE.
    r = doseesc.exact(TWO, TWO_SCEN)
    est, se = r.metric("p_two_dlt_cohort")
    assert math.isnan(est) and math.isnan(se)
    assert "not computable from exact" in r.metrics().loc["p_two_dlt_cohort", "definition"]


def test_metrics_table_lists_the_safety_metrics_with_definitions():
    r = doseesc.exact(TWO, TWO_SCEN)
    table = r.metrics()
    for name in SAFETY_METRICS:
        assert name in table.index
        assert table.loc[name, "definition"]
    assert (table.loc[list(EXACT_METRICS), "mcse"] == 0).all()


# With 3 tiers, a start at tier 1 and at most 12 patients, at least 3 of 12 are at tier 1, so no trial treats
# more than 75% above an MTD at tier 1: P(> 80%) is 0 there. The 4-tier BOIN with max_n 18 (near-target
# tiers above the MTD) is the case where every metric is strictly between 0 and 1.
SMALL = [
    (doseesc.ThreePlusThree(3), doseesc.Scenario(true_tox=[0.1, 0.25, 0.45], target=0.25)),
    (doseesc.BOIN(0.25, 3, max_n=12), doseesc.Scenario(true_tox=[0.1, 0.25, 0.45], target=0.25)),
    (doseesc.BOIN(0.25, 3, max_n=12), doseesc.Scenario(true_tox=[0.05, 0.1, 0.3], target=0.25)),
    (doseesc.BOIN(0.25, 3, max_n=12), doseesc.Scenario(true_tox=[0.2, 0.3, 0.35], target=0.25)),
    (doseesc.BOIN(0.25, 4, max_n=18), doseesc.Scenario(true_tox=[0.2, 0.3, 0.32, 0.35], target=0.25)),
]
SMALL_IDS = ["3+3-3tiers", "BOIN-3tiers-mtd2", "BOIN-3tiers-mtd3", "BOIN-3tiers-mtd1", "BOIN-4tiers-max18"]


def test_the_small_cases_exercise_every_metric():
    # each exact-computable metric is strictly between 0 and 1 in at least one case (the 4-tier BOIN)
    ex = doseesc.exact(*SMALL[-1])
    for name in EXACT_METRICS:
        assert 0.1 < ex.metric(name)[0] < 0.9, name


@pytest.mark.parametrize("design,scen", SMALL, ids=SMALL_IDS)
def test_exact_matches_monte_carlo_within_4_mcse(design, scen):
    ex = doseesc.exact(design, scen)
    mc = doseesc.simulate(design, scen, 20000, rng=2026)
    for name in EXACT_METRICS:
        e, e_se = ex.metric(name)
        m, m_se = mc.metric(name)
        assert e_se == 0.0
        if e in (0.0, 1.0):  # a certain event: Monte Carlo must agree exactly
            assert m == e, name
        else:
            assert 0 < m_se and abs(m - e) < 4 * m_se, (name, e, m, m_se)
    # p_two_dlt_cohort: Monte Carlo only (NaN exact); a probability with its binomial MCSE
    m, m_se = mc.metric("p_two_dlt_cohort")
    assert 0 < m < 1 and m_se == pytest.approx(math.sqrt(m * (1 - m) / (20000 - 1)), rel=1e-9)
