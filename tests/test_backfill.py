"""Backfill cohorts (issue 19 item 2): hand-worked timelines, cap 0 = today's calendar run, closing rules,
bad input, Monte Carlo invariants. Rules: doseesc/backfill.py and docs/notes/backfill.md."""

import numpy as np
import pytest

import doseesc as d
from doseesc.backfill import Backfill, backfill_from_toml, check_backfill, check_calendar, with_backfill
from doseesc.calendar import Calendar
from doseesc.engines.backfill import backfill_summary, compare_backfill, simulate_backfill
from doseesc.errors import DesignError
from doseesc.rng import Stream, patient_uniforms, root_seed
from doseesc.state import StopReason

# arrivals every 10 days (day 0, 10, 20, ...), infusion at once, DLT window 28 days, no review
FIXED = Calendar(accrual="fixed", accrual_rate=365.25 / 12 / 10, dlt_window_days=28)


def test_hand_worked_timeline_boin():
    """BOIN (target 0.3, cohorts of 3, max_n 12), true P(DLT) = (0, 0, 1), backfill cap 2 at the highest tier.

    day   0, 10, 20  cohort 1 at tier 1 (infused at once); complete at 28, 38, 48 -> decision at day 48
    day  30, 40      arrive while tier 1 is followed: no tier cleared yet, so they wait (18 and 8 days)
    day  48          tier 1: 0/3 -> escalate to tier 2 (tier 1 now cleared)
    day  48, 48, 50  cohort 2 at tier 2: the two queued patients and the one arriving at day 50; complete 78
    day  60, 70      arrive while tier 2 is followed -> backfilled at tier 1 (highest cleared tier below 2);
                     cap 2 reached; their windows end on days 88 and 98, after the decision at 78
    day  78          counts n = (3, 3, 0): tier 2 0/3 -> escalate to tier 3
    day  80, 90, 100 cohort 3 at tier 3: 3/3 DLTs; complete 128 (backfill cap spent: 110, 120 wait)
    day 128          counts n = (5, 3, 3), y = (0, 0, 3): tier 3 eliminated, de-escalate to tier 2; 11 of
                     max_n 12 treated, so cohort 4 has 1 place: the patient queued since day 110 (wait 18)
    day 156          12 patients: stop (MAX_N); final counts n = (5, 4, 3), y = (0, 0, 3)
    """
    sc = d.Scenario(true_tox=(0.0, 0.0, 1.0), true_eff=(0.0, 1.0, 1.0), target=0.3)
    des = d.BOIN(n_tiers=3, target=0.3, max_n=12)
    oc = simulate_backfill(des, sc, 2, backfill=Backfill(cap=2), rng=1, calendar=FIXED)
    pt = oc.patients
    np.testing.assert_array_equal(pt["tier"][0], [0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 2, 1])
    np.testing.assert_array_equal(pt["backfill"][0], [0] * 6 + [1, 1] + [0] * 4)
    np.testing.assert_allclose(pt["infusion_days"][0], [0, 10, 20, 48, 48, 50, 60, 70, 80, 90, 100, 128])
    np.testing.assert_array_equal(oc.n[0], [5, 4, 3])
    np.testing.assert_array_equal(oc.y[0], [0, 0, 3])
    assert oc.reason[0] == StopReason.MAX_N
    assert oc.selected[0] == des.select(d.TrialState.from_counts(oc.n[:1], oc.y[:1], [1]))[0]
    assert oc.extra["n_backfilled"][0][0] == 2
    assert oc.extra["duration_days"][0][0] == 156          # last infusion 128 + 28
    # waiting: 18 + 8 (days 30, 40) + 18 (day 110); queued at the stop (day 156): 120, 130, 140, 150
    assert oc.extra["wait_days"][0][0] == pytest.approx(18 + 8 + 18 + 36 + 26 + 16 + 6)
    s = backfill_summary(oc)
    assert list(s["mean_backfilled"]) == [2.0, 0.0, 0.0]
    assert s["share_backfilled"][0] == pytest.approx(2 / 5)


def test_hand_worked_no_backfill_is_todays_timeline():
    """The same trial with cap 0: days 60 and 70 wait for cohort 3 instead (today's calendar run)."""
    sc = d.Scenario(true_tox=(0.0, 0.0, 1.0), true_eff=(0.0, 1.0, 1.0), target=0.3)
    des = d.BOIN(n_tiers=3, target=0.3, max_n=12)
    oc = simulate_backfill(des, sc, 2, backfill=Backfill(cap=0), rng=1, calendar=FIXED)
    # cohort 3 opens at day 78 with the patients of days 60, 70 (queued) and 80
    np.testing.assert_allclose(oc.patients["infusion_days"][0][:9], [0, 10, 20, 48, 48, 50, 78, 78, 80])
    assert not oc.patients["backfill"].any()


def test_min_responses_keeps_a_tier_without_response_closed():
    """Same trial, min_responses = 1: tier 1 has P(response) = 0, so it never opens; no backfill at all."""
    sc = d.Scenario(true_tox=(0.0, 0.0, 1.0), true_eff=(0.0, 1.0, 1.0), target=0.3)
    des = d.BOIN(n_tiers=3, target=0.3, max_n=12)
    oc = simulate_backfill(des, sc, 2, backfill=Backfill(cap=2, min_responses=1), rng=1, calendar=FIXED)
    assert oc.extra["n_backfilled"][0].sum() == 0


def test_tier_closes_when_its_backfill_data_reach_the_threshold():
    """BOIN target 0.5 (so 0/3 escalates), true P(DLT) = (0.5, 0, 1), max_n 18, cap 4, seed 11: trial 0's
    TOX uniforms are >= 0.5 for patients 1-3 (no DLT at tier 1) and < 0.5 for patients 7-8 (the day-60 and
    day-70 backfill patients at tier 1 both have a DLT; their windows end on days 88 and 98).

    Cohorts as in the first timeline: tier 1 (0, 10, 20), tier 2 (48, 48, 50), backfill at tier 1 on days 60
    and 70, decision at 78: tier 2 0/3 -> escalate to tier 3, cohort 80, 90, 100 (complete 128).
    Day 110: tier 1's complete data are 2 DLTs in 5 = 0.4 >= close_at 0.3: tier 1 closes, and with it
    every tier above (tier 2), so the patients of days 110 and 120 are not backfilled (they wait).
    With close_at = 0.5 (0.4 < 0.5) tier 2 stays open: days 110 and 120 are backfilled at tier 2."""
    u = patient_uniforms(root_seed(11), 0, 2, 18, Stream.TOX)[0]
    assert (u[:3] >= 0.5).all() and (u[6:8] < 0.5).all()          # the premise of the arithmetic
    sc = d.Scenario(true_tox=(0.5, 0.0, 1.0), target=0.5)
    des = d.BOIN(n_tiers=3, target=0.5, max_n=18)
    closed = simulate_backfill(des, sc, 2, backfill=Backfill(cap=4, close_at=0.3), rng=11, calendar=FIXED)
    pt = closed.patients
    np.testing.assert_array_equal(pt["tier"][0][:11], [0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 2])
    np.testing.assert_array_equal(pt["tox"][0][6:8], [True, True])
    assert pt["backfill"][0].sum() == 2
    opened = simulate_backfill(des, sc, 2, backfill=Backfill(cap=4, close_at=0.5), rng=11, calendar=FIXED)
    pt = opened.patients
    np.testing.assert_array_equal(pt["tier"][0][:13], [0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 2, 1, 1])
    np.testing.assert_array_equal(pt["backfill"][0][11:13], [True, True])
    np.testing.assert_allclose(pt["infusion_days"][0][11:13], [110, 120])


def test_priority_lowest_and_random():
    """Lowest: the day-110/120 backfill patients of the previous trial go to tier 1 (cleared, open at
    close_at 0.5), not tier 2. Random draws between tiers 1 and 2 with the BACKFILL stream."""
    sc = d.Scenario(true_tox=(0.5, 0.0, 1.0), target=0.5)
    des = d.BOIN(n_tiers=3, target=0.5, max_n=18)
    low = simulate_backfill(des, sc, 2, backfill=Backfill(cap=4, close_at=0.5, priority="lowest"), rng=11,
                            calendar=FIXED)
    np.testing.assert_array_equal(low.patients["tier"][0][11:13], [0, 0])
    rnd = simulate_backfill(des, sc, 200, backfill=Backfill(cap=4, close_at=0.9, priority="random"), rng=3,
                            calendar=FIXED)
    bf = rnd.patients["backfill"]
    tiers = rnd.patients["tier"][bf]
    assert set(np.unique(tiers)) == {0, 1}


DESIGNS = [d.BOIN(n_tiers=4, target=0.3, max_n=24), d.Keyboard(n_tiers=4, target=0.3, max_n=24),
           d.I3Plus3(n_tiers=4, target=0.3, max_n=24),
           d.CRM(skeleton=(0.05, 0.12, 0.25, 0.4), target=0.3, max_n=24),
           d.BOIN12(n_tiers=4, max_n=24), d.BOINET(n_tiers=4, max_n=24),
           d.OBDPick(d.BOIN(n_tiers=4, target=0.3, max_n=24), expansion=0)]
SC = d.Scenario(true_tox=(0.05, 0.12, 0.25, 0.4), true_eff=(0.2, 0.4, 0.5, 0.5), target=0.3)
BUSY = Calendar(accrual_rate=2, dropout=0.1, vein_to_vein_days=20, vein_to_vein_sd=5, sentinel_days=7,
                review_days=3, max_wait_days=60, eff_window_days=56, screen_fail=0.2)


@pytest.mark.parametrize("design", DESIGNS, ids=lambda x: x.kind)
def test_cap_zero_is_todays_calendar_run_bit_for_bit(design):
    """The backfill engine with cap 0 simulates in time what today's engine lays over the untimed trials:
    every count, selection, stop reason, rule bit, per-patient record and calendar metric identical."""
    a = d.simulate(design, SC, 600, rng=7, calendar=BUSY)
    b = simulate_backfill(design, SC, 600, backfill=Backfill(cap=0), rng=7, calendar=BUSY)
    for key in ("n", "y", "selected", "reason", "fired"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key][0], b.extra[key][0], err_msg=key)
    for key in a.patients:
        np.testing.assert_array_equal(a.patients[key], b.patients[key], err_msg=key)


def _current_before(pt):
    """Per patient column: the tier of the latest escalation patient enrolled before it (-1: none), and
    whether the escalation had de-escalated from a tier <= t before (closed_below[t])."""
    tier, bf = pt["tier"].astype(int), pt["backfill"]
    rows, width = tier.shape
    cur = np.full(rows, -1)
    low_closed = np.full(rows, 10 ** 6)        # lowest tier de-escalated from so far
    top = np.full(rows, -1)                    # highest escalation tier so far
    out_cur, out_closed, out_top = (np.empty((rows, width), int) for _ in range(3))
    for j in range(width):
        out_cur[:, j], out_closed[:, j], out_top[:, j] = cur, low_closed, top
        esc = (tier[:, j] >= 0) & ~bf[:, j]
        down = esc & (cur >= 0) & (tier[:, j] < cur)
        low_closed = np.where(down, np.minimum(low_closed, cur), low_closed)
        cur = np.where(esc, tier[:, j], cur)
        top = np.where(esc, np.maximum(top, tier[:, j]), top)
    return out_cur, out_closed, out_top


@pytest.mark.parametrize("design", [DESIGNS[0], DESIGNS[4]], ids=["BOIN", "BOIN12"])
def test_monte_carlo_invariants(design):
    """2,000 trials: a backfill patient is always below the escalation's current tier, at a tier the
    escalation had left upwards (cleared), never at or above a tier it had de-escalated from, and never at a
    tier whose complete data (DLT windows ended before the backfill infusion) showed a DLT rate >= target;
    at most cap backfill patients per trial, at most max_n patients in all."""
    cal = Calendar(accrual_rate=4, dlt_window_days=28, eff_window_days=28)
    spec = Backfill(cap=6)
    oc = simulate_backfill(design, SC, 2000, backfill=spec, rng=5, calendar=cal)
    pt = {k: np.asarray(v) for k, v in oc.patients.items()}
    bf = pt["backfill"]
    assert bf.any()
    cur, low_closed, top = _current_before(pt)
    tier = pt["tier"].astype(int)
    assert (tier[bf] < cur[bf]).all()
    assert (tier[bf] < low_closed[bf]).all()
    assert (tier[bf] < top[bf]).all()
    assert (bf.sum(axis=1) <= spec.cap).all()
    assert (oc.n.sum(axis=1) <= design.max_n).all()
    # safety: the tier (and every tier below it) had complete data below the threshold at the infusion
    inf, tox = pt["infusion_days"], pt["tox"]
    thr = spec.threshold(design)
    r, c = np.nonzero(bf)
    for i, j in zip(r[:3000], c[:3000]):
        done = (tier[i] >= 0) & (inf[i] + cal.dlt_window_days <= inf[i, j])
        for t in range(tier[i, j] + 1):
            n_t = (done & (tier[i] == t)).sum()
            y_t = (done & (tier[i] == t) & tox[i]).sum()
            assert n_t == 0 or y_t < thr * n_t, (i, j, t, n_t, y_t)


def test_backfill_adds_patients_and_compare_is_paired():
    """BOIN12 with backfill: same seed, same patients; the comparison reports the paired differences and
    their MCSE; the backfill run treats backfill patients; the run without is the cap-0 run."""
    cal = Calendar(accrual_rate=3, dlt_window_days=28)
    cmp_ = compare_backfill(d.BOIN12(n_tiers=4, max_n=24), SC, 1500, backfill=Backfill(cap=6), calendar=cal, rng=2)
    t = cmp_.table.set_index("metric")
    assert t.loc["mean backfill patients", "with_backfill"] > 1
    assert t.loc["mean backfill patients", "without"] == 0
    # paired: the SE of the per-trial differences is below the SE of two independent runs' difference
    dur_on, dur_off = cmp_.with_backfill.extra["duration_days"][0], cmp_.without.extra["duration_days"][0]
    unpaired = np.sqrt((dur_on.var(ddof=1) + dur_off.var(ddof=1)) / dur_on.size)
    assert t.loc["mean duration (days)", "difference_mcse"] < unpaired
    assert t.loc["mean duration (days)", "difference"] == pytest.approx(dur_on.mean() - dur_off.mean())
    assert np.isfinite(t.loc["P(select true OBD)", "difference_mcse"])
    off = simulate_backfill(d.BOIN12(n_tiers=4, max_n=24), SC, 1500, backfill=Backfill(cap=0), calendar=cal, rng=2)
    np.testing.assert_array_equal(off.selected, cmp_.without.selected)


def test_with_backfill_and_spec_round_trip():
    b = Backfill(cap=6, priority="lowest", close_at=0.25, min_responses=1, tier_cap=12)
    assert Backfill.from_dict(b.to_dict()) == b
    assert Backfill(cap=3).to_dict() == {"cap": 3}
    bd = with_backfill(d.BOIN(n_tiers=3, target=0.3, max_n=12), cap=3)
    assert bd.backfill == Backfill(cap=3) and "backfill" in bd.to_dict()
    assert backfill_from_toml({"cap": 4, "priority": "random"}, "x.toml: [[design]] 'B'") == \
        Backfill(cap=4, priority="random")
    assert Backfill(cap=1).threshold(d.BOIN(n_tiers=3, target=0.25, max_n=12)) == 0.25


@pytest.mark.parametrize("value, words", [
    ({"cap": -1}, "cap = -1"), ({"cap": 2.5}, "cap = 2.5"), ({"cap": True}, "cap = True"),
    ({"cap": 3, "priority": "middle"}, "priority = 'middle'"), ({"cap": 3, "close_at": 1.5}, "close_at = 1.5"),
    ({"cap": 3, "min_responses": -2}, "min_responses = -2"), ({"cap": 3, "tier_cap": 0}, "tier_cap = 0"),
    ({"cap": 3, "size": 3}, "unknown key 'size' = 3"), ({"priority": "lowest"}, "needs cap"),
    (6, "backfill = 6 must be a table")])
def test_bad_backfill_tables_name_file_key_and_value(value, words):
    with pytest.raises(DesignError) as err:
        backfill_from_toml(value, "scenarios/x.toml: [[design]] 'BOIN12 + backfill'")
    assert "scenarios/x.toml: [[design]] 'BOIN12 + backfill'" in str(err.value)
    assert words in str(err.value)


def test_backfill_without_calendar_and_unsupported_designs_are_refused():
    boin = d.BOIN(n_tiers=3, target=0.3, max_n=12)
    sc = d.Scenario(true_tox=(0.1, 0.2, 0.3))
    with pytest.raises(DesignError, match=r"x.toml: \[\[design\]\] 'B': backfill needs a \[calendar\]"):
        check_calendar(None, "x.toml: [[design]] 'B'")
    with pytest.raises(DesignError, match="backfill needs a \\[calendar\\]"):
        simulate_backfill(boin, sc, 10, backfill=Backfill(cap=2), rng=1)
    with pytest.raises(DesignError, match="3\\+3"):
        with_backfill(d.ThreePlusThree(n_tiers=3), cap=3)
    with pytest.raises(DesignError, match="Expansion counts the base"):
        with_backfill(d.Expansion(d.BOIN(n_tiers=3, target=0.3, max_n=12), to_n=18), cap=3)
    with pytest.raises(DesignError, match="time-to-event"):
        with_backfill(d.TITEBOIN(n_tiers=3, target=0.3, max_n=12), cap=3)
    with pytest.raises(DesignError, match="min_responses = 1 needs response probabilities"):
        simulate_backfill(boin, sc, 10, backfill=Backfill(cap=2, min_responses=1), rng=1, calendar=FIXED)


def test_file_checks_name_the_table():
    """What protocol.py runs for a [[design]] with a backfill key: calendar, design and scenarios checked."""
    at = "scenarios/x.toml: [[design]] 'B'"
    boin = d.BOIN(n_tiers=3, target=0.3, max_n=12)
    sc = d.Scenario(true_tox=(0.1, 0.2, 0.3), name="plain")
    check_backfill(Backfill(cap=3), boin, FIXED, at, [sc])
    with pytest.raises(DesignError, match=r"x.toml: \[\[design\]\] 'B': backfill needs a \[calendar\]"):
        check_backfill(Backfill(cap=3), boin, None, at)
    with pytest.raises(DesignError, match=r"x.toml: \[\[design\]\] 'B': backfill with 3\+3"):
        check_backfill(Backfill(cap=3), d.ThreePlusThree(n_tiers=3), FIXED, at)
    with pytest.raises(DesignError, match=r"'B': backfill with the \[actual_dose\] model"):
        check_backfill(Backfill(cap=3), boin, FIXED, at, dose_model=object())
    with pytest.raises(DesignError, match=r"'B': backfill min_responses = 1 needs .* scenario 'plain'"):
        check_backfill(Backfill(cap=3, min_responses=1), boin, FIXED, at, [sc])


def test_drop_outs_and_manufacturing_keep_the_invariants():
    """With manufacturing, a sentinel, review days, 30% drop-outs (a backfill drop-out is not replaced) and a
    maximum wait: backfill patients stay below the current tier and below any tier de-escalated from, at most
    cap per trial, at most max_n in all, and the counts are those of the per-patient records."""
    cal = Calendar(accrual_rate=4, dropout=0.3, vein_to_vein_days=14, sentinel_days=7, review_days=5,
                   max_wait_days=45, dlt_window_days=28)
    des = d.BOIN(n_tiers=4, target=0.3, max_n=24)
    oc = simulate_backfill(des, SC, 1500, backfill=Backfill(cap=5, priority="lowest"), rng=9, calendar=cal)
    pt = {k: np.asarray(v) for k, v in oc.patients.items()}
    bf = pt["backfill"]
    assert bf.any()
    cur, low_closed, _ = _current_before(pt)
    assert (pt["tier"][bf] < cur[bf]).all() and (pt["tier"][bf] < low_closed[bf]).all()
    assert (bf.sum(axis=1) <= 5).all() and (oc.n.sum(axis=1) <= 24).all()
    assert (oc.extra["n_backfilled"][0] == bf.sum(axis=1)).all()
    # the counts are the per-patient records, backfill patients included
    counts = np.stack([(pt["tier"] == j).sum(axis=1) for j in range(4)], axis=1)
    np.testing.assert_array_equal(counts, oc.n)
