"""Issue 20: the fast paths give the same numbers as the plain ones (no timing here; speed lives in bench/).

- The Monte Carlo engine decides once per distinct trial state and broadcasts (engines/run.decide_distinct);
  with the switch ``DISTINCT_STATES`` off it decides trial by trial. Every per-trial and per-patient array
  must be identical either way, for designs of every kind (rule-based, interval, model-based, efficacy,
  multi-stage, rule slots).
- The exact engine merges states on packed int64 keys; with ``PACKED_KEYS`` off it sorts rows
  (``np.unique(axis=0)``). Records and probabilities must be identical bit for bit.
- :func:`~doseesc.state.pack_columns` keys rows as ``np.unique(axis=0)`` orders them.
- CRM's memo of posterior means gives each trial the posterior of its own counts.
- :func:`~doseesc.engines.run.one_blas_thread` restores the thread count it found.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import doseesc
from doseesc.state import TrialState, pack_columns

# the modules (the package exports functions of the same names)
exact_engine = importlib.import_module("doseesc.engines.exact")
run_engine = importlib.import_module("doseesc.engines.run")

TOX4 = [0.05, 0.15, 0.30, 0.50]
EFF4 = [0.20, 0.35, 0.50, 0.55]
SK4 = tuple(doseesc.crm_skeleton(0.25, 0.05, 2, 4))

MC_DESIGNS = {
    "3+3": doseesc.ThreePlusThree(4),
    "3+3 de-escalation": doseesc.ThreePlusThree(4, deescalation=True),
    "BOIN": doseesc.BOIN(0.25, 4, max_n=24),
    "BOIN rules": doseesc.BOIN(0.25, 4, max_n=30).stop_when_n_at_dose(9).safety_stop(0.9),
    "Keyboard": doseesc.Keyboard(0.25, 4, max_n=24),
    "mTPI-2": doseesc.MTPI2(0.25, 4, max_n=24),
    "CRM": doseesc.CRM(SK4, 0.25, max_n=24),
    "CRM logistic, start-up": doseesc.CRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 2, 4, model="logistic")), 0.25,
                                          max_n=24, model="logistic", startup=(1, 2, 3)),
    "BOIN12": doseesc.BOIN12(4, max_n=24),
    "BOIN-ET": doseesc.BOINET(4, max_n=24),
    "rolling six": doseesc.RollingSix(4, max_n=24),
}

PER_TRIAL = ("n", "y", "selected", "reason", "fired")


def _scenario(design):
    return doseesc.Scenario(true_tox=TOX4, true_eff=EFF4 if design.uses_efficacy else None, target=0.25)


def _assert_same_run(a, b):
    for key in PER_TRIAL:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    if a.e is not None:
        np.testing.assert_array_equal(a.e, b.e)
    assert sorted(a.patients) == sorted(b.patients)
    for key in a.patients:
        np.testing.assert_array_equal(a.patients[key], b.patients[key], err_msg=key)


@pytest.mark.parametrize("name", list(MC_DESIGNS))
def test_monte_carlo_distinct_states_equal_trial_by_trial(name, monkeypatch):
    design = MC_DESIGNS[name]
    scenario = _scenario(design)
    fast = doseesc.simulate(design, scenario, 3000, rng=20, batch_size=1024)
    monkeypatch.setattr(run_engine, "DISTINCT_STATES", False)
    plain = doseesc.simulate(design, scenario, 3000, rng=20, batch_size=1024)
    _assert_same_run(fast, plain)


def test_the_distinct_path_is_taken_and_decides_on_fewer_states(monkeypatch):
    """The switch matters: with it on, the kernel sees far fewer rows than there are trials."""
    design = doseesc.BOIN(0.25, 4, max_n=24)
    rows = []
    step = type(design).step

    def counting(self, state):
        rows.append(state.n_trials)
        return step(self, state)

    monkeypatch.setattr(type(design), "step", counting)
    doseesc.simulate(design, _scenario(design), 4096, rng=1, batch_size=4096)
    on = sum(rows)
    rows.clear()
    monkeypatch.setattr(run_engine, "DISTINCT_STATES", False)
    doseesc.simulate(design, _scenario(design), 4096, rng=1, batch_size=4096)
    off = sum(rows)
    # first decision: every trial has had one cohort of 3 at tier 1, so 4 distinct states (0..3 DLTs)
    assert off > 10 * on
    assert on >= 4


def test_decide_distinct_broadcasts_each_state_decision():
    """Hand-built batch: 6 trials, 2 distinct states (1 of 3 DLTs at tier 1; 0 of 3 at tier 1)."""
    design = doseesc.BOIN(0.25, 3, max_n=12)
    n = np.array([[3, 0, 0]] * 6)
    y = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0]])
    state = TrialState.from_counts(n, y, np.zeros(6, int))
    decided = run_engine.decide_distinct(design, state, np.arange(6))
    assert decided.distinct is not None and decided.distinct.n_trials == 2
    # BOIN(0.25): 1/3 = 0.33 is inside (0.197, 0.298]? no: above 0.298 -> de-escalate, but tier 1 is the
    # lowest, so stay (next = 0); 0/3 = 0 <= 0.197 -> escalate to tier 2 (next = 1)
    np.testing.assert_array_equal(decided.dec.next, [0, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(decided.dec.next, design.step(state).next)


def test_decide_distinct_falls_back_when_states_are_crowded():
    """4 trials, 3 distinct states (3 > 0.5 * 4): decided trial by trial, and the caller is told."""
    design = doseesc.BOIN(0.25, 3, max_n=12)
    n = np.array([[3, 0, 0]] * 4)
    y = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 0]])
    state = TrialState.from_counts(n, y, np.zeros(4, int))
    decided = run_engine.decide_distinct(design, state, np.arange(4))
    assert decided.distinct is None and decided.crowded
    # 0/3 escalates (next tier 2); 1/3 = 0.33 > 0.298 de-escalates, so stays at the lowest tier; 2/3 likewise,
    # not eliminated: P(p > 0.25 | Beta(3, 2)) = 1 - (4 * 0.25^3 * 0.75 + 0.25^4) = 0.949 <= 0.95
    np.testing.assert_array_equal(decided.dec.next, [1, 0, 0, 1])
    off = run_engine.decide_distinct(design, state, np.arange(4), distinct=False)
    assert off.distinct is None and not off.crowded


# -- exact engine ------------------------------------------------------------------------------------------
EXACT_DESIGNS = {
    "3+3": doseesc.ThreePlusThree(4),
    "BOIN": doseesc.BOIN(0.25, 4, max_n=24),
    "CRM": doseesc.CRM(SK4, 0.25, max_n=18),
    "BOIN12": doseesc.BOIN12(3, max_n=15),
    "BOIN-ET": doseesc.BOINET(3, max_n=15),
}


@pytest.mark.parametrize("name", list(EXACT_DESIGNS))
def test_exact_packed_keys_equal_sorted_rows(name, monkeypatch):
    design = EXACT_DESIGNS[name]
    k = design.n_tiers
    scenario = doseesc.Scenario(true_tox=TOX4[:k], true_eff=EFF4[:k] if design.uses_efficacy else None,
                                target=0.25)
    fast = doseesc.exact(design, scenario)
    monkeypatch.setattr(exact_engine, "PACKED_KEYS", False)
    plain = doseesc.exact(design, scenario)
    for key in PER_TRIAL + ("weight",):
        np.testing.assert_array_equal(getattr(fast, key), getattr(plain, key), err_msg=key)
    if fast.e is not None:
        np.testing.assert_array_equal(fast.e, plain.e)


def test_pack_columns_orders_rows_as_unique_axis0():
    rng = np.random.default_rng(5)
    for _ in range(100):
        t = int(rng.integers(1, 200))
        a = rng.integers(-2, 30, size=(t, int(rng.integers(1, 6)))).astype(np.int32)
        b = rng.integers(0, 4, size=t).astype(np.int16)
        c = rng.integers(0, 3, size=(t, 2)).astype(float)
        key = pack_columns([a, b, c])
        uniq, inverse = np.unique(np.column_stack([a, b, c.astype(int)]), axis=0, return_inverse=True)
        ukey, kinv = np.unique(key, return_inverse=True)
        assert ukey.size == uniq.shape[0]
        np.testing.assert_array_equal(kinv.ravel(), inverse.ravel())


def test_pack_columns_hand_worked_and_refusals():
    # columns a in 0..2 (radix 3) and b in 5..6 (offset 5, radix 2): key = 2 * a + (b - 5)
    np.testing.assert_array_equal(pack_columns([np.array([2, 0, 1]), np.array([5, 6, 6])]), [4, 1, 3])
    # a in -1..1: offset -1, radix 3: key = 2 * (a + 1) + (b - 5)
    np.testing.assert_array_equal(pack_columns([np.array([1, -1, 0]), np.array([5, 6, 6])]), [4, 1, 3])
    # constant blocks are left out: key = 7, 9, 8 - 7
    np.testing.assert_array_equal(pack_columns([np.zeros((3, 4), int), np.array([7, 9, 8]), np.full(3, 5)]),
                                  [0, 2, 1])
    # a 2-D block: both columns take the block's range 0..2 (radix 3): key = 3 * c0 + c1
    np.testing.assert_array_equal(pack_columns([np.array([[0, 2], [1, 0], [2, 2]])]), [2, 3, 8])
    # block radix 2**40 + 1 for 3 columns would overflow: each column takes its own range (2**40 + 1, 2, 2)
    big = np.array([[2 ** 40, 1, 0], [0, 0, 1], [5, 1, 1]])
    np.testing.assert_array_equal(pack_columns([big]), [2 ** 40 * 4 + 2, 1, 5 * 4 + 3])
    assert pack_columns([np.array([0.5, 1.0])]) is None          # not integers
    wide = np.array([[0] * 13, [39] * 13])                         # 40 ** 13 > 2 ** 63 either way
    assert pack_columns([wide]) is None


# -- CRM memo ---------------------------------------------------------------------------------------------
def test_crm_memo_gives_each_trial_its_own_posterior():
    design = doseesc.CRM(SK4, 0.25, max_n=24)
    rng = np.random.default_rng(2)
    n = rng.integers(0, 7, size=(400, 4)) * 3 // 3
    y = np.minimum(rng.integers(0, 3, size=(400, 4)), n)
    first = design.posterior_mean_memo(n, y)        # fills the memo
    again = design.posterior_mean_memo(n[::-1], y[::-1])  # every row a hit now, in another order
    np.testing.assert_array_equal(again, first[::-1])
    direct = design.posterior_mean(n, y)
    # the same posterior up to the last bits of the BLAS matrix products (which depend on row grouping)
    np.testing.assert_allclose(first, direct, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(design.closest_tier(first), design.closest_tier(direct))
    # counts outside 0 <= y <= n <= max_n are computed directly, not memoised
    big = np.array([[30, 1, 0, 0]])
    np.testing.assert_array_equal(design.posterior_mean_memo(big, np.array([[2, 0, 0, 0]])),
                                  design.posterior_mean(big, np.array([[2, 0, 0, 0]])))


def test_crm_memo_is_bounded(monkeypatch):
    design = doseesc.CRM(SK4, 0.25, max_n=24)
    monkeypatch.setattr(type(design), "MEMO_LIMIT", 10)
    n = np.array([[3, i, 0, 0] for i in range(0, 16)])
    y = np.zeros_like(n)
    design.posterior_mean_memo(n, y)
    assert design._memo[0].size <= 16
    design.posterior_mean_memo(n + np.array([0, 0, 3, 0]), y)
    assert design._memo[0].size <= 16


# -- BLAS threads -------------------------------------------------------------------------------------------
def test_one_blas_thread_sets_and_restores():
    controls = run_engine.blas_controls()
    before = [get() for get, _ in controls]
    with run_engine.one_blas_thread():
        assert all(get() == 1 for get, _ in controls)
    assert [get() for get, _ in controls] == before
