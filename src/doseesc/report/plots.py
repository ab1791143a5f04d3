"""Plots: each takes ``ax=None`` and returns the Axes; matplotlib is imported lazily; no ``plt.show()``."""

from __future__ import annotations

import numpy as np

#: Okabe-Ito colour-blind-safe palette.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DECISION_COLOURS = {"E": "#0072B2", "S": "#009E73", "D": "#E69F00", "DU": "#882255"}
DECISION_TEXT = {"E": "escalate", "S": "stay", "D": "de-escalate", "DU": "de-escalate and eliminate"}


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
    stay, D de-escalate, DU de-escalate and eliminate (3+3: D = stop or
    de-escalate).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..tables import decision_grid

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
    ax.set_title(f"{design.label} decision table" +
                 (f" (target {design.target:g})" if getattr(design, "target", None) else ""))
    text = dict(DECISION_TEXT)
    if design.kind == "3+3":
        text["D"] = "de-escalate" if design.deescalation else "stop: MTD = tier below"
        order = ["E", "S", "D"]
    ax.legend(handles=[Patch(color=DECISION_COLOURS[c], label=f"{c}: {text[c]}") for c in order],
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
    from matplotlib.lines import Line2D

    f = dp.frame
    k = dp.design.n_tiers
    labels = list(dp.ladder.tier_labels)
    size = int(f["size"].max()) if len(f) else 3
    dlt_colours = {d: OKABE_ITO[[0, 1, 3, 4, 2, 5, 6, 7][min(d, 7)]] for d in range(size + 1)}
    start_tier = int(f[f["cohort"] == 1]["tier_index"].iloc[0]) - 1 if len(f) else 0
    tree = len(f) <= max_tree_nodes
    centre = {t: float(t) for t in range(k)}
    height = {t: 1.0 for t in range(k)}
    if tree:
        box_at = {-1: (1, start_tier)}
        for _, row in f.iterrows():
            band = int(row["next_tier"]) - 1 if not row["stop"] else int(row["tier_index"]) - 1
            box_at[int(row["node"])] = (int(row["cohort"]) + 1, band)
        items = {}  # (x, band) -> keys, spread within the band
        for key, (x, band) in sorted(box_at.items(), key=lambda kv: (kv[1][0], f_path(f, kv[0]))):
            items.setdefault((x, band), []).append(key)
        for t in range(k):
            crowd = max([len(v) for (x, b), v in items.items() if b == t] + [1])
            height[t] = max(1.0, 0.22 * crowd)
        acc = 0.0
        for t in range(k):
            centre[t] = acc + height[t] / 2
            acc += height[t]
    total_h = sum(height.values())
    ax = _axes(ax, (2.8 + 2.6 * dp.n_cohorts, min(1.4 + 1.0 * total_h, 16)))
    if tree:
        # A dot at (cohort j, tier given to cohort j), one per distinct history; the edges leaving it are
        # that cohort's outcomes (coloured and labelled by DLT count), ending at the next cohort's dot,
        # at a stop cross, or, after the last cohort, at the tier the design would give next.
        pos = {}
        for (x, band), keys in items.items():
            m = len(keys)
            half = 0.36 * height[band]
            offs = np.linspace(-half, half, m) if m > 1 else np.array([0.0])
            for o, key in zip(offs, keys):
                pos[key] = (float(x), centre[band] + o)
        label_edges = len(f) <= 60
        for _, row in f.iterrows():
            x0, y0 = pos[int(row["parent"])]
            x1, y1 = pos[int(row["node"])]
            d = int(row["dlts"])
            ax.plot([x0, x1], [y0, y1], color=dlt_colours[d], lw=1.3, alpha=0.9, zorder=1)
            if label_edges:
                ax.text(x0 + 0.72 * (x1 - x0), y0 + 0.72 * (y1 - y0), str(d), fontsize=6.5, ha="center",
                        va="center", color=dlt_colours[d],
                        bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec=dlt_colours[d], lw=0.6), zorder=4)
            if row["stop"]:
                ax.scatter([x1], [y1], marker="X", s=46, color="#D55E00", edgecolor="black", lw=0.4, zorder=3)
                ax.annotate(f"stop: {row['selected']}", (x1, y1), xytext=(5, 0), textcoords="offset points",
                            fontsize=6.5, va="center")
            else:
                last = int(row["cohort"]) == dp.n_cohorts
                ax.scatter([x1], [y1], s=16, color="white" if last else "black", edgecolor="black", lw=0.6,
                           zorder=2)
        ax.scatter([pos[-1][0]], [pos[-1][1]], s=40, color="black", zorder=2)
        handles = [Line2D([], [], color=dlt_colours[d], lw=2, label=f"{d} DLT" + ("s" if d != 1 else ""))
                   for d in range(size + 1)]
        handles.append(Line2D([], [], marker="o", color="black", ls="", label="cohort treated at this tier"))
        handles.append(Line2D([], [], marker="o", color="white", markeredgecolor="black", ls="",
                              label="next tier after the last cohort"))
        handles.append(Line2D([], [], marker="X", color="#D55E00", ls="", markeredgecolor="black",
                              label="trial stops"))
        title = f"{dp.design.label}: every path of the next {dp.n_cohorts} cohorts"
        xticks = [f"cohort {j}" for j in range(1, dp.n_cohorts + 1)] + ["next"]
        xs = range(1, dp.n_cohorts + 2)
    else:
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
        title = f"{dp.design.label}: {len(f):,} paths of the next {dp.n_cohorts} cohorts (summary)"
        xticks = ["start" if not dp.start else "now"] + [f"cohort {j}" for j in range(1, dp.n_cohorts + 1)]
        xs = range(0, dp.n_cohorts + 1)
    ax.set_yticks([centre[t] for t in range(k)], labels)
    lows = [centre[t] - height[t] / 2 for t in range(k)]
    ax.set_ylim(lows[0] - 0.1, centre[k - 1] + height[k - 1] / 2 + 0.1)
    ax.set_xticks(list(xs), xticks)
    ax.set_xlim(min(xs) - 0.3, max(xs) + 0.9)
    for t in range(1, k):
        ax.axhline(lows[t], color="0.85", lw=0.8, zorder=0)
    ax.set_ylabel("tier given")
    if dp.start:
        title += f" after {dp.start}"
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return ax
