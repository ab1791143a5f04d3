"""Rolling six (Skolnik et al. 2008): the decision table row by row, hand-worked kernel decisions, the timed
engine (safety, caps, accrual slower than the window = untimed engine), the no-pending form against exact
enumeration and against the 3+3 with de-escalation, and the paper's duration claim in direction and size."""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc import Calendar
from doseesc.tiers import DAYS_PER_MONTH
from doseesc.designs.rolling_six import RollingSix, table_code
from doseesc.errors import DesignError, DoseescError
from doseesc.state import StopReason, TrialState

K = 4
TRUTH = doseesc.Scenario(true_tox=[0.08, 0.2, 0.33, 0.5], target=0.25)
#: accrual slower than the window: every earlier patient is complete when the next one arrives
SLOW = Calendar(accrual="fixed", accrual_rate=DAYS_PER_MONTH / 40, dlt_window_days=28)
#: Skolnik's setting: a new patient every 10 days on average, a 28-day DLT window
FAST = Calendar(accrual_rate=DAYS_PER_MONTH / 10, dlt_window_days=28)

ESC, STAY, DOWN, SUSPEND = 1, 0, -1, 2

#: Skolnik's Table 1 as rows (enrolled n, DLTs y, pending m, decision); "without DLT" = n - y - m.
#: docs/notes/rolling-six.md gives the sources of each row.
TABLE = [
    # n = 2: nothing is evaluable enough to escalate; 2 DLTs in 2 de-escalate
    *[(2, y, m, STAY) for y in (0, 1) for m in range(0, 3 - y)],
    (2, 2, 0, DOWN),
    # n = 3: 0/3 all complete escalates (the 3+3's 0/3); any pending or 1 DLT: enrol patient 4 here
    (3, 0, 0, ESC),
    *[(3, 0, m, STAY) for m in (1, 2, 3)],
    *[(3, 1, m, STAY) for m in (0, 1, 2)],
    *[(3, y, m, DOWN) for y in (2, 3) for m in range(0, 4 - y)],
    # n = 4: 0 DLTs with 3 or 4 complete (m <= 1) escalates; 0 DLTs with m >= 2 and 1 DLT stay
    *[(4, 0, m, ESC) for m in (0, 1)],
    *[(4, 0, m, STAY) for m in (2, 3, 4)],
    *[(4, 1, m, STAY) for m in range(0, 4)],
    *[(4, y, m, DOWN) for y in (2, 3, 4) for m in range(0, 5 - y)],
    # n = 5: 0 DLTs with >= 3 complete (m <= 2) escalates
    *[(5, 0, m, ESC) for m in (0, 1, 2)],
    *[(5, 0, m, STAY) for m in (3, 4, 5)],
    *[(5, 1, m, STAY) for m in range(0, 5)],
    *[(5, y, m, DOWN) for y in range(2, 6) for m in range(0, 6 - y)],
    # n = 6: the tier is full; escalate once all 6 are complete with <= 1 DLT, suspend accrual meanwhile
    *[(6, y, 0, ESC) for y in (0, 1)],
    *[(6, 0, m, SUSPEND) for m in range(1, 7)],
    *[(6, 1, m, SUSPEND) for m in range(1, 6)],
    *[(6, y, m, DOWN) for y in range(2, 7) for m in range(0, 7 - y)],
]


def _state(tiers, dlt, follow, current, k=K):
    """One-trial state from per-patient lists (follow: fraction of the window; a DLT's own time for a DLT)."""
    tiers = np.asarray(tiers, dtype=np.int64)
    dlt = np.asarray(dlt, bool)
    n = np.bincount(tiers, minlength=k)
    y = np.bincount(tiers, weights=dlt, minlength=k).astype(int)
    st = TrialState.from_counts(n, y, current, last_n=1, last_y=int(dlt[-1]))
    st.pt_tier, st.pt_dlt = tiers[None, :], dlt[None, :]
    st.pt_follow = np.asarray(follow, float)[None, :]
    return st


def _tier(tier, n, y, m):
    """Patients at ``tier``: y with a DLT (at half the window), m pending (a third followed), the rest complete."""
    c = n - y - m
    return [tier] * n, [True] * y + [False] * (m + c), [0.5] * y + [1 / 3] * m + [1.0] * c


def _row_state(n, y, m):
    """Tier 1 with 3 complete patients and no DLT; the current tier 2 holds the row's (n, y, m)."""
    t1, d1, f1 = _tier(0, 3, 0, 0)
    t2, d2, f2 = _tier(1, n, y, m)
    return _state(t1 + t2, d1 + d2, f1 + f2, current=1)


def test_table_rows_cover_every_count_once():
    # every (n, y, m) with y + m <= n, n = 2..6, is one row of the table: 6 + 10 + 15 + 21 + 28 = 80 rows
    cells = [(n, y, m) for n, y, m, _ in TABLE]
    assert len(cells) == len(set(cells)) == 80
    assert set(cells) == {(n, y, m) for n in range(2, 7) for y in range(n + 1) for m in range(n - y + 1)}


@pytest.mark.parametrize("n, y, m, want", TABLE, ids=[f"n{n}-y{y}-m{m}" for n, y, m, _ in TABLE])
def test_each_table_row(n, y, m, want):
    assert table_code(n, y, m) == want
    # through the kernel, at tier 2 of 4 with tier 1 passed 0/3: escalate -> tier 3, stay -> tier 2,
    # de-escalate -> tier 1 (3 patients there, fewer than 6), suspend -> wait at tier 2
    dec = RollingSix(K, max_n=24).step(_row_state(n, y, m))
    assert not dec.stop[0]
    assert bool(dec.wait[0]) == (want == SUSPEND)
    if want != SUSPEND:
        assert dec.next[0] == {ESC: 2, STAY: 1, DOWN: 0}[want]


def test_first_patients_stay_at_the_start():
    d = RollingSix(K, max_n=24)
    # patient 2 arrives: 1 enrolled at tier 1, pending -> enrol at tier 1 (fewer than 2 on the tier)
    dec = d.step(_state([0], [False], [0.2], current=0))
    assert dec.next[0] == 0 and not dec.wait[0] and not dec.stop[0]
    # 1 enrolled with a DLT already: 1/1 is not 2 DLTs -> stay
    dec = d.step(_state([0], [True], [0.2], current=0))
    assert dec.next[0] == 0 and not dec.stop[0]


def test_lowest_tier_toxic_stops_with_no_dose():
    d = RollingSix(K, max_n=24)
    # 2 DLTs among the first 2 at tier 1: de-escalation impossible -> stop, no dose
    st = _state([0, 0], [True, True], [0.4, 0.6], current=0)
    dec = d.step(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.LOWEST_TIER_TOXIC and d.decide(st).down[0]
    assert d.conclude(st, dec.reason)[0] == -1


def test_deescalation_to_a_tier_with_six_defines_the_mtd():
    d = RollingSix(K, max_n=24)
    # tier 1: 6 complete, 1 DLT (escalated); tier 2: 2 DLTs among 3 -> de-escalate to tier 1, which has 6:
    # the MTD is defined (Skolnik's footnote); selection = tier 1 (1/6, below the toxic tier 2)
    t1, d1, f1 = _tier(0, 6, 1, 0)
    t2, d2, f2 = _tier(1, 3, 2, 1)
    st = _state(t1 + t2, d1 + d2, f1 + f2, current=1)
    dec = d.step(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.MTD_IDENTIFIED
    assert d.select(st)[0] == 0


def test_below_a_toxic_tier_the_current_tier_is_filled_to_six():
    d = RollingSix(K, max_n=24)
    # tier 1 0/3 complete, tier 2 2/2 DLTs; current = tier 1 after the de-escalation
    t2, d2, f2 = _tier(1, 2, 2, 0)
    # tier 1 now 4 patients: 3 complete, 1 pending, 0 DLTs -> the table says escalate, but tier 2 has 2 DLTs
    # (never re-entered) -> enrol at tier 1 (the MTD needs 6)
    t1, d1, f1 = _tier(0, 4, 0, 1)
    dec = d.step(_state(t1 + t2, d1 + d2, f1 + f2, current=0))
    assert dec.next[0] == 0 and not dec.wait[0] and not dec.stop[0]
    # 6 at tier 1, 1 pending: suspend; 6 complete with 1 DLT: stop, MTD = tier 1
    t1, d1, f1 = _tier(0, 6, 0, 1)
    dec = d.step(_state(t1 + t2, d1 + d2, f1 + f2, current=0))
    assert dec.wait[0] and not dec.stop[0]
    t1, d1, f1 = _tier(0, 6, 1, 0)
    st = _state(t1 + t2, d1 + d2, f1 + f2, current=0)
    dec = d.step(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.MTD_IDENTIFIED and d.select(st)[0] == 0


def test_late_dlts_at_a_lower_tier_send_the_next_patient_below_them():
    d = RollingSix(K, max_n=24)
    # tier 1: 3 complete, none toxic; tier 2 escalated with 3 complete + 2 pending, then 2 of them had DLTs
    # after the trial moved to tier 3: tier 2 has 2 DLTs -> from tier 3 the next patient goes to tier 1
    t1, d1, f1 = _tier(0, 3, 0, 0)
    t2, d2, f2 = _tier(1, 5, 2, 0)
    t3, d3, f3 = _tier(2, 2, 0, 2)
    st = _state(t1 + t2 + t3, d1 + d2 + d3, f1 + f2 + f3, current=2)
    dec = d.step(st)
    assert dec.next[0] == 0 and not dec.stop[0] and d.decide(st).down[0]


def test_highest_tier_waits_for_its_pending_patients_then_stops():
    d = RollingSix(2, max_n=12)
    t1, d1, f1 = _tier(0, 3, 0, 0)
    # tier 2 (the highest): 4 enrolled, 3 complete without DLT, 1 pending -> escalation would be allowed:
    # wait for the pending patient instead of concluding on incomplete data
    t2, d2, f2 = _tier(1, 4, 0, 1)
    dec = d.step(_state(t1 + t2, d1 + d2, f1 + f2, current=1, k=2))
    assert dec.wait[0] and not dec.stop[0]
    t2, d2, f2 = _tier(1, 4, 0, 0)
    st = _state(t1 + t2, d1 + d2, f1 + f2, current=1, k=2)
    dec = d.step(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.TOP_TIER_TOLERATED and d.select(st)[0] == 1


def test_select_by_hand():
    d = RollingSix(K, max_n=24)
    st = TrialState.from_counts([[6, 6, 3, 0], [6, 5, 2, 0], [3, 3, 3, 4], [6, 6, 6, 4]],
                                [[0, 1, 2, 0], [1, 0, 2, 0], [0, 0, 0, 0], [0, 1, 1, 2]], [2, 2, 3, 3])
    # 1: tier 2 has 1/6 below the toxic tier 3 -> tier 2; 2: tier 2 has only 5 -> tier 1 (1/6);
    # 3: highest tier passed with 0/4 -> tier 4; 4: tier 4 has 2 DLTs -> tier 3 (1/6)
    assert d.select(st).tolist() == [1, 0, 3, 2]


def test_no_pending_form_is_the_three_plus_three_with_deescalation_exactly():
    # complete data, cohorts of 1: a tier passes iff its first 3 have no DLT or its first 6 at most 1, as the
    # 3+3 with de-escalation; the same moves follow, so selection probabilities agree exactly. Rolling six is
    # declared complete_data, so exact enumerates that form.
    ex = doseesc.exact(RollingSix(K, max_n=24), TRUTH)
    ref = doseesc.exact(doseesc.ThreePlusThree(K, deescalation=True), TRUTH)
    assert np.allclose(ex.p_select, ref.p_select, rtol=0, atol=1e-12)
    # Monte Carlo of the registered design without a calendar (no pending patients) within 4 SE of exact
    mc = doseesc.simulate(RollingSix(K, max_n=24), TRUTH, 4000, rng=11)
    se = np.sqrt(ex.p_select * (1 - ex.p_select) / 4000)
    assert np.all(np.abs(mc.p_select - ex.p_select) <= 4 * se + 1e-12)
    n_mc = mc.n.sum(axis=1)
    assert abs(n_mc.mean() - ex.expected_n) <= 4 * n_mc.std() / np.sqrt(n_mc.size)


def test_paths_enumerate_the_complete_data_form():
    # with every patient complete before the next, rolling six moves patient by patient: after 1N 1N 1N
    # (3 complete at tier 1, no DLT) it escalates; after 1N 1T it stays (1 DLT, fewer than 6 enrolled);
    # after 1T 1T it de-escalates from the lowest tier, i.e. stops with no dose
    d = RollingSix(K, max_n=24)
    nodes = doseesc.paths(d, 3).nodes().set_index("path")
    assert nodes.loc["1N 1N 1N", "next_tier"] == 2
    assert nodes.loc["1N 1T", "next_tier"] == 1
    assert bool(nodes.loc["1T 1T", "stop"]) and nodes.loc["1T 1T", "selected"] == "No dose"
    # a design that is time-to-event only still refuses, naming itself
    with pytest.raises(DoseescError, match="exact enumeration does not apply to TITE-BOIN"):
        doseesc.exact(doseesc.TITEBOIN(0.25, K, max_n=24), TRUTH)


def test_accrual_slower_than_the_window_is_the_untimed_engine():
    d = RollingSix(K, max_n=24)
    a = doseesc.simulate(d, TRUTH, 1500, rng=21)
    b = doseesc.simulate(d, TRUTH, 1500, rng=21, calendar=SLOW)
    assert np.array_equal(a.selected, b.selected) and np.array_equal(a.n, b.n) and np.array_equal(a.y, b.y)
    assert b.extra["wait_days"][0].max() == 0


class _Watched(RollingSix):
    """RollingSix that records, at every decision of the timed engine, a patient sent to a tier with >= 2
    DLTs observed at it or below, and the number of suspensions."""

    log = {"bad": 0, "waits": 0, "decisions": 0}

    def step(self, state):
        dec = super().step(state)
        go = ~dec.stop & ~(dec.wait if dec.wait is not None else False)
        j = np.clip(dec.next, 0, self.n_tiers - 1)
        toxic_at_or_below = np.cumsum(state.y >= 2, axis=1)[np.arange(state.n_trials), j] > 0
        self.log["bad"] += int((go & toxic_at_or_below).sum())
        self.log["waits"] += int(dec.wait.sum())
        self.log["decisions"] += state.n_trials
        return dec


def test_timed_engine_safety_and_caps():
    d = _Watched(K, max_n=20)
    _Watched.log.update(bad=0, waits=0, decisions=0)
    r = doseesc.simulate(d, doseesc.Scenario(true_tox=[0.1, 0.3, 0.5, 0.6], target=0.25), 1500, rng=5,
                         calendar=FAST)
    assert _Watched.log["decisions"] > 1500 and _Watched.log["waits"] > 0   # accrual was suspended at times
    assert _Watched.log["bad"] == 0         # never a patient at (or above) a tier with >= 2 DLTs observed
    assert r.n.max() <= 6 and r.n.sum(axis=1).max() <= 20
    assert (r.extra["wait_days"][0] > 0).any()
    # complete data: the selected tier is below every tier with >= 2 DLTs, with <= 1 DLT in >= 6 (or the top)
    rows = np.flatnonzero(r.selected >= 0)
    sel = r.selected[rows]
    assert np.all(r.y[rows, sel] <= 1)
    low = np.where((r.y >= 2).any(axis=1), np.argmax(r.y >= 2, axis=1), K)[rows]
    assert np.all(sel < low)


def test_timed_engine_batch_invariance():
    d = RollingSix(K, max_n=24)
    a = doseesc.simulate(d, TRUTH, 600, rng=8, calendar=FAST)
    b = doseesc.simulate(d, TRUTH, 600, rng=8, calendar=FAST, batch_size=128)
    assert np.array_equal(a.selected, b.selected) and np.array_equal(a.n, b.n)
    assert np.array_equal(a.extra["duration_days"][0], b.extra["duration_days"][0])


def test_shorter_than_three_plus_three_with_as_many_dlts():
    # Skolnik et al. 2008 (1,000 simulated trials, a patient every 10 days on average): mean duration 294
    # (SD 75) days for the rolling six v 350 (84) for the 3+3, DLTs per trial 3.3 (1.1) v 3.2 (1.1). Their
    # dose-toxicity scenarios (from 12 historical trials) are not in the paper's abstract, so the numbers
    # cannot be reproduced; the direction and size are: patients arriving while accrual is suspended are
    # turned away (max_wait_days = 0), as in the paper's rationale. Here (5 tiers, 2000 trials) about
    # 255 (SD 86) v 312 (SD 90) days and 3.13 v 3.11 DLTs.
    truth = doseesc.Scenario(true_tox=[0.05, 0.1, 0.2, 0.35, 0.5], target=0.25)
    cal = Calendar(accrual_rate=DAYS_PER_MONTH / 10, dlt_window_days=28, max_wait_days=0)
    r6 = doseesc.simulate(RollingSix(5, max_n=30), truth, 2000, rng=3, calendar=cal)
    tt = doseesc.simulate(doseesc.ThreePlusThree(5, deescalation=True), truth, 2000, rng=3, calendar=cal)
    d6, d3 = r6.extra["duration_days"][0], tt.extra["duration_days"][0]
    se = np.sqrt(d6.var() / d6.size + d3.var() / d3.size)
    assert d3.mean() - d6.mean() > 4 * se                     # shorter, beyond Monte Carlo noise
    assert 0.7 < d6.mean() / d3.mean() < 0.95                 # the paper: 294 / 350 = 0.84
    y6, y3 = r6.y.sum(axis=1), tt.y.sum(axis=1)
    assert abs(y6.mean() - y3.mean()) < 0.3                   # the paper: 3.3 v 3.2 (SE of a difference ~0.05)


def test_recommend_with_and_without_follow_up():
    d = RollingSix(K, max_n=24)
    # complete data: 0/3 -> tier 2
    assert doseesc.recommend(d, "1N 1N 1N").next_tier == 1
    # 4 at tier 1, 2 complete and 2 pending: n - m = 2 < 3 -> enrol patient 5 at tier 1
    rec = doseesc.recommend(d, "1N 1N 1N 1N", follow_up=[28, 28, 10, 3], window=28)
    assert rec.next_tier == 0 and not rec.wait
    # 4 at tier 1, 3 complete, 1 pending, 0 DLTs -> tier 2 (the rolling six's gain over the 3+3)
    assert doseesc.recommend(d, "1N 1N 1N 1N", follow_up=[28, 28, 28, 3], window=28).next_tier == 1
    # 6 at tier 1 with 1 DLT and 1 pending -> suspend accrual
    assert doseesc.recommend(d, "1N 1N 1T 1N 1N 1N", follow_up=[28, 28, 10, 28, 28, 1], window=28).wait
    with pytest.raises(DesignError, match="at most 6 patients per tier"):
        doseesc.recommend(d, " ".join(["1N"] * 7))


def test_round_trip_registry_and_validation():
    d = RollingSix(5, max_n=30).stop_at_n(20)
    assert d.to_dict()["type"] == "rolling-six" and doseesc.design_from_dict(d.to_dict()) == d
    assert doseesc.designs.REGISTRY["rolling-six"] is RollingSix
    assert RollingSix.time_to_event and RollingSix(3, max_n=12).cohort_size == 1
    with pytest.raises(DesignError, match="missing option 'max_n'"):
        doseesc.design_from_dict({"type": "rolling-six", "n_tiers": 3})
    with pytest.raises(DesignError, match="max_n"):
        RollingSix(3, max_n=1)
    assert "Skolnik" in d.describe()


def test_check_design_contract():
    testing = pytest.importorskip("doseesc.testing")
    assert testing.example_design("rolling-six") == RollingSix.example()
    report = testing.check_design(RollingSix.example(), n_trials=1000)
    assert all(report[c] == "passed" for c in ("exact", "paths", "kernel", "describe", "round trip", "reproducible", "batch invariance",
                                               "trial bounds"))


def test_pending_table_and_the_table_command(tmp_path):
    from click.testing import CliRunner

    from doseesc.cli import main
    from doseesc.tables import pending_table

    t = pending_table(RollingSix(K, max_n=24))
    # Skolnik's rows: 3 enrolled, none pending, 0 DLTs -> escalate; 3 enrolled, 1 pending, 0 DLTs -> stay
    # (only 2 complete); 6 enrolled, 1 pending, <= 1 DLT -> suspend; any row with 2 DLTs -> de-escalate
    assert t.loc[(3, 0), 0] == "E" and t.loc[(3, 1), 0] == "S"
    assert t.loc[(6, 1), 0] == t.loc[(6, 1), 1] == "W" and t.loc[(6, 0), 1] == "E"
    assert (t[2].loc[[(n, m) for n, m in t.index if n - m >= 2]] == "D").all()
    assert RollingSix(K, max_n=24).decision_grid() is None
    res = CliRunner().invoke(main, ["table", "scenarios/dcar_sle.toml", "--design", "Rolling six"])
    assert res.exit_code == 0 and "W suspend accrual" in res.output
    res = CliRunner().invoke(main, ["table", "scenarios/dcar_sle.toml", "--design", "Rolling six", "--plot",
                                    str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "decides with pending patients" in res.output
