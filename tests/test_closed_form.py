"""Exact 3+3 against the Lin & Shih (2001) closed forms, to 1e-12.

Lin & Shih, "Statistical properties of the traditional algorithm-based
designs for phase I cancer clinical trials", Biostatistics 2:203-215, give the
operating characteristics of the A+B designs in closed form. Specialised to
3+3 (A = B = 3, C = D = E = 1), with p_j the true DLT probability at tier j:

    P0_j = (1-p_j)^3            0/3: escalate
    P1_j = 3 p_j (1-p_j)^2      1/3: expand to 6
    Q0_j = P1_j (1-p_j)^3       1/3 then 0/3: escalate
    e_j  = P0_j + Q0_j          probability of escalating past j
    Q1_j = P0_j (b0 + b1)       0/3, and later 3 more with <= 1 DLT (de-escalation variant)
    Q2_j = P0_j - Q1_j          0/3, and later 3 more with >= 2 DLTs

Written here independently of the engine; the engine enumerates states.
"""

from __future__ import annotations

import itertools
from math import prod

import numpy as np
import pytest

import doseesc


def _parts(p):
    p = np.asarray(p, float)
    P0 = (1 - p) ** 3
    P1 = 3 * p * (1 - p) ** 2
    Q0 = P1 * (1 - p) ** 3
    e = P0 + Q0
    b01 = (1 - p) ** 3 + 3 * p * (1 - p) ** 2
    Q1 = P0 * b01
    Q2 = P0 - Q1
    return P0, P1, Q0, e, Q1, Q2


def lin_shih_no_deescalation(p):
    """P(MTD = i) for i = no dose, 1..K and E[n_j] (traditional 3+3)."""
    P0, P1, Q0, e, _, _ = _parts(p)
    k = len(p)
    pm = np.zeros(k + 1)
    pm[0] = 1 - e[0]
    for i in range(1, k):
        pm[i] = (1 - e[i]) * prod(e[:i])
    pm[k] = prod(e)
    # E n_j = sum_i N_{j|i} P(MTD = i), N_{j|i} as in Lin & Shih (section 2.1)
    en = np.zeros(k)
    for j in range(k):
        for i in range(k + 1):  # i = number of tiers passed (MTD index, 0 = none)
            if j < i:
                nji = (3 * P0[j] + 6 * Q0[j]) / e[j]
            elif j == i:
                nji = (3 * (1 - P0[j] - P1[j]) + 6 * (P1[j] - Q0[j])) / (1 - e[j]) if e[j] < 1 else 0.0
            else:
                nji = 0.0
            en[j] += nji * pm[i]
    return pm, en


def lin_shih_deescalation(p):
    """P(MTD = i) and E[n_j] for 3+3 with de-escalation (Lin & Shih section 2.2)."""
    P0, P1, Q0, e, Q1, Q2 = _parts(p)
    k = len(p)
    pm = np.zeros(k + 1)
    en = np.zeros(k)
    nb = lambda j: (3 * P0[j] + 6 * Q0[j]) / e[j]  # patients at a tier escalated past, first visit
    ns = lambda j: (3 * (1 - P0[j] - P1[j]) + 6 * (P1[j] - Q0[j])) / (1 - e[j])  # at the stopping tier
    # MTD = i (1-based tiers i < stopping tier s)
    for s in range(k):  # 0-based stopping tier
        for i in range(s + 1):  # i = 1-based MTD, 0 = none
            if i == 0:
                pis = prod(Q2[:s]) * (1 - e[s])
            else:
                pis = prod(e[: i - 1]) * (Q0[i - 1] + Q1[i - 1]) * prod(Q2[i:s]) * (1 - e[s])
            pm[i] += pis
            for j in range(k):
                if j < i - 1:
                    v = nb(j)
                elif j < s:
                    v = 6.0
                elif j == s:
                    v = ns(j)
                else:
                    v = 0.0
                en[j] += v * pis
    top = prod(e)
    pm[k] += top
    en += top * np.array([nb(j) for j in range(k)])
    return pm, en


SCENARIOS = [
    [0.05, 0.15, 0.35],
    [0.30, 0.45, 0.60],
    [0.02, 0.04, 0.06],
    [0.1, 0.2, 0.3, 0.4],
    [0.1, 0.2, 0.3, 0.4, 0.5],
    [0.01, 0.05, 0.1, 0.25, 0.4, 0.55],
    [0.2, 0.2, 0.5, 0.5, 0.6, 0.9],
]


@pytest.mark.parametrize("p", SCENARIOS, ids=lambda p: f"{len(p)}tiers-{p[0]}")
def test_exact_equals_lin_shih_without_deescalation(p):
    oc = doseesc.exact(doseesc.ThreePlusThree(len(p)), doseesc.Scenario(true_tox=p))
    pm, en = lin_shih_no_deescalation(p)
    np.testing.assert_allclose(oc.p_select, pm, rtol=0, atol=1e-12)
    np.testing.assert_allclose(oc.summary()["mean_n"].to_numpy()[1:], en, rtol=0, atol=1e-12)
    assert oc.p_no_dose == pytest.approx(1 - _parts(p)[3][0], abs=1e-12)
    assert oc.expected_n == pytest.approx(en.sum(), abs=1e-12)


@pytest.mark.parametrize("p", SCENARIOS, ids=lambda p: f"{len(p)}tiers-{p[0]}")
def test_exact_equals_lin_shih_with_deescalation(p):
    oc = doseesc.exact(doseesc.ThreePlusThree(len(p), deescalation=True), doseesc.Scenario(true_tox=p))
    pm, en = lin_shih_deescalation(p)
    assert pm.sum() == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(oc.p_select, pm, rtol=0, atol=1e-12)
    np.testing.assert_allclose(oc.summary()["mean_n"].to_numpy()[1:], en, rtol=0, atol=1e-12)


def test_published_rounded_values():
    """Wheeler, Sweeting & Mander 2016 (PLoS One 11:e0159026, AplusB) and Chow, Shao & Wang 2003 (Examples 11.6.1-2), as published (rounded)."""
    five = doseesc.Scenario(true_tox=[0.1, 0.2, 0.3, 0.4, 0.5])
    oc = doseesc.exact(doseesc.ThreePlusThree(5, deescalation=True), five)
    np.testing.assert_allclose(oc.p_select, [0.10, 0.28, 0.33, 0.20, 0.06, 0.02], atol=0.005)
    chow = doseesc.Scenario(true_tox=[0.01, 0.014, 0.025, 0.056, 0.177, 0.594, 0.963])
    assert doseesc.exact(doseesc.ThreePlusThree(7), chow).summary()["mean_n"].iloc[1] == pytest.approx(3.1, abs=0.05)
    assert doseesc.exact(doseesc.ThreePlusThree(7, deescalation=True), chow).summary()["mean_n"].iloc[-1] == \
        pytest.approx(0.2, abs=0.05)


def _brute_force(design, p):
    """Expand every per-patient DLT sequence through recommend(): a third, slow, independent route."""
    k = design.n_tiers
    out = np.zeros(k + 1)
    en = 0.0

    def walk(log, prob):
        nonlocal en
        rec = doseesc.recommend(design, log, warn=False)
        if rec.stop:
            out[rec.selected + 1] += prob
            en += prob * sum(rec.n)
            return
        t = rec.next_tier
        for outcome in itertools.product("NT", repeat=3):
            q = prod(p[t] if o == "T" else 1 - p[t] for o in outcome)
            walk((log + f" {t + 1}" + "".join(outcome)).strip(), prob * q)

    walk("", 1.0)
    return out, en


@pytest.mark.parametrize("deescalation", [False, True])
def test_exact_equals_patient_level_brute_force(deescalation):
    p = [0.1, 0.3, 0.5]
    design = doseesc.ThreePlusThree(3, deescalation=deescalation)
    oc = doseesc.exact(design, doseesc.Scenario(true_tox=p))
    pm, en = _brute_force(design, p)
    np.testing.assert_allclose(oc.p_select, pm, atol=1e-12)
    assert oc.expected_n == pytest.approx(en, abs=1e-12)
