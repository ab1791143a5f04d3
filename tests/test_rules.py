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


# -- stopping rules as values, constraints, rule algebra (issue 16, item 4) ---------------------------

import dataclasses  # noqa: E402

from doseesc.designs.rules import (AllOf, AnyOf, StopAtN, StopWhenNAtTier, StopWhenTooToxic,  # noqa: E402
                                   StopWhenToxCICovered, all_of, any_of, rule_from_dict)
from doseesc.state import TrialState  # noqa: E402


def _beta_cdf_integer(x, a, b):
    """P(X <= x) for X ~ Beta(a, b) with integer a, b."""
    return 1 - _beta_sf_integer(x, a, b)


def _beta_quantile(q, a, b):
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _beta_cdf_integer(mid, a, b) < q else (lo, mid)
    return (lo + hi) / 2


def _step(design, n, y, current):
    return design.step(TrialState.from_counts([n], [y], [current]))


def test_stop_when_too_toxic_at_the_lowest_tier():
    d = doseesc.BOIN(0.25, 3, max_n=18).stop_when_too_toxic("lowest", threshold=0.3, confidence=0.8)
    # 2 DLTs of 3 at tier 1: Beta(3, 2), P(p > 0.3) = 0.7^4 + 4(0.3)(0.7^3) + 6(0.09)(0.49) = 0.9163 >= 0.8
    assert _beta_sf_integer(0.3, 3, 2) == pytest.approx(0.9163)
    rec = doseesc.recommend(d, "1NTT")
    assert rec.stop and rec.reason == StopReason.TOO_TOXIC and rec.selected == -1
    # BOIN alone stays at tier 1 (2/3 says de-escalate; P(p > 0.25) = 0.949 < 0.95 does not eliminate)
    assert not doseesc.recommend(doseesc.BOIN(0.25, 3, max_n=18), "1NTT").stop
    # 1 of 3: Beta(2, 3), P(p > 0.3) = 0.7^4 + 4(0.3)(0.7^3) = 0.6517 < 0.8: go on
    assert _beta_sf_integer(0.3, 2, 3) == pytest.approx(0.6517)
    assert not doseesc.recommend(d, "1NNT").stop
    # min_n: 1 DLT in 1 patient, Beta(2, 1): P(p > 0.3) = 1 - 0.09 = 0.91, but min_n = 3 holds it back
    one = doseesc.BOIN(0.25, 3, max_n=18, cohort_size=1)
    assert doseesc.recommend(one.stop_when_too_toxic(threshold=0.3, confidence=0.8), "1T").stop
    assert not doseesc.recommend(one.stop_when_too_toxic(threshold=0.3, confidence=0.8, min_n=3), "1T").stop


def test_stop_when_too_toxic_at_the_recommended_any_or_a_named_tier():
    log = "1NNN 2NNN 3TTN"   # BOIN(0.3): 2/3 at tier 3 > 0.359: de-escalate to tier 2 (0/3)
    base = doseesc.BOIN(0.3, 3, max_n=30)
    assert doseesc.recommend(base, log).next_tier == 1
    # tier 3: Beta(3, 2), P(p > 0.3) = 0.9163 >= 0.8; tier 2: Beta(1, 4), P(p > 0.3) = 0.7^4 = 0.2401
    expect = {"recommended": False, "any": True, 3: True, 2: False}
    for tier, stops in expect.items():
        rec = doseesc.recommend(base.stop_when_too_toxic(tier, threshold=0.3, confidence=0.8), log)
        assert rec.stop is stops, tier
        if stops:
            assert rec.reason == StopReason.TOO_TOXIC and rec.selected == -1


@dataclasses.dataclass(frozen=True)
class _DownBOIN(doseesc.BOIN):
    """BOIN that reports its own de-escalation wish (the change asked of IntervalDesign.decide)."""

    def decide(self, state):
        dec = super().decide(state)
        rows = np.arange(state.n_trials)
        dec.down = self.grid[state.n[rows, state.current], state.y[rows, state.current]] == 2
        return dec


def test_stop_when_deescalation_impossible():
    d = _DownBOIN(0.25, 3, max_n=18).stop_when_deescalation_impossible()
    # BOIN(0.25) de-escalates when the DLT rate > 0.298: 1/3 = 0.333 at the lowest tier -> stop, no dose
    rec = doseesc.recommend(d, "1NNT", warn=False)
    assert rec.stop and rec.reason == StopReason.DEESCALATION_IMPOSSIBLE and rec.selected == -1
    assert not doseesc.recommend(d, "1NNN", warn=False).stop       # 0/3: escalate
    # 1/3 at tier 2: de-escalate to tier 1, which is possible
    assert doseesc.recommend(d, "1NNN 2NNT", warn=False).next_tier == 0
    dec = _step(d, [3, 0, 0], [1, 0, 0], 0)
    assert dec.fired[0] & Rule.DEESCALATION_IMPOSSIBLE
    # BOIN itself (every interval design) reports its wish to de-escalate, so the rule fires there too
    rec = doseesc.recommend(doseesc.BOIN(0.25, 3, max_n=18).stop_when_deescalation_impossible(), "1NNT")
    assert rec.stop and rec.reason == StopReason.DEESCALATION_IMPOSSIBLE and rec.selected == -1


def test_stop_at_n_and_n_at_any_or_a_named_tier():
    base = doseesc.BOIN(0.3, 3, max_n=30)
    rec = doseesc.recommend(base.stop_at_n(9), "1NNN 2NNN 3NNN")      # 9 in all
    assert rec.stop and rec.reason == StopReason.N_IN_TOTAL and rec.selected == 2
    assert not doseesc.recommend(base.stop_at_n(9), "1NNN 2NNN").stop
    log = "1NTN 1NNN"   # 1/6 at tier 1 < 0.236: escalate to tier 2 (no patients)
    assert doseesc.recommend(base, log).next_tier == 1
    for tier, stops in {"recommended": False, "any": True, 1: True, 2: False}.items():
        rec = doseesc.recommend(base.stop_when_n_at_dose(6, tier), log)
        assert rec.stop is stops, tier
        if stops:
            assert rec.reason == StopReason.N_AT_NAMED_TIER and rec.selected == 0
    rec = doseesc.recommend(base.stop_when_n_at_dose(6), "1NTN 1NTN")  # 2/6 = 0.333: stay at tier 1, has 6
    assert rec.stop and rec.reason == StopReason.N_AT_TIER


def test_stop_when_tox_ci_covered():
    # 1/3 at tier 1, BOIN(0.3) stays (0.236 < 0.333 <= 0.359); Beta(2, 3): 5% and 95% quantiles
    lo, hi = _beta_quantile(0.05, 2, 3), _beta_quantile(0.95, 2, 3)
    assert (lo, hi) == (pytest.approx(0.0976, abs=1e-4), pytest.approx(0.7514, abs=1e-4))   # width 0.6538
    base = doseesc.BOIN(0.3, 3, max_n=30)
    rec = doseesc.recommend(base.stop_when_tox_ci_covered(0.66), "1NTN")
    assert rec.stop and rec.reason == StopReason.TOX_CI_COVERED and rec.selected == 0
    assert not doseesc.recommend(base.stop_when_tox_ci_covered(0.65), "1NTN").stop
    # a tier without patients is never covered: 0/3 escalates to an empty tier 2
    assert not doseesc.recommend(base.stop_when_tox_ci_covered(0.99), "1NNN").stop


def test_rule_algebra_and_or():
    # "stop when 6 at the recommended tier AND the CI is narrower than 0.55, OR 9 in all"
    rule = (StopWhenNAtTier(6) & StopWhenToxCICovered(0.55)) | StopAtN(9)
    assert rule == any_of(StopAtN(9), all_of(StopWhenToxCICovered(0.55), StopWhenNAtTier(6)))   # order-free
    assert rule == rule_from_dict([{"all_of": [{"rule": "n_at_tier", "n": 6},
                                               {"rule": "tox_ci_covered", "width": 0.55}]},
                                   {"rule": "n_in_total", "n": 9}])
    d = doseesc.BOIN(0.3, 3, max_n=30).stop_when(rule)
    assert isinstance(d.stopping, AnyOf) and isinstance(d.stopping.rules[1], AllOf)
    # 2/6 at tier 1: stay; 6 there, Beta(3, 5) 90% interval 0.1288 to 0.6587, width 0.530 < 0.55: both hold
    assert _beta_quantile(0.95, 3, 5) - _beta_quantile(0.05, 3, 5) == pytest.approx(0.5300, abs=1e-4)
    dec = _step(d, [6, 0, 0], [2, 0, 0], 0)
    assert dec.stop[0] and dec.reason[0] == StopReason.N_AT_TIER
    assert dec.fired[0] & Rule.N_AT_TIER and dec.fired[0] & Rule.TOX_CI_COVERED
    # width 0.5: only one half of the AND holds: go on, and no rule recorded as fired
    d2 = doseesc.BOIN(0.3, 3, max_n=30).stop_when((StopWhenNAtTier(6) & StopWhenToxCICovered(0.5)) | StopAtN(9))
    dec = _step(d2, [6, 0, 0], [2, 0, 0], 0)
    assert not dec.stop[0] and dec.fired[0] == 0
    # 9 in all: the OR's other branch
    dec = _step(d2, [9, 0, 0], [3, 0, 0], 0)
    assert dec.stop[0] and dec.reason[0] == StopReason.N_IN_TOTAL


def test_demand_n_at_dose_vetoes_sample_size_stops_only():
    base = doseesc.BOIN(0.3, 3, max_n=30)
    d = base.stop_at_n(9).demand_n_at_dose(6)
    # 0/3 at tier 3 (the top): stay there; 9 in all, but tier 3 has 3 < 6 patients: the stop is vetoed
    rec = doseesc.recommend(d, "1NNN 2NNN 3NNN")
    assert not rec.stop and rec.next_tier == 2
    assert _step(d, [3, 3, 3], [0, 0, 0], 2).fired[0] & Rule.DEMAND_N
    rec = doseesc.recommend(d, "1NNN 2NNN 3NNN 3NNN")                 # tier 3 has 6: the stop stands
    assert rec.stop and rec.reason == StopReason.N_IN_TOTAL
    # the legacy stop_n_at_tier is vetoed too ('any': until some tier has 9)
    legacy = base.stop_when_n_at_tier(6).demand_n_at_dose(9, "any")
    assert not doseesc.recommend(legacy, "1NTN 1NTN").stop
    assert doseesc.recommend(base.stop_when_n_at_tier(6), "1NTN 1NTN").stop
    # never vetoed: safety stops, the maximum sample size, the design's own stop
    safe = base.stop_when_too_toxic(threshold=0.3, confidence=0.8).demand_n_at_dose(12, "any")
    assert doseesc.recommend(safe, "1NTT").reason == StopReason.TOO_TOXIC
    assert doseesc.recommend(base.safety_stop(0.8).demand_n_at_dose(12), "1NTT").reason == StopReason.SAFETY
    small = doseesc.BOIN(0.3, 3, max_n=9).demand_n_at_dose(12)
    assert doseesc.recommend(small, "1NNN 2NNN 3NNN").reason == StopReason.MAX_N
    own = doseesc.BOIN(0.3, 3, max_n=30, n_earlystop=6).demand_n_at_dose(12)
    assert doseesc.recommend(own, "1NTN 1NTN").reason == StopReason.N_AT_TIER


@dataclasses.dataclass(frozen=True)
class _Dropper(doseesc.BOIN):
    """BOIN that de-escalates two tiers at a time."""

    def decide(self, state):
        dec = super().decide(state)
        dec.next = np.where(~dec.stop & (dec.next < state.current), np.maximum(state.current - 2, 0),
                            dec.next).astype(np.int32)
        return dec


def test_no_skipping_when_deescalating():
    d = _Dropper(0.3, 4, max_n=30)
    log = "1NNN 2NNN 3NNN 4TTT"   # 3/3 at tier 4: de-escalate; the dropper goes to tier 2
    assert doseesc.recommend(d, log, warn=False).next_tier == 1
    held = d.dont_skip_doses(when_deescalating=True)
    assert held.forbid_skip and held.forbid_skip_down
    assert doseesc.recommend(held, log, warn=False).next_tier == 2
    assert _step(held, [3, 3, 3, 3], [0, 0, 0, 3], 3).fired[0] & Rule.NO_SKIP_DOWN
    assert not d.dont_skip_doses(when_escalating=False).forbid_skip


def test_rescue_tier_below_the_first():
    sk = tuple(doseesc.crm_skeleton(0.25, 0.05, 2, 4))
    crm = doseesc.CRM(sk, 0.25, max_n=18, startup=(2, 3, 4)).stop_when_too_toxic("any", 0.3, 0.8)
    # 3/3 at tier 2 (the first): Beta(4, 1), P(p > 0.3) = 1 - 0.3^4 = 0.9919 >= 0.8: too toxic
    assert doseesc.recommend(crm, "2TTT", warn=False).reason == StopReason.TOO_TOXIC
    d = crm.try_rescue_dose(1, 3)
    rec = doseesc.recommend(d, "2TTT", warn=False)
    assert not rec.stop and rec.next_tier == 0                        # tier 1 untried: rescue it
    assert _step(d, [0, 3, 0, 0], [0, 3, 0, 0], 1).fired[0] & Rule.RESCUE
    rec = doseesc.recommend(d, "2TTT 1NNN", warn=False)               # tier 1 has 3: the stop stands
    assert rec.stop and rec.reason == StopReason.TOO_TOXIC and rec.selected == -1


def test_new_slots_in_any_order_give_identical_designs_and_results():
    base = doseesc.BOIN(0.25, 4, max_n=30)
    a = (base.stop_when_too_toxic("any", 0.4, 0.85).stop_at_n(24).stop_when_n_at_dose(9).demand_n_at_dose(6)
         .stop_when_tox_ci_covered(0.45).dont_skip_doses(when_deescalating=True).try_rescue_dose(1, 6)
         .stop_when_deescalation_impossible().safety_stop(0.9).cap_per_tier(12))
    b = (base.cap_per_tier(12).try_rescue_dose(1, 6).stop_when_deescalation_impossible()
         .stop_when_tox_ci_covered(0.45).safety_stop(0.9).demand_n_at_dose(6).stop_when_n_at_dose(9)
         .dont_skip_doses(when_deescalating=True).stop_at_n(24).stop_when_too_toxic("any", 0.4, 0.85))
    assert a == b and a.to_dict() == b.to_dict() and a.describe() == b.describe()
    ra, rb = doseesc.simulate(a, TRUTH, 2000, rng=1), doseesc.simulate(b, TRUTH, 2000, rng=1)
    for key in ("selected", "fired", "reason", "n"):
        np.testing.assert_array_equal(getattr(ra, key), getattr(rb, key))
    # the file form round-trips
    assert doseesc.design_from_dict(a.to_dict()) == a


def test_new_rules_in_describe_and_report_list():
    d = (doseesc.BOIN(0.25, 4, max_n=30).stop_when_too_toxic("recommended", 0.4, 0.85).stop_at_n(24)
         .stop_when_n_at_dose(9, 2).stop_when_tox_ci_covered(0.45).stop_when_deescalation_impossible()
         .demand_n_at_dose(6, "any").dont_skip_doses(when_deescalating=True).try_rescue_dose(1, 6))
    text = d.describe()
    for words in ("P(DLT rate at the recommended tier > 0.4) >= 0.85", "stop at 24 patients in all",
                  "stop when tier 2 has 9 patients", "90% credible interval of the DLT rate at the recommended "
                  "tier is narrower than 0.45", "de-escalate at the lowest tier", "until any tier has 6 patients",
                  "no skipping when de-escalating", "treat tier 1 until it has 6 patients"):
        assert words in text and words in d.rules_text(), words
    from doseesc.report.committee import _split_rules
    assert "stop at 24 patients in all" in _split_rules(d)[1]


def test_new_stop_reasons_in_stop_report():
    d = doseesc.BOIN(0.25, 4, max_n=30).stop_when_too_toxic("any", 0.45, 0.8).stop_at_n(21) \
        .stop_when_tox_ci_covered(0.45).demand_n_at_dose(6)
    r = doseesc.simulate(d, TRUTH, 3000, rng=5)
    rep = r.stop_report()
    reasons = rep[rep["kind"] == "stop reason"]
    assert {"too_toxic", "n_in_total", "tox_ci_covered"} <= set(reasons.index)
    assert abs(reasons["probability"].sum() - 1) < 1e-12
    assert np.all(r.selected[r.reason == StopReason.TOO_TOXIC] == -1)
    fired = rep[rep["kind"] == "rule fired"]
    assert "demand_n" in fired.index
    # the CI rule stops only where the recommended tier has data, and never before 6 there (vetoed)
    ci = r.reason == StopReason.TOX_CI_COVERED
    assert ci.any() and np.all(r.n[ci].max(axis=1) >= 6)


@pytest.mark.parametrize("kwargs,match", [
    ({"stopping": [{"rule": "n_at_dose", "n": 12}]}, "stopping\\[0\\]: rule = 'n_at_dose' is not a stopping rule"),
    ({"stopping": {"rule": "n_at_tier", "n": 0}}, "n_at_tier: n = 0"),
    ({"stopping": {"rule": "n_at_tier", "n": 6, "tier": "top"}}, "tier = 'top'"),
    ({"stopping": {"rule": "n_at_tier", "n": 6, "tier": 7}}, "tier = 7 but the design has 3 tiers"),
    ({"stopping": {"rule": "too_toxic", "confidence": 1.5}}, "confidence = 1.5"),
    ({"stopping": {"rule": "too_toxic", "cutoff": 0.5}}, "unknown option 'cutoff'"),
    ({"stopping": {"all_of": []}}, "all_of takes a non-empty list"),
    ({"stopping": 12}, "stopping = 12"),
    ({"demand": {"n": 6, "tier": "lowest"}}, "demand: tier = 'lowest'"),
    ({"demand": {"n": 6, "tier": 4}}, "demand: tier = 4 but the design has 3 tiers"),
    ({"demand": 6}, "demand = 6 must be a table"),
    ({"rescue": {"tier": 5}}, "rescue: tier = 5 but the design has 3 tiers"),
    ({"forbid_skip_down": "yes"}, "forbid_skip_down = 'yes'"),
])
def test_new_slot_errors(kwargs, match):
    with pytest.raises(doseesc.DesignError, match=match):
        doseesc.BOIN(0.25, 3, max_n=18, **kwargs)


def test_rules_in_a_protocol_file(tmp_path):
    from doseesc.protocol import load_protocol
    f = tmp_path / "p.toml"
    f.write_text('''[protocol]
target = 0.25
max_n = 36
[tiers]
doses = [1, 2, 3]
[[design]]
name = "BOIN + rules"
type = "BOIN"
stopping = [{all_of = [{rule = "n_at_tier", n = 12}, {rule = "tox_ci_covered", width = 0.3}]},
            {rule = "n_in_total", n = 30}, {rule = "too_toxic", tier = "lowest", threshold = 0.35, confidence = 0.9}]
demand = {n = 6, tier = "any"}
rescue = {tier = 1, n = 3}
forbid_skip_down = true
[[scenario]]
name = "a"
true_tox = [0.1, 0.25, 0.4]
''')
    d = load_protocol(f).design("BOIN + rules")
    assert d.stopping == (StopWhenNAtTier(12) & StopWhenToxCICovered(0.3)) | StopAtN(30) | StopWhenTooToxic()
    assert d.forbid_skip_down and d.demand.n == 6 and d.rescue.tier == 1
    assert doseesc.design_from_dict(d.to_dict()) == d
    f.write_text(f.read_text().replace('rule = "n_in_total"', 'rule = "total"'))
    with pytest.raises(doseesc.DoseescError, match="BOIN \\+ rules.*stopping\\[1\\]: rule = 'total'"):
        load_protocol(f)
