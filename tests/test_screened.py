"""expected_screened (issue 18 item 6): patients screened = enrolled (drop-outs included) + lost waiting + screening
failures, counted up to and including the last candidate enrolled or lost while waiting."""

from __future__ import annotations

import math

import numpy as np
import pytest

import doseesc
from doseesc.actual_dose import DoseModel, PatientStatus
from doseesc.calendar import DAYS_PER_MONTH, Calendar
from doseesc.engines.timed import calendar_batch
from doseesc.rng import Stream, patient_uniforms, root_seed

ZERO = doseesc.Scenario(true_tox=[0.0, 0.0], target=0.25)
TRUTH = doseesc.Scenario(true_tox=[0.05, 0.15, 0.30, 0.50], target=0.25)
# fixed arrivals every 10 days, products 20 days after enrolment, the hand-worked calendar of test_calendar.py
FIXED = Calendar(accrual="fixed", accrual_rate=DAYS_PER_MONTH / 10, vein_to_vein_days=20, dlt_window_days=28,
                 review_days=7, sentinel_days=5, min_gap_days=2, tox_time="uniform")


def _with(cal: Calendar, **kw) -> Calendar:
    return Calendar(**{**cal.to_dict(), **kw})


def test_screened_by_hand_without_screening_failures():
    """3+3 over 2 tiers with no DLT possible: 3 patients at each tier, 6 enrolled (tests/test_calendar.py works
    the times out: arrivals 0, 10, 20, ...; cohort 2 enrolled at 75; the trial stops at 130).

    No maximum wait: screened = 6 enrolled + 0 lost + 0 failures = 6. The 7 candidates queued at 130 (arrived
    60, ..., 120) are turned away, not lost: not counted.
    max_wait 40: P4 (arrived 30, would wait 45) is lost and P5-P7 take cohort 2; at 130 the candidates who
    arrived at 70 and 80 have waited 60 and 50 > 40: lost. Screened = 6 + 1 + 2 = 9 (candidates arrived at
    0, ..., 80: the 9th is the last lost); those of 90, ..., 120 (waits 40, ..., 10) are turned away."""
    design = doseesc.ThreePlusThree(2)
    r = doseesc.simulate(design, ZERO, 4, rng=1, calendar=FIXED)
    np.testing.assert_array_equal(r.screened, 6)
    assert r.metric("expected_screened") == (6.0, 0.0)
    r2 = doseesc.simulate(design, ZERO, 4, rng=1, calendar=_with(FIXED, max_wait_days=40.0))
    np.testing.assert_array_equal(r2.extra["lost_waiting"][0], 3)
    np.testing.assert_array_equal(r2.screened, 9)
    assert r2.metric("expected_screened") == (9.0, 0.0)
    # the count is kept apart: the per-trial extras and trials() of calendar runs are those of before
    assert set(r2.extra) == {"duration_days", "time_to_decision_days", "wait_days", "lost_waiting"}
    assert "n_screened" not in r2.trials().columns


def test_screened_counts_a_failed_product_and_its_replacement_by_hand():
    """One tier, 3 evaluable patients; A's product fails and D replaces A (the case worked in
    tests/test_calendar_dose.py): 4 enrolees, arrived 0, 10, 20, 30; nobody lost: screened = 4."""
    cal = Calendar(accrual_rate=DAYS_PER_MONTH / 10, accrual="fixed", vein_to_vein_days=20, dlt_window_days=28)
    out = {"status": np.array([[PatientStatus.LOST_REPLACED, 0, 0, 0]], dtype=np.int8),
           "assigned": np.array([[0, 0, 0, 0]]), "cohort_start": np.array([[True, False, False, False]]),
           "replacement": np.array([[False, False, False, True]])}
    r = calendar_batch(cal, doseesc.ThreePlusThree(1), out, root_seed(1), 0, 1)
    assert r["n_screened"].tolist() == [4.0]


def _reference_screened(seed: int, n_trials: int, m: np.ndarray, fail: float) -> np.ndarray:
    """One trial at a time: walk the candidates in arrival order, each failing screening when its SCREEN uniform
    is below ``fail`` (the calendar's rule, doseesc.calendar), and stop at the ``m[i]``-th who passed."""
    u = patient_uniforms(root_seed(seed), 0, n_trials, 400, Stream.SCREEN)
    out = np.zeros(n_trials)
    for i in range(n_trials):
        passed = screened = 0
        while passed < m[i]:
            passed += u[i, screened] >= fail
            screened += 1
        out[i] = screened
    return out


@pytest.mark.parametrize("max_wait", [None, 25.0])
def test_screened_with_screening_failures_against_a_one_trial_at_a_time_reference(max_wait):
    """Screening failures before the last enrolled-or-lost candidate are counted, later ones not: the count is
    the position of the (enrolled + lost)-th candidate who passed screening."""
    design = doseesc.ThreePlusThree(2)
    cal = _with(FIXED, screen_fail=0.4, max_wait_days=max_wait)
    r = doseesc.simulate(design, ZERO, 60, rng=4, calendar=cal, batch_size=25)
    lost = r.extra["lost_waiting"][0]
    if max_wait is not None:
        assert lost.max() > 0                              # the case exercises waiting losses
    m = (r.total_n + lost).astype(int)                     # 6 enrolled (no drop-out) + lost
    ref = _reference_screened(4, 60, m, 0.4)
    np.testing.assert_array_equal(r.screened, ref)
    assert np.any(ref > m)                                 # and screening failures
    est, se = r.metric("expected_screened")
    assert est == pytest.approx(ref.mean()) and se == pytest.approx(ref.std(ddof=1) / math.sqrt(60))


@pytest.mark.parametrize("fail, dropout", [(0.3, 0.0), (0.3, 0.2)])
def test_expected_screened_is_enrolled_over_pass_rate_monte_carlo(fail, dropout):
    """Without waiting losses, candidates are screened until the N-th enrolee who stays passes: by Wald's
    identity (the number of infused patients N does not depend on the SCREEN and DROPOUT streams)
    E[screened] = E[N] / ((1 - screen_fail) (1 - dropout)): the last candidate (who passes) is counted.
    Checked per trial on screened - N / ((1 - f)(1 - d)), mean 0, within 4 MCSE."""
    design = doseesc.BOIN(0.25, 4, max_n=24)
    cal = Calendar(accrual_rate=3, screen_fail=fail, dropout=dropout, vein_to_vein_days=20)
    r = doseesc.simulate(design, TRUTH, 20000, rng=3, calendar=cal)
    diff = r.screened - r.total_n / ((1 - fail) * (1 - dropout))
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert 0 < se < 0.1
    assert abs(diff.mean()) < 4 * se
    est, mcse = r.metric("expected_screened")
    expect = r.expected_n / ((1 - fail) * (1 - dropout))
    assert abs(est - expect) < 4 * mcse


def test_expected_screened_of_a_time_to_event_design_monte_carlo():
    """TITE-BOIN simulated in time: the same identity, E[screened] = E[N] / (1 - screen_fail)."""
    design = doseesc.TITEBOIN(0.25, 4, max_n=18)
    cal = Calendar(accrual_rate=4, screen_fail=0.25, dlt_window_days=28)
    r = doseesc.simulate(design, TRUTH, 4000, rng=5, calendar=cal)
    diff = r.screened - r.total_n / 0.75
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert 0 < se and abs(diff.mean()) < 4 * se


def test_without_a_calendar_screened_is_enrolled():
    """No calendar: screened = enrolled. Exact: E[N] with MCSE 0; Monte Carlo: mean N; actual-dose model: its
    enrolees, replacements included (n_enrolled)."""
    design = doseesc.ThreePlusThree(2)
    sc = doseesc.Scenario(true_tox=[0.1, 0.5], target=0.3)
    ex = doseesc.exact(design, sc)
    m = ex.metrics()
    assert m.loc["expected_screened", "estimate"] == pytest.approx(ex.expected_n)
    assert m.loc["expected_screened", "mcse"] == 0
    assert "screened = enrolled" in m.loc["expected_screened", "definition"]
    mc = doseesc.simulate(design, sc, 500, rng=2)
    assert mc.metric("expected_screened") == pytest.approx(mc.metric("expected_n"))
    ladder = doseesc.DoseLadder([1e5, 3e5], "cells/kg", tolerance=0.2)
    model = DoseModel(failure=0.2)
    ad = doseesc.simulate(design, sc, 500, rng=2, ladder=ladder, dose_model=model)
    enrolled = ad.extra["n_enrolled"][0]
    assert enrolled.mean() > ad.expected_n                 # failed products are replaced
    assert ad.metric("expected_screened")[0] == pytest.approx(enrolled.mean())
    assert "replacements included" in ad.metrics().loc["expected_screened", "definition"]


def test_actual_dose_with_a_calendar_counts_every_enrolee_and_screening_failure():
    """Actual-dose model and calendar: every enrolee (failed products replaced) goes through screening:
    E[screened] = E[n_enrolled] / (1 - screen_fail) (no waiting losses), within 4 MCSE."""
    design = doseesc.BOIN(0.25, 2, max_n=12)
    sc = doseesc.Scenario(true_tox=[0.1, 0.3], target=0.25)
    ladder = doseesc.DoseLadder([1e5, 3e5], "cells/kg", tolerance=0.2)
    cal = Calendar(accrual_rate=3, screen_fail=0.5, vein_to_vein_days=20)
    r = doseesc.simulate(design, sc, 4000, rng=6, ladder=ladder, dose_model=DoseModel(failure=0.2), calendar=cal)
    diff = r.screened - r.extra["n_enrolled"][0] / 0.5
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert 0 < se and abs(diff.mean()) < 4 * se


@pytest.mark.parametrize("fail", [0.0, 0.35])
def test_expected_screened_exact_against_monte_carlo(fail):
    """The exact engine gives E[N] (screened = enrolled without a calendar, MCSE 0). Monte Carlo with a
    calendar of screening failure f and no waiting losses estimates E[N] / (1 - f): within 4 MCSE of the
    exact value divided by (1 - f). f = 0: screened = enrolled = treated, exactly E[N]."""
    design = doseesc.BOIN(0.25, 3, max_n=12)
    sc = doseesc.Scenario(true_tox=[0.1, 0.25, 0.45], target=0.25)
    ex = doseesc.exact(design, sc)
    e_est, e_se = ex.metric("expected_screened")
    assert e_se == 0 and e_est == pytest.approx(ex.expected_n, abs=1e-12)
    mc = doseesc.simulate(design, sc, 20000, rng=8, calendar=Calendar(accrual_rate=2, screen_fail=fail))
    est, se = mc.metric("expected_screened")
    assert se > 0
    assert abs(est - e_est / (1 - fail)) < 4 * se
