"""Bounded memory (issue 20 item 3): a run without per-patient records keeps a few bytes per trial, whatever
the number of patients per trial; the batch loop fills its answer batch by batch. (Peak memory itself is
measured in bench/bench_memory.py, not here.)"""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.engines.run import in_batches

TRUTH = doseesc.Scenario([0.05, 0.15, 0.30, 0.45, 0.60], target=0.3, name="five")


def kept_bytes(r) -> int:
    """Bytes of every array a Monte Carlo result holds."""
    arrays = [r.n, r.y, r.e, r.selected, r.reason, r.fired, r.two_dlt, r.screened, r.weight]
    arrays += [v for v, _ in r.extra.values()]
    if r.patients is not None:
        arrays += list(r.patients.values())
    return sum(_bytes(a) for a in arrays if a is not None)


def _bytes(a: np.ndarray) -> int:
    """Memory an array holds: one item for a value broadcast over the trials (stride 0), else all of them."""
    return a.itemsize if a.ndim and a.strides[0] == 0 else a.nbytes


@pytest.mark.parametrize("max_n, per_trial", [(30, 15), (90, 15), (150, 25)])
def test_without_records_the_bytes_per_trial_do_not_grow_with_the_patients(max_n, per_trial):
    """BOIN, 5 tiers: per trial n and y (5 x 1 byte each up to 127 patients, 2 above), selected (1), reason
    (1), fired (2) and the two-DLT flag (1) = 15 bytes for N = 30 as for N = 90 (25 for N = 150); the weight
    1/n_trials is one value broadcast over the trials (8 bytes in all). With records each patient adds 4 bytes
    (tier, DLT, response, new cohort), i.e. 120, 360 or 600 bytes more per trial."""
    d = doseesc.BOIN(0.3, 5, cohort_size=3, max_n=max_n)
    lean = doseesc.simulate(d, TRUTH, 2000, rng=1, keep_records=False)
    full = doseesc.simulate(d, TRUTH, 2000, rng=1)
    assert lean.patients is None
    assert kept_bytes(lean) == 2000 * per_trial + 8
    assert kept_bytes(full) - kept_bytes(lean) >= 2000 * 4 * max_n
    assert lean.metrics().equals(full.metrics())


def test_in_batches_answer_is_the_concatenation():
    """The answer arrays, allocated from the first batch and filled, equal the batches concatenated (and a
    batch of another width falls back to concatenation: np.concatenate refuses it, as before)."""
    def batch(a, b):
        i = np.arange(a, b)
        return {"x": i.astype(np.int8), "m": np.stack([i, -i], axis=1)}

    out = in_batches(10, 3, batch)
    assert out["x"].dtype == np.int8 and np.array_equal(out["x"], np.arange(10))
    assert np.array_equal(out["m"], np.stack([np.arange(10), -np.arange(10)], axis=1))

    def ragged(a, b):
        return {"w": np.zeros((b - a, 2 if a else 3))}

    with pytest.raises(ValueError):
        in_batches(6, 3, ragged)


@pytest.mark.parametrize("keep", [True, False])
def test_large_runs_work_out_metrics_in_chunks_with_the_same_numbers(monkeypatch, keep):
    """A Monte Carlo result of more than CHUNK_ROWS trials works out its tables chunk by chunk (transient memory
    bounded by the chunk). With chunks of 700 rows on 5,000 trials (8 chunks, the last one short), every
    summary, metric and stop-report number equals the one-piece computation: probabilities, means and the
    sample-size quantiles and their MCSE exactly, the other MCSEs and the SD to 1e-12 (sums in another order).
    An actual-dose calendar run covers the extras (durations with NaN entries left out)."""
    import doseesc.results as results

    proto = doseesc.load_protocol("scenarios/ecar01.toml")
    design, sc = proto.design("BOIN"), proto.scenario("mtd-middle")
    r = doseesc.simulate(design, sc, 5000, rng=3, ladder=proto.tiers, dose_model=proto.dose_model,
                         calendar=proto.calendar, keep_records=keep)
    whole = (r.summary(), r.metrics(), r.stop_report())
    monkeypatch.setattr(results, "CHUNK_ROWS", 700)
    assert r._chunked() and len(r._chunks()) == 8
    parts = (r.summary(), r.metrics(), r.stop_report())
    for a, b in zip(whole, parts):
        num = a.select_dtypes("number").columns
        assert list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
        np.testing.assert_allclose(b[num].to_numpy(float), a[num].to_numpy(float), rtol=1e-12, atol=1e-15)
    m_a, m_b = whole[1], parts[1]
    for name in ("expected_n", "n_q10", "n_q50", "n_q90", "p_correct", "p_no_dose"):
        assert m_a.loc[name, "estimate"] == m_b.loc[name, "estimate"], name
    for name in ("n_q10", "n_q50", "n_q90"):
        assert m_a.loc[name, "mcse"] == m_b.loc[name, "mcse"], name
    assert np.array_equal(whole[0]["p_select"].to_numpy(), parts[0]["p_select"].to_numpy())
