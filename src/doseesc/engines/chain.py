"""The Monte Carlo engine as a walk on the design's state graph (issue 20: decide once per distinct state).

A design whose kernel is a function of the trial's state alone turns a trial into a walk on a graph: a node is
a trial's state after a cohort and the decision made on it, an edge is the next cohort's outcome (its DLTs and,
where the scenario has response, responses and patients with both). The graph depends on the design only, not
on the truth. :class:`Chain` builds the part of it the simulated trials reach, lazily: a trial carries one node
number; each cohort, its outcome is read from its own latent uniforms (as in
:func:`~doseesc.engines.montecarlo.run_batch`) and the edge table gives the next node. Only edges no trial took
before are worked out, once per distinct (node, outcome): the child's counts (:meth:`TrialState.add_cohort`),
the design's decision (:meth:`Design.step`) and the state it moves to (:meth:`TrialState.advance`), the very
operations of the cohort-by-cohort engine; the final choice of the states a batch stopped on
(:meth:`Design.conclude`) comes once, at the end of the batch. So every
count, selection, stop reason, rule fired and patient record is identical to it (``tests/test_chain.py``), and
a run touches each trial only to read its outcome and follow one edge.

The graph is kept for the run (and for later runs of the same or an equal design, see :func:`chain_for`) up to
:data:`MAX_NODES` nodes (fewer for designs with response, :data:`MAX_EDGE_CELLS`); a batch that would pass it
runs on the cohort-by-cohort engine.
"""

from __future__ import annotations

import numpy as np

from ..state import TrialState, group_keys, pack_columns

__all__ = ["Chain", "chain_for", "MAX_NODES"]

#: Most nodes a chain keeps, and most cells of its edge table (one int32 per node and cohort outcome: a design
#: with response has 64 outcomes of a cohort of 3, so at most 65,536 nodes). About 16 MB of edges and 30 MB of
#: node states at most, whatever the number of trials.
MAX_NODES = 1 << 18
MAX_EDGE_CELLS = 1 << 22


#: ``selected`` of a stopped node whose final choice is not worked out yet (:meth:`Chain._conclude`).
PENDING = -2
#: A batch steps every trial (stopped ones masked) while at least this share is alive, then only the live ones.
SUBSET_SHARE = 0.5
#: New edges are merged on their end state (:func:`_end_key`) when more than this many are added at once;
#: fewer are cheaper to decide apart (a state then may have two nodes: the same decisions either way).
DEDUPE_FROM = 1024


class ChainFull(Exception):
    """The batch would take the chain past its most nodes (:data:`MAX_NODES`, :data:`MAX_EDGE_CELLS`)."""


_FIELDS = ("n", "y", "e", "ye", "current", "active", "last_n", "last_y", "phase", "aux", "size", "fired")
#: Without response, a state's ``e`` and ``ye`` stay zero: the chain neither stores nor gathers them.
_FIELDS_NO_EFF = tuple(f for f in _FIELDS if f not in ("e", "ye"))


class Chain:
    """The reached part of ``design``'s state graph, for responses or not (``eff``)."""

    def __init__(self, design, eff: bool):
        self.design = design
        self.eff = eff
        self.width = min(design.max_size, design.max_n)
        w1 = self.width + 1
        self.n_out = w1 ** 3 if eff else w1
        self._fields = _FIELDS if eff else _FIELDS_NO_EFF
        root = TrialState.empty(1, design.n_tiers, design.start, size=design.first_size)
        self.size = 0
        #: Set once a batch found the graph too large (the engine then runs cohort by cohort).
        self.full = False
        self._cap = 0
        self._post: dict = {}
        self.edges = np.zeros((0, self.n_out), np.int32)
        self._append(root, np.zeros(1, np.int64), np.zeros(1, bool), np.full(1, -1, np.int32), np.zeros(1, np.int8))

    # -- the node table -------------------------------------------------------------------------------
    def _append(self, state: TrialState, total, stop, selected, reason, fired_before=None) -> np.ndarray:
        """Append nodes (their state after the decision, patients so far, stop, final choice or :data:`PENDING`,
        stop reason, and the rules fired before the decision)."""
        m = state.n_trials
        fired_before = state.fired if fired_before is None else fired_before
        lo, hi = self.size, self.size + m
        cols = {f: getattr(state, f) for f in self._fields}
        flag = np.asarray(stop, np.int8) | ((state.size != self.width) << 1).astype(np.int8)
        cols.update(total=total, stop=stop, selected=selected, reason=reason, flag=flag, fired_before=fired_before)
        if hi > self._cap:
            cap = max(2 * self._cap, hi, 256)
            grown = {}
            for key, v in cols.items():
                a = np.zeros((cap,) + v.shape[1:], dtype=v.dtype)
                if key in self._post:
                    a[:lo] = self._post[key][:lo]
                grown[key] = a
            self._post = grown
            edges = np.full((cap, self.n_out), -1, np.int32)
            edges[:lo] = self.edges[:lo]
            self.edges = edges
            self._cap = cap
        for key, v in cols.items():
            self._post[key][lo:hi] = v
        ids = np.arange(lo, hi, dtype=np.int32)
        self.edges[ids[stop]] = ids[stop][:, None]      # a stopped trial stays where it is
        self.size = hi
        return ids

    def _state(self, nodes) -> TrialState:
        """The states (after their decisions) of ``nodes``, as a new state."""
        cols = {f: self._post[f][nodes] for f in self._fields}
        if not self.eff:
            cols["e"], cols["ye"] = np.zeros_like(cols["n"]), np.zeros_like(cols["n"])
        return TrialState(**cols)

    def _add(self, parent: np.ndarray, code: np.ndarray) -> np.ndarray:
        """Nodes for the distinct new edges (``parent``, ``code``): their states, decisions and final choices."""
        design = self.design
        if self.size + parent.size > min(MAX_NODES, MAX_EDGE_CELLS // self.n_out):
            raise ChainFull
        w1 = self.width + 1
        if self.eff:
            dlt, resp, both = code // (w1 * w1), (code // w1) % w1, code % w1
        else:
            dlt, resp, both = code, None, None
        child = self._state(parent)
        total = self._post["total"][parent]
        cnt = np.minimum(child.size, design.max_n - total).astype(np.int32)
        child.add_cohort(cnt, dlt.astype(np.int32), None if resp is None else resp.astype(np.int32),
                         None if both is None else both.astype(np.int32))
        key = _end_key(design, child, self.eff) if parent.size > DEDUPE_FROM else None
        if key is not None:          # edges that end in the same state share one node
            first, inverse = group_keys(key)
            if first.size < parent.size:
                ids = self._decide(child.take(first), (total + cnt)[first])[inverse]
                self.edges[parent, code] = ids
                return ids
        ids = self._decide(child, total + cnt)
        self.edges[parent, code] = ids
        return ids

    def _decide(self, child: TrialState, total: np.ndarray) -> np.ndarray:
        """New nodes for the distinct states ``child`` (after a cohort, ``total`` patients so far): the design's
        decision, the final choice where it stops, and the state it moves to."""
        design = self.design
        dec = design.step(child)
        st = dec.stop
        selected = np.where(st, PENDING, -1).astype(np.int32)   # final choices: at the end of the batch
        reason = dec.reason.astype(np.int8)
        fired_before = child.fired.copy()
        child.advance(dec, design.cohort_size)
        return self._append(child, total, st, selected, reason, fired_before)

    def _conclude(self, node: np.ndarray) -> None:
        """The final choice of the stopped nodes among ``node`` not yet concluded, in one call of the design's
        :meth:`~doseesc.designs.base.Design.conclude` on the states it decided to stop on (the rules fired before
        that decision, still active), as the cohort-by-cohort engine calls it."""
        post = self._post
        seen = np.zeros(self.size, bool)     # the distinct pending nodes, in increasing order, without a sort
        seen[node[post["selected"][node] == PENDING]] = True
        pending = np.flatnonzero(seen)
        if pending.size:
            state = self._state(pending)
            state.fired = post["fired_before"][pending]
            state.active[:] = True
            post["selected"][pending] = self.design.conclude(state, post["reason"][pending])

    def follow(self, node: np.ndarray, code: np.ndarray) -> np.ndarray:
        """The node each trial at ``node`` reaches with cohort outcome ``code``, adding the edges not seen."""
        pair = node.astype(np.int64) * self.n_out + code
        nxt = self.edges.ravel()[pair]
        miss = nxt < 0
        if miss.any():
            pair = pair[miss]
            first, inverse = group_keys(pair)
            uniq = pair[first]
            ids = self._add((uniq // self.n_out).astype(np.intp), uniq % self.n_out)
            nxt[miss] = ids[inverse]
        return nxt

    # -- one batch ------------------------------------------------------------------------------------
    def run(self, p: np.ndarray, u_tox: np.ndarray, u_eff: np.ndarray | None, eff_given,
            records: bool = True) -> dict:
        """The trials of one batch (latent uniforms ``u_tox``, ``u_eff``, shape ``(n_trials, patients)``; fastest
        patient-major in memory, as :func:`~doseesc.rng.patient_uniforms` gives them): what
        :func:`~doseesc.engines.montecarlo.run_batch` returns, with the per-patient records patient-major in
        memory. Without ``records``: no per-patient records, and instead the per-trial flag "some cohort had 2 or
        more DLTs" under ``TWO_DLT_KEY`` (what :func:`~doseesc.results.two_dlt_cohort` gives from the records)."""
        design = self.design
        n_trials = u_tox.shape[0]
        max_n, width = design.max_n, self.width
        u = u_tox[:, :max_n].T                     # (patient, trial)
        ue = None if u_eff is None else u_eff[:, :max_n].T
        if ue is not None:
            pe_t, pe_n = (np.asarray(a, float) for a in eff_given)
        if records:
            pt_tier = np.full((max_n, n_trials), -1, dtype=np.int8 if design.n_tiers < 127 else np.int16)
            pt_tox = np.zeros((max_n, n_trials), dtype=bool)
            pt_new = np.zeros((max_n, n_trials), dtype=bool)
            pt_eff = np.zeros((max_n, n_trials), dtype=bool)
        else:
            two = np.zeros(n_trials, dtype=bool)
        node = np.zeros(n_trials, np.int32)
        cols = np.arange(width)
        w1 = width + 1
        post = self._post
        # Full mode (act None): every trial of the batch steps, those that stopped masked out (alive False; they
        # sit at their stopped node, whose edges all lead back to it); once fewer than SUBSET_SHARE are alive,
        # only the trials ``act`` step.
        act = alive = None
        b0 = None     # the patient slot every live trial's next cohort starts at, where all are alike and full
        while True:
            full = act is None
            if full and alive is not None and not alive.any() or not full and not act.size:
                break
            if b0 is None:
                sel = node if full and alive is None else node[alive if full else act]
                base, size = post["total"][sel], post["size"][sel]
                if base.min() == base.max() and size.min() == width:
                    b0 = int(base[0])
            if b0 is not None and b0 + width <= max_n:
                # every live trial's cohort fills patient slots b0..b0+width-1: rows of the patient-major arrays
                at = node if full else node[act]
                rows = slice(None) if full else act
                mask = alive if full else None
                cur = post["current"][at]
                pc = p[cur]
                code = np.zeros(at.size, np.int64)
                if ue is not None:
                    nr, nb = np.zeros(at.size, np.int64), np.zeros(at.size, np.int64)
                    pr = np.stack([pe_n[cur], pe_t[cur]])      # P(response | no DLT), P(response | DLT)
                if records:
                    pt_new[b0, rows] = True if mask is None else mask
                    tier = cur if mask is None else np.where(mask, cur, -1)
                for j in range(b0, b0 + width):
                    dlt = (u[j] if full else u[j, act]) < pc
                    if mask is not None:
                        dlt &= mask
                    code += dlt
                    if records:
                        pt_tier[j, rows], pt_tox[j, rows] = tier, dlt
                    if ue is not None:
                        resp = (ue[j] if full else ue[j, act]) < np.where(dlt, pr[1], pr[0])
                        if mask is not None:
                            resp &= mask
                        nr += resp
                        nb += resp & dlt
                        if records:
                            pt_eff[j, rows] = resp
                if not records:
                    two[rows] |= code >= 2
                if ue is not None:
                    code = (code * w1 + nr) * w1 + nb
                b0 += width
                nxt = self.follow(at, code)
                post = self._post
                if full:
                    node = nxt
                else:
                    node[act] = nxt
            else:
                b0 = None
                idx = act if not full else (np.arange(n_trials) if alive is None else np.flatnonzero(alive))
                at = node[idx]
                cur = post["current"][at]
                pc = p[cur]
                base, size = post["total"][at], post["size"][at]
                slots = base[:, None] + cols
                take = (cols < size[:, None]) & (slots < max_n)
                r, c = np.nonzero(take)
                trial, slot = idx[r], slots[r, c]
                dlt = np.zeros(take.shape, bool)
                dlt[r, c] = u[slot, trial] < pc[r]
                if records:
                    pt_tier[slot, trial] = cur[r]
                    pt_tox[slot, trial] = dlt[r, c]
                    first = take[:, 0]
                    pt_new[slots[first, 0], idx[first]] = True
                code = dlt.sum(axis=1, dtype=np.int64)
                if not records:
                    two[idx] |= code >= 2
                if ue is not None:
                    resp = np.zeros(take.shape, bool)
                    resp[r, c] = ue[slot, trial] < np.where(dlt[r, c], pe_t[cur[r]], pe_n[cur[r]])
                    if records:
                        pt_eff[slot, trial] = resp[r, c]
                    nr = resp.sum(axis=1, dtype=np.int64)
                    nb = (resp & dlt).sum(axis=1, dtype=np.int64)
                    code = (code * w1 + nr) * w1 + nb
                nxt = self.follow(at, code)
                post = self._post
                node[idx] = nxt
            # who goes on: bit 0 of a node's flag, stopped; bit 1, its next cohort is not of full width
            if full:
                flag = post["flag"][node]
                go = (flag & 1) == 0
                irregular = bool(((flag & 3) == 2).any())
                alive = None if go.all() else go
                if alive is not None and np.count_nonzero(alive) < SUBSET_SHARE * n_trials:
                    act, alive = np.flatnonzero(alive), None
            else:
                flag = post["flag"][node[act]]
                go = (flag & 1) == 0
                act, flag = act[go], flag[go]
                irregular = bool((flag & 2).any())
            if irregular:
                b0 = None
        self._conclude(node)
        n, y = post["n"][node], post["y"][node]
        # without response: zero arrays the result does not read (np.zeros leaves the pages untouched)
        e, ye = (post["e"][node], post["ye"][node]) if self.eff else (np.zeros(n.shape, n.dtype),
                                                                       np.zeros(n.shape, n.dtype))
        out = {"n": n, "y": y, "e": e, "ye": ye,
               "selected": post["selected"][node], "reason": post["reason"][node], "fired": post["fired"][node]}
        if records:
            out.update(tier=pt_tier.T, tox=pt_tox.T, eff=pt_eff.T, new_cohort=pt_new.T)
        else:
            out[TWO_DLT_KEY] = two
        return out


def _end_key(design, state: TrialState, eff: bool = True) -> np.ndarray | None:
    """One int64 per state, equal for states the design cannot tell apart: every count, the current tier, the
    next cohort's size, the rules fired and the multi-stage memory, and the last cohort only for designs that
    read it (``uses_last_cohort``, as the exact engine merges); None where they do not pack into 63 bits."""
    cols = [state.n, state.y] + ([state.e, state.ye] if eff else []) + [state.current, state.phase, state.aux,
                                                                         state.size, state.fired]
    if design.uses_last_cohort:
        cols += [state.last_n, state.last_y]
    return pack_columns(cols)


#: Key of the per-trial "some cohort had 2 or more DLTs" flag of a batch run without records (as
#: :data:`doseesc.engines.montecarlo.TWO_DLT_KEY`).
TWO_DLT_KEY = "two_dlt_cohort"

_RECENT: list = []


def _equal(a, b) -> bool:
    """Designs of the same type with equal parameters (a design unpickled in a worker process equals the one it
    was pickled from): they decide alike, so they share a graph."""
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:   # a parameter that does not compare (an array): not the same design
        return False


def chain_for(design, eff: bool) -> Chain:
    """The chain of ``design`` (the same object, or an equal one) and response mode, kept for the last few designs
    run, so that batches, later runs and the batches a worker process receives extend one graph."""
    for d, e, chain in _RECENT:
        if e == eff and (d is design or _equal(d, design)):
            return chain
    chain = Chain(design, eff)
    _RECENT.insert(0, (design, eff, chain))
    del _RECENT[4:]
    return chain
