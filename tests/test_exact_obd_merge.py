"""Issue 20 item 6: exact BOIN12 and BOIN-ET merge states on what they read, and give the plain engine's numbers.

The exact engine merges the states of BOIN12 and BOIN-ET (``exact_merge_children``) on their merge keys before
deciding, keeps one representative of each merged group, decides and concludes in blocks, and makes the final
choice once per distinct key. The plain reference (``REFERENCE = True``: merge only after deciding, and only
states equal in every count, patients with both outcomes included) must give the same records (counts,
selection, stop reason, rules fired) with the same probabilities and expected responses (to 1e-12), for both
BOIN12 rule sets, a utility that reads the patients with both outcomes, and BOIN-ET. At a bundled size exact
agrees with Monte Carlo within 4 Monte Carlo standard errors.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import doseesc

exact_engine = importlib.import_module("doseesc.engines.exact")

TOX = (0.05, 0.15, 0.30, 0.45)
EFF = (0.20, 0.40, 0.50, 0.55)

DESIGNS = {
    "BOIN12 authors": doseesc.BOIN12(3, max_n=15),
    "BOIN12 app": doseesc.BOIN12(3, max_n=15, variant="app"),
    # u_N - u_T - u_E + u_B = 30 - 10 - 100 + 50 = -30: the summed utility reads ye (key sorted on -ye)
    "BOIN12 utility reads ye": doseesc.BOIN12(3, max_n=12, utility=(30, 10, 100, 50)),
    # + 20: the other sign
    "BOIN12 utility reads ye (+)": doseesc.BOIN12(3, max_n=12, utility=(50, 0, 90, 60), variant="app"),
    "BOIN12 cap 6": doseesc.BOIN12(3, max_n=15, cap=6, phi_t=0.3),
    "BOIN12 rule slots": doseesc.BOIN12(3, max_n=15, variant="app").stop_when_n_at_dose(9).safety_stop(0.8),
    "BOIN-ET": doseesc.BOINET(3, max_n=15),
    "BOIN-ET rule slots": doseesc.BOINET(3, max_n=15).stop_when_n_at_dose(9).safety_stop(0.8),
    "BOIN-ET phi 0.25": doseesc.BOINET(3, phi=0.25, delta=0.5, max_n=12),
}


def _scenario(k: int, tox=TOX, eff=EFF) -> doseesc.Scenario:
    return doseesc.Scenario(true_tox=tox[:k], true_eff=eff[:k])


def _compare(fast, plain):
    for key in ("n", "y", "selected", "reason", "fired"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(plain, key), err_msg=key)
    np.testing.assert_allclose(fast.weight, plain.weight, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.e, plain.e, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.p_select, plain.p_select, rtol=0, atol=1e-12)
    assert abs(fast.expected_n - plain.expected_n) < 1e-12


@pytest.mark.parametrize("name", list(DESIGNS))
def test_merged_exact_equals_plain_reference(name, monkeypatch):
    design = DESIGNS[name]
    sc = _scenario(design.n_tiers)
    fast = doseesc.exact(design, sc)
    monkeypatch.setattr(exact_engine, "REFERENCE", True)
    plain = doseesc.exact(design, sc)
    _compare(fast, plain)
    # the reference merges fewer states but ends in the same records
    assert fast.provenance["terminal_states"] == plain.provenance["terminal_states"]


def test_merged_exact_equals_reference_in_small_blocks(monkeypatch):
    """Blocks of a few children (many blocks per cohort, merged again across blocks) change nothing."""
    design = doseesc.BOIN12(3, max_n=12, variant="app")
    sc = _scenario(3, tox=(0.1, 0.3, 0.5), eff=(0.3, 0.3, 0.6))
    monkeypatch.setattr(exact_engine, "CHILD_BLOCK", 37)
    fast = doseesc.exact(design, sc)
    monkeypatch.setattr(exact_engine, "REFERENCE", True)
    plain = doseesc.exact(design, sc)
    _compare(fast, plain)


def test_merge_key_reads_ye_only_where_the_utility_does():
    """Default utility (40, 0, 100, 60): u = 40 n - 40 y + 60 e (40 - 0 - 100 + 60 = 0), so two states that differ
    only in ye share a key; with (30, 10, 100, 50) (coefficient -30) they do not."""
    n, y, e = [[3, 0]], [[1, 0]], [[2, 0]]
    a = doseesc.TrialState.from_counts(n, y, [0], e=e, ye=[[0, 0]])
    b = doseesc.TrialState.from_counts(n, y, [0], e=e, ye=[[1, 0]])
    plain = doseesc.BOIN12(2, max_n=12)
    np.testing.assert_array_equal(plain.merge_key(a), plain.merge_key(b))
    # and its desirability is the same for both (x = (40*3 - 40*1 + 60*2) / 100 = 2.0 either way)
    np.testing.assert_array_equal(plain.desirability(a), plain.desirability(b))
    reads = doseesc.BOIN12(2, max_n=12, utility=(30, 10, 100, 50))
    assert not np.array_equal(reads.merge_key(a), reads.merge_key(b))
    assert not np.array_equal(reads.desirability(a), reads.desirability(b))


def test_exact_refuses_past_max_states():
    design = doseesc.BOINET(3, max_n=15)
    with pytest.raises(doseesc.DoseescError, match="max_states = 50"):
        doseesc.exact(design, _scenario(3), max_states=50)


@pytest.mark.parametrize("design", [doseesc.BOIN12(3, max_n=24), doseesc.BOINET(3, max_n=24)],
                         ids=["BOIN12", "BOIN-ET"])
def test_exact_within_4_mcse_of_monte_carlo_at_n24(design):
    sc = _scenario(3)
    ex = doseesc.exact(design, sc)
    mc = doseesc.simulate(design, sc, 4000, rng=11)
    se = np.maximum(mc.p_select_mcse, 1e-3)
    assert np.all(np.abs(ex.p_select - mc.p_select) <= 4 * se), (ex.p_select, mc.p_select, se)
    assert abs(ex.expected_n - mc.expected_n) <= 4 * max(mc.expected_n_mcse, 1e-3)
    np.testing.assert_allclose(ex.weight.sum(), 1.0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_boin12_estimates_of_a_batch_equal_each_row_alone(k):
    """BOIN12's final estimates are computed once per distinct row of the counts and broadcast; that is only the
    same as computing every row if each row's numbers do not depend on the others: checked bit for bit."""
    rng = np.random.default_rng(k)
    t = 60
    n = rng.integers(0, 13, size=(t, k))
    n[: t // 2] = n[0]          # repeated rows of (n, y) and (n, e)
    y = rng.integers(0, 13, size=(t, k)) % (n + 1)
    e = rng.integers(0, 13, size=(t, k)) % (n + 1)
    y[: t // 3] = y[0]
    state = doseesc.TrialState.from_counts(n, y, np.zeros(t, int), e=e, ye=np.minimum(y, e))
    design = doseesc.BOIN12(k, max_n=24)
    batch = design.estimates(state)
    for i in range(t):
        alone = design.estimates(state.take([i]))
        for whole, one in zip(batch, alone):
            np.testing.assert_array_equal(whole[i], one[0])


def test_boinet_binomial_cdf_equals_scipy_stats():
    """BOIN-ET's boundaries use scipy.stats' own binomial-cdf ufunc without importing scipy.stats: the same
    numbers, k below 0, inside and at or above n included (e.g. P(Bin(100, 0.3) <= 30) = 0.5491...)."""
    from scipy import stats
    from doseesc.designs.boinet import _binom_cdf
    k = np.floor(100 * np.arange(-0.02, 1.05, 0.01) + 1e-9)
    for p in (0.0, 0.03, 0.3, 0.42, 0.36, 0.6, 1.0):
        np.testing.assert_array_equal(_binom_cdf(k, 100, p), stats.binom.cdf(k, 100, p))
    assert abs(_binom_cdf(np.array([30.0]), 100, 0.3)[0] - 0.5491236) < 1e-6


def test_boinet_selection_of_a_batch_equals_each_row_alone():
    """BOIN-ET's isotonic DLT estimate is computed once per distinct (n, y) row and broadcast: each row's choice is
    the one it gets alone."""
    rng = np.random.default_rng(3)
    t, k = 80, 4
    n = rng.integers(0, 10, size=(t, k))
    n[: t // 2] = n[0]
    y = rng.integers(0, 10, size=(t, k)) % (n + 1)
    e = rng.integers(0, 10, size=(t, k)) % (n + 1)
    y[: t // 4] = y[0]
    state = doseesc.TrialState.from_counts(n, y, np.zeros(t, int), e=e)
    design = doseesc.BOINET(k, max_n=36)
    batch = design.select(state)
    alone = np.array([design.select(state.take([i]))[0] for i in range(t)])
    np.testing.assert_array_equal(batch, alone)
    assert len(set(batch.tolist())) > 1


def test_boinet_decides_once_per_distinct_row_the_same_decisions():
    """From 4096 trials BOIN-ET decides once per distinct (current tier, counts at it and its neighbours,
    admissible tiers) row; the decisions equal the rule applied to every trial."""
    rng = np.random.default_rng(7)
    t, k, m = 6000, 4, 400
    n = rng.choice([0, 3, 6, 9], size=(m, k))
    cur = rng.integers(0, k, size=m)
    n[np.arange(m), cur] = np.maximum(n[np.arange(m), cur], 3)
    y = rng.integers(0, 10, size=(m, k)) % (n + 1)
    e = rng.integers(0, 10, size=(m, k)) % (n + 1)
    state = doseesc.TrialState.from_counts(n, y, cur, e=e).take(rng.integers(0, m, size=t))   # repeated rows
    design = doseesc.BOINET(k, max_n=36)
    calls = []
    plain_rule = design._decide
    object.__setattr__(design, "_decide", lambda s, ok: calls.append(s.n_trials) or plain_rule(s, ok))
    fast = design.decide(state)
    assert calls and calls[0] <= t // 2          # the distinct rows only
    plain = plain_rule(state, design.admissible(state))
    for key in ("next", "stop", "reason"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(plain, key))
    assert fast.stop.any() and (~fast.stop).any() and len(set(fast.next.tolist())) > 2


@pytest.mark.parametrize("name", ["BOIN12", "BOIN-ET"])
def test_dcar_sle_exact_within_4_se_of_monte_carlo(name):
    """The bundled DCAR-SLE designs (4 tiers, N = 24, phi 0.25), refused at the default max_states before:
    exact now runs and agrees with 3,000 simulated trials (binomial SE under the exact value)."""
    from pathlib import Path
    p = doseesc.load_protocol(Path(__file__).resolve().parents[1] / "scenarios" / "dcar_sle.toml")
    d, s = p.designs[name], p.scenarios["mtd-middle"]
    assert (d.n_tiers, d.max_n) == (4, 24)
    ex = doseesc.exact(d, s, ladder=p.tiers, obd=p.obd)
    n_trials = 3000
    mc = doseesc.simulate(d, s, n_trials, rng=5, ladder=p.tiers, obd=p.obd)
    ps = np.clip(ex.p_select, 0, 1)
    se = np.sqrt(ps * (1 - ps) / n_trials)
    assert np.all(np.abs(mc.p_select - ps) <= 4 * se + 1e-15), np.c_[mc.p_select, ps, se]
    assert abs(mc.expected_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(n_trials)


@pytest.mark.parametrize("design", [doseesc.BOIN12(3, max_n=12), doseesc.BOINET(3, max_n=12)], ids=["BOIN12", "BOIN-ET"])
def test_merged_exact_with_impossible_outcomes_equals_reference(design, monkeypatch):
    """P(DLT) 0 and 1, P(response) 0 and 1: outcomes of probability 0 are dropped before keying, as the reference
    drops them."""
    sc = doseesc.Scenario(true_tox=(0.0, 0.3, 1.0), true_eff=(0.0, 1.0, 0.5))
    fast = doseesc.exact(design, sc)
    monkeypatch.setattr(exact_engine, "REFERENCE", True)
    _compare(fast, doseesc.exact(design, sc))
