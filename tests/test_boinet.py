"""BOIN-ET: boundaries of R boinet 1.5.0, hand-worked decisions, exact vs simulation."""

from __future__ import annotations

import numpy as np
import pytest

import doseesc

# boinet 1.5.0 gridoptim() boundaries (lambda_1, lambda_2, eta_1) for (phi, delta), defaults otherwise
# (computed by running the package; docs/notes/boin12-boinet.md).
BOUNDS = [(.30, .60, .14, .35, .48), (.30, .50, .13, .35, .39), (.30, .40, .13, .35, .31),
          (.35, .25, .155, .41, .19), (.33, .70, .153, .39, .56), (.25, .30, .115, .29, .23),
          (.20, .40, .09, .23, .31)]


@pytest.mark.parametrize("phi,delta,l1,l2,e1", BOUNDS)
def test_boundaries_equal_package(phi, delta, l1, l2, e1):
    assert doseesc.boinet_boundaries(phi, delta) == pytest.approx((l1, l2, e1), abs=1e-9)


D = doseesc.BOINET(4, max_n=24)  # lambda_1 0.14, lambda_2 0.35, eta_1 0.48


@pytest.mark.parametrize("log,next_tier", [
    ("1NNN", 2),            # pT 0 <= .14, pE 0 <= .48: escalate
    ("1EEN", 1),            # pE .67 > .48, pT 0 < .35: stay
    ("1TTN", 1),            # pT .67 >= .35 at the lowest tier: stays there (admissible)
    ("1NNN 2TTN", 1),       # de-escalate
    ("1NNN 2TNN", 3),       # grey zone (.14 < .33 < .35, pE 0), tier 3 untried: escalate
    ("1ENN 2TNN 3TTT 2NNN", 1),  # grey zone at tier 2, tier 3 tried: best response rate among 1..3 is tier 1 (1/3)
])
def test_decisions_by_hand(log, next_tier):
    rec = doseesc.recommend(D, log, warn=False)
    assert not rec.stop and rec.next_tier + 1 == next_tier


def test_inadmissible_tiers_and_stop():
    # 3/3 DLTs: P(pT > .3 | Beta(4, 1)) = 1 - .3^4 = .9919 > .95: tier 1 inadmissible; all tiers above untried stay
    # admissible, but de-escalating from the lowest tier to an inadmissible one stops the trial
    rec = doseesc.recommend(D, "1TTT")
    assert rec.stop and rec.selected == -1


@pytest.mark.parametrize("scenario", [
    doseesc.Scenario(true_tox=[0.05, 0.15, 0.40], true_eff=[0.2, 0.6, 0.65], name="plateau"),
    doseesc.Scenario(true_tox=[0.5, 0.6, 0.7], true_eff=[0.3, 0.4, 0.5], name="toxic"),
], ids=lambda s: s.name)
def test_exact_and_simulation_agree(scenario):
    d = doseesc.BOINET(3, max_n=15)
    ex = doseesc.exact(d, scenario)
    mc = doseesc.simulate(d, scenario, 20000, rng=13)
    ps = np.clip(ex.p_select, 0, 1)
    assert np.all(np.abs(mc.p_select - ps) <= 4 * np.sqrt(ps * (1 - ps) / 20000) + 1e-15)
    assert abs(mc.p_select_obd - ex.p_select_obd) <= 4 * np.sqrt(ex.p_select_obd * (1 - ex.p_select_obd) / 20000)


def test_boinet_errors():
    with pytest.raises(doseesc.DesignError, match="phi1 < phi < phi2"):
        doseesc.BOINET(3, max_n=12, phi=0.3, phi1=0.35)
    with pytest.raises(doseesc.DesignError, match="delta1 < delta"):
        doseesc.BOINET(3, max_n=12, delta=0.4, delta1=0.5)
