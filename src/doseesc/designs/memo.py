"""Model-based designs remember what they computed per distinct count state: the CRM its posterior means, the
BLRM its posterior summaries. Trials that share their counts share the value, and a run meets the same counts
again and again (every batch, and the final choice after the last decision)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def count_key(n, y, max_n: int, n_tiers: int) -> np.ndarray | None:
    """One int64 per trial for the sufficient statistics (n, y) per tier, fixed for the design (each tier's
    pair as ``n (n + 1) / 2 + y`` with ``0 <= y <= n <= max_n``, tiers as digits); None where the counts are
    not such integers or the key would not fit in 63 bits (then nothing is memoised)."""
    n, y = np.asarray(n), np.asarray(y)
    if n.ndim != 2 or n.shape != y.shape or n.dtype.kind not in "iu" or y.dtype.kind not in "iu" \
            or n.shape[0] == 0:
        return None
    pairs = (max_n + 1) * (max_n + 2) // 2
    if pairs ** n_tiers >= 2 ** 63 or n.min() < 0 or n.max() > max_n or y.min() < 0 or (y > n).any():
        return None
    n64 = n.astype(np.int64)
    code = n64 * (n64 + 1) // 2 + y
    key = np.zeros(n.shape[0], dtype=np.int64)
    for j in range(n_tiers):
        key *= pairs
        key += code[:, j]
    return key


def memoised(memo: list, key: np.ndarray, n, y, compute: Callable, limit: int) -> np.ndarray:
    """``compute(n, y)`` per trial, computed once per distinct ``key`` and kept in ``memo`` (``[sorted keys,
    values]``, updated in place; values stacked on axis 0). Past ``limit`` values the memo starts again with
    this call's new values."""
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    keys, vals = memo
    at = np.searchsorted(keys, uniq)
    hit = at < keys.size
    hit[hit] = keys[at[hit]] == uniq[hit]
    out = np.empty((uniq.size,) + vals.shape[1:])
    out[hit] = vals[at[hit]]
    miss = ~hit
    if miss.any():
        rows = first[miss]
        out[miss] = compute(np.asarray(n)[rows], np.asarray(y)[rows])
        if keys.size + rows.size > limit:
            memo[:] = [uniq[miss], out[miss]]
        else:
            memo[:] = [np.insert(keys, at[miss], uniq[miss]), np.insert(vals, at[miss], out[miss], axis=0)]
    return out[inverse.ravel()]
