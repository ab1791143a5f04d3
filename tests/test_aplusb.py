"""The A+B design (Lin & Shih 2001): closed forms, 3+3 equivalence, hand-worked logs, file round trips.

The closed forms below are written from Lin & Shih's definitions (docs/notes/aplusb-and-tables.md),
independently of the kernel, which the exact engine enumerates state by state.
"""

from __future__ import annotations

import itertools
from math import comb, prod

import numpy as np
import pytest

import doseesc
from doseesc import StopReason, TrialState
from doseesc.designs import AplusB, ThreePlusThree
from doseesc.errors import DesignError


# -- Lin & Shih's closed forms, general A, B, C, D, E ------------------------------------------
def _b(k, m, p):
    return comb(m, k) * p ** k * (1 - p) ** (m - k) if 0 <= k <= m else 0.0


def _parts(p, A, B, C, D, E):
    """Per-tier probabilities (Lin & Shih, section 2): P0 escalate after A; P1 expand (C..D of A);
    Q0 expand then escalate (<= E of A + B); e = P0 + Q0; Q1 / Q2 passed with A, later B more with
    <= E / > E DLTs among the A + B (de-escalation)."""
    P0 = sum(_b(k, A, p) for k in range(C))
    P1 = sum(_b(k, A, p) for k in range(C, D + 1))
    Q0 = sum(_b(k, A, p) * sum(_b(m, B, p) for m in range(E - k + 1)) for k in range(C, D + 1))
    Q1 = sum(_b(k, A, p) * sum(_b(m, B, p) for m in range(E - k + 1)) for k in range(C))
    return P0, P1, Q0, P0 + Q0, Q1, P0 - Q1


def closed_form(p, A=3, B=3, C=1, D=1, E=1, deescalation=False):
    """P(MTD = none, 1..K) and E[n_j] of the A+B design, from Lin & Shih's formulas."""
    k = len(p)
    P0, P1, Q0, e, Q1, Q2 = (np.array(v) for v in zip(*(_parts(q, A, B, C, D, E) for q in p)))
    passed = (A * P0 + (A + B) * Q0) / e                           # E n_j | escalated past j
    failed = (A * (1 - P0 - P1) + (A + B) * (P1 - Q0)) / (1 - e)   # E n_j | too toxic at j
    pm, en = np.zeros(k + 1), np.zeros(k)
    top = prod(e)  # every tier passes: MTD = K, each tier's patients as when passed
    pm[k] += top
    en += top * passed
    for s in range(k):  # s: the 0-based tier where escalation stops (too toxic)
        if not deescalation:
            w = prod(e[:s]) * (1 - e[s])
            pm[s] += w  # MTD = the tier below s (1-based s; 0 = none)
            en += w * np.where(np.arange(k) < s, passed, np.where(np.arange(k) == s, failed, 0.0))
            continue
        for i in range(s + 1):  # i: 1-based MTD (0 = none) after de-escalating from s
            if i == 0:
                w = prod(Q2[:s]) * (1 - e[s])
            else:
                w = prod(e[: i - 1]) * (Q0[i - 1] + Q1[i - 1]) * prod(Q2[i:s]) * (1 - e[s])
            pm[i] += w
            j = np.arange(k)
            en += w * np.where(j < i - 1, passed, np.where(j < s, A + B, np.where(j == s, failed, 0.0)))
    return pm, en


PARAMS = [(3, 3, 1, 1, 1), (3, 3, 1, 2, 2), (3, 3, 1, 1, 2), (3, 3, 2, 2, 3), (2, 4, 1, 1, 2), (4, 2, 1, 2, 2),
          (3, 6, 1, 1, 2)]
SCENARIOS = [[0.05, 0.15, 0.35], [0.1, 0.2, 0.3, 0.4, 0.5], [0.3, 0.45, 0.6], [0.02, 0.04, 0.06, 0.1],
             [0.2, 0.2, 0.5, 0.5, 0.6, 0.9]]


@pytest.mark.parametrize("deescalation", [False, True], ids=["plain", "deesc"])
@pytest.mark.parametrize("params", PARAMS, ids=lambda q: "A{}B{}C{}D{}E{}".format(*q))
@pytest.mark.parametrize("p", SCENARIOS, ids=lambda p: f"{len(p)}tiers-{p[0]}")
def test_exact_equals_closed_form(p, params, deescalation):
    A, B, C, D, E = params
    design = AplusB(len(p), A=A, B=B, C=C, D=D, E=E, deescalation=deescalation)
    oc = doseesc.exact(design, doseesc.Scenario(true_tox=p))
    pm, en = closed_form(p, *params, deescalation=deescalation)
    assert pm.sum() == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(oc.p_select, pm, rtol=0, atol=1e-12)
    np.testing.assert_allclose(oc.summary()["mean_n"].to_numpy()[1:], en, rtol=0, atol=1e-12)
    assert oc.expected_n == pytest.approx(en.sum(), abs=1e-12)


def test_closed_form_by_hand():
    """One tier, A=2, B=4, C=1, D=1, E=2, p=0.5 (each outcome pattern of m patients has prob 2^-m).

    P0 = P(0/2) = 1/4; P1 = P(1/2) = 1/2; Q0 = P(1/2) * P(<= 1 of 4) = 1/2 * (1 + 4)/16 = 5/32;
    e = 1/4 + 5/32 = 13/32: P(MTD = tier 1) = 13/32, P(no dose) = 19/32.
    E n = 2 + 4 * P1 = 2 + 2 = 4 (4 more only after 1/2)."""
    pm, en = closed_form([0.5], 2, 4, 1, 1, 2)
    np.testing.assert_allclose(pm, [19 / 32, 13 / 32], atol=1e-15)
    assert en[0] == pytest.approx(4.0, abs=1e-15)
    oc = doseesc.exact(AplusB(1, A=2, B=4, C=1, D=1, E=2), doseesc.Scenario(true_tox=[0.5]))
    np.testing.assert_allclose(oc.p_select, [19 / 32, 13 / 32], atol=1e-15)
    assert oc.expected_n == pytest.approx(4.0, abs=1e-15)


def test_published_rounded_values():
    """3+3 as A+B: Wheeler, Sweeting & Mander 2016 (de-escalation, 5 tiers) and Chow, Shao & Wang 2003,
    Example 11.6.1 (E n_1 = 3.1), as published (rounded); the exact golden values of
    docs/notes/three-plus-three.md section 3 to 1e-6."""
    five = doseesc.Scenario(true_tox=[0.1, 0.2, 0.3, 0.4, 0.5])
    oc = doseesc.exact(AplusB(5, deescalation=True), five)
    np.testing.assert_allclose(oc.p_select, [0.10, 0.28, 0.33, 0.20, 0.06, 0.02], atol=0.005)
    np.testing.assert_allclose(oc.p_select, [0.100411, 0.284582, 0.333492, 0.203332, 0.061311, 0.016872], atol=1e-6)
    plain = doseesc.exact(AplusB(5), five)
    assert plain.expected_n == pytest.approx(12.035479, abs=1e-6)
    chow = doseesc.Scenario(true_tox=[0.01, 0.014, 0.025, 0.056, 0.177, 0.594, 0.963])
    assert doseesc.exact(AplusB(7), chow).summary()["mean_n"].iloc[1] == pytest.approx(3.1, abs=0.05)


# -- 3+3 is A+B with A = B = 3, C = D = E = 1 ---------------------------------------------------
def _all_states(k=3, top=6):
    """Every count vector with 0..top patients per tier (cut cohorts included) and every current tier."""
    cells = [(n, y) for n in range(top + 1) for y in range(n + 1)]
    rows = list(itertools.product(cells, repeat=k))
    n = np.array([[c[0] for c in r] for r in rows])
    y = np.array([[c[1] for c in r] for r in rows])
    n, y = np.repeat(n, k, axis=0), np.repeat(y, k, axis=0)
    cur = np.tile(np.arange(k), len(rows))
    return TrialState.from_counts(n, y, cur)


@pytest.mark.parametrize("deescalation", [False, True])
def test_same_decisions_as_three_plus_three_on_every_state(deescalation):
    st = _all_states()
    ab, tt = AplusB(3, deescalation=deescalation), doseesc.ThreePlusThree(3, deescalation=deescalation)
    da, dt = ab.step(st), tt.step(st)
    np.testing.assert_array_equal(da.next, dt.next)
    np.testing.assert_array_equal(da.stop, dt.stop)
    np.testing.assert_array_equal(da.reason, dt.reason)
    np.testing.assert_array_equal(da.fired, dt.fired)
    assert (da.size == 3).all()
    np.testing.assert_array_equal(ab.conclude(st, da.reason), tt.conclude(st, dt.reason))
    np.testing.assert_array_equal(ab.select(st), tt.select(st))


@pytest.mark.parametrize("deescalation", [False, True])
@pytest.mark.parametrize("max_n", [None, 3, 9, 14])
def test_same_results_as_three_plus_three(deescalation, max_n):
    p = [0.1, 0.25, 0.4, 0.55]
    sc = doseesc.Scenario(true_tox=p, target=0.3)
    ab = AplusB(4, deescalation=deescalation, max_n=max_n)
    tt = doseesc.ThreePlusThree(4, deescalation=deescalation, max_n=max_n)
    ea, et = doseesc.exact(ab, sc), doseesc.exact(tt, sc)
    for key in ("p_select", "n", "y", "weight", "reason", "selected"):
        np.testing.assert_array_equal(getattr(ea, key), getattr(et, key), err_msg=key)
    sa, st = doseesc.simulate(ab, sc, 2000, rng=17), doseesc.simulate(tt, sc, 2000, rng=17)
    for key in ("selected", "n", "y", "reason", "fired"):
        np.testing.assert_array_equal(getattr(sa, key), getattr(st, key), err_msg=key)


# -- hand-worked logs ------------------------------------------------------------------------------
V2 = AplusB(3, A=3, B=3, C=1, D=2, E=2)                      # "3+3 with <= 2/6": 1-2/3 expand, <= 2/6 go on
V2D = AplusB(3, A=3, B=3, C=1, D=2, E=2, deescalation=True)
TWO_FOUR = AplusB(3, A=2, B=4, C=1, D=1, E=2)                # cohorts of 2, then 4 more


def _rec(design, log):
    r = doseesc.recommend(design, log, warn=False)
    return r.stop, r.next_tier, r.reason, r.selected


@pytest.mark.parametrize("design, log, expected", [
    # 2/3: C = 1 <= 2 <= D = 2: 3 more at tier 1
    (V2, "1NTT", (False, 0, StopReason.NOT_STOPPED, None)),
    # 2/3 then 0/3: 2/6 <= E = 2: escalate to tier 2
    (V2, "1NTT 1NNN", (False, 1, StopReason.NOT_STOPPED, None)),
    # 2/3 then 1/3: 3/6 > E = 2: tier 1 too toxic, the lowest: no MTD
    (V2, "1NTT 1NTN", (True, -1, StopReason.LOWEST_TIER_TOXIC, -1)),
    # 0/3 < C = 1 at tier 1; 3/3 > D = 2 at tier 2: stop, MTD = tier 1
    (V2, "1NNN 2TTT", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    # tiers 1-2 0/3; tier 3 1/3 then 1/3: 2/6 <= 2 at the top tier: stop, MTD = tier 3
    (V2, "1NNN 2NNN 3NTN 3TNN", (True, -1, StopReason.TOP_TIER_TOLERATED, 2)),
    # with de-escalation: tier 3 3/3 too toxic, tier 2 has only 3 patients: 3 more there
    (V2D, "1NNN 2NNN 3TTT", (False, 1, StopReason.NOT_STOPPED, None)),
    # ... and tier 2 then 2/6 <= E = 2: stop, MTD = tier 2
    (V2D, "1NNN 2NNN 3TTT 2NTT", (True, -1, StopReason.MTD_IDENTIFIED, 1)),
    # ... tier 2 3/6 > 2: too toxic too; tier 1 has 3: 3 more there
    (V2D, "1NNN 2NNN 3TTT 2TTT", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 2 expanded and passed (2/6), tier 3 too toxic: tier 2 already has 6: stop, MTD = tier 2
    (V2D, "1NNN 2NTT 2NNN 3TTT", (True, -1, StopReason.MTD_IDENTIFIED, 1)),
    # A = 2: 0/2 < C = 1: escalate
    (TWO_FOUR, "1NN", (False, 1, StopReason.NOT_STOPPED, None)),
    # 1/2 then 1/4: 2/6 <= E = 2: escalate
    (TWO_FOUR, "1NT 1NTNN", (False, 1, StopReason.NOT_STOPPED, None)),
    # 0/2 at tier 1; 2/2 > D = 1 at tier 2: stop, MTD = tier 1 (2 patients: no de-escalation)
    (TWO_FOUR, "1NN 2TT", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
])
def test_hand_worked_logs(design, log, expected):
    assert _rec(design, log) == expected


def test_cohort_sizes_a_then_b():
    """A = 2, B = 4: the next cohort after 1/2 has 4 patients; after 0/2 a new tier gets 2."""
    d = TWO_FOUR.step(TrialState.from_counts([[2, 0, 0], [2, 0, 0]], [[1, 0, 0], [0, 0, 0]], [0, 0]))
    np.testing.assert_array_equal(d.next, [0, 1])
    np.testing.assert_array_equal(d.size, [4, 2])
    with pytest.raises(doseesc.DoseescError, match="cohort of 4"):
        doseesc.recommend(TWO_FOUR, "1NT 1NN 2NN", warn=False)
    assert doseesc.recommend(TWO_FOUR, "1NT 1NN", warn=False).incomplete == 2  # 2 of the 4 still to come
    assert TWO_FOUR.first_size == 2 and TWO_FOUR.max_size == 4 and TWO_FOUR.max_n == 18


def test_monte_carlo_agrees_with_exact():
    sc = doseesc.Scenario(true_tox=[0.1, 0.25, 0.4, 0.55])
    for design in (TWO_FOUR.__class__(4, A=2, B=4, C=1, D=1, E=2), AplusB(4, C=1, D=2, E=2, deescalation=True)):
        ex = doseesc.exact(design, sc)
        mc = doseesc.simulate(design, sc, 4000, rng=3)
        assert np.all(np.abs(mc.p_select - ex.p_select) <= 4 * mc.p_select_mcse + 1e-9)
        assert abs(mc.expected_n - ex.expected_n) <= 4 * mc.expected_n_mcse


# -- parameters and files ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(C=2, D=1), "C <= D"),
    (dict(D=3), "D < A"),
    (dict(D=2, E=1), "D <= E < A \\+ B"),
    (dict(E=6), "D <= E < A \\+ B"),
    (dict(A=0), "A = 0 must be at least 1"),
    (dict(deescalation="yes"), "deescalation"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(DesignError, match=message):
        AplusB(3, **kwargs)


@pytest.mark.parametrize("design", [V2D, TWO_FOUR, AplusB(4, max_n=12)])
def test_round_trip(design):
    d = design.to_dict()
    assert d["type"] == "A+B"
    assert doseesc.designs.design_from_dict(d) == design


def test_load_protocol(tmp_path):
    f = tmp_path / "ab.toml"
    f.write_text("""
[protocol]
name = "ab"
target = 0.3
[tiers]
doses = [1, 2, 4, 8]
[[design]]
name = "2+4"
type = "A+B"
A = 2
B = 4
C = 1
D = 1
E = 2
deescalation = true
[[design]]
name = "3+3"
type = "A+B"
[[scenario]]
name = "s"
true_tox = [0.1, 0.2, 0.3, 0.45]
""")
    proto = doseesc.load_protocol(f)
    assert proto.design("2+4") == AplusB(4, A=2, B=4, C=1, D=1, E=2, deescalation=True)
    assert proto.design("3+3") == AplusB(4)
    assert proto.design("3+3").max_n == 24
    assert "A+B design" in proto.design("2+4").describe()


@pytest.mark.parametrize("design", [TWO_FOUR, AplusB.example(), AplusB(3)], ids=["2+4", "example", "3+3"])
def test_check_design(design):
    testing = pytest.importorskip("doseesc.testing")
    report = testing.check_design(design)  # raises AssertionError naming the check on a failure
    assert report["exact"] == "passed" and report["round trip"] == "passed"


def test_decision_grid_from_the_kernel():
    # 3+3 parameters: the same grid as the 3+3 (escalate 0/3, add 3 at 1/3, stop at 2/3; escalate <= 1/6)
    for de in (False, True):
        assert AplusB(3, deescalation=de).decision_grid() == ThreePlusThree(3, deescalation=de).decision_grid()
        assert AplusB(3, deescalation=de).decision_words() == ThreePlusThree(3, deescalation=de).decision_words()
    # 2+4: 0/2 escalate, 1/2 stay (add 4), 2/2 de-escalate; after 6: <= 1 DLT escalate, >= 2 de-escalate
    grid = AplusB(3, A=2, B=4, deescalation=True).decision_grid()
    assert grid == {2: ("E", "S", "D"), 6: ("E", "E", "D", "D", "D", "D", "D")}
