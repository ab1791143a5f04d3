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
from typing import NamedTuple

import numpy as np

from .._lazy import lazy
from ..designs.base import Design
from .run import check_not_tite
from ..errors import DoseescError
from ..limits import MAX_PATH_NODES
from .live import recommend
from ..outcomes import cohort_outcomes, format_cohort
from ..scenario import Scenario
from ..state import Decision, StopReason, TrialState
from ..tiers import DoseLadder

pd = lazy("pandas")

#: Default limit on the number of nodes enumerated.
MAX_NODES = MAX_PATH_NODES


class _Children(NamedTuple):
    """Every outcome of the next cohort of each live node, arrays over the children."""

    parent: np.ndarray      # index of the parent node
    dlts: np.ndarray
    responses: np.ndarray
    both: np.ndarray        # patients with a DLT and a response
    size: np.ndarray        # patients in the cohort
    cond: np.ndarray        # probability given the parent (NaN without a scenario)
    state: TrialState       # the children's state: the parent's with the cohort added
    dec: Decision           # the kernel's decision on it


def _expand(design: Design, state: TrialState, probs=None) -> _Children:
    """Children of the live nodes ``state``: every outcome of each node's next cohort (of its ``size``,
    within ``max_n``, at its current tier), node by node, decided together by the kernel."""
    joint = design.uses_efficacy
    room = np.minimum(state.size, design.max_n - state.total_n)
    table = {}
    parts = []
    for i in range(state.n_trials):
        c = int(room[i])
        if c not in table:
            table[c] = cohort_outcomes(c, probs, joint)
        dy, de, dye, pr = table[c]
        cond = np.full(dy.size, np.nan) if pr is None else pr[state.current[i]]
        parts.append((np.full(dy.size, i), dy, de, dye, cond))
    if parts:
        rep, dy, de, dye, cond = (np.concatenate(v) for v in zip(*parts))
    else:
        rep = dy = de = dye = np.zeros(0, dtype=int)
        cond = np.zeros(0)
    c = room[rep]
    child = state.take(rep)
    child.add_cohort(c, dy, de, dye)
    return _Children(rep, dy, de, dye, c, cond, child, design.step(child))


def _frontier(rec) -> TrialState:
    """The live node after the observed log, as ``recommend`` left it (the next cohort's tier and size,
    or the rest of an incomplete cohort)."""
    return rec.state.take(np.array([0]))


def count_nodes(design: Design, n_cohorts: int, start: str = "", limit: int | None = None) -> list[int]:
    """Exact number of nodes at each of the next ``n_cohorts`` cohorts (cheap: no path text is built).

    Stops counting once the total exceeds ``limit``; the returned list is then shorter.
    """
    check_not_tite(design, "dose paths")
    rec = recommend(design, start, warn=False)
    return [] if rec.stop else _count_from(design, _frontier(rec), n_cohorts, limit)


def _count_from(design: Design, state: TrialState, n_cohorts: int, limit: int | None) -> list[int]:
    counts, total = [], 0
    for _ in range(n_cohorts):
        if state.n_trials == 0:
            break
        kids = _expand(design, state)
        counts.append(int(kids.parent.size))
        total += kids.parent.size
        if limit is not None and total > limit:
            break
        kids.state.advance(kids.dec, design.cohort_size)
        state = kids.state.take(~kids.dec.stop)
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
    check_not_tite(design, "dose paths")
    if isinstance(n_cohorts, bool) or not isinstance(n_cohorts, (int, np.integer)) or n_cohorts < 1:
        raise DoseescError(f"n_cohorts = {n_cohorts!r} must be a positive integer")
    ladder = ladder if ladder is not None else DoseLadder.unlabelled(design.n_tiers)
    if scenario is not None and scenario.n_tiers != design.n_tiers:
        raise DoseescError(f"scenario {scenario.name!r} has {scenario.n_tiers} tiers, the design {design.n_tiers}")
    rec = recommend(design, start, ladder=ladder, warn=False)
    if rec.stop:
        raise DoseescError(f"start {start!r}: the design has already stopped ({rec.reason.text}); no paths follow")
    counts = _count_from(design, _frontier(rec), n_cohorts, max_nodes)
    if sum(counts) > max_nodes:
        fit = int(np.searchsorted(np.cumsum(counts), max_nodes, side="right"))
        raise DoseescError(
            f"{n_cohorts} cohorts give more than max_nodes = {max_nodes:,} nodes "
            f"({sum(counts):,} within the first {len(counts)} cohorts already); "
            f"use at most {max(fit, 1)} cohorts (or raise the limit)")
    probs = _probabilities(design, scenario)
    frame = pd.DataFrame(_walk(design, rec, n_cohorts, probs, ladder, start.strip()))
    if scenario is None:
        frame = frame.drop(columns=["cond_probability", "probability"])
    return DosePaths(design=design, ladder=ladder, start=start.strip(), n_cohorts=int(n_cohorts), scenario=scenario,
                     frame=frame)


def _probabilities(design: Design, scenario: Scenario | None):
    """Per tier: P(DLT), or for a design that branches on response the joint probabilities of N, T, E, B."""
    if scenario is None:
        return None
    if design.uses_efficacy:
        if scenario.true_eff is None:
            raise DoseescError(f"{design.label} branches on response: scenario {scenario.name!r} needs true_eff")
        return scenario.joint()
    return np.asarray(scenario.true_tox, float)


def _walk(design: Design, rec, n_cohorts: int, probs, ladder: DoseLadder, prefix: str) -> list[dict]:
    """One row per node of the next ``n_cohorts`` cohorts from the state ``rec`` left, depth by depth."""
    state = _frontier(rec)   # the live nodes, arrays over nodes
    prob = np.ones(1)
    ids = np.array([-1])
    texts = [prefix]
    rows = []
    for depth in range(1, n_cohorts + 1):
        if state.n_trials == 0:
            break
        kids = _expand(design, state, probs)
        dec, child = kids.dec, kids.state
        pr = prob[kids.parent] * kids.cond
        sel = np.full(pr.size, -1, dtype=np.int32)
        if dec.stop.any():
            sel[dec.stop] = design.conclude(child.take(dec.stop), dec.reason[dec.stop])
        joined = rec.incomplete and depth == 1   # the first cohort completes the log's last cohort
        node_ids = len(rows) + np.arange(pr.size)
        new_texts = _node_rows(rows, design, ladder, depth, kids, sel, pr, [int(ids[r]) for r in kids.parent],
                               [texts[r] for r in kids.parent], joined)
        child.advance(dec, design.cohort_size)
        go = ~dec.stop
        state, prob, ids = child.take(go), pr[go], node_ids[go]
        texts = [tx for tx, g in zip(new_texts, go) if g]
    return rows


def _node_rows(rows: list, design: Design, ladder: DoseLadder, depth: int, kids: _Children, sel, pr, parents,
               bases, joined: bool) -> list[str]:
    """Append one row per new node to ``rows`` (``parents``: each node's parent id, ``bases``: its parent's path
    text); returns each node's path text."""
    joint = design.uses_efficacy
    dec, t = kids.dec, kids.state.current
    next_id = len(rows)
    new_texts = []
    for i in range(pr.size):
        ci, di, ti = int(kids.size[i]), int(kids.dlts[i]), int(t[i])
        n11 = int(kids.both[i])
        n10, n01 = di - n11, int(kids.responses[i]) - n11
        n00 = ci - n10 - n01 - n11
        tox = [False] * (n00 + n01) + [True] * (n10 + n11)
        eff = [False] * n00 + [True] * n01 + [False] * n10 + [True] * n11
        cohort_text = format_cohort(ti, tox, eff if joint else None)
        if joined:
            text = (bases[i] + cohort_text[len(str(ti + 1)):]).strip()
        else:
            text = (bases[i] + " " + cohort_text).strip()
        new_texts.append(text)
        stop = bool(dec.stop[i])
        reason = StopReason(int(dec.reason[i]))
        if stop:
            decision = f"stop ({reason.text}); select {ladder.label(int(sel[i]))}"
        else:
            decision = f"next cohort at {ladder.label(int(dec.next[i]))}"
        row = {
            "node": next_id + i, "parent": parents[i], "cohort": depth, "path": text,
            "tier": ladder.label(ti), "tier_index": ti + 1, "size": ci, "dlts": di,
            "outcome": cohort_text, "stop": stop, "reason": reason.name.lower(),
            "next_tier": None if stop else int(dec.next[i]) + 1,
            "next_dose": None if stop else ladder.label(int(dec.next[i])),
            "selected": ladder.label(int(sel[i])) if stop else None,
            "decision": decision,
            "cond_probability": float(kids.cond[i]), "probability": float(pr[i]),
        }
        if joint:
            row["responses"] = int(kids.responses[i])
        rows.append(row)
    return new_texts
