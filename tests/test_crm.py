"""CRM: dfcrm reference values, a scalar quadrature reference, skeleton calibration, restrictions, coherence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

import doseesc
from doseesc.state import TrialState

DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_lee_cheung_published_skeleton():
    """Lee & Cheung 2009: halfwidth 0.05, target 0.25, prior MTD tier 3 of 5."""
    sk = doseesc.crm_skeleton(0.25, 0.05, 3, 5)
    np.testing.assert_allclose(sk, [0.08397, 0.15674, 0.25, 0.35450, 0.46034], atol=1e-5)


def test_skeleton_indifference_property():
    """Between neighbouring tiers, the model switches recommendation where both are target -+ halfwidth."""
    for model in ("empiric", "logistic"):
        sk = doseesc.crm_skeleton(0.3, 0.06, 2, 5, model=model)
        d = doseesc.CRM(tuple(sk), 0.3, max_n=30, model=model)
        for i in range(4):
            # beta where tier i has P(DLT) = target - halfwidth: tier i+1 then has target + halfwidth
            f = lambda b: d.ptox(np.array([b]))[0, i] - 0.24  # noqa: E731
            from scipy.optimize import brentq
            b = brentq(f, -20, 20, xtol=1e-14)
            assert d.ptox(np.array([b]))[0, i + 1] == pytest.approx(0.36, abs=1e-10)


def _cases():
    ref = pd.read_csv(DATA / "dfcrm_crm_reference.csv", comment="#")
    out = []
    for _, r in ref.iterrows():
        sk = tuple(float(v) for v in r.skeleton.split(";"))
        k = len(sk)
        n, y = np.zeros(k), np.zeros(k)
        for lv, tx in zip(str(r.levels).split(";"), str(r.tox).split(";")):
            n[int(lv) - 1] += 1
            y[int(lv) - 1] += int(tx)
        out.append((r, sk, n, y))
    return out


def test_posterior_and_recommendation_equal_dfcrm():
    for r, sk, n, y in _cases():
        d = doseesc.CRM(sk, float(r.target), max_n=60, model=r.model)
        beta = d.posterior_mean(n[None], y[None])[0]
        assert beta == pytest.approx(r.beta_mean_hp, abs=1e-9), r.case   # high-precision quadrature
        assert beta == pytest.approx(r.beta_mean, abs=1e-7), r.case      # dfcrm's integrate() (its own error ~1e-8)
        ptox = [float(v) for v in r.ptox_hp.split(";")]
        np.testing.assert_allclose(d.ptox(np.array([beta]))[0], ptox, atol=1e-9)
        assert d.recommend_tier(n[None], y[None])[0] + 1 == r.mtd, r.case


def _scalar_posterior_mean(design, n, y):
    """Plain loop over patients' log-likelihood contributions with scipy adaptive quadrature."""
    s = [float(v) for v in design.skeleton]

    def loglik(b):
        total = -b * b / (2 * design.prior_var)
        for i, si in enumerate(s):
            if design.model == "empiric":
                lp = math.exp(b) * math.log(si)
                l1p = math.log1p(-math.exp(lp))
            else:
                eta = design.intercept + math.exp(b) * (math.log(si / (1 - si)) - design.intercept)
                lp = -np.logaddexp(0.0, -eta)
                l1p = -np.logaddexp(0.0, eta)
            for _ in range(int(y[i])):
                total += lp
            for _ in range(int(n[i] - y[i])):
                total += l1p
        return total

    coarse = np.linspace(-12, 12, 2401)
    vals = [loglik(b) for b in coarse]
    mode = coarse[int(np.argmax(vals))]
    shift = max(vals)
    f = lambda b: math.exp(loglik(b) - shift)  # noqa: E731
    opts = dict(epsabs=0, epsrel=1e-12, limit=500, points=[mode])
    den = integrate.quad(f, -12, 12, **opts)[0]
    num = integrate.quad(lambda b: b * f(b), -12, 12, **opts)[0]
    return num / den


@pytest.mark.parametrize("model", ["empiric", "logistic"])
def test_vectorised_posterior_equals_scalar_reference(model):
    rng = np.random.default_rng(11)
    sk = tuple(doseesc.crm_skeleton(0.25, 0.06, 2, 4, model=model))
    d = doseesc.CRM(sk, 0.25, max_n=36, model=model)
    n = rng.integers(0, 10, size=(40, 4))
    y = rng.binomial(n, rng.uniform(0.05, 0.6, size=(40, 4)))
    got = d.posterior_mean(n, y)
    for i in range(40):
        assert got[i] == pytest.approx(_scalar_posterior_mean(d, n[i], y[i]), abs=1e-9)


SK4 = tuple(doseesc.crm_skeleton(0.25, 0.05, 2, 4))


def test_restrictions():
    d = doseesc.CRM(SK4, 0.25, max_n=24)
    # no skipping: after 0/3 at tier 1 the model may want tier 3 or 4, but the next cohort goes to tier 2
    free = doseesc.CRM(SK4, 0.25, max_n=24, escalate_by_one=False).allow_skip()
    assert free.recommend_tier([[3, 0, 0, 0]], [[0, 0, 0, 0]])[0] > 1
    assert doseesc.recommend(d, "1NNN").next_tier == 1
    assert doseesc.recommend(free, "1NNN").next_tier > 1
    # dfcrm restrict: at most one tier above the LAST cohort's, even if higher tiers were tried
    n_, y_ = [[6, 3, 3, 0]], [[0, 0, 2, 0]]
    state = TrialState.from_counts(n_, y_, [0], last_n=[3], last_y=[0])
    assert d.decide(state).next[0] <= 1
    assert doseesc.CRM(SK4, 0.25, max_n=24, escalate_by_one=False).decide(state).next[0] >= \
        d.decide(state).next[0]
    # no escalation right after a cohort with DLT rate >= target (1/3 >= 0.25)
    n, y = [[3, 3, 3, 0]], [[0, 0, 1, 0]]
    assert doseesc.CRM(SK4, 0.25, max_n=24, no_escalation_after_dlt=False).recommend_tier(n, y)[0] == 3
    rec = doseesc.recommend(d, "1NNN 2NNN 3NNT")
    assert rec.next_tier == 2   # model says tier 4; held at tier 3
    rec = doseesc.recommend(doseesc.CRM(SK4, 0.25, max_n=24, no_escalation_after_dlt=False), "1NNN 2NNN 3NNT")
    assert rec.next_tier == 3


def test_two_stage_startup():
    d = doseesc.CRM(SK4, 0.25, max_n=18, cohort_size=1, startup=(1, 1, 2, 2, 3, 3, 4, 4))
    assert doseesc.recommend(d, "1N").next_tier == 0
    assert doseesc.recommend(d, "1N 1N 2N").next_tier == 1
    # at the first DLT the model takes over (and may not escalate right after it)
    rec = doseesc.recommend(d, "1N 1N 2N 2T")
    assert rec.next_tier <= 1
    assert rec.next_tier == min(1, d.recommend_tier([[2, 2, 0, 0]], [[0, 1, 0, 0]])[0])


def test_final_selection_is_the_unrestricted_model_choice():
    d = doseesc.CRM(SK4, 0.25, max_n=6)
    rec = doseesc.recommend(d, "1NNN 2NNN")
    assert rec.stop and rec.selected == d.recommend_tier([[3, 3, 0, 0]], [[0, 0, 0, 0]])[0]


def _brute_coherence(design, depth):
    """Walk every path with recommend(): escalation after a DLT / de-escalation after none."""
    esc = desc = False

    def walk(log):
        nonlocal esc, desc
        rec = doseesc.recommend(design, log, warn=False)
        if rec.stop or log.count(" ") + 1 >= depth and log:
            return
        if log:
            last = log.split()[-1]
            t = int(last[0]) - 1
            if rec.next_tier > t and "T" in last:
                esc = True
            if rec.next_tier < t and "T" not in last:
                desc = True
        nt = rec.next_tier
        for dl in range(design.cohort_size + 1):
            walk((log + f" {nt + 1}" + "N" * (design.cohort_size - dl) + "T" * dl).strip())

    walk("")
    return esc, desc


@pytest.mark.parametrize("design", [
    doseesc.CRM(SK4, 0.25, max_n=12),
    doseesc.CRM(SK4, 0.25, max_n=12, no_escalation_after_dlt=False),
    doseesc.BOIN(0.25, 4, max_n=12),
    doseesc.ThreePlusThree(4, deescalation=True),
], ids=["crm", "crm-unrestricted", "boin", "3+3"])
def test_coherence_check_agrees_with_brute_force(design):
    c = doseesc.coherence(design)
    esc, desc = _brute_coherence(design, design.max_n // design.cohort_size + 1)
    assert c.escalation_coherent == (not esc) and c.deescalation_coherent == (not desc)
    if not c.escalation_coherent:
        rec = doseesc.recommend(design, c.escalation_example, warn=False)
        assert rec.next_tier > int(c.escalation_example.split()[-1][0]) - 1


def test_crm_with_restriction_is_coherent():
    assert doseesc.coherence(doseesc.CRM(SK4, 0.25, max_n=18)).coherent


def test_calibrate_halfwidth_picks_the_best_average():
    sc = [doseesc.Scenario(true_tox=p, name=str(i)) for i, p in
          enumerate([[0.05, 0.25, 0.4, 0.55], [0.02, 0.08, 0.25, 0.4], [0.25, 0.4, 0.5, 0.6]])]
    df = doseesc.calibrate_halfwidth(0.25, 2, 4, sc, halfwidths=[0.02, 0.06, 0.1], n_trials=600, rng=1, max_n=18)
    assert list(df["halfwidth"]) == [0.02, 0.06, 0.1]
    best = df.loc[df["best"], "halfwidth"].iloc[0]
    assert df.loc[df["halfwidth"] == best, "mean_pcs"].iloc[0] == df["mean_pcs"].max()
    # the mean is the average of the per-scenario values
    cols = [c for c in df.columns if c.startswith("pcs[")]
    np.testing.assert_allclose(df[cols].mean(axis=1), df["mean_pcs"], atol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    ({"skeleton": (0.1, 0.05, 0.3)}, "strictly increasing"),
    ({"skeleton": (0.1, 1.2)}, r"skeleton\[1\] = 1.2"),
    ({"skeleton": (0.1, 0.2), "n_tiers": 3}, "n_tiers = 3 but the skeleton has 2"),
    ({"skeleton": (0.1, 0.2), "model": "probit"}, "model = 'probit'"),
    ({"skeleton": (0.1, 0.2), "prior_var": 0}, "prior_var = 0"),
    ({"skeleton": (0.1, 0.2), "startup": (1, 3)}, r"startup\[1\] = 3"),
])
def test_crm_errors(kwargs, match):
    with pytest.raises(doseesc.DesignError, match=match):
        doseesc.CRM(target=0.25, max_n=12, **kwargs)
    with pytest.raises(doseesc.DesignError, match="halfwidth"):
        doseesc.crm_skeleton(0.25, 0.3, 2, 4)


# dfcrm 0.2-2.1 crmsim(PI, getprior(0.05, 0.25, 3, 5), 0.25, n = 24, x0, nsim = 20000, mcohort, restrict = TRUE,
# seed 1009) (tools/reference/dfcrm_crmsim.R): MTD selection proportions and mean patients per dose.
PI = [0.05, 0.12, 0.25, 0.40, 0.55]
CRMSIM = {
    "x0 = 1, cohorts of 3": ({}, [.00845, .18715, .52490, .25095, .02855], [4.012, 6.500, 8.476, 4.217, 0.795]),
    "x0 = 3, cohorts of 3": ({"startup": (3,)}, [.01310, .22295, .54935, .19895, .01565],
                             [1.600, 5.427, 10.593, 5.350, 1.031]),
}


@pytest.mark.parametrize("name", list(CRMSIM))
def test_exact_agrees_with_dfcrm_crmsim(name):
    kwargs, sel, npat = CRMSIM[name]
    d = doseesc.CRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 3, 5)), 0.25, max_n=24, **kwargs)
    ex = doseesc.exact(d, doseesc.Scenario(true_tox=PI))
    ps = ex.p_select[1:]
    assert np.all(np.abs(np.array(sel) - ps) <= 4 * np.sqrt(ps * (1 - ps) / 20000))
    assert ex.p_select[0] == 0  # the CRM always names a tier


def test_two_stage_agrees_with_dfcrm_crmsim():
    """x0 = c(rep(1,3), rep(2,3), rep(3,3), rep(4,3), rep(5,12)), one patient per cohort; two-sample 4 SE."""
    d = doseesc.CRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 3, 5)), 0.25, max_n=24, cohort_size=1,
                    startup=(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4) + (5,) * 12)
    mc = doseesc.simulate(d, doseesc.Scenario(true_tox=PI), 40000, rng=3)
    ref = np.array([.00915, .20030, .52650, .24050, .02355])
    ps = mc.p_select[1:]
    se = np.sqrt(ps * (1 - ps) / 40000 + ref * (1 - ref) / 20000)
    assert np.all(np.abs(ps - ref) <= 4 * se)


def test_rule_slots_work_with_crm():
    d = doseesc.CRM(SK4, 0.25, max_n=24).safety_stop(0.8).stop_when_n_at_tier(9)
    rec = doseesc.recommend(d, "1NTT")  # P(p_1 > 0.25 | 2 of 3, Beta(1, 1)) = 0.949 > 0.8
    assert rec.stop and rec.reason == doseesc.StopReason.SAFETY and rec.selected == -1
    r = doseesc.simulate(d, doseesc.Scenario(true_tox=[0.4, 0.5, 0.6, 0.7]), 2000, rng=1)
    assert (r.reason == doseesc.StopReason.SAFETY).mean() > 0.5 and r.total_n.max() <= 24
    assert (r.selected[r.reason == doseesc.StopReason.SAFETY] == -1).all()
