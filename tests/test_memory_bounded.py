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
    return sum(a.nbytes for a in arrays if a is not None)


@pytest.mark.parametrize("max_n", [30, 90])
def test_without_records_the_bytes_per_trial_do_not_grow_with_the_patients(max_n):
    """BOIN, 5 tiers: per trial n and y (5 x 2 bytes each), selected (4), reason (1), fired (2), the two-DLT
    flag (1) and the weight (8) = 36 bytes, for N = 30 as for N = 90; with records each patient adds 4 bytes
    (tier, DLT, response, new cohort), i.e. 120 or 360 bytes more per trial."""
    d = doseesc.BOIN(0.3, 5, cohort_size=3, max_n=max_n)
    lean = doseesc.simulate(d, TRUTH, 2000, rng=1, keep_records=False)
    full = doseesc.simulate(d, TRUTH, 2000, rng=1)
    assert lean.patients is None
    assert kept_bytes(lean) == 2000 * 36
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
