"""BLRM on each patient's actual dose under the actual-dose model (issue 22 item 1; docs/notes/blrm.md)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import doseesc
from doseesc import BLRM, DesignError, TrialState
from doseesc.actual_dose import DoseModel, PatientStatus
from doseesc.errors import OutcomeError
from doseesc.state import StopReason

ECAR01 = "scenarios/ecar01.toml"


def _expit(z):
    return np.exp(-np.logaddexp(0.0, -z))


def _gl(lo, hi, n=160):
    """Gauss-Legendre nodes and weights on [lo, hi] (arrays broadcast over leading axes)."""
    t, w = np.polynomial.legendre.leggauss(n)
    lo, hi = np.asarray(lo, float)[..., None], np.asarray(hi, float)[..., None]
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * t, 0.5 * (hi - lo) * w


def reference(design: BLRM, dose, dlt, width: float = 9.0):
    """P(under), P(over) and mean P(DLT) per tier (nominal doses) after patients at ``dose`` with ``dlt``, by
    nested Gauss-Legendre quadrature written here: outer over log(beta), inner over log(alpha) split exactly
    at each interval boundary (for fixed beta, P(DLT | d) > c is a half-line in log(alpha))."""
    (m1, m2), (s1, s2), rho = design.prior_mean, design.prior_sd, design.prior_corr
    x_pt = np.log(np.asarray(dose, float) / design.d_ref)
    y_pt = np.asarray(dlt, float)
    b, wb = _gl(m2 - width * s2, m2 + width * s2, 400)        # (400,)
    a_lo, a_hi = m1 - width * s1, m1 + width * s1

    def dens(a, b_):
        z1, z2 = (a - m1) / s1, (b_ - m2) / s2
        lp = -0.5 * (z1 * z1 - 2 * rho * z1 * z2 + z2 * z2) / (1 - rho * rho)
        eta = a[..., None] + np.exp(b_)[..., None] * x_pt
        ll = (y_pt * eta - np.logaddexp(0.0, eta)).sum(axis=-1)
        return np.exp(lp + ll)

    def integral(lo, hi, f=None):
        """int over b of int_{lo(b)}^{hi(b)} density (times f(a, b)) da."""
        lo = np.clip(lo, a_lo, a_hi)
        hi = np.clip(hi, a_lo, a_hi)
        a, wa = _gl(lo, hi)
        bb = np.broadcast_to(b[:, None], a.shape)
        v = dens(a, bb) * (1.0 if f is None else f(a, bb))
        return float(((v * wa).sum(axis=1) * wb).sum())

    x_tier = np.log(np.asarray(design.doses) / design.d_ref)
    lo_c, hi_c = (math.log(c / (1 - c)) for c in design.boundaries)
    out = np.zeros((3, design.n_tiers))
    total = None
    for k, xk in enumerate(x_tier):
        t_lo = lo_c - np.exp(b) * xk           # P(DLT | d_k) < lower boundary iff log(alpha) < t_lo
        t_hi = hi_c - np.exp(b) * xk
        below = integral(np.full_like(b, a_lo), t_lo)
        above = integral(t_hi, np.full_like(b, a_hi))
        mid = integral(t_lo, t_hi)
        tot = below + mid + above
        total = tot if total is None else total
        mean = sum(integral(lo, hi, lambda a, bb: _expit(a + np.exp(bb) * xk))
                   for lo, hi in ((np.full_like(b, a_lo), t_lo), (t_lo, t_hi), (t_hi, np.full_like(b, a_hi))))
        out[:, k] = below / tot, above / tot, mean / tot
    return out


def _design():
    # doses 1, 2, 4 with d_ref 2; prior (log alpha, log beta) ~ N((logit 0.25, 0), diag(2^2, 1^2))
    return BLRM((1.0, 2.0, 4.0), 2.0, cohort_size=3, max_n=12, prior_mean=(-1.0986, 0.0))


def test_hand_worked_three_patients_equal_direct_quadrature():
    # Three patients at their own doses: 0.85 (no DLT), 2.3 (DLT), 1.7 (no DLT). Their log-likelihood is
    # sum_i [y_i eta_i - log(1 + exp(eta_i))], eta_i = log(alpha) + beta log(d_i / 2); the reference integrates
    # prior x likelihood directly (nested Gauss-Legendre, split at the interval ends).
    d = _design()
    dose = np.array([[0.85, 2.3, 1.7]])
    dlt = np.array([[False, True, False]])
    ref = reference(d, dose[0], dlt[0])
    got = d.posterior_summary_patients(dose, dlt)[0]
    np.testing.assert_allclose(got[:2], ref[:2], atol=5e-4)      # interval probabilities: the grid's accuracy
    np.testing.assert_allclose(got[2], ref[2], atol=1e-5)        # posterior means of P(DLT)
    # the same patients counted at their nominal tiers (1, 2, 2: 0/1, 1/2) give another posterior
    nominal = d.posterior_summary(np.array([[1, 2, 0]]), np.array([[0, 1, 0]]))[0]
    ref_nom = reference(d, [1.0, 2.0, 2.0], [False, True, False])
    np.testing.assert_allclose(nominal[:2], ref_nom[:2], atol=5e-4)
    assert np.abs(nominal[:2] - got[:2]).max() > 0.01             # the actual doses matter here
    # the design reads them from a state (pt_dose, pt_dlt), as the actual-dose engine writes them
    st = TrialState.from_counts([[1, 2, 0]], [[0, 1, 0]], [1])
    st.pt_dose = np.array([[0.85, 2.3, np.nan, 1.7]])
    st.pt_dlt = np.array([[False, True, False, False]])
    p = d.state_probabilities(st)
    np.testing.assert_allclose(p["over"][0], got[1], atol=1e-12)
    np.testing.assert_allclose(p["under"][0], got[0], atol=1e-12)


def test_two_patients_and_a_dose_outside_the_expansion_interval():
    # A product far short of the band (0.2, below 0.4 x the lowest dose) is evaluated directly, not expanded.
    d = _design()
    dose = np.array([[0.2, 3.1], [1.0, 3.1]])
    dlt = np.array([[False, True], [False, True]])
    got = d.posterior_summary_patients(dose, dlt)
    for i in range(2):
        ref = reference(d, dose[i], dlt[i])
        np.testing.assert_allclose(got[i, :2], ref[:2], atol=5e-4)
        np.testing.assert_allclose(got[i, 2], ref[2], atol=1e-5)


def test_patient_ll_equals_direct_sum_on_random_data():
    # The Chebyshev expansion against the direct per-patient sum at every grid node, as posterior summaries.
    d = _design()
    A, B = d._grid[:2]
    rng = np.random.default_rng(3)
    tier = rng.integers(0, 3, (40, 9))
    dose = np.array(d.doses)[tier] * rng.uniform(0.5, 1.2, tier.shape)
    dose[rng.random(tier.shape) < 0.3] = np.nan
    dlt = rng.random(tier.shape) < np.array([0.05, 0.2, 0.6])[tier]
    x = np.log(dose / d.d_ref)
    with np.errstate(invalid="ignore"):
        eta = A[None, None, :] + np.exp(B)[None, None, :] * x[:, :, None]
        direct = np.where(np.isnan(x)[:, :, None], 0.0, np.where(dlt[:, :, None], eta, 0.0)
                          - np.logaddexp(0.0, eta)).sum(axis=1)
    np.testing.assert_allclose(d._summary_from_ll(d._patient_ll(dose, dlt)), d._summary_from_ll(direct), atol=1e-5)


def test_nominal_doses_give_the_nominal_run():
    # An actual-dose model that changes nothing (no band, no shortfall, no failure): every patient's dose is the
    # nominal one, so the per-patient fit is the per-tier fit (to 1e-5: the Chebyshev expansion's error at the
    # steepest grid nodes) and the trials are the same.
    d = dataclasses.replace(_design(), max_n=15)
    ladder = doseesc.DoseLadder((1.0, 2.0, 4.0))
    sc = doseesc.Scenario((0.1, 0.25, 0.45))
    plain = doseesc.simulate(d, sc, 400, rng=7, ladder=ladder)
    act = doseesc.simulate(d, sc, 400, rng=7, ladder=ladder, dose_model=DoseModel())
    np.testing.assert_array_equal(act.selected, plain.selected)
    np.testing.assert_array_equal(act.n, plain.n)
    np.testing.assert_array_equal(act.y, plain.y)
    # the posterior itself
    dose = np.array([[1.0, 1.0, 1.0, 2.0, 2.0, 2.0, np.nan]])
    dlt = np.array([[False, False, False, True, False, False, False]])
    np.testing.assert_allclose(d.posterior_summary_patients(dose, dlt),
                               d.posterior_summary(np.array([[3, 3, 0]]), np.array([[0, 1, 0]])), atol=1e-5)


class _NominalBLRM(BLRM):
    """The BLRM fitted on nominal doses whatever the engine knows (the behaviour before per-patient doses)."""

    uses_patient_doses = False


def test_ecar01_decisions_use_the_infused_doses():
    # ECAR01: +-20% band, 5% short products (down to half) counted at their tier. Same random numbers, so the
    # trials agree until a decision differs; the per-patient fit changes some trials, not most.
    proto = doseesc.load_protocol(ECAR01)
    d = proto.design("BLRM")
    nominal = _NominalBLRM(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)})
    sc = proto.scenario("mtd-middle")
    kw = dict(rng=11, ladder=proto.tiers, dose_model=proto.dose_model)
    act = doseesc.simulate(d, sc, 300, **kw)
    nom = doseesc.simulate(nominal, sc, 300, **kw)
    differ = (act.selected != nom.selected) | (act.n != nom.n).any(axis=1)
    assert 0 < differ.sum() < 150
    # each trial's final choice is the EWOC choice of the posterior on its evaluable patients' infused doses
    pts = act.patients
    ev = pts["status"] == PatientStatus.EVALUABLE
    dose = np.where(ev, pts["dose"], np.nan)
    dlt = pts["tox"] & ev
    p = d._probabilities(d.posterior_summary_patients(dose, dlt))
    chosen = d.ewoc_choice(p, act.n > 0)
    done = act.reason == StopReason.MAX_N
    assert done.sum() > 100
    np.testing.assert_array_equal(act.selected[done], chosen[done])
    # ... which is not the nominal fit's choice in some of them
    p_nom = d.interval_probabilities(act.n, act.y)
    assert (d.ewoc_choice(p_nom, act.n > 0)[done] != chosen[done]).any() or differ.any()


def test_recommend_with_patient_doses():
    # Log 1NNN 2NNT; every product 20% above nominal: doses 1.2 x3 then 2.4 x3 (the DLT at 2.4).
    # Reference (direct quadrature above): with these doses P(over) at tier 2 (dose 2) = 0.185 < 0.25, P(target)
    # 0.352 (tier 1: 0.169; tier 3 P(over) 0.571, not eligible): next tier 2. With the nominal doses 1 x3, 2 x3:
    # P(over) at tier 2 = 0.274 >= 0.25: next tier 1.
    d = _design()
    dlt = [False] * 5 + [True]
    actual = [1.2] * 3 + [2.4] * 3
    ref = reference(d, actual, dlt)
    assert ref[1, 1] < 0.25 - 0.05 and ref[1, 2] > 0.25 + 0.05
    assert reference(d, [1.0] * 3 + [2.0] * 3, dlt)[1, 1] > 0.25 + 0.02
    rec = doseesc.recommend(d, "1NNN 2NNT", warn=False, doses=actual)
    assert rec.next_tier == 1 and not rec.stop
    assert doseesc.recommend(d, "1NNN 2NNT", warn=False).next_tier == 0
    # nominal doses given explicitly: the counts' answer
    assert doseesc.recommend(d, "1NNN 2NNT", warn=False, doses=[1, 1, 1, 2, 2, 2]).next_tier == 0
    # bad input
    with pytest.raises(OutcomeError, match="doses has 5 values"):
        doseesc.recommend(d, "1NNN 2NNT", warn=False, doses=actual[:5])
    with pytest.raises(OutcomeError, match=r"doses\[2\] = 0"):
        doseesc.recommend(d, "1NNN 2NNT", warn=False, doses=[1, 1, 0, 2, 2, 2])
    with pytest.raises(DesignError, match="only BLRM"):
        doseesc.recommend(doseesc.BOIN(0.25, 3, cohort_size=3, max_n=12), "1NNN", warn=False, doses=[1, 1, 1])


def test_design_doses_must_be_the_ladders_under_the_actual_dose_model():
    # The engine gives each patient's dose on the ladder's scale: a BLRM on another scale (here x10) is refused.
    d = _design()
    sc = doseesc.Scenario((0.1, 0.25, 0.45))
    with pytest.raises(DesignError, match=r"doses = \[1.0, 2.0, 4.0\] differ from the dose ladder's"):
        doseesc.simulate(d, sc, 10, rng=1, ladder=doseesc.DoseLadder((10.0, 20.0, 40.0)), dose_model=DoseModel())
    # without the actual-dose model the tiers' nominal doses are used, whatever the ladder's scale
    doseesc.simulate(d, sc, 10, rng=1, ladder=doseesc.DoseLadder((10.0, 20.0, 40.0)))


def _direct_fine(d: BLRM, dose, dlt):
    """Posterior summaries on a much finer, wider grid (601 x 81 nodes over +-7 prior SDs) with each patient's
    term summed directly at every node (no Chebyshev expansion, double precision throughout)."""
    fine = dataclasses.replace(d, grid_points=(601, 81), grid_width=7.0)
    A, B = fine._grid[:2]
    x = np.log(np.where(np.isnan(dose), d.d_ref, dose) / d.d_ref)
    out = []
    for i in range(dose.shape[0]):
        has = ~np.isnan(dose[i])
        eta = A[:, None] + np.exp(B)[:, None] * x[i][has][None, :]
        ll = (np.where(dlt[i][has], eta, 0.0) - np.logaddexp(0.0, eta)).sum(axis=1)
        out.append(fine._summary_from_ll(ll[None, :])[0])
    return np.array(out)


@pytest.mark.parametrize("which", ["ecar01", "gd2"])
def test_fast_per_patient_fit_equals_a_direct_fine_quadrature(which):
    # The per-patient fit as simulations use it (121 x 41 nodes, Chebyshev terms per log(beta) row, weights in
    # single precision) against _direct_fine on 64 (ECAR01) or 65 data sets of 0-18 patients: 40 random (doses
    # 0.5-1.2 x the tier's, DLT rates 5-60%), and extreme ones: 3/3 DLTs at the lowest tier (the posterior at the
    # grid's low end), 0/18 (high end), none at the lower tiers then all at the top (a steep curve: the Chebyshev
    # expansion's hardest case), products far short of the band (outside the expansion), no patient at all.
    # Every interval probability and posterior mean within 1e-3 (measured, ECAR01: 2.2e-4 and 1.2e-4 at most;
    # GD2/B7H3: 7.2e-5 and 3.4e-5).
    if which == "ecar01":
        d = BLRM((1e5, 3e5, 6e5), 3e5, max_n=18, prior_mean=(-2.1972, 0.0), prior_sd=(1.5, 1.0), max_increase=None,
                 escalate_by_one=True)
    else:
        d = BLRM((1e6, 3e6, 6e6, 10e6), 6e6, max_n=24, prior_mean=(-1.3863, 0.0), prior_sd=(1.5, 1.0),
                 max_increase=None, escalate_by_one=True)
    doses = np.array(d.doses)
    k = doses.size
    rng = np.random.default_rng(11)
    rows, dlts = [], []
    for _ in range(40):
        m = int(rng.integers(1, 19))
        tier = np.sort(rng.integers(0, k, m))
        rows.append(doses[tier] * rng.uniform(0.5, 1.2, m))
        dlts.append(rng.random(m) < rng.uniform(0.05, 0.6))
    for lo in range(k):                                              # steep: 0/3 at each tier below, then 3/3
        tier = np.repeat(np.arange(lo + 1), 3)
        rows.append(doses[tier] * rng.uniform(0.8, 1.2, tier.size))
        dlts.append(tier == lo)
    for m in (3, 6, 18):
        rows.append(np.full(m, doses[0]))                              # all DLTs at the lowest tier
        dlts.append(np.ones(m, bool))
        rows.append(np.full(m, doses[-1]) * rng.uniform(0.8, 1.2, m))  # no DLT at the top tier
        dlts.append(np.zeros(m, bool))
    for _ in range(14):                                              # short products, 0.05-0.4 x the dose
        m = int(rng.integers(3, 13))
        tier = np.sort(rng.integers(0, k, m))
        rows.append(doses[tier] * np.where(rng.random(m) < 0.3, rng.uniform(0.05, 0.4, m), rng.uniform(0.8, 1.2, m)))
        dlts.append(rng.random(m) < 0.4)
    rows.append(np.zeros(0))
    dlts.append(np.zeros(0, bool))
    width = 18
    dose = np.full((len(rows), width), np.nan)
    dlt = np.zeros((len(rows), width), bool)
    for i, (r, y) in enumerate(zip(rows, dlts)):
        dose[i, :r.size], dlt[i, :r.size] = r, y
    assert len(rows) == 40 + k + 6 + 14 + 1
    got = d.posterior_summary_patients(dose, dlt)
    want = _direct_fine(d, dose, dlt)
    assert np.abs(got[:, :2] - want[:, :2]).max() < 1e-3
    assert np.abs(got[:, 2] - want[:, 2]).max() < 1e-3
