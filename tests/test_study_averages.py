"""Study.averages(): every metric per design averaged over scenarios, its MCSE and the worst case (issue 18
item 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import doseesc
from doseesc.errors import DoseescError
from doseesc.study import Study, run_protocol

TINY = """[protocol]
name = "tiny"
target = 0.3
max_n = 12
[tiers]
doses = [1, 2]
[[design]]
name = "3+3"
type = "3+3"
[[scenario]]
name = "a"
true_tox = [0.1, 0.5]
[[scenario]]
name = "b"
true_tox = [{b}]
"""


def _protocol(tmp_path, b="0.05, 0.1", extra=""):
    f = tmp_path / "tiny.toml"
    f.write_text(TINY.format(b=b) + extra)
    return doseesc.load_protocol(f)


# 3+3 over 2 tiers, target 0.3 (the cases of tests/test_safety_metrics.py).
# Scenario a, true P(DLT) 0.1, 0.5: true MTD tier 1. Per cohort at tier 1: P(0 DLT) 0.729, P(1) 0.243,
#   P(>=2) 0.028; at tier 2: 0.125, 0.375, 0.5. P(reach tier 2) = 0.729 + 0.243 * 0.729 = 0.906147.
#   P(above) = P(select tier 2) = 0.906147 * (0.125 + 0.375 * 0.125) = 0.155744.
#   P(no dose) = 0.028 + 0.243 * (1 - 0.729) = 0.093853; P(correct) = 1 - 0.093853 - 0.155744 = 0.750403.
#   P(poor allocation) = P(3 at tier 1, 6 at tier 2) = 0.729 * 0.375 = 0.273375.
# Scenario b, true P(DLT) 0.05, 0.1: true MTD tier 2 (the top): P(above) = 0.
#   Tier 1 (p 0.05): P(0) = 0.857375, P(1) = 0.135375; P(reach tier 2) = 0.857375 * (1 + 0.135375) = 0.973443.
#   Tier 2 (p 0.1) selected after 0/3 or 1/3 then 0/3: 0.729 + 0.243 * 0.729 = 0.906147;
#   P(correct) = 0.973443 * 0.906147 = 0.882081. P(poor allocation) = 0.114421 (test_safety_metrics.py).
A_ABOVE, A_CORRECT, A_POOR = 0.906147 * (0.125 + 0.375 * 0.125), 1 - 0.093853 - 0.155744, 0.729 * 0.375
B_CORRECT, B_POOR = 0.857375 * 1.135375 * 0.906147, 0.114421


def test_averages_of_an_exact_study_by_hand(tmp_path):
    """Equal weights: P(above) (0.155744 + 0) / 2 = 0.077872, worst 0.155744 (a); P(correct)
    (0.750403 + 0.882081) / 2 = 0.816242, worst (smallest) 0.750403 (a); P(poor allocation)
    (0.273375 + 0.114421) / 2 = 0.193898, worst 0.273375 (a). Exact runs: every MCSE 0.
    Weights a: 3, b: 1 (normalised 0.75, 0.25): P(above) 0.75 * 0.155744 = 0.116808; P(correct)
    0.75 * 0.750403 + 0.25 * 0.882081 = 0.783323; the worst case does not depend on the weights."""
    study = run_protocol(_protocol(tmp_path), method="exact")
    av = study.averages().set_index("metric")
    assert set(study.averages()["design"]) == {"3+3"}
    assert av.loc["p_above_mtd", "estimate"] == pytest.approx(0.077872, abs=1e-6)
    assert av.loc["p_above_mtd", "estimate"] == pytest.approx(A_ABOVE / 2, abs=1e-12)
    assert av.loc["p_above_mtd", "worst"] == pytest.approx(0.155744, abs=1e-6)
    assert av.loc["p_above_mtd", "worst_scenario"] == "a"
    assert av.loc["p_correct", "estimate"] == pytest.approx(0.816242, abs=1e-6)
    assert av.loc["p_correct", "estimate"] == pytest.approx((A_CORRECT + B_CORRECT) / 2, abs=1e-6)
    assert av.loc["p_correct", "worst"] == pytest.approx(0.750403, abs=1e-6)
    assert av.loc["p_poor_allocation", "estimate"] == pytest.approx(0.193898, abs=1e-6)
    assert av.loc["p_poor_allocation", "worst"] == pytest.approx(A_POOR, abs=1e-12)
    assert (av["mcse"].dropna() == 0).all() and (av["method"].dropna() == "exact").all()
    assert av.loc["p_above_mtd", "n_scenarios"] == 2
    assert math.isnan(av.loc["expected_n", "worst"])                # not a safety metric: no worst case
    # p_two_dlt_cohort is not computable from exact runs: NaN, in no scenario
    assert math.isnan(av.loc["p_two_dlt_cohort", "estimate"]) and av.loc["p_two_dlt_cohort", "n_scenarios"] == 0
    # every average is the mean of the per-scenario estimates
    m = study.metrics().pivot(index="metric", columns="scenario", values="estimate")
    for name in ("expected_n", "mean_dlt", "share_above_mtd", "expected_screened"):
        assert av.loc[name, "estimate"] == pytest.approx(m.loc[name].mean(), abs=1e-12)
    w = study.averages(weights={"a": 3, "b": 1}).set_index("metric")
    assert w.loc["p_above_mtd", "estimate"] == pytest.approx(0.116808, abs=1e-6)
    assert w.loc["p_correct", "estimate"] == pytest.approx(0.783323, abs=1e-6)
    assert w.loc["p_correct", "worst"] == av.loc["p_correct", "worst"]
    seq = study.averages(weights=[3, 1]).set_index("metric")
    assert seq.loc["p_correct", "estimate"] == w.loc["p_correct", "estimate"]


def test_a_metric_undefined_in_a_scenario_is_averaged_over_the_others(tmp_path):
    """Scenario b with true P(DLT) 0.5, 0.6 has no safe tier: P(poor allocation) is undefined there (NaN),
    so its average is scenario a's alone (0.273375, n_scenarios 1); P(above) is 1 - P(no dose) in b."""
    study = run_protocol(_protocol(tmp_path, b="0.5, 0.6"), method="exact")
    av = study.averages().set_index("metric")
    assert av.loc["p_poor_allocation", "estimate"] == pytest.approx(A_POOR, abs=1e-12)
    assert av.loc["p_poor_allocation", "n_scenarios"] == 1
    b = next(r for r in study.results if r.scenario.name == "b")
    assert av.loc["p_above_mtd", "estimate"] == pytest.approx((A_ABOVE + 1 - b.p_no_dose) / 2, abs=1e-12)
    assert av.loc["p_above_mtd", "worst_scenario"] == "b"


def test_bad_weights_are_refused_with_the_scenario_named(tmp_path):
    study = run_protocol(_protocol(tmp_path), method="exact")
    with pytest.raises(DoseescError, match="no scenario named 'c'"):
        study.averages(weights={"a": 1, "b": 1, "c": 1})
    with pytest.raises(DoseescError, match="no weight for scenario 'b'"):
        study.averages(weights={"a": 1})
    with pytest.raises(DoseescError, match="scenario 'b' has weight -1"):
        study.averages(weights=[1, -1])
    with pytest.raises(DoseescError, match="3 weights for 2 scenarios"):
        study.averages(weights=[1, 1, 1])
    with pytest.raises(DoseescError, match="every weight is 0"):
        study.averages(weights=[0, 0])


def test_mcse_of_independent_runs_is_the_root_sum_of_squares(tmp_path):
    """Runs with different seeds are independent: MCSE of the average = sqrt(se_a^2 + se_b^2) / 2
    (weights w: sqrt(sum w^2 se^2))."""
    p = _protocol(tmp_path)
    d = p.design("3+3")
    ra = doseesc.simulate(d, p.scenario("a"), 3000, rng=1, ladder=p.tiers)
    rb = doseesc.simulate(d, p.scenario("b"), 3000, rng=2, ladder=p.tiers)
    study = Study(protocol=p, method="simulate", results=(ra, rb))
    av = study.averages().set_index("metric")
    wav = study.averages(weights=[3, 1]).set_index("metric")
    for name in ("expected_n", "p_correct", "p_above_mtd", "mean_dlt", "sd_n", "p_two_dlt_cohort"):
        (ea, sa), (eb, sb) = ra.metric(name), rb.metric(name)
        assert av.loc[name, "estimate"] == pytest.approx((ea + eb) / 2, rel=1e-12)
        assert av.loc[name, "mcse"] == pytest.approx(math.sqrt(sa ** 2 + sb ** 2) / 2, rel=1e-12)
        assert wav.loc[name, "mcse"] == pytest.approx(math.sqrt((0.75 * sa) ** 2 + (0.25 * sb) ** 2), rel=1e-12)
    assert av.loc["p_correct", "method"] == "monte carlo"


def test_mcse_of_runs_sharing_their_patients_is_the_paired_per_trial_one(tmp_path):
    """run_protocol gives every scenario the same latent uniforms: trial i of a and of b share patients, so the
    MCSE of a mean metric's average is the SD over trials of the per-trial average / sqrt(T); for SD and
    quantiles (no per-trial values) the bound (se_a + se_b) / 2."""
    study = run_protocol(_protocol(tmp_path), method="simulate", n_trials=3000, seed=5)
    ra, rb = study.results
    assert ra.provenance["seed"] == rb.provenance["seed"]
    av = study.averages().set_index("metric")
    for name in ("expected_n", "p_correct", "mean_dlt", "p_two_dlt_cohort", "expected_screened"):
        x = (ra.values(name) + rb.values(name)) / 2
        assert av.loc[name, "mcse"] == pytest.approx(x.std(ddof=1) / math.sqrt(x.size), rel=1e-12)
    (_, sa), (_, sb) = ra.metric("sd_n"), rb.metric("sd_n")
    assert av.loc["sd_n", "mcse"] == pytest.approx((sa + sb) / 2, rel=1e-12)


def test_paired_mcse_matches_the_spread_over_replicate_studies(tmp_path):
    """Two nearly equal scenarios (0.1/0.5 and 0.12/0.5) share patients, so their estimates are strongly
    correlated: over 200 replicate studies (200 trials each) the SD of the average agrees with the mean
    reported MCSE (within 20%, about 4 standard errors of an SD from 200 replicates), while the formula for
    independent runs, sqrt(se_a^2 + se_b^2) / 2, falls well short (below 85%; about 72% here)."""
    p = _protocol(tmp_path, b="0.12, 0.5")
    est, mcse, indep = [], [], []
    for k in range(200):
        study = run_protocol(p, method="simulate", n_trials=200, seed=1000 + k)
        av = study.averages().set_index("metric")
        est.append(av.loc[["expected_n", "p_correct"], "estimate"].to_numpy())
        mcse.append(av.loc[["expected_n", "p_correct"], "mcse"].to_numpy())
        ses = np.array([[r.metric(n)[1] for n in ("expected_n", "p_correct")] for r in study.results])
        indep.append(np.sqrt((ses ** 2).sum(axis=0)) / 2)
    sd = np.std(est, axis=0, ddof=1)
    ratio = np.mean(mcse, axis=0) / sd
    assert np.all((ratio > 0.8) & (ratio < 1.2)), ratio
    assert np.all(np.mean(indep, axis=0) / sd < 0.85)
