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

from ..designs.base import Design
from ..errors import DoseescError
from ..scenario import Scenario
from ..state import TrialState
from ..tiers import DoseLadder
from .montecarlo import check_compatible
from ..outcomes import compositions

#: Default limit on live states in one step.
MAX_STATES = 2_000_000


def _merge(keys: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge identical rows of ``keys`` summing ``prob``; rows returned in sorted order."""
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=prob, minlength=uniq.shape[0])


def _outcomes(c: int, probs: np.ndarray, joint: bool):
    """Cohort outcomes of ``c`` patients: (DLTs, responses, both, probability per tier).

    ``probs`` is P(DLT) per tier, or with ``joint`` the (n_tiers, 4) joint probabilities of N, T, E, B.
    """
    from math import factorial

    if not joint:
        j = np.arange(c + 1)
        coef = np.array([comb(c, int(i)) for i in j], dtype=float)
        pr = coef[None, :] * probs[:, None] ** j[None, :] * (1 - probs[:, None]) ** (c - j)[None, :]
        zero = np.zeros(c + 1, dtype=np.int32)
        return j.astype(np.int32), zero, zero, pr
    cells = compositions(c)
    coef = np.array([factorial(c) / np.prod([factorial(int(v)) for v in r]) for r in cells])
    pr = coef[None, :] * np.prod(probs[:, None, :] ** cells[None, :, :], axis=2)
    dy = (cells[:, 1] + cells[:, 3]).astype(np.int32)
    de = (cells[:, 2] + cells[:, 3]).astype(np.int32)
    return dy, de, cells[:, 3].astype(np.int32), pr


def exact(design: Design, scenario: Scenario, *, target: float | None = None,
          ladder: DoseLadder | None = None, max_states: int = MAX_STATES, obd=None):
    """Exact operating characteristics of ``design`` under ``scenario``.

    Returns the same :class:`~doseesc.results.OperatingCharacteristics` as
    :func:`~doseesc.simulate`, with ``method == "exact"``, one record per
    distinct terminal state weighted by its probability, and zero standard
    errors. Raises :class:`DoseescError` if more than ``max_states`` live
    states would have to be held at once.
    """
    from ..designs.tite import check_not_tite
    from ..obd import resolve_obd
    from ..results import OperatingCharacteristics, provenance, resolve_target

    check_not_tite(design, "exact enumeration")
    check_compatible(design, scenario)
    obd_def = resolve_obd(obd, design, scenario)
    joint = bool(getattr(design, "uses_efficacy", False))
    if joint and scenario.true_eff is None:
        raise DoseescError(f"{design.label} needs true_eff in scenario {scenario.name!r}")
    tgt = resolve_target(target, scenario, design)
    t0 = time.perf_counter()
    k, max_n = design.n_tiers, design.max_n
    p = np.asarray(scenario.true_tox, dtype=float)
    # outcome tables per cohort size c: DLTs, responses, both, and probability per tier
    probs = scenario.joint() if joint else p
    table = {}  # cohort size -> outcome table, built when first needed

    n = np.zeros((1, k), dtype=np.int32)
    y = np.zeros((1, k), dtype=np.int32)
    e = np.zeros((1, k), dtype=np.int32)
    ye = np.zeros((1, k), dtype=np.int32)
    phase = np.zeros(1, dtype=np.int32)
    aux = np.zeros(1, dtype=np.int32)
    cur = np.full(1, design.start, dtype=np.int32)
    size = np.full(1, design.first_size, dtype=np.int32)
    fired = np.zeros(1, dtype=np.int32)
    last_n = np.zeros(1, dtype=np.int32)
    last_y = np.zeros(1, dtype=np.int32)
    memory = bool(getattr(design, "uses_last_cohort", False))
    prob = np.ones(1)
    term = {"n": [], "y": [], "e": [], "selected": [], "reason": [], "fired": [], "prob": []}

    for _ in range(max_n + 1):
        if prob.size == 0:
            break
        room = np.minimum(size, max_n - n.sum(axis=1))
        n_out = (lambda c: comb(c + 3, 3)) if joint else (lambda c: c + 1)
        branching = sum(int((room == c).sum()) * n_out(int(c)) for c in np.unique(room))
        if branching > max_states:
            raise DoseescError(
                f"exact evaluation of {design.label} needs more than max_states = {max_states} "
                "live states; use simulate() or raise max_states")
        new = {key: [] for key in ("n", "y", "e", "ye", "cur", "fired", "p", "ln", "ly", "phase", "aux")}
        for c in np.unique(room):
            idx = np.flatnonzero(room == c)
            c = int(c)
            if c not in table:
                table[c] = _outcomes(c, probs, joint)
            dy, de, dye, pr = table[c]
            m = dy.size
            rep = np.repeat(idx, m)
            o = np.tile(np.arange(m), idx.size)
            w = prob[rep] * pr[cur[rep], o]
            keep = w > 0
            rep, o, w = rep[keep], o[keep], w[keep]
            r = np.arange(rep.size)
            t = cur[rep]
            cols = {}
            for key, arr, add in (("n", n, np.full(m, c)), ("y", y, dy), ("e", e, de), ("ye", ye, dye)):
                a = arr[rep].astype(float if arr.dtype.kind == "f" else arr.dtype)
                a[r, t] += add[o]
                cols[key] = a
            for key, val in (("n", cols["n"]), ("y", cols["y"]), ("e", cols["e"]), ("ye", cols["ye"]),
                             ("cur", t), ("fired", fired[rep]), ("p", w), ("ln", np.full(rep.size, c)),
                             ("ly", dy[o]), ("phase", phase[rep]), ("aux", aux[rep])):
                new[key].append(val)
        n, y, e, ye, cur, fired, prob, last_n, last_y, phase, aux = (
            np.concatenate(new[key]) for key in ("n", "y", "e", "ye", "cur", "fired", "p", "ln", "ly", "phase", "aux"))
        if n.shape[0] > max_states:
            raise DoseescError(
                f"exact evaluation of {design.label} needs more than max_states = {max_states} "
                "live states; use simulate() or raise max_states")
        state = TrialState.from_counts(n, y, cur, e=e, last_n=last_n, last_y=last_y, ye=ye, phase=phase, aux=aux)
        dec = design.step(state)
        fired = fired | dec.fired
        st = dec.stop
        if st.any():
            term["n"].append(n[st])
            term["y"].append(y[st])
            term["e"].append(e[st])
            term["selected"].append(design.conclude(state.take(st), dec.reason[st]))
            term["reason"].append(dec.reason[st])
            term["fired"].append(fired[st])
            term["prob"].append(prob[st])
        go = ~st
        nxt_size = np.full(int(go.sum()), design.cohort_size) if dec.size is None else dec.size[go]
        nph = phase[go] if dec.phase is None else dec.phase[go]
        nax = aux[go] if dec.aux is None else dec.aux[go]
        extra = [dec.next[go], nxt_size, fired[go], nph, nax] + ([last_n[go], last_y[go]] if memory else [])
        proj = design.merge_key(state.take(go)) if joint else None
        if proj is None:
            keys = np.column_stack([n[go], y[go], e[go], ye[go]] + extra)
            keys, prob = _merge(keys, prob[go])
            n, y, e, ye = keys[:, :k], keys[:, k:2 * k], keys[:, 2 * k:3 * k], keys[:, 3 * k:4 * k]
            rest = keys[:, 4 * k:]
        else:
            # merge on the design's sufficient statistics; responses become probability-weighted means
            keys = np.column_stack([proj] + extra)
            uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            pg = prob[go]
            newp = np.bincount(inverse, weights=pg, minlength=uniq.shape[0])
            first = np.zeros(uniq.shape[0], dtype=np.int64)
            first[inverse[::-1]] = np.arange(inverse.size)[::-1]
            n, y = n[go][first], y[go][first]
            e = np.stack([np.bincount(inverse, weights=pg * e[go][:, j], minlength=uniq.shape[0])
                          for j in range(k)], axis=1) / newp[:, None]
            ye = np.stack([np.bincount(inverse, weights=pg * ye[go][:, j], minlength=uniq.shape[0])
                           for j in range(k)], axis=1) / newp[:, None]
            prob = newp
            rest = uniq[:, proj.shape[1]:]
        cur, size, fired, phase, aux = (rest[:, i] for i in range(5))
        if memory:
            last_n, last_y = rest[:, 5], rest[:, 6]
        else:
            last_n = last_y = np.zeros(rest.shape[0], dtype=np.int32)
    else:  # pragma: no cover - guarded by max_n in Design.step
        raise RuntimeError(f"{design.label}: states did not stop within max_n = {max_n} cohorts")

    tn = np.concatenate(term["n"])
    ty = np.concatenate(term["y"])
    te = np.concatenate(term["e"]).astype(float)
    tp = np.concatenate(term["prob"])
    keys = np.column_stack([tn, ty, np.concatenate(term["selected"]), np.concatenate(term["reason"]),
                            np.concatenate(term["fired"])])
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    w = np.bincount(inverse, weights=tp, minlength=uniq.shape[0])
    rn, ry = uniq[:, :k].astype(np.int32), uniq[:, k:2 * k].astype(np.int32)
    if joint:  # expected responses given the record (probability-weighted over the merged states)
        resp = np.stack([np.bincount(inverse, weights=tp * te[:, j], minlength=uniq.shape[0])
                         for j in range(k)], axis=1) / w[:, None]
    elif scenario.true_eff is not None:
        pe_t, pe_n = scenario.response_given_tox()
        resp = ry * pe_t[None, :] + (rn - ry) * pe_n[None, :]  # expected responses given the record
    else:
        resp = None
    keys = uniq
    total = w.sum()
    if abs(total - 1) > 1e-9:  # pragma: no cover - internal consistency check
        raise RuntimeError(f"exact probabilities sum to {total!r}, not 1")
    prov = provenance(design, scenario, method="exact", n_trials=None, seed=None,
                      batch_size=None, seconds=time.perf_counter() - t0, target=tgt)
    prov["terminal_states"] = int(keys.shape[0])
    return OperatingCharacteristics(
        method="exact", design=design, scenario=scenario,
        ladder=ladder if ladder is not None else DoseLadder.unlabelled(k), target=tgt,
        n=rn, y=ry, e=resp, obd=obd_def,
        selected=keys[:, 2 * k].astype(np.int32), reason=keys[:, 2 * k + 1].astype(np.int8),
        fired=keys[:, 2 * k + 2].astype(np.int16),
        weight=w, n_trials=None, patients=None, provenance=prov)
