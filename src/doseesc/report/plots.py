"""Plots: each takes ``ax=None`` and returns the Axes; matplotlib is imported lazily; no ``plt.show()``."""

from __future__ import annotations

import numpy as np

#: Okabe-Ito colour-blind-safe palette.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DECISION_COLOURS = {"E": "#0072B2", "S": "#009E73", "D": "#E69F00", "DU": "#882255"}
DECISION_TEXT = {"E": "escalate", "S": "stay", "D": "de-escalate", "DU": "de-escalate and eliminate"}


def _axes(ax, figsize):
    if ax is not None:
        return ax
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "module://matplotlib_inline.backend_inline"):
        try:
            import matplotlib.pyplot as plt  # noqa: F401
        except Exception:  # pragma: no cover
            matplotlib.use("Agg")
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
