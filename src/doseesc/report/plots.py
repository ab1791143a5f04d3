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


def f_path(frame, key) -> str:
    return "" if key < 0 else frame.loc[frame["node"] == key, "path"].iloc[0]


def plot_paths(dp, ax=None, max_tree_nodes: int = 150):
    """Escalation paths: cohorts left to right, tiers bottom to top.

    Up to ``max_tree_nodes`` nodes the whole tree is drawn: each node is a
    dot at its cohort and the tier that cohort was given (nodes sharing a
    tier are spread within its band), edges are coloured by the cohort's
    DLT count, and a cross marks where the trial stops (with the selected
    tier). Larger trees are summarised as a flow between (cohort, tier)
    boxes whose line width is the number of paths (or the probability, with
    a scenario).
    """
    f = dp.frame
    k = dp.design.n_tiers
    start_tier = int(f[f["cohort"] == 1]["tier_index"].iloc[0]) - 1 if len(f) else 0
    tree = len(f) <= max_tree_nodes
    if tree:
        items, centre, height = _tree_layout(f, k, start_tier)
    else:
        centre = {t: float(t) for t in range(k)}
        height = {t: 1.0 for t in range(k)}
    total_h = sum(height.values())
    ax = _axes(ax, (2.8 + 2.6 * dp.n_cohorts, min(1.4 + 1.0 * total_h, 16)))
    if tree:
        handles, title, xticks, xs = _draw_path_tree(ax, dp, items, centre, height)
    else:
        handles, title, xticks, xs = _draw_path_flow(ax, dp, start_tier)
    _finish_paths_axes(ax, dp, centre, height, xs, xticks)
    if dp.start:
        title += f" after {dp.start}"
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return ax


def _tree_layout(f, k: int, start_tier: int) -> tuple[dict, dict, dict]:
    """``(items, centre, height)`` of the path tree: the node keys at each (x, tier band), sorted by path,
    and each tier band's centre and height (a band grows with the most nodes it holds at one cohort)."""
    box_at = {-1: (1, start_tier)}
    for _, row in f.iterrows():
        band = int(row["next_tier"]) - 1 if not row["stop"] else int(row["tier_index"]) - 1
        box_at[int(row["node"])] = (int(row["cohort"]) + 1, band)
    items = {}  # (x, band) -> keys, spread within the band
    for key, (x, band) in sorted(box_at.items(), key=lambda kv: (kv[1][0], f_path(f, kv[0]))):
        items.setdefault((x, band), []).append(key)
    height = {}
    for t in range(k):
        crowd = max([len(v) for (x, b), v in items.items() if b == t] + [1])
        height[t] = max(1.0, 0.22 * crowd)
    centre = {}
    acc = 0.0
    for t in range(k):
        centre[t] = acc + height[t] / 2
        acc += height[t]
    return items, centre, height


def _dlt_colours(f) -> dict:
    """``{number of DLTs in a cohort: colour}`` up to the largest cohort of the paths frame."""
    size = int(f["size"].max()) if len(f) else 3
    return {d: OKABE_ITO[[0, 1, 3, 4, 2, 5, 6, 7][min(d, 7)]] for d in range(size + 1)}


def _draw_path_tree(ax, dp, items: dict, centre: dict, height: dict):
    """Draw every path; ``(legend handles, title, x tick labels, x positions)``.

    A dot at (cohort j, tier given to cohort j), one per distinct history; the edges leaving it are
    that cohort's outcomes (coloured and labelled by DLT count), ending at the next cohort's dot,
    at a stop cross, or, after the last cohort, at the tier the design would give next.
    """
    from matplotlib.lines import Line2D

    f = dp.frame
    dlt_colours = _dlt_colours(f)
    pos = {}
    for (x, band), keys in items.items():
        m = len(keys)
        half = 0.36 * height[band]
        offs = np.linspace(-half, half, m) if m > 1 else np.array([0.0])
        for o, key in zip(offs, keys):
            pos[key] = (float(x), centre[band] + o)
    label_edges = len(f) <= 60
    for _, row in f.iterrows():
        _draw_tree_edge(ax, row, pos, dlt_colours[int(row["dlts"])], label_edges, dp.n_cohorts)
    ax.scatter([pos[-1][0]], [pos[-1][1]], s=40, color="black", zorder=2)
    handles = [Line2D([], [], color=c, lw=2, label=f"{d} DLT" + ("s" if d != 1 else ""))
               for d, c in dlt_colours.items()]
    handles.append(Line2D([], [], marker="o", color="black", ls="", label="cohort treated at this tier"))
    handles.append(Line2D([], [], marker="o", color="white", markeredgecolor="black", ls="",
                          label="next tier after the last cohort"))
    handles.append(Line2D([], [], marker="X", color="#D55E00", ls="", markeredgecolor="black",
                          label="trial stops"))
    title = f"{literal(dp.design.label)}: every path of the next {dp.n_cohorts} cohorts"
    xticks = [f"cohort {j}" for j in range(1, dp.n_cohorts + 1)] + ["next"]
    return handles, title, xticks, range(1, dp.n_cohorts + 2)


def _draw_tree_edge(ax, row, pos: dict, colour, label_edges: bool, n_cohorts: int) -> None:
    """One cohort's outcome: the edge from its parent (labelled with the DLT count) and the node it ends at."""
    x0, y0 = pos[int(row["parent"])]
    x1, y1 = pos[int(row["node"])]
    d = int(row["dlts"])
    ax.plot([x0, x1], [y0, y1], color=colour, lw=1.3, alpha=0.9, zorder=1)
    if label_edges:
        ax.text(x0 + 0.72 * (x1 - x0), y0 + 0.72 * (y1 - y0), str(d), fontsize=6.5, ha="center",
                va="center", color=colour,
                bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec=colour, lw=0.6), zorder=4)
    if row["stop"]:
        ax.scatter([x1], [y1], marker="X", s=46, color="#D55E00", edgecolor="black", lw=0.4, zorder=3)
        ax.annotate(f"stop: {row['selected']}", (x1, y1), xytext=(5, 0), textcoords="offset points",
                    fontsize=6.5, va="center")
    else:
        last = int(row["cohort"]) == n_cohorts
        ax.scatter([x1], [y1], s=16, color="white" if last else "black", edgecolor="black", lw=0.6,
                   zorder=2)


def _draw_path_flow(ax, dp, start_tier: int):
    """Draw the flow between (cohort, tier) boxes, line width the number of paths or their probability;
    ``(legend handles, title, x tick labels, x positions)``."""
    from matplotlib.lines import Line2D

    f = dp.frame
    weight = f["probability"] if "probability" in f else f.groupby("parent")["node"].transform("size") * 0 + 1
    flows = f.assign(w=weight).merge(
        f[["node", "tier_index"]].rename(columns={"node": "parent", "tier_index": "from_tier"}),
        on="parent", how="left")
    flows["from_tier"] = flows["from_tier"].fillna(start_tier + 1)
    agg = flows.groupby(["cohort", "from_tier", "tier_index"])["w"].sum().reset_index()
    wmax = agg["w"].max()
    for _, row in agg.iterrows():
        ax.plot([row["cohort"] - 1, row["cohort"]], [row["from_tier"] - 1, row["tier_index"] - 1],
                color=OKABE_ITO[0], lw=0.5 + 7 * row["w"] / wmax, alpha=0.6, solid_capstyle="round")
    stops = flows[flows["stop"]].groupby(["cohort", "tier_index"])["w"].sum().reset_index()
    ax.scatter(stops["cohort"], stops["tier_index"] - 1, marker="X", s=30 + 200 * stops["w"] / wmax,
               color="#D55E00", edgecolor="black", lw=0.4, zorder=3)
    what = "probability" if "probability" in f else "number of paths"
    handles = [Line2D([], [], color=OKABE_ITO[0], lw=4, label=f"line width: {what}"),
               Line2D([], [], marker="X", color="#D55E00", ls="", markeredgecolor="black",
                      label="trial stops after this cohort")]
    title = f"{literal(dp.design.label)}: {len(f):,} paths of the next {dp.n_cohorts} cohorts (summary)"
    xticks = ["start" if not dp.start else "now"] + [f"cohort {j}" for j in range(1, dp.n_cohorts + 1)]
    return handles, title, xticks, range(0, dp.n_cohorts + 1)


def _finish_paths_axes(ax, dp, centre: dict, height: dict, xs, xticks) -> None:
    """Tier labels at the band centres, limits, x ticks, the lines between tier bands and the y label."""
    k = dp.design.n_tiers
    ax.set_yticks([centre[t] for t in range(k)], list(dp.ladder.tier_labels))
    lows = [centre[t] - height[t] / 2 for t in range(k)]
    ax.set_ylim(lows[0] - 0.1, centre[k - 1] + height[k - 1] / 2 + 0.1)
    ax.set_xticks(list(xs), xticks)
    ax.set_xlim(min(xs) - 0.3, max(xs) + 0.9)
    for t in range(1, k):
        ax.axhline(lows[t], color="0.85", lw=0.8, zorder=0)
    ax.set_ylabel("tier given")


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

    Text lines are wrapped at ``width`` characters (default: 16 up to 3 tiers, else 10).
    """
    width = (16 if ladder.n_tiers <= 3 else 10) if width is None else width
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
            ax.annotate("true MTD", (mtd, 0), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8, color="0.2")
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
    ax.set_title(f"Scenario {literal(repr(scenario.name))}: true dose-response", fontsize=10)
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
    res = _named_results(results)
    colors = design_colours(res) if colors is None else colors
    first = next(iter(res.values()))
    k = first.ladder.n_tiers
    ax = _axes(ax, (7.0, 3.4))
    x = np.arange(k)
    _design_bars(ax, x, res, colors, lambda r: r._mean(r.n)[0])
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
    one scenario. Returns the Axes.

    Each design is plotted on its own question (:func:`duration_vs_correct`):
    where MTD and OBD designs mix, MTD designs are filled symbols, OBD designs
    open ones, each label says which, and the y axis says so.
    """
    df = duration_vs_correct(results_or_study, scenario)
    ax = _axes(ax, (9.5, 5.2))
    markers = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
    kinds = set(df["correct_means"])
    mixed = len(kinds) > 1
    for i, (name, row) in enumerate(df.iterrows()):
        colour = (colors or {}).get(name, OKABE_ITO[i % len(OKABE_ITO)])
        marker = markers[i % len(markers)]
        q = row["correct_means"]
        face = "white" if mixed and q == "OBD" else colour
        tag = f", P(true {q})" if mixed else ""
        ax.hlines(100 * row["p_correct"], row["q10_months"], row["q90_months"], colors=colour, linewidth=1,
                  alpha=0.5)
        ax.errorbar(row["median_months"], 100 * row["p_correct"], xerr=1.96 * row["median_months_mcse"],
                    yerr=196 * row["p_correct_mcse"], fmt=marker, color=colour, markersize=8, capsize=3,
                    markerfacecolor=face, markeredgewidth=1.5,
                    label=f"{literal(name)} (mean N {row['expected_n']:.1f}{tag})")
        ax.annotate(literal(name) + (f" ({q})" if mixed else ""), (row["median_months"], 100 * row["p_correct"]),
                    textcoords="offset points", xytext=(6, 5), fontsize=7, color=colour)
    ax.set_xlabel("median trial duration, months (line: 10-90% range)")
    if mixed:
        ax.set_ylabel("P(correct), %: P(select the true MTD) for MTD designs (filled),\n"
                      "P(select the true OBD) for OBD designs (open)", fontsize=8.5)
    else:
        ax.set_ylabel(f"P(select the true {kinds.pop()}), %")
    ax.set_title(f"Trial duration against correct selection, scenario {literal(repr(df['scenario'].iloc[0]))}")
    lo = max(0.0, 100 * (df["p_correct"] - 3 * df["p_correct_mcse"]).min() - 5)
    hi = min(100.0, 100 * (df["p_correct"] + 3 * df["p_correct_mcse"]).max() + 5)
    ax.set_ylim(lo, hi)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="design (bars: ±1.96 MCSE)", title_fontsize=8)
    return ax
