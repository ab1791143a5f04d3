"""The calendar laid over the actual-dose model: failed products, replacements and their delays."""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.actual_dose import DoseModel, LogisticCurve, PatientStatus, scenario_from_curves
from doseesc.calendar import DAYS_PER_MONTH, Calendar
from doseesc.engines.timed import calendar_batch
from doseesc.rng import root_seed
from doseesc.study import run_protocol

LADDER = doseesc.DoseLadder([1e5, 3e5, 6e5], "CAR-T cells/kg", tolerance=0.2)
TABLE = doseesc.Scenario(true_tox=(0.05, 0.15, 0.40), true_eff=(0.30, 0.55, 0.65), target=0.25, name="table")
BUSY = Calendar(accrual_rate=1.5, vein_to_vein_days=28, vein_to_vein_sd=7, dropout=0.05, dlt_window_days=28,
                sentinel_days=14, review_days=7, max_wait_days=60)
MODEL = DoseModel(shortfall=0.1, failure=0.08, below_band="not_evaluable")


@pytest.mark.parametrize("design", [doseesc.ThreePlusThree(3), doseesc.BOIN(0.25, 3, max_n=18),
                                    doseesc.BOIN12(n_tiers=3, max_n=18, phi_t=0.25, phi_e=0.25)],
                         ids=lambda d: d.label)
def test_calendar_keeps_the_trials_of_the_actual_dose_model(design):
    """Designs that wait for complete cohorts decide on counts only: adding the calendar changes no trial."""
    sc = scenario_from_curves("c", LADDER, LogisticCurve(3e5, 0.2, 1.5), None, MODEL, target=0.25)
    sc = doseesc.Scenario(true_tox=sc.true_tox, true_eff=TABLE.true_eff, target=0.25, name="c") \
        if getattr(design, "uses_efficacy", False) else sc
    a = doseesc.simulate(design, sc, 2000, rng=3, ladder=LADDER, dose_model=MODEL)
    b = doseesc.simulate(design, sc, 2000, rng=3, ladder=LADDER, dose_model=MODEL, calendar=BUSY)
    for key in ("selected", "n", "y", "reason"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert {"n_enrolled", "n_replaced", "duration_days", "wait_days"} <= set(b.extra)
    inf = b.patients["infusion_days"]
    infused = ~np.isnan(b.patients["dose"])
    assert np.array_equal(~np.isnan(inf), infused)   # exactly the infused patients have an infusion time
    assert b.metric("duration_days")[0] > 0


def test_a_failed_product_delays_its_replacement_by_hand():
    """One tier, one cohort of 3 evaluable patients; arrivals every 10 days (fixed accrual), products ready
    20 days after enrolment, 28-day DLT window, no staggering.

    Enrolees: A (t=0) has a failed product, known at 0 + 20 = 20; B (t=10) infused at 30; C (t=20) infused
    at 40; D replaces A: its place opens at 20, the next queued patient arrives at 30 and is infused at 50.
    The cohort completes at 50 + 28 = 78 (decision and end of follow-up). Nobody waits for a place; patients
    arriving at 40, 50, 60 and 70 are still queued at the stop: 38 + 28 + 18 + 8 = 92 patient-days.
    Without the failure (D not a replacement) the cohort would complete at 40 + 28 = 68."""
    cal = Calendar(accrual_rate=DAYS_PER_MONTH / 10, accrual="fixed", vein_to_vein_days=20, dlt_window_days=28)
    design = doseesc.ThreePlusThree(1)
    out = {"status": np.array([[PatientStatus.LOST_REPLACED, 0, 0, 0]], dtype=np.int8),
           "assigned": np.array([[0, 0, 0, 0]]), "cohort_start": np.array([[True, False, False, False]]),
           "replacement": np.array([[False, False, False, True]])}
    r = calendar_batch(cal, design, out, root_seed(1), 0, 1)
    assert r["infusion_days"][0, :4].tolist()[1:] == [30.0, 40.0, 50.0] and np.isnan(r["infusion_days"][0, 0])
    assert r["time_to_decision_days"][0] == 78.0 and r["duration_days"][0] == 78.0
    assert r["wait_days"][0] == 92.0
    ok = dict(out, status=np.zeros((1, 4), dtype=np.int8), replacement=np.zeros((1, 4), dtype=bool),
              assigned=np.array([[0, 0, 0, -1]]))
    assert calendar_batch(cal, design, ok, root_seed(1), 0, 1)["duration_days"][0] == 68.0


def test_time_to_event_designs_run_with_the_actual_dose_model():
    """TITE designs combine the calendar and the actual-dose model (tests/test_tite_actual.py checks the rules);
    the result carries the actual-dose metrics beside the calendar's."""
    r = doseesc.simulate(doseesc.TITEBOIN(0.25, 3, max_n=18), TABLE, 200, rng=1, ladder=LADDER, dose_model=MODEL,
                         calendar=BUSY)
    assert {"n_enrolled", "n_replaced", "duration_days"} <= set(r.extra)
    assert r.metric("n_enrolled")[0] >= r.expected_n


def test_bundled_files_with_both_models_simulate(root):
    proto = doseesc.load_protocol(root / "scenarios" / "gd2_b7h3.toml")
    assert proto.calendar is not None and proto.dose_model is not None
    study = run_protocol(proto, designs=["3+3", "BOIN"], scenarios=["dose-driven"], n_trials=500,
                                       seed=2)
    m = study.metrics()
    dur = m[m["metric"] == "duration_days"]["estimate"]
    assert len(dur) == 2 and np.all(dur > 0)
    assert (m[m["metric"] == "n_lost"]["estimate"] > 0).all()
