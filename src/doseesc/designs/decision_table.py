"""A design from a clinician's own decision table: (n, y) -> escalate / stay / de-escalate / eliminate.

Protocols often carry their dose-finding rule as a table: for ``n`` patients
treated at the current tier and ``y`` DLTs among them, one letter:

* ``E`` escalate, ``S`` stay, ``D`` de-escalate;
* ``DU`` de-escalate and eliminate: the tier and every tier above it are closed
  for the rest of the trial (a trial whose lowest tier is eliminated stops with
  no tier selected).

:class:`DecisionTable` runs such a table through the interval-design kernel
(:class:`~doseesc.designs.interval.IntervalDesign`), so it runs in every engine
like BOIN does: built from BOIN's own grid it gives BOIN's results exactly.

The table is given inline (``table``) or as a CSV file (``table_file``), in
either of these forms::

    table = ["n=1: E D", "n=2: E D D", "n=3: E S D DU"]       # one string per n, letters for y = 0..n
    table = {1 = "E D", 2 = "E D D", 3 = "E S D DU"}          # n -> letters (TOML keys are strings)

    # CSV, the layout `doseesc table --grid --format csv` writes ("#" lines are comments):
    n,0,1,2,3
    1,E,D,,
    2,E,D,D,
    3,E,S,D,DU

It is checked when the design is built: every ``n`` from 1 to the last row has
a row of ``n + 1`` letters (complete), and along each row the letters never go
back in the order E < S < D < DU as ``y`` grows (coherent: never escalate or
stay with more DLTs than a count that stays or de-escalates; once DU, DU). The
error names the cell.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import register
from .boin import BOIN
from .interval import D, E, S, IntervalDesign
from .selection import closest

#: The letters in their order along a row (y growing).
ORDER = {"E": 0, "S": 1, "D": 2, "DU": 3}
_VERB = {"E": "escalate", "S": "stay", "D": "de-escalate without eliminating", "DU": "eliminate"}
_CODE = {"E": E, "S": S, "D": D, "DU": D}
SELECTIONS = ("isotonic", "closest", "last")
BEYOND = ("error", "stop")


def _letters(cells, where: str) -> tuple[str, ...]:
    if isinstance(cells, str):
        cells = re.split(r"[\s,]+", cells.strip())
    if not isinstance(cells, (list, tuple)) or not cells or any(not isinstance(c, str) for c in cells):
        raise DesignError(f"table: {where}: give the letters for y = 0..n as a string such as 'E S D DU'")
    out = tuple(c.strip().upper() for c in cells)
    for y, c in enumerate(out):
        if c not in ORDER:
            raise DesignError(f"table: {where}, y = {y} is {c!r}: use E (escalate), S (stay), D (de-escalate) "
                              "or DU (de-escalate and eliminate)")
    return out


def _row_n(key, where: str) -> int:
    text = str(key).strip()
    m = re.fullmatch(r"(?:n\s*=\s*)?(\d+)", text)
    if isinstance(key, bool) or m is None or int(m.group(1)) < 1:
        raise DesignError(f"table: {where}: {key!r} is not a number of patients n >= 1")
    return int(m.group(1))


def parse_table(table) -> dict[int, tuple[str, ...]]:
    """Rows ``{n: letters for y = 0..n}`` from the inline forms (list of ``"n=3: E S D DU"`` strings, or a
    mapping ``n -> letters``). Raises :class:`DesignError` naming the row."""
    if isinstance(table, dict):
        items = [(_row_n(k, f"key {k!r}"), v, f"n = {k}") for k, v in table.items()]
    elif isinstance(table, (list, tuple)):
        items = []
        for i, row in enumerate(table):
            if not isinstance(row, str) or ":" not in row:
                raise DesignError(f"table: row {i + 1} = {row!r} must read like 'n=3: E S D DU'")
            key, cells = row.split(":", 1)
            n = _row_n(key, f"row {i + 1} {row!r}")
            items.append((n, cells, f"n = {n}"))
    else:
        raise DesignError(f"table = {table!r} must be a list of rows such as 'n=3: E S D DU' or a mapping "
                          "n -> letters")
    rows: dict[int, tuple[str, ...]] = {}
    for n, cells, where in items:
        if n in rows:
            raise DesignError(f"table: n = {n} is given twice")
        rows[n] = _letters(cells, where)
    return dict(sorted(rows.items()))


def read_table_csv(path) -> dict[int, tuple[str, ...]]:
    """Rows from a CSV file in the layout of ``doseesc table --grid --format csv`` (header ``n,0,1,...``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DesignError(f"table_file = {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DesignError(f"table_file = {str(path)!r}: cannot be read ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    records = list(csv.reader(lines))
    if not records or not records[0] or records[0][0].strip().lower() != "n":
        raise DesignError(f"{path}: the first row must be the header n,0,1,2,... (y = DLTs)")
    rows: dict[int, tuple[str, ...]] = {}
    for i, rec in enumerate(records[1:], start=2):
        n = _row_n(rec[0], f"{path}: line {i}")
        cells = [c for c in rec[1:] if c.strip()]
        if n in rows:
            raise DesignError(f"{path}: n = {n} is given twice")
        rows[n] = _letters(cells, f"{path}: n = {n}") if cells else ()
    return dict(sorted(rows.items()))


def check_table(rows: dict[int, tuple[str, ...]]) -> int:
    """Completeness (every n from 1 to the last row, n + 1 letters each) and coherence (letters never go back
    in E < S < D < DU as y grows). Returns the last n. Raises :class:`DesignError` naming the cell."""
    if not rows:
        raise DesignError("table: no rows")
    last = max(rows)
    for n in range(1, last + 1):
        if n not in rows:
            raise DesignError(f"table: no row for n = {n} (the rows must cover every n from 1 to {last})")
        row = rows[n]
        if len(row) != n + 1:
            raise DesignError(f"table: n = {n} has {len(row)} letters but needs {n + 1} (y = 0..{n})")
        for y in range(1, n + 1):
            if ORDER[row[y]] < ORDER[row[y - 1]]:
                raise DesignError(f"table: n = {n}, y = {y} is '{row[y]}' but y = {y - 1} is '{row[y - 1]}': a "
                                  f"table must not {_VERB[row[y]]} with more DLTs")
    return last


@register
@dataclasses.dataclass(frozen=True)
class DecisionTable(IntervalDesign):
    """A clinician's decision table (module docstring), run as an interval design.

    With ``n`` patients and ``y`` DLTs at the current tier the table's letter
    decides: ``E`` goes up one tier (stays at the highest tier or below an
    eliminated one), ``S`` stays, ``D`` goes down one tier (stays at the
    lowest), ``DU`` closes the tier and those above and goes down (stops with
    no dose at the lowest). Eliminated tiers are read from every tier's counts.

    ``selection`` names the final choice: ``"isotonic"`` (default, BOIN's
    rule: weighted isotonic regression of (y + 0.05)/(n + 0.1) over tried,
    open tiers, the tier closest to ``target``, lower on ties), ``"closest"``
    (the tried, open tier whose observed y/n is closest to ``target``, lower
    on ties) or ``"last"`` (the tier of the last cohort if open, else the
    highest open tier below it).

    ``table_file`` is read once, when the design is built (a relative path
    from the working directory, or from the protocol file's folder when
    :func:`doseesc.load_protocol` resolves it); the design then holds the table
    itself, and :meth:`to_dict` writes it inline, so results never depend on
    the file afterwards.

    Beyond the table: a tier can hold up to ``max_n`` patients, so by default
    (``beyond = "error"``) the rows must reach ``n = max_n``. With
    ``beyond = "stop"`` the trial stops (reason ``N_AT_TIER``, MTD by
    ``selection``) when the next cohort would take its tier past the last row;
    the table is never extrapolated.
    """

    kind = "table"

    table: tuple | None = dataclasses.field(default=None, kw_only=True)
    table_file: str | None = dataclasses.field(default=None, kw_only=True)
    selection: str = dataclasses.field(default="isotonic", kw_only=True)
    beyond: str = dataclasses.field(default="error", kw_only=True)

    def _validate(self) -> None:
        if self.cutoff_eli != 0.95 or self.elim_min_n != 3:
            raise DesignError("cutoff_eli and elim_min_n do not apply to a decision table: its DU cells say "
                              "where a tier is eliminated")
        if (self.table is None) == (self.table_file is None):
            raise DesignError("a decision table needs exactly one of 'table' (inline rows) or 'table_file' "
                              "(a CSV file)")
        if self.table_file is not None:
            rows = read_table_csv(self.table_file)
            where = f"table_file = {str(self.table_file)!r}: "
        else:
            rows = parse_table(self.table)
            where = ""
        try:
            last = check_table(rows)
        except DesignError as exc:
            raise DesignError(where + str(exc)) from None
        object.__setattr__(self, "table", tuple(f"n={n}: " + " ".join(r) for n, r in rows.items()))
        object.__setattr__(self, "table_file", None)
        if self.selection not in SELECTIONS:
            raise DesignError(f"selection = {self.selection!r} must be one of {', '.join(SELECTIONS)}")
        if self.beyond not in BEYOND:
            raise DesignError(f"beyond = {self.beyond!r} must be one of {', '.join(BEYOND)}")
        self._check_beyond(last)

    def _check_beyond(self, last: int) -> None:
        if self.max_n <= last:
            return
        if self.beyond == "error":
            raise DesignError(f"table: the rows go up to n = {last} but max_n = {self.max_n}, so a tier could hold "
                              f"more patients than the table covers; add rows up to n = {self.max_n}, lower max_n, "
                              f"or set beyond = \"stop\" (stop when the next cohort would pass n = {last})")
        cap = last - self.cohort_size + 1
        if self.tier_cap is not None and self.tier_cap > cap:
            raise DesignError(f"tier_cap = {self.tier_cap} with beyond = \"stop\": a cohort redirected by the cap "
                              f"could pass the table's last row n = {last}; use tier_cap <= {cap}")
        if self.rescue is not None and self.rescue.n > last:
            raise DesignError(f"rescue n = {self.rescue.n} is beyond the table's last row n = {last}")

    # -- the table as the interval machinery's grid ------------------------
    @cached_property
    def rows(self) -> dict[int, tuple[str, ...]]:
        """The table, ``{n: letters for y = 0..n}``."""
        return parse_table(self.table)

    @property
    def last_n(self) -> int:
        """The table's last row."""
        return max(self.rows)

    def _codes(self, n: int, y: np.ndarray) -> np.ndarray:
        if n not in self.rows:  # beyond the table (beyond = "stop"): never decided on
            return np.full(y.shape, S, dtype=np.int8)
        row = self.rows[n]
        return np.array([_CODE[row[int(v)]] for v in y], dtype=np.int8)

    def _eliminate(self, n: int, y: np.ndarray) -> np.ndarray:
        if n not in self.rows:
            return np.zeros(y.shape, dtype=bool)
        row = self.rows[n]
        return np.array([row[int(v)] == "DU" for v in y], dtype=bool)

    # -- kernel ----------------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        dec = super().decide(state)
        if self.max_n <= self.last_n:
            return dec
        rows = np.arange(state.n_trials)
        nxt = np.clip(dec.next, 0, self.n_tiers - 1)
        over = ~dec.stop & (state.n[rows, nxt] + self.cohort_size > self.last_n)
        dec.stop = dec.stop | over
        dec.reason = np.where(over, np.int8(StopReason.N_AT_TIER), dec.reason).astype(np.int8)
        dec.next = np.where(dec.stop, -1, dec.next).astype(np.int32)
        return dec

    def select(self, state: TrialState) -> np.ndarray:
        if self.selection == "isotonic":
            return super().select(state)
        open_ = self.admissible(state)
        if self.selection == "closest":
            cand = (state.n > 0) & open_
            rate = state.y / np.maximum(state.n, 1)
            return closest(rate, self.target, cand)
        tiers = np.arange(self.n_tiers)[None, :]
        below = open_ & (tiers <= state.current[:, None])
        return np.where(below, tiers, -1).max(axis=1).astype(np.int32)

    # -- building and describing --------------------------------------------------
    @classmethod
    def from_design(cls, design: IntervalDesign, **kwargs) -> "DecisionTable":
        """The decision table of an interval design (its compiled ``grid`` and ``elim``, n = 1..max_n), with its
        target, n_tiers, cohort_size and max_n unless given in ``kwargs``."""
        if not isinstance(design, IntervalDesign):
            raise DesignError(f"{design.label} has no (n, y) decision table")
        letters = np.array(["E", "S", "D"])
        table = []
        for n in range(1, design.max_n + 1):
            row = np.where(design.elim[n, : n + 1], "DU", letters[design.grid[n, : n + 1]])
            table.append(f"n={n}: " + " ".join(row))
        args = dict(target=design.target, n_tiers=design.n_tiers, cohort_size=design.cohort_size,
                    max_n=design.max_n, table=tuple(table))
        args.update(kwargs)
        return cls(**args)

    @classmethod
    def example(cls) -> "DecisionTable":
        """BOIN's table for target 0.25, four tiers, cohorts of 3, at most 18 patients."""
        return cls.from_design(BOIN(0.25, 4, max_n=18))

    def to_dict(self) -> dict:
        out = super().to_dict()
        for key in ("cutoff_eli", "elim_min_n", "table_file"):
            out.pop(key, None)
        for key, default in (("selection", "isotonic"), ("beyond", "error")):
            if out.get(key) == default:
                out.pop(key)
        return out

    @property
    def label(self) -> str:
        return "decision table"

    def describe(self) -> str:
        pick = {"isotonic": "MTD by isotonic regression closest to the target",
                "closest": "MTD = tried tier whose DLT rate is closest to the target",
                "last": "MTD = tier of the last cohort (highest open tier below it if eliminated)"}[self.selection]
        text = (f"decision table, target {self.target:g}: cohorts of {self.cohort_size}; the protocol's (n, DLTs) "
                f"table for n = 1..{self.last_n} (E escalate, S stay, D de-escalate, DU de-escalate and eliminate "
                f"the tier and those above); {pick}")
        if self.max_n > self.last_n:
            text += f"; stop when the next cohort would take its tier past n = {self.last_n}"
        return text + "; " + self.rules_text()
