"""BOIN12 with the authors' rules (the default): hand-worked logs and a plain one-trial reference.

The reference below is written from the rules of the authors' simulation code (R. Lin's ``get.oc.obd``,
``boin12.R`` in zichen-liu/ModelAssistedPhase12; rules pinned in docs/notes/boin12-boinet.md), one trial
and one decision at a time with Python scalars: count boundaries from the error-minimising search, elimination
boundaries by counting up (toxicity) and down (futility), desirability from the marginal counts. It shares no
code with the kernel, which works on rates (BOIN's lambda), tabulated posteriors and arrays over trials.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from scipy import stats

import doseesc
from doseesc import StopReason, TrialState

PHI_T, PHI_E, C_T, C_E = 0.35, 0.25, 0.95, 0.90


# -- the plain reference ------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def count_bounds(n: int, phi: float) -> tuple[int, int]:
    """(escalate if DLTs <=, de-escalate if DLTs >=) at n patients: the pair minimising the three decision
    errors at phi, 0.6 phi and 1.4 phi, first minimum in (m1, m2) order."""
    m = np.arange(n + 1)
    cdf = {p: stats.binom.cdf(m, n, p) for p in (phi, 0.6 * phi, 1.4 * phi)}
    best, pair = 3.0, None
    for m1 in range(n):
        for m2 in range(m1 + 1, n + 1):
            err = (cdf[phi][m1] + 1 - cdf[phi][m2 - 1] + 1 - cdf[0.6 * phi][m1] + cdf[1.4 * phi][m2 - 1])
            if err < best:
                best, pair = err, (m1, m2)
    return pair


@lru_cache(maxsize=None)
def elim_bounds(n: int, phi_t: float, phi_e: float, c_t: float, c_e: float) -> tuple[float, float]:
    """(eliminate if DLTs >=, eliminate if responses <=); infinities where no count eliminates."""
    if n < 3:
        return math.inf, -math.inf
    tox = next((y for y in range(3, n + 1) if stats.beta.sf(phi_t, y + 1, n - y + 1) > c_t), math.inf)
    fut = next((r for r in range(n, -1, -1) if stats.beta.cdf(phi_e, r + 1, n - r + 1) > c_e), -math.inf)
    return tox, fut


def desirability(n: int, y: int, r: int, u11: float, u00: float, benchmark: float) -> float:
    if n == 0:
        return 1 - benchmark / 100
    x = (u11 * r / n + (1 - y / n) * u00) / 100 * n
    return stats.beta.sf(benchmark / 100, 1 + x, 1 + n - x)


def reference(n, y, r, d, *, u11=60.0, u00=40.0, phi_t=PHI_T, phi_e=PHI_E, c_t=C_T, c_e=C_E, cap=10**9):
    """After a cohort at tier ``d`` (0-based; counts per tier): ('stop', None) or ('go', set of tiers the
    rules allow: one tier, or the tiers tied on desirability)."""
    k = len(n)
    # utility at (phi_t, phi_e) under independence: response without DLT 100, DLT without response 0
    low = u11 * phi_t * phi_e + 100 * (1 - phi_t) * phi_e + u00 * (1 - phi_t) * (1 - phi_e)
    benchmark = low + (100 - low) / 2
    gone = [False] * k
    for j in range(k):                      # persistent: what each tier's own counts eliminated
        tox_b, fut_b = elim_bounds(n[j], phi_t, phi_e, c_t, c_e)
        if y[j] >= tox_b:
            if j == 0:
                return "stop", None
            for i in range(j, k):
                gone[i] = True
        if r[j] <= fut_b:
            gone[j] = True
    if all(gone):
        return "stop", None
    if n[d] >= cap:
        return "cap", None
    b_e, b_d = count_bounds(n[d], phi_t)
    tox_b = elim_bounds(n[d], phi_t, phi_e, c_t, c_e)[0]
    b_d = min(b_d, tox_b)
    lower = max((j for j in range(d) if not gone[j]), default=None)
    upper = min((j for j in range(d + 1, k) if not gone[j]), default=None)
    if y[d] >= b_d:
        if lower is not None:
            choice = {lower}
        elif gone[d]:
            return "stop", None
        else:
            choice = {d}
    else:
        cands = [d] + ([lower] if lower is not None else [])
        if upper is not None and (n[d] < 6 or y[d] <= b_e):
            cands.append(upper)
        ds = {j: 0.0 if gone[j] else desirability(n[j], y[j], r[j], u11, u00, benchmark) for j in cands}
        top = max(ds.values())
        choice = {j for j in cands if ds[j] == top}
        if any(gone[j] for j in choice):
            return "stop", None
    if upper is not None and n[d] >= 9 and n[upper] == 0 and y[d] < b_d:
        choice = {upper}
    return "go", choice


@pytest.mark.parametrize("k,utility,seed", [(3, (40, 0, 100, 60), 1), (5, (40, 0, 100, 60), 2),
                                             (4, (30, 0, 100, 70), 3), (6, (40, 0, 100, 60), 4)])
def test_kernel_equals_the_reference_on_random_trials(k, utility, seed):
    """Random trials (one truth per trial, drawn at random, a third of them toxic from the lowest tier) run by
    the reference; at every decision the kernel, on the same counts (all states in one batch), makes the same
    decision. Ties (the authors' code breaks them at random) go to the higher tier in doseesc: the kernel's
    tier is the highest of the reference's tied set."""
    u00, u11 = utility[0], utility[3]
    design = doseesc.BOIN12(k, max_n=1000, cap=1000, utility=utility)   # the limits: never bind
    rng = np.random.default_rng(seed)
    states, wants = [], []
    for trial in range(120):
        p_t = np.sort(rng.uniform(0.3 if trial % 3 == 0 else 0.0, 0.9, k))
        p_e = rng.uniform(0, 0.9, k)
        n, y, r, d = [0] * k, [0] * k, [0] * k, 0
        for _cohort in range(12):
            n[d] += 3
            y[d] += int((rng.random(3) < p_t[d]).sum())
            r[d] += int((rng.random(3) < p_e[d]).sum())
            want = reference(n, y, r, d, u11=u11, u00=u00)
            states.append((list(n), list(y), list(r), d))
            wants.append(want)
            if want[0] == "stop":
                break
            d = max(want[1])
    n, y, r, d = (np.array(v) for v in zip(*states))
    dec = design.decide(TrialState.from_counts(n, y, d, e=r, ye=np.zeros_like(n)))
    for i, (what, choice) in enumerate(wants):
        if what == "stop":
            assert dec.stop[i] and dec.reason[i] == StopReason.LOWEST_TIER_TOXIC, states[i]
        else:
            assert not dec.stop[i] and dec.next[i] == max(choice), (states[i], choice, dec.next[i])
    stops = sum(w[0] == "stop" for w in wants)
    assert len(wants) > 600 and stops > 15          # the comparison covered both outcomes


def test_count_boundaries_equal_boin_lambda():
    """The authors' error-minimising count boundaries are BOIN's lambda boundaries in counts, so the kernel's
    rates give the same decisions (checked for phi_t 0.1 to 0.5 and n up to 30)."""
    for phi in (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        lam_e, lam_d = doseesc.boin_boundaries(phi)
        for n in range(1, 31):
            assert count_bounds(n, phi) == (math.floor(n * lam_e + 1e-12), math.ceil(n * lam_d - 1e-12)), (phi, n)


# -- hand-worked logs -------------------------------------------------------------------------------------------
AUTHORS = doseesc.BOIN12(3, max_n=24)
APP = doseesc.BOIN12(3, max_n=24, variant="app")


@pytest.mark.parametrize("log", ["1TTT", "1TTT 1TTN", "1NTT 1TTT"])
def test_lowest_tier_too_toxic_stops_with_no_dose(log):
    """3/3 DLTs: P(p_T > 0.35 | Beta(4, 1)) = 1 - 0.35^4 = 0.985 > 0.95; 5/6: P(p_T > 0.35 | Beta(6, 2)) =
    0.9910 > 0.95. The lowest tier and all above are eliminated: stop, no dose. The app's rules treat again."""
    assert 1 - 0.35 ** 4 == pytest.approx(0.98499375)
    assert stats.beta.sf(0.35, 6, 2) == pytest.approx(0.99099, abs=1e-5)
    rec = doseesc.recommend(AUTHORS, log, warn=False)
    assert rec.stop and rec.selected == -1 and rec.reason == StopReason.LOWEST_TIER_TOXIC
    app = doseesc.recommend(APP, log, warn=False)
    assert not app.stop and app.next_tier == 0


def test_four_of_six_at_the_lowest_tier_stays_there():
    """4/6: P(p_T > 0.35 | Beta(5, 3)) = 0.9444 < 0.95, not eliminated; 4/6 = 0.667 >= lambda_d = 0.419:
    de-escalate, and at the lowest tier that means stay."""
    assert stats.beta.sf(0.35, 5, 3) == pytest.approx(0.9444, abs=1e-4)
    rec = doseesc.recommend(AUTHORS, "1NTT 1TTN", warn=False)
    assert not rec.stop and rec.next_tier == 0


def test_toxicity_elimination_reaches_the_tiers_above_and_persists():
    """1NNN 2TTT: tier 2 (3/3) is eliminated and tier 3 with it. Back at tier 1 with 9 patients and no DLT the
    exploration rule cannot reach an eliminated tier, and the final choice cannot be tier 2 or 3."""
    st = TrialState.from_counts([[9, 3, 0]], [[0, 3, 0]], [0], e=[[4, 3, 0]], ye=[[0, 3, 0]])
    assert AUTHORS.admissible(st).tolist() == [[True, False, False]]
    dec = AUTHORS.decide(st)
    assert not dec.stop[0] and dec.next[0] == 0
    rec = doseesc.recommend(AUTHORS, "1NNE 2BBB 1NEE 1ENE 1NNN 1NNN", warn=False)
    assert rec.stop and rec.reason == StopReason.N_AT_TIER and rec.selected == 0


def test_deescalation_skips_an_eliminated_tier():
    """Tier 2 futile (0 responses in 9: P(p_E < 0.25 | Beta(1, 10)) = 1 - 0.75^10 = 0.944 > 0.90) is eliminated
    alone. At tier 3 with 2/3 DLTs (>= lambda_d) the authors' rules de-escalate to the nearest non-eliminated
    tier below, tier 1; the app's rules go to tier 2."""
    assert 1 - 0.75 ** 10 == pytest.approx(0.9436864852905273)
    st = TrialState.from_counts([[3, 9, 3]], [[0, 0, 2]], [2], e=[[1, 0, 1]], ye=[[0, 0, 0]])
    assert AUTHORS.decide(st).next[0] == 0
    assert APP.decide(st).next[0] == 1


def test_a_futile_lowest_tier_with_too_many_dlts_stops():
    """One tier, 4/9 DLTs (>= lambda_d, not eliminated for toxicity: 6/9 needed) and no response (futile):
    de-escalation finds no open tier below and the current one is eliminated: stop, no dose, even though
    tier 2 is still open (the authors' code does the same)."""
    st = TrialState.from_counts([[9, 0, 0]], [[4, 0, 0]], [0], e=[[0, 0, 0]], ye=[[0, 0, 0]])
    dec = AUTHORS.step(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.LOWEST_TIER_TOXIC
    assert AUTHORS.conclude(st, dec.reason)[0] == -1


def test_a_futile_current_tier_moves_to_its_best_open_neighbour():
    """Tier 2 futile (0/9 responses), DLT rate 0 <= lambda_e: the candidates are tier 1 and tier 3 (untried,
    DS 0.295); tier 2 scores 0. Tier 1 (3 patients, 1 response, no DLT): x = (60*1 + 40*3)/100 = 1.8,
    DS = P(Beta(2.8, 2.2) > 0.705) = 0.269 < 0.295, so tier 3."""
    st = TrialState.from_counts([[3, 9, 0]], [[0, 0, 0]], [1], e=[[1, 0, 0]], ye=[[0, 0, 0]])
    assert stats.beta.sf(0.705, 2.8, 2.2) == pytest.approx(0.2691, abs=1e-4)
    assert AUTHORS.decide(st).next[0] == 2


def test_the_app_variant_is_todays_behaviour_and_round_trips():
    assert APP.label == "BOIN12 (app rules)" and "app's rules" in APP.describe()
    assert "authors' rules" in AUTHORS.describe() and AUTHORS.label == "BOIN12"
    assert doseesc.design_from_dict(APP.to_dict()) == APP
    assert doseesc.design_from_dict(AUTHORS.to_dict()) == AUTHORS
    with pytest.raises(doseesc.DesignError, match="variant = 'paper'"):
        doseesc.BOIN12(3, max_n=24, variant="paper")


def test_authors_rules_in_simulation_stop_for_a_toxic_lowest_tier():
    """Lowest tier at 0.6: Monte Carlo P(no dose) within 4 MCSE of the exact engine's; the authors' rules stop
    more often and sooner than the app's (0.700 against 0.660, E[N] 9.98 against 13.17), and at least as often
    as the first cohort has 3 DLTs (0.6^3 = 0.216), which the app's rules never stop for."""
    sc = doseesc.Scenario(true_tox=[0.6, 0.7, 0.8], true_eff=[0.3, 0.4, 0.5])
    d = doseesc.BOIN12(3, max_n=18)
    ex = doseesc.exact(d, sc)
    mc = doseesc.simulate(d, sc, 4000, rng=5)
    p = ex.p_no_dose
    assert abs(mc.p_no_dose - p) <= 4 * math.sqrt(p * (1 - p) / 4000)
    app = doseesc.exact(doseesc.BOIN12(3, max_n=18, variant="app"), sc)
    assert p > app.p_no_dose + 0.02 and ex.expected_n < app.expected_n - 2
    reasons = ex.stop_report().query("kind == 'stop reason'")["probability"]
    assert reasons["lowest_tier_toxic"] >= 0.6 ** 3
