"""Escalation paths and dose-transition pathways (Yap et al. 2017, Clin Cancer Res 23:7440).

:func:`paths` enumerates every outcome of the next cohorts from a given point
of a trial (the empty log for the start), for any design: each cohort of ``c``
patients has ``c + 1`` outcomes (0..c DLTs; patient order does not matter to
a design, so cohorts that differ only in order are one node). Every node is
decided by :meth:`Design.step`, the kernel the Monte Carlo and exact engines
and :func:`~doseesc.recommend` use; nodes at one depth are decided together
as one batch. With a scenario, each node carries its probability.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from math import comb

import numpy as np
import pandas as pd

from ..designs.base import Design
from ..errors import DoseescError
from .live import recommend
from ..outcomes import compositions, format_cohort, parse_outcomes
from ..scenario import Scenario
from ..state import StopReason, TrialState
from ..tiers import DoseLadder

#: Default limit on the number of nodes enumerated.
MAX_NODES = 200_000


def _cohort_outcomes(c: int, joint: bool):
    """Outcomes of a cohort of ``c``: arrays (DLTs, responses, both), merged up to patient order."""
    if not joint:
        d = np.arange(c + 1)
        return d, np.zeros_like(d), np.zeros_like(d)
    cells = compositions(c)
    return cells[:, 1] + cells[:, 3], cells[:, 2] + cells[:, 3], cells[:, 3]


def _expand(design: Design, n, y, tier, size, e=None, ye=None, phase=None, aux=None):
    """Children of the live nodes: every outcome of each node's next cohort, decided by the kernel."""
    joint = bool(getattr(design, "uses_efficacy", False))
    t_n = tier.size
    e = np.zeros_like(n) if e is None else e
    ye = np.zeros_like(n) if ye is None else ye
    phase = np.zeros(t_n, dtype=np.int32) if phase is None else phase
    aux = np.zeros(t_n, dtype=np.int32) if aux is None else aux
    room = np.minimum(size, design.max_n - n.sum(axis=1))
    reps, dls, des, dyes = [], [], [], []
    for i in range(t_n):
        dy, de, dye = _cohort_outcomes(int(room[i]), joint)
        reps.append(np.full(dy.size, i))
        dls.append(dy)
        des.append(de)
        dyes.append(dye)
    if t_n:
        rep, dl, de, dye = (np.concatenate(v) for v in (reps, dls, des, dyes))
    else:
        rep = dl = de = dye = np.zeros(0, dtype=int)
    c = room[rep]
    t = tier[rep]
    r = np.arange(rep.size)
    nn, yy, ee, yye = n[rep].copy(), y[rep].copy(), e[rep].copy(), ye[rep].copy()
    nn[r, t] += c
    yy[r, t] += dl
    ee[r, t] += de
    yye[r, t] += dye
    state = TrialState.from_counts(nn, yy, t, e=ee, last_n=c, last_y=dl, ye=yye, phase=phase[rep], aux=aux[rep])
    dec = design.step(state)
    return rep, dl, de, dye, c, state, dec


def _start_state(rec):
    """Counts and multi-stage memory after the observed log, as ``recommend`` left them."""
    m = rec.memory
    return (m["n"].copy(), m["y"].copy(), m["e"].copy(), m["ye"].copy(), m["phase"].copy(), m["aux"].copy())


def count_nodes(design: Design, n_cohorts: int, start: str = "", limit: int | None = None) -> list[int]:
    """Exact number of nodes at each of the next ``n_cohorts`` cohorts (cheap: no path text is built).

    Stops counting once the total exceeds ``limit``; the returned list is then shorter.
    """
    from ..designs.tite import check_not_tite

    check_not_tite(design, "dose paths")
    rec = recommend(design, start, warn=False)
    if rec.stop:
        return []
    n, y, e, ye, phase, aux = _start_state(rec)
    tier = np.array([rec.next_tier], dtype=np.int32)
    size = np.array([rec.incomplete or _next_size(design, start, rec)], dtype=np.int32)
    counts, total = [], 0
    for _ in range(n_cohorts):
        if tier.size == 0:
            break
        rep, dl, de, dye, c, st, dec = _expand(design, n, y, tier, size, e, ye, phase, aux)
        counts.append(int(rep.size))
        total += rep.size
        if limit is not None and total > limit:
            break
        go = ~dec.stop
        n, y, e, ye, tier = st.n[go], st.y[go], st.e[go], st.ye[go], dec.next[go].astype(np.int32)
        phase = (st.phase if dec.phase is None else dec.phase)[go].astype(np.int32)
        aux = (st.aux if dec.aux is None else dec.aux)[go].astype(np.int32)
        size = (np.full(int(go.sum()), design.cohort_size) if dec.size is None else dec.size[go]).astype(np.int32)
    return counts


@dataclass(frozen=True)
class DosePaths:
    """The enumerated paths. ``nodes()`` is one row per node, ``table()`` the wide DTP table."""

    design: Design
    ladder: DoseLadder
    start: str
    n_cohorts: int
    scenario: Scenario | None
    frame: pd.DataFrame

    def nodes(self) -> pd.DataFrame:
        """One row per node: node, parent, cohort, path, tier, dlts, outcome, decision, next tier, stop
        reason, selected tier, and (with a scenario) the conditional and path probabilities."""
        return self.frame.copy()

    @property
    def n_nodes(self) -> int:
        return len(self.frame)

    def leaves(self) -> pd.DataFrame:
        """Complete paths: nodes at the last cohort, or where the trial stopped earlier."""
        f = self.frame
        leaves = f[(f["cohort"] == self.n_cohorts) | f["stop"]]
        return leaves.sort_values("path", kind="stable")  # text order is depth-first tree order

    def table(self) -> pd.DataFrame:
        """Dose-transition pathway table in the wide form protocols print.

        One row per complete path; per cohort j the columns ``cohort j tier`` (the
        dose given) and ``cohort j DLTs``; then the decision after the last cohort
        and, with a scenario, the path's probability.
        """
        f = self.frame.set_index("node")
        rows = []
        for _, leaf in self.leaves().iterrows():
            chain = []
            node = leaf
            while True:
                chain.append(node)
                if node["parent"] < 0:
                    break
                node = f.loc[node["parent"]]
            chain = chain[::-1]
            row = {"path": leaf["path"]}
            joint = "responses" in f.columns
            for j, nd in enumerate(chain, start=1):
                row[f"cohort {j} tier"] = nd["tier"]
                row[f"cohort {j} DLTs"] = f"{nd['dlts']}/{nd['size']}"
                if joint:
                    row[f"cohort {j} responses"] = f"{nd['responses']}/{nd['size']}"
            for j in range(len(chain) + 1, self.n_cohorts + 1):
                row[f"cohort {j} tier"] = ""
                row[f"cohort {j} DLTs"] = ""
                if joint:
                    row[f"cohort {j} responses"] = ""
            row["decision"] = leaf["decision"]
            if self.scenario is not None:
                row["probability"] = leaf["probability"]
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path=None) -> str | None:
        return self.table().to_csv(path, index=False)

    def plot(self, ax=None, max_tree_nodes: int = 150):
        from ..report.plots import plot_paths

        return plot_paths(self, ax=ax, max_tree_nodes=max_tree_nodes)


def paths(design: Design, n_cohorts: int, start: str = "", scenario: Scenario | None = None,
          ladder: DoseLadder | None = None, max_nodes: int = MAX_NODES) -> DosePaths:
    """Every DLT-driven path of the next ``n_cohorts`` cohorts from ``start`` (a trial log).

    The nodes are counted first (:func:`count_nodes`, arrays only); if there
    are more than ``max_nodes``, :class:`DoseescError` is raised before any
    path is built, naming the largest number of cohorts that fits.
    """
    from ..designs.tite import check_not_tite

    check_not_tite(design, "dose paths")
    if isinstance(n_cohorts, bool) or not isinstance(n_cohorts, (int, np.integer)) or n_cohorts < 1:
        raise DoseescError(f"n_cohorts = {n_cohorts!r} must be a positive integer")
    ladder = ladder if ladder is not None else DoseLadder.unlabelled(design.n_tiers)
    if scenario is not None and scenario.n_tiers != design.n_tiers:
        raise DoseescError(f"scenario {scenario.name!r} has {scenario.n_tiers} tiers, the design {design.n_tiers}")
    rec = recommend(design, start, ladder=ladder, warn=False)
    if rec.stop:
        raise DoseescError(f"start {start!r}: the design has already stopped ({rec.reason.text}); no paths follow")
    first_size = rec.incomplete if rec.incomplete else _next_size(design, start, rec)
    counts = count_nodes(design, n_cohorts, start, limit=max_nodes)
    if sum(counts) > max_nodes:
        fit = int(np.searchsorted(np.cumsum(counts), max_nodes, side="right"))
        raise DoseescError(
            f"{n_cohorts} cohorts give more than max_nodes = {max_nodes:,} nodes "
            f"({sum(counts):,} within the first {len(counts)} cohorts already); "
            f"use at most {max(fit, 1)} cohorts (or raise the limit)")
    joint = bool(getattr(design, "uses_efficacy", False))
    if scenario is None:
        probs = None
    elif joint:
        if scenario.true_eff is None:
            raise DoseescError(f"{design.label} branches on response: scenario {scenario.name!r} needs true_eff")
        probs = scenario.joint()  # per tier: N, T, E, B
    else:
        probs = np.asarray(scenario.true_tox, float)
    prefix = start.strip()
    # live frontier: arrays over nodes
    n, y, e, ye, phase, aux = _start_state(rec)
    tier = np.array([rec.next_tier], dtype=np.int32)
    size = np.array([first_size], dtype=np.int32)
    prob = np.ones(1)
    ids = np.array([-1])
    texts = [prefix]
    rows = []
    next_id = 0
    for depth in range(1, n_cohorts + 1):
        if tier.size == 0:
            break
        rep, dl, de, dye, c, st, dec = _expand(design, n, y, tier, size, e, ye, phase, aux)
        t = st.current
        # cells of each cohort outcome: neither, DLT only, response only, both
        cells = np.column_stack([c - dl - de + dye, dl - dye, de - dye, dye])
        if probs is None:
            cond = np.full(rep.size, np.nan)
        elif joint:
            coef = np.array([math.factorial(int(ci)) / np.prod([math.factorial(int(v)) for v in row])
                             for ci, row in zip(c, cells)])
            cond = coef * np.prod(probs[t] ** cells, axis=1)
        else:
            cond = np.array([comb(int(ci), int(di)) for ci, di in zip(c, dl)]) * probs[t] ** dl * (1 - probs[t]) ** (c - dl)
        pr = prob[rep] * cond
        stop = dec.stop
        sel = np.full(rep.size, -1, dtype=np.int32)
        if stop.any():
            sel[stop] = design.conclude(st.take(stop), dec.reason[stop])
        new_texts = []
        for i in range(rep.size):
            ci, di = int(c[i]), int(dl[i])
            n00, n10, n01, n11 = (int(v) for v in cells[i])
            tox = [False] * (n00 + n01) + [True] * (n10 + n11)
            eff = [False] * n00 + [True] * n01 + [False] * n10 + [True] * n11
            cohort_text = format_cohort(int(t[i]), tox, eff if joint else None)
            base = texts[rep[i]]
            if rec.incomplete and depth == 1:
                text = (base + cohort_text[len(str(int(t[i]) + 1)):]).strip()
            else:
                text = (base + " " + cohort_text).strip()
            new_texts.append(text)
            reason = StopReason(int(dec.reason[i]))
            if stop[i]:
                decision = f"stop ({reason.text}); select {ladder.label(int(sel[i]))}"
            else:
                decision = f"next cohort at {ladder.label(int(dec.next[i]))}"
            row = {
                "node": next_id + i, "parent": int(ids[rep[i]]), "cohort": depth, "path": text,
                "tier": ladder.label(int(t[i])), "tier_index": int(t[i]) + 1, "size": ci, "dlts": di,
                "outcome": cohort_text, "stop": bool(stop[i]), "reason": reason.name.lower(),
                "next_tier": None if stop[i] else int(dec.next[i]) + 1,
                "next_dose": None if stop[i] else ladder.label(int(dec.next[i])),
                "selected": ladder.label(int(sel[i])) if stop[i] else None,
                "decision": decision,
                "cond_probability": float(cond[i]), "probability": float(pr[i]),
            }
            if joint:
                row["responses"] = int(de[i])
            rows.append(row)
        node_ids = next_id + np.arange(rep.size)
        next_id += rep.size
        go = ~stop
        n, y, e, ye, prob = st.n[go], st.y[go], st.e[go], st.ye[go], pr[go]
        phase = (st.phase if dec.phase is None else dec.phase)[go].astype(np.int32)
        aux = (st.aux if dec.aux is None else dec.aux)[go].astype(np.int32)
        tier = dec.next[go].astype(np.int32)
        size = (np.full(int(go.sum()), design.cohort_size) if dec.size is None else dec.size[go]).astype(np.int32)
        ids = node_ids[go]
        texts = [tx for tx, g in zip(new_texts, go) if g]
    frame = pd.DataFrame(rows)
    if scenario is None:
        frame = frame.drop(columns=["cond_probability", "probability"])
    return DosePaths(design=design, ladder=ladder, start=prefix, n_cohorts=int(n_cohorts), scenario=scenario,
                     frame=frame)


def _next_size(design: Design, start: str, rec) -> int:
    """Size of the next cohort after ``start`` (the design's, or its titration size)."""
    if not start.strip():
        return design.first_size
    cohorts = parse_outcomes(start, design.n_tiers)
    n = np.zeros(design.n_tiers, dtype=np.int32)
    y = np.zeros(design.n_tiers, dtype=np.int32)
    for c in cohorts:
        n[c.tier] += c.size
        y[c.tier] += sum(c.tox)
    last = cohorts[-1]
    dec = design.step(TrialState.from_counts(n, y, last.tier, last_n=last.size, last_y=sum(last.tox)))
    return design.cohort_size if dec.size is None else int(dec.size[0])
