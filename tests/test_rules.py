"""Rule slots: fixed order whatever the order they are set in, hand-worked effects, records of firing."""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.state import Rule, StopReason

TRUTH = doseesc.Scenario(true_tox=[0.2, 0.3, 0.45, 0.6], target=0.25)


def test_order_of_helpers_does_not_matter():
    base = doseesc.BOIN(0.25, 4, max_n=24)
    a = base.stop_when_n_at_tier(9).safety_stop(0.9).cap_per_tier(12).no_skip()
    b = base.cap_per_tier(12).no_skip().safety_stop(0.9).stop_when_n_at_tier(9)
    assert a == b
    ra, rb = doseesc.simulate(a, TRUTH, 2000, rng=1), doseesc.simulate(b, TRUTH, 2000, rng=1)
    np.testing.assert_array_equal(ra.selected, rb.selected)
    np.testing.assert_array_equal(ra.fired, rb.fired)


def _beta_sf_integer(x, a, b):
    """P(X > x) for X ~ Beta(a, b) with integer a, b: the binomial-sum identity."""
    from math import comb
    m = a + b - 1
    return sum(comb(m, j) * x ** j * (1 - x) ** (m - j) for j in range(a))


def test_safety_stop_by_hand():
    d = doseesc.BOIN(0.25, 3, max_n=18).safety_stop(0.8)
    # 2 DLTs of 3 at the lowest tier: Beta(3, 2), P(p > 0.25) = 0.9492 > 0.8: stop, no dose
    assert _beta_sf_integer(0.25, 3, 2) == pytest.approx(0.94921875)
    rec = doseesc.recommend(d, "1NTT")
    assert rec.stop and rec.reason == StopReason.SAFETY and rec.selected == -1
    # 1 of 3: Beta(2, 3), P = 0.7383 < 0.8: go on
    assert _beta_sf_integer(0.25, 2, 3) == pytest.approx(0.73828125)
    assert not doseesc.recommend(d, "1NNT").stop
    # the rule needs safety_min_n patients at the lowest tier
    d2 = doseesc.BOIN(0.25, 3, max_n=18, cohort_size=1).safety_stop(0.5, min_n=3)
    assert not doseesc.recommend(d2, "1T").stop


def test_safety_stop_needs_a_target():
    with pytest.raises(doseesc.DesignError, match="needs a target"):
        doseesc.ThreePlusThree(3).safety_stop(0.9)


def test_stop_when_n_at_recommended_tier():
    d = doseesc.BOIN(0.30, 3, max_n=30).stop_when_n_at_tier(6)
    rec = doseesc.recommend(d, "1NNN 2NTN 2NNT")   # 2/6 at tier 2: stay; tier 2 has 6 -> stop
    assert rec.stop and rec.reason == StopReason.N_AT_TIER and rec.selected == 1
    rec = doseesc.recommend(d, "1NNN 2NTN 2NNN")   # 1/6: escalate to tier 3 (0 patients): go on
    assert not rec.stop and rec.next_tier == 2


def test_tier_cap_redirects_downwards_or_stops():
    d = doseesc.BOIN(0.30, 3, max_n=30).cap_per_tier(6)
    # 0/3, then 1/3 and 1/6 at tier 2 ... escalate to 3; there 1/3: stay, then full at 6
    rec = doseesc.recommend(d, "1NNN 2NTN 2NNN 3NTN 3NNT")  # 2/6 at top: stay, but tier 3 is full
    assert not rec.stop and rec.next_tier == 0               # tiers 2 and 3 full: highest open is 1
    rec = doseesc.recommend(d, "1NTN 1NNN")                   # 1/6: escalate to tier 2, which is open
    assert rec.next_tier == 1 and not rec.stop
    full = doseesc.BOIN(0.30, 1, max_n=30).cap_per_tier(6)
    rec = doseesc.recommend(full, "1NTN 1NNN")                # single tier, full: stop
    assert rec.stop and rec.reason == StopReason.TIER_CAP and rec.selected == 0


def test_no_skip_holds_back_a_design_that_would_skip():
    """A design whose own rule jumps two tiers is held to one tier above the highest tried."""
    import dataclasses

    from doseesc.state import Decision

    @dataclasses.dataclass(frozen=True)
    class Jumper(doseesc.ThreePlusThree):
        steps_by_one = False

        def decide(self, state):
            dec = super().decide(state)
            return Decision(next=np.where(dec.stop, -1, np.minimum(dec.next + 1, self.n_tiers - 1)),
                            stop=dec.stop, reason=dec.reason)

    j = Jumper(4)
    assert doseesc.recommend(j, "1NNN", warn=False).next_tier == 1      # wanted tier 3; held at 2
    free = j.allow_skip()
    assert doseesc.recommend(free, "1NNN", warn=False).next_tier == 2
    r = doseesc.simulate(j, TRUTH, 500, rng=2)
    started_clean = r.trials()["log"].str.startswith("1NNN")  # 0/3: the jumper wants tier 3, held at 2
    assert started_clean.any()
    assert np.all(r.fired[started_clean.to_numpy()] & Rule.NO_SKIP)
    tried = r.n > 0
    assert np.all(tried[:, :-1] | ~tried[:, 1:])


def test_every_firing_is_recorded_and_tabulated():
    d = doseesc.BOIN(0.25, 4, max_n=24).stop_when_n_at_tier(9).safety_stop(0.9)
    r = doseesc.simulate(d, TRUTH, 4000, rng=3)
    rep = r.stop_report()
    reasons = rep[rep["kind"] == "stop reason"]
    assert abs(reasons["probability"].sum() - 1) < 1e-12
    fired = rep[rep["kind"] == "rule fired"]
    assert {"safety", "n_at_tier", "elimination"} <= set(fired.index)
    # a trial stopped for safety has the SAFETY bit and selects no dose
    safety = r.reason == StopReason.SAFETY
    assert safety.any() and np.all(r.fired[safety] & Rule.SAFETY) and np.all(r.selected[safety] == -1)
    # the bit frequencies equal the table
    assert fired.loc["safety", "probability"] == pytest.approx(np.mean((r.fired & Rule.SAFETY) > 0))


@pytest.mark.parametrize("kwargs,match", [
    ({"stop_n_at_tier": 0}, "stop_n_at_tier = 0"),
    ({"tier_cap": 1.5}, "tier_cap = 1.5"),
    ({"safety_cutoff": 1.2}, "safety_cutoff = 1.2"),
    ({"forbid_skip": "no"}, "forbid_skip = 'no'"),
])
def test_slot_errors(kwargs, match):
    with pytest.raises(doseesc.DesignError, match=match):
        doseesc.BOIN(0.25, 3, max_n=18, **kwargs)
