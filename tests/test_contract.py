"""Contract tests that every design must pass (design.md: "a shared check suite")."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import doseesc
from doseesc.engines.montecarlo import run_batch
from doseesc.state import StopReason, TrialState

K = 4
DESIGNS = [
    doseesc.ThreePlusThree(K),
    doseesc.ThreePlusThree(K, deescalation=True),
    doseesc.BOIN(0.25, K, max_n=24),
    doseesc.BOIN(0.25, K, max_n=24, titration=True, extrasafe=True, n_earlystop=9, bound_mtd=True),
    doseesc.Keyboard(0.25, K, max_n=21),
    doseesc.MTPI2(0.25, K, max_n=21),
    doseesc.MTPI(0.25, K, max_n=21, cohort_size=2),
    doseesc.TPI(0.25, K, max_n=21),
    doseesc.I3Plus3(0.25, K, max_n=21),
    doseesc.BOIN(0.25, K, max_n=24).stop_when_n_at_tier(9).safety_stop(0.9).cap_per_tier(12),
    doseesc.ThreePlusThree(K, max_n=15),
    doseesc.CRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 2, K)), 0.25, max_n=18),
    doseesc.CRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 2, K, model="logistic")), 0.25, max_n=10, cohort_size=1,
                model="logistic", startup=(1, 2, 3, 4)).stop_when_n_at_tier(6),
    doseesc.BOIN12(K, max_n=12),
    doseesc.BOINET(K, phi=0.25, max_n=12),
    doseesc.OBDPick(doseesc.ThreePlusThree(K), expansion=1),
    # every new rule slot (issue 16, item 4): exact enumeration goes through Design.step like simulate
    doseesc.BOIN(0.25, K, max_n=24).stop_when_too_toxic("any", 0.45, 0.8).stop_when(
        (doseesc.designs.rules.StopWhenNAtTier(9) & doseesc.designs.rules.StopWhenToxCICovered(0.5))
        | doseesc.designs.rules.StopAtN(21)).demand_n_at_dose(6).dont_skip_doses(when_deescalating=True)
    .try_rescue_dose(1, 6).stop_when_n_at_dose(12, "any"),
]
IDS = [f"{i}-{d.label}" for i, d in enumerate(DESIGNS)]
TRUTH_TOX = doseesc.Scenario(true_tox=[0.08, 0.2, 0.33, 0.5], target=0.25)
TRUTH_EFF = doseesc.Scenario(true_tox=[0.08, 0.2, 0.33, 0.5], true_eff=[0.2, 0.5, 0.55, 0.6], association=1.5,
                             target=0.25)


def truth(design):
    return TRUTH_EFF if getattr(design, "uses_efficacy", False) else TRUTH_TOX


TRUTH = TRUTH_TOX


@pytest.mark.parametrize("design", DESIGNS, ids=IDS)
def test_result_shapes_and_totals(design):
    r = doseesc.simulate(design, truth(design), 1500, rng=4)
    assert r.n.shape == r.y.shape == (1500, K)
    assert r.selected.shape == r.reason.shape == r.fired.shape == (1500,)
    assert r.p_select.shape == (K + 1,) and abs(r.p_select.sum() - 1) < 1e-12
    s = r.summary()
    assert list(s.index) == ["No dose", "Tier 1", "Tier 2", "Tier 3", "Tier 4"]
    for col in ("p_select", "p_select_mcse", "mean_n", "mean_dlt"):
        assert col in s.columns
    assert np.all(r.y <= r.n) and r.total_n.max() <= design.max_n
    assert np.all(r.reason != StopReason.NOT_STOPPED)
    assert np.all((r.selected >= -1) & (r.selected < K))


@pytest.mark.parametrize("design", DESIGNS, ids=IDS)
def test_batch_invariance_and_reproducibility(design):
    a = doseesc.simulate(design, truth(design), 3000, rng=8, batch_size=3000)
    b = doseesc.simulate(design, truth(design), 3000, rng=8, batch_size=700)
    c = doseesc.simulate(design, truth(design), 3000, rng=9)
    for key in ("n", "y", "selected", "reason", "fired"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.n, c.n)


@pytest.mark.parametrize("design", DESIGNS, ids=IDS)
def test_stopped_trials_never_change(design):
    """Extra patients appended after each trial's end must never be read."""
    from doseesc.rng import Stream, patient_uniforms
    seq = np.random.SeedSequence(3)
    u = patient_uniforms(seq, 0, 2000, design.max_n, Stream.TOX)
    base = run_batch(design, np.asarray(truth(design).true_tox), u)
    tier = base["tier"]
    # replace every uniform after a trial's last patient with 0 (a certain DLT): nothing may change
    after = np.cumsum(tier[:, ::-1] >= 0, axis=1)[:, ::-1] == 0
    u2 = np.where(after, 0.0, u)
    again = run_batch(design, np.asarray(truth(design).true_tox), u2)
    for key in ("n", "y", "selected", "reason"):
        np.testing.assert_array_equal(base[key], again[key])


@pytest.mark.parametrize("design", DESIGNS, ids=IDS)
def test_monte_carlo_within_4_se_of_exact(design):
    n_trials = 20000
    mc = doseesc.simulate(design, truth(design), n_trials, rng=21)
    ex = doseesc.exact(design, truth(design))
    ps = np.clip(ex.p_select, 0, 1)  # sums of probabilities may exceed 1 by rounding
    se = np.sqrt(ps * (1 - ps) / n_trials)
    assert np.all(np.abs(mc.p_select - ps) <= 4 * se + 1e-15), np.c_[mc.p_select, ps]
    # (+1e-9: summation rounding when N is the same in every trial)
    assert abs(mc.expected_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(n_trials) + 1e-9
    mc_rep = mc.stop_report().reset_index().set_index(["kind", "name"])["probability"]
    ex_rep = ex.stop_report().reset_index().set_index(["kind", "name"])["probability"]
    assert abs(ex_rep.xs("stop reason").sum() - 1) < 1e-12
    for key, p in ex_rep.items():
        got = mc_rep.get(key, 0.0)
        p = min(max(p, 0.0), 1.0)
        assert abs(got - p) <= 4 * np.sqrt(p * (1 - p) / n_trials) + 1e-12, key
    assert set(mc_rep.index) <= set(ex_rep.index)


@pytest.mark.parametrize("design", DESIGNS, ids=IDS)
def test_round_trip(design):
    again = doseesc.design_from_dict(design.to_dict())
    assert again == design
    assert isinstance(design.describe(), str) and design.label in design.describe().replace("3+3", design.label)


def _scalar_interval_step(design, n, y, d):
    """Plain-Python reference of the interval-design moves (R BOIN get.oc order), from the papers."""
    k = len(n)
    a, b = design.elim_prior
    gone_from = k
    for t in range(k):
        if n[t] >= design.elim_min_n and stats.beta.sf(design.target, y[t] + a, n[t] - y[t] + b) > design.cutoff_eli:
            gone_from = t
            break
    if gone_from == 0:
        return None, StopReason.LOWEST_TIER_TOXIC
    letter = "ESD"[design.grid[n[d], y[d]]]
    if d >= gone_from:
        nxt = gone_from - 1                  # the highest open tier below
    elif letter == "E":
        nxt = d + 1 if d + 1 < k and d + 1 < gone_from else d
    elif letter == "D":
        nxt = max(d - 1, 0)
    else:
        nxt = d
    if isinstance(design, doseesc.BOIN):
        if design.extrasafe and n[0] >= 3 and stats.beta.sf(design.target, y[0] + 1, n[0] - y[0] + 1) > \
                design.cutoff_eli - design.offset:
            return None, StopReason.LOWEST_TIER_TOXIC
        if n[d] >= design.n_earlystop and nxt == d:
            return None, StopReason.N_AT_TIER
    return nxt, StopReason.NOT_STOPPED


INTERVAL = [d for d in DESIGNS if isinstance(d, doseesc.designs.interval.IntervalDesign)
            and not getattr(d, "titration", False)]


@pytest.mark.parametrize("design", INTERVAL + [doseesc.BOIN(0.3, K, max_n=30, extrasafe=True, n_earlystop=6)],
                         ids=lambda d: d.label)
def test_vectorised_kernel_equals_scalar_reference(design):
    design = dataclasses.replace(design, max_n=4 * 12, tier_cap=None, stop_n_at_tier=None, safety_cutoff=None)
    rng = np.random.default_rng(5)
    t = 4000
    n = rng.integers(0, 13, size=(t, K))
    cur = rng.integers(0, K, size=t)
    n[np.arange(t), cur] = rng.integers(1, 13, size=t)
    y = rng.binomial(n, 0.3)
    dec = design.decide(TrialState.from_counts(n, y, cur))
    for i in range(t):
        nxt, reason = _scalar_interval_step(design, n[i], y[i], cur[i])
        assert dec.reason[i] == reason, (n[i], y[i], cur[i])
        assert dec.next[i] == (-1 if nxt is None else nxt), (n[i], y[i], cur[i])
