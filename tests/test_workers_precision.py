"""Runs split across worker processes, runs that stop at a target precision, runs without per-patient records
(issue 20 items 3, 4, 5): every one gives the numbers of the plain run of the same trials, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import doseesc
from doseesc.actual_dose import DoseModel
from doseesc.calendar import Calendar
from doseesc.engines.run import in_batches, max_select_mcse, shutdown_workers, until_precise
from doseesc.errors import DoseescError

K = 4
TRUTH = doseesc.Scenario(true_tox=(0.05, 0.15, 0.30, 0.50), true_eff=(0.2, 0.4, 0.5, 0.55), association=1.5,
                         target=0.25, name="truth")
LADDER = doseesc.DoseLadder([1e5, 3e5, 6e5, 1e6], "cells/kg", tolerance=0.2)
CAL = Calendar(accrual_rate=3, vein_to_vein_days=25, vein_to_vein_sd=6, dlt_window_days=28, dropout=0.1,
               screen_fail=0.2)
SK = tuple(doseesc.crm_skeleton(0.25, 0.05, 2, K))

#: (id, design, keyword arguments of simulate): every runner (plain, calendar, TITE, actual dose, both)
RUNS = [
    ("boin", doseesc.BOIN(0.25, K, max_n=24), {}),
    ("3+3", doseesc.ThreePlusThree(K), {}),
    ("crm", doseesc.CRM(SK, 0.25, max_n=18), {}),
    ("boin12", doseesc.BOIN12(K, phi_t=0.25, max_n=24), {}),
    ("boin-calendar", doseesc.BOIN(0.25, K, max_n=24), {"calendar": CAL}),
    ("tite-crm", doseesc.TITECRM(SK, 0.25, max_n=18), {"calendar": CAL}),
    ("crm-actual", doseesc.CRM(SK, 0.25, max_n=18), {"ladder": LADDER, "dose_model": DoseModel(release="normal",
                                                                                               failure=0.1)}),
    ("boin-actual-calendar", doseesc.BOIN(0.25, K, max_n=24),
     {"ladder": LADDER, "dose_model": DoseModel(release="normal", failure=0.1), "calendar": CAL}),
]


def assert_same(a, b):
    """Every per-trial and per-patient array, every extra metric and the screened counts equal, bit for bit."""
    assert a.n_trials == b.n_trials
    for key in ("n", "y", "e", "selected", "reason", "fired", "screened"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), key
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        assert np.array_equal(a.extra[key][0], b.extra[key][0], equal_nan=True), key
    if a.patients is not None or b.patients is not None:
        assert a.patients.keys() == b.patients.keys()
        for key in a.patients:
            x, y = a.patients[key], b.patients[key]
            assert x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), key


@pytest.fixture(scope="module", autouse=True)
def _pool():
    yield
    shutdown_workers()


@pytest.mark.parametrize("design, kw", [(d, kw) for _, d, kw in RUNS], ids=[r[0] for r in RUNS])
def test_two_workers_give_the_numbers_of_one(design, kw):
    """2,500 trials in batches of 700 (batches straddle the random blocks of 1,024): one process, then two
    worker processes with another batch size, give the same trials."""
    one = doseesc.simulate(design, TRUTH, 2500, rng=7, batch_size=700, **kw)
    two = doseesc.simulate(design, TRUTH, 2500, rng=7, batch_size=300, workers=2, **kw)
    assert_same(one, two)
    assert two.provenance["workers"] == 2
    pd_one, pd_two = one.metrics(), two.metrics()
    assert pd_one.equals(pd_two)


def test_workers_one_is_the_plain_run_and_progress_runs_in_order():
    seen = []
    d = doseesc.BOIN(0.25, K, max_n=24)
    a = doseesc.simulate(d, TRUTH, 3000, rng=3, batch_size=1000, workers=2, progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1000, 3000), (2000, 3000), (3000, 3000)]
    assert_same(a, doseesc.simulate(d, TRUTH, 3000, rng=3))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 1000])
def test_workers_checked(bad):
    with pytest.raises(DoseescError, match="workers"):
        doseesc.simulate(doseesc.BOIN(0.25, K, max_n=24), TRUTH, 100, rng=1, workers=bad)


# -- runs without per-patient records ----------------------------------------------------------------------
@pytest.mark.parametrize("design, kw", [(d, kw) for _, d, kw in RUNS], ids=[r[0] for r in RUNS])
def test_without_records_every_metric_is_unchanged(design, kw):
    """keep_records=False drops the per-patient arrays but keeps each trial's 'some cohort had 2+ DLTs' flag:
    metrics() (p_two_dlt_cohort included) equal the full run's."""
    full = doseesc.simulate(design, TRUTH, 1500, rng=5, **kw)
    lean = doseesc.simulate(design, TRUTH, 1500, rng=5, keep_records=False, batch_size=600, **kw)
    assert lean.patients is None and lean.provenance["keep_records"] is False
    assert full.metrics().equals(lean.metrics())
    assert not math.isnan(lean.metric("p_two_dlt_cohort")[0])
    for key in ("n", "y", "selected", "reason"):
        assert np.array_equal(getattr(full, key), getattr(lean, key))


# -- runs to a target precision ----------------------------------------------------------------------------
def test_max_select_mcse_by_hand():
    """selected = [-1, 0, 0, 1] (No dose, tier 1, tier 1, tier 2), 2 tiers.
    First 2 trials: shares 1/2, 1/2, 0: sqrt(0.5 * 0.5 / 1) = 0.5.
    All 4: shares 1/4, 1/2, 1/4: the largest p (1 - p) is 1/4 (tier 1): sqrt(0.25 / 3) = 0.288675..."""
    se = max_select_mcse(np.array([-1, 0, 0, 1]), 2, np.array([2, 4]))
    assert se[0] == pytest.approx(0.5) and se[1] == pytest.approx(math.sqrt(0.25 / 3))


def test_until_precise_stops_at_the_first_step_that_meets_the_target():
    """A fake run whose trials select tier 1 for trials 0..9 (mod 20) and No dose otherwise: P = 1/2 exactly at
    every multiple of 20 trials, MCSE sqrt(0.25 / (m - 1)). Target 0.1: 0.25 / (m - 1) <= 0.01 at m >= 26;
    steps of 20: stops at 40 (MCSE sqrt(0.25 / 39) = 0.0801), whatever the batch size."""
    def batch(a, b):
        i = np.arange(a, b)
        return {"selected": np.where(i % 20 < 10, 0, -1), "n": np.zeros((b - a, 2), dtype=np.int32)}

    for size in (7, 20, 64):
        out, (reached, se) = until_precise(batch, 1000, size, 0.1, 20)
        assert out["selected"].size == 40 and reached and se == pytest.approx(math.sqrt(0.25 / 39))
    out, (reached, se) = until_precise(batch, 30, 7, 0.01, 20)   # the cap: 30 trials, target not reached
    assert out["selected"].size == 30 and not reached


@pytest.mark.parametrize("design, kw", [(d, kw) for _, d, kw in RUNS[:1] + RUNS[2:3] + RUNS[4:5]],
                         ids=["boin", "crm", "boin-calendar"])
def test_precision_run_reproduces_itself_and_equals_a_plain_run(design, kw):
    r1 = doseesc.simulate(design, TRUTH, rng=11, precision=0.01, **kw)
    r2 = doseesc.simulate(design, TRUTH, rng=11, precision=0.01, batch_size=1500, workers=2, **kw)
    assert_same(r1, r2)
    n = r1.n_trials
    assert n % 1024 == 0 and r1.provenance["precision"]["reached"]
    assert r1.provenance["precision"]["n_trials"] == n
    assert r1.p_select_mcse.max() <= 0.01
    plain = doseesc.simulate(design, TRUTH, n, rng=11, **kw)
    assert_same(r1, plain)
    # one step fewer would not have met the target (else the run would have stopped there)
    shorter = doseesc.simulate(design, TRUTH, n - 1024, rng=11, **kw)
    assert shorter.p_select_mcse.max() > 0.01


def test_precision_cap_and_checks():
    d = doseesc.BOIN(0.25, K, max_n=24)
    r = doseesc.simulate(d, TRUTH, 1500, rng=2, precision=0.001)
    assert r.n_trials == 1500 and not r.provenance["precision"]["reached"]
    for bad in (0, -0.1, 0.5, float("nan"), True, "0.01"):
        with pytest.raises(DoseescError, match="precision"):
            doseesc.simulate(d, TRUTH, rng=2, precision=bad)


def test_in_batches_partial_range_and_gather():
    """in_batches from a start: the trials start..n-1 in order, whatever the batch size."""
    def batch(a, b):
        return {"i": np.arange(a, b), "sq": np.arange(a, b)[:, None] * np.ones((1, 3))}

    for size in (1, 4, 100):
        out = in_batches(23, size, batch, start=5)
        assert np.array_equal(out["i"], np.arange(5, 23)) and out["sq"].shape == (18, 3)
