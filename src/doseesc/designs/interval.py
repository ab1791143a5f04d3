"""Interval designs: decisions from (n, y) at the current tier, looked up in precomputed tables.

An interval design (BOIN, Keyboard, mTPI, mTPI-2, TPI, i3+3) decides from the
number of patients ``n`` and DLTs ``y`` at the current tier alone:

* ``E`` escalate, ``S`` stay, ``D`` de-escalate;
* a tier whose data meet the design's *elimination* rule is closed together
  with every tier above it ("DU": de-escalate and eliminate). Eliminated
  tiers are derived from the counts, which is exactly equivalent to tracking
  them: a tier's counts change only when it is treated, and it is checked
  right after.

Moves, common to all (as in R BOIN's ``get.oc``): ``E`` goes up one tier if
the tier above exists and is not eliminated, otherwise stays; ``D`` goes down
one tier, or stays at the lowest tier; a trial whose lowest tier is
eliminated stops with no tier selected.

The tables are compiled once per design (cached on the frozen instance):
``grid[n, y]`` in {0: E, 1: S, 2: D} and ``elim[n, y]`` (bool), for
``0 <= y <= n <= max_n``.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import ClassVar

import numpy as np

from .._lazy import lazy
from ..state import Decision, Rule, StopReason, TrialState
from .base import Design, check_int, check_prob
from .selection import closest, isotonic

special = lazy("scipy.special")

E, S, D = 0, 1, 2
LETTERS = np.array(["E", "S", "D"])


@dataclasses.dataclass(frozen=True)
class IntervalDesign(Design):
    """Common fields and kernel of interval designs (see module docstring)."""

    steps_by_one = True
    decides_on_current_tier = True

    target: float
    n_tiers: int
    cohort_size: int = 3
    max_n: int = dataclasses.field(kw_only=True)
    cutoff_eli: float = dataclasses.field(default=0.95, kw_only=True)
    elim_min_n: int = dataclasses.field(default=3, kw_only=True)

    #: Prior Beta(a, b) of the elimination rule.
    elim_prior: ClassVar[tuple[float, float]] = (1.0, 1.0)
    #: Prior Beta(a, b) of the final isotonic estimate (R BOIN select.mtd: 0.05, 0.05).
    select_prior: ClassVar[tuple[float, float]] = (0.05, 0.05)

    def __post_init__(self):
        check_prob(self.target, "target")
        check_int(self.n_tiers, "n_tiers")
        check_int(self.cohort_size, "cohort_size")
        check_int(self.max_n, "max_n")
        check_prob(self.cutoff_eli, "cutoff_eli")
        check_int(self.elim_min_n, "elim_min_n")
        self._check_slots()
        self._validate()

    def _validate(self) -> None:
        """Design-specific checks (override)."""

    # -- tables --------------------------------------------------------
    def _codes(self, n: int, y: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        """Decision codes (E/S/D) for ``y`` DLTs among ``n`` patients, ``n >= 1``."""
        raise NotImplementedError

    def _eliminate(self, n: int, y: np.ndarray) -> np.ndarray:
        """Safety rule: n >= elim_min_n and P(p > target | Beta(a + y, b + n - y)) > cutoff_eli."""
        if n < self.elim_min_n:
            return np.zeros(y.shape, dtype=bool)
        a, b = self.elim_prior
        return special.betaincc(y + a, n - y + b, self.target) > self.cutoff_eli

    @cached_property
    def grid(self) -> np.ndarray:
        """Decision codes ``grid[n, y]`` (0 E, 1 S, 2 D), shape ``(max_n + 1, max_n + 1)``."""
        g = np.full((self.max_n + 1, self.max_n + 1), S, dtype=np.int8)
        n, y = np.tril_indices(self.max_n + 1)
        whole = self._code_table(n[n >= 1], y[n >= 1])
        if whole is not None:        # the design gives every (n, y) at once
            g[n[n >= 1], y[n >= 1]] = whole
            return g
        for n in range(1, self.max_n + 1):
            g[n, : n + 1] = self._codes(n, np.arange(n + 1))
        return g

    def _code_table(self, n: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Decision codes for the pairs (``n``, ``y``) at once, ``1 <= n <= max_n``, equal to :meth:`_codes` row by
        row; None (default): :attr:`grid` asks :meth:`_codes` for each ``n``."""
        return None

    @cached_property
    def elim(self) -> np.ndarray:
        """Elimination flags ``elim[n, y]``, shape ``(max_n + 1, max_n + 1)``."""
        e = np.zeros((self.max_n + 1, self.max_n + 1), dtype=bool)
        if type(self)._eliminate is IntervalDesign._eliminate:   # the Beta rule: every (n, y) in one call
            n, y = np.tril_indices(self.max_n + 1)
            on = (n >= max(self.elim_min_n, 1))
            n, y = n[on], y[on]
            a, b = self.elim_prior
            e[n, y] = special.betaincc(y + a, n - y + b, self.target) > self.cutoff_eli
            return e
        for n in range(1, self.max_n + 1):
            e[n, : n + 1] = self._eliminate(n, np.arange(n + 1))
        return e

    # -- kernel --------------------------------------------------------
    def eliminated(self, state: TrialState) -> np.ndarray:
        """Tiers closed by elimination (the lowest eliminating tier and all above)."""
        hit = self.elim[state.n, state.y]
        return np.logical_or.accumulate(hit, axis=1)

    def admissible(self, state: TrialState) -> np.ndarray:
        return ~self.eliminated(state)

    def _moves(self, state: TrialState, code: np.ndarray, gone: np.ndarray):
        k = self.n_tiers
        rows = np.arange(state.n_trials)
        d = state.current
        up = np.minimum(d + 1, k - 1)
        can_up = (d < k - 1) & ~gone[rows, up]
        nxt = np.where((code == E) & can_up, d + 1, d)
        # de-escalation goes to the highest open tier below (d - 1 in any reachable trial; a live log that
        # deviates can stand above an eliminated tier)
        tiers = np.arange(k)[None, :]
        below = np.where(~gone & (tiers < d[:, None]), tiers, -1).max(axis=1)
        down = np.where(below >= 0, below, d - 1)
        nxt = np.where(((code == D) | gone[rows, d]) & (d > 0), down, nxt)
        return nxt

    def decide(self, state: TrialState) -> Decision:
        rows = np.arange(state.n_trials)
        d = state.current
        nd = state.n[rows, d]
        yd = state.y[rows, d]
        code = self.grid[nd, yd]
        gone = self.eliminated(state)
        nxt = self._moves(state, code, gone)
        stop = gone[:, 0].copy()
        reason = np.where(stop, np.int8(StopReason.LOWEST_TIER_TOXIC), np.int8(0)).astype(np.int8)
        fired = np.where(gone.any(axis=1), np.int16(Rule.ELIMINATION), np.int16(0)).astype(np.int16)
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason, fired=fired,
                        down=code == D)

    # -- selection -------------------------------------------------------
    def select(self, state: TrialState) -> np.ndarray:
        """Isotonic estimate over tried, non-eliminated tiers; the tier closest to the target.

        Posterior means under ``select_prior`` (R BOIN's ``select.mtd``: Beta(0.05,
        0.05), i.e. ``(y + 0.05) / (n + 0.1)``), weighted by the inverse posterior
        variance; ``+ rank * 1e-10`` breaks ties so that a pooled block below
        the target yields its highest tier and a block above it its lowest,
        and equal distances on both sides of the target give the highest
        tied tier below the target (rule ``"below"``). Designs with the option
        ``mtd_ties = "mean"`` use :func:`closest_mean_ties` instead.
        """
        n, y = state.n.astype(float), state.y.astype(float)
        cand = (state.n > 0) & self.admissible(state)
        a, b = self.select_prior
        est = (y + a) / (n + a + b)
        var = (y + a) * (n - y + b) / ((n + a + b) ** 2 * (n + a + b + 1))
        iso = isotonic(est, 1.0 / var, cand)
        rank = np.cumsum(cand, axis=1)
        adj = iso + rank * 1e-10
        mask = cand & self._select_mask(adj)
        if self._mtd_tie_rule() == "mean":
            return closest_mean_ties(iso, self.target, mask)
        return closest(adj, self.target, mask)

    def _select_mask(self, adj: np.ndarray) -> np.ndarray:
        return np.ones(adj.shape, dtype=bool)

    def _mtd_tie_rule(self) -> str:
        """How :meth:`select` resolves tiers tied for the closest estimate: ``"below"`` (the docstring's
        ``rank * 1e-10`` rule; designs with an ``mtd_ties`` option override this)."""
        return "below"

    # -- description -----------------------------------------------------
    def decision_rows(self, max_n: int | None = None):
        """Per n: (largest y to escalate, smallest y to de-escalate, smallest y to eliminate)."""
        max_n = self.max_n if max_n is None else max_n
        out = []
        grid = self.grid if max_n <= self.max_n else dataclasses.replace(self, max_n=max_n).grid
        elim = self.elim if max_n <= self.max_n else dataclasses.replace(self, max_n=max_n).elim
        for n in range(1, max_n + 1):
            codes = grid[n, : n + 1]
            out.append((n, codes, elim[n, : n + 1]))
        return out


#: Distances to the target within this of the smallest count as tied (rule ``"mean"``).
TIE_TOL = 1e-9


def closest_mean_ties(iso: np.ndarray, target: float, mask: np.ndarray) -> np.ndarray:
    """Tier closest to ``target`` per row; ties resolved by the mean of the tied estimates.

    Tiers whose distance ``|iso - target|`` is within :data:`TIE_TOL` of the
    smallest are tied; if the mean of their estimates lies below the target
    (by more than :data:`TIE_TOL`), the highest tied tier, otherwise the lowest
    (R ``escalation``'s reading of Guo et al. 2017). -1 where no tier is masked.
    Shapes ``(n_trials, n_tiers)``.
    """
    k = iso.shape[1]
    dist = np.where(mask, np.abs(np.where(mask, iso, 0.0) - target), np.inf)
    best = dist.min(axis=1)
    tied = mask & (dist <= best[:, None] + TIE_TOL)
    count = np.maximum(tied.sum(axis=1), 1)
    mean = np.where(tied, np.where(mask, iso, 0.0), 0.0).sum(axis=1) / count
    tiers = np.arange(k)[None, :]
    highest = np.where(tied, tiers, -1).max(axis=1)
    lowest = np.where(tied, tiers, k).min(axis=1)
    out = np.where(mean < target - TIE_TOL, highest, lowest)
    return np.where(mask.any(axis=1), out, -1).astype(np.int32)
