"""Monte Carlo engine: reproducibility, bookkeeping, and agreement with the exact engine."""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.engines.montecarlo import run_batch
from doseesc.state import StopReason

DESIGNS = [doseesc.ThreePlusThree(4), doseesc.ThreePlusThree(4, deescalation=True),
           doseesc.ThreePlusThree(4, max_n=12), doseesc.ThreePlusThree(4, deescalation=True, max_n=15)]
TRUTH = doseesc.Scenario(true_tox=[0.1, 0.25, 0.4, 0.55], target=0.25)


def _ids(d):
    return f"{d.label}-max{d.max_n}"


@pytest.mark.parametrize("design", DESIGNS, ids=_ids)
def test_batch_size_does_not_change_any_trial(design):
    runs = [doseesc.simulate(design, TRUTH, 5000, rng=11, batch_size=b) for b in (5000, 1024, 777, 2048)]
    first = runs[0]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.n, first.n)
        np.testing.assert_array_equal(r.y, first.y)
        np.testing.assert_array_equal(r.selected, first.selected)
        np.testing.assert_array_equal(r.reason, first.reason)
        np.testing.assert_array_equal(r.patients["tox"], first.patients["tox"])
    one = doseesc.simulate(design, TRUTH, 300, rng=11, batch_size=1)
    np.testing.assert_array_equal(one.n, first.n[:300])
    np.testing.assert_array_equal(one.selected, first.selected[:300])


def test_same_seed_same_numbers_and_different_seed_different_numbers():
    d = DESIGNS[0]
    a = doseesc.simulate(d, TRUTH, 3000, rng=5)
    b = doseesc.simulate(d, TRUTH, 3000, rng=np.random.SeedSequence(5))
    c = doseesc.simulate(d, TRUTH, 3000, rng=6)
    np.testing.assert_array_equal(a.n, b.n)
    assert not np.array_equal(a.n, c.n)
    assert a.provenance["seed"]["entropy"] == 5


def test_fresh_entropy_is_recorded_and_reproduces():
    d = DESIGNS[0]
    a = doseesc.simulate(d, TRUTH, 2000)
    b = doseesc.simulate(d, TRUTH, 2000, rng=a.provenance["seed"]["entropy"])
    np.testing.assert_array_equal(a.n, b.n)


def test_designs_see_the_same_patients():
    """Paired comparison: patient k of trial i has the same latent uniform under every design."""
    a = doseesc.simulate(DESIGNS[0], TRUTH, 2000, rng=3)
    b = doseesc.simulate(DESIGNS[1], TRUTH, 2000, rng=3)
    # both designs treat the first cohort at tier 1: identical outcomes
    np.testing.assert_array_equal(a.patients["tox"][:, :3], b.patients["tox"][:, :3])
    # and whenever both put patient k at the same tier, the outcome is the same
    same = (a.patients["tier"] == b.patients["tier"]) & (a.patients["tier"] >= 0)
    np.testing.assert_array_equal(a.patients["tox"][same], b.patients["tox"][same])


@pytest.mark.parametrize("design", DESIGNS, ids=_ids)
def test_bookkeeping_invariants(design):
    r = doseesc.simulate(design, TRUTH, 4000, rng=2)
    tier, tox = r.patients["tier"], r.patients["tox"]
    k = design.n_tiers
    # counts per tier equal the per-patient records; nobody after the end of a trial
    for t in range(k):
        np.testing.assert_array_equal((tier == t).sum(axis=1), r.n[:, t])
        np.testing.assert_array_equal(((tier == t) & tox).sum(axis=1), r.y[:, t])
    enrolled = tier >= 0
    assert np.all(enrolled[:, :-1] | ~enrolled[:, 1:]), "a patient was recorded after the trial ended"
    assert np.all(~tox[~enrolled])
    assert r.total_n.max() <= design.max_n
    assert np.all(r.reason != StopReason.NOT_STOPPED)
    # 3+3 treats 3 or 6 per tier, except a cohort cut short by max_n
    cut = r.reason == StopReason.MAX_N
    assert np.all(np.isin(r.n[~cut], [0, 3, 6]))
    # never skip: a tier is tried only if every tier below was tried
    tried = r.n > 0
    assert np.all(tried[:, :-1] | ~tried[:, 1:])


@pytest.mark.parametrize("design", DESIGNS, ids=_ids)
def test_monte_carlo_within_4_se_of_exact(design):
    n_trials = 20000
    mc = doseesc.simulate(design, TRUTH, n_trials, rng=2024)
    ex = doseesc.exact(design, TRUTH)
    p = ex.p_select
    se = np.sqrt(p * (1 - p) / n_trials)
    assert np.all(np.abs(mc.p_select - p) <= 4 * se + 1e-15), (mc.p_select, p)
    assert abs(mc.expected_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(n_trials)
    for name in ("p_correct", "mean_dlt", "share_above_mtd"):
        x_mc, se_mc = mc.metric(name)
        x_ex, _ = ex.metric(name)
        assert abs(x_mc - x_ex) <= 4 * se_mc, name


def test_mcse_matches_binomial_formula():
    mc = doseesc.simulate(DESIGNS[0], TRUTH, 10000, rng=1)
    p = mc.p_select
    np.testing.assert_allclose(mc.p_select_mcse, np.sqrt(p * (1 - p) / (10000 - 1)), rtol=1e-12)
    ex = doseesc.exact(DESIGNS[0], TRUTH)
    assert np.all(ex.p_select_mcse == 0) and ex.expected_n_mcse == 0


def _uniforms_for(dlts_per_patient, max_n):
    """Latent uniforms that make the listed patients have (T) or not have (N) a DLT under any p in (0,1)."""
    u = np.full((1, max_n), 0.5)
    for k, ch in enumerate(dlts_per_patient):
        u[0, k] = 0.0 if ch == "T" else 1.0 - 1e-12
    return u


@pytest.mark.parametrize("deescalation,patients,log,selected,reason", [
    # traditional 3+3, tiers 1..3
    (False, "NNN NNN NNN", "1NNN 2NNN 3NNN", 3, StopReason.TOP_TIER_TOLERATED),
    (False, "NNN NTN NNN TTN", "1NNN 2NTN 2NNN 3TTN", 2, StopReason.MTD_IDENTIFIED),
    (False, "TTN", "1TTN", 0, StopReason.LOWEST_TIER_TOXIC),
    (False, "NNN TNN TNN", "1NNN 2TNN 2TNN", 1, StopReason.MTD_IDENTIFIED),
    (False, "NTN NNN NNN TTT", "1NTN 1NNN 2NNN 3TTT", 2, StopReason.MTD_IDENTIFIED),
    # with de-escalation: MTD needs 6 patients, except the top tier passed
    (True, "NNN NNN NNN", "1NNN 2NNN 3NNN", 3, StopReason.TOP_TIER_TOLERATED),
    (True, "NNN NNN TTN NNN", "1NNN 2NNN 3TTN 2NNN", 2, StopReason.MTD_IDENTIFIED),
    (True, "NNN NNN TTN TTN NNN", "1NNN 2NNN 3TTN 2TTN 1NNN", 1, StopReason.MTD_IDENTIFIED),
    (True, "NNN NNN TTN TTN TNT", "1NNN 2NNN 3TTN 2TTN 1TNT", 0, StopReason.LOWEST_TIER_TOXIC),
    (True, "NTN NNN NNN TTN NNN", "1NTN 1NNN 2NNN 3TTN 2NNN", 2, StopReason.MTD_IDENTIFIED),
    (True, "NTN NNN TTN", "1NTN 1NNN 2TTN", 1, StopReason.MTD_IDENTIFIED),
])
def test_hand_worked_paths(deescalation, patients, log, selected, reason):
    design = doseesc.ThreePlusThree(3, deescalation=deescalation)
    u = _uniforms_for(patients.replace(" ", ""), design.max_n)
    out = run_batch(design, np.array([0.3, 0.3, 0.3]), u)
    got = doseesc.outcomes.patient_log(out["tier"][0], out["tox"][0], cohort_breaks=out["new_cohort"][0])
    assert got == log
    assert out["selected"][0] == selected - 1
    assert out["reason"][0] == reason
    rec = doseesc.recommend(design, log)
    assert rec.stop and rec.selected == selected - 1 and rec.reason == reason


def test_stopped_trials_never_change():
    design = DESIGNS[1]
    r1 = doseesc.simulate(design, TRUTH, 3000, rng=9)
    # extend every trial's patients with extra uniforms: results must not move
    from doseesc.rng import Stream, patient_uniforms
    seq = np.random.SeedSequence(9)
    u = patient_uniforms(seq, 0, 3000, design.max_n, Stream.TOX)
    u_more = np.concatenate([u, np.zeros((3000, 12))], axis=1)  # a stopped trial must not read these
    wide = doseesc.ThreePlusThree(4, deescalation=True, max_n=design.max_n + 12)
    out = run_batch(wide, np.asarray(TRUTH.true_tox), u_more)
    np.testing.assert_array_equal(out["n"], r1.n)
    np.testing.assert_array_equal(out["selected"], r1.selected)


def test_max_n_truncation_is_recorded():
    d = doseesc.ThreePlusThree(4, max_n=7)
    r = doseesc.simulate(d, doseesc.Scenario(true_tox=[0.01, 0.01, 0.01, 0.01]), 1000, rng=1)
    assert r.total_n.max() == 7
    cut = r.reason == StopReason.MAX_N
    assert cut.mean() > 0.9
    # two full cohorts and one patient of a third; the MTD is the highest tier passed so far
    nc, yc = r.n[cut], r.y[cut]
    assert np.all((nc % 3 == 1).sum(axis=1) == 1)
    passed = ((nc == 3) & (yc == 0)) | ((nc == 6) & (yc <= 1))
    expected = np.where(passed, np.arange(4), -1).max(axis=1)
    np.testing.assert_array_equal(r.selected[cut], expected)
    ex = doseesc.exact(d, doseesc.Scenario(true_tox=[0.01, 0.01, 0.01, 0.01]))
    assert abs(cut.mean() - ex.stop_report().query("kind == 'stop reason'").loc["max_n", "probability"]) < 4 * np.sqrt(0.05 / 1000)


def test_design_round_trip():
    for d in DESIGNS:
        assert doseesc.design_from_dict(d.to_dict()) == d


def test_incompatible_design_and_scenario():
    with pytest.raises(doseesc.DesignError, match="3 tiers"):
        doseesc.simulate(doseesc.ThreePlusThree(3), TRUTH, 100)
    with pytest.raises(doseesc.DoseescError, match="n_trials"):
        doseesc.simulate(DESIGNS[0], TRUTH, 1)
    with pytest.raises(doseesc.DoseescError, match="rng"):
        doseesc.simulate(DESIGNS[0], TRUTH, 100, rng="abc")


def test_sd_n_mcse_covers_the_exact_value():
    """The MCSE of SD(N) (delta method on the sample variance) must cover exact SD(N) for skewed, discrete N."""
    d = doseesc.BOIN(0.25, 3, max_n=15)
    s = doseesc.Scenario(true_tox=[0.05, 0.15, 0.40], target=0.25)
    ex = doseesc.exact(d, s)
    z = []
    for seed in range(8):
        r = doseesc.simulate(d, s, 20000, rng=seed)
        est, se = r.metric("sd_n")
        z.append((est - ex.sd_n) / se)
    assert np.all(np.abs(z) < 4), z
    # and it is not the normal-theory value, which is far too small here
    assert se > 5 * r.sd_n / np.sqrt(2 * (r.n_trials - 1))
