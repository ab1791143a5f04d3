"""BOIN against the published boundaries and the R package BOIN 2.7.2 (fixtures in tests/data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import doseesc
from doseesc.state import StopReason, TrialState

DATA = __import__("pathlib").Path(__file__).parent / "data"


@pytest.mark.parametrize("target,lam_e,lam_d", [(0.25, 0.197, 0.298), (0.30, 0.236, 0.359), (0.35, 0.276, 0.419)])
def test_published_boundaries(target, lam_e, lam_d):
    """Liu & Yuan 2015, Table 1 (and BOIN get.boundary): lambda_e, lambda_d to 3 decimals."""
    e, d = doseesc.boin_boundaries(target)
    assert round(e, 3) == lam_e and round(d, 3) == lam_d


def test_count_tables_equal_package_for_n_1_to_36():
    ref = pd.read_csv(DATA / "boin_2.7.2_boundaries.csv", comment="#")
    for target, sub in ref.groupby("target"):
        ours = doseesc.BOIN(float(target), 3, max_n=36).count_boundaries(36)
        for rule, rows in sub.groupby("rule"):
            got = ours[rule].astype(float)
            if rule == "eliminate_ge":
                got = np.where(got > ours["n"], np.nan, got)  # the package prints NA where no count qualifies
            want = rows.sort_values("n")["count"].to_numpy(dtype=float)
            np.testing.assert_array_equal(np.nan_to_num(got, nan=-1), np.nan_to_num(want, nan=-1),
                                          err_msg=f"target {target} {rule}")


@pytest.mark.parametrize("column,kwargs", [
    ("mtd_t030", {"target": 0.30}),
    ("mtd_t025_boundmtd", {"target": 0.25, "bound_mtd": True}),
    ("mtd_t030_extrasafe", {"target": 0.30, "extrasafe": True}),
    ("mtd_t020_cutoff090", {"target": 0.20, "cutoff_eli": 0.90}),
])
def test_select_mtd_equals_package_on_3000_states(column, kwargs):
    ref = pd.read_csv(DATA / "boin_2.7.2_select_mtd.csv", comment="#")
    for k, sub in ref.groupby("K"):
        n = sub[[f"n{i}" for i in range(k)]].to_numpy()
        y = sub[[f"y{i}" for i in range(k)]].to_numpy()
        design = doseesc.BOIN(n_tiers=int(k), max_n=60, **kwargs)
        ours = design.select(TrialState.from_counts(n, y, np.zeros(len(sub), int))) + 1
        want = np.where(sub[column].to_numpy() == 99, 0, sub[column].to_numpy())
        np.testing.assert_array_equal(ours, want)


# R BOIN 2.7.2 get.oc(target = 0.25, p.true, ncohort = 10, cohortsize = 3, ntrial = 20000, seed = 1, ...)
# (tools/reference/boin_reference.R): selection %, mean patients per tier, mean N, % stopped with no MTD.
GET_OC = {
    "default": ({}, [0.05, 0.12, 0.25, 0.40, 0.55], [0.915, 26.195, 55.825, 15.67, 1.365], 29.99205, 0.03),
    "earlystop9": ({"n_earlystop": 9}, [0.05, 0.12, 0.25, 0.40, 0.55], [4.21, 30.295, 51.035, 13.485, 0.96],
                   24.7341, 0.015),
    "titration": ({"titration": True}, [0.05, 0.12, 0.25, 0.40, 0.55], [0.805, 21.965, 57.305, 19.135, 0.765],
                  29.99405, 0.025),
    "extrasafe": ({"extrasafe": True}, [0.05, 0.12, 0.25, 0.40, 0.55], [0.93, 26.26, 55.365, 15.295, 1.36],
                  29.79165, 0.79),
    "toxic": ({}, [0.35, 0.5, 0.6, 0.7, 0.8], [50.935, 2.075, 0.11, 0, 0], 22.41795, 46.88),
}


@pytest.mark.parametrize("name", list(GET_OC))
def test_exact_agrees_with_package_simulation(name):
    """Our exact OC against the package's 20,000-trial simulation, within 4 binomial / N standard errors."""
    kwargs, p, sel, mean_n, stop = GET_OC[name]
    ex = doseesc.exact(doseesc.BOIN(0.25, 5, max_n=30, **kwargs), doseesc.Scenario(true_tox=p))
    ps = ex.p_select
    se = np.sqrt(ps * (1 - ps) / 20000)
    assert np.all(np.abs(np.array(sel) / 100 - ps[1:]) <= 4 * se[1:] + 1e-12)
    assert abs(stop / 100 - ps[0]) <= 4 * se[0] + 1e-12
    assert abs(mean_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(20000)


B = doseesc.BOIN(0.30, 3, max_n=18)


@pytest.mark.parametrize("design,log,next_tier,stop,selected,reason", [
    (B, "1NNN", 1, False, None, StopReason.NOT_STOPPED),           # 0/3 <= 0.236: escalate
    (B, "1NNN 2NTN", 1, False, None, StopReason.NOT_STOPPED),      # 1/3: stay (0.236 < 1/3 <= 0.359)
    (B, "1NNN 2TTN", 0, False, None, StopReason.NOT_STOPPED),      # 2/3 > 0.359: de-escalate
    (B, "1NNN 2NNN 3NNN", 2, False, None, StopReason.NOT_STOPPED),  # top tier: escalation means stay
    (B, "1TTT", -1, True, -1, StopReason.LOWEST_TIER_TOXIC),        # 3/3: P(p > .3) = .9919 > .95
    (B, "1NNN 2TTT", 0, False, None, StopReason.NOT_STOPPED),      # tier 2 eliminated: back to 1
    (B, "1NNN 2TTT 1NNN", 0, False, None, StopReason.NOT_STOPPED),  # 0/6 at 1, tier 2 eliminated: stay
    (doseesc.BOIN(0.30, 3, max_n=18, n_earlystop=6), "1NTN 1NTN", -1, True, 0, StopReason.N_AT_TIER),
    (doseesc.BOIN(0.30, 3, max_n=18, n_earlystop=6), "1NTN 1NNN", 1, False, None, StopReason.NOT_STOPPED),
    (doseesc.BOIN(0.30, 3, max_n=18, extrasafe=True), "1NTT", -1, True, -1, StopReason.LOWEST_TIER_TOXIC),
])
def test_hand_worked_boin(design, log, next_tier, stop, selected, reason):
    rec = doseesc.recommend(design, log)
    assert (rec.next_tier, rec.stop, rec.selected, rec.reason) == (next_tier, stop, selected, reason)


def test_extrasafe_threshold_by_hand():
    # Beta(3, 2) (2 DLTs of 3, Beta(1,1) prior): P(p > 0.3) = 1 - I_0.3(3, 2) = 1 - (4 * 0.3^3 * 0.7 + 0.3^4)
    post = 1 - (4 * 0.3 ** 3 * 0.7 + 0.3 ** 4)
    assert 0.90 < post < 0.95  # above 0.95 - 0.05, below 0.95: only extrasafe stops
    assert not doseesc.recommend(B, "1NTT").stop


def test_titration_start():
    d = doseesc.BOIN(0.30, 4, max_n=18, titration=True)
    assert doseesc.recommend(d, "1N").next_tier == 1
    rec = doseesc.recommend(d, "1N 2N 3T")
    assert rec.next_tier == 2 and not rec.stop
    # after the first DLT, cohort_size - 1 = 2 more at that tier, then the usual rules
    with pytest.raises(doseesc.DoseescError, match="a cohort of 2"):
        doseesc.recommend(d, "1N 2N 3T 3NNN")
    rec = doseesc.recommend(d, "1N 2N 3T 3NN")   # 1/3 at tier 3: stay
    assert rec.next_tier == 2
    rec = doseesc.recommend(d, "1N 2N 3N 4N 4NN")  # no DLT anywhere: top tier, then 0/3: stay at the top
    assert rec.next_tier == 3
    # simulated trials follow the same path: first patients one per tier
    r = doseesc.simulate(d, doseesc.Scenario(true_tox=[0.01, 0.01, 0.01, 0.01]), 200, rng=1)
    assert (r.trials()["log"].str.startswith("1N 2N 3N 4N 4NN")).mean() > 0.9


def test_bound_mtd_never_selects_above_lambda_d():
    d = doseesc.BOIN(0.25, 3, max_n=18, bound_mtd=True)
    st = TrialState.from_counts([[3, 3, 3]], [[0, 1, 2]], [2])  # estimates ~0, ~.33, ~.66 > lambda_d = .298
    assert d.select(st)[0] == 0


@pytest.mark.parametrize("kwargs,match", [
    ({"target": 0.7}, "target = 0.7 must lie in \\[0.05, 0.6\\]"),
    ({"target": 0.3, "p_saf": 0.29}, "p_saf = 0.29"),
    ({"target": 0.3, "p_tox": 0.31}, "p_tox = 0.31"),
    ({"target": 0.3, "offset": 0.6}, "offset = 0.6"),
    ({"target": 0.3, "titration": "yes"}, "titration = 'yes'"),
    ({"target": 1.3}, "target = 1.3 must lie in \\(0, 1\\)"),
])
def test_boin_parameter_errors(kwargs, match):
    with pytest.raises(doseesc.DesignError, match=match):
        doseesc.BOIN(n_tiers=3, max_n=18, **kwargs)
