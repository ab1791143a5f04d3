"""3+3 on logs that do not start at the lowest tier, or that deviate (issue 16, item 2).

The rules (docs/notes/three-plus-three.md, section 4) read the counts only: L = the lowest tier with
>= 2 DLTs, h = the highest tried tier below L. Never a next cohort at a tier with >= 2 DLTs; the stop
reason and the selected tier agree; ``recommend`` and the kernel give one answer whatever the order of
the cohorts. Logs that start at the lowest tier and follow the design keep their old answers (the
Lin & Shih closed forms in test_closed_form.py are unchanged).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import doseesc
from doseesc import StopReason, TrialState
from doseesc.outcomes import parse_outcomes

PLAIN = doseesc.ThreePlusThree(3)
KORN = doseesc.ThreePlusThree(3, deescalation=True)


def _kernel(design, log):
    """The kernel on the log's counts, with every possible ``current`` (the answer must not depend on it)."""
    cohorts = parse_outcomes(log, design.n_tiers)
    n = np.zeros(design.n_tiers, dtype=int)
    y = np.zeros(design.n_tiers, dtype=int)
    for c in cohorts:
        n[c.tier] += c.size
        y[c.tier] += sum(c.tox)
    answers = set()
    for cur in range(design.n_tiers):
        st = TrialState.from_counts(n, y, cur)
        dec = design.step(st)
        sel = int(design.conclude(st, dec.reason)[0]) if dec.stop[0] else None
        answers.add((bool(dec.stop[0]), int(dec.next[0]), StopReason(int(dec.reason[0])), sel))
    assert len(answers) == 1, answers
    return answers.pop()


def _answer(rec):
    return (rec.stop, rec.next_tier, rec.reason, rec.selected)


# (design, log, expected (stop, next tier 0-based, reason, selected 0-based or None))
CASES = [
    # Without de-escalation. Tier 2: 2/3 (>= 2 DLTs, too toxic); tier 1: 0/3 passed, directly below the toxic
    # tier: stop, MTD = tier 1 (the docstring's "tier below the stopping tier"; 3 patients suffice here,
    # exactly as on the log 1NNN 2NTT).
    (PLAIN, "2NTT 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    (PLAIN, "1NNN 2NTT", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    # tier 2: 2/6, 3/6, 4/6 (>= 2 DLTs); tier 1: 0/3 -> the same stop, MTD tier 1
    (PLAIN, "2NNT 2NNT 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    (PLAIN, "2NNT 2NTT 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    (PLAIN, "2NNT 2TTT 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    # tier 2: 2/3 and nothing tried below: treat at the untried tier just below (tier 1), never back at tier 2
    (PLAIN, "2NTT", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 1: 1/3 below the toxic tier 2: 3 more at tier 1
    (PLAIN, "2NTT 1NTN", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 1: 1/6 -> passed, tier 2 toxic above it: stop, MTD tier 1
    (PLAIN, "2NTT 1NTN 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    # tier 1: 2/3 -> the lowest tier is too toxic: stop, no dose
    (PLAIN, "2NTT 1TTN", (True, -1, StopReason.LOWEST_TIER_TOXIC, -1)),
    # tier 1 0/3 passed, tier 2 untried, tier 3 2/3: escalate to tier 2 (never to tier 3)
    (PLAIN, "1NNN 3TTN", (False, 1, StopReason.NOT_STOPPED, None)),
    (PLAIN, "1NNN 3TTN 2NNN", (True, -1, StopReason.MTD_IDENTIFIED, 1)),
    # With de-escalation (Korn et al. 1994: the MTD is a tier with 6 patients and <= 1 DLT). Tier 2: 2/3;
    # tier 1: 0/3 with only 3 patients -> 3 more at tier 1 (the same answer as on 1NNN 2NTT, where the
    # design de-escalates to tier 1); never back to tier 2.
    (KORN, "2NTT 1NNN", (False, 0, StopReason.NOT_STOPPED, None)),
    (KORN, "1NNN 2NTT", (False, 0, StopReason.NOT_STOPPED, None)),
    (KORN, "2NNT 2NNT 1NNN", (False, 0, StopReason.NOT_STOPPED, None)),
    (KORN, "2NNT 2NTT 1NNN", (False, 0, StopReason.NOT_STOPPED, None)),
    (KORN, "2NNT 2TTT 1NNN", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 1 then 0/6 or 1/6 (6 patients, <= 1 DLT) below the toxic tier 2: stop, MTD tier 1
    (KORN, "2NTT 1NNN 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    (KORN, "2NNT 2NNT 1NNN 1NTN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
    # tier 1 then 2/6: the lowest tier is too toxic: stop, no dose
    (KORN, "2NTT 1NNN 1NTT", (True, -1, StopReason.LOWEST_TIER_TOXIC, -1)),
    # tier 2: 2/3, nothing below tried: tier 1 (as before this change)
    (KORN, "2NTT", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 3 0/3 passed but above the toxic tier 2; tier 1 0/6 -> MTD tier 1, not tier 3
    (KORN, "3NNN 2NTT 1NNN 1NNN", (True, -1, StopReason.MTD_IDENTIFIED, 0)),
]


@pytest.mark.parametrize("design,log,expected", CASES, ids=[f"{d.label}:{log}" for d, log, _ in CASES])
def test_hand_worked_logs(design, log, expected):
    rec = doseesc.recommend(design, log, warn=False)
    assert _answer(rec) == expected
    # the kernel on the same counts, with any current tier, gives the same answer
    assert _kernel(design, log) == expected


def test_issue_example_message():
    # recommend(ThreePlusThree(3), "2NTT 1NNN") used to say "treat the next cohort at Tier 2"
    rec = doseesc.recommend(PLAIN, "2NTT 1NNN", warn=False)
    assert rec.message == "stop the trial (MTD identified by the escalation rule); selected: Tier 1"
    rec = doseesc.recommend(KORN, "2NTT 1NNN", warn=False)
    assert rec.message == "treat the next cohort at Tier 1"


@pytest.mark.parametrize("design", [PLAIN, KORN], ids=["plain", "korn"])
@pytest.mark.parametrize("log", ["2NTT 1NNN", "2NNT 2NNT 1NNN", "2NNT 2TTT 1NNN 1NTN", "1NNN 3TTN 2NTN"])
def test_order_of_cohorts_does_not_matter(design, log):
    """recommend replays a log; the answer depends on the counts only, so every order of the cohorts agrees."""
    cohorts = log.split()
    answers = {_answer(doseesc.recommend(design, " ".join(p), warn=False))
               for p in itertools.permutations(cohorts)}
    assert len(answers) == 1


def _states(k):
    """Every 3+3 count vector on k tiers: n in {0, 3, 6}, 0 <= y <= n."""
    per_tier = [(0, 0)] + [(3, y) for y in range(4)] + [(6, y) for y in range(7)]
    for combo in itertools.product(per_tier, repeat=k):
        n = np.array([c[0] for c in combo])
        if n.sum() == 0:
            continue
        yield n, np.array([c[1] for c in combo])


@pytest.mark.parametrize("deescalation", [False, True])
def test_every_state_never_returns_to_a_toxic_tier_and_reason_matches_selection(deescalation):
    k = 3
    design = doseesc.ThreePlusThree(k, deescalation=deescalation, max_n=60)
    states = list(_states(k))
    n = np.array([s[0] for s in states])
    y = np.array([s[1] for s in states])
    decisions = []
    for cur in range(k):
        st = TrialState.from_counts(n, y, np.full(len(states), cur))
        decisions.append(design.decide(st))
    first = decisions[0]
    for dec in decisions[1:]:  # independent of the current tier
        np.testing.assert_array_equal(dec.next, first.next)
        np.testing.assert_array_equal(dec.stop, first.stop)
        np.testing.assert_array_equal(dec.reason, first.reason)
    st = TrialState.from_counts(n, y, np.zeros(len(states), dtype=int))
    sel = design.select(st)
    rows = np.arange(len(states))
    go = ~first.stop
    nxt = first.next[go]
    assert (nxt >= 0).all()
    assert (y[rows[go], nxt] < 2).all(), "a next cohort at a tier with >= 2 DLTs"
    assert (n[rows[go], nxt] <= 3).all(), "a next cohort at a tier that already has 6 patients"
    toxic = y >= 2
    lowest_toxic = np.where(toxic.any(axis=1), np.argmax(toxic, axis=1), k)
    mtd = first.stop & (first.reason == StopReason.MTD_IDENTIFIED)
    # MTD identified: the selected tier is directly below the lowest toxic tier and was treated
    assert (sel[mtd] == lowest_toxic[mtd] - 1).all() and (n[mtd, sel[mtd]] > 0).all()
    if deescalation:  # Korn: the MTD has 6 patients
        assert (n[mtd, sel[mtd]] == 6).all()
    top = first.stop & (first.reason == StopReason.TOP_TIER_TOLERATED)
    assert (sel[top] == k - 1).all()
    low = first.stop & (first.reason == StopReason.LOWEST_TIER_TOXIC)
    assert (sel[low] == -1).all() and (lowest_toxic[low] == 0).all()
    assert set(np.unique(first.reason[first.stop])) <= {StopReason.MTD_IDENTIFIED, StopReason.TOP_TIER_TOLERATED,
                                                        StopReason.LOWEST_TIER_TOXIC}


def test_paths_from_a_log_started_at_tier_2_without_deescalation():
    # after 2NTT the next cohort goes to tier 1; its outcomes, by hand:
    #   0/3 -> tier 1 passed under the toxic tier 2: stop, MTD tier 1
    #   1/3 -> 3 more at tier 1; then 0 or 1 more DLT (<= 1/6): stop, MTD tier 1; 2 or 3 (>= 2/6): stop, no dose
    #   2/3, 3/3 -> the lowest tier is too toxic: stop, no dose
    dp = doseesc.paths(PLAIN, 2, start="2NTT")
    f = dp.nodes().set_index("path")
    assert f.loc["2NTT 1NNN", "decision"] == "stop (MTD identified by the escalation rule); select Tier 1"
    assert f.loc["2NTT 1NNT", "decision"] == "next cohort at Tier 1"
    assert f.loc["2NTT 1NTT", "reason"] == "lowest_tier_toxic"
    assert f.loc["2NTT 1TTT", "selected"] == "No dose"
    assert f.loc["2NTT 1NNT 1NNN", "selected"] == "Tier 1"
    assert f.loc["2NTT 1NNT 1NNT", "reason"] == "lowest_tier_toxic"  # 2/6
    assert f.loc["2NTT 1NNT 1NTT", "selected"] == "No dose"
    assert dp.n_nodes == 4 + 4


def test_paths_from_a_log_started_at_tier_2_with_deescalation():
    # after 2NTT 1NNN: 3 more at tier 1 (Korn); 0 or 1 DLT -> 0/6 or 1/6: stop, MTD tier 1;
    # 2 or 3 DLTs -> 2/6 or 3/6 at the lowest tier: stop, no dose
    dp = doseesc.paths(KORN, 3, start="2NTT 1NNN")
    f = dp.nodes().set_index("path")
    assert dp.n_nodes == 4 and f["stop"].all()
    assert list(f["selected"]) == ["Tier 1", "Tier 1", "No dose", "No dose"]
    assert list(f["tier"]) == ["Tier 1"] * 4


@pytest.mark.parametrize("design", [doseesc.ThreePlusThree(4), doseesc.ThreePlusThree(4, deescalation=True)],
                         ids=["plain", "korn"])
@pytest.mark.parametrize("start", ["2NTT", "3NNN", "2NNN 1NNN", "3NTN 3NNT"])
def test_paths_from_deviating_logs_never_reach_a_toxic_tier(design, start):
    dp = doseesc.paths(design, 6, start=start)
    f = dp.nodes()
    start_counts = np.zeros((design.n_tiers, 2), dtype=int)
    for c in parse_outcomes(start, design.n_tiers):
        start_counts[c.tier] += (c.size, sum(c.tox))
    for _, row in f.iterrows():
        counts = start_counts.copy()
        for c in parse_outcomes(row["path"], design.n_tiers)[len(start.split()):]:
            counts[c.tier] += (c.size, sum(c.tox))
        assert (counts[:, 0] <= 6).all(), row["path"]
        if row["stop"]:
            if row["reason"] in ("mtd_identified", "top_tier_tolerated"):
                assert row["selected"] != "No dose", row["path"]
            elif row["reason"] == "lowest_tier_toxic":
                assert row["selected"] == "No dose", row["path"]
        else:
            assert counts[int(row["next_tier"]) - 1, 1] < 2, row["path"]


def scalar_three_plus_three(n, y, deescalation):
    """Plain-Python 3+3 on complete cohorts, from the counts only (docs/notes/three-plus-three.md, section 4):
    returns (next tier or None, stop reason)."""
    k = len(n)
    low = next((t for t in range(k) if y[t] >= 2), k)  # lowest tier with >= 2 DLTs
    if low == 0:
        return None, StopReason.LOWEST_TIER_TOXIC
    tried = [t for t in range(low) if n[t] > 0]
    if not tried:  # the log started at or above `low`: the untried tier just below it
        return low - 1, StopReason.NOT_STOPPED
    h = tried[-1]
    if n[h] == 3 and y[h] == 1:
        return h, StopReason.NOT_STOPPED
    # h passed (0/3 or <= 1/6): it is below `low`, so it has at most 1 DLT
    if h == k - 1:
        return None, StopReason.TOP_TIER_TOLERATED
    if h + 1 < low:
        return h + 1, StopReason.NOT_STOPPED
    if deescalation and n[h] == 3:
        return h, StopReason.NOT_STOPPED
    return None, StopReason.MTD_IDENTIFIED


@pytest.mark.parametrize("deescalation", [False, True])
def test_vectorised_kernel_equals_scalar_reference_on_any_counts(deescalation):
    k = 4
    design = doseesc.ThreePlusThree(k, deescalation=deescalation, max_n=1000)   # the limit: never binds
    rng = np.random.default_rng(0)
    ns = rng.choice([0, 3, 6], size=(5000, k))
    ns[ns.sum(axis=1) == 0, 0] = 3
    ys = np.minimum(rng.integers(0, 4, size=(5000, k)), ns)
    cur = rng.integers(0, k, size=5000)  # ignored by the rules
    dec = design.step(TrialState.from_counts(ns, ys, cur))
    for i in range(5000):
        nxt, reason = scalar_three_plus_three(ns[i], ys[i], deescalation)
        assert dec.reason[i] == reason, (ns[i], ys[i])
        assert dec.stop[i] == (nxt is None)
        assert dec.next[i] == (-1 if nxt is None else nxt)
