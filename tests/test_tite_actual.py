"""Time-to-event designs with the actual-dose model (issue 19 item 4): late toxicity and the release band together.

The engine entry points are :func:`doseesc.engines.timed.tite_actual_batch` (one batch) and
:func:`~doseesc.engines.timed.simulate_tite_actual` (a checked run). ``doseesc.simulate`` still refuses the
combination (engines/run.py); the fixture ``combined`` patches the dispatch as it will be once the refusal goes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import doseesc
import doseesc.engines.montecarlo as mc
import doseesc.engines.run as run_mod
import doseesc.engines.timed as timed_mod
from doseesc.actual_dose import DoseModel, EmaxCurve, LogisticCurve, PatientStatus, scenario_from_curves
from doseesc.calendar import DAYS_PER_MONTH, Calendar
from doseesc.engines.actual import ACTUAL_DOSE_METRICS
from doseesc.engines.run import Run
from doseesc.engines.timed import (TITE_ACTUAL_RECORDS, finish_tite_actual, simulate_tite_actual, tite_actual_batch,
                                   tite_batch)
from doseesc.results import two_dlt_cohort
from doseesc.rng import Stream, patient_uniforms, root_seed

K = 4
LADDER0 = doseesc.DoseLadder([1e5, 3e5, 6e5, 1e6], "CAR-T cells/kg", tolerance=0.0)
LADDER = doseesc.DoseLadder([1e5, 3e5, 6e5, 1e6], "CAR-T cells/kg", tolerance=0.2)
TRUTH = doseesc.Scenario(true_tox=(0.05, 0.15, 0.30, 0.45), true_eff=(0.20, 0.40, 0.50, 0.55), target=0.25,
                         name="table")
#: a busy calendar: gamma manufacturing, drop-outs, sentinel, review, patients who leave
BUSY = Calendar(accrual_rate=3, vein_to_vein_days=20, vein_to_vein_sd=5, dropout=0.05, dlt_window_days=28,
                eff_window_days=56, sentinel_days=7, review_days=3, max_wait_days=40)
DESIGNS = [doseesc.TITEBOIN(0.25, K, max_n=18),
           doseesc.TITECRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 2, K)), 0.25, max_n=12),
           doseesc.TITEBOIN12(n_tiers=K, max_n=18, phi_t=0.3, phi_e=0.3)]
FAILING = DoseModel(shortfall=0.1, failure=0.1, below_band="not_evaluable")


def _run(design, scenario, model, ladder=LADDER, cal=BUSY, n=600, seed=5, batch=None) -> Run:
    return Run(design=design, scenario=scenario, n_trials=n, batch_size=batch or n, seq=root_seed(seed),
               target=0.25, obd=None, ladder=ladder, dose_model=model, calendar=cal)


@pytest.fixture
def combined(monkeypatch):
    """``doseesc.simulate`` as it dispatches once engines/run.py drops its refusal of time-to-event designs with
    the actual-dose model: montecarlo's ``_kind`` answers ``"tite_actual"`` and ``_RUNNERS`` runs
    :func:`simulate_tite_actual` (the change described in docs/notes/tite.md)."""
    real_check, real_kind = run_mod._check_models, mc._kind

    def check_models(design, ladder, dose_model, calendar):
        both = dose_model is not None and calendar is not None and design.time_to_event
        real_check(design, ladder, dose_model, None if both else calendar)

    def kind(run):
        both = run.dose_model is not None and run.calendar is not None and run.time_to_event
        return "tite_actual" if both else real_kind(run)

    real_call, real_finish = mc.RangeBatch.__call__, mc._finish

    def call(self, start, stop):   # RangeBatch: the batch, and without records the same trimming as the others
        if self.kind != "tite_actual":
            return real_call(self, start, stop)
        b = tite_actual_batch(self.run, start, stop)
        if self.keep_records:
            return b
        b[mc.TWO_DLT_KEY] = two_dlt_cohort(b["tier"], b["tox"], b["new_cohort"]).astype(bool)
        for key in TITE_ACTUAL_RECORDS + ("ye",) + (("e",) if self.run.scenario.true_eff is None else ()):
            b.pop(key, None)
        for key in ("n", "y", "e"):
            if key in b:
                b[key] = b[key].astype(np.int16)
        return b

    def finish(run, kind, out):
        return finish_tite_actual(out) if kind == "tite_actual" else real_finish(run, kind, out)

    monkeypatch.setattr(run_mod, "_check_models", check_models)
    monkeypatch.setattr(mc, "_kind", kind)
    monkeypatch.setitem(mc._RUNNERS, "tite_actual", simulate_tite_actual)
    monkeypatch.setattr(mc.RangeBatch, "__call__", call)
    monkeypatch.setattr(mc, "_finish", finish)


# -- a model that changes nothing -------------------------------------------------------------------------------
@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.label)
def test_a_model_that_changes_nothing_gives_the_tite_trials_bit_for_bit(design):
    """No tolerance, no shortfall, no failure: every enrolee is infused at the nominal dose and evaluable, so
    enrolee k is infused patient k and every array of the TITE engine is identical (drop-outs, sentinel and
    waiting included)."""
    run = _run(design, TRUTH, DoseModel(), ladder=LADDER0)
    a = tite_batch(design, TRUTH, BUSY, run.seq, 0, run.n_trials)
    b = tite_actual_batch(run, 0, run.n_trials)
    for key, v in a.items():
        assert np.array_equal(v, b[key], equal_nan=v.dtype.kind == "f"), key
    assert np.all(b["n_replaced"] == 0) and np.all(b["n_lost"] == 0)
    assert np.array_equal(b["n_enrolled"], a["n"].sum(axis=1).astype(float))
    assert np.all((b["status"] == PatientStatus.EVALUABLE) == (a["tier"] >= 0))


def test_through_simulate_the_trivial_model_equals_the_calendar_run(combined):
    d = DESIGNS[0]
    plain = doseesc.simulate(d, TRUTH, 500, rng=4, calendar=BUSY)
    both = doseesc.simulate(d, TRUTH, 500, rng=4, calendar=BUSY, ladder=LADDER0, dose_model=DoseModel())
    for key in ("selected", "n", "y", "e", "reason"):
        assert np.array_equal(getattr(plain, key), getattr(both, key)), key
    for key in ("duration_days", "time_to_decision_days", "wait_days", "lost_waiting"):
        np.testing.assert_array_equal(plain.extra[key][0], both.extra[key][0])
    assert np.array_equal(plain.screened, both.screened)
    assert both.provenance["dose_model"] == DoseModel().to_dict()


# -- hand-worked timelines -----------------------------------------------------------------------------------
def _one_trial(monkeypatch, design, scenario, cal, model, ladder, fixed: dict) -> dict:
    """One trial of :func:`tite_actual_batch` with the given latent uniforms for the streams in ``fixed``
    (each patient's entry, repeated), every other stream as drawn."""
    real = timed_mod.patient_uniforms

    def fake(seq, start, stop, n_patients, stream=Stream.TOX):
        if stream in fixed:
            return np.resize(np.asarray(fixed[stream], float), (stop - start, n_patients))
        return real(seq, start, stop, n_patients, stream)

    monkeypatch.setattr(timed_mod, "patient_uniforms", fake)
    return tite_actual_batch(_run(design, scenario, model, ladder=ladder, cal=cal, n=2), 0, 1)


#: one patient every 10 days (0, 10, 20, ...), products ready 20 days after enrolment, 30-day DLT window
HAND_CAL = Calendar(accrual="fixed", accrual_rate=DAYS_PER_MONTH / 10, vein_to_vein_days=20, dlt_window_days=30,
                    tox_time="uniform")
HAND_LADDER = doseesc.DoseLadder([1.0, 2.0], "mg", tolerance=0.0)
HAND_TRUTH = doseesc.Scenario(true_tox=[0.5, 0.6], target=0.25)
NO_DLT = {Stream.TOX: [0.9] * 8, Stream.TOX_TIME: [0.5] * 8}


def test_a_failed_product_is_replaced_when_it_was_due_by_hand(monkeypatch):
    """TITE-BOIN, cohorts of 1, max_n 2, no DLT; failures 10% (PRODUCT uniform below 0.1), replaced.

    - A arrives day 0, enrolled at tier 1; the product fails (u 0.05), known when due: day 0 + 20 = 20.
    - Cohort 1 is A's replacement B: the place opens on day 20, B (queued since day 10) is enrolled then, waits
      10 days, product ready 40, infused 40.
    - The next cohort opens when C (arrived day 20) is available: day 20. A no longer counts (its failure is
      known); B is pending at tier 1 (n 1, 1 pending > 0.5 x 1): TITE-BOIN suspends accrual until B's window
      ends on day 40 + 30 = 70; then n 1, y 0, nothing pending: escalate. C enrolled day 70 at tier 2, waited
      50 days, infused 90.
    - Two evaluable patients = max_n: the trial stops enrolling on day 70 (C's enrolment); the patients queued
      then (arrived 30, 40, 50, 60) are turned away after 40 + 30 + 20 + 10 = 100 days. Wait 10 + 50 + 100
      = 160 patient-days. The decision and the end of follow-up: C's window, 90 + 30 = 120.
    Without the failure: A infused day 20; B (day 10) waits for A's window (day 50), enrolled at tier 2, infused
    70; end 100; wait 40 + (30 + 20 + 10 queued at day 50) = 100."""
    d = doseesc.TITEBOIN(0.25, 2, cohort_size=1, max_n=2)
    model = DoseModel(failure=0.1)
    out = _one_trial(monkeypatch, d, HAND_TRUTH, HAND_CAL, model, HAND_LADDER,
                     {**NO_DLT, Stream.PRODUCT: [0.05, 0.5, 0.5, 0.5]})
    np.testing.assert_array_equal(out["infusion_days"][0], [np.nan, 40.0, 90.0, np.nan])
    assert out["status"][0].tolist() == [PatientStatus.LOST_REPLACED, 0, 0, PatientStatus.NOT_ENROLLED]
    assert out["assigned"][0].tolist() == [0, 0, 1, -1] and out["tier"][0].tolist() == [-1, 0, 1, -1]
    assert out["replacement"][0].tolist() == [False, True, False, False]
    assert out["cohort_start"][0].tolist() == [True, False, True, False]
    assert out["new_cohort"][0].tolist() == [False, True, True, False]
    assert out["n"][0].tolist() == [1, 1] and out["reason"][0] == doseesc.StopReason.MAX_N
    assert out["time_to_decision_days"][0] == 120.0 and out["duration_days"][0] == 120.0
    assert out["wait_days"][0] == 160.0
    assert (out["n_enrolled"][0], out["n_replaced"][0], out["n_lost"][0]) == (3.0, 1.0, 1.0)
    assert np.isnan(out["dose"][0, 0]) and out["dose"][0, 1:3].tolist() == [1.0, 2.0]

    ok = _one_trial(monkeypatch, d, HAND_TRUTH, HAND_CAL, model, HAND_LADDER, {**NO_DLT, Stream.PRODUCT: [0.5]})
    np.testing.assert_array_equal(ok["infusion_days"][0], [20.0, 70.0, np.nan, np.nan])
    assert ok["duration_days"][0] == 100.0 and ok["wait_days"][0] == 100.0
    assert ok["n_replaced"][0] == 0 and ok["replacement"][0].sum() == 0


def test_a_lost_product_leaves_the_data_when_due_and_ends_the_wait_by_hand(monkeypatch):
    """on_failure = "lost" (not replaced), products ready 15.5 days after enrolment, at most 2 enrolees.

    - A (day 0) at tier 1, product fails, known on day 15.5; the cohort goes on without it (lost).
    - Cohort 1 opens when B arrives (day 10): A still counts as pending at tier 1 (n 1, 1 pending): wait. The
      next event is the news of A's failure on day 15.5 (not a DLT or a window's end): A leaves the data, n 0,
      TITE-BOIN stays at tier 1 and B is enrolled on day 15.5 (waited 5.5 days), infused 31.
    - Cohort 2: the enrolment cap (2) is reached: the trial stops (ENROLMENT_CAP) on day 15.5 and selects on
      its complete data (tier 1: 0/1) when B's window ends: 31 + 30 = 61. C (arrived day 20) was not yet
      queued at the stop: wait 5.5 days."""
    d = doseesc.TITEBOIN(0.25, 2, cohort_size=1, max_n=2)
    cal = dataclasses.replace(HAND_CAL, vein_to_vein_days=15.5)
    model = DoseModel(failure=0.1, on_failure="lost")
    out = _one_trial(monkeypatch, d, HAND_TRUTH, cal, model, HAND_LADDER,
                     {**NO_DLT, Stream.PRODUCT: [0.05, 0.5, 0.5]})
    np.testing.assert_array_equal(out["infusion_days"][0], [np.nan, 31.0])
    assert out["status"][0].tolist() == [PatientStatus.LOST, PatientStatus.EVALUABLE]
    assert out["assigned"][0].tolist() == [0, 0] and out["replacement"][0].tolist() == [False, False]
    assert out["reason"][0] == doseesc.StopReason.ENROLMENT_CAP and out["selected"][0] == 0
    assert out["n"][0].tolist() == [1, 0]
    assert out["time_to_decision_days"][0] == 61.0 and out["duration_days"][0] == 61.0
    assert out["wait_days"][0] == 5.5
    assert (out["n_enrolled"][0], out["n_replaced"][0], out["n_lost"][0]) == (2.0, 0.0, 1.0)


def test_a_pending_patient_counts_at_the_assigned_tier_until_the_news_by_hand():
    """:func:`_tier_at`: before the product's fate is known a patient counts at the assigned tier (pending),
    from then on at the tier the policy counts them at (-1: not at all)."""
    pt = {"tier": np.array([[1, 1, 2]]), "counted": np.array([[1, -1, 1]]), "known": np.array([[5.0, 20.0, 30.0]])}
    rows = np.array([0])
    assert timed_mod._tier_at(np.array([4.0]), rows, pt).tolist() == [[1, 1, 2]]
    assert timed_mod._tier_at(np.array([20.0]), rows, pt).tolist() == [[1, -1, 2]]
    assert timed_mod._tier_at(np.array([np.inf]), rows, pt).tolist() == [[1, -1, 1]]


# -- outcomes, records and metrics ------------------------------------------------------------------------------
def test_outcomes_come_from_the_actual_dose_where_the_truth_is_a_curve():
    """Each infused enrolee j has a DLT exactly when its TOX uniform (column j) is below the curve at its actual
    dose (band policy: counted at the tier whose band holds the dose); counts add up from the records."""
    model = DoseModel(shortfall=0.15, failure=0.05, below_band="band")
    sc = scenario_from_curves("curve", LADDER, LogisticCurve(3e5, 0.15, 1.5), None, model, target=0.25)
    d = DESIGNS[0]
    run = _run(d, sc, model, n=400)
    out = tite_actual_batch(run, 0, 400)
    cap = model.enrolment_cap(d.max_n)
    u = patient_uniforms(run.seq, 0, 400, cap, Stream.TOX)
    st, dose, tier = out["status"], out["dose"], out["tier"]
    infused = (st == PatientStatus.EVALUABLE) | (st == PatientStatus.NOT_EVALUABLE)
    assert np.array_equal(~np.isnan(dose), infused) and np.array_equal(~np.isnan(out["infusion_days"]), infused)
    assert np.array_equal(out["tox"][infused], u[infused] < sc.tox_curve(dose[infused]))
    assert not out["tox"][~infused].any()
    lower = np.asarray(LADDER.doses) * (1 - 0.2) * (1 - 1e-9)
    ev = st == PatientStatus.EVALUABLE
    assert np.all(lower[tier[ev]] <= dose[ev])                               # counted where the dose lies
    assert (tier[ev] < out["assigned"][ev]).any()                            # some counted a tier lower
    for t in range(K):
        assert np.array_equal(out["n"][:, t], (tier == t).sum(axis=1))
        assert np.array_equal(out["y"][:, t], ((tier == t) & out["tox"]).sum(axis=1))
    assert np.all(out["n"].sum(axis=1) <= d.max_n)


def test_outcomes_come_from_the_assigned_tier_where_the_truth_is_a_table():
    d = DESIGNS[2]
    run = _run(d, TRUTH, FAILING, n=300)
    out = tite_actual_batch(run, 0, 300)
    cap = FAILING.enrolment_cap(d.max_n)
    u = patient_uniforms(run.seq, 0, 300, cap, Stream.TOX)
    infused = ~np.isnan(out["dose"])
    p = np.asarray(TRUTH.true_tox)[out["assigned"][infused]]
    assert np.array_equal(out["tox"][infused], u[infused] < p)
    assert out["eff"][~infused].sum() == 0 and out["e"].sum() > 0


def test_results_carry_the_actual_dose_metrics(combined):
    """The metrics of an actual-dose run (enrolled, evaluable, replaced, never infused, share outside the band) and
    the calendar's; every enrolee is evaluable, replaced or (on_failure = "lost") lost."""
    d = DESIGNS[0]
    sc = doseesc.Scenario(true_tox=TRUTH.true_tox, target=0.25, name="t")
    model = DoseModel(shortfall=0.1, failure=0.08, below_band="nominal")
    res = doseesc.simulate(d, sc, 800, rng=2, calendar=BUSY, ladder=LADDER, dose_model=model)
    base = doseesc.simulate(doseesc.BOIN(0.25, K, max_n=18), sc, 50, rng=2, calendar=BUSY, ladder=LADDER,
                            dose_model=model)
    assert set(res.extra) == set(base.extra) and set(ACTUAL_DOSE_METRICS) <= set(res.extra)
    ex = {key: v[0] for key, v in res.extra.items()}
    np.testing.assert_array_equal(ex["n_enrolled"], ex["n_evaluable"] + ex["n_replaced"])
    np.testing.assert_array_equal(ex["n_evaluable"], res.n.sum(axis=1))
    assert ex["n_lost"].mean() > 0 and np.nanmean(ex["share_outside_band"]) > 0.05   # shortfall 10%, infused
    m = res.metrics()["estimate"]
    assert m["n_replaced"] == pytest.approx(ex["n_replaced"].mean()) and m["duration_days"] > 0
    # nominal policy: the short products are infused and counted at their tier: replaced = never infused
    np.testing.assert_array_equal(ex["n_replaced"], ex["n_lost"])
    assert {"dose", "status", "infusion_days", "assigned"} <= set(res.patients)

    lost = doseesc.simulate(d, sc, 400, rng=2, calendar=BUSY, ladder=LADDER,
                            dose_model=DoseModel(failure=0.1, on_failure="lost"))
    ex = {key: v[0] for key, v in lost.extra.items()}
    assert np.all(ex["n_replaced"] == 0) and ex["n_lost"].mean() > 0
    np.testing.assert_array_equal(ex["n_enrolled"], ex["n_evaluable"] + ex["n_lost"])


def test_failures_lengthen_the_trials_paired(combined):
    """The same trials (same seed) with 10% failures replaced and 10% short products not evaluable: every
    replacement waits for its news, so the trials last longer on average; none treats more than max_n
    evaluable patients."""
    d = DESIGNS[1]
    a = doseesc.simulate(d, TRUTH, 600, rng=8, calendar=BUSY, ladder=LADDER0, dose_model=DoseModel())
    b = doseesc.simulate(d, TRUTH, 600, rng=8, calendar=BUSY, ladder=LADDER, dose_model=FAILING)
    diff = b.extra["duration_days"][0] - a.extra["duration_days"][0]
    assert diff.mean() > 4 * diff.std() / np.sqrt(diff.size)
    assert b.total_n.max() <= d.max_n and b.extra["n_enrolled"][0].mean() > a.extra["n_enrolled"][0].mean()


@pytest.mark.parametrize("design", DESIGNS[::2], ids=lambda d: d.label)
def test_batch_invariance(design):
    """Trial i sees the same patients in any batch: the same arrays for any batch size."""
    eff = EmaxCurve(0.1, 0.6, 3e5) if design.uses_efficacy else None
    sc = scenario_from_curves("curve", LADDER, LogisticCurve(3e5, 0.15, 1.5), eff, FAILING, target=0.25)
    a, _, _ = simulate_tite_actual(_run(design, sc, FAILING, n=500, batch=500))
    b, _, _ = simulate_tite_actual(_run(design, sc, FAILING, n=500, batch=130))
    for key, v in a.items():
        assert np.array_equal(v, b[key], equal_nan=v.dtype.kind == "f"), key


def test_ecar01_band_and_late_toxicity_together(root, combined):
    """ECAR01's ladder (±20%), actual-dose model (5% short, 3% failures) and calendar with a TITE-BOIN: runs, and
    its trials are shorter than BOIN's with the same N on the same seed (TITE decides with pending patients)."""
    proto = doseesc.load_protocol(root / "scenarios" / "ecar01.toml")
    sc = next(iter(proto.scenarios.values()))
    tite = doseesc.TITEBOIN(0.25, 3, max_n=18)
    kw = dict(rng=1, calendar=proto.calendar, ladder=proto.tiers, dose_model=proto.dose_model)
    res = doseesc.simulate(tite, sc, 400, **kw)
    three = doseesc.simulate(doseesc.BOIN(0.25, 3, max_n=18), sc, 400, **kw)
    assert res.extra["n_lost"][0].mean() > 0
    assert res.extra["duration_days"][0].mean() < three.extra["duration_days"][0].mean()


def test_without_records_and_to_a_precision_the_same_trials(combined):
    """Through the range-batch path of ``simulate`` (keep_records=False, precision): the same selections and
    metrics as the run with records, and a precision run equals a plain run of the trials it kept."""
    d = DESIGNS[0]
    kw = dict(rng=3, calendar=BUSY, ladder=LADDER, dose_model=FAILING)
    full = doseesc.simulate(d, TRUTH, 1100, **kw)
    lean = doseesc.simulate(d, TRUTH, 1100, keep_records=False, **kw)
    assert np.array_equal(full.selected, lean.selected) and np.array_equal(full.n, lean.n)
    a, b = full.metrics()["estimate"], lean.metrics()["estimate"]
    np.testing.assert_allclose(b.to_numpy(float), a[b.index].to_numpy(float), rtol=1e-12, equal_nan=True)
    assert lean.patients is None or "dose" not in (lean.patients or {})
    prec = doseesc.simulate(d, TRUTH, 2048, precision=0.2, **kw)
    again = doseesc.simulate(d, TRUTH, prec.n_trials, **kw)
    assert np.array_equal(prec.selected, again.selected)
    np.testing.assert_array_equal(prec.extra["n_replaced"][0], again.extra["n_replaced"][0])
