"""Calibration grids (issue 21): a grid point is a plain simulate, runners give identical numbers, failed units are
retried, interrupted runs resume, and bad grids are refused with the key and value named."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pandas as pd
import pytest

import doseesc
from doseesc.designs.crm import CRM, crm_skeleton
from doseesc.designs.three_plus_three import ThreePlusThree
from doseesc.errors import DesignError, DoseescError
from doseesc.engines.grid_run import GridRunError
from doseesc.rng import root_seed
from doseesc.grid import METRICS, Constraint, Grid, grid_from_dict, plot_pareto, plot_sweep, progress_text, span

SC = [doseesc.Scenario(true_tox=[0.05, 0.12, 0.25, 0.42], target=0.25, name="mtd-3"),
      doseesc.Scenario(true_tox=[0.12, 0.30, 0.45, 0.60], target=0.25, name="mtd-1")]


def small_grid(design=None, **options) -> Grid:
    """8 points' worth of units: BOIN over max_n x cohort_size, 2 scenarios, 600 trials in units of 200."""
    design = design or doseesc.BOIN(n_tiers=4, target=0.25, max_n=18)
    params = options.pop("params", {"max_n": [12, 18], "cohort_size": [1, 3]})
    opts = dict(rng=11, unit_trials=200, constraints=["p_above_mtd <= 0.5"])
    opts.update(options)
    return Grid(design, params, SC, 600, **opts)


def numbers(result) -> pd.DataFrame:
    """The numeric columns of a result's table (the design's label aside)."""
    t = result.table()
    return t[[c for c in t.columns if c != "design"]]


@dataclasses.dataclass(frozen=True)
class Flaky(ThreePlusThree):
    """3+3 whose decision raises once: the first call that finds no file at ``flag`` creates it and raises, so
    exactly one unit of a grid fails on its first try, in whatever process it runs."""

    flag: str = ""

    def decide(self, state):
        if self.flag and not os.path.exists(self.flag):
            try:
                with open(self.flag, "x"):
                    pass
            except FileExistsError:
                return super().decide(state)
            raise RuntimeError("injected failure of a unit")
        return super().decide(state)


def flaky_grid(flag: str) -> Grid:
    return Grid(Flaky(n_tiers=4, flag=flag), {"max_n": [12, 24]}, SC, 400, rng=5, unit_trials=100)


# -- independent checks ---------------------------------------------------------------------------------------
def test_a_grid_point_is_a_plain_simulate_of_its_design_and_seed():
    g = small_grid()
    r = g.run()
    table = r.table()
    # point 3 is max_n 18, cohort_size 3 (crossed, first parameter slowest): the base design itself
    assert g.points[3] == {"max_n": 18, "cohort_size": 3} and g.designs[3] == g.base
    for s, sc in enumerate(SC):
        oc = doseesc.simulate(g.designs[3], sc, 600, rng=11)
        row = table[(table["point"] == 3) & (table["scenario"] == sc.name)].iloc[0]
        for name, m in oc.metrics().iterrows():      # bit-identical, MCSE included (p_two_dlt_cohort too)
            assert row[name] == m["estimate"] and row[f"{name}_mcse"] == m["mcse"], name
    # the objective of a point: each trial's mean over the 2 scenarios of "selected the true MTD", then the mean
    oc0, oc1 = (doseesc.simulate(g.designs[0], sc, 600, rng=11) for sc in SC)
    per_trial = ((oc0.selected == oc0.true_mtd).astype(float) + (oc1.selected == oc1.true_mtd)) / 2
    pts = r.points()
    assert pts.loc[0, "objective"] == pytest.approx(per_trial.mean(), abs=1e-15)
    assert pts.loc[0, "objective_mcse"] == pytest.approx(per_trial.std(ddof=1) / math.sqrt(600), abs=1e-15)
    assert pts.loc[0, "objective"] == pytest.approx((oc0.p_correct + oc1.p_correct) / 2, abs=1e-15)


def test_an_obd_design_point_is_a_plain_simulate_and_its_objective_is_p_select_obd():
    sc = doseesc.Scenario(true_tox=[0.05, 0.15, 0.3], true_eff=[0.2, 0.5, 0.55], target=0.3, name="obd")
    base = doseesc.BOIN12(n_tiers=3, max_n=15)
    g = Grid(base, {"phi_t": [0.3, 0.35]}, [sc], 300, rng=2, unit_trials=128)
    assert g.objective == "p_select_obd"      # BOIN12 answers the OBD question
    r = g.run()
    oc = doseesc.simulate(g.designs[0], sc, 300, rng=2)
    row = r.table().iloc[0]
    for name, m in oc.metrics().iterrows():
        assert row[name] == m["estimate"] and row[f"{name}_mcse"] == m["mcse"], name
    # one scenario: the paired objective is that scenario's P(select OBD) with its own MCSE
    assert r.points().loc[0, "objective"] == oc.metric("p_select_obd")[0]
    assert r.points().loc[0, "objective_mcse"] == oc.metric("p_select_obd")[1]


def test_sample_size_sweep_of_the_3_plus_3_against_exact():
    # true P(DLT) 0, 0, 1 (target 0.25, true MTD tier 2): every trial is the same. Tier 1 0/3 -> escalate, tier
    # 2 0/3 -> escalate, tier 3 3/3 -> stop, MTD tier 2 after 9 patients; max_n = 6 stops after tier 2's 3 with
    # tier 2 selected. So P(correct) = 1 and E[N] = min(max_n, 9): 6, 9, 9.
    det = doseesc.Scenario(true_tox=[0.0, 0.0, 1.0], target=0.25, name="deterministic")
    g = Grid.sample_size(ThreePlusThree(n_tiers=3), [det], [6, 9, 12], n_trials=50, rng=1, unit_trials=20)
    pts = g.run().points()
    assert pts["max_n"].tolist() == [6, 9, 12]
    assert pts["objective"].tolist() == [1.0, 1.0, 1.0]
    assert pts["expected_n"].tolist() == [6.0, 9.0, 9.0]
    for m, n in zip([6, 9, 12], [6.0, 9.0, 9.0]):
        ex = doseesc.exact(ThreePlusThree(n_tiers=3, max_n=m), det)
        assert ex.expected_n == n and ex.p_correct == 1.0
    # a random truth: P(correct) and E[N] within 4 MCSE of the exact values at each max_n
    sc = doseesc.Scenario(true_tox=[0.1, 0.3], target=0.25, name="two tiers")
    g = Grid.sample_size(ThreePlusThree(n_tiers=2), [sc], [3, 6, 12], n_trials=4000, rng=3, unit_trials=2000)
    pts = g.run().points()
    for p, m in enumerate([3, 6, 12]):
        ex = doseesc.exact(ThreePlusThree(n_tiers=2, max_n=m), sc)
        assert abs(pts.loc[p, "objective"] - ex.p_correct) <= 4 * pts.loc[p, "objective_mcse"]
        assert abs(pts.loc[p, "expected_n"] - ex.expected_n) <= 4 * max(pts.loc[p, "expected_n_mcse"], 1e-12)


def test_calibrate_halfwidth_as_a_thin_call_of_the_grid_gives_the_same_numbers():
    """compare.calibrate_halfwidth is a grid over the halfwidths; a plain loop of simulate (the code it
    replaced) gives the same frame, bit for bit."""
    target, prior_mtd, k = 0.25, 1, 3
    scs = [doseesc.Scenario(true_tox=[0.08, 0.25, 0.45], target=target, name="a"),
           doseesc.Scenario(true_tox=[0.2, 0.4, 0.5], target=target, name="b")]
    new = doseesc.calibrate_halfwidth(target, prior_mtd, k, scs, halfwidths=[0.04, 0.08], n_trials=200, rng=4,
                                      max_n=12)
    old = loop_calibrate_halfwidth(target, prior_mtd, k, scs, halfwidths=[0.04, 0.08], n_trials=200, rng=4,
                                   max_n=12)
    pd.testing.assert_frame_equal(old, new, check_exact=True)


def loop_calibrate_halfwidth(target, prior_mtd, n_tiers, scenarios, halfwidths, n_trials, rng, **crm_options):
    """The plain reference: each halfwidth's CRM simulated under every scenario on one root seed, the
    per-trial hit averaged over scenarios, its MCSE = SD over trials / sqrt(n)."""
    seq = root_seed(rng)
    rows = []
    for h in halfwidths:
        sk = crm_skeleton(target, h, prior_mtd, n_tiers)
        design = CRM(tuple(sk), target, **crm_options)
        per, per_trial = {}, []
        for sc in scenarios:
            r = doseesc.simulate(design, sc, n_trials, rng=seq, target=target)
            per[sc.name] = r.p_correct
            per_trial.append((r.selected == r.true_mtd).astype(float))
        mean = np.mean(per_trial, axis=0)
        rows.append({"halfwidth": h, "mean_pcs": float(mean.mean()),
                     "mean_pcs_mcse": float(mean.std(ddof=1) / math.sqrt(mean.size)),
                     "skeleton": tuple(np.round(sk, 5)), **{f"pcs[{k}]": v for k, v in per.items()}})
    df = pd.DataFrame(rows)
    df["best"] = df["mean_pcs"] == df["mean_pcs"].max()
    return df


def test_weights_constraints_best_and_pareto():
    g = small_grid(weights={"mtd-3": 3, "mtd-1": 1}, constraints=["p_above_mtd <= 0.665", "mean(mean_dlt) <= 4"])
    r = g.run()
    pts, table = r.points(), r.table()
    pc = r.values("p_correct")
    # weighted objective: (3 * P(correct | mtd-3) + P(correct | mtd-1)) / 4
    assert np.allclose(pts["objective"], (3 * pc[:, 0] + pc[:, 1]) / 4, rtol=0, atol=1e-14)
    # constraints by hand from the per-scenario table
    above = table.pivot(index="point", columns="scenario", values="p_above_mtd")
    dlt = table.pivot(index="point", columns="scenario", values="mean_dlt")
    feasible = (above.max(axis=1) <= 0.665) & ((3 * dlt["mtd-3"] + dlt["mtd-1"]) / 4 <= 4)
    assert pts["feasible"].tolist() == feasible.tolist()
    assert pts["feasible"].any() and not pts["feasible"].all()   # the bounds bite: the test can fail both ways
    best = r.best()
    assert best.name == pts[feasible]["objective"].idxmax()
    # the Pareto front (objective up, mean DLTs down): no front point is dominated, every other point is
    front = r.pareto("objective", "mean_dlt")
    a, b = pts["objective"].to_numpy(), -pts["mean_dlt"].to_numpy()
    for i in range(len(pts)):
        dominated = ((a >= a[i]) & (b >= b[i]) & ((a > a[i]) | (b > b[i]))).any()
        assert (i in front.index) == (not dominated)
    assert r.best_dict()["best"]["point"] == int(best.name)


def test_no_feasible_point_gives_none():
    r = small_grid(constraints=["p_above_mtd <= 0.01"]).run()
    assert r.best() is None and r.best_dict()["best"] is None


# -- runners ----------------------------------------------------------------------------------------------
def test_process_workers_give_identical_results_and_retry_a_failed_unit(tmp_path):
    g = small_grid()
    r0 = g.run()
    r2 = g.run(workers=2)
    pd.testing.assert_frame_equal(numbers(r0), numbers(r2), check_exact=True)
    pd.testing.assert_frame_equal(r0.points(), r2.points(), check_exact=True)
    assert r2.info["runner"] == "processes (2 workers)" and r2.info["retries"] == 0
    plain = flaky_grid("").run()
    flag = tmp_path / "failed-once"
    got = flaky_grid(str(flag)).run(workers=2)
    assert flag.exists() and got.info["retries"] == 1
    pd.testing.assert_frame_equal(numbers(plain), numbers(got), check_exact=True)


def test_in_process_retry_and_giving_up(tmp_path):
    plain = flaky_grid("").run()
    flag = tmp_path / "once"
    got = flaky_grid(str(flag)).run()
    assert got.info["retries"] == 1
    pd.testing.assert_frame_equal(numbers(plain), numbers(got), check_exact=True)
    flag2 = tmp_path / "again"
    with pytest.raises(GridRunError, match=r"failed 1 times; last error: RuntimeError: injected failure"):
        flaky_grid(str(flag2)).run(retries=0)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    g = small_grid()
    whole = g.run()
    seen = []

    def stop_after_5(done, total, seconds):
        seen.append(done)
        if done == 5:
            raise KeyboardInterrupt      # as if the run were killed after 5 units

    with pytest.raises(KeyboardInterrupt):
        g.run(checkpoint=tmp_path / "ck", progress=stop_after_5)
    assert len(list((tmp_path / "ck").glob("*.npz"))) == 5 and not list((tmp_path / "ck").glob(".*tmp"))
    resumed = g.run(checkpoint=tmp_path / "ck")
    assert resumed.info["units_resumed"] == 5 and resumed.info["units"] == g.n_units == 24
    pd.testing.assert_frame_equal(numbers(whole), numbers(resumed), check_exact=True)
    pd.testing.assert_frame_equal(whole.points(), resumed.points(), check_exact=True)
    # a checkpoint of another grid is refused, not mixed in
    with pytest.raises(DoseescError, match="belongs to another grid"):
        small_grid(rng=12).run(checkpoint=tmp_path / "ck")


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def test_dask_cluster_identical_retry_and_resume(cluster, tmp_path):
    address = cluster.scheduler_address
    g = small_grid()
    r0 = g.run()
    rd = g.run(scheduler=address)
    pd.testing.assert_frame_equal(numbers(r0), numbers(rd), check_exact=True)
    pd.testing.assert_frame_equal(r0.points(), rd.points(), check_exact=True)
    # a unit that raises on its first try on a worker is retried; the result is unchanged
    plain = flaky_grid("").run()
    flag = tmp_path / "dask-once"
    got = flaky_grid(str(flag)).run(scheduler=address)
    assert flag.exists() and got.info["retries"] == 1
    pd.testing.assert_frame_equal(numbers(plain), numbers(got), check_exact=True)
    # interrupted in-process, resumed on the cluster: the same numbers
    def stop(done, total, seconds):
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        g.run(checkpoint=tmp_path / "ck", progress=stop)
    resumed = g.run(scheduler=address, checkpoint=tmp_path / "ck")
    assert resumed.info["units_resumed"] == 7
    pd.testing.assert_frame_equal(numbers(r0), numbers(resumed), check_exact=True)


def test_dask_local_starts_a_local_cluster_and_closes_it(cluster, monkeypatch):
    # dask_local=N builds distributed.LocalCluster(n_workers=N, 1 thread each, processes) and closes it after
    # the run; here the module's cluster stands in for it (starting a second one costs ~20 s on 2 shared cores)
    distributed = pytest.importorskip("distributed")
    made = []

    class Standin:
        def __init__(self, **options):
            made.append(options)
            self.scheduler_address = cluster.scheduler_address

        def close(self):
            made.append("closed")

    real_client = distributed.Client
    monkeypatch.setattr(distributed, "LocalCluster", Standin)
    monkeypatch.setattr(distributed, "Client", lambda c: real_client(c.scheduler_address))
    g = Grid(ThreePlusThree(n_tiers=4), {"max_n": [12, 24]}, SC, 200, rng=9, unit_trials=100)
    got = g.run(dask_local=2)
    assert made[0]["n_workers"] == 2 and made[0]["threads_per_worker"] == 1 and made[0]["processes"] is True
    assert made[-1] == "closed" and got.info["runner"] == "dask local cluster (2 workers)"
    pd.testing.assert_frame_equal(numbers(g.run()), numbers(got), check_exact=True)


def test_runner_options_are_checked():
    g = small_grid()
    with pytest.raises(DoseescError, match="at most one of workers, scheduler and dask_local"):
        g.run(workers=2, dask_local=2)
    with pytest.raises(DoseescError, match="workers = 0 must be a positive integer"):
        g.run(workers=0)
    with pytest.raises(DoseescError, match="retries = -1"):
        g.run(retries=-1)


# -- bad grids ------------------------------------------------------------------------------------------------
def test_bad_grids_name_the_key_and_value():
    base = doseesc.BOIN(n_tiers=4, target=0.25, max_n=18)
    with pytest.raises(DesignError, match=r"params: 'phi' is not a parameter of design 'BOIN' \(parameters: .*target, n_tiers"):
        Grid(base, {"phi": [0.1]}, SC)
    with pytest.raises(DesignError, match=r"params: max_n = \[\]: the list of values is empty"):
        Grid(base, {"max_n": []}, SC)
    with pytest.raises(DesignError, match=r"params: max_n = 18: give a list of values or a range"):
        Grid(base, {"max_n": 18}, SC)
    # the design's own validation judges each value, and names the parameter
    with pytest.raises(DesignError, match=r"grid point max_n = 'x': max_n = 'x' must be an integer"):
        Grid(base, {"max_n": [12, "x"]}, SC)
    with pytest.raises(DesignError, match=r"grid point max_n = 0: max_n = 0 must be at least 1"):
        Grid(base, {"max_n": [0]}, SC)
    with pytest.raises(DoseescError, match=r"constraint on metric 'p_overdose' : not a metric|'p_overdose'"):
        Grid(base, {"max_n": [12]}, SC, constraints=["p_overdose <= 0.2"])
    with pytest.raises(DoseescError, match=r"constraint 'p_above_mtd = 0.2' is not of the form"):
        Grid(base, {"max_n": [12]}, SC, constraints=["p_above_mtd = 0.2"])
    with pytest.raises(DesignError, match=r"how = 'zip' needs as many values of every parameter \(max_n: 2, "
                                          r"cohort_size: 1\)"):
        Grid(base, {"max_n": [12, 18], "cohort_size": [3]}, SC, how="zip")
    with pytest.raises(DesignError, match=r"weights: 'c' is not a scenario of the grid"):
        Grid(base, {"max_n": [12]}, SC, weights={"c": 1})
    with pytest.raises(DesignError, match=r"objective p_select_obd: scenario 'mtd-3' has no true OBD"):
        Grid(base, {"max_n": [12]}, SC, objective="p_select_obd")
    with pytest.raises(DesignError, match=r"n_trials = 1 must be an integer of at least 2"):
        Grid(base, {"max_n": [12]}, SC, 1)


def test_zip_and_cross_and_span():
    assert span(0.25, 0.35, 0.025) == [0.25, 0.275, 0.3, 0.325, 0.35]      # stop included
    assert span(12, 24, 6) == [12, 18, 24]
    base = doseesc.BOIN(n_tiers=4, target=0.25, max_n=18)
    crossed = Grid(base, {"max_n": [12, 18], "cohort_size": [1, 3]}, SC)
    assert crossed.points == [{"max_n": 12, "cohort_size": 1}, {"max_n": 12, "cohort_size": 3},
                              {"max_n": 18, "cohort_size": 1}, {"max_n": 18, "cohort_size": 3}]
    zipped = Grid(base, {"max_n": [12, 18], "cohort_size": [1, 3]}, SC, how="zip")
    assert zipped.points == [{"max_n": 12, "cohort_size": 1}, {"max_n": 18, "cohort_size": 3}]
    assert [d.max_n for d in zipped.designs] == [12, 18] and [d.cohort_size for d in zipped.designs] == [1, 3]
    assert Constraint.parse("mean(mean_dlt) <= 4").text == "mean(mean_dlt) <= 4"
    assert Constraint.parse("p_above_mtd<0.2") == Constraint("p_above_mtd", "<", 0.2, "every")
    assert set(METRICS) >= {"p_correct", "p_select_obd", "p_above_mtd", "mean_dlt", "expected_n"}
    assert progress_text(50, 200, 10.0) == "units 50/200 (25%), 10 s elapsed, about 30 s left"


# -- the file format ------------------------------------------------------------------------------------------
def test_grid_tables_from_a_file():
    designs = {"BOIN": doseesc.BOIN(n_tiers=4, target=0.25, max_n=18), "3+3": ThreePlusThree(n_tiers=4)}
    scs = {s.name: s for s in SC}
    where = "x.toml: [[grid]] 'g'"
    g = grid_from_dict({"name": "g", "design": "BOIN", "params": {"max_n": {"start": 12, "stop": 24, "step": 6},
                        "cohort_size": [1, 3]}, "constraints": ["p_above_mtd <= 0.2"], "n_trials": 100,
                        "seed": 3}, designs, scs, where=where)
    assert [p["max_n"] for p in g.points] == [12, 12, 18, 18, 24, 24] and g.n_trials == 100
    s = grid_from_dict({"name": "n", "design": "3+3", "sample_size": [12, 18], "scenarios": ["mtd-1"]}, designs,
                       scs, where=where, seed=5)        # the file's [run] seed
    assert list(s.params) == ["max_n"] and list(s.scenarios) == ["mtd-1"]
    # no seed of its own and none in [run]: refused, so that the calibration can be reproduced
    with pytest.raises(DoseescError, match=r"'g': no seed: give the grid a seed"):
        grid_from_dict({"name": "n", "design": "3+3", "sample_size": [12, 18]}, designs, scs, where=where)
    bad = [({"design": "BOIN", "params": {"phi": [0.1]}}, r"x.toml: \[\[grid\]\] 'g': params: 'phi' is not a "),
           ({"design": "BOIN", "params": {"max_n": []}}, r"x.toml: \[\[grid\]\] 'g': params.max_n = \[\]: "),
           ({"design": "BOIN", "params": {"max_n": ["a"]}}, r"'g': grid point max_n = 'a': max_n = 'a' must be"),
           ({"design": "BOIN", "params": {"max_n": [12]}, "constraints": ["p_overdose <= 0.2"]},
            r"'g': constraint on metric 'p_overdose'"),
           ({"design": "CRM", "params": {"max_n": [12]}}, r"design = 'CRM' is not a \[\[design\]\] of the file"),
           ({"design": "BOIN", "params": {"max_n": [12]}, "scenarios": ["nope"]}, r"scenarios: 'nope' is not"),
           ({"design": "BOIN", "params": {"max_n": [12]}, "sample_size": [12]}, "either params"),
           ({"design": "BOIN", "params": {"max_n": [12]}, "sweep": 1}, r"unknown key 'sweep'"),
           ({"design": "BOIN", "params": {"max_n": {"start": 12, "stop": 24}}}, "a range is a table")]
    for entry, message in bad:
        with pytest.raises(DoseescError, match=message):
            grid_from_dict(entry, designs, scs, where=where)


def test_result_files_and_figures(tmp_path):
    r = small_grid(constraints=["p_above_mtd <= 0.665"]).run()
    paths = r.write(tmp_path / "out", provenance={"file": "x.toml"})
    for name in ("grid.csv", "points.csv", "best.json", "pareto.png", "provenance.json"):
        assert paths[name].exists() and paths[name].stat().st_size > 0
    assert paths["pareto.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = json.loads(paths["best.json"].read_text())
    assert best["best"]["point"] == int(r.best().name) and best["constraints"] == ["p_above_mtd <= 0.665"]
    prov = json.loads(paths["provenance.json"].read_text())
    assert prov["seed"]["entropy"] == 11 and prov["runner"] == "in-process" and prov["units"] == 24
    assert prov["file"] == "x.toml"
    grid_csv = pd.read_csv(paths["grid.csv"])
    assert len(grid_csv) == 8 and "p_above_mtd_mcse" in grid_csv.columns
    ax = plot_pareto(r, "objective", "p_above_mtd")
    assert ax.get_xlabel().startswith("P(select the true MTD)")
    ax = plot_sweep(r, "max_n")
    assert ax.get_xlabel() == "max_n"
