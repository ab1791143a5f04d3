"""Final-tier selection helpers: vectorised weighted isotonic regression and closest-to-target."""

from __future__ import annotations

import numpy as np


def isotonic(est: np.ndarray, weight: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression over the ``mask``-ed tiers of each row.

    Uses the max-min formula ``iso[i] = max_{j<=i} min_{k>=i} avg(j..k)``, where
    ``avg`` is the weighted mean of the masked entries between ``j`` and ``k``
    (j and k themselves masked); this equals the pool-adjacent-violators
    solution. Vectorised over rows; O(K^2) per row, K = number of tiers.
    Entries outside ``mask`` are NaN. Shapes ``(n_trials, n_tiers)``.
    """
    est = np.asarray(est, float)
    t, k = est.shape
    # Arrays are (tier, trial), contiguous: every operation runs over whole rows of trials. For each first tier j
    # of a block, all blocks j..m at once (m >= j).
    mt = np.ascontiguousarray(np.asarray(mask, bool).T)
    w = np.where(mt, np.broadcast_to(weight, (t, k)).T, 0.0)
    sw = np.zeros((k + 1, t))
    swx = np.zeros((k + 1, t))
    np.cumsum(w, axis=0, out=sw[1:])
    np.cumsum(np.where(mt, w * est.T, 0.0), axis=0, out=swx[1:])
    iso = np.full((k, t), -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(k):
            den = sw[j + 1:] - sw[j]
            ok = mt[j:] & (den > 0)
            inner = np.where(ok, (swx[j + 1:] - swx[j]) / np.where(ok, den, 1.0), np.inf)
            # inner[i - j] = min over masked m >= i of avg(j..m): a running minimum from the right
            for m in range(k - j - 2, -1, -1):
                np.minimum(inner[m], inner[m + 1], out=inner[m])
            # iso[i] = max over masked j <= i of inner (finite ones)
            np.maximum(iso[j:], np.where(mt[j] & np.isfinite(inner), inner, -np.inf), out=iso[j:])
    return np.where(mt & np.isfinite(iso), iso, np.nan).T


def closest(values: np.ndarray, target: float, mask: np.ndarray) -> np.ndarray:
    """Index of the masked value closest to ``target`` per row (first on ties); -1 if none."""
    dist = np.where(mask, np.abs(values - target), np.inf)
    idx = np.argmin(dist, axis=1)
    return np.where(mask.any(axis=1), idx, -1).astype(np.int32)


def unimodal(est: np.ndarray, weight: np.ndarray, mode: int) -> np.ndarray:
    """Weighted least-squares fit non-decreasing up to ``mode`` and non-increasing after it (all tiers).

    The order is a tree with ``mode`` as its maximum. Its fitted value is the
    largest weighted mean over the upper sets containing it ({mode} with a
    run of neighbours on each side); every other tier takes the smaller of
    its own branch's isotonic fit (increasing towards the mode) and the mode's
    value. Vectorised over rows; shapes ``(n_trials, n_tiers)``.
    """
    est = np.asarray(est, float)
    w = np.asarray(weight, float)
    t, k = est.shape
    m = int(mode)
    out = np.empty((t, k))
    all_on = np.ones((t, k), dtype=bool)
    left = isotonic(est[:, :m], w[:, :m], all_on[:, :m]) if m > 0 else np.zeros((t, 0))
    right = isotonic(est[:, m + 1:][:, ::-1], w[:, m + 1:][:, ::-1], all_on[:, m + 1:])[:, ::-1] \
        if m < k - 1 else np.zeros((t, 0))
    wx = w * est
    best = np.full(t, -np.inf)
    for a in range(m + 1):          # a tiers to the left of the mode
        for b in range(k - m):      # b tiers to the right
            sl = slice(m - a, m + b + 1)
            val = wx[:, sl].sum(axis=1) / w[:, sl].sum(axis=1)
            best = np.maximum(best, val)
    out[:, m] = best
    if m > 0:
        out[:, :m] = np.minimum(left, best[:, None])
    if m < k - 1:
        out[:, m + 1:] = np.minimum(right, best[:, None])
    return out
