"""The one state transition: TrialState.add_cohort, TrialState.advance, and the cohort-outcome
probabilities (doseesc.outcomes.cohort_outcomes) that the exact engine and the path enumerator share."""

from math import comb

import numpy as np
import pytest

import doseesc
from doseesc.designs.base import design_from_dict
from doseesc.outcomes import cohort_outcomes, compositions
from doseesc.state import Decision, Rule, StopReason, TrialState


def _decision(nxt, stop, **kw):
    stop = np.asarray(stop, bool)
    reason = np.where(stop, np.int8(StopReason.MTD_IDENTIFIED), 0).astype(np.int8)
    return Decision(next=np.asarray(nxt, np.int32), stop=stop, reason=reason, **kw)


# -- advance ------------------------------------------------------------------------------------

def test_advance_moves_the_trials_that_go_on_and_freezes_those_that_stop():
    s = TrialState.empty(3, 4, start=1, size=3)
    s.phase[:] = [0, 0, 1]
    s.fired[:] = [int(Rule.NO_SKIP), 0, 0]
    dec = _decision([2, -1, 0], [False, True, False],
                    fired=np.array([int(Rule.ELIMINATION), int(Rule.MAX_N), 0], np.int16),
                    phase=np.array([1, 5, 2], np.int32), aux=np.array([7, 8, 9], np.int32))
    s.advance(dec, cohort_size=3)
    # trial 0 goes on: tier 2, a cohort of the design's fixed 3, phase/aux from the decision,
    # fired NO_SKIP (32) | ELIMINATION (64) = 96
    # trial 1 stops: inactive, tier/size/phase/aux unchanged, fired MAX_N (4)
    # trial 2 de-escalates to tier 0 in phase 2
    assert s.current.tolist() == [2, 1, 0]
    assert s.active.tolist() == [True, False, True]
    assert s.size.tolist() == [3, 3, 3]
    assert s.phase.tolist() == [1, 0, 2]
    assert s.aux.tolist() == [7, 0, 9]
    assert s.fired.tolist() == [96, 4, 0]


def test_advance_takes_the_decisions_cohort_size_and_only_touches_the_decided_rows():
    s = TrialState.empty(4, 3, start=0, size=1)
    dec = _decision([1, 2], [False, False], size=np.array([2, 5], np.int32))
    s.advance(dec, cohort_size=3, rows=np.array([1, 3]))
    assert s.current.tolist() == [0, 1, 0, 2]
    assert s.size.tolist() == [1, 2, 1, 5]
    s.advance(_decision([0, 0], [True, False]), cohort_size=3, rows=np.array([False, True, True, False]))
    # row 1 stops (keeps tier 1 and size 2); row 2 goes to tier 0 with the fixed size 3
    assert s.active.tolist() == [True, False, True, True]
    assert s.current.tolist() == [0, 1, 0, 2]
    assert s.size.tolist() == [1, 2, 3, 5]


def test_advance_by_a_real_decision_three_plus_three_escalates_with_a_cohort_of_three():
    d = doseesc.ThreePlusThree(n_tiers=3)
    s = TrialState.empty(1, 3, start=d.start, size=d.first_size)
    s.add_cohort(3, 0)          # 1NNN: 0/3 at tier 1 -> escalate
    s.advance(d.step(s), d.cohort_size)
    assert (s.current[0], s.size[0], s.active[0]) == (1, 3, True)
    s.add_cohort(3, 2)          # 2TTN: 2/3 at tier 2 -> stop, the MTD is tier 1
    dec = d.step(s)
    s.advance(dec, d.cohort_size)
    assert bool(dec.stop[0]) and not s.active[0] and s.current[0] == 1


def test_advance_by_boin_titration_sets_the_next_cohort_size():
    # accelerated titration (cohort size 3): cohorts of 1 while no DLT; the first DLT at a tier
    # completes that tier to 3 (3 - 1 = 2 more patients at the same tier)
    d = doseesc.BOIN(target=0.3, n_tiers=4, max_n=18, cohort_size=3, titration=True)
    s = TrialState.empty(1, 4, start=d.start, size=d.first_size)
    assert s.size[0] == 1
    s.add_cohort(int(s.size[0]), 0)      # 1N: climb to tier 2 with one patient
    s.advance(d.step(s), d.cohort_size)
    assert (s.current[0], s.size[0]) == (1, 1)
    s.add_cohort(int(s.size[0]), 1)      # 2T: settle at tier 2, 2 more patients
    s.advance(d.step(s), d.cohort_size)
    assert (s.current[0], s.size[0]) == (1, 2)
    assert s.n[0].tolist() == [1, 1, 0, 0] and s.y[0].tolist() == [0, 1, 0, 0]


def test_advance_by_an_expansion_decision_sets_phase_aux_and_size():
    # OBD pick around 3+3 with an expansion of 3: after 1NNN 2NNN 2TNN 3TTN the 3+3 stops with MTD tier 2
    # (1/6 there, 2/3 above); the pick turns the stop into phase 1 (expansion), aux = the MTD (index 1),
    # and the next cohort is the expansion's 3 patients at the MTD
    d = design_from_dict({"type": "obd-pick", "base": {"type": "3+3", "n_tiers": 3}, "expansion": 3})
    s = TrialState.from_counts([[3, 6, 3]], [[0, 1, 2]], 2, e=[[1, 2, 0]], last_n=3, last_y=2)
    dec = d.step(s)
    s.advance(dec, d.cohort_size)
    assert s.active[0]
    assert (s.current[0], s.size[0], s.phase[0], s.aux[0]) == (1, 3, 1, 1)


# -- add_cohort ---------------------------------------------------------------------------------

def test_add_cohort_updates_counts_at_the_current_tier():
    s = TrialState.empty(2, 3)
    s.current[:] = [0, 2]
    s.add_cohort(np.array([3, 2]), np.array([1, 0]), np.array([2, 1]), np.array([1, 0]))
    assert s.n.tolist() == [[3, 0, 0], [0, 0, 2]]
    assert s.y.tolist() == [[1, 0, 0], [0, 0, 0]]
    assert s.e.tolist() == [[2, 0, 0], [0, 0, 1]]
    assert s.ye.tolist() == [[1, 0, 0], [0, 0, 0]]
    assert s.last_n.tolist() == [3, 2] and s.last_y.tolist() == [1, 0]
    # a second cohort at trial 0's tier adds to it; rows= touches only that trial
    s.add_cohort(3, 2, rows=np.array([0]))
    assert s.n.tolist() == [[6, 0, 0], [0, 0, 2]]
    assert s.y.tolist() == [[3, 0, 0], [0, 0, 0]]
    assert s.e.tolist() == [[2, 0, 0], [0, 0, 1]]   # no responses given: unchanged
    assert s.last_n.tolist() == [3, 2] and s.last_y.tolist() == [2, 0]


def test_take_and_copy_carry_size_and_fired():
    s = TrialState.empty(3, 2, size=2)
    s.fired[:] = [1, 2, 4]
    t = s.take(np.array([2, 2, 0]))
    assert t.size.tolist() == [2, 2, 2] and t.fired.tolist() == [4, 4, 1]
    c = s.copy()
    c.size[0] = 9
    c.fired[0] = 0
    assert s.size[0] == 2 and s.fired[0] == 1


# -- cohort outcome probabilities ---------------------------------------------------------------

def test_cohort_outcomes_binomial_hand_value():
    dlts, resp, both, prob = cohort_outcomes(3, np.array([0.2, 0.5]))
    assert dlts.tolist() == [0, 1, 2, 3]
    assert resp.tolist() == [0, 0, 0, 0] and both.tolist() == [0, 0, 0, 0]
    # P(1 DLT of 3 | p = 0.2) = 3 * 0.2 * 0.8^2 = 0.384; P(0) = 0.8^3 = 0.512; P(3 | p = 0.5) = 1/8
    assert prob[0, 1] == pytest.approx(0.384, abs=1e-15)
    assert prob[0, 0] == pytest.approx(0.512, abs=1e-15)
    assert prob[1, 3] == pytest.approx(0.125, abs=1e-15)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-15)
    assert np.allclose(prob[0], [comb(3, j) * 0.2 ** j * 0.8 ** (3 - j) for j in range(4)])
    assert cohort_outcomes(3)[3] is None


def test_cohort_outcomes_joint_hand_cell():
    # cells per tier: (neither, DLT only, response only, both) = (0.5, 0.1, 0.3, 0.1)
    probs = np.array([[0.5, 0.1, 0.3, 0.1], [0.25, 0.25, 0.25, 0.25]])
    dlts, resp, both, prob = cohort_outcomes(2, probs, joint=True)
    cells = compositions(2)
    assert prob.shape == (2, cells.shape[0]) == (2, 10)   # C(2 + 3, 3) splits of 2 patients
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-15)
    # one patient with a DLT only, one with a response only: 2!/(1! 1!) * 0.1 * 0.3 = 0.06
    i = int(np.flatnonzero((cells == [0, 1, 1, 0]).all(axis=1))[0])
    assert (dlts[i], resp[i], both[i]) == (1, 1, 0)
    assert prob[0, i] == pytest.approx(0.06, abs=1e-15)
    # one patient with neither, one with both: 2 * 0.5 * 0.1 = 0.1 (1 DLT, 1 response, 1 both)
    j = int(np.flatnonzero((cells == [1, 0, 0, 1]).all(axis=1))[0])
    assert (dlts[j], resp[j], both[j]) == (1, 1, 1)
    assert prob[0, j] == pytest.approx(0.1, abs=1e-15)
    # both patients with both: 0.1^2
    k = int(np.flatnonzero((cells == [0, 0, 0, 2]).all(axis=1))[0])
    assert prob[0, k] == pytest.approx(0.01, abs=1e-15) and (dlts[k], resp[k], both[k]) == (2, 2, 2)


def test_joint_outcomes_marginalise_to_the_binomial():
    probs = np.array([[0.5, 0.1, 0.3, 0.1]])       # P(DLT) = 0.1 + 0.1 = 0.2
    dlts, _, _, prob = cohort_outcomes(3, probs, joint=True)
    marginal = np.bincount(dlts, weights=prob[0], minlength=4)
    np.testing.assert_allclose(marginal, cohort_outcomes(3, np.array([0.2]))[3][0], atol=1e-15)


# -- the engines use the transition -------------------------------------------------------------

def test_recommend_returns_its_final_state():
    # 3+3: 1NNN -> escalate; 2NTN -> 1/3 at tier 2: three more at tier 2
    rec = doseesc.recommend(doseesc.ThreePlusThree(n_tiers=3), "1NNN 2NTN")
    s = rec.state
    assert s.n.tolist() == [[3, 3, 0]] and s.y.tolist() == [[0, 1, 0]]
    assert (s.current[0], s.size[0], s.active[0]) == (1, 3, True) and rec.next_tier == 1
    # an incomplete cohort: the state holds its patients, and size is what it still needs
    rec = doseesc.recommend(doseesc.ThreePlusThree(n_tiers=3), "1NNN 2N")
    assert rec.incomplete == 2 and rec.state.size[0] == 2 and rec.state.n.tolist() == [[3, 1, 0]]


def test_paths_start_from_the_recommended_state_with_its_cohort_size():
    # BOIN with titration: after 1N 2T the next cohort is 2 patients at tier 2 (the settle rule), so
    # every first node of the paths from there has 2 patients at tier 2 (0, 1 or 2 DLTs)
    d = doseesc.BOIN(target=0.3, n_tiers=4, max_n=18, cohort_size=3, titration=True)
    nodes = doseesc.paths(d, 1, start="1N 2T").nodes()
    assert nodes["size"].tolist() == [2, 2, 2] and nodes["dlts"].tolist() == [0, 1, 2]
    assert nodes["path"].tolist() == ["1N 2T 2NN", "1N 2T 2NT", "1N 2T 2TT"]


def test_coherence_carries_the_multi_stage_memory():
    # OBD pick with an expansion: after the base design stops at max_n with MTD m, the expansion treats m
    # and then m - 1, a de-escalation after a cohort without a DLT. The check goes through the expansion
    # phase (it used to fail there with an IndexError: phase and aux were not carried).
    d = design_from_dict({"type": "obd-pick", "base": {"type": "BOIN", "target": 0.3, "n_tiers": 4, "max_n": 12},
                          "expansion": 3})
    res = doseesc.coherence(d)
    assert not res.deescalation_coherent
    log = res.deescalation_example
    rec = doseesc.recommend(d, log, warn=False)
    last = doseesc.parse_outcomes(log)[-1]
    assert not any(last.tox) and rec.next_tier < last.tier
