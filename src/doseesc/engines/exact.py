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

Designs whose merge key holds every count they read (``exact_merge_children``:
BOIN12, BOIN-ET) go through :func:`_enumerate_merged`: a cohort's outcomes are
merged on the key before the design decides, keyed by arithmetic on the
parents' keys, in blocks of bounded size (docs/notes/exact_obd.md).
"""

from __future__ import annotations

import time
from math import comb

import numpy as np

from ..designs.base import Design
from .run import check_not_tite, one_blas_thread
from ..errors import DoseescError
from ..limits import MAX_STATES
from ..obd import resolve_obd
from ..outcomes import cohort_outcomes
from ..results import OperatingCharacteristics, provenance, resolve_target
from ..scenario import Scenario
from ..state import TrialState, distinct_rows, group_keys
from ..tiers import DoseLadder
from .montecarlo import check_compatible

#: Merge states on packed int64 keys (:func:`~doseesc.state.pack_columns`); False: sort rows (tests compare).
PACKED_KEYS = True
#: Most children generated at once where a design merges children before deciding (``exact_merge_children``).
CHILD_BLOCK = 1 << 19
#: True: the plain reference (tests): merge live states after the decision on every count, no merge key.
REFERENCE = False


def _outcome_table(probs: np.ndarray, joint: bool):
    """``table(c)``: the outcomes of a cohort of ``c`` and their probabilities per tier, built once per size."""
    cache = {}

    def table(c: int):
        if c not in cache:
            cache[c] = cohort_outcomes(c, probs, joint)
        return cache[c]
    return table


def _too_many(design: Design, max_states: int) -> DoseescError:
    return DoseescError(f"exact evaluation of {design.label} needs more than max_states = {max_states} "
                        "live states; use simulate() or raise max_states")


def _children(design: Design, state: TrialState, prob: np.ndarray, table, joint: bool, max_states: int):
    """Every outcome of each live state's next cohort (of its ``size``, within ``max_n``) with positive
    probability: the new states (the cohort added at the current tier) and their probabilities."""
    room = np.minimum(state.size, design.max_n - state.total_n)
    n_out = (lambda c: comb(c + 3, 3)) if joint else (lambda c: c + 1)
    if sum(int((room == c).sum()) * n_out(int(c)) for c in np.unique(room)) > max_states:
        raise _too_many(design, max_states)
    parts = []
    for c in np.unique(room):
        idx = np.flatnonzero(room == c)
        dy, de, dye, pr = table(int(c))
        m = dy.size
        rep = np.repeat(idx, m)
        o = np.tile(np.arange(m), idx.size)
        w = prob[rep] * pr[state.current[rep], o]
        keep = w > 0
        rep, o = rep[keep], o[keep]
        parts.append((rep, np.full(rep.size, c), dy[o], de[o], dye[o], w[keep]))
    rep, c, dy, de, dye, w = (np.concatenate(v) for v in zip(*parts))
    child = state.take(rep)
    child.add_cohort(c, dy, de, dye)
    return child, w


def _unique_rows(columns: list) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~doseesc.state.distinct_rows`, on packed keys unless :data:`PACKED_KEYS` is off (tests compare)."""
    return distinct_rows(columns, packed=PACKED_KEYS)


def _merge_live(design: Design, state: TrialState, prob: np.ndarray, joint: bool) -> tuple[TrialState, np.ndarray]:
    """Merge live states with identical memory, adding their probabilities (rows in sorted key order).

    The memory is every count, the next tier and cohort size, the rules fired, the multi-stage memory and,
    for designs that use it, the last cohort; or, where the design gives a merge key (its sufficient
    statistics), that key in place of the counts, with responses as probability-weighted means."""
    k = design.n_tiers
    extra = [state.current, state.size, state.fired, state.phase, state.aux]
    if design.uses_last_cohort:
        extra += [state.last_n, state.last_y]
    proj = design.merge_key(state) if joint and not REFERENCE else None
    last = (lambda first: (state.last_n[first], state.last_y[first])) if design.uses_last_cohort \
        else (lambda first: (None, None))
    if proj is None:
        first, inverse = _unique_rows([state.n, state.y, state.e, state.ye] + extra)
        m = first.size
        prob = np.bincount(inverse, weights=prob, minlength=m)
        n, y, e, ye = state.n[first], state.y[first], state.e[first], state.ye[first]
    else:
        first, inverse = _unique_rows([proj] + extra)
        m = first.size
        newp = np.bincount(inverse, weights=prob, minlength=m)
        n, y = state.n[first], state.y[first]
        e, ye = (np.stack([np.bincount(inverse, weights=prob * a[:, j], minlength=m)
                           for j in range(k)], axis=1) / newp[:, None] for a in (state.e, state.ye))
        prob = newp
    last_n, last_y = last(first)
    merged = TrialState.from_counts(n, y, state.current[first], e=e, ye=ye, last_n=last_n, last_y=last_y,
                                    phase=state.phase[first], aux=state.aux[first], size=state.size[first],
                                    fired=state.fired[first])
    return merged, prob


def _enumerate(design: Design, probs: np.ndarray, joint: bool, max_states: int) -> dict:
    """Every terminal state with its probability: lists of arrays ``n``, ``y``, ``e``, ``selected``,
    ``reason``, ``fired``, ``prob``, one entry per cohort."""
    if joint and getattr(design, "exact_merge_children", False) and not REFERENCE:
        return _enumerate_merged(design, probs, max_states)
    table = _outcome_table(probs, joint)
    state = TrialState.empty(1, design.n_tiers, design.start, size=design.first_size)
    prob = np.ones(1)
    term = {"n": [], "y": [], "e": [], "selected": [], "reason": [], "fired": [], "prob": []}
    for _ in range(design.max_n + 1):
        if prob.size == 0:
            return term
        state, prob = _children(design, state, prob, table, joint, max_states)
        if state.n_trials > max_states:
            raise _too_many(design, max_states)
        dec = design.step(state)
        st = dec.stop
        stopped = state.take(st) if st.any() else None
        state.advance(dec, design.cohort_size)
        if stopped is not None:
            for key, val in (("n", stopped.n), ("y", stopped.y), ("e", stopped.e),
                             ("selected", design.conclude(stopped, dec.reason[st])), ("reason", dec.reason[st]),
                             ("fired", state.fired[st]), ("prob", prob[st])):
                term[key].append(val)
        go = ~st
        state, prob = _merge_live(design, state.take(go), prob[go], joint)
    raise RuntimeError(f"{design.label}: states did not stop within max_n = {design.max_n} cohorts")


# -- designs whose merge key holds every count they read (``exact_merge_children``) ---------------------------
# BOIN12 and BOIN-ET: their decisions and final choice read each tier's (n, y, e) (BOIN12 also ye where its
# utility does) and their merge key is exactly those counts. So (1) the outcomes of a cohort are merged before
# the design decides on them, not only after; (2) merged states keep the counts of one of them (all equal on
# the key; ye, where the key leaves it out, is read by nothing); (3) the parents go in blocks of at most
# CHILD_BLOCK children, each block's children merged, decided, concluded and reduced to records before the
# next (memory bounded by the block and the live states), so each distinct state is decided and concluded once
# per block; (4) a cohort's outcomes are keyed by arithmetic on the parents' keys (only distinct children built).
# docs/notes/exact_obd.md; tests/test_exact_obd_merge.py compares with the plain reference (REFERENCE).

def _keyed_children(design: Design, state: TrialState, prob: np.ndarray, table):
    """:func:`_children` merged as :func:`_merge_counts` merges them, without building every child: each child's
    key is its parent's key (the count fields of ``design.merge_fields`` per tier, then the memory outside the
    counts, in fixed radices) plus its cohort's counts at the parent's tier in their places; only the first child
    of each distinct key is built. None where the keys do not fit in 63 bits."""
    fields = design.merge_fields
    t, k = state.n.shape
    room = np.minimum(state.size, design.max_n - state.total_n)
    grow = int(room.max(initial=0))
    cols, lows, radices = [], [], []
    for name, sign in fields:
        a = getattr(state, name).astype(np.int64) * sign
        lo = a.min(axis=0) - (grow if sign < 0 else 0)
        hi = a.max(axis=0) + (grow if sign > 0 else 0)
        cols += [a[:, j] for j in range(k)]
        lows += lo.tolist()
        radices += (hi - lo + 1).tolist()
    for a in (state.current, state.size, state.fired, state.phase, state.aux):
        a = a.astype(np.int64)
        cols.append(a)
        lows.append(int(a.min(initial=0)))
        radices.append(int(a.max(initial=0)) - lows[-1] + 1)
    place = np.ones(len(cols), dtype=object)
    for j in range(len(cols) - 2, -1, -1):
        place[j] = place[j + 1] * radices[j + 1]
    if place[0] * radices[0] > 2 ** 63 - 1:
        return None
    place = place.astype(np.int64)
    key = np.zeros(t, dtype=np.int64)
    for col, lo, r in zip(cols, lows, radices):
        key *= r
        key += col - lo
    reps, outs, sizes, keys, ws = [], [], [], [], []
    names = [name for name, _ in fields]
    for c in np.unique(room):
        idx = np.flatnonzero(room == c)
        dy, de, dye, pr = table(int(c)) if "ye" in names else _outcomes_without_both(table, int(c))
        m = dy.size
        change = {"n": np.full(m, int(c)), "y": dy, "e": de, "ye": dye}
        # delta[tier, outcome]: the cohort's counts in the places of the parent's tier
        delta = np.zeros((k, m), dtype=np.int64)
        for f, (name, sign) in enumerate(fields):
            delta += place[f * k:(f + 1) * k, None] * (sign * change[name].astype(np.int64))[None, :]
        rep = np.repeat(idx, m)
        o = np.tile(np.arange(m), idx.size)
        cell = state.current[rep].astype(np.intp) * m + o          # (tier, outcome), flat
        w = prob[rep] * pr.ravel().take(cell)
        if not (w > 0).all():
            keep = w > 0
            rep, o, cell, w = rep[keep], o[keep], cell[keep], w[keep]
        reps.append(rep)
        outs.append(o)
        sizes.append(np.full(rep.size, int(c)))
        keys.append(key[rep] + delta.ravel().take(cell))
        ws.append(w)
    rep, o, size, ck, w = (v[0] if len(v) == 1 else np.concatenate(v) for v in (reps, outs, sizes, keys, ws))
    first, inverse = group_keys(ck)
    child = state.take(rep[first])
    child.add_cohort(size[first], *_outcome_counts(table, size[first], o[first], names))
    return child, np.bincount(inverse, weights=w, minlength=first.size)


def _outcomes_without_both(table, c: int):
    """A cohort's outcomes where the key leaves out the patients with both outcomes: one per distinct (DLTs,
    responses), with the summed probability of its splits and the first split's count with both (a possible
    one; nothing reads it)."""
    cache = table.__dict__.setdefault("without_both", {})
    if c not in cache:
        dy, de, dye, pr = table(c)
        _, first, inverse = np.unique(dy * (c + 1) + de, return_index=True, return_inverse=True)
        merged = np.zeros((pr.shape[0], first.size))
        np.add.at(merged, (slice(None), inverse.ravel()), pr)
        cache[c] = (dy[first], de[first], dye[first], merged)
    return cache[c]


def _outcome_counts(table, size: np.ndarray, outcome: np.ndarray, names=("n", "y", "e", "ye")):
    """DLTs, responses and both of outcome ``outcome`` of a cohort of ``size``, per entry."""
    dy, de, dye = (np.zeros(size.size, dtype=np.int32) for _ in range(3))
    for c in np.unique(size):
        at = size == c
        t_dy, t_de, t_dye, _ = table(int(c)) if "ye" in names else _outcomes_without_both(table, int(c))
        dy[at], de[at], dye[at] = t_dy[outcome[at]], t_de[outcome[at]], t_dye[outcome[at]]
    return dy, de, dye


def _merge_counts(design: Design, state: TrialState, prob: np.ndarray) -> tuple[TrialState, np.ndarray]:
    """Merge states equal on the merge key and the memory outside the counts, adding their probabilities; the
    merged state is the first of its group (rows in sorted key order)."""
    extra = [design.merge_key(state), state.current, state.size, state.fired, state.phase, state.aux]
    if design.uses_last_cohort:
        extra += [state.last_n, state.last_y]
    first, inverse = _unique_rows(extra)
    return state.take(first), np.bincount(inverse, weights=prob, minlength=first.size)


def _concat(states: list) -> TrialState:
    """The trials of several states (no per-patient arrays) one after another."""
    if len(states) == 1:
        return states[0]
    cat = lambda key: np.concatenate([getattr(s, key) for s in states])  # noqa: E731
    return TrialState(n=cat("n"), y=cat("y"), e=cat("e"), current=cat("current"), active=cat("active"),
                      last_n=cat("last_n"), last_y=cat("last_y"), ye=cat("ye"), phase=cat("phase"), aux=cat("aux"),
                      size=cat("size"), fired=cat("fired"))


def _terminal_records(design: Design, stopped: TrialState, reason: np.ndarray, fired: np.ndarray,
                      prob: np.ndarray) -> dict:
    """The stopped states (distinct on the merge key and the memory outside it) reduced to one entry per distinct
    (counts, selection, reason, rules), responses as probability-weighted means."""
    sel = design.conclude(stopped, reason)
    first, inverse = _unique_rows([stopped.n, stopped.y, sel, reason, fired])
    m = first.size
    w = np.bincount(inverse, weights=prob, minlength=m)
    e = np.stack([np.bincount(inverse, weights=prob * stopped.e[:, j], minlength=m)
                  for j in range(stopped.n_tiers)], axis=1) / np.where(w > 0, w, 1)[:, None]
    return {"n": stopped.n[first], "y": stopped.y[first], "e": e, "selected": sel[first], "reason": reason[first],
            "fired": fired[first], "prob": w}


def _enumerate_merged(design: Design, probs: np.ndarray, max_states: int) -> dict:
    """:func:`_enumerate` for designs with ``exact_merge_children`` (see above)."""
    table = _outcome_table(probs, True)
    state = TrialState.empty(1, design.n_tiers, design.start, size=design.first_size)
    prob = np.ones(1)
    term = {"n": [], "y": [], "e": [], "selected": [], "reason": [], "fired": [], "prob": []}
    n_out = np.array([comb(c + 3, 3) for c in range(design.max_size + 1)])
    for _ in range(design.max_n + 1):
        if prob.size == 0:
            return term
        room = np.minimum(state.size, design.max_n - state.total_n)
        block = (np.cumsum(n_out[room]) - 1) // CHILD_BLOCK        # each parent's block, by its last child
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(block)) + 1, [state.n_trials]])
        live, live_p = [], []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = slice(int(lo), int(hi))
            parent = state.take(part)
            kids = None if design.uses_last_cohort else _keyed_children(design, parent, prob[part], table)
            if kids is None:
                kids = _merge_counts(design, *_children(design, parent, prob[part], table, True,
                                                        np.iinfo(np.int64).max))
            child, w = kids
            dec = design.step(child)
            st = dec.stop
            # a stopped state keeps its counts and tier; only its rules fired grow (the records take them after)
            child.advance(dec, design.cohort_size)
            if st.any():
                stopped = child if st.all() else child.take(st)
                for key, val in _terminal_records(design, stopped, dec.reason[st], stopped.fired, w[st]).items():
                    term[key].append(val)
            if not st.all():
                live.append(child.take(~st) if st.any() else child)
                live_p.append(w[~st])
        if not live:
            return term
        state, prob = _concat(live), np.concatenate(live_p)
        live.clear()                # (the blocks' copies go before the merge makes another)
        state, prob = _merge_counts(design, state, prob)
        if state.n_trials > max_states:
            raise _too_many(design, max_states)
    raise RuntimeError(f"{design.label}: states did not stop within max_n = {design.max_n} cohorts")


def exact(design: Design, scenario: Scenario, *, target: float | None = None,
          ladder: DoseLadder | None = None, max_states: int = MAX_STATES, obd=None):
    """Exact operating characteristics of ``design`` under ``scenario``.

    Returns the same :class:`~doseesc.results.OperatingCharacteristics` as
    :func:`~doseesc.simulate`, with ``method == "exact"``, one record per
    distinct terminal state weighted by its probability, and zero standard
    errors. Raises :class:`DoseescError` if more than ``max_states`` live
    states would have to be held at once.
    """
    check_not_tite(design, "exact enumeration")
    check_compatible(design, scenario)
    obd_def = resolve_obd(obd, design, scenario)
    joint = design.uses_efficacy
    if joint and scenario.true_eff is None:
        raise DoseescError(f"{design.label} needs true_eff in scenario {scenario.name!r}")
    tgt = resolve_target(target, scenario, design)
    t0 = time.perf_counter()
    # per tier: P(DLT), or with joint the probabilities of the cells N, T, E, B
    probs = scenario.joint() if joint else np.asarray(scenario.true_tox, dtype=float)
    with one_blas_thread():
        term = _enumerate(design, probs, joint, max_states)
    return _result(design, scenario, term, joint, tgt, ladder, obd_def, t0)


def _result(design: Design, scenario: Scenario, term: dict, joint: bool, tgt, ladder, obd_def, t0: float):
    """The terminal states merged into one weighted record per distinct (counts, selection, reason, rules)."""
    k = design.n_tiers
    tn = np.concatenate(term["n"])
    ty = np.concatenate(term["y"])
    te = np.concatenate(term["e"]).astype(float)
    tp = np.concatenate(term["prob"])
    tsel, treason, tfired = (np.concatenate(term[key]) for key in ("selected", "reason", "fired"))
    first, inverse = _unique_rows([tn, ty, tsel, treason, tfired])
    m = first.size
    w = np.bincount(inverse, weights=tp, minlength=m)
    rn, ry = tn[first].astype(np.int32), ty[first].astype(np.int32)
    if joint:  # expected responses given the record (probability-weighted over the merged states)
        resp = np.stack([np.bincount(inverse, weights=tp * te[:, j], minlength=m)
                         for j in range(k)], axis=1) / w[:, None]
    elif scenario.true_eff is not None:
        pe_t, pe_n = scenario.response_given_tox()
        resp = ry * pe_t[None, :] + (rn - ry) * pe_n[None, :]  # expected responses given the record
    else:
        resp = None
    total = w.sum()
    if abs(total - 1) > 1e-9:  # pragma: no cover - internal consistency check
        raise RuntimeError(f"exact probabilities sum to {total!r}, not 1")
    prov = provenance(design, scenario, method="exact", n_trials=None, seed=None,
                      batch_size=None, seconds=time.perf_counter() - t0, target=tgt)
    prov["terminal_states"] = int(m)
    return OperatingCharacteristics(
        method="exact", design=design, scenario=scenario,
        ladder=ladder if ladder is not None else DoseLadder.unlabelled(k), target=tgt,
        n=rn, y=ry, e=resp, obd=obd_def,
        selected=tsel[first].astype(np.int32), reason=treason[first].astype(np.int8),
        fired=tfired[first].astype(np.int16),
        weight=w, n_trials=None, patients=None, provenance=prov)
