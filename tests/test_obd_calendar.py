"""Calendar windows of designs that read responses (issue 18, item 1).

A design whose escalation reads responses (``decides_on_response``: BOIN12, BOIN-ET, TITE-BOIN12) waits for
the response window between cohorts; "3+3 + OBD pick" escalates on DLTs only, so its cohorts wait for the DLT
window alone and only its final choice waits for the patients' response follow-up.
"""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.calendar import DAYS_PER_MONTH, Calendar

# one arrival a day (0, 1, 2, ...), no manufacturing, staggering or review: DLT window 28, response window 90
CAL = Calendar(accrual="fixed", accrual_rate=DAYS_PER_MONTH, dlt_window_days=28, eff_window_days=90,
               tox_time="uniform", eff_time="uniform")
# no DLT at tiers 1 and 2, always at tier 3: the 3+3 path is the same in every trial
TRUTH = doseesc.Scenario(true_tox=[0.0, 0.0, 1.0], true_eff=[0.3, 0.5, 0.6], target=0.25)


def _run(design, n=6):
    r = doseesc.simulate(design, TRUTH, n, rng=3, calendar=CAL)
    return r, {k: v[0] for k, v in r.extra.items()}


def test_response_tags():
    three = doseesc.ThreePlusThree(3)
    assert not three.decides_on_response and not doseesc.BOIN(0.25, 3, max_n=12).decides_on_response
    assert doseesc.BOIN12(3, phi_t=0.25, max_n=9).decides_on_response
    assert doseesc.BOINET.decides_on_response and doseesc.TITEBOIN12.decides_on_response   # class-level tags
    assert not doseesc.ThreePlusThree.decides_on_response
    pick = doseesc.OBDPick(three)
    assert pick.uses_efficacy and not pick.decides_on_response       # responses drawn, read only at the end
    assert not doseesc.OBDPick(doseesc.BOIN(0.25, 3, max_n=12)).decides_on_response


def test_obd_pick_escalates_on_the_dlt_window_and_selects_after_the_response_window():
    """3+3 over 3 tiers: cohort 1 (tier 1, 0/3) arrives 0, 1, 2 and is infused on arrival; its DLT window
    ends at 2 + 28 = 30. Cohort 2 (tier 2, 0/3; arrived 3, 4, 5, queued) is infused at 30, complete at 58;
    cohort 3 (tier 3, 3/3) infused at 58, complete at 86: the 3+3 stops and names tier 2, on day 86 (its
    decision and its end). Waiting: cohort 2 waited 27 + 26 + 25 = 78, cohort 3 (arrived 6, 7, 8 and enrolled
    at 58) 52 + 51 + 50 = 153, and the patients queued when enrolment ends at 86 (arrived 9, ..., 85) waited
    77 + 76 + ... + 1 = 3003: 3234 patient-days.

    "3+3 + OBD pick" (expansion 0): the same infusions (the MTD decided on day 86 as well) and the same
    waiting; the OBD is chosen when the last patients' response window ends: 58 + 90 = 148 = 86 + (90 - 28),
    its decision and its end. (Before issue 18 every cohort waited 90 days: 0..2, 92, 182, ending at 272.)
    """
    plain, ex_plain = _run(doseesc.ThreePlusThree(3))
    pick, ex_pick = _run(doseesc.OBDPick(doseesc.ThreePlusThree(3)))
    assert np.all(plain.total_n == 9) and np.all(plain.selected == 1)
    inf = [0, 1, 2, 30, 30, 30, 58, 58, 58]
    np.testing.assert_allclose(plain.patients["infusion_days"][:, :9], np.tile(inf, (6, 1)), atol=1e-9)
    np.testing.assert_array_equal(pick.patients["infusion_days"], plain.patients["infusion_days"])
    mtd_day = np.nanmax(pick.patients["infusion_days"], axis=1) + 28          # the base's last DLT window
    np.testing.assert_allclose(mtd_day, ex_plain["time_to_decision_days"], atol=0)
    np.testing.assert_allclose(ex_plain["time_to_decision_days"], 86, atol=1e-9)
    np.testing.assert_allclose(ex_plain["duration_days"], 86, atol=1e-9)
    np.testing.assert_allclose(ex_pick["time_to_decision_days"], 148, atol=1e-9)
    np.testing.assert_allclose(ex_pick["duration_days"], 148, atol=1e-9)
    assert np.all(ex_pick["duration_days"] - ex_plain["duration_days"] <= (90 - 28) + 1e-9)
    np.testing.assert_allclose(ex_plain["wait_days"], 3234, atol=1e-9)
    np.testing.assert_allclose(ex_pick["wait_days"], 3234, atol=1e-9)
    np.testing.assert_allclose(ex_pick["lost_waiting"], 0)


def test_obd_pick_expansion_waits_for_dlts_and_the_pick_for_responses():
    """Expansion 3: after the base names tier 2 on day 86, 3 patients at tier 2 (infused 86, DLT window ends
    114), then 3 at tier 1 (infused 114); the pick waits for their response window: 114 + 90 = 204."""
    r, ex = _run(doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=3))
    assert np.all(r.total_n == 15)
    inf = [0, 1, 2, 30, 30, 30, 58, 58, 58, 86, 86, 86, 114, 114, 114]
    np.testing.assert_allclose(r.patients["infusion_days"][:, :15], np.tile(inf, (6, 1)), atol=1e-9)
    np.testing.assert_allclose(ex["time_to_decision_days"], 204, atol=1e-9)
    np.testing.assert_allclose(ex["duration_days"], 204, atol=1e-9)


def test_a_design_that_decides_on_response_waits_for_its_window():
    """BOIN12 (cohorts of 3, max_n 9) reads responses to escalate: cohort 1 is infused on arrival at 0, 1, 2;
    cohort 2 only when cohort 1's response window ends, 2 + 90 = 92; cohort 3 at 92 + 90 = 182; the trial
    decides and ends at 182 + 90 = 272 (whatever tiers it visits: the timing depends on the cohorts only)."""
    r, ex = _run(doseesc.BOIN12(3, phi_t=0.25, max_n=9))
    assert np.all(r.total_n == 9)
    inf = [0, 1, 2, 92, 92, 92, 182, 182, 182]
    np.testing.assert_allclose(r.patients["infusion_days"][:, :9], np.tile(inf, (6, 1)), atol=1e-9)
    np.testing.assert_allclose(ex["time_to_decision_days"], 272, atol=1e-9)
    np.testing.assert_allclose(ex["duration_days"], 272, atol=1e-9)


@pytest.mark.parametrize("expansion", [0, 3])
def test_obd_pick_selections_do_not_depend_on_the_calendar(expansion):
    """The pick's choices are those of the untimed engine (same seed): only the clock changed."""
    design = doseesc.OBDPick(doseesc.ThreePlusThree(3), expansion=expansion)
    truth = doseesc.Scenario(true_tox=[0.05, 0.2, 0.4], true_eff=[0.2, 0.4, 0.5], target=0.25)
    a = doseesc.simulate(design, truth, 400, rng=5)
    b = doseesc.simulate(design, truth, 400, rng=5, calendar=CAL)
    assert np.array_equal(a.selected, b.selected) and np.array_equal(a.n, b.n)
    # the decision waits for the last response window: never earlier than the end of the last DLT window
    last = np.nanmax(b.patients["infusion_days"], axis=1)
    assert np.all(b.extra["time_to_decision_days"][0] >= last + 90 - 1e-9)
