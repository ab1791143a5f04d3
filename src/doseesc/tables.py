"""Decision tables, the form clinicians put in protocols.

Each design gives its own grid (:meth:`~doseesc.designs.base.Design.decision_grid`, derived from its
kernel by default); this module only lays it out.
"""

from __future__ import annotations

import numpy as np

from ._lazy import lazy
from .designs.base import Design
from .errors import DesignError

pd = lazy("pandas")

CODES = {"E": "escalate", "S": "stay", "D": "de-escalate", "DU": "de-escalate and eliminate",
         "X": "stop: MTD = tier below", "W": "suspend accrual", "-": "not applicable"}


def decision_grid(design: Design, max_n: int | None = None) -> pd.DataFrame:
    """Decision letter for every (n, y) at the current tier: E, S, D or DU.

    Rows ``n`` (patients treated at the current tier: 1..max_n, or the counts
    at which the design decides, 3 and 6 for 3+3), columns ``y = 0..`` the
    largest n (DLTs among them); cells with ``y > n`` are empty. What a letter
    means for the design: ``design.decision_words()`` (3+3 without
    de-escalation: D means stop, MTD = tier below). Raises
    :class:`~doseesc.errors.DesignError` for a design whose decisions depend
    on more than n and y at the current tier.
    """
    grid = design.decision_grid(max_n)
    if grid is None:
        raise DesignError(f"{design.label} has no decision table (its decisions depend on more than n and y "
                          "at the current tier)")
    width = max(grid) + 1
    rows = {n: list(letters) + [""] * (width - len(letters)) for n, letters in grid.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(range(width))).rename_axis(
        index="n", columns="y")


def pending_table(design: Design) -> pd.DataFrame:
    """Decision letter for every (n enrolled, m pending, y DLTs) at the current tier, for designs that decide
    with patients still in follow-up from those counts alone (rolling six): rows ``(n, pending)``, columns
    ``y``; E escalate, S stay, D de-escalate, W suspend accrual. Raises
    :class:`~doseesc.errors.DesignError` for other designs."""
    grid = design.pending_grid()
    if grid is None:
        raise DesignError(f"{design.label} has no table of decisions with pending patients")
    width = max(n for n, _ in grid) + 1
    rows = {key: list(letters) + [""] * (width - len(letters)) for key, letters in grid.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(range(width)))
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["n", "pending"])
    return frame.rename_axis(columns="y")


def decision_table(design: Design, max_n: int | None = None) -> pd.DataFrame:
    """The protocol table: for each n at the current tier, the DLT counts that mean each decision.

    Columns: ``escalate_if_le`` (escalate if DLTs <= this), ``stay``
    (DLT counts that mean stay, as text), ``deescalate_if_ge`` (de-escalate
    if DLTs >= this), ``eliminate_if_ge`` (de-escalate and eliminate the tier
    and those above if DLTs >= this). Empty where no count means that.
    """
    grid = decision_grid(design, max_n)
    out = []
    for n, row in grid.iterrows():
        letters = [row[y] for y in range(n + 1)]
        ys = np.arange(n + 1)
        esc = ys[[c == "E" for c in letters]]
        stay = ys[[c == "S" for c in letters]]
        down = ys[[c in ("D", "DU") for c in letters]]
        elim = ys[[c == "DU" for c in letters]]
        out.append({
            "n": n,
            "escalate_if_le": int(esc.max()) if esc.size else None,
            "stay": _ranges(stay),
            "deescalate_if_ge": int(down.min()) if down.size else None,
            "eliminate_if_ge": int(elim.min()) if elim.size else None,
        })
    df = pd.DataFrame(out).set_index("n")
    return df.astype({c: "Int64" for c in ("escalate_if_le", "deescalate_if_ge", "eliminate_if_ge")})


def _ranges(values) -> str:
    values = list(int(v) for v in values)
    if not values:
        return ""
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)
