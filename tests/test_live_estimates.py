"""End-of-trial estimates of ``recommend``: isotonic P(DLT) with 95% credible limits (R BOIN's select.mtd,
docs/notes/boin-2.7.2.md section 3) and, for designs that use response, the observed response rate."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

import doseesc
from doseesc.cli import main

BOIN = doseesc.BOIN(0.3, 3, max_n=30)


def _var(n, y):
    """Variance of the Beta(y + 0.05, n - y + 0.05) posterior, select.mtd's 1 / weight."""
    return (y + 0.05) * (n - y + 0.05) / ((n + 0.1) ** 2 * (n + 1.1))


def test_no_pooling_by_hand():
    """1NNN 2NTN 2NNT (target 0.3: 1/3 and 2/6 stay between 0.236 and 0.358): n = [3, 6, 0], y = [0, 2, 0].
    Adjusted rates: tier 1 0.05 / 3.1 = 0.016129, tier 2 2.05 / 6.1 = 0.336066: already increasing, so the
    isotonic fit leaves them. Credible limits: Beta(0.05, 3.05) -> (2.05e-33, 0.196039), Beta(2.05, 4.05) ->
    (0.055200, 0.716224); both increasing, unchanged. Tier 3 untried: NaN."""
    rec = doseesc.recommend(BOIN, "1NNN 2NTN 2NNT")
    assert rec.next_tier == 1 and not rec.deviations
    est = rec.estimates()
    assert list(est.columns) == ["tier", "dose", "n", "dlt", "p_dlt_isotonic", "ci_low", "ci_high"]
    assert est["tier"].tolist() == [1, 2, 3] and est["n"].tolist() == [3, 6, 0] and est["dlt"].tolist() == [0, 2, 0]
    assert est["p_dlt_isotonic"][:2].tolist() == pytest.approx([0.05 / 3.1, 2.05 / 6.1], rel=1e-12)
    assert est["p_dlt_isotonic"][:2].tolist() == pytest.approx([0.016129, 0.336066], abs=1e-6)
    assert est["ci_low"][1] == pytest.approx(0.055200, abs=1e-6) and est["ci_high"][1] == pytest.approx(0.716224,
                                                                                                        abs=1e-6)
    assert est["ci_high"][0] == pytest.approx(0.196039, abs=1e-6) and est["ci_low"][0] < 1e-30
    assert est["ci_low"][0] == pytest.approx(stats.beta.ppf(0.025, 0.05, 3.05), rel=1e-9)
    assert est.iloc[2][["p_dlt_isotonic", "ci_low", "ci_high"]].isna().all()


def test_pooling_by_hand():
    """1TNN 1NNN 2NNN (1/6 <= 0.236: escalate): n = [6, 3], y = [1, 0]. Adjusted rates 1.05 / 6.1 = 0.172131
    and 0.05 / 3.1 = 0.016129 decrease: PAVA pools them with weights 1 / var,
    var1 = 1.05 * 5.05 / (6.1^2 * 7.1) = 0.0200707, var2 = 0.05 * 3.05 / (3.1^2 * 4.1) = 0.0038705,
    w1 = 49.824, w2 = 258.37, pooled (49.824 * 0.172131 + 258.37 * 0.016129) / 308.19 = 0.041349.
    The limits pool the same way: lower Beta(1.05, 5.05) 0.0060694 > Beta(0.05, 3.05) 2.05e-33 ->
    49.824 * 0.0060694 / 308.19 = 0.00098122; upper 0.526585 > 0.196039 ->
    (49.824 * 0.526585 + 258.37 * 0.196039) / 308.19 = 0.249477."""
    w1, w2 = 1 / _var(6, 1), 1 / _var(3, 0)
    assert (w1, w2) == pytest.approx((49.824, 258.37), abs=1e-2)
    rec = doseesc.recommend(BOIN, "1TNN 1NNN 2NNN")
    assert rec.next_tier == 2 and not rec.deviations
    est = rec.estimates()
    pooled = (w1 * 1.05 / 6.1 + w2 * 0.05 / 3.1) / (w1 + w2)
    assert pooled == pytest.approx(0.041349, abs=1e-6)
    assert est["p_dlt_isotonic"][:2].tolist() == pytest.approx([pooled, pooled], rel=1e-12)
    lo = [stats.beta.ppf(0.025, 1.05, 5.05), stats.beta.ppf(0.025, 0.05, 3.05)]
    hi = [stats.beta.ppf(0.975, 1.05, 5.05), stats.beta.ppf(0.975, 0.05, 3.05)]
    assert lo[0] == pytest.approx(0.0060694, abs=1e-7) and hi == pytest.approx([0.526585, 0.196039], abs=1e-6)
    want_lo = (w1 * lo[0] + w2 * lo[1]) / (w1 + w2)
    want_hi = (w1 * hi[0] + w2 * hi[1]) / (w1 + w2)
    assert (want_lo, want_hi) == pytest.approx((0.00098122, 0.249477), abs=1e-6)
    assert est["ci_low"][:2].tolist() == pytest.approx([want_lo] * 2, rel=1e-9)
    assert est["ci_high"][:2].tolist() == pytest.approx([want_hi] * 2, rel=1e-9)


def test_select_mtd_help_example():
    """select.mtd's help example, n = (3, 3, 15, 9, 0), y = (0, 0, 4, 4, 0), as counts: tiers 1 and 2 give
    0.05 / 3.1 = 0.016129 each (equal, no violation); 4.05 / 15.1 = 0.268212 < 4.05 / 9.1 = 0.445055: no pooling.
    Limits of tier 3: Beta(4.05, 11.05) quantiles."""
    est, lo, hi = doseesc.engines.live.isotonic_dlt([3, 3, 15, 9, 0], [0, 0, 4, 4, 0])
    assert est[:4] == pytest.approx([0.05 / 3.1, 0.05 / 3.1, 4.05 / 15.1, 4.05 / 9.1], rel=1e-12)
    assert lo[2] == pytest.approx(stats.beta.ppf(0.025, 4.05, 11.05), rel=1e-9)
    assert hi[3] == pytest.approx(stats.beta.ppf(0.975, 4.05, 5.05), rel=1e-9)
    assert math.isnan(est[4]) and math.isnan(lo[4]) and math.isnan(hi[4])
    assert np.all(np.diff(est[:4]) >= 0) and np.all(np.diff(lo[:4]) >= 0) and np.all(np.diff(hi[:4]) >= 0)


def test_level_changes_the_limits_only():
    rec = doseesc.recommend(BOIN, "1NNN 2NTN 2NNT")
    est90 = rec.estimates(level=0.9)
    assert est90["ci_high"][1] == pytest.approx(stats.beta.ppf(0.95, 2.05, 4.05), rel=1e-9)
    assert est90["p_dlt_isotonic"].equals(rec.estimates()["p_dlt_isotonic"])
    with pytest.raises(doseesc.OutcomeError, match="level"):
        rec.estimates(level=95)


def test_response_rate_for_designs_that_use_response():
    """BOIN12, 1NNE 2NEN: one response of 3 at tier 1 (E) and one of 3 at tier 2: 1/3 each; tier 3 untried.
    A toxicity-only design reports no response columns for the same log."""
    rec = doseesc.recommend(doseesc.BOIN12(3, max_n=24), "1NNE 2NEN")
    est = rec.estimates()
    assert rec.responses == (1, 1, 0)
    assert est["responses"].tolist() == [1, 1, 0]
    assert est["response_rate"][:2].tolist() == pytest.approx([1 / 3, 1 / 3])
    assert math.isnan(est["response_rate"][2])
    plain = doseesc.recommend(BOIN, "1NNE 2NEN")
    assert plain.responses is None and "responses" not in plain.estimates().columns


def test_tite_design_with_response_reports_responses():
    d = doseesc.TITEBOIN12(3, max_n=12)
    rec = doseesc.recommend(d, "1NNE 2NEN", follow_up=[90] * 6, window=90, eff_follow_up=[90, 90, 30, 90, 20, 90],
                            eff_window=90)
    assert rec.responses == (1, 1, 0)


def test_str_is_unchanged_by_estimates():
    rec = doseesc.recommend(BOIN, "1NNN 2NTN 2NNT")
    assert str(rec) == ("BOIN, after 1NNN 2NTN 2NNT:\n  treat the next cohort at Tier 2\n"
                        "  Tier 1: 0 DLT / 3 patients\n  Tier 2: 2 DLT / 6 patients")


def test_cli_estimates():
    proto = str(Path(__file__).resolve().parent.parent / "scenarios" / "ecar01.toml")
    runner = CliRunner()
    r = runner.invoke(main, ["recommend", proto, "--design", "3+3 + expansion + OBD pick", "1NEN 2NTN 2EEN",
                                "--estimates"])
    assert r.exit_code == 0, r.output
    # tier 2: n = 6, y = 1: 1.05 / 6.1 = 0.172 above tier 1's 0.016 (no pooling); responses 2 of 6
    # observed utility (40/0/100/60): tier 2 has N, T, N, E, E, N -> (3 x 40 + 0 + 2 x 100) / 6 = 53.3
    assert "3e5 CAR-T cells/kg: P(DLT) 0.17 (0.01, 0.53); response 2/6 = 0.33; utility 53.3" in r.output
    assert "6e5 CAR-T cells/kg: not tried" in r.output
    r = runner.invoke(main, ["recommend", proto, "--design", "3+3", "1NNN 2NTN", "--format", "json"])
    data = json.loads(r.output)
    assert data["estimates"][1]["p_dlt_isotonic"] == pytest.approx(1.05 / 3.1)
    assert data["estimates"][2]["p_dlt_isotonic"] is None
    plain = runner.invoke(main, ["recommend", proto, "--design", "3+3", "1NNN 2NTN"])
    assert "estimates" not in plain.output


def test_observed_utility_per_tier_hand_worked():
    """BOIN12's utility N 40, T 0, E 100, B 60. 1NNE 2NBN 3TTE:
    tier 1 N, N, E -> (40 + 40 + 100) / 3 = 60; tier 2 N, B, N -> (40 + 60 + 40) / 3 = 46.67;
    tier 3 T, T, E -> (0 + 0 + 100) / 3 = 33.33."""
    rec = doseesc.recommend(doseesc.BOIN12(3, max_n=24), "1NNE 2NBN 3TTE", warn=False)
    est = rec.estimates()
    assert rec.both == (0, 1, 0)
    assert est["utility"].tolist() == pytest.approx([60.0, 140 / 3, 100 / 3])


def test_utility_uses_the_designs_own_outcome_scores():
    """A BOIN12 with utility (neither 50, DLT 0, response 100, both 70): 1NEB -> (50 + 100 + 70) / 3 = 73.33."""
    d = doseesc.BOIN12(3, max_n=24, utility=(50, 0, 100, 70))
    est = doseesc.recommend(d, "1NEB", warn=False).estimates()
    assert est["utility"][0] == pytest.approx(220 / 3)
    assert math.isnan(est["utility"][1])


def test_log_without_responses_is_read_aloud_for_designs_that_use_response():
    """N/T only, for a design that decides on response: the answer says that no response is recorded
    (BOIN12 reads every patient as a non-responder); one E anywhere, or a toxicity-only design: no note."""
    bare = doseesc.recommend(doseesc.BOIN12(3, max_n=24), "1NNN 2NTN", warn=False)
    assert bare.responses_recorded is False
    assert "no response (E or B) is recorded" in str(bare)
    some = doseesc.recommend(doseesc.BOIN12(3, max_n=24), "1NNN 2NTE", warn=False)
    assert some.responses_recorded is True and "no response" not in str(some)
    plain = doseesc.recommend(BOIN, "1NNN 2NTN", warn=False)
    assert plain.responses_recorded is None and "response" not in str(plain)
    empty = doseesc.recommend(doseesc.BOIN12(3, max_n=24), "", warn=False)
    assert empty.responses_recorded is True
