"""Final-tier selection helpers: vectorised weighted isotonic regression and closest-to-target."""

from __future__ import annotations

import numpy as np


def isotonic(est: np.ndarray, weight: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression over the ``mask``-ed tiers of each row.

    Uses the max-min formula ``iso[i] = max_{j<=i} min_{k>=i} avg(j..k)``, where
    ``avg`` is the weighted mean of the masked entries between ``j`` and ``k``
    (j and k themselves masked); this equals the pool-adjacent-violators
    solution. Vectorised over rows; O(K^3) per row, K = number of tiers.
    Entries outside ``mask`` are NaN. Shapes ``(n_trials, n_tiers)``.
    """
    est = np.asarray(est, float)
    mask = np.asarray(mask, bool)
    w = np.where(mask, weight, 0.0)
    t, k = est.shape
    zero = np.zeros((t, 1))
    sw = np.concatenate([zero, np.cumsum(w, axis=1)], axis=1)
    swx = np.concatenate([zero, np.cumsum(np.where(mask, w * est, 0.0), axis=1)], axis=1)
    # Python loops run over tier pairs (K is small); every operation is vectorised over trials.
    # inner[j][i] = min over masked m >= i of avg(j..m); built by a backward running minimum.
    inner = [[None] * k for _ in range(k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(k):
            run = np.full(t, np.inf)
            for m in range(k - 1, j - 1, -1):
                den = sw[:, m + 1] - sw[:, j]
                ok = mask[:, m] & (den > 0)
                run = np.where(ok, np.minimum(run, (swx[:, m + 1] - swx[:, j]) / np.where(ok, den, 1.0)), run)
                inner[j][m] = run
    iso = np.full((t, k), -np.inf)
    for i in range(k):
        best = np.full(t, -np.inf)
        for j in range(i + 1):
            val = inner[j][i]
            best = np.where(mask[:, j] & np.isfinite(val), np.maximum(best, val), best)
        iso[:, i] = best
    return np.where(mask & np.isfinite(iso), iso, np.nan)


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
