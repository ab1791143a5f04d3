"""The seamless phase 2 stage (issue 22 item 3): Simon and BOP2 boundaries against published tables, the
stage's exact operating characteristics against closed forms, Monte Carlo after an escalation against the
exact P(select) x stage OC within 4 MCSE, batch invariance, time, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import doseesc
from doseesc.calendar import Calendar
from doseesc.engines.phase2 import _stage_times, phase2_exact, run_phase2, simulate_stage
from doseesc.errors import DesignError
from doseesc.phase2 import (BOP2, Phase2Stage, SimonTwoStage, StageRule, bop2_boundaries, phase2_from_toml,
                            stage_oc)
from doseesc.tiers import DAYS_PER_MONTH

# -- Simon (1989), Table 1 (alpha = 0.05, beta = 0.20): (p0, p1) -> optimal and minimax
# (r1/n1, r/n, EN(p0), PET(p0)), the rows most often quoted from the paper (see docs/notes/phase2.md for how
# they were checked: the table itself could not be opened from here).
SIMON_TABLE = [
    ((0.05, 0.25), (0, 9, 2, 17, 12.0, 0.63), (0, 12, 2, 16, 13.8, 0.54)),
    ((0.10, 0.30), (1, 10, 5, 29, 15.0, 0.74), (1, 15, 5, 25, 19.5, 0.55)),
    ((0.20, 0.40), (3, 13, 12, 43, 20.6, 0.75), (4, 18, 10, 33, 22.3, 0.72)),
    ((0.30, 0.50), (5, 15, 18, 46, 23.6, 0.72), (6, 19, 16, 39, 25.7, 0.67)),
]


@pytest.mark.parametrize("probs,optimal,minimax", SIMON_TABLE)
def test_simon_equals_published_table(probs, optimal, minimax):
    p0, p1 = probs
    for kind, row in (("optimal", optimal), ("minimax", minimax)):
        # nmax = 50 holds every design of these rows (the largest n is 46), so the search answers as with 100
        d = SimonTwoStage(p0, p1, 0.05, 0.20, kind=kind, nmax=50)
        assert (d.r1, d.n1, d.r, d.n) == row[:4], (probs, kind)
        assert round(d.en0, 1) == row[4] and round(d.pet0, 2) == row[5]


def test_simon_from_boundaries_and_rule_decisions():
    d = SimonTwoStage.from_boundaries(1, 10, 5, 29, p0=0.10)
    assert d.kind == "given" and d.rule == StageRule((10, 29), (1, 5))
    # PET(0.1) = P(Bin(10, 0.1) <= 1) = 0.9^10 + 10 * 0.1 * 0.9^9 = 0.3487 + 0.3874 = 0.7361
    assert d.pet0 == pytest.approx(0.9 ** 10 + 10 * 0.1 * 0.9 ** 9, abs=1e-12)
    assert d.en0 == pytest.approx(10 + (1 - d.pet0) * 19)
    r = d.rule
    assert r.decision(10, 1) == "no-go"           # 1 response of 10: <= r1 = 1, stop
    assert r.decision(10, 2) == "continue"        # 2 > 1: go on to 29
    assert r.decision(20, 0) == "continue"        # not an analysis
    assert r.decision(29, 5) == "no-go"           # 5 <= r = 5
    assert r.decision(29, 6) == "promising"       # 6 > 5
    tox = StageRule((10, 29), (1, 5), (4, 9))
    assert tox.decision(10, 5, dlts=4) == "no-go"  # 4 DLTs >= 4 at the first analysis, whatever the responses
    assert tox.decision(29, 9, dlts=8) == "promising"


def _simon_reject(r1, n1, r, n, p):
    """Simon's eq. (1) complement: P(X1 > r1 and X1 + X2 > r)."""
    x1 = np.arange(r1 + 1, n1 + 1)
    return float(np.sum(stats.binom.pmf(x1, n1, p) * stats.binom.sf(r - x1, n - n1, p)))


@pytest.mark.parametrize("p", [0.0, 0.1, 0.2, 0.3, 0.55, 1.0])
def test_stage_oc_equals_simon_closed_form(p):
    rule = StageRule((10, 29), (1, 5))
    oc = stage_oc(rule, p_e=p)
    assert oc["p_promising"] == pytest.approx(_simon_reject(1, 10, 5, 29, p), abs=1e-12)
    pet = stats.binom.cdf(1, 10, p)
    assert oc["p_stop"][0] == pytest.approx(pet, abs=1e-12)
    assert oc["expected_n"] == pytest.approx(10 + (1 - pet) * 19, abs=1e-10)


def test_stage_oc_with_toxicity_factorises_under_independence():
    # With independent response and DLT, "go" = (responses never cross) and (DLTs never cross): P(go) is the
    # product of the two one-endpoint P(go). The DLT rule as a response rule: DLT >= t <=> non-DLT <= n - t.
    looks = (10, 20, 30, 40)
    eff, tox = (1, 3, 6, 9), (5, 8, 10, 12)
    pe, pt = 0.35, 0.22
    both = stage_oc(StageRule(looks, eff, tox), p_e=pe, p_t=pt)["p_promising"]
    go_e = stage_oc(StageRule(looks, eff), p_e=pe)["p_promising"]
    go_t = stage_oc(StageRule(looks, tuple(n - t for n, t in zip(looks, tox))), p_e=1 - pt)["p_promising"]
    assert both == pytest.approx(go_e * go_t, abs=1e-12)
    # one look: P(go) = P(Bin(n, p) > r)
    assert stage_oc(StageRule((25,), (7,)), p_e=0.3)["p_promising"] == pytest.approx(stats.binom.sf(7, 25, 0.3))


# -- BOP2: boundaries C(n) = lambda (n/N)^gamma. Published: the BOP2FE R package (CRAN 1.0.3) README prints
# the BOP2 futility boundaries (its BOP2 part: no-go when Pr(p_E > phi_E | data) < lambda (n/N)^gamma, prior
# Beta(phi_E, 1 - phi_E); joint endpoint with Dirichlet prior equal to the null) for two settings:
#  1. binary, H0 = 0.2, looks 10, 15, ..., 40, lambda = 0.9, gamma = 1: futility 1 2 3 5 7 9 11;
#  2. joint efficacy-toxicity, H0 = (0.15, 0.30, 0.15, 0.40) (OR-tox, OR-no tox, no OR-tox, no OR-no tox: phi_E
#     = 0.45, phi_T = 0.30), lambda = 0.7, gamma = 0.8: OR futility 3 5 8 11 13 16 19, toxicity 5 6 7 8 9 10 11.
LOOKS = (10, 15, 20, 25, 30, 35, 40)


def test_bop2_boundaries_equal_published_binary():
    eff, tox = bop2_boundaries(LOOKS, 0.2, 0.9, 1.0)
    assert eff == (1, 2, 3, 5, 7, 9, 11) and tox is None
    # hand check at the first look: C(10) = 0.9 * 10/40 = 0.225; Pr(p > 0.2 | 1 of 10) = P(Beta(1.2, 9.8) > 0.2)
    # is below 0.225 (stop) and Pr(p > 0.2 | 2 of 10) = P(Beta(2.2, 8.8) > 0.2) is above (go on)
    assert stats.beta.sf(0.2, 1.2, 9.8) < 0.225 < stats.beta.sf(0.2, 2.2, 8.8)
    d = BOP2(0.2, 0.4, LOOKS, alpha=0.1, lam=0.9, gam=1.0)
    assert d.eff_stop == (1, 2, 3, 5, 7, 9, 11) and np.allclose(d.cutoffs(), 0.9 * np.array(LOOKS) / 40)


def test_bop2_boundaries_equal_published_joint():
    eff, tox = bop2_boundaries(LOOKS, 0.45, 0.7, 0.8, tox_null=0.30)
    assert eff == (3, 5, 8, 11, 13, 16, 19)
    assert tox == (5, 6, 7, 8, 9, 10, 11)
    # hand check at the last look: C(40) = 0.7; Pr(p_T <= 0.3 | 11 of 40) = P(Beta(11.3, 29.7) <= 0.3) < 0.7 stops,
    # 10 of 40 does not
    assert stats.beta.cdf(0.3, 11.3, 29.7) < 0.7 <= stats.beta.cdf(0.3, 10.3, 30.7)


def _scalar_go(looks, eff, p):
    """Reference P(go) by plain recursion over the response count (one endpoint)."""
    dist = {0: 1.0}
    prev = 0
    for k, n in enumerate(looks):
        m = n - prev
        new = {}
        for x, w in dist.items():
            for dx in range(m + 1):
                new[x + dx] = new.get(x + dx, 0.0) + w * math.comb(m, dx) * p ** dx * (1 - p) ** (m - dx)
        dist = {x: w for x, w in new.items() if x > eff[k]}
        prev = n
    return sum(dist.values())


def test_bop2_calibration_is_the_best_pair_of_its_grid():
    grid_l = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    grid_g = (0.0, 0.5, 1.0)
    looks = (10, 20, 30, 40)
    d = BOP2(0.2, 0.4, looks, alpha=0.1, lambda_grid=grid_l, gamma_grid=grid_g)
    assert d.type1 <= 0.1 and d.type1 == pytest.approx(_scalar_go(looks, d.eff_stop, 0.2), abs=1e-12)
    assert d.power == pytest.approx(_scalar_go(looks, d.eff_stop, 0.4), abs=1e-12)
    best = -1.0
    for lam in grid_l:
        for gam in grid_g:
            eff, _ = bop2_boundaries(looks, 0.2, lam, gam)
            if _scalar_go(looks, eff, 0.2) <= 0.1:
                best = max(best, _scalar_go(looks, eff, 0.4))
    assert d.power == pytest.approx(best, abs=1e-12)


def test_bop2_joint_calibration_controls_type1():
    d = BOP2(0.2, 0.4, (10, 20, 30, 40), alpha=0.1, tox_null=0.3, tox_alt=0.15,
             lambda_grid=tuple(i / 10 for i in range(1, 10)), gamma_grid=(0.0, 0.5, 1.0))
    assert d.tox_stop is not None and d.type1 <= 0.1 + 1e-12
    oc0 = stage_oc(d.rule, p_e=0.2, p_t=0.3)
    assert oc0["p_promising"] == pytest.approx(d.type1, abs=1e-12)
    assert stage_oc(d.rule, p_e=0.4, p_t=0.15)["p_promising"] == pytest.approx(d.power, abs=1e-12)


# -- after an escalation ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gd2():
    return doseesc.load_protocol(doseesc_root() / "scenarios" / "gd2_b7h3.toml")


def doseesc_root():
    from pathlib import Path
    return Path(__file__).resolve().parents[1]


SIMON = Phase2Stage(SimonTwoStage.from_boundaries(3, 13, 12, 43, tox_stop=(6, 16)))
BOP2_STAGE = Phase2Stage(BOP2(0.2, 0.4, (10, 20, 30, 40), alpha=0.1, tox_null=0.3, tox_alt=0.15, lam=0.65, gam=0.95))


@pytest.mark.parametrize("stage", [SIMON, BOP2_STAGE], ids=["simon", "bop2"])
@pytest.mark.parametrize("scenario", ["all-safe", "mtd-middle", "steep"])
def test_monte_carlo_agrees_with_exact_after_3plus3(gd2, stage, scenario):
    d, s = gd2.designs["3+3"], gd2.scenarios[scenario]
    mc = doseesc.simulate(d, s, n_trials=4000, rng=11)
    res = run_phase2(mc, stage)
    ex = phase2_exact(doseesc.exact(d, s), stage)
    for name in ("p_promising", "expected_n_total", "expected_n_phase2"):
        m, se = res.metrics[name], res.mcse[name]
        assert se > 0 and abs(m - ex.metrics[name]) <= 4 * se, (name, m, ex.metrics[name], se)
    # exact given the simulated selections: sum over tiers of P^(select) x P(promising | tier); the paired
    # difference promising_i - q[selected_i] has mean 0
    q = np.array([0.0] + list(res.by_tier["p_promising_at_tier"][1:]))
    diff = res.promising - q[mc.selected + 1]
    assert abs(diff.mean()) <= 4 * diff.std(ddof=1) / math.sqrt(diff.size)
    assert res.extra["exact"].metrics["p_promising"] == pytest.approx(q[mc.selected + 1].mean(), abs=1e-12)
    # conditional on the true MTD selected: the stage's OC at the MTD's truth
    mtd = mc.true_mtd
    oc = stage.oc(joint=s.joint()[mtd])
    sel = mc.selected == mtd
    assert abs(res.metrics["p_promising_given_mtd"] - oc["p_promising"]) <= 4 * res.mcse["p_promising_given_mtd"]
    assert sel.any() and ex.metrics["p_promising_given_mtd"] == pytest.approx(oc["p_promising"], abs=1e-12)


def test_no_dose_means_no_phase2_and_patients_by_block(gd2):
    s = gd2.scenarios["mtd-middle"]
    mc = doseesc.simulate(gd2.designs["3+3"], s, n_trials=3000, rng=3)
    seq = np.random.SeedSequence(3)
    a = simulate_stage(mc.selected, s, BOP2_STAGE, seq, batch_size=3000)
    b = simulate_stage(mc.selected, s, BOP2_STAGE, seq, batch_size=700)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # the first 1,500 trials alone see the same phase 2 patients
    c = simulate_stage(mc.selected[:1500], s, BOP2_STAGE, seq)
    np.testing.assert_array_equal(a[0][:1500], c[0])
    none = mc.selected < 0
    assert not a[0][none].any() and (a[1][none] == 0).all()
    assert set(np.unique(a[1][~none])) <= {10, 20, 30, 40}
    # running the stage leaves the escalation untouched
    again = doseesc.simulate(gd2.designs["3+3"], s, n_trials=3000, rng=3)
    np.testing.assert_array_equal(again.selected, mc.selected)


def test_time_to_phase2_decision():
    cal = Calendar(accrual_rate=1.0, dropout=0.1, vein_to_vein_days=21, dlt_window_days=28, eff_window_days=90)
    # gap per infused patient: 30.4375 days / (1 x 0.9) = 33.819 days; each analysis waits v2v 21 + window 90
    gap = DAYS_PER_MONTH / 0.9
    t = _stage_times(SIMON, cal)
    assert t[0] == pytest.approx(13 * gap + 111) and t[1] == pytest.approx(t[0] + 30 * gap + 111)


def test_time_after_a_calendar_run(gd2):
    s = gd2.scenarios["steep"]
    mc = doseesc.simulate(gd2.designs["3+3"], s, n_trials=600, rng=2, calendar=gd2.calendar)
    res = run_phase2(mc, SIMON, calendar=gd2.calendar)
    times = _stage_times(SIMON, gd2.calendar)
    dec = mc.extra["time_to_decision_days"][0]
    t2 = res.extra["time_to_phase2_decision_days"]
    stage_time = np.where(mc.selected < 0, 0.0, np.where(res.n_phase2 == 13, times[0], times[1]))
    np.testing.assert_allclose(t2, dec + stage_time)
    assert res.metrics["time_to_phase2_decision_days"] == pytest.approx(t2.mean())


# -- files and bad input ------------------------------------------------------------------------------------
def test_from_dict_round_trip():
    table = {"design": "BOP2", "p0": 0.2, "p1": 0.4, "looks": [10, 20, 30, 40], "alpha": 0.1,
             "tox_null": 0.3, "tox_alt": 0.15, "lam": 0.65, "gam": 0.95}
    st = phase2_from_toml(table, "scenarios/x.toml")
    assert st.rule == BOP2_STAGE.rule
    assert Phase2Stage.from_dict(st.to_dict()).rule == st.rule
    simon = Phase2Stage.from_dict({"design": "Simon", "r1": 3, "n1": 13, "r": 12, "n": 43, "tox_stop": [6, 16]})
    assert simon.rule == SIMON.rule
    assert Phase2Stage.from_dict(simon.to_dict()).rule == simon.rule


@pytest.mark.parametrize("table,words", [
    ({"design": "Fleming"}, ["[phase2]", "design = 'Fleming'"]),
    ({"design": "Simon", "p0": 1.5, "p1": 0.4}, ["[phase2]", "p0 = 1.5"]),
    ({"design": "Simon", "p0": 0.4, "p1": 0.2}, ["p1 = 0.2", "p0 = 0.4"]),
    ({"design": "Simon", "p0": 0.2, "p1": 0.4, "kind": "best"}, ["kind = 'best'"]),
    ({"design": "Simon", "r1": 1, "n1": 10, "r": 5}, ["missing key 'n'"]),
    ({"design": "Simon", "r1": 12, "n1": 10, "r": 5, "n": 29}, ["r1 = 12"]),
    ({"design": "BOP2", "p0": 0.2, "p1": 0.4, "looks": [20, 10]}, ["looks = [20, 10]"]),
    ({"design": "BOP2", "p0": 0.2, "p1": 0.4, "looks": 40}, ["looks = 40"]),
    ({"design": "BOP2", "p0": 0.2, "p1": 0.4, "looks": [10, 20], "alpha": 0}, ["alpha = 0"]),
    ({"design": "BOP2", "p0": 0.2, "p1": 0.4, "looks": [10, 20], "tox_null": 0.3}, ["tox_alt"]),
    ({"design": "BOP2", "p0": 0.2, "looks": [10, 20], "lam": 0.9}, ["lam and gam"]),
    ({"design": "BOP2", "p0": 0.2, "p1": 0.4, "looks": [10, 20], "size": 3}, ["unknown key 'size' = 3"]),
])
def test_bad_input_names_key_and_value(table, words):
    with pytest.raises(DesignError) as err:
        phase2_from_toml(table, "scenarios/gd2_b7h3.toml")
    msg = str(err.value)
    assert "scenarios/gd2_b7h3.toml: [phase2]" in msg
    for w in words:
        assert w in msg, (w, msg)


def test_bad_stage_and_scenario_without_response():
    with pytest.raises(DesignError, match="must be a SimonTwoStage or a BOP2"):
        Phase2Stage("Simon")
    with pytest.raises(DesignError, match="no two-stage design"):
        SimonTwoStage(0.2, 0.25, 0.05, 0.2, nmax=20)
    s = doseesc.Scenario(true_tox=[0.1, 0.2])
    mc = doseesc.simulate(doseesc.ThreePlusThree(n_tiers=2), s, n_trials=10, rng=1)
    with pytest.raises(doseesc.DoseescError, match="has no true_eff"):
        run_phase2(mc, SIMON)


def test_study_phase2_rows(gd2):
    from doseesc.engines.phase2 import study_phase2
    from doseesc.study import run_protocol
    study = run_protocol(gd2, method="exact", designs=["3+3"], scenarios=["mtd-middle", "steep"])
    df = study_phase2(study, SIMON)
    assert list(df["scenario"]) == ["mtd-middle", "steep"] and set(df["method"]) == {"exact"}
    for _, row in df.iterrows():
        r = next(x for x in study.results if x.scenario.name == row["scenario"])
        assert row["p_promising"] == pytest.approx(phase2_exact(r, SIMON).metrics["p_promising"], abs=1e-15)
        assert row["p_promising_exact"] == row["p_promising"] and row["p_promising_mcse"] == 0.0
    # a protocol without a [phase2] stage gives an empty table
    from types import SimpleNamespace
    assert study_phase2(SimpleNamespace(protocol=SimpleNamespace(phase2=None))).empty


def test_describe_states_rule_and_errors():
    text = Phase2Stage(SimonTwoStage.from_boundaries(1, 10, 5, 29, p0=0.1)).describe()
    # P(promising | 0.1) = 1 - P(reject the drug) = Simon's type I error of 1/10, 5/29: 0.047
    assert "at most 1 responses" in text and "more than 5 responses of 29" in text
    assert f"{_simon_reject(1, 10, 5, 29, 0.1):.3f}" == "0.047" and "P(promising) at p0 = 0.1: 0.047" in text
    text = BOP2_STAGE.describe()
    assert "1/10, 3/20, 6/30, 9/40 responses" in text and "5/10, 8/20, 10/30, 12/40 DLTs" in text


def test_phase2_from_file_needs_response_truths():
    from doseesc.phase2 import phase2_from_file
    table = {"design": "Simon", "r1": 1, "n1": 10, "r": 5, "n": 29}
    ok = {"a": doseesc.Scenario(true_tox=[0.1, 0.2], true_eff=[0.2, 0.4])}
    assert phase2_from_file({"tiers": {}}, ok, "f.toml") is None
    assert phase2_from_file({"phase2": table}, ok, "f.toml").rule == StageRule((10, 29), (1, 5))
    bad = {**ok, "tox only": doseesc.Scenario(true_tox=[0.1, 0.2])}
    with pytest.raises(DesignError, match=r"f.toml: \[phase2\] needs true_eff .* scenario 'tox only'"):
        phase2_from_file({"phase2": table}, bad, "f.toml")


def test_simulated_patients_follow_their_uniforms():
    # Trials 0..4 at tiers 1, 0, -1, 1, 0 of a two-tier truth; the stage's patients are read back from the
    # reserved streams and the decision recomputed by hand from the counts at the looks.
    from doseesc.rng import Stream, patient_uniforms
    s = doseesc.Scenario(true_tox=[0.1, 0.3], true_eff=[0.2, 0.5], association=2.0)
    sel = np.array([1, 0, -1, 1, 0])
    seq = np.random.SeedSequence(99)
    prom, n2, look = simulate_stage(sel, s, SIMON, seq)
    u_t = patient_uniforms(seq, 0, 5, 43, Stream.PHASE2_TOX)
    u_e = patient_uniforms(seq, 0, 5, 43, Stream.PHASE2_EFF)
    given_t, given_n = s.response_given_tox()
    # seed 99 exercises every branch: promising, no-go at the end, stop after stage 1, no dose
    np.testing.assert_array_equal(n2, [43, 43, 0, 43, 13])
    np.testing.assert_array_equal(prom, [True, False, False, True, False])
    for i, t in enumerate(sel):
        if t < 0:
            assert not prom[i] and n2[i] == 0 and look[i] == -1
            continue
        dlt = u_t[i] < s.true_tox[t]
        resp = u_e[i] < np.where(dlt, given_t[t], given_n[t])
        # Simon 3/13, 12/43 with DLT stops 6/13, 16/43
        x13, y13 = resp[:13].sum(), dlt[:13].sum()
        if x13 <= 3 or y13 >= 6:
            assert (prom[i], n2[i], look[i]) == (False, 13, 0)
        else:
            go = resp.sum() > 12 and dlt.sum() < 16
            assert (prom[i], n2[i], look[i]) == (go, 43, 1)
