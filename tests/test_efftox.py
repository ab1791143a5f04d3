"""EffTox (Thall & Cook 2004; Thall et al. 2014): contour, posterior, decisions, bad input, engines.

Sources of the expected values (docs/notes/efftox.md):
- trialr tests/testthat/test_efftox.R: efftox_solve_p(0.5, 0.65, 0.7, 0.25) rounds to 0.977;
- trialr tests/testthat/test_stan_efftox.R: the MD Anderson EffTox app's posterior summaries for the
  Thall et al. (2014) design after "1NNN 2ENN" and "1NNN 2ENN 3ETB" (to 2 decimals; trialr checks within 0.015);
- trialr's EffTox vignette (A400-EffTox.Rmd): after "1NNE 2EEB" dose 3 is recommended, doses 4 and 5 are not
  acceptable only because dose 3 is untried.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import doseesc
from doseesc import DesignError, EffTox, Scenario
from doseesc.designs.base import design_from_dict
from doseesc.designs.efftox import efftox_p
from doseesc.state import StopReason, TrialState
from doseesc.testing import check_design


def thall2014(**kw) -> EffTox:
    """Thall et al. (2014) prostate cancer design as in trialr's vignette (EffTox.thall2014)."""
    return dataclasses.replace(EffTox.thall2014(), **kw)


def state_of(log: str, k: int = 5) -> TrialState:
    n, y, e, ye = (np.zeros((1, k), int) for _ in range(4))
    tier = 0
    for cohort in log.split():
        tier = int(cohort[0]) - 1
        for ch in cohort[1:]:
            n[0, tier] += 1
            y[0, tier] += ch in "TB"
            e[0, tier] += ch in "EB"
            ye[0, tier] += ch == "B"
    return TrialState.from_counts(n, y, [tier], e=e, ye=ye)


# -- the contour ----------------------------------------------------------------------------------
def test_contour_p_from_trialr_points():
    # (eff0, 0) = (0.5, 0), (1, tox1) = (1, 0.65), third point (0.7, 0.25):
    # ((1 - 0.7)/(1 - 0.5))^p + (0.25/0.65)^p = 0.6^p + 0.384615^p = 1; p = 1 gives 0.9846 < 1, so p < 1;
    # at p = 0.97737: 0.6^p = 0.60699, 0.384615^p = 0.39301, sum 1.00000. trialr: round(p, 3) == 0.977.
    p = efftox_p(0.5, 0.65, 0.7, 0.25)
    assert round(p, 3) == 0.977
    assert 0.6 ** p + (0.25 / 0.65) ** p == pytest.approx(1.0, abs=1e-12)
    d = thall2014()
    assert d.p == p
    # the three points lie on the neutral contour (desirability 0)
    np.testing.assert_allclose(d.desirability([0.5, 1.0, 0.7], [0.0, 0.65, 0.25]), 0.0, atol=1e-12)
    # more efficacy at no more toxicity is more desirable; more toxicity at the same efficacy is less
    assert d.desirability(0.8, 0.25) > 0 > d.desirability(0.7, 0.3)


def test_contour_p_linear_case():
    # third point on the straight line between (0.5, 0) and (1, 0.5): (0.75, 0.25): 0.5^p + 0.5^p = 1 -> p = 1
    assert efftox_p(0.5, 0.5, 0.75, 0.25) == pytest.approx(1.0, abs=1e-12)


# -- posterior against the MD Anderson app (via trialr's accuracy tests) ----------------------------
MDA = {
    "1NNN 2ENN": dict(eff=[0.05, 0.26, 0.72, 0.86, 0.91], tox=[0.01, 0.01, 0.02, 0.06, 0.12],
                      desirability=[-0.91, -0.47, 0.42, 0.64, 0.64], p_eff=[0.01, 0.13, 0.80, 0.91, 0.94],
                      p_tox=[1.00, 1.00, 0.98, 0.93, 0.86]),
    "1NNN 2ENN 3ETB": dict(eff=[0.06, 0.24, 0.71, 0.89, 0.94], tox=[0.02, 0.06, 0.41, 0.77, 0.87],
                           desirability=[-0.92, -0.63, -0.24, -0.41, -0.47], p_eff=[0.01, 0.07, 0.85, 0.97, 0.98],
                           p_tox=[1.00, 0.98, 0.36, 0.08, 0.05]),
}


@pytest.mark.parametrize("log", list(MDA))
def test_posterior_matches_md_anderson_app(log):
    # trialr's tolerance 0.015 (the app's values are rounded to 2 decimals and its integration is numerical);
    # 2^12 points per state (sampler error below 0.005 on these states, see test_reference_posterior)
    post = thall2014(draws=2 ** 12).posterior(state_of(log))
    for key, want in MDA[log].items():
        np.testing.assert_allclose(post[key][0], want, atol=0.015, err_msg=key)


def test_decisions_md_anderson_examples():
    d = thall2014()
    # "1NNN 2ENN": dose 1 fails efficacy (P(pi_E > 0.5) = 0.01 < 0.1), doses 4-5 are beyond the untried dose 3;
    # among doses 2 and 3 dose 3 is the more desirable (0.42 vs -0.47)
    post = d.posterior(state_of("1NNN 2ENN"))
    assert d.acceptable(state_of("1NNN 2ENN"), post)[0].tolist() == [False, True, True, False, False]
    rec = doseesc.recommend(d, "1NNN 2ENN", warn=False)
    assert not rec.stop and rec.next_tier == 2
    # "1NNN 2ENN 3ETB": doses 1-2 fail efficacy (0.01, 0.07 < 0.1), doses 4-5 fail toxicity
    # (P(pi_T < 0.3) = 0.08, 0.05 < 0.1): dose 3 is the only acceptable dose
    s = state_of("1NNN 2ENN 3ETB")
    assert d.acceptable(s)[0].tolist() == [False, False, True, False, False]
    rec = doseesc.recommend(d, "1NNN 2ENN 3ETB", warn=False)
    assert not rec.stop and rec.next_tier == 2


def test_vignette_example_1NNE_2EEB():
    # trialr vignette: dose 3 recommended; 4 and 5 unacceptable only because dose 3 is untried; no dose is
    # too toxic or inefficacious
    d = thall2014()
    s = state_of("1NNE 2EEB")
    post = d.posterior(s)
    assert ((post["p_eff"] > 0.1) & (post["p_tox"] > 0.1)).all()
    assert d.acceptable(s, post)[0].tolist() == [True, True, True, False, False]
    assert int(d.decide(s).next[0]) == 2
    assert doseesc.recommend(d, "1NNE 2EEB", warn=False).next_tier == 2


def reference_posterior(d: EffTox, log: str, m: int = 2 ** 18) -> dict:
    """Plain importance sampling from the prior (float64): ``m`` Sobol points mapped to the normal prior,
    weights = likelihood of the log's cell counts (accurate for a few patients: thousands of effective points)."""
    from scipy import special
    from scipy.stats import qmc
    u = qmc.Sobol(d=6, scramble=False).random_base2(int(np.log2(m))) + 0.5 / m
    theta = np.asarray(d.prior_mean) + np.asarray(d.prior_sd) * special.ndtri(u)
    pe, pt, logc = d.probabilities(theta)                        # (m, k), (m, k), (m, k, 4)
    counts = d.cells(state_of(log))[0]                            # (k, 4)
    ll = (logc * counts).sum(axis=(1, 2))
    w = np.exp(ll - ll.max())
    w /= w.sum()
    eff, tox = w @ pe, w @ pt
    return {"eff": eff, "tox": tox, "p_eff": w @ (pe > d.eff_min), "p_tox": w @ (pt < d.tox_max),
            "desirability": d.desirability(eff, tox), "ess": 1 / (w * w).sum()}


@pytest.mark.parametrize("log", ["1NNN 2ENN", "1NNN 2ENN 3ETB", "1NNE 2EEB"])
def test_reference_posterior(log):
    # the design's sampler with 2^12 points per state against plain prior sampling with 2^18 points
    # (effective points > 2,500 on these states): within 0.01 on every summary
    ref = reference_posterior(thall2014(), log)
    assert ref["ess"] > 2500
    post = thall2014(draws=2 ** 12).posterior(state_of(log))
    for key in ("eff", "tox", "p_eff", "p_tox", "desirability"):
        np.testing.assert_allclose(post[key][0], ref[key], atol=0.01, err_msg=key)


LATE = ["1NNN 2ENN 3EEN 4EET 4ENE 3EEN 3NEE 4EBE 3ENE 3EEN 3NEE 3EEE 3NTE",
        "1NNN 2NNE 3ENE 4EEB 4TEN 3ENN 3EEN 3EEE 3BEN 2ENN 3ENE 3EEN 3NEN",
        "1NNN 2NNN 3NEN 4NEE 5EBE 5TEE 4EEN 4ENE 4EEE 4BEE 4NEE 4EEE 4EEB",
        "1NNN 2ENE 3EEE 4EEE 5ETE 5EEE 5BEE 5EEE 5ETE 5EEB 5EEE 5EEE 5ENE",
        "1NTN 1NNN 2NNE 2ENN 3TEN 2NNE 2ENE 2NEN 2EBN 1NNE 2ENN 2NNE 2NEN"]


def test_sampler_precision_against_many_points():
    # the default 2^7 points per state against 2^14, on the worked examples' states and on five 39-patient
    # trials: within the precision claimed in docs/notes/efftox.md (posterior means 0.035, desirability
    # 0.07, acceptability probabilities 0.11 at most over 300 states visited in simulation)
    small, big = thall2014(), thall2014(draws=2 ** 14)
    for log in list(MDA) + ["1NNE 2EEB"] + LATE:
        a, b = small.posterior(state_of(log)), big.posterior(state_of(log))
        for key, tol in (("eff", 0.035), ("tox", 0.035), ("p_eff", 0.11), ("p_tox", 0.11), ("desirability", 0.07)):
            np.testing.assert_allclose(a[key], b[key], atol=tol, err_msg=f"{log} {key}")
        assert small.effective_points(state_of(log))[0] > 30


def test_posterior_is_vectorised_and_deterministic():
    d = thall2014()
    logs = ["1NNN 2ENN", "1NNN 2ENN 3ETB", "1NNE 2EEB"]
    one = [d.posterior(state_of(g))["desirability"][0] for g in logs]
    fresh = thall2014()
    states = [state_of(g) for g in logs]
    batch = TrialState.from_counts(np.vstack([s.n for s in states]), np.vstack([s.y for s in states]),
                                   [int(s.current[0]) for s in states], e=np.vstack([s.e for s in states]),
                                   ye=np.vstack([s.ye for s in states]))
    np.testing.assert_array_equal(fresh.posterior(batch)["desirability"], np.vstack(one))


def random_states(n_rows: int, seed: int, k: int = 5) -> TrialState:
    """``n_rows`` trial states with random cell counts (0-3 per cell at each tier, tiers 4-5 often untried)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 4, (n_rows, k, 4))
    cells[:, 3:] *= rng.integers(0, 2, (n_rows, k - 3, 1))
    n = cells.sum(axis=2)
    return TrialState.from_counts(n, cells[..., 1] + cells[..., 3], [0] * n_rows, e=cells[..., 2] + cells[..., 3],
                                  ye=cells[..., 3])


def test_posterior_does_not_depend_on_batch():
    # 300 distinct states (more than one block of 2^14 / 128 = 128 rows, sorted by their number of nonzero
    # cells inside the sampler) give bit-identical summaries alone, in a small batch, reversed, or all at once
    batch = random_states(300, seed=5)
    whole = thall2014().posterior(batch)
    rev = thall2014().posterior(TrialState.from_counts(batch.n[::-1], batch.y[::-1], [0] * 300, e=batch.e[::-1],
                                                       ye=batch.ye[::-1]))
    d = thall2014()
    for key in ("eff", "tox", "p_eff", "p_tox"):
        np.testing.assert_array_equal(whole[key], rev[key][::-1])
    for i in (0, 77, 128, 299):
        one = d.posterior(TrialState.from_counts(batch.n[i:i + 1], batch.y[i:i + 1], [0], e=batch.e[i:i + 1],
                                                 ye=batch.ye[i:i + 1]))
        for key in ("eff", "tox", "p_eff", "p_tox"):
            np.testing.assert_array_equal(one[key][0], whole[key][i])


# the default sampler (128 points) before it was rewritten for speed (commit 3c5fce8: double precision
# parameters, scipy's expit, every cell's log; the same points and proposal): the rewrite moves these by
# at most 3e-7 (single precision); over the 77,616 states of bench/bench_efftox.py it moved one value of
# 1.55 million by more than 1e-5 (docs/notes/efftox.md)
EARLIER = {
    "1NNN 2ENN 3ETB": dict(eff=[0.05668831, 0.23093319, 0.70932084, 0.88901389, 0.93752277],
                           tox=[0.01142252, 0.05137094, 0.41842961, 0.78229457, 0.8899588],
                           p_eff=[0.00730603, 0.08185481, 0.86633098, 0.96659857, 0.97698617],
                           p_tox=[0.99501413, 0.98330581, 0.31481788, 0.06203832, 0.04875965]),
    LATE[0]: dict(eff=[0.08837549, 0.25352487, 0.63835514, 0.84877044, 0.92297053],
                  tox=[0.00692753, 0.00879385, 0.03734836, 0.20001365, 0.52404881],
                  p_eff=[0.00532658, 0.08071344, 0.92921108, 1.0, 0.99999976],
                  p_tox=[0.997715, 0.99998021, 0.99999821, 0.81867099, 0.18266577]),
}


@pytest.mark.parametrize("log", list(EARLIER))
def test_sampler_agrees_with_earlier_implementation(log):
    post = thall2014().posterior(state_of(log))
    for key, want in EARLIER[log].items():
        np.testing.assert_allclose(post[key][0], want, atol=1e-5, err_msg=key)


def test_newton_modes_and_factors():
    # the written-out Newton against a direct double-precision check on 50 random states: the gradient of the
    # log posterior vanishes at the mode (< 1e-8) and L L^T is the inverse of the negative Hessian (1e-10)
    from scipy import special
    d = thall2014()
    counts = d.cells(random_states(50, seed=11)).reshape(50, -1)
    mode_t, lt, mode_e, le = d.modes(counts)
    c4 = counts.reshape(50, 5, 4).astype(float)
    n = c4.sum(axis=2)
    m0, s0 = np.asarray(d.prior_mean), np.asarray(d.prior_sd)
    x = d.x
    for theta, chol, X, y, cols in ((mode_t, lt, np.stack([np.ones(5), x], 1), c4[..., 1] + c4[..., 3], [0, 1]),
                                    (mode_e, le, np.stack([np.ones(5), x, x * x], 1), c4[..., 2] + c4[..., 3],
                                     [2, 3, 4])):
        p = special.expit(theta @ X.T)
        grad = (y - n * p) @ X - (theta - m0[cols]) / s0[cols] ** 2
        assert np.abs(grad).max() < 1e-8
        hess = np.einsum("sk,ki,kj->sij", n * p * (1 - p), X, X) + np.diag(1 / s0[cols] ** 2)
        assert np.allclose(np.tril(chol), chol)
        np.testing.assert_allclose(chol @ chol.transpose(0, 2, 1) @ hess, np.broadcast_to(np.eye(len(cols)),
                                                                                         hess.shape), atol=1e-10)


def test_unique_rows_matches_numpy():
    from doseesc.designs.efftox import _unique_rows
    rng = np.random.default_rng(3)
    for shape, high in (((400, 20), 4), ((300, 10), 40), ((200, 3), 2 ** 40), ((0, 4), 3), ((30, 5), 1)):
        rows = rng.integers(0, high, shape)
        rows[::5] = rows[:1]
        uniq, inverse = _unique_rows(rows)
        np.testing.assert_array_equal(uniq[inverse], rows)
        assert len(uniq) == len(np.unique(rows, axis=0))


# -- stopping and safety --------------------------------------------------------------------------------------
def test_stops_with_no_dose_when_nothing_acceptable():
    # 6/6 DLTs at dose 1 (no response): P(pi_T < 0.3) at dose 1 is tiny and the higher doses are more toxic
    d = thall2014()
    s = state_of("1TTT 1TTT")
    assert not d.acceptable(s).any()
    dec = d.step(s)
    assert dec.stop[0] and dec.next[0] == -1 and dec.reason[0] == StopReason.LOWEST_TIER_TOXIC
    rec = doseesc.recommend(d, "1TTT 1TTT", warn=False)
    assert rec.stop and rec.selected == -1


def test_never_skips_an_untried_dose_and_stops_when_toxic():
    d = thall2014(max_n=18)
    safe = Scenario(true_tox=[0.02, 0.03, 0.05, 0.08, 0.1], true_eff=[0.1, 0.3, 0.5, 0.7, 0.9])
    r = doseesc.simulate(d, safe, 300, rng=7)
    tried = r.n > 0
    # tried tiers form a block starting at tier 1 (start): no untried tier below the highest tried one
    highest = np.where(tried, np.arange(5), -1).max(axis=1)
    assert (tried.sum(axis=1) == highest + 1).all()
    assert r.p_select[4] + r.p_select[5] > 0.5       # it does climb to the good doses
    toxic = Scenario(true_tox=[0.6, 0.7, 0.8, 0.85, 0.9], true_eff=[0.5, 0.6, 0.7, 0.8, 0.9])
    r = doseesc.simulate(d, toxic, 300, rng=7)
    # no dose in most trials (0.83 here; p_t = 0.1 is a loose bar: a dose stays acceptable while
    # P(pi_T < 0.3) > 0.1, so some trials end at max_n on a lucky run of dose 1)
    assert r.p_select[0] > 0.75
    # ... and trials that stop do so early; the mean N stays well below max_n = 18 (13.7 here: the
    # Thall et al. prior puts dose 1 far below the toxicity bar, logit pi_T = -7.96 + 1.55 x (-1.25) = -9.9)
    assert r.n.sum(axis=1).mean() < 15


def test_final_choice_tried_only():
    # after "1NNE 2EEB" the most desirable acceptable tier is the untried dose 3; the final choice names a
    # tried dose by default (dose 2, desirability 0.42 > dose 1's -0.34) and dose 3 with final_tried_only=False
    s = state_of("1NNE 2EEB")
    assert int(thall2014().select(s)[0]) == 1
    assert int(thall2014(final_tried_only=False).select(s)[0]) == 2


# -- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    (dict(eff_star=0.4), "eff_star = 0.4 is not above eff0 = 0.5"),
    (dict(eff_star=0.5), "eff_star = 0.5 is not above eff0 = 0.5"),
    (dict(tox_star=0.7), "tox_star = 0.7 is not below tox1 = 0.65"),
    (dict(tox_star=0.0), "tox_star = 0.0 must lie in (0, 1)"),
    (dict(eff0=1.2), "eff0 = 1.2 must lie in (0, 1)"),
    (dict(doses=[1, 2, 2, 6.6, 10]), "doses[2] = 2 is not above doses[1] = 2"),
    (dict(doses=[0, 2, 4, 6.6, 10]), "doses[0] = 0 must be positive"),
    (dict(prior_sd=[3.5, 3.5, 2.5, 2.4, -0.2, 1]), "prior_sd[4] (beta_E2) = -0.2 must be positive"),
    (dict(prior_mean=[0, 0]), "prior_mean = [0, 0] must be 6 numbers"),
    (dict(draws=3000), "draws = 3000 must be a power of 2"),
    (dict(n_tiers=4), "n_tiers = 4 but doses has 5 values"),
])
def test_bad_input_names_key_and_value(change, words):
    table = {**EffTox.thall2014().to_dict(), **change}
    with pytest.raises(DesignError) as info:
        design_from_dict(table)
    assert words in str(info.value)


def test_from_dict_round_trip():
    d = thall2014(start_tier=2, p_e=0.2)
    assert design_from_dict(d.to_dict()) == d
    assert "prior_mean" not in d.to_dict()          # the Thall et al. (2014) defaults are not repeated


# -- engines --------------------------------------------------------------------------------------------------
def test_contract_small_design():
    # three tiers and at most 6 patients: the exact engine enumerates it, Monte Carlo agrees within 4 SE
    d = EffTox(doses=(1.0, 2.0, 4.0), eff_min=0.3, tox_max=0.35, eff0=0.4, tox1=0.6, eff_star=0.6,
               tox_star=0.3, max_n=6)
    sc = Scenario(true_tox=[0.1, 0.2, 0.4], true_eff=[0.3, 0.5, 0.6])
    report = check_design(d, sc, n_trials=1000)
    assert report["exact"] == "passed"


def test_simulate_and_recommend_run():
    d = thall2014(max_n=12)
    sc = Scenario(true_tox=[0.05, 0.10, 0.15, 0.20, 0.40], true_eff=[0.2, 0.4, 0.6, 0.8, 0.9])
    r = doseesc.simulate(d, sc, 200, rng=3)
    assert r.p_select.sum() == pytest.approx(1.0)
    assert (r.n.sum(axis=1) <= 12).all()
    rec = doseesc.recommend(d, "1NNE 2EEB", warn=False)
    assert rec.next_tier == 2
