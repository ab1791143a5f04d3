"""Calendar model and timed Monte Carlo engine (issue 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import doseesc
from doseesc.calendar import DAYS_PER_MONTH, Calendar, calendar_from_toml
from doseesc.errors import DoseescError, ScenarioError

K = 4
TRUTH = doseesc.Scenario(true_tox=[0.05, 0.15, 0.30, 0.50], target=0.25)
TRUTH_EFF = doseesc.Scenario(true_tox=[0.05, 0.15, 0.30, 0.50], true_eff=[0.2, 0.4, 0.5, 0.55], association=1.5,
                             target=0.25)
DESIGNS = [
    doseesc.ThreePlusThree(K),
    doseesc.BOIN(0.25, K, max_n=24),
    doseesc.CRM(tuple(doseesc.crm_skeleton(0.25, 0.05, 2, K)), 0.25, max_n=18),
    doseesc.BOIN12(K, phi_t=0.25, max_n=24),
]
INSTANT = Calendar(accrual_rate=4, accrual="poisson", dlt_window_days=28)   # no delays, no staggering
BUSY = Calendar(accrual_rate=3, vein_to_vein_days=25, vein_to_vein_sd=6, dlt_window_days=28, sentinel_days=14,
                min_gap_days=3, review_days=7, max_wait_days=45, screen_fail=0.2, dropout=0.1)


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.label)
@pytest.mark.parametrize("cal", [INSTANT, BUSY], ids=["instant", "busy"])
def test_calendar_gives_the_untimed_engine_selections_bit_for_bit(design, cal):
    """Designs that wait for complete cohorts decide on counts only: same seed, same trials, any calendar
    (drop-outs do not shift the outcomes: DLTs are indexed by infused patient)."""
    truth = TRUTH_EFF if getattr(design, "uses_efficacy", False) else TRUTH
    a = doseesc.simulate(design, truth, 1500, rng=11)
    b = doseesc.simulate(design, truth, 1500, rng=11, calendar=cal, batch_size=700)
    assert np.array_equal(a.selected, b.selected)
    assert np.array_equal(a.n, b.n) and np.array_equal(a.y, b.y) and np.array_equal(a.reason, b.reason)
    assert b.method == "monte carlo" and set(b.extra) == {"duration_days", "time_to_decision_days", "wait_days",
                                                          "lost_waiting"}
    assert np.all(b.extra["duration_days"][0] > 0)


def test_deterministic_calendar_matches_a_hand_calculation():
    """3+3 over 2 tiers, no DLT possible (true P(DLT) = 0), so 3 patients at tier 1 then 3 at tier 2.

    Arrivals every 10 days: 0, 10, 20, 30, ...; vein-to-vein 20 days from enrolment; window 28;
    review 7; sentinel 5; at least 2 days between infusions.

    Cohort 1 opens at 0: P1 (arrived 0) infused 20; P2 (arrived 10) ready 30 (>= 20 + 2, >= 20 + 5): 30;
    P3 (arrived 20) ready 40: 40. Complete at 40 + 28 = 68; cohort 2 opens at 68 + 7 = 75.
    Cohort 2: P4, P5, P6 arrived 30, 40, 50, enrolled at 75 (waits 45, 35, 25), all ready at 95;
    infused 95 (sentinel of tier 2), then max(95, 97, 95 + 5) = 100, then max(95, 102, 100) = 102.
    Complete at 102 + 28 = 130: the final decision and the end of follow-up.
    Waiting: 45 + 35 + 25 = 105, plus the patients queued when the trial stops at 130 (arrived 60, ..., 120,
    waiting 70 + 60 + ... + 10 = 280): 385 patient-days; nobody lost.

    With max_wait 40: P4 (arrived 30) would wait 45 and leaves after 40; P5, P6, P7 (arrived 40, 50, 60)
    take cohort 2 (waits 35, 25, 15), same infusion times. Queued at 130: arrived 70, ..., 120, waits
    60, 50, 40, 30, 20, 10, capped at 40: 180, and the two who waited more than 40 are lost.
    Lost 1 + 2 = 3; waiting 40 + 35 + 25 + 15 + 180 = 295.
    """
    design = doseesc.ThreePlusThree(2)
    truth = doseesc.Scenario(true_tox=[0.0, 0.0], target=0.25)
    cal = Calendar(accrual="fixed", accrual_rate=DAYS_PER_MONTH / 10, vein_to_vein_days=20, dlt_window_days=28,
                   review_days=7, sentinel_days=5, min_gap_days=2, tox_time="uniform")
    r = doseesc.simulate(design, truth, 4, rng=1, calendar=cal)
    assert np.all(r.total_n == 6)
    ex = {k: v[0] for k, v in r.extra.items()}
    np.testing.assert_allclose(r.patients["infusion_days"][0, :6], [20, 30, 40, 95, 100, 102], atol=1e-9)
    np.testing.assert_allclose(ex["duration_days"], 130, atol=1e-9)
    np.testing.assert_allclose(ex["time_to_decision_days"], 130, atol=1e-9)
    np.testing.assert_allclose(ex["wait_days"], 385, atol=1e-9)
    np.testing.assert_allclose(ex["lost_waiting"], 0)
    r2 = doseesc.simulate(design, truth, 4, rng=1,
                          calendar=Calendar(**{**cal.to_dict(), "max_wait_days": 40.0}))
    np.testing.assert_allclose(r2.patients["infusion_days"][0, :6], [20, 30, 40, 95, 100, 102], atol=1e-9)
    np.testing.assert_allclose(r2.extra["wait_days"][0], 295, atol=1e-9)
    np.testing.assert_allclose(r2.extra["lost_waiting"][0], 3)
    # follow-up beyond the window lengthens the duration, not the decision
    r3 = doseesc.simulate(design, truth, 4, rng=1, calendar=Calendar(**{**cal.to_dict(), "follow_up_days": 90.0}))
    np.testing.assert_allclose(r3.extra["duration_days"][0], 102 + 90, atol=1e-9)
    np.testing.assert_allclose(r3.extra["time_to_decision_days"][0], 130, atol=1e-9)


def test_manufacture_on_arrival_and_dropout_replacement_by_hand():
    """Fixed arrivals every 10 days, vein-to-vein 20 days from arrival; 1-patient cohorts of a 3+3-like run are
    not available, so 3+3 with 1 tier: P1, P2, P3 arrive 0, 10, 20 and are infused 20, 30, 40 (ready on arrival
    + 20, no staggering); complete 68. Manufacturing on arrival makes no difference here (no wait)."""
    design = doseesc.ThreePlusThree(1)
    truth = doseesc.Scenario(true_tox=[0.0], target=0.25)
    cal = Calendar(accrual="fixed", accrual_rate=DAYS_PER_MONTH / 10, vein_to_vein_days=20, dlt_window_days=28,
                   manufacture_on_arrival=True, tox_time="uniform")
    r = doseesc.simulate(design, truth, 3, rng=2, calendar=cal)
    np.testing.assert_allclose(r.patients["infusion_days"][0, :3], [20, 30, 40], atol=1e-9)
    np.testing.assert_allclose(r.extra["duration_days"][0], 68, atol=1e-9)
    # with drop-outs, every trial still infuses its 3 patients and takes at least as long
    drop = Calendar(**{**cal.to_dict(), "dropout": 0.5})
    rd = doseesc.simulate(design, truth, 400, rng=2, calendar=drop)
    plain = doseesc.simulate(design, truth, 400, rng=2, calendar=cal)
    assert np.all(rd.total_n == 3)
    assert np.all(rd.extra["duration_days"][0] >= plain.extra["duration_days"][0] - 1e-9)
    assert rd.extra["duration_days"][0].mean() > plain.extra["duration_days"][0].mean() + 5


def test_poisson_accrual_rate_and_screening_failure():
    """Mean gap between enrolled patients = days per month / (rate x (1 - screen_fail)), within 4 MCSE."""
    from doseesc.engines.timed import _Arrivals
    from doseesc.rng import root_seed

    cal = Calendar(accrual_rate=2.0, screen_fail=0.25)
    arr = _Arrivals(cal, root_seed(3), 0, 4000, 20)
    arr.ensure(np.arange(4000), np.full(4000, 21))
    gaps = np.diff(arr.t[:, :20], axis=1).ravel()
    expect = DAYS_PER_MONTH / (2.0 * 0.75)
    assert abs(gaps.mean() - expect) < 4 * gaps.std() / math.sqrt(gaps.size)
    assert np.all(arr.t[:, 0] == 0)


@pytest.mark.parametrize("dist", ["weibull", "loglogistic"])
def test_event_time_shapes_put_the_stated_share_in_the_first_half(dist):
    cal = Calendar(tox_time=dist, tox_early_share=0.8)
    p = np.array([0.05, 0.3, 0.7])
    # the conditional CDF at half the window equals the share: the time at v = share is exactly 1/2
    np.testing.assert_allclose(cal.event_time("tox", p, np.full(3, 0.8)), 0.5, rtol=1e-9)
    np.testing.assert_allclose(cal.event_time("tox", p, np.ones(3)), 1.0, rtol=1e-9)
    v = np.linspace(0.01, 0.99, 50)
    t = cal.event_time("tox", np.full(50, 0.3), v)
    assert np.all(np.diff(t) > 0) and np.all((t > 0) & (t <= 1))
    assert Calendar().tox_early_share == 0.8 and Calendar(tox_time="uniform").tox_early_share == 0.5


def test_duration_summary_and_metrics():
    r = doseesc.simulate(DESIGNS[1], TRUTH, 3000, rng=5, calendar=BUSY)
    s = r.duration_summary()
    assert list(s.index) == ["duration_days", "time_to_decision_days"]
    d = r.extra["duration_days"][0]
    assert s.loc["duration_days", "mean"] == pytest.approx(d.mean())
    assert s.loc["duration_days", "sd"] == pytest.approx(d.std(ddof=1))
    assert s.loc["duration_days", "q10"] <= s.loc["duration_days", "q50"] <= s.loc["duration_days", "q90"]
    assert 0 < s.loc["duration_days", "q50_mcse"] < s.loc["duration_days", "sd"]
    m = r.metrics()
    for key in ("duration_days", "time_to_decision_days", "wait_days", "lost_waiting"):
        assert key in m.index and m.loc[key, "mcse"] > 0
    assert "duration days" in str(r)
    with pytest.raises(DoseescError, match="needs a Monte Carlo run with a calendar"):
        doseesc.simulate(DESIGNS[1], TRUTH, 100, rng=5).duration_summary()


def test_slower_manufacturing_lengthens_trials_in_a_paired_comparison():
    fast = Calendar(accrual_rate=2, vein_to_vein_days=14, dlt_window_days=28)
    slow = Calendar(accrual_rate=2, vein_to_vein_days=35, dlt_window_days=28)
    a = doseesc.simulate(DESIGNS[0], TRUTH, 2000, rng=9, calendar=fast).extra["duration_days"][0]
    b = doseesc.simulate(DESIGNS[0], TRUTH, 2000, rng=9, calendar=slow).extra["duration_days"][0]
    diff = b - a
    assert diff.mean() > 21 - 4 * diff.std() / math.sqrt(diff.size)


def test_batch_size_invariance():
    a = doseesc.simulate(DESIGNS[1], TRUTH, 2100, rng=4, calendar=BUSY, batch_size=2100)
    b = doseesc.simulate(DESIGNS[1], TRUTH, 2100, rng=4, calendar=BUSY, batch_size=333)
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key][0], b.extra[key][0])


def test_refuses_the_actual_dose_model_and_bad_calendars():
    with pytest.raises(DoseescError, match="is not a doseesc DoseModel"):
        doseesc.simulate(DESIGNS[0], TRUTH, 10, rng=1, calendar=INSTANT, dose_model=object())
    with pytest.raises(DoseescError, match="not a doseesc Calendar"):
        doseesc.simulate(DESIGNS[0], TRUTH, 10, rng=1, calendar={"accrual_rate": 2})
    with pytest.raises(ScenarioError, match=r"dlt_window_days = -3 must be a positive number"):
        Calendar(dlt_window_days=-3)
    with pytest.raises(ScenarioError, match="accrual = 'weekly' must be one of"):
        Calendar(accrual="weekly")
    with pytest.raises(ScenarioError, match="tox_early_share = 0.8: uniform event times"):
        Calendar(tox_time="uniform", tox_early_share=0.8)


def test_calendar_table_in_a_scenario_file(tmp_path):
    base = ('[protocol]\nname = "x"\ntarget = 0.25\nmax_n = 12\n[tiers]\ndoses = [1, 2]\n'
            '[[design]]\nname = "3+3"\ntype = "3+3"\n[[design]]\nname = "TITE-BOIN"\ntype = "TITE-BOIN"\n'
            '[[scenario]]\nname = "s"\ntrue_tox = [0.1, 0.3]\n')
    f = tmp_path / "x.toml"
    f.write_text(base + '[calendar]\naccrual_rate = 2\ndlt_window_days = 28\nsentinel_days = 14\n')
    p = doseesc.load_protocol(f)
    assert isinstance(p.calendar, Calendar) and p.calendar.sentinel_days == 14
    from doseesc.study import run_protocol

    study = run_protocol(p, n_trials=200, seed=1)
    assert all("duration_days" in r.extra for r in study.results)
    f.write_text(base + '[calendar]\ndlt_window_days = -3\n')
    with pytest.raises(ScenarioError, match=r"x.toml: \[calendar\]: dlt_window_days = -3 is outside the plausible "
                                            r"range of days"):
        doseesc.load_protocol(f)
    f.write_text(base + '[calendar]\nwindow = 3\n')
    with pytest.raises(ScenarioError, match=r"x.toml: \[calendar\] unknown key 'window'"):
        doseesc.load_protocol(f)
    with pytest.raises(ScenarioError, match="must be a table"):
        calendar_from_toml(3, "x.toml")
