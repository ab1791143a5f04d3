"""Plots: each takes ``ax=None`` and returns the Axes; matplotlib is imported lazily; figures are returned, never shown."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from ..designs.base import GRID_WORDS
from ..tables import decision_grid
from ..tiers import DAYS_PER_MONTH, DoseLadder
from .labels import design_colours, dose_text, literal

#: Okabe-Ito colour-blind-safe palette.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DECISION_COLOURS = {"E": "#0072B2", "S": "#009E73", "D": "#E69F00", "DU": "#882255"}
DECISION_TEXT = dict(GRID_WORDS)


def _axes(ax, figsize):
    """The given Axes, or a new one on a bare Figure (no pyplot: nothing global, any backend saves it)."""
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def plot_decision_table(design, max_n: int | None = None, ax=None):
    """Decision table as a colour grid: patients n at the current tier (rows) x DLTs y (columns).

    Each cell shows the letter and colour of the decision: E escalate, S
    stay, D de-escalate, DU de-escalate and eliminate; the legend gives the
    design's own words (``design.decision_words()``; 3+3 without
    de-escalation: D = stop, MTD = tier below).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    grid = decision_grid(design, max_n)
    ns = list(grid.index)
    max_y = max(ns)
    order = ["E", "S", "D", "DU"]
    codes = np.full((len(ns), max_y + 1), np.nan)
    for i, n in enumerate(ns):
        for y in range(n + 1):
            codes[i, y] = order.index(grid.loc[n, y])
    ax = _axes(ax, (min(max(6.5, 3.5 + 0.32 * (max_y + 1)), 14), min(max(2.8, 1.6 + 0.3 * len(ns)), 12)))
    cmap = ListedColormap([DECISION_COLOURS[c] for c in order])
    ax.imshow(np.ma.masked_invalid(codes), cmap=cmap, vmin=-0.5, vmax=3.5, aspect="auto",
              extent=(-0.5, max_y + 0.5, len(ns) - 0.5, -0.5))
    font = 8 if max_y < 20 else 6
    for i, n in enumerate(ns):
        for y in range(n + 1):
            ax.text(y, i, grid.loc[n, y], ha="center", va="center", fontsize=font,
                    color="white" if grid.loc[n, y] in ("E", "DU", "S") else "black")
    ax.set_yticks(range(len(ns)), [str(n) for n in ns])
    step = 1 if max_y <= 20 else 2
    ax.set_xticks(range(0, max_y + 1, step))
    ax.set_xlabel("number of DLTs at the current tier")
    ax.set_ylabel("patients treated at the current tier")
    ax.set_title(f"{literal(design.label)} decision table" + (f" (target {design.target:g})" if design.target else ""))
    words = design.decision_words()
    ax.legend(handles=[Patch(color=DECISION_COLOURS[c], label=f"{c}: {w}") for c, w in words.items()],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return ax


#: Horizontal distance by which a stop cross sits left of its cohort's column (so it never hides a dot).
STOP_DX = 0.22


def path_tree_positions(dp) -> pd.DataFrame:
    """Where :func:`plot_paths` draws each node of the paths ``dp`` (one row per node; the root is node -1).

    Columns ``node, parent, x, y, tier, stop, dlts, probability``. ``x`` is the cohort number the node's
    tier is given to (the root at 1; after the last cohort, ``n_cohorts + 1``, the "next" column); ``y`` is
    exactly that tier, 0-based: the tier the next cohort is given, or for a stop the tier selected, with
    No dose at -1 (below the lowest tier). A stop cross sits :data:`STOP_DX` left of its column.
    Histories that reach the same tier at the same cohort share one point: the tree becomes a graph of
    (cohort, tier) whose edges carry the DLT count and, with a scenario, the probability of taking them.
    """
    f = dp.frame
    index = {dp.ladder.label(t): t for t in range(-1, dp.design.n_tiers)}
    start = int(f.loc[f["cohort"] == 1, "tier_index"].iloc[0]) - 1 if len(f) else 0
    rows = [{"node": -1, "parent": -2, "x": 1.0, "y": float(start), "tier": start, "stop": False, "dlts": -1,
             "probability": 1.0}]
    prob = f["probability"] if "probability" in f else pd.Series(np.nan, index=f.index)
    for (_, row), p in zip(f.iterrows(), prob):
        stop = bool(row["stop"])
        tier = index[row["selected"]] if stop else int(row["next_tier"]) - 1
        rows.append({"node": int(row["node"]), "parent": int(row["parent"]),
                     "x": int(row["cohort"]) + 1 - (STOP_DX if stop else 0.0), "y": float(tier), "tier": tier,
                     "stop": stop, "dlts": int(row["dlts"]), "probability": float(p)})
    return pd.DataFrame(rows)


def plot_paths(dp, ax=None, max_tree_nodes: int = 150, label_min: float | None = None):
    """Escalation paths: cohorts left to right (x = cohort number), tiers bottom to top (y = tier).

    Every node stands exactly at its tier (:func:`path_tree_positions`): a dot where a cohort is given
    a tier, a cross where the trial stops, at the tier it selects (No dose below the lowest tier).
    Histories that reach the same tier at the same cohort share the dot, so the tree stays readable
    over many cohorts. Edges are coloured and labelled by the cohort's DLT count; with a scenario
    the label adds the probability of taking the edge (summed over the histories it carries) and the
    line width grows with it. Edges with the same ends but different DLT counts bow apart.

    With more than 40 drawn edges (or more than ``max_tree_nodes`` nodes and 20 drawn edges; histories
    that differ only in responses share their edges) the layout is compact: smaller labels, and
    only edges with probability at least ``label_min`` (default 2%; without a scenario, none) are
    labelled; the colour still gives the DLT count.
    """
    from matplotlib.lines import Line2D

    f = dp.frame
    k = dp.design.n_tiers
    pos = path_tree_positions(dp)
    edges = _merged_edges(pos)
    compact = len(edges) > 40 or (len(f) > max_tree_nodes and len(edges) > 20)
    scen = dp.scenario is not None
    label_min = (0.02 if compact else 0.0) if label_min is None else label_min
    low = -1 if (pos["tier"] < 0).any() else 0
    rows = k - low
    ax = _axes(ax, (min(2.8 + 2.3 * dp.n_cohorts, 18), min(1.5 + 0.85 * rows, 12)))
    dlt_colours = _dlt_colours(f)
    pmax = float(edges["probability"].max()) if scen and len(edges) else 1.0
    font = 6 if compact else 7
    labels = []
    for e in edges.itertuples(index=False):
        colour = dlt_colours[e.dlts]
        lw = 0.7 + 5.0 * e.probability / pmax if scen else 1.3
        xs, ys = _bowed(e.x0, e.y0, e.x1, e.y1, e.bow)
        ax.plot(xs, ys, color=colour, lw=lw, alpha=0.85, zorder=1, solid_capstyle="round")
        if (not compact or scen) and (not scen or e.probability >= label_min):
            text = f"{e.dlts}" + (f": {_pct_text(e.probability)}" if scen else "")
            spots = [(xs[i], ys[i], 0, 0) for i in (int(fr * (len(xs) - 1)) for fr in (0.6, 0.45, 0.75, 0.33, 0.87))]
            labels.append((text, spots, dict(fontsize=font, ha="center", va="center", color=colour, zorder=4,
                                             bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=colour, lw=0.6))))
    go = pos[~pos["stop"]]
    last = go["x"] == dp.n_cohorts + 1
    pts = go[~last].drop_duplicates(["x", "y"])
    ax.scatter(pts["x"], pts["y"], s=22, color="black", zorder=2)
    pts = go[last].drop_duplicates(["x", "y"])
    ax.scatter(pts["x"], pts["y"], s=22, color="white", edgecolor="black", lw=0.7, zorder=2)
    stops = pos[pos["stop"]].groupby(["x", "y"], as_index=False)["probability"].sum()
    ax.scatter(stops["x"], stops["y"], marker="X", s=50, color="#D55E00", edgecolor="black", lw=0.4, zorder=3)
    if scen:
        for s in stops.itertuples(index=False):
            if s.probability >= label_min:
                ax.annotate(f"stop {_pct_text(s.probability)}", (s.x, s.y), xytext=(0, -7),
                            textcoords="offset points", fontsize=font - 0.5, ha="center", va="top", color="0.25")
    handles = [Line2D([], [], color=c, lw=2, label=f"{d} DLT" + ("s" if d != 1 else ""))
               for d, c in dlt_colours.items()]
    handles.append(Line2D([], [], marker="o", color="black", ls="", label="cohort given this tier"))
    handles.append(Line2D([], [], marker="o", color="white", markeredgecolor="black", ls="",
                          label="tier after the last cohort"))
    handles.append(Line2D([], [], marker="X", color="#D55E00", ls="", markeredgecolor="black",
                          label="trial stops (at the tier it selects)"))
    if scen:
        handles.append(Line2D([], [], color="0.5", lw=4, label="line width, label: probability"))
    ax.set_yticks(range(low, k), (["No dose"] if low < 0 else []) + _tier_ticks(dp.ladder, 18))
    ax.set_ylim(low - 0.45, k - 0.55)
    ax.set_xticks(range(1, dp.n_cohorts + 2), [f"cohort {j}" for j in range(1, dp.n_cohorts + 1)] + ["next"])
    ax.set_xlim(0.7, dp.n_cohorts + 1.4)
    for t in range(low, k):
        ax.axhline(t, color="0.9", lw=0.8, zorder=0)
    if low < 0:
        ax.axhline(-0.5, color="0.6", lw=0.8, ls="--", zorder=0)
    ax.set_ylabel("tier given (cross: tier selected)")
    what = f"{len(f):,} paths" if compact else "every path"
    title = f"{literal(dp.design.label)}: {what} of the next {dp.n_cohorts} cohorts"
    if compact:
        title += " (same tier, same cohort: one dot" + (f"; labels from {_pct_text(label_min)})" if scen else ")")
    if dp.start:
        title += f" after {dp.start}"
    if scen:
        title += f"\nscenario {literal(repr(dp.scenario.name))}"
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    place_labels(ax, labels)
    return ax


def place_labels(ax, labels, obstacles=()) -> list:
    """Draw text labels where they overlap neither each other nor ``obstacles`` (display-space Bboxes).

    ``labels``: ``(text, spots, kwargs)`` per label, ``spots`` a list of candidate places
    ``(x, y, dx, dy)`` (data coordinates, then an offset in points), tried in order; a label takes
    the first free spot inside the axes, or else the spot with the fewest overlaps. The layout is
    settled (one draw) first, so the extents are those of the finished figure. Returns the texts.
    """
    fig = ax.figure
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    renderer = _settle(fig)
    frame = ax.get_window_extent(renderer)
    taken = list(obstacles)
    placed = []
    for text, spots, kw in labels:
        best = None
        for x, y, dx, dy in spots:
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", annotation_clip=False, **kw)
            t.set_in_layout(False)
            bb = t.get_window_extent(renderer)
            clash = sum(bb.overlaps(o) for o in taken) + (0 if frame.contains(bb.x0, bb.y0)
                                                          and frame.contains(bb.x1, bb.y1) else 1)
            if best is None or clash < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clash, t, bb)
            else:
                t.remove()
            if clash == 0:
                break
        if best is not None:
            taken.append(best[2])
            placed.append(best[1])
    return placed


def _settle(fig):
    """Draw ``fig`` once (an Agg canvas if it has none that renders), so the layout is final; its renderer."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _pct_text(p: float) -> str:
    """A probability for an edge label: ``34%``, ``2.5%``, ``<0.1%``."""
    if p >= 0.095:
        return f"{100 * p:.0f}%"
    return f"{100 * p:.1f}%" if p >= 0.001 else "<0.1%"


def _merged_edges(pos: pd.DataFrame) -> pd.DataFrame:
    """Edges between drawn points, one per (from point, to point, DLT count), probabilities summed; ``bow``
    spreads edges that share both ends (in units of tier height)."""
    at = pos.set_index("node")
    kids = pos[pos["node"] >= 0]
    e = pd.DataFrame({"x0": at.loc[kids["parent"], "x"].to_numpy(), "y0": at.loc[kids["parent"], "y"].to_numpy(),
                      "x1": kids["x"].to_numpy(), "y1": kids["y"].to_numpy(), "dlts": kids["dlts"].to_numpy(),
                      "probability": kids["probability"].to_numpy(), "paths": 1})
    e = e.groupby(["x0", "y0", "x1", "y1", "dlts"], as_index=False).agg(probability=("probability", "sum"),
                                                                        paths=("paths", "sum"))
    rank = e.groupby(["x0", "y0", "x1", "y1"])["dlts"].rank(method="first") - 1
    count = e.groupby(["x0", "y0", "x1", "y1"])["dlts"].transform("size")
    e["bow"] = 0.16 * (rank - (count - 1) / 2)
    level_stop = (e["y0"] == e["y1"]) & (e["x1"] % 1 != 0)   # a level stop edge would hide the edge going on
    e.loc[level_stop & (e["bow"] == 0), "bow"] = -0.08
    return e


def _bowed(x0, y0, x1, y1, bow, n: int = 24):
    """Points of the edge from (x0, y0) to (x1, y1): a straight line, or a gentle arc ``bow`` tiers off it."""
    t = np.linspace(0.0, 1.0, n)
    xs, ys = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
    if bow:
        ys = ys + 4 * bow * t * (1 - t)
    return xs, ys


def _dlt_colours(f) -> dict:
    """``{number of DLTs in a cohort: colour}`` up to the largest cohort of the paths frame."""
    size = int(f["size"].max()) if len(f) else 3
    return {d: OKABE_ITO[[0, 1, 3, 4, 2, 5, 6, 7][min(d, 7)]] for d in range(size + 1)}


# -- operating characteristics figures (committee report, notebooks, result accessors) --------------

def _named_results(results) -> dict:
    """``{design name: OperatingCharacteristics}`` from one result, a dict or a sequence of results."""
    if hasattr(results, "p_select"):
        return {results.design.label: results}
    if isinstance(results, dict):
        out = dict(results)
    else:
        out = {}
        for r in results:
            name, i = r.design.label, 2
            while name in out:
                name, i = f"{r.design.label} #{i}", i + 1
            out[name] = r
    if not out:
        raise ValueError("no results to plot")
    scen = {r.scenario.name for r in out.values()}
    if len(scen) > 1:
        raise ValueError(f"results of one scenario are plotted together, got scenarios {sorted(scen)}")
    return out


def _truth_marks(ax, r, x_of, what=("mtd", "obd"), top=1.0):
    """Shade the true MTD (and OBD) positions of result ``r`` and say so above the axes."""
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    marks = []
    if "mtd" in what and r.true_mtd is not None:
        marks.append(("true MTD", r.true_mtd, "0.88"))
    if "obd" in what and r.true_obd is not None:
        marks.append(("true OBD", r.true_obd, "#CFE6F5"))
    same = len(marks) == 2 and marks[0][1] == marks[1][1]
    for i, (text, t, colour) in enumerate(marks):
        x = x_of(t)
        if x is None:
            continue
        if same and i == 1:
            continue
        label = "true MTD = true OBD" if same else text
        ax.axvspan(x - 0.45, x + 0.45, color=colour, zorder=0, lw=0)
        ax.text(x, top, label, transform=trans, ha="center", va="bottom", fontsize=7.5, color="0.25")


def _tier_ticks(ladder, width: int | None = None) -> list[str]:
    """Tick labels of the tiers in the protocol's units, the unit on a second line (mathtext exponents).

    Text lines are wrapped at ``width`` characters (default: 12 up to 3 tiers, else 10), so neighbouring
    labels do not run into each other.
    """
    width = (12 if ladder.n_tiers <= 3 else 10) if width is None else width
    if ladder.labels is not None:
        return ["\n".join(textwrap.wrap(x.replace("$", r"\$"), width)) or x for x in ladder.labels]
    unit = "\n".join(textwrap.wrap(ladder.unit.replace("$", r"\$"), width))
    return [dose_text(d, "", "mpl") + ("\n" + unit if unit else "") for d in ladder.doses]


def plot_dose_response(scenario, ladder=None, target=None, obd=None, ax=None):
    """True dose-response curves of a truth scenario: P(DLT) and, when given, P(response) per tier.

    The target DLT rate is a dotted line; the true MTD (highest tier with P(DLT) <= target) and
    the true OBD (under ``obd``, an :class:`~doseesc.obd.OBDDefinition`) are marked. Tiers are
    labelled in the ladder's units.
    """
    from matplotlib.transforms import blended_transform_factory

    k = scenario.n_tiers
    ladder = DoseLadder.unlabelled(k) if ladder is None else ladder
    target = scenario.target if target is None else target
    ax = _axes(ax, (6.4, 3.4))
    x = np.arange(k)
    tox = np.asarray(scenario.true_tox, float)
    eff = None if scenario.true_eff is None else np.asarray(scenario.true_eff, float)
    ax.plot(x, tox, "-o", color="#D55E00", lw=2, ms=6, label="P(DLT)", zorder=3)
    for i, (xi, p) in enumerate(zip(x, tox)):
        up = eff is None or p > eff[i] or p < 0.1  # upper curve's value above its point, lower one's below
        ax.annotate(f"{p:.2f}", (xi, p), xytext=(0, 7 if up else -13), textcoords="offset points", ha="center",
                    fontsize=7.5, color="#D55E00")
    ymax = float(tox.max())
    if scenario.nominal_tox is not None:   # truth on the actual dose: show the curve at the nominal doses too
        ax.plot(x, scenario.nominal_tox, ls="", marker="o", mfc="white", mec="#D55E00", ms=6,
                label="P(DLT) at the nominal dose", zorder=3)
        ymax = max(ymax, float(np.max(scenario.nominal_tox)))
        if scenario.nominal_eff is not None:
            ax.plot(x, scenario.nominal_eff, ls="", marker="s", mfc="white", mec="#0072B2", ms=6,
                    label="P(response) at the nominal dose", zorder=3)
            ymax = max(ymax, float(np.max(scenario.nominal_eff)))
    if eff is not None:
        ax.plot(x, eff, "--s", color="#0072B2", lw=2, ms=6, label="P(response)", zorder=3)
        for i, (xi, p) in enumerate(zip(x, eff)):
            up = p >= tox[i] or p < 0.1
            ax.annotate(f"{p:.2f}", (xi, p), xytext=(0, 7 if up else -13), textcoords="offset points",
                        ha="center", fontsize=7.5, color="#0072B2")
        ymax = max(ymax, float(eff.max()))
    notes = []
    if target is not None:
        ax.axhline(target, color="black", ls=":", lw=1.2, label=f"target DLT rate {target:g}", zorder=2)
        mtd = scenario.mtd(target)
        if mtd >= 0:
            ax.axvspan(mtd - 0.4, mtd + 0.4, color="0.88", zorder=0, lw=0)
            # above the axes, where no value label reaches (value labels sit on the curves inside)
            ax.text(mtd, 1.0, "true MTD", transform=blended_transform_factory(ax.transData, ax.transAxes),
                    ha="center", va="bottom", fontsize=8, color="0.2")
        else:
            notes.append("true MTD: none (the lowest tier exceeds the target)")
    if obd is not None and scenario.true_eff is not None:
        o = obd.true_obd(scenario)
        if o >= 0:
            ax.plot([o], [scenario.true_eff[o]], marker="*", ms=16, color="#009E73", mec="black", mew=0.6,
                    ls="", label="true OBD", zorder=4)
        else:
            notes.append("true OBD: none")
    if notes:
        ax.text(0.01, 0.98, "; ".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=8,
                bbox=dict(fc="white", ec="0.7", lw=0.6))
    ax.set_xticks(x, _tier_ticks(ladder), fontsize=8.5)
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylim(0, min(1.0, ymax + 0.15) if ymax < 0.85 else 1.05)
    ax.set_ylabel("true probability")
    ax.set_xlabel("dose tier")
    ax.set_title(f"Scenario {literal(repr(scenario.name))}: true dose-response", fontsize=10, pad=14)
    ax.grid(axis="y", color="0.92", lw=0.8)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return ax


def plot_selection(results, ax=None, colors=None):
    """Grouped bars of P(select) per tier (No dose first) by design, with ±1.96 MCSE error bars.

    ``results``: one :class:`~doseesc.results.OperatingCharacteristics`, a dict design name ->
    result, or a sequence of results, all under one scenario. ``colors``: design name -> colour
    (default :func:`doseesc.report.labels.design_colours` in the given order). The true MTD (and
    OBD) are shaded.
    """
    res = _named_results(results)
    colors = design_colours(res) if colors is None else colors
    first = next(iter(res.values()))
    k = first.ladder.n_tiers
    labels = ["No dose"] + _tier_ticks(first.ladder)
    ax = _axes(ax, (7.0, 3.4))
    x = np.arange(k + 1)
    _design_bars(ax, x, res, colors, lambda r: 100 * np.asarray(r.p_select, float),
                 lambda r: None if r.is_exact else 1.96 * 100 * np.asarray(r.p_select_mcse, float))
    _truth_marks(ax, first, lambda t: t + 1)
    ax.set_xticks(x, labels, fontsize=8.5)
    ax.set_xlim(-0.55, k + 0.55)
    ax.set_ylim(0, 100)
    _finish_design_bars(ax, "P(select) (%)", f"Selection by design, scenario {literal(repr(first.scenario.name))}")
    return ax


def _design_bars(ax, x, res, colors, height, error=None) -> None:
    """One bar per design at each position ``x``, side by side; ``height(r)`` / ``error(r)`` per result."""
    width = 0.8 / len(res)
    for j, (name, r) in enumerate(res.items()):
        err = None if error is None else error(r)
        ax.bar(x - 0.4 + width * (j + 0.5), height(r), width * 0.92, color=colors[name], label=literal(name), zorder=2,
               yerr=err, error_kw=dict(lw=0.7, capsize=0, ecolor="0.3") if err is not None else None)


def _finish_design_bars(ax, ylabel: str, title: str) -> None:
    """Axis label, title, grid and the legend of designs beside the axes."""
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, pad=14)
    ax.grid(axis="y", color="0.92", lw=0.8)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def plot_allocation(results, ax=None, colors=None):
    """Grouped bars of the mean number of patients treated at each tier, by design.

    The true MTD (and OBD) are shaded; tiers above the true MTD are those whose patients count as
    'above the MTD'.
    """
    from matplotlib.ticker import MaxNLocator

    res = _named_results(results)
    colors = design_colours(res) if colors is None else colors
    first = next(iter(res.values()))
    k = first.ladder.n_tiers
    ax = _axes(ax, (7.0, 3.4))
    x = np.arange(k)
    _design_bars(ax, x, res, colors, lambda r: r._mean(r.n)[0])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # patients: whole-number ticks
    _truth_marks(ax, first, lambda t: t if t >= 0 else None)
    ax.set_xticks(x, _tier_ticks(first.ladder), fontsize=8.5)
    ax.set_xlim(-0.55, k - 0.45)
    _finish_design_bars(ax, "mean patients treated", f"Patient allocation by tier, scenario {literal(repr(first.scenario.name))}")
    return ax


def plot_sample_size(results, ax=None, colors=None):
    """Distribution of the number of patients N per trial, one row per design.

    Each circle's area is P(N = n); the line spans the 10% to 90% quantiles and the black bar marks
    the mean.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    res = _named_results(results)
    colors = design_colours(res) if colors is None else colors
    first = next(iter(res.values()))
    m = len(res)
    ax = _axes(ax, (7.0, 0.9 + 0.42 * m))
    scale = 420.0
    allv = []
    for j, (name, r) in enumerate(res.items()):
        yrow = m - 1 - j
        total = r.total_n
        values = np.unique(total)
        prob = np.array([r.weight[total == v].sum() for v in values])
        allv.extend(values.tolist())
        q10, q90 = r.quantile_n(0.1), r.quantile_n(0.9)
        ax.plot([q10, q90], [yrow, yrow], color=colors[name], lw=2.2, alpha=0.55, zorder=1,
                solid_capstyle="butt")
        ax.scatter(values, np.full(values.size, yrow), s=scale * prob, color=colors[name], alpha=0.85,
                   edgecolor="black", lw=0.4, zorder=2)
        ax.plot([r.expected_n], [yrow], marker="D", ms=6, mew=1.0, mfc="white", mec="black", ls="", zorder=3)
    ax.set_yticks(range(m), [literal(x) for x in list(res)[::-1]])
    ax.set_ylim(-0.7, m - 0.3)
    lo, hi = min(allv), max(allv)
    ax.set_xlim(lo - 1.5, hi + 1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # N is a count: whole-number ticks only
    ax.set_xlabel("number of patients per trial (N)")
    ax.set_title(f"Sample size, scenario {literal(repr(first.scenario.name))}", fontsize=10)
    ax.grid(axis="x", color="0.92", lw=0.8)
    ax.set_axisbelow(True)
    handles = [Line2D([], [], marker="o", ls="", color="0.6", mec="black", mew=0.4,
                      ms=np.sqrt(scale * p), label=f"P(N = n) = {100 * p:.0f}%") for p in (0.1, 0.5)]
    handles += [Line2D([], [], color="0.5", lw=2.2, label="10% to 90% quantile"),
                Line2D([], [], marker="D", ls="", ms=6, mew=1.0, mfc="white", mec="black", label="mean")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              labelspacing=1.2)
    return ax


def plot_scenario(results, obd=None, colors=None):
    """Composite Figure of one scenario: dose-response, selection, allocation and sample size.

    ``results`` and ``colors`` as for :func:`plot_selection`; ``obd`` marks the true OBD on the
    curves (default: the OBD definition of the first result that has one). The design legend is
    the sample-size panel's rows, in the designs' colours.
    """
    from matplotlib.figure import Figure

    res = _named_results(results)
    colors = design_colours(res) if colors is None else colors
    first = next(iter(res.values()))
    if obd is None:
        obd = next((r.obd for r in res.values() if r.obd is not None), None)
    m = len(res)
    fig = Figure(figsize=(13.0, 6.6 + 0.25 * m), layout="constrained")
    axs = fig.subplots(2, 2)
    plot_dose_response(first.scenario, first.ladder, first.target, obd, ax=axs[0, 0])
    plot_selection(res, ax=axs[0, 1], colors=colors)
    plot_allocation(res, ax=axs[1, 0], colors=colors)
    plot_sample_size(res, ax=axs[1, 1], colors=colors)
    axs[1, 0].get_legend().remove()
    return fig


def plot_actual_doses(result, ax=None):
    """Actual infused dose per tier (a run with an actual-dose model): one violin per tier on a log axis,
    the release band shaded, the nominal dose dashed, products below the band counted in the labels."""
    ax = _axes(ax, (7.5, 4.2))
    dose = result.patients["dose"]
    tier = result.patients["assigned"]
    ladder = result.ladder
    band = ladder.band()
    data, pos, notes = [], [], []
    for t in range(ladder.n_tiers):
        d = dose[(tier == t) & ~np.isnan(dose)]
        if d.size:
            data.append(d)
            pos.append(t)
            notes.append(f"{100 * np.mean(d < band[t, 0] * (1 - 1e-9)):.1f}% below band")
    for t in range(ladder.n_tiers):
        ax.fill_between([t - 0.42, t + 0.42], band[t, 0], band[t, 1], color="#56B4E9", alpha=0.25, lw=0,
                        label="release band" if t == 0 else None)
        ax.hlines(ladder.doses[t], t - 0.42, t + 0.42, colors="#000000", linestyles="--", lw=1,
                  label="nominal dose" if t == 0 else None)
    if data:
        parts = ax.violinplot([np.log10(d) for d in data], positions=pos, widths=0.75, showextrema=False)
        for body in parts["bodies"]:
            body.set_facecolor("#0072B2")
            body.set_edgecolor("#0072B2")
            body.set_alpha(0.55)
            verts = body.get_paths()[0].vertices
            verts[:, 1] = 10 ** verts[:, 1]
        for t, d, note in zip(pos, data, notes):
            ax.text(t, band[t, 1] * 1.08, note, ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(range(ladder.n_tiers), _tier_ticks(ladder))
    ax.set_xlim(-0.6, ladder.n_tiers - 0.4)
    lo = min([band[:, 0].min()] + [d.min() for d in data]) / 1.3
    ax.set_ylim(lo, band[:, 1].max() * 1.6)
    ax.set_xlabel("assigned tier")
    ax.set_ylabel(f"actual infused dose ({ladder.unit})" if ladder.unit else "actual infused dose")
    ax.set_title(f"Actual dose per tier: {literal(result.design.label)}, scenario {literal(repr(result.scenario.name))}")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


def _duration_results(results_or_study, scenario=None) -> dict:
    """``{design name: result}`` of one scenario from a Study, a dict, a sequence or one result."""
    if hasattr(results_or_study, "protocol") and hasattr(results_or_study, "results"):
        study = results_or_study
        names = [r.scenario.name for r in study.results]
        scenario = scenario if scenario is not None else names[0]
        chosen = {study.name_of(r): r for r in study.results if r.scenario.name == scenario}
        if not chosen:
            raise ValueError(f"no results for scenario {scenario!r} (scenarios: {sorted(set(names))})")
        return chosen
    return _named_results(results_or_study)


def duration_vs_correct(results_or_study, scenario=None):
    """Per design: median and mean trial duration (months) and P(correct selection), with MCSE (a DataFrame).

    P(correct) is each design's own question (``correct_means``, the design's
    :attr:`~doseesc.designs.base.Design.question`): P(select the true OBD) for
    OBD designs (those that select on response), P(select the true MTD) for
    MTD designs.
    """
    rows = []
    for name, r in _duration_results(results_or_study, scenario).items():
        if "duration_days" not in r.extra:
            raise ValueError(f"{name}: the run has no calendar (simulate with calendar=... or a [calendar] table)")
        s = r.duration_summary()
        obd = r.design.question == "OBD"
        pc, pc_se = r.metric("p_select_obd" if obd else "p_correct")
        rows.append({"design": name, "scenario": r.scenario.name,
                     "median_months": s.loc["duration_days", "q50"] / DAYS_PER_MONTH,
                     "median_months_mcse": s.loc["duration_days", "q50_mcse"] / DAYS_PER_MONTH,
                     "mean_months": s.loc["duration_days", "mean"] / DAYS_PER_MONTH,
                     "mean_months_mcse": s.loc["duration_days", "mean_mcse"] / DAYS_PER_MONTH,
                     "q10_months": s.loc["duration_days", "q10"] / DAYS_PER_MONTH,
                     "q90_months": s.loc["duration_days", "q90"] / DAYS_PER_MONTH,
                     "p_correct": pc, "p_correct_mcse": pc_se, "correct_means": "OBD" if obd else "MTD",
                     "expected_n": r.expected_n})
    return pd.DataFrame(rows).set_index("design")


def plot_duration_vs_correct(results_or_study, ax=None, scenario=None, colors=None):
    """Each design as a point: median trial duration (months) against P(selecting the correct dose).

    Thick bars: ±1.96 MCSE of the median duration and of P(correct); thin
    horizontal line: the 10-90% range of the duration. ``results_or_study``
    is a Study (one scenario: ``scenario``, default the first), or results of
    one scenario. Returns the Axes (the first panel where there are two).

    Each design is plotted on its own question (:func:`duration_vs_correct`),
    one metric per axis: where MTD and OBD designs mix, the figure has two
    panels sharing the duration axis, P(select the true MTD) for the MTD designs
    and P(select the true OBD) for the OBD designs (``ax``, if given, then is a
    pair of Axes). Each point is labelled with its design, placed clear of the
    other labels; the legend adds the mean N.
    """
    df = duration_vs_correct(results_or_study, scenario)
    questions = [q for q in ("MTD", "OBD") if (df["correct_means"] == q).any()]
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(1.0 + 4.6 * len(questions), 4.8), layout="constrained")
        axes = list(np.atleast_1d(fig.subplots(1, len(questions), sharex=True, squeeze=False)[0]))
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) != len(questions):
            raise ValueError(f"the designs answer {len(questions)} question(s) ({' and '.join(questions)}): "
                             f"give {len(questions)} Axes, got {len(axes)}")
    colors = colors or {}
    names = list(df.index)
    hi_x = float(df["q90_months"].max())
    for a, q in zip(axes, questions):
        part = df[df["correct_means"] == q]
        labels, points = [], []
        for name, row in part.iterrows():
            i = names.index(name)
            colour = colors.get(name, OKABE_ITO[i % len(OKABE_ITO)])
            x, y = row["median_months"], 100 * row["p_correct"]
            a.hlines(y, row["q10_months"], row["q90_months"], colors=colour, linewidth=1, alpha=0.5)
            a.errorbar(x, y, xerr=1.96 * row["median_months_mcse"], yerr=196 * row["p_correct_mcse"],
                       fmt=_MARKERS[i % len(_MARKERS)], color=colour, markersize=8, capsize=3,
                       markeredgewidth=1.5, label=f"{literal(name)} (mean N {row['expected_n']:.1f})")
            points.append((x, y, 196 * row["p_correct_mcse"]))
            labels.append((literal(name), [(x, y, dx, dy) for dx, dy in _LABEL_SPOTS],
                           dict(fontsize=7.5, color=colour, va="center", ha="center", zorder=5,
                                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))))
        a.set_ylabel(f"P(select the true {q}), %")
        a.set_xlabel("median trial duration, months (line: 10-90% range)")
        lo = max(0.0, 100 * (part["p_correct"] - 3 * part["p_correct_mcse"]).min() - 8)
        hi = min(100.0, 100 * (part["p_correct"] + 3 * part["p_correct_mcse"]).max() + 8)
        a.set_ylim(lo, hi)
        a.set_xlim(0, hi_x * 1.08 + 0.5)
        a.grid(alpha=0.3)
        a.set_title(f"{q} designs" if len(questions) > 1 else "", fontsize=9)
        a.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize=7.5, frameon=False, ncol=2,
                 title="bars: ±1.96 MCSE", title_fontsize=7.5)
        a._doseesc_labels = (labels, points)
    fig = axes[0].figure
    fig.suptitle(f"Trial duration against correct selection, scenario {literal(repr(df['scenario'].iloc[0]))}",
                 fontsize=10)
    for a in axes:   # after every panel is drawn, so the layout the labels see is the final one
        labels, points = a.__dict__.pop("_doseesc_labels")
        _settle(fig)
        place_labels(a, labels, _point_boxes(a, points))
    return axes[0]


_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
#: Candidate offsets (points) of a point's label: beside, above, below, then further out.
_LABEL_SPOTS = [(0, 12), (0, -12)] + [(sx * r, sy * r * 0.6) for r in (26, 40, 56, 74)
                                      for sx, sy in ((1, 0.5), (-1, 0.5), (1, -0.5), (-1, -0.5), (0, 1.4),
                                                     (0, -1.4), (1, 0), (-1, 0))]


def _point_boxes(ax, points, half: float = 6.0) -> list:
    """Display-space boxes around each point ``(x, y, yerr)``: ``half`` points around the marker, and a
    narrow box over its vertical error bar."""
    from matplotlib.transforms import Bbox

    px = half * ax.figure.dpi / 72
    out = []
    for x, y, err in points:
        u, v = ax.transData.transform((x, y))
        out.append(Bbox([[u - px, v - px], [u + px, v + px]]))
        lo, hi = ax.transData.transform([(x, y - err), (x, y + err)])[:, 1]
        out.append(Bbox([[u - px / 3, lo], [u + px / 3, hi]]))
    return out
