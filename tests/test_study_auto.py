"""run_protocol(method="auto"): the Monte Carlo runs of method "simulate", bit for bit, with the exact runs
beside them wherever the exact engine applies (issue 18 item 6: prefer exact values and say which)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import doseesc
from doseesc.errors import DoseescError
from doseesc.study import committee_report, exact_refusal, run_protocol

BASE = """[protocol]
name = "auto"
target = 0.25
max_n = 12
[tiers]
doses = [1, 2, 3]
[[design]]
name = "3+3"
type = "3+3"
[[design]]
name = "BOIN"
type = "BOIN"
[[design]]
name = "TITE-BOIN"
type = "TITE-BOIN"
[[scenario]]
name = "low"
true_tox = [0.05, 0.1, 0.3]
[[scenario]]
name = "high"
true_tox = [0.2, 0.4, 0.5]
"""
CALENDAR = "[calendar]\naccrual_rate = 2\ndlt_window_days = 28\nscreen_fail = 0.2\n"
KEYS = ("n", "y", "selected", "reason", "fired")


def _protocol(tmp_path, extra=""):
    """The protocol, always with a [calendar] (a file with a TITE design needs one)."""
    f = tmp_path / "auto.toml"
    f.write_text(BASE + (extra if "[calendar]" in extra else CALENDAR + extra))
    return doseesc.load_protocol(f)


def test_auto_keeps_the_simulations_bit_for_bit_and_adds_the_exact_runs(tmp_path):
    p = _protocol(tmp_path)
    sim = run_protocol(p, method="simulate", n_trials=400, seed=3)
    auto = run_protocol(p, method="auto", n_trials=400, seed=3)
    assert auto.method == "auto" and len(auto.results) == len(sim.results) == 6
    for a, b in zip(sim.results, auto.results):
        assert a.method == b.method == "monte carlo"
        for key in KEYS:
            assert np.array_equal(getattr(a, key), getattr(b, key))
    # the exact engine refuses the TITE design (time_to_event without complete_data); the other two are exact
    # in both scenarios (selections and allocations; the calendar's numbers stay Monte Carlo)
    assert set(auto.exact_results) == {(s, d) for s in ("low", "high") for d in ("3+3", "BOIN")}
    assert all(r.method == "exact" for r in auto.exact_results.values())
    assert set(auto.exact_skipped) == {("low", "TITE-BOIN"), ("high", "TITE-BOIN")}
    assert "time-to-event" in auto.exact_skipped[("low", "TITE-BOIN")]
    m = auto.methods().set_index(["design", "scenario"]).sort_index()
    assert m.loc[("BOIN", "high"), "method"] == "exact" and m.loc[("TITE-BOIN", "low"), "method"] == "monte carlo"
    assert [r.method for r in auto.preferred()] == ["exact", "exact", "monte carlo"] * 2
    assert (sim.methods()["method"] == "monte carlo").all()
    # the preferred numbers are the exact engine's
    ex = doseesc.exact(p.design("BOIN"), p.scenario("high"), ladder=p.tiers)
    rows = auto.metrics(prefer_exact=True).set_index(["design", "scenario", "metric"]).sort_index()
    assert rows.loc[("BOIN", "high", "p_correct"), "estimate"] == ex.metric("p_correct")[0]
    assert rows.loc[("BOIN", "high", "p_correct"), "mcse"] == 0
    assert rows.loc[("BOIN", "high", "p_correct"), "method"] == "exact"
    assert rows.loc[("BOIN", "high", "p_two_dlt_cohort"), "method"] == "monte carlo"   # NaN exactly
    assert rows.loc[("TITE-BOIN", "high", "p_correct"), "method"] == "monte carlo"
    summ = auto.summary(prefer_exact=True)
    boin_high = summ[(summ["design"] == "BOIN") & (summ["scenario"] == "high")]
    assert np.array_equal(boin_high["p_select"].to_numpy(), ex.p_select)     # No dose first, then the tiers
    assert set(summ["method"]) == {"exact", "monte carlo"}
    # the default tables are those of the simulations
    assert auto.metrics().equals(sim.metrics()) and auto.summary().equals(sim.summary())
    # the paired comparison runs on the simulations
    comp = auto.comparison()
    assert comp.n_trials == 400 and set(comp.designs) == {"3+3", "BOIN", "TITE-BOIN"}
    # averages use the exact rows where there are some
    av = auto.averages().set_index(["design", "metric"]).sort_index()
    assert av.loc[("BOIN", "p_correct"), "mcse"] == 0 and av.loc[("BOIN", "p_correct"), "method"] == "exact"
    assert av.loc[("TITE-BOIN", "p_correct"), "mcse"] > 0
    d = auto.to_dict()
    assert len(d["exact_results"]) == 4 and d["provenance"]["exact_runs"] == 4 and len(d["exact_skipped"]) == 2
    assert "exact runs beside 4" in auto._repr_html_()


def test_with_a_calendar_selections_are_exact_and_time_metrics_stay_monte_carlo(tmp_path):
    """The calendar is laid over the untimed trials of designs that wait for complete cohorts, so their
    selections and allocations are the exact engine's; durations and patients screened are calendar numbers
    (Monte Carlo). The TITE design is simulated in time: Monte Carlo."""
    p = _protocol(tmp_path, CALENDAR)
    auto = run_protocol(p, method="auto", n_trials=300, seed=4)
    assert ("low", "3+3") in auto.exact_results and ("low", "TITE-BOIN") in auto.exact_skipped
    rows = auto.metrics(prefer_exact=True).set_index(["design", "scenario", "metric"]).sort_index()
    ex = auto.exact_results[("low", "3+3")]
    assert rows.loc[("3+3", "low", "expected_n"), "estimate"] == ex.expected_n
    assert rows.loc[("3+3", "low", "expected_n"), "method"] == "exact"
    for name in ("duration_days", "lost_waiting", "expected_screened"):
        assert rows.loc[("3+3", "low", name), "method"] == "monte carlo"
        assert rows.loc[("3+3", "low", name), "mcse"] > 0 or name == "lost_waiting"
    mc = next(r for r in auto.results if r.scenario.name == "low" and auto.name_of(r) == "3+3")
    assert rows.loc[("3+3", "low", "expected_screened"), "estimate"] == mc.metric("expected_screened")[0]
    assert rows.loc[("3+3", "low", "expected_screened"), "estimate"] > ex.expected_n   # screening failures


def test_exact_refusals_name_the_reason(tmp_path):
    p = _protocol(tmp_path, CALENDAR)
    assert exact_refusal(p, p.design("3+3")) is None
    assert "time-to-event" in exact_refusal(p, p.design("TITE-BOIN"))
    model = _protocol(tmp_path, "[actual_dose]\nfailure = 0.1\n")
    assert "actual-dose model" in exact_refusal(model, model.design("3+3"))
    # the exact engine's state limit: the run stays Monte Carlo and the engine's message is kept
    small = run_protocol(_protocol(tmp_path), method="auto", designs=["BOIN"], n_trials=50, seed=1, max_states=2)
    assert not small.exact_results
    assert "max_states = 2" in small.exact_skipped[("low", "BOIN")]
    assert "not tried again" in small.exact_skipped[("high", "BOIN")]
    assert (small.methods()["method"] == "monte carlo").all()


def test_method_is_checked(tmp_path):
    p = _protocol(tmp_path)
    with pytest.raises(DoseescError, match="must be 'simulate', 'exact' or 'auto'"):
        run_protocol(p, method="fast")
    with pytest.raises(DoseescError, match="must be 'simulate' or 'auto' for a committee report"):
        committee_report(p, method="exact")
    exact = run_protocol(p, method="exact", designs=["3+3"])
    assert exact.preferred() == exact.results and exact.simulations == ()
    with pytest.raises(DoseescError, match="needs Monte Carlo results"):
        exact.comparison()
    assert math.isfinite(exact.averages().set_index("metric").loc["p_correct", "estimate"])
