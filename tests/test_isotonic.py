"""The vectorised weighted isotonic regression (designs/selection.isotonic) against a plain pool-adjacent-violators
loop, one row at a time, over the masked tiers only."""

from __future__ import annotations

import numpy as np
import pytest

from doseesc.designs.selection import isotonic


def pava(est, weight, mask):
    """Plain PAVA on the masked entries of one row: blocks of (weighted mean, weight, members), merged while a block
    lies below the one before it."""
    idx = [i for i in range(len(est)) if mask[i]]
    blocks = []
    for i in idx:
        blocks.append([est[i], weight[i], [i]])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, m2 = blocks.pop()
            v1, w1, m1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, m1 + m2])
    out = np.full(len(est), np.nan)
    for v, _, members in blocks:
        out[members] = v
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_isotonic_equals_pava_row_by_row(k):
    rng = np.random.default_rng(k)
    t = 400
    est = rng.random((t, k))
    est[::3] = np.round(est[::3] * 4) / 4          # ties
    weight = rng.random((t, k)) + 0.05
    mask = rng.random((t, k)) < 0.75
    got = isotonic(est, weight, mask)
    assert got.shape == (t, k)
    want = np.array([pava(est[r], weight[r], mask[r]) for r in range(t)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert np.array_equal(np.isnan(got), ~mask)
    # non-decreasing over the masked tiers of every row
    for r in range(t):
        v = got[r][mask[r]]
        assert np.all(np.diff(v) >= -1e-15)


def test_isotonic_hand_worked_pool():
    # (0.5, 0.1) violates the order: pooled with weights (1, 3) -> (0.5 + 0.3) / 4 = 0.2 for both; 0.9 stays
    got = isotonic(np.array([[0.5, 0.1, 0.9]]), np.array([[1.0, 3.0, 1.0]]), np.ones((1, 3), bool))
    np.testing.assert_allclose(got, [[0.2, 0.2, 0.9]], rtol=1e-15)


def test_isotonic_empty_shapes():
    assert isotonic(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4), bool)).shape == (0, 4)
    assert np.isnan(isotonic(np.ones((2, 3)), np.ones((2, 3)), np.zeros((2, 3), bool))).all()
