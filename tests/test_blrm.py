"""BLRM with EWOC (issue 22 item 1): quadrature against an independent reference, closed forms, EWOC decisions,
escalation cap, stops, final choice, Monte Carlo vs exact, files and bad input. Facts: docs/notes/blrm.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

import doseesc
from doseesc import BLRM, DesignError, StopReason, TrialState
from doseesc.designs import design_from_dict
from doseesc.testing import check_design


def _logit(p):
    return math.log(p / (1 - p))


# -- an independent reference: nested Gauss-Legendre, split exactly at the interval boundaries -----------------
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


def _gl(lo: np.ndarray, hi: np.ndarray):
    """Gauss-Legendre nodes and weights on each interval [lo_i, hi_i] (8 points each), flattened."""
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    return (mid[:, None] + half[:, None] * _GL_X[None, :]).ravel(), (half[:, None] * _GL_W[None, :]).ravel()


def reference(doses, d_ref, n, y, mean=(0.0, 0.0), sd=(2.0, 1.0), corr=0.0, bounds=(0.16, 0.33), width=9.0):
    """P(under), P(target), P(over) and mean P(DLT) per tier (rows), by a direct quadrature written here.

    Outer: log beta over mean +- width SD in 30 panels of 8 Gauss-Legendre points. Inner, for each log beta:
    log alpha over mean +- width SD, cut into panels of at most 0.5 and at every interval boundary of every
    tier (logit(c) - beta x_k), so that no panel straddles a boundary; 8 points per panel. The indicator of
    each interval is then exact at every node (the nodes of a panel lie on one side of every boundary)."""
    x = np.log(np.asarray(doses, float) / d_ref)
    n, y = np.asarray(n, float), np.asarray(y, float)
    (m1, m2), (s1, s2) = mean, sd
    lo_a, hi_a = m1 - width * s1, m1 + width * s1
    edges_b = np.linspace(m2 - width * s2, m2 + width * s2, 31)
    b, wb = _gl(edges_b[:-1], edges_b[1:])                                   # (nb,)
    beta = np.exp(b)
    base = np.linspace(lo_a, hi_a, int(math.ceil((hi_a - lo_a) / 0.5)) + 1)
    thr = np.concatenate([_logit(c) - beta[:, None] * x[None, :] for c in bounds], axis=1)
    pts = np.sort(np.concatenate([np.broadcast_to(base, (b.size, base.size)), np.clip(thr, lo_a, hi_a)], axis=1))
    mid, half = (pts[:, 1:] + pts[:, :-1]) / 2, (pts[:, 1:] - pts[:, :-1]) / 2   # (nb, panels)
    a = (mid[..., None] + half[..., None] * _GL_X).reshape(b.size, -1)          # (nb, na)
    wa = (half[..., None] * _GL_W).reshape(b.size, -1)
    eta = a[..., None] + beta[:, None, None] * x                               # (nb, na, K)
    logp = -np.logaddexp(0, -eta)
    log1mp = -np.logaddexp(0, eta)
    za, zb = (a - m1) / s1, ((b - m2) / s2)[:, None]
    lp = -0.5 * (za ** 2 - 2 * corr * za * zb + zb ** 2) / (1 - corr ** 2)
    ll = logp @ y + log1mp @ (n - y) + lp
    f = np.exp(ll - ll.max()) * wa * wb[:, None]
    p = np.exp(logp)
    z = f.sum()
    out = np.empty((4, x.size))
    out[0] = np.einsum("ij,ijk->k", f, p < bounds[0]) / z
    out[2] = np.einsum("ij,ijk->k", f, p > bounds[1]) / z
    out[3] = np.einsum("ij,ijk->k", f, p) / z
    out[1] = 1 - out[0] - out[2]
    return out   # rows: under, target, over, mean


def _design_probs(d: BLRM, n, y):
    p = d.interval_probabilities(np.asarray([n]), np.asarray([y]))
    return np.array([p["under"][0], p["target"][0], p["over"][0], p["mean"][0]])


# OncoBayes2's single-agent example (after Neuenschwander, Branson & Gsponer 2008, Stat Med 27:2420):
# OncoBayes2 man-roxygen/example-single_agent.R and data-raw/SA_example.R (hist_SA): doses 1, 2.5, 5, 10, 25;
# 3, 4, 5, 4, 2 patients; 0, 0, 0, 0, 2 DLTs; prior (log alpha, log beta) ~ N((logit 0.5, log 1), diag(2^2, 1)),
# d_ref = 50 in the example code. Interval boundaries 0.16 / 0.33 and EWOC 0.25: OncoBayes2 R/blrm_trial.R defaults.
SA_DOSES = (1.0, 2.5, 5.0, 10.0, 25.0)
SA_N = (3, 4, 5, 4, 2)
SA_Y = (0, 0, 0, 0, 2)


def test_oncobayes2_single_agent_example_matches_direct_quadrature():
    d = BLRM(SA_DOSES, 50.0, max_n=30, prior_mean=(_logit(0.5), math.log(1)), prior_sd=(2.0, 1.0),
             max_increase=None)
    ref = reference(SA_DOSES, 50.0, SA_N, SA_Y)
    got = _design_probs(d, SA_N, SA_Y)
    np.testing.assert_allclose(got[:3], ref[:3], atol=5e-4)     # interval probabilities to 3 decimals
    np.testing.assert_allclose(got[3], ref[3], atol=1e-5)       # posterior mean P(DLT)
    # what the numbers say (reference, rounded): 2/2 DLTs at 25 make it overdosed; 10 is the EWOC-eligible
    # tier with the highest P(target)
    assert ref[2, 4] > 0.5 and ref[2, 3] < 0.25
    state = TrialState.from_counts(np.array([SA_N]), np.array([SA_Y]), np.array([4]))
    assert d.decide(state).next[0] == int(np.argmax(np.where(ref[2] < 0.25, ref[1], -1)))


# Published worked example: the BLRM prior of protocol NCT02108964 (Table 14-7), as reproduced with OncoBayes2 in
# the README of github.com/fenguoerbian/MyOncoBayes2 (MCMC: 10 chains x 20,000 iterations; printed to 3 significant
# digits): doses 50, 75, 150, 300, 450, 600, 800, 1000 ug/kg, d_ref = 300; (log alpha, log beta) ~ N((-3.068, 0.564),
# SDs (2.706, 0.728), correlation -0.817); no data yet. Printed posterior (= prior) mean P(DLT) per dose, and the
# EWOC check (its prob_overdose_est is the 75% quantile of P(DLT), so EWOC holds iff it is < 0.33, i.e. iff
# P(P(DLT) > 0.33) < 0.25): holds at 50-300, fails from 450 (0.335 > 0.33).
NCT02108964_DOSES = (50.0, 75.0, 150.0, 300.0, 450.0, 600.0, 800.0, 1000.0)
NCT02108964_MEAN = (0.0776, 0.0905, 0.121, 0.172, 0.223, 0.282, 0.366, 0.441)
NCT02108964_Q75 = (0.0336, 0.0525, 0.110, 0.225, 0.335, 0.447, 0.589, 0.696)


def test_published_prior_of_nct02108964_table_14_7():
    d = BLRM(NCT02108964_DOSES, 300.0, max_n=30, prior_mean=(-3.068, 0.564), prior_sd=(2.706, 0.728),
             prior_corr=-0.817, max_increase=None)
    z = np.zeros((1, 8), dtype=int)
    p = d.interval_probabilities(z, z)
    # means to the printed precision: within 0.002 (the MCMC's own error; the printed values are all about 0.001
    # above the exact ones, as draws of one chain set are correlated across doses)
    np.testing.assert_allclose(p["mean"][0], NCT02108964_MEAN, atol=0.002)
    # at d_ref the mean is E[expit(N(-3.068, 2.706^2))], a 1-D integral: Gauss-Hermite with 200 nodes
    t, w = np.polynomial.hermite_e.hermegauss(200)
    exact = float((w / np.sqrt(2 * np.pi)) @ (1 / (1 + np.exp(-(-3.068 + 2.706 * t)))))
    assert p["mean"][0, 3] == pytest.approx(exact, abs=1e-5)
    assert round(exact, 3) == 0.171   # printed 0.172: the MCMC's error
    # the 75% quantile at d_ref is expit(-3.068 + 0.6745 x 2.706) = 0.2236 (printed 0.225)
    assert 1 / (1 + math.exp(3.068 - norm.ppf(0.75) * 2.706)) == pytest.approx(0.225, abs=0.002)
    # EWOC as printed: eligible at 50-300, not from 450 on
    ok = p["over"][0] < 0.25
    assert ok.tolist() == [q < 0.33 for q in NCT02108964_Q75] == [True] * 4 + [False] * 4
    # and P(over) at d_ref in closed form: 1 - Phi((logit 0.33 + 3.068) / 2.706) = 0.1916
    assert p["over"][0, 3] == pytest.approx(1 - norm.cdf((_logit(0.33) + 3.068) / 2.706), abs=5e-4)


def test_prior_closed_form_at_the_reference_dose():
    """No data: at d = d_ref, logit P(DLT) = log alpha ~ N(m1, s1^2), so P(under) = Phi((logit 0.16 - m1) / s1) and
    P(over) = 1 - Phi((logit 0.33 - m1) / s1). OncoBayes2's prior (m1 = 0, s1 = 2): 0.2035 and 0.6384."""
    d = BLRM(SA_DOSES, 10.0, max_n=30, max_increase=None)   # tier 4 is the reference dose
    got = _design_probs(d, [0] * 5, [0] * 5)
    under = norm.cdf(_logit(0.16) / 2)
    over = 1 - norm.cdf(_logit(0.33) / 2)
    assert round(under, 4) == 0.2035 and round(over, 4) == 0.6384
    assert got[0, 3] == pytest.approx(under, abs=5e-4)
    assert got[2, 3] == pytest.approx(over, abs=5e-4)
    # the mean of expit(N(m, s^2)) at m = -1, s = 0.5 (another prior), against the reference
    d2 = BLRM(SA_DOSES, 10.0, max_n=30, max_increase=None, prior_mean=(-1.0, 0.0), prior_sd=(0.5, 0.3))
    ref = reference(SA_DOSES, 10.0, [0] * 5, [0] * 5, mean=(-1.0, 0.0), sd=(0.5, 0.3))
    np.testing.assert_allclose(_design_probs(d2, [0] * 5, [0] * 5), ref, atol=5e-4)


def test_crmpack_example_prior_with_correlation():
    """crmPack's LogisticLogNormal example (examples/Model-method-dose.R): mean (-0.85, 1), cov [[1, -0.5],
    [-0.5, 1]], ref dose 56; data 0.1, 0.5, 1.5, 3, 6 (one patient each, no DLT) and 10 (3 patients, 1 DLT).
    NextBestNCRM's intervals: target 0.20-0.35, overdose > 0.35, max overdose probability 0.25."""
    doses = (0.1, 0.5, 1.5, 3.0, 6.0, 10.0, 20.0, 40.0, 80.0)
    n = (1, 1, 1, 1, 1, 3, 0, 0, 0)
    y = (0, 0, 0, 0, 0, 1, 0, 0, 0)
    d = BLRM(doses, 56.0, max_n=30, prior_mean=(-0.85, 1.0), prior_cov=((1.0, -0.5), (-0.5, 1.0)),
             boundaries=(0.20, 0.35), max_increase=None)
    assert d.prior_sd == (1.0, 1.0) and d.prior_corr == pytest.approx(-0.5)
    ref = reference(doses, 56.0, n, y, mean=(-0.85, 1.0), sd=(1.0, 1.0), corr=-0.5, bounds=(0.20, 0.35))
    np.testing.assert_allclose(_design_probs(d, n, y), ref, atol=5e-4)


def test_grid_matches_a_much_finer_grid_to_three_decimals():
    """The default grid (121 x 41 nodes, +-5 prior SD: log alpha step 0.17) against 2001 x 61 nodes over +-7 SD
    (step 0.014) on 8 random data sets (up to 45 patients over 5 tiers): interval probabilities within 5e-4,
    posterior means of P(DLT) within 1e-5."""
    d = BLRM(SA_DOSES, 10.0, max_n=60, prior_mean=(-1.0, 0.0), max_increase=None)
    fine = BLRM(SA_DOSES, 10.0, max_n=60, prior_mean=(-1.0, 0.0), max_increase=None, grid_points=(2001, 61),
                grid_width=7.0)
    rng = np.random.default_rng(22)
    n = rng.integers(0, 10, size=(8, 5))
    y = rng.binomial(n, rng.uniform(0, 0.6, size=(8, 5)))
    got = d.posterior_summary(n, y)
    want = np.concatenate([fine.posterior_summary(n[i:i + 4], y[i:i + 4]) for i in range(0, 8, 4)])
    assert np.abs(got[:, :2] - want[:, :2]).max() < 5e-4
    assert np.abs(got[:, 2] - want[:, 2]).max() < 1e-5


def test_grid_matches_the_direct_reference_on_random_data():
    """12 random data sets (up to 45 patients over 5 tiers, DLT rates up to 0.6): every interval probability of the
    default grid within 5e-4 of the reference quadrature, posterior means within 1e-5."""
    d = BLRM(SA_DOSES, 10.0, max_n=60, prior_mean=(-1.0, 0.0), max_increase=None)
    rng = np.random.default_rng(2022)
    n = rng.integers(0, 10, size=(12, 5))
    y = rng.binomial(n, rng.uniform(0, 0.6, size=(12, 5)))
    got = d.posterior_summary(n, y)
    for i in range(12):
        ref = reference(SA_DOSES, 10.0, n[i], y[i], mean=(-1.0, 0.0))
        assert np.abs(got[i, 0] - ref[0]).max() < 5e-4, i
        assert np.abs(got[i, 1] - ref[2]).max() < 5e-4, i
        assert np.abs(got[i, 2] - ref[3]).max() < 1e-5, i


# -- EWOC decisions on 24 data sets against the reference ---------------------------------------------------
EWOC_DOSES = (10.0, 20.0, 40.0, 80.0, 160.0)
EWOC_CASES = [  # (n per tier, y per tier, current tier): mixtures of safe, toxic, sparse and rich data
    ((3, 0, 0, 0, 0), (0, 0, 0, 0, 0), 0), ((3, 0, 0, 0, 0), (1, 0, 0, 0, 0), 0), ((3, 0, 0, 0, 0), (2, 0, 0, 0, 0), 0),
    ((3, 3, 0, 0, 0), (0, 0, 0, 0, 0), 1), ((3, 3, 0, 0, 0), (0, 1, 0, 0, 0), 1), ((3, 3, 0, 0, 0), (0, 2, 0, 0, 0), 1),
    ((3, 3, 3, 0, 0), (0, 0, 0, 0, 0), 2), ((3, 3, 3, 0, 0), (0, 0, 1, 0, 0), 2), ((3, 3, 6, 0, 0), (0, 0, 1, 0, 0), 2),
    ((3, 3, 6, 0, 0), (0, 0, 2, 0, 0), 2), ((3, 3, 3, 3, 0), (0, 0, 0, 0, 0), 3), ((3, 3, 3, 3, 0), (0, 0, 0, 2, 0), 3),
    ((3, 3, 3, 3, 3), (0, 0, 0, 0, 1), 4), ((3, 3, 3, 3, 3), (0, 0, 0, 1, 2), 4), ((3, 6, 9, 3, 0), (0, 1, 2, 2, 0), 3),
    ((6, 6, 0, 0, 0), (0, 1, 0, 0, 0), 1), ((6, 0, 0, 0, 0), (1, 0, 0, 0, 0), 0), ((9, 0, 0, 0, 0), (3, 0, 0, 0, 0), 0),
    ((3, 3, 3, 6, 6), (0, 0, 0, 1, 3), 4), ((3, 3, 12, 6, 0), (0, 0, 3, 3, 0), 3), ((3, 3, 3, 9, 3), (0, 0, 0, 2, 0), 3),
    ((3, 6, 3, 0, 0), (1, 1, 1, 0, 0), 2), ((3, 3, 3, 3, 6), (0, 0, 0, 0, 0), 4), ((6, 6, 6, 6, 6), (0, 1, 1, 2, 4), 4),
]
EWOC_PRIOR = dict(mean=(_logit(0.25), 0.0), sd=(1.5, 0.8))


def _reference_decision(n, y, current, max_increase=2.0):
    """EWOC as the issue states it, from the reference probabilities: the tier with the highest P(target) among
    tiers with P(over) < 0.25 and dose <= max_increase x the current dose and <= highest tried + 1; None if no
    tier has P(over) < 0.25 (stop)."""
    r = reference(EWOC_DOSES, 40.0, n, y, **EWOC_PRIOR)
    if not r[2, 0] < 0.25:
        return None, r
    tried = max(i for i in range(5) if n[i] > 0)
    best, best_p = None, -1.0
    for i in range(5):
        if r[2, i] < 0.25 and EWOC_DOSES[i] <= max_increase * EWOC_DOSES[current] and i <= tried + 1 \
                and r[1, i] > best_p:
            best, best_p = i, r[1, i]
    return best, r


def test_ewoc_decisions_equal_the_direct_quadrature_reference():
    d = BLRM(EWOC_DOSES, 40.0, max_n=60, prior_mean=EWOC_PRIOR["mean"], prior_sd=EWOC_PRIOR["sd"])
    n = np.array([c[0] for c in EWOC_CASES])
    y = np.array([c[1] for c in EWOC_CASES])
    cur = np.array([c[2] for c in EWOC_CASES])
    dec = d.step(TrialState.from_counts(n, y, cur))
    kinds = set()
    for i, (nn, yy, c) in enumerate(EWOC_CASES):
        want, r = _reference_decision(nn, yy, c)
        # decisions whose deciding margin is under 1e-3 would test rounding, not the rule: none here
        margins = np.abs(r[2] - 0.25)
        assert margins.min() > 1e-3, (i, r[2])
        if want is None:
            assert dec.stop[i] and dec.reason[i] == StopReason.LOWEST_TIER_TOXIC, (i, r[2, 0])
            kinds.add("stop")
        else:
            assert not dec.stop[i] and dec.next[i] == want, (i, dec.next[i], want, r[1], r[2])
            kinds.add("up" if want > c else "down" if want < c else "stay")
    assert kinds == {"stop", "up", "down", "stay"}   # the cases cover every kind of decision


# -- hand-worked rules ------------------------------------------------------------------------------------------
def test_escalation_cap_doubling_and_one_tier():
    """Doses 1, 1.5, 2, 3 with a tight prior whose median P(DLT) is 0.15 at d_ref = 3 (log alpha mean logit 0.15,
    SD 0.3) and 0.056 at dose 1 (logit = -1.73 - log 3): all tiers are EWOC-eligible and P(target) rises with dose,
    so uncapped the model picks tier 4.
    Doubling cap from tier 1 (dose 1): doses <= 2 x 1 = 2 are tiers 1-3, so tier 3 (0-based 2); skipping allowed.
    From tier 2 (dose 1.5): <= 3, tier 4. escalate_by_one from tier 1: tier 2."""
    kw = dict(max_n=30, prior_mean=(_logit(0.15), 0.0), prior_sd=(0.3, 0.2))
    doses = (1.0, 1.5, 2.0, 3.0)
    n = np.array([[3, 0, 0, 0], [3, 3, 0, 0]])
    y = np.zeros_like(n)
    state = TrialState.from_counts(n, y, np.array([0, 1]))
    free = BLRM(doses, 3.0, max_increase=None, **kw).allow_skip()
    p = free.interval_probabilities(n, y)
    assert (p["over"] < 0.25).all() and (np.diff(p["target"], axis=1) > 0).all()
    assert list(free.step(state).next) == [3, 3]
    assert list(BLRM(doses, 3.0, **kw).allow_skip().step(state).next) == [2, 3]
    assert list(BLRM(doses, 3.0, max_increase=None, escalate_by_one=True, **kw).allow_skip().step(state).next) == [1, 2]
    # forbid_skip (the default slot): never above the highest tried tier + 1 = tier 2 (0-based 1), then tier 3
    assert list(BLRM(doses, 3.0, **kw).step(state).next) == [1, 2]


def test_ladder_step_larger_than_the_cap_is_refused():
    # ECAR01's tiers 1, 3, 6 x10^5: 3 / 1 = 3 times > 2: a doubling cap would never leave tier 1
    with pytest.raises(DesignError, match=r"max_increase = 2 forbids every escalation from tier 1 \(dose 100000\) "
                                          r"to tier 2 \(dose 300000, 3 times\)"):
        BLRM((1e5, 3e5, 6e5), 3e5, max_n=18)
    assert BLRM((1e5, 3e5, 6e5), 3e5, max_n=18, max_increase=3.0).cap(np.array([0, 1])).tolist() == [1, 2]


def test_safety_stop_and_no_dose_selected():
    """Prior median P(DLT) 0.25 at tier 2 (log alpha mean logit 0.25 at d_ref = 2). After 1TTT (3/3 DLTs at the
    lowest tier) P(over) at tier 1 is far above 0.25: no tier is eligible, stop, no dose. After 1NNN the lowest tier
    is eligible and the trial goes on."""
    d = BLRM((1.0, 2.0, 4.0), 2.0, max_n=12, prior_mean=(_logit(0.25), 0.0))
    p = d.interval_probabilities(np.array([[3, 0, 0]]), np.array([[3, 0, 0]]))
    assert p["over"][0, 0] > 0.9
    rec = doseesc.recommend(d, "1TTT")
    assert rec.stop and rec.selected == -1 and rec.reason == StopReason.LOWEST_TIER_TOXIC
    assert not doseesc.recommend(d, "1NNN").stop
    assert d.stops_for_safety()


def test_final_choice_only_among_tried_tiers():
    """After 1NNN 2NNN 2NNN (0/3 at tier 1, 0/6 at tier 2), prior median P(DLT) 0.25 at tier 2: P(target) is 0.023,
    0.097, 0.190 and P(over) 0.001, 0.012, 0.194 (grid, to 3 decimals), so EWOC's next tier is tier 3, but tier 3
    was never given: the final MTD is tier 2, the tried eligible tier with the highest P(target)."""
    d = BLRM((1.0, 2.0, 4.0), 2.0, max_n=9, prior_mean=(_logit(0.25), 0.0))
    n, y = np.array([[3, 6, 0]]), np.array([[0, 0, 0]])
    p = d.interval_probabilities(n, y)
    np.testing.assert_allclose(p["target"][0], [0.023, 0.097, 0.190], atol=1e-3)
    np.testing.assert_allclose(p["over"][0], [0.001, 0.012, 0.194], atol=1e-3)
    assert d.ewoc_choice(p)[0] == 2
    assert d.select(TrialState.from_counts(n, y, np.array([1])))[0] == 1
    # and once tier 3 is tried with 1/3 DLTs, it can be chosen if it is eligible and best; here 2/3 make it overdosed
    n3, y3 = np.array([[3, 3, 3]]), np.array([[0, 0, 2]])
    assert d.select(TrialState.from_counts(n3, y3, np.array([2])))[0] == 1


def test_stop_n_at_tier_slot():
    """The rule slots of every design apply to the BLRM (issue 16 item 4). Prior median P(DLT) 0.25 at tier 2.
    1NNN 2NNN: EWOC recommends tier 2 again (kernel), which has 3 < 6 patients: go on. 1NNN 2NNN 2NTN: tier 2 again,
    now with 6 >= 6 patients: stop (n at the recommended tier), and the final MTD is tier 2."""
    d = BLRM((1.0, 2.0, 4.0), 2.0, max_n=30, prior_mean=(_logit(0.25), 0.0))
    assert doseesc.recommend(d, "1NNN 2NNN", warn=False).next_tier == 1
    assert doseesc.recommend(d, "1NNN 2NNN 2NTN", warn=False).next_tier == 1
    slot = d.stop_when_n_at_tier(6)
    assert not doseesc.recommend(slot, "1NNN 2NNN", warn=False).stop
    rec = doseesc.recommend(slot, "1NNN 2NNN 2NTN", warn=False)
    assert rec.stop and rec.reason == StopReason.N_AT_TIER and rec.selected == 1


def test_mixture_prior_of_equal_components_equals_the_single_prior():
    comp = {"weight": 0.5, "mean": [-1.0, 0.2], "sd": [1.5, 0.7], "corr": 0.3}
    mix = BLRM(SA_DOSES, 10.0, max_n=30, max_increase=None, mixture=[comp, dict(comp)])
    one = BLRM(SA_DOSES, 10.0, max_n=30, max_increase=None, prior_mean=(-1.0, 0.2), prior_sd=(1.5, 0.7),
               prior_corr=0.3)
    n, y = np.array([[3, 3, 6, 3, 0]]), np.array([[0, 0, 1, 2, 0]])
    np.testing.assert_allclose(mix.posterior_summary(n, y), one.posterior_summary(n, y), atol=1e-12)
    # a genuine mixture: the reference integrates each component's posterior mass
    hist = {"weight": 0.7, "mean": [-1.5, 0.3], "sd": [0.5, 0.3], "corr": 0.0}
    robust = {"weight": 0.3, "mean": [-1.0, 0.0], "sd": [2.0, 1.0], "corr": 0.0}
    m = BLRM(SA_DOSES, 10.0, max_n=30, max_increase=None, mixture=[hist, robust])
    # posterior = sum_j w_j Z_j post_j / sum_j w_j Z_j, with Z_j the marginal likelihood under component j
    parts = []
    for c in (hist, robust):
        ones = reference(SA_DOSES, 10.0, n[0], y[0], mean=tuple(c["mean"]), sd=tuple(c["sd"]))
        parts.append(ones)
    zs = [_marginal(SA_DOSES, 10.0, n[0], y[0], c) for c in (hist, robust)]
    wz = np.array([hist["weight"] * zs[0], robust["weight"] * zs[1]])
    wz /= wz.sum()
    want = wz[0] * parts[0] + wz[1] * parts[1]
    np.testing.assert_allclose(_design_probs(m, n[0], y[0]), want, atol=5e-4)


def _marginal(doses, d_ref, n, y, c, width=10.0):
    """Marginal likelihood of the data under one normal component (2-D Gauss-Legendre, smooth integrand)."""
    x = np.log(np.asarray(doses) / d_ref)
    (m1, m2), (s1, s2) = c["mean"], c["sd"]
    ea = np.linspace(m1 - width * s1, m1 + width * s1, 161)
    eb = np.linspace(m2 - width * s2, m2 + width * s2, 81)
    a, wa = _gl(ea[:-1], ea[1:])
    b, wb = _gl(eb[:-1], eb[1:])
    A, B = np.meshgrid(a, b, indexing="ij")
    eta = A[..., None] + np.exp(B)[..., None] * x
    ll = (-np.logaddexp(0, -eta) * y - np.logaddexp(0, eta) * (np.asarray(n) - y)).sum(-1)
    dens = norm.pdf(A, m1, s1) * norm.pdf(B, m2, s2)
    return float((np.exp(ll) * dens * wa[:, None] * wb[None, :]).sum())


# -- engines ----------------------------------------------------------------------------------------------------
def test_monte_carlo_agrees_with_exact_within_4_mcse():
    d = BLRM((1e5, 3e5, 6e5), 3e5, cohort_size=3, max_n=12, max_increase=3.0, prior_mean=(_logit(0.25), 0.0),
             prior_sd=(1.5, 0.8))
    sc = doseesc.Scenario(true_tox=[0.05, 0.15, 0.40])
    ex = doseesc.exact(d, sc).summary()
    mc = doseesc.simulate(d, sc, 4000, rng=22).summary()
    se = np.sqrt(ex["p_select"] * (1 - ex["p_select"]) / 4000)
    assert (np.abs(mc["p_select"] - ex["p_select"]) <= 4 * se + 1e-12).all()
    assert abs(ex["p_select"].sum() - 1) < 1e-9


def test_contract_paths_and_recommend():
    report = check_design(BLRM((1.0, 2.0, 4.0), 2.0, max_n=9, prior_mean=(-1.1, 0.0)), n_trials=1000)
    assert set(report.values()) == {"passed"}


# -- files and bad input ------------------------------------------------------------------------------------------
def test_round_trip_through_dicts():
    for d in (BLRM((1.0, 2.0, 4.0), 2.0, max_n=12),
              BLRM((1.0, 2.0, 4.0), 2.0, max_n=12, prior_cov=[[1.0, -0.5], [-0.5, 1.0]], prior_mean=[-0.85, 1]),
              BLRM((1.0, 2.0, 4.0), 2.0, max_n=12, max_increase=None, escalate_by_one=True,
                   mixture=[{"weight": 0.4, "mean": [0, 0], "sd": [2, 1]},
                            {"weight": 0.6, "mean": [-1, 0.1], "sd": [0.5, 0.3], "corr": 0.2}])):
        assert design_from_dict(d.to_dict()) == d
    assert BLRM((1.0, 2.0, 4.0), 2.0, max_n=12, max_increase="none").max_increase is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(d_ref=0), r"d_ref = 0 must be a positive reference dose"),
    (dict(d_ref=-5.0), r"d_ref = -5\.0 must be a positive reference dose"),
    (dict(prior_cov=[[1.0, 2.0], [2.0, 1.0]]), r"prior_cov = .* is not positive definite"),
    (dict(prior_cov=[[1.0, 0.5], [0.4, 1.0]]), r"prior_cov = .* is not symmetric"),
    (dict(prior_corr=1.0), r"prior_corr = 1: the prior covariance is not positive definite"),
    (dict(prior_sd=[2.0, -1.0]), r"prior_sd\[1\] = -1: the prior covariance is not positive definite"),
    (dict(prior_mean=[0.0]), r"prior_mean = \[0.0\] must be a list of two numbers"),
    (dict(boundaries=[0.33, 0.16]), r"boundaries = \[0.33, 0.16\]"),
    (dict(boundaries=[0.16, 1.2]), r"boundaries\[1\] = 1.2 must lie in"),
    (dict(ewoc=1.5), r"ewoc = 1.5 must lie in"),
    (dict(max_increase=0.5), r"max_increase = 0.5 must be above 1"),
    (dict(doses=[1.0, 4.0, 2.0]), r"doses\[2\] = 2 is not above doses\[1\] = 4"),
    (dict(doses=[0.0, 1.0, 2.0]), r"doses\[0\] = 0 must be a positive dose"),
    (dict(mixture=[{"weight": 0.5, "mean": [0, 0], "sd": [1, 1]}]), r"mixture: the weights sum to 0.5, not 1"),
    (dict(mixture=[{"weight": 1, "mean": [0, 0], "sd": [1, 1], "corr": -1}]),
     r"mixture\[0\].corr = -1: the prior covariance is not positive definite"),
    (dict(mixture=[{"weight": 1, "mean": [0, 0], "sdd": [1, 1]}]), r"mixture\[0\]: unknown key 'sdd'"),
])
def test_bad_input_names_key_and_value(kwargs, match):
    base = {"type": "BLRM", "doses": [1.0, 2.0, 4.0], "d_ref": 2.0, "max_n": 12}
    base.update(kwargs)
    with pytest.raises(DesignError, match=match):
        design_from_dict(base)


def test_protocol_file_with_a_blrm_design(tmp_path):
    text = """
[protocol]
name = "t"
target = 0.25
max_n = 12
cohort_size = 3

[tiers]
doses = [1e5, 3e5, 6e5]
unit = "cells/kg"

[[design]]
name = "BLRM"
type = "BLRM"
doses = [1e5, 3e5, 6e5]
d_ref = 3e5
prior_mean = [-1.0986, 0.0]
prior_sd = [1.5, 0.8]
max_increase = 3.0

[[scenario]]
name = "s"
true_tox = [0.05, 0.15, 0.40]
"""
    f = tmp_path / "p.toml"
    f.write_text(text)
    proto = doseesc.load_protocol(f)
    d = proto.designs["BLRM"]
    assert isinstance(d, BLRM) and d.max_n == 12 and d.max_increase == 3.0
    bad = f.read_text().replace("d_ref = 3e5", "d_ref = -3e5")
    f.write_text(bad)
    with pytest.raises(doseesc.DoseescError, match=r"d_ref = -300000\.0 must be a positive reference dose"):
        doseesc.load_protocol(f)


def test_runs_under_the_actual_dose_model_on_nominal_doses(tmp_path):
    """The kernel sees counts per tier, so the model is fitted on the nominal tier doses; the actual-dose model
    changes the simulated patients' outcomes (the engine's part), not the fit (docs/notes/blrm.md)."""
    text = """
[protocol]
name = "t"
target = 0.25
max_n = 12
cohort_size = 3

[tiers]
doses = [1e5, 3e5, 6e5]
unit = "cells/kg"
tolerance = 0.20

[actual_dose]
release = "uniform"
failure = 0.03
on_failure = "replace"

[[design]]
name = "BLRM"
type = "BLRM"
doses = [1e5, 3e5, 6e5]
d_ref = 3e5
prior_mean = [-2.1972, 0.0]
prior_sd = [1.5, 1.0]
max_increase = "none"
escalate_by_one = true

[[scenario]]
name = "s"
true_tox = [0.05, 0.15, 0.40]
"""
    f = tmp_path / "p.toml"
    f.write_text(text)
    proto = doseesc.load_protocol(f)
    d = proto.designs["BLRM"]
    assert d.max_increase is None and d.escalate_by_one
    oc = doseesc.simulate(d, proto.scenarios["s"], 500, rng=3, ladder=proto.tiers, dose_model=proto.dose_model)
    s = oc.summary()
    assert abs(s["p_select"].sum() - 1) < 1e-9 and s["mean_n"].sum() <= 12
