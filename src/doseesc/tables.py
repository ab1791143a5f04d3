"""Decision tables, the form clinicians put in protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .designs.base import Design
from .designs.interval import IntervalDesign
from .designs.three_plus_three import ThreePlusThree
from .errors import DesignError

CODES = {"E": "escalate", "S": "stay", "D": "de-escalate", "DU": "de-escalate and eliminate",
         "X": "stop: MTD = tier below", "-": "not applicable"}


def decision_grid(design: Design, max_n: int | None = None) -> pd.DataFrame:
    """Decision letter for every (n, y) at the current tier: E, S, D or DU.

    Rows ``n = 1..max_n`` (patients treated at the current tier), columns
    ``y = 0..max_n`` (DLTs among them); cells with ``y > n`` are empty. For
    3+3 only n = 3 and 6 apply; "D" there means stop (traditional variant) or
    de-escalate (with de-escalation).
    """
    if isinstance(design, IntervalDesign):
        max_n = design.max_n if max_n is None else max_n
        rows = {}
        for n, codes, elim in design.decision_rows(max_n):
            letters = np.where(elim, "DU", np.array(["E", "S", "D"])[codes])
            rows[n] = list(letters) + [""] * (max_n - n)
        return pd.DataFrame.from_dict(rows, orient="index", columns=list(range(max_n + 1))).rename_axis(
            index="n", columns="y")
    if isinstance(design, ThreePlusThree):
        rows = {3: ["E", "S", "D", "D", "", "", ""], 6: ["E", "E", "D", "D", "D", "D", "D"]}
        return pd.DataFrame.from_dict(rows, orient="index", columns=list(range(7))).rename_axis(
            index="n", columns="y")
    raise DesignError(f"{design.label} has no decision table (its decisions depend on more than n and y "
                      "at the current tier)")


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
