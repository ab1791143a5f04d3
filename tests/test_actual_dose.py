"""The actual infused dose: release tolerance, shortfall, failure, weight and cap, policies, curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

import doseesc
from doseesc.actual_dose import DoseModel, EmaxCurve, LogisticCurve, PatientStatus, WeightGroup, scenario_from_curves
from doseesc.compare import actual_dose_impact
from doseesc.engines.actual import _batch_actual, _LazyUniforms, _record_arrays, _records
from doseesc.errors import DoseescError, ScenarioError
from doseesc.protocol import load_protocol
from doseesc.state import StopReason
from doseesc.study import run_protocol

LADDER = doseesc.DoseLadder([1e5, 3e5, 6e5], "CAR-T cells/kg", tolerance=0.2)
WEIGHTS = (WeightGroup(0.4, 25, 10, 8, 60, "children"), WeightGroup(0.6, 70, 15, 40, 130, "adults"))
TOX = LogisticCurve(3e5, 0.18, 1.5)
EFF = EmaxCurve(0.10, 0.65, 2e5, 1.5)
TABLE = doseesc.Scenario(true_tox=(0.05, 0.15, 0.40), true_eff=(0.30, 0.55, 0.65), target=0.25, name="table")


def designs():
    return [doseesc.ThreePlusThree(3), doseesc.BOIN(0.25, 3, max_n=18),
            doseesc.CRM(skeleton=[0.14, 0.25, 0.376], target=0.25, max_n=18),
            doseesc.BOIN12(n_tiers=3, max_n=18, phi_t=0.25, phi_e=0.25)]


# -- identity with the plain engine ------------------------------------------------------------
@pytest.mark.parametrize("design", designs(), ids=lambda d: d.label)
@pytest.mark.parametrize("tolerance", [0.0, 0.2])
def test_without_dose_dependence_results_are_bit_identical(design, tolerance):
    """Per-tier truth, no failures, no shortfall: every enrolee is evaluable at the assigned tier with the
    same latent uniform, so every trial is the same as without the model (the actual doses are just recorded)."""
    ladder = doseesc.DoseLadder(LADDER.doses, LADDER.unit, tolerance=tolerance)
    a = doseesc.simulate(design, TABLE, 3000, rng=11, ladder=ladder)
    b = doseesc.simulate(design, TABLE, 3000, rng=11, ladder=ladder, dose_model=DoseModel(release="normal"))
    for key in ("selected", "n", "y", "e", "reason", "fired"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert a.trials()["log"].equals(b.trials()["log"])
    assert b.metric("n_replaced") == (0.0, 0.0)
    doses = b.patients["dose"][b.patients["assigned"] >= 0]
    assert doses.size == a.n.sum()
    nominal = np.asarray(ladder.doses)[b.patients["assigned"][b.patients["assigned"] >= 0]]
    assert np.all(np.abs(doses / nominal - 1) <= tolerance + 1e-12)
    if tolerance:
        assert np.ptp(doses / nominal) > 1.8 * tolerance   # the factor spans the band


def test_batch_size_and_lazy_columns_do_not_change_any_trial():
    model = DoseModel(failure=0.2, shortfall=0.1, below_band="not_evaluable", weights=WEIGHTS, cap_total=1.5e7)
    sc = scenario_from_curves("c", LADDER, TOX, EFF, model, target=0.25)
    d = doseesc.BOIN(0.25, 3, max_n=18)
    a = doseesc.simulate(d, sc, 2500, rng=4, ladder=LADDER, dose_model=model, batch_size=2500)
    b = doseesc.simulate(d, sc, 2500, rng=4, ladder=LADDER, dose_model=model, batch_size=333)
    assert a.extra["n_enrolled"][0].max() > 18 + 3   # some trials needed columns past the first chunk
    for key in ("selected", "n", "y", "e"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert np.array_equal(a.patients["dose"], b.patients["dose"], equal_nan=True)


def test_lazy_uniforms_are_the_patient_uniforms_of_each_trial():
    """Filled in steps, block by block, the engine's uniforms equal patient_uniforms of the same trials."""
    from doseesc.rng import Stream, patient_uniforms, root_seed

    seq = root_seed(9)
    u = _LazyUniforms(seq, 700, 3100, {"tox": Stream.TOX, "product": Stream.PRODUCT}, 5, 30)
    u.ensure(12)
    u.ensure(30)
    trials, enrolee = np.arange(2400)[None, :], np.arange(30)[:, None]
    for key, stream in (("tox", Stream.TOX), ("product", Stream.PRODUCT)):
        got = np.take(u[key], u.index(trials, enrolee))
        assert np.array_equal(got, patient_uniforms(seq, 700, 3100, 30, stream).T)


# -- tier-averaged truth ---------------------------------------------------------------------------
def test_tier_average_equals_closed_form():
    """Emax with hill 1, e0 0, emax 1: p(d) = d / (ed50 + d). With the factor uniform on [1 - t, 1 + t],
    E p(D r) = 1 - ed50 / (2 t D) * ln((ed50 + D (1 + t)) / (ed50 + D (1 - t)))."""
    curve = EmaxCurve(0.0, 1.0, 2.5e5, 1.0)
    model = DoseModel()
    for d in LADDER.doses:
        t, c = 0.2, 2.5e5
        closed = 1 - c / (2 * t * d) * math.log((c + d * (1 + t)) / (c + d * (1 - t)))
        assert model.tier_average(curve, d, t) == pytest.approx(closed, abs=1e-10)


def test_tier_average_with_shortfall_and_cap_equals_direct_quadrature():
    """Independent check of the nested integration: a 2-D scipy dblquad over (weight, factor)."""
    model = DoseModel(release="normal", release_sd=0.08, shortfall=0.1, shortfall_min=0.4,
                      weights=WEIGHTS, cap_total=1.2e7)
    tol = 0.2
    for d in (3e5, 6e5):
        total = 0.0
        for g in WEIGHTS:
            z = special.ndtr(tol / 0.08) - special.ndtr(-tol / 0.08)
            ok = integrate.dblquad(
                lambda r, w: float(TOX(min(d * r, model.cap_total / w))) * g.pdf(w)
                * math.exp(-0.5 * ((r - 1) / 0.08) ** 2) / (math.sqrt(2 * math.pi) * 0.08 * z),
                g.min, g.max, 1 - tol, 1 + tol, epsabs=1e-11, epsrel=1e-10)[0]
            short = integrate.dblquad(
                lambda r, w: float(TOX(min(d * r, model.cap_total / w))) * g.pdf(w) / (1 - tol - 0.4),
                g.min, g.max, 0.4, 1 - tol, epsabs=1e-11, epsrel=1e-10)[0]
            total += g.share * (0.9 * ok + 0.1 * short)
        assert model.tier_average(TOX, d, tol) == pytest.approx(total, abs=1e-7)


def test_simulated_risk_at_actual_doses_averages_to_the_tier_truth():
    """The mean of the curve over the simulated actual doses of a tier is within 4 SE of the integrated truth."""
    model = DoseModel(shortfall=0.08, weights=WEIGHTS, cap_total=1.5e7)
    sc = scenario_from_curves("c", LADDER, TOX, None, model, target=0.25)
    r = doseesc.simulate(doseesc.BOIN(0.25, 3, max_n=30), sc, 6000, rng=2, ladder=LADDER, dose_model=model)
    for t in range(3):
        d = r.patients["dose"][(r.patients["assigned"] == t) & ~np.isnan(r.patients["dose"])]
        risk = TOX(d)
        assert abs(risk.mean() - sc.true_tox[t]) < 4 * risk.std() / math.sqrt(d.size) + 1e-12
    assert sc.true_tox[2] < sc.nominal_tox[2]    # shortfall and the cap lower the top tier's risk


# -- Monte Carlo with actual doses vs exact on the tier-averaged truth ------------------------------
@pytest.mark.parametrize("design", [doseesc.ThreePlusThree(3), doseesc.BOIN(0.25, 3, max_n=18),
                                    doseesc.BOIN12(n_tiers=3, max_n=18, phi_t=0.25, phi_e=0.25)],
                         ids=lambda d: d.label)
def test_monte_carlo_on_actual_doses_within_4_se_of_exact_on_tier_averages(design):
    """Patients are independent and (policy 'nominal', failures replaced) every infused patient counts at
    the assigned tier, so each tier's outcomes are Bernoulli with the tier-averaged probabilities (the
    joint DLT/response cells averaged too): exact on those must agree with the simulation."""
    model = DoseModel(release="normal", shortfall=0.1, failure=0.05, weights=WEIGHTS, cap_total=1.5e7)
    sc = scenario_from_curves("curve", LADDER, TOX, EFF, model, target=0.25, association=2.5)
    mc = doseesc.simulate(design, sc, 20_000, rng=5, ladder=LADDER, dose_model=model)
    ex = doseesc.exact(design, sc, ladder=LADDER)
    se = np.maximum(mc.p_select_mcse, 1e-9)
    assert np.all(np.abs(mc.p_select - ex.p_select) < 4 * se + 1e-12)
    assert abs(mc.expected_n - ex.expected_n) < 4 * mc.expected_n_mcse + 1e-12
    for name in ("mean_dlt", "mean_eff"):
        m, s = mc.metric(name)
        assert abs(m - ex.metric(name)[0]) < 4 * s
    assert mc.metric("n_lost")[0] > 0   # failures happened and were replaced


# -- policies, hand-worked ---------------------------------------------------------------------------
class FixedUniforms:
    """Hand-set latent uniforms for _batch_actual, given per trial (n_trials, columns) and stored
    patient-major (columns, n_trials) as the engine reads them."""

    def __init__(self, **u):
        self.u = {k: np.ascontiguousarray(np.atleast_2d(np.asarray(v, float)).T) for k, v in u.items()}

    def ensure(self, m):
        assert m <= self.u["tox"].shape[0]

    def index(self, trials, enrolee):
        return enrolee * self.step + trials

    @property
    def step(self):
        return self.u["tox"].shape[1]

    def __contains__(self, key):
        return key in self.u

    def __getitem__(self, key):
        return self.u[key]


def run_fixed(design, model, tox, product, ladder=LADDER, scenario=TABLE, cap=None):
    u = FixedUniforms(tox=tox, product=product)
    cap = cap or len(tox)
    sc = doseesc.Scenario(true_tox=scenario.true_tox, target=0.25, name="s")
    rec = _records(1, cap, design.n_tiers)
    out = _batch_actual(design, sc, ladder, model, u, 1, cap, rec, 0)
    out.update(_record_arrays(rec, 1, cap))
    return out


# product uniform: < failure -> failed; >= 1 - shortfall -> short (position (u - (1 - s)) / s in the shortfall
# range [shortfall_min, 0.8)); otherwise conforming, factor from (u - f) / (1 - f - s).
SHORT = 0.995     # with shortfall 0.01: position 0.5 -> factor 0.5 + 0.5 * 0.3 = 0.65 of nominal
OK = 0.5
FAIL = 0.001      # with failure 0.01


def test_policy_nominal_counts_a_short_product_at_its_tier():
    """3+3, first cohort at 1e5: patient 1 gets a short product (0.65 x nominal). Policy 'nominal': infused
    and counted at tier 1; no DLTs (tox uniforms 0.9), so 0/3 and escalate; 9 patients in three cohorts."""
    model = DoseModel(shortfall=0.01, below_band="nominal")
    out = run_fixed(doseesc.ThreePlusThree(3), model, tox=[0.9] * 9 + [0.9] * 9, product=[SHORT] + [OK] * 17)
    assert out["n"][0].tolist() == [3, 3, 3]
    assert out["status"][0, :9].tolist() == [PatientStatus.EVALUABLE] * 9
    assert out["dose"][0, 0] == pytest.approx(0.65e5)
    assert out["n_enrolled"][0] == 9 and out["n_replaced"][0] == 0
    assert out["share_outside_band"][0] == pytest.approx(1 / 9)


def test_policy_not_evaluable_replaces_and_extends_the_trial():
    """Same trial, policy 'not_evaluable': patient 1 is infused but replaced by patient 4; the cohort at
    tier 1 is patients 2-4; the trial enrols 10 patients for 9 evaluable. Patient 1's DLT (tox uniform 0.01)
    is recorded but does not count."""
    model = DoseModel(shortfall=0.01, below_band="not_evaluable")
    tox = [0.01] + [0.9] * 17
    out = run_fixed(doseesc.ThreePlusThree(3), model, tox=tox, product=[SHORT] + [OK] * 17)
    assert out["n"][0].tolist() == [3, 3, 3] and out["y"][0].sum() == 0
    assert out["status"][0, 0] == PatientStatus.NOT_EVALUABLE and out["tox"][0, 0]
    assert out["n_enrolled"][0] == 10 and out["n_replaced"][0] == 1 and out["n_lost"][0] == 0
    assert out["tier"][0, :4].tolist() == [-1, 0, 0, 0]
    assert out["new_cohort"][0, :5].tolist() == [False, True, False, False, True]


def test_policy_do_not_infuse_loses_and_replaces():
    model = DoseModel(shortfall=0.01, below_band="do_not_infuse")
    out = run_fixed(doseesc.ThreePlusThree(3), model, tox=[0.01] + [0.9] * 17, product=[SHORT] + [OK] * 17)
    assert out["status"][0, 0] == PatientStatus.LOST_REPLACED and not out["tox"][0, 0]
    assert np.isnan(out["dose"][0, 0])
    assert out["n"][0].tolist() == [3, 3, 3]
    assert out["n_enrolled"][0] == 10 and out["n_lost"][0] == 1 and out["n_replaced"][0] == 1


def test_policy_band_counts_at_the_tier_whose_band_holds_the_dose():
    """BOIN, max_n 6, no DLTs: the first cohort (3 patients) at 1e5 escalates to 3e5. Patient 4 gets a short
    product, 0.65 x 3e5 = 1.95e5: above tier 1's lower limit (0.8e5), below tier 2's (2.4e5), so it counts
    at tier 1. A short product at tier 1 (0.65e5) lies below every band: not evaluable, replaced."""
    model = DoseModel(shortfall=0.01, below_band="band")
    d = doseesc.BOIN(0.25, 3, max_n=6)
    out = run_fixed(d, model, tox=[0.9] * 12, product=[OK] * 3 + [SHORT] + [OK] * 8)
    assert out["tier"][0, 3] == 0 and out["assigned"][0, 3] == 1
    assert out["dose"][0, 3] == pytest.approx(1.95e5)
    assert out["n"][0].tolist() == [4, 2, 0] and out["n_enrolled"][0] == 6
    d1 = doseesc.BOIN(0.25, 3, max_n=3)
    out1 = run_fixed(d1, model, tox=[0.9] * 6, product=[SHORT] + [OK] * 5)
    assert out1["status"][0, 0] == PatientStatus.NOT_EVALUABLE
    assert out1["n"][0].tolist() == [3, 0, 0] and out1["n_enrolled"][0] == 4


def test_failure_lost_leaves_a_short_cohort_and_replace_fills_it():
    """BOIN, max_n 6: patient 2's product fails. 'lost': the first cohort has 2 evaluable patients, and the
    trial (N counts evaluable patients) still ends at 6 evaluable after 7 enrolled. 'replace': the cohort
    is patients 1, 3, 4."""
    d = doseesc.BOIN(0.25, 3, max_n=6)
    prod = [OK, FAIL] + [OK] * 10
    lost = run_fixed(d, DoseModel(failure=0.01, on_failure="lost"), tox=[0.9] * 12, product=prod)
    assert lost["status"][0, 1] == PatientStatus.LOST
    assert lost["n"][0].sum() == 6 and lost["n_enrolled"][0] == 7 and lost["n_replaced"][0] == 0
    assert lost["n_lost"][0] == 1
    # the first cohort had 2 evaluable patients at tier 1 (0/2 escalates), the next cohorts 3 and 1 (max_n)
    assert lost["n"][0].tolist() == [2, 3, 1]
    rep = run_fixed(d, DoseModel(failure=0.01, on_failure="replace"), tox=[0.9] * 12, product=prod)
    assert rep["status"][0, 1] == PatientStatus.LOST_REPLACED
    assert rep["n"][0].tolist() == [3, 3, 0] and rep["n_enrolled"][0] == 7 and rep["n_replaced"][0] == 1


def test_a_cohort_of_only_lost_patients_repeats_the_tier_without_a_decision():
    d = doseesc.BOIN(0.25, 3, max_n=3)
    out = run_fixed(d, DoseModel(failure=0.01, on_failure="lost"), tox=[0.9] * 9,
                    product=[FAIL] * 3 + [OK] * 6)
    assert out["n"][0].tolist() == [3, 0, 0] and out["n_enrolled"][0] == 6


def test_enrolment_cap_stops_the_trial_and_says_so():
    model = DoseModel(failure=0.01, max_enrolled=4)
    out = run_fixed(doseesc.ThreePlusThree(3, max_n=3), model, tox=[0.9] * 4, product=[FAIL, FAIL, OK, OK], cap=4)
    assert out["reason"][0] == StopReason.ENROLMENT_CAP
    assert out["n"][0].tolist() == [2, 0, 0] and out["n_enrolled"][0] == 4


def test_cap_reached_at_a_cohort_boundary_stops_before_the_next_cohort():
    """Cohort 1 enrols 4 (one failed product), cohort 2 enrols 5 (two failed): 9 enrolled = the cap, with
    6 evaluable of max_n = 9; 0/3 and 0/3 escalate, but no patient can be enrolled for the third cohort."""
    model = DoseModel(failure=0.01, max_enrolled=9)
    out = run_fixed(doseesc.ThreePlusThree(3, max_n=9), model, tox=[0.9] * 9,
                    product=[FAIL, OK, OK, OK, FAIL, FAIL, OK, OK, OK])
    assert out["reason"][0] == StopReason.ENROLMENT_CAP
    assert out["n"][0].tolist() == [3, 3, 0] and out["n_enrolled"][0] == 9 and out["n_replaced"][0] == 3
    # two cohorts started (no cohort starts at the last enrolee), each logged at its first evaluable patient
    assert np.flatnonzero(out["cohort_start"][0]).tolist() == [0, 4]
    assert np.flatnonzero(out["new_cohort"][0]).tolist() == [1, 6]
    assert np.flatnonzero(out["replacement"][0]).tolist() == [3, 7, 8]


def test_a_cap_that_can_push_doses_below_the_band_replaces_patients():
    kw = dict(weights=WEIGHTS, cap_total=2e7)
    assert DoseModel(below_band="not_evaluable", **kw).replaces
    assert DoseModel(below_band="not_evaluable", **kw).enrolment_cap(18) == 36
    assert not DoseModel(below_band="nominal", **kw).replaces
    assert DoseModel(below_band="nominal", **kw).enrolment_cap(18) == 18


def test_cap_screen_passes_every_patient_the_cap_reaches():
    """The engine computes the weight only for patients who pass the screen: none the cap reaches may fail it."""
    model = DoseModel(weights=WEIGHTS + (), cap_total=2e7)
    doses = np.array([1e5, 2e5, 3e5, 4e5])
    edges, thr = model.cap_screen(doses, 1.2)
    v = np.r_[np.random.default_rng(5).random(400_000), edges[1:-1], np.nextafter(edges[1:-1], 0)]
    w = model.weight(v)
    g = np.searchsorted(edges[1:-1], v, side="right")
    for t, d in enumerate(doses):
        reached = model.cap_total / w < d * 1.2
        screened = v > thr[g, t]
        assert not (reached & ~screened).any()
        assert screened.mean() <= reached.mean() + 0.002     # the screen is tight: it spares the weight work
    assert np.all(thr[:, 0] == 2.0)                          # at 1e5/kg nobody reaches 2e7 cells (max 130 kg)


def test_evaluable_n_never_exceeds_max_n_and_enrolled_never_exceeds_the_cap():
    model = DoseModel(failure=0.3, shortfall=0.2, below_band="not_evaluable", max_enrolled=30)
    for design in (doseesc.BOIN(0.25, 3, max_n=18), doseesc.ThreePlusThree(3)):
        r = doseesc.simulate(design, TABLE, 3000, rng=8, ladder=LADDER, dose_model=model)
        assert r.total_n.max() <= design.max_n
        assert r.extra["n_enrolled"][0].max() <= 30
        enrolled, evaluable, replaced = (r.extra[k][0] for k in ("n_enrolled", "n_evaluable", "n_replaced"))
        assert np.array_equal(enrolled, evaluable + replaced)   # every enrolee is evaluable or replaced
        assert (r.reason == StopReason.ENROLMENT_CAP).any()      # the cap binds in some trials: reported
        capped = r.reason == StopReason.ENROLMENT_CAP
        assert np.all(enrolled[capped] == 30)


def test_share_below_band_and_replacements_match_the_model_rates():
    model = DoseModel(shortfall=0.06, failure=0.04, below_band="not_evaluable")
    r = doseesc.simulate(doseesc.BOIN(0.25, 3, max_n=18), TABLE, 8000, rng=3, ladder=LADDER, dose_model=model)
    status = r.patients["status"]
    enrolled = status >= 0
    frac_fail = (status[enrolled] == PatientStatus.LOST_REPLACED).mean()
    frac_short = (status[enrolled] == PatientStatus.NOT_EVALUABLE).mean()
    n = enrolled.sum()
    assert abs(frac_fail - 0.04) < 4 * math.sqrt(0.04 * 0.96 / n)
    assert abs(frac_short - 0.06) < 4 * math.sqrt(0.06 * 0.94 / n)   # disjoint intervals of one uniform
    ds = r.dose_summary()
    assert list(ds.index) == list(LADDER.tier_labels)
    assert np.all(ds["dose_q50"] >= ds["lower"]) and np.all(ds["dose_q90"] <= ds["upper"])
    assert np.all(np.abs(ds["share_below_band"] - 0.06) < 0.03)


# -- fixed cohorts, validation, files -----------------------------------------------------------------
def test_three_plus_three_refuses_policies_that_break_its_cohorts():
    with pytest.raises(DoseescError, match="below_band = 'band'"):
        doseesc.simulate(doseesc.ThreePlusThree(3), TABLE, 10, rng=1, ladder=LADDER,
                         dose_model=DoseModel(shortfall=0.1, below_band="band"))
    with pytest.raises(DoseescError, match="on_failure = 'lost'"):
        doseesc.simulate(doseesc.OBDPick(base=doseesc.ThreePlusThree(3)), TABLE, 10, rng=1, ladder=LADDER,
                         dose_model=DoseModel(failure=0.1, on_failure="lost"))


@pytest.mark.parametrize("kwargs, message", [
    ({"failure": 1.2}, "failure = 1.2"),
    ({"shortfall": -0.1}, "shortfall = -0.1"),
    ({"release": "gamma"}, "release = 'gamma'"),
    ({"below_band": "keep"}, "below_band = 'keep'"),
    ({"on_failure": "retry"}, "on_failure = 'retry'"),
    ({"cap_total": 1e9}, "cap_total needs a body-weight"),
    ({"weights": ({"share": 0.5, "mean": 20, "sd": 5, "min": 8, "max": 40},)}, "shares add up to 0.5"),
    ({"weights": ({"share": 1, "mean": 20, "sd": 5, "min": 40, "max": 8},)}, "max = 8 kg must be above"),
    ({"failure": 0.6, "shortfall": 0.5}, "no product would conform"),
    ({"max_enrolled": 0}, "max_enrolled = 0"),
])
def test_bad_models_are_refused_with_the_key_and_value(kwargs, message):
    with pytest.raises(DoseescError, match=message):
        DoseModel(**kwargs)


def test_curves_validate():
    with pytest.raises(DoseescError, match="p_ref = 1.2"):
        LogisticCurve(3e5, 1.2, 1.0)
    with pytest.raises(DoseescError, match="plateau"):
        EmaxCurve(0.5, 0.7, 1e5)
    with pytest.raises(DoseescError, match="ref_dose = -1"):
        LogisticCurve(-1, 0.2, 1.0)


FILE = """
[protocol]
target = 0.25
max_n = 18
[tiers]
doses = [1e5, 3e5, 6e5]
unit = "cells/kg"
tolerance = 0.2
[[design]]
name = "BOIN"
type = "BOIN"
{extra}
[[scenario]]
name = "s"
{scenario}
"""


@pytest.mark.parametrize("extra, scenario, message", [
    ("[actual_dose]\nfailure = 1.5", "true_tox = [0.1, 0.2, 0.3]", r"x.toml: \[actual_dose\]: failure = 1.5"),
    ("[actual_dose]\nfail = 0.1", "true_tox = [0.1, 0.2, 0.3]", r"\[actual_dose\]: unknown key 'fail'"),
    ("[actual_dose]\ncap_total = 1e8\nweights = [{share = 1, mean = 70, sd = 10, min = 40, max = 120}]",
     "true_tox = [0.1, 0.2, 0.3]", None),
    ("", 'true_tox = [0.1, 0.2, 0.3]\ntox_curve = { model = "logistic", ref_dose = 3e5, p_ref = 0.2, slope = 1 }',
     "not both"),
    ("", 'tox_curve = { model = "probit", ref_dose = 3e5 }', "model = 'probit' is not one of"),
    ("", 'tox_curve = { model = "logistic", ref_dose = 3e5, p_ref = 0.2, slope = 1, steep = 2 }',
     "unknown key 'steep'"),
    ("", 'tox_curve = { model = "logistic", ref_dose = 3e5, p_ref = 0.2 }', "needs slope"),
    ("", 'eff_curve = { model = "emax", e0 = 0.1, emax = 0.5, ed50 = 1e5 }', "eff_curve needs tox_curve"),
])
def test_file_errors_name_file_table_key_and_value(tmp_path, extra, scenario, message):
    p = tmp_path / "x.toml"
    p.write_text(FILE.format(extra=extra, scenario=scenario))
    if message is None:
        proto = load_protocol(p)
        assert proto.dose_model.cap_total == 1e8
        return
    with pytest.raises(ScenarioError, match=message) as err:
        load_protocol(p)
    assert str(p) in str(err.value)


def test_cap_on_a_flat_dose_ladder_is_refused(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text(FILE.replace('unit = "cells/kg"', 'unit = "cells"').format(
        extra="[actual_dose]\ncap_total = 1e8\nweights = [{share = 1, mean = 70, sd = 10, min = 40, max = 120}]",
        scenario="true_tox = [0.1, 0.2, 0.3]"))
    with pytest.raises(ScenarioError, match="not per kg"):
        load_protocol(p)


def test_bundled_files_carry_the_models_the_registries_give(root):
    ecar = load_protocol(root / "scenarios" / "ecar01.toml")
    assert ecar.tiers.tolerance == 0.2 and ecar.dose_model is not None
    gd2 = load_protocol(root / "scenarios" / "gd2_b7h3.toml")
    ages = {g.name for g in gd2.dose_model.weights}
    assert any("children" in a for a in ages) and any("adults" in a for a in ages)
    assert gd2.dose_model.cap_total is not None
    msc = load_protocol(root / "scenarios" / "ucmsc_sle.toml")
    assert msc.tiers.tolerance == 0.1 and msc.dose_model.failure == 0 and msc.dose_model.shortfall == 0
    sc = ecar.scenario("dose-driven")
    assert sc.tox_curve is not None and sc.true_tox != sc.nominal_tox


def test_study_reports_enrolment_and_the_paired_impact(root):
    proto = load_protocol(root / "scenarios" / "ecar01.toml")
    study = run_protocol(proto, designs=["3+3", "BOIN"], scenarios=["mtd-middle", "dose-driven"], n_trials=3000,
                         seed=1)
    m = study.metrics()
    enrolled = m[(m["metric"] == "n_enrolled")]["estimate"].to_numpy()
    evaluable = m[(m["metric"] == "n_evaluable")]["estimate"].to_numpy()
    assert np.all(enrolled > evaluable)   # 3% failures are replaced
    imp = study.dose_impact()
    assert set(imp["design"]) == {"3+3", "BOIN"} and set(imp["scenario"]) == {"mtd-middle", "dose-driven"}
    # with a per-tier truth the model changes only which patients fill the cohorts: no effect in expectation
    flat = imp[(imp["scenario"] == "mtd-middle")]
    assert np.all(np.abs(flat["difference"]) < 4 * flat["mcse"] + 1e-12)


def test_impact_is_exactly_zero_when_the_model_changes_nothing():
    r = actual_dose_impact(doseesc.BOIN(0.25, 3, max_n=18), TABLE, LADDER, DoseModel(), 1000, rng=3)
    assert np.all(r["difference"] == 0) and np.all(r["mcse"] == 0)


def test_impact_detects_a_real_effect():
    """A flat cap that under-doses most patients at the top tier lowers its tier-averaged risk below the
    target, so the true MTD moves up; scored against that truth the model must change P(select)."""
    model = DoseModel(weights=(WeightGroup(1.0, 80, 10, 60, 120),), cap_total=2e7)
    sc = scenario_from_curves("c", LADDER, LogisticCurve(6e5, 0.32, 2.0), None, model, target=0.25)
    assert sc.mtd(0.25) == 2 and sc.nominal_tox[2] > 0.25
    r = actual_dose_impact(doseesc.BOIN(0.25, 3, max_n=18), sc, LADDER, model, 4000, rng=3)
    assert r.loc["p_correct", "difference"] > 4 * r.loc["p_correct", "mcse"]


def test_actual_dose_figure_has_one_violin_per_tier():
    model = DoseModel(shortfall=0.1, weights=WEIGHTS, cap_total=1.5e7)
    r = doseesc.simulate(doseesc.BOIN(0.25, 3, max_n=18), TABLE, 500, rng=1, ladder=LADDER, dose_model=model)
    ax = r.plot_actual_doses()
    assert ax.get_yscale() == "log"
    assert len(ax.collections) >= 3 + 3   # three bands and three violins
    assert "CAR-T cells/kg" in ax.get_ylabel()
    with pytest.raises(DoseescError, match="actual-dose model"):
        doseesc.simulate(doseesc.BOIN(0.25, 3, max_n=18), TABLE, 50, rng=1).dose_summary()


def test_tabulated_inverse_cdfs_match_the_exact_ones():
    """Body weight (per group, tails exact) within 0.001 kg, the normal release factor within 1e-8."""
    groups = (WeightGroup(0.2, 12, 3, 8, 30), WeightGroup(0.3, 30, 10, 15, 70), WeightGroup(0.5, 72, 15, 40, 140))
    model = DoseModel(release="normal", release_sd=0.1, weights=groups)
    v = np.r_[np.random.default_rng(0).random(400_000), 0.0, 0.2, 0.5, 1 - 1e-16]
    edges = np.cumsum([0.0] + [g.share for g in groups])
    exact = np.empty_like(v)
    for k, g in enumerate(groups):
        m = (v >= edges[k]) & ((v < edges[k + 1]) if k < len(groups) - 1 else True)
        exact[m] = g.ppf((v[m] - edges[k]) / (edges[k + 1] - edges[k]))
    assert np.max(np.abs(model.weight(v) - exact)) < 1e-3
    a, b = special.ndtr(-2.0), special.ndtr(2.0)
    ref = np.clip(1 + 0.1 * special.ndtri(a + v * (b - a)), 0.8, 1.2)
    assert np.max(np.abs(model.release_factor(v, 0.2) - ref)) < 1e-8


@pytest.mark.parametrize("kwargs", [dict(release="normal", release_sd=0.1, failure=0.05, shortfall=0.05),
                                    dict(release="normal", release_sd=0.07, failure=0.0, shortfall=0.13),
                                    dict(release="uniform", failure=0.031, shortfall=0.0),
                                    dict(release="normal", release_sd=0.03, failure=0.02, shortfall=0.0),
                                    dict(release="normal", release_sd=0.1)], ids=str)
@pytest.mark.parametrize("tolerance", [0.0, 0.2])
def test_tabulated_product_matches_its_definition_at_and_around_the_interval_ends(kwargs, tolerance):
    """DoseModel.product tabulates failure, shortfall and the release factor as one function of the product
    uniform; against the definition written out here, within 1e-8 everywhere, exactly at the ends of the
    intervals (failure, shortfall), one ulp either side, and over the grid cells that straddle them; also for
    a narrow release distribution (SD 0.03 in a +-0.2 band), whose inverse CDF is steep at the band's ends."""
    model = DoseModel(shortfall_min=0.4, below_band="not_evaluable", **kwargs)
    f, s = model.failure, model.shortfall
    ends = [f, 1 - s]
    near = [np.nextafter(e, d) for e in ends for d in (0.0, 1.0)]
    grid = [(np.floor(e * 65535) + k) / 65535 for e in ends for k in (-1, 0, 0.5, 1, 2)]
    u = np.clip(np.r_[np.random.default_rng(3).random(200_000), ends, near, grid, 0.0, 1 - 2 ** -53], 0, 1 - 2 ** -53)
    failed, factor = model.product(u.copy(), tolerance)
    np.testing.assert_array_equal(failed if failed is not None else np.zeros(u.size, bool), u < f)
    expect = np.empty_like(u)
    short = u >= 1 - s
    expect[short] = 0.4 + (1 - tolerance - 0.4) * (u[short] - (1 - s)) / s
    ok = ~short & (u >= f)
    v = (u[ok] - f) / (1 - f - s)
    if tolerance == 0:
        expect[ok] = 1.0
    elif model.release == "uniform":
        expect[ok] = 1 - tolerance + 2 * tolerance * v
    else:
        sd = model.release_sd
        a, b = special.ndtr(-tolerance / sd), special.ndtr(tolerance / sd)
        expect[ok] = np.clip(1 + sd * special.ndtri(a + v * (b - a)), 1 - tolerance, 1 + tolerance)
    keep = u >= f                       # a failed product has no factor
    assert np.max(np.abs(factor[keep] - expect[keep])) < 1e-8
    assert np.all(factor[ok] >= 1 - tolerance) and np.all(factor[short] < 1 - tolerance + 1e-12)


def test_logistic_curve_matches_its_formula():
    curve = LogisticCurve(3e5, 0.18, 1.5)
    d = np.r_[np.random.default_rng(4).uniform(1e3, 5e6, 10_000), 3e5]
    ref = 1 / (1 + np.exp(-(special.logit(0.18) + 1.5 * np.log(d / 3e5))))
    assert np.max(np.abs(curve(d) - ref)) < 1e-14
    assert curve(3e5) == pytest.approx(0.18, abs=1e-15) and float(curve(0.0)) == 0.0
    flat = LogisticCurve(3e5, 0.18, 0.0)
    np.testing.assert_array_equal(flat(np.array([0.0, 1.0, 1e9])), 0.18)
