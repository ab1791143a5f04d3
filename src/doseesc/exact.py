"""Exact operating characteristics by enumeration of every reachable trial state.

Starting from the empty trial, each step treats the next cohort of every
live state at its current tier. A cohort of ``c`` patients with true DLT
probability ``p`` has ``c + 1`` outcomes (0..c DLTs) with binomial
probabilities; the order of patients within a cohort cannot matter because a
design's decision depends only on the counts. The design's kernel
(:meth:`Design.step`, the same function the Monte Carlo engine calls) is
applied to all new states at once; stopped states are terminal, and live
states with identical memory (patients and DLTs per tier, current tier) are
merged by adding their probabilities. The result carries one record per
distinct terminal state with its probability, so every summary is an exact
expectation with zero Monte Carlo error.
"""

from __future__ import annotations

import time
from math import comb

import numpy as np

from .designs.base import Design
from .errors import DoseescError
from .scenario import Scenario
from .state import TrialState
from .tiers import DoseLadder
from .engine import check_compatible

#: Default limit on live states in one step.
MAX_STATES = 2_000_000


def _merge(keys: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge identical rows of ``keys`` summing ``prob``; rows returned in sorted order."""
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=prob, minlength=uniq.shape[0])


def exact(design: Design, scenario: Scenario, *, target: float | None = None,
          ladder: DoseLadder | None = None, max_states: int = MAX_STATES):
    """Exact operating characteristics of ``design`` under ``scenario``.

    Returns the same :class:`~doseesc.results.OperatingCharacteristics` as
    :func:`~doseesc.simulate`, with ``method == "exact"``, one record per
    distinct terminal state weighted by its probability, and zero standard
    errors. Raises :class:`DoseescError` if more than ``max_states`` live
    states would have to be held at once.
    """
    from .results import OperatingCharacteristics, provenance, resolve_target

    check_compatible(design, scenario)
    tgt = resolve_target(target, scenario, design)
    t0 = time.perf_counter()
    k, max_n = design.n_tiers, design.max_n
    p = np.asarray(scenario.true_tox, dtype=float)
    # binomial pmf table: pmf[c][tier, j] = P(j DLTs among c patients at tier)
    pmf = {}
    for c in range(1, max(design.max_size, design.first_size) + 1):
        j = np.arange(c + 1)
        coef = np.array([comb(c, int(i)) for i in j], dtype=float)
        pmf[c] = coef[None, :] * p[:, None] ** j[None, :] * (1 - p[:, None]) ** (c - j)[None, :]

    n = np.zeros((1, k), dtype=np.int32)
    y = np.zeros((1, k), dtype=np.int32)
    cur = np.full(1, design.start, dtype=np.int32)
    size = np.full(1, design.first_size, dtype=np.int32)
    fired = np.zeros(1, dtype=np.int32)
    last_n = np.zeros(1, dtype=np.int32)
    last_y = np.zeros(1, dtype=np.int32)
    memory = bool(getattr(design, "uses_last_cohort", False))
    prob = np.ones(1)
    term = {"n": [], "y": [], "selected": [], "reason": [], "fired": [], "prob": []}

    for _ in range(max_n + 1):
        if prob.size == 0:
            break
        room = np.minimum(size, max_n - n.sum(axis=1))
        new = {"n": [], "y": [], "cur": [], "fired": [], "p": [], "ln": [], "ly": []}
        for c in np.unique(room):
            idx = np.flatnonzero(room == c)
            c = int(c)
            rep = np.repeat(idx, c + 1)
            dlts = np.tile(np.arange(c + 1), idx.size)
            w = prob[rep] * pmf[c][cur[rep], dlts]
            keep = w > 0
            rep, dlts, w = rep[keep], dlts[keep], w[keep]
            nn, yy = n[rep].copy(), y[rep].copy()
            r = np.arange(rep.size)
            nn[r, cur[rep]] += c
            yy[r, cur[rep]] += dlts
            for key, val in (("n", nn), ("y", yy), ("cur", cur[rep]), ("fired", fired[rep]), ("p", w),
                             ("ln", np.full(rep.size, c)), ("ly", dlts)):
                new[key].append(val)
        n, y, cur, fired, prob, last_n, last_y = (np.concatenate(new[key])
                                                  for key in ("n", "y", "cur", "fired", "p", "ln", "ly"))
        if n.shape[0] > max_states:
            raise DoseescError(
                f"exact evaluation of {design.label} needs more than max_states = {max_states} "
                "live states; use simulate() or raise max_states")
        state = TrialState.from_counts(n, y, cur, last_n=last_n, last_y=last_y)
        dec = design.step(state)
        fired = fired | dec.fired
        st = dec.stop
        if st.any():
            term["n"].append(n[st])
            term["y"].append(y[st])
            term["selected"].append(design.conclude(state.take(st), dec.reason[st]))
            term["reason"].append(dec.reason[st])
            term["fired"].append(fired[st])
            term["prob"].append(prob[st])
        go = ~st
        nxt_size = np.full(int(go.sum()), design.cohort_size) if dec.size is None else dec.size[go]
        cols = [n[go], y[go], dec.next[go], nxt_size, fired[go]]
        if memory:
            cols += [last_n[go], last_y[go]]
        keys = np.column_stack(cols)
        keys, prob = _merge(keys, prob[go])
        n, y, cur = keys[:, :k], keys[:, k:2 * k], keys[:, 2 * k]
        size, fired = keys[:, 2 * k + 1], keys[:, 2 * k + 2]
        if memory:
            last_n, last_y = keys[:, 2 * k + 3], keys[:, 2 * k + 4]
        else:
            last_n = last_y = np.zeros(keys.shape[0], dtype=np.int32)
    else:  # pragma: no cover - guarded by max_n in Design.step
        raise RuntimeError(f"{design.label}: states did not stop within max_n = {max_n} cohorts")

    tn = np.concatenate(term["n"])
    ty = np.concatenate(term["y"])
    keys = np.column_stack([tn, ty, np.concatenate(term["selected"]), np.concatenate(term["reason"]),
                            np.concatenate(term["fired"])])
    keys, w = _merge(keys, np.concatenate(term["prob"]))
    total = w.sum()
    if abs(total - 1) > 1e-9:  # pragma: no cover - internal consistency check
        raise RuntimeError(f"exact probabilities sum to {total!r}, not 1")
    prov = provenance(design, scenario, method="exact", n_trials=None, seed=None,
                      batch_size=None, seconds=time.perf_counter() - t0, target=tgt)
    prov["terminal_states"] = int(keys.shape[0])
    return OperatingCharacteristics(
        method="exact", design=design, scenario=scenario,
        ladder=ladder if ladder is not None else DoseLadder.unlabelled(k), target=tgt,
        n=keys[:, :k].astype(np.int32), y=keys[:, k:2 * k].astype(np.int32),
        selected=keys[:, 2 * k].astype(np.int32), reason=keys[:, 2 * k + 1].astype(np.int8),
        fired=keys[:, 2 * k + 2].astype(np.int16),
        weight=w, n_trials=None, patients=None, provenance=prov)
