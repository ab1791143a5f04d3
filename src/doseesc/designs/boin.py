"""BOIN: Bayesian optimal interval design (Liu & Yuan 2015; Yuan, Hess, Hilsenbeck & Gilbert 2016)."""

from __future__ import annotations

from functools import cached_property

import dataclasses
import math

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import check_int, check_prob, derived_grid, register
from .interval import D, E, S, IntervalDesign

special = lazy("scipy.special")

#: ``n_earlystop`` that never binds (the decision grid shows the main rule).
_NO_EARLY_STOP = 10 ** 9


def boin_boundaries(target: float, p_saf: float | None = None, p_tox: float | None = None) -> tuple[float, float]:
    """Escalation and de-escalation boundaries (lambda_e, lambda_d) of BOIN.

    lambda_e = log((1 - p_saf) / (1 - phi)) / log(phi (1 - p_saf) / (p_saf (1 - phi)))
    lambda_d = log((1 - phi) / (1 - p_tox)) / log(p_tox (1 - phi) / (phi (1 - p_tox)))
    with defaults p_saf = 0.6 phi and p_tox = 1.4 phi (Liu & Yuan 2015).
    """
    phi = target
    p_saf = 0.6 * phi if p_saf is None else p_saf
    p_tox = 1.4 * phi if p_tox is None else p_tox
    lam_e = math.log((1 - p_saf) / (1 - phi)) / math.log(phi * (1 - p_saf) / (p_saf * (1 - phi)))
    lam_d = math.log((1 - phi) / (1 - p_tox)) / math.log(p_tox * (1 - phi) / (phi * (1 - p_tox)))
    return lam_e, lam_d


@register
@dataclasses.dataclass(frozen=True)
class BOIN(IntervalDesign):
    """Bayesian optimal interval design, behaving like R package BOIN 2.7.2 (``get.oc``, ``select.mtd``).

    With ``y`` DLTs among ``n`` patients at the current tier:

    - escalate if ``y <= floor(lambda_e * n)`` (i.e. y/n <= lambda_e);
    - de-escalate if ``y >= ceil(lambda_d * n)``, and strictly above when
      ``lambda_d * n`` is an integer (BOIN 2.7.2: y/n > lambda_d), capped at
      the elimination count;
    - otherwise stay. Escalation is blocked (stay) at the highest tier and
      below an eliminated tier; de-escalation at the lowest tier stays.
    - Elimination: with ``n >= 3``, a tier and all above it are eliminated
      when P(p > target | Beta(y + 1, n - y + 1)) > ``cutoff_eli`` (0.95);
      if the lowest tier is eliminated the trial stops with no MTD.
    - ``extrasafe``: also stop (no MTD) when the lowest tier has n >= 3 and
      that posterior exceeds ``cutoff_eli - offset``.
    - ``n_earlystop``: stop once the current tier has at least that many
      patients *and* the rule says stay there (package semantics; default
      100 as in the package, i.e. off for usual N).
    - ``titration`` (accelerated start, package 2.7.2): one patient per tier,
      escalating until the first DLT (or the highest tier), then
      ``cohort_size - 1`` more at that tier, then the rules above.
    - Final MTD (``select.mtd``): tiers tried and not eliminated (elimination
      recomputed, with extrasafe); estimates (y + 0.05)/(n + 0.1), weighted
      isotonic regression, + rank x 1e-10; the tier closest to the target
      (lower on ties). ``bound_mtd``: only tiers with estimate <= lambda_d,
      none if all exceed it.

    Where the package and the paper differ, the package is followed: the
    package de-escalates only when y/n > lambda_d (the paper's ">="), and
    evaluates ``n_earlystop`` only when the next tier is the current one.
    The maximum sample size ``max_n`` replaces ``ncohort x cohortsize``.
    """

    kind = "BOIN"

    p_saf: float | None = dataclasses.field(default=None, kw_only=True)
    p_tox: float | None = dataclasses.field(default=None, kw_only=True)
    n_earlystop: int = dataclasses.field(default=100, kw_only=True)
    extrasafe: bool = dataclasses.field(default=False, kw_only=True)
    offset: float = dataclasses.field(default=0.05, kw_only=True)
    titration: bool = dataclasses.field(default=False, kw_only=True)
    bound_mtd: bool = dataclasses.field(default=False, kw_only=True)

    def _validate(self) -> None:
        phi = self.target
        if not 0.05 <= phi <= 0.6:
            raise DesignError(f"target = {phi:g} must lie in [0.05, 0.6] for BOIN")
        p_saf = 0.6 * phi if self.p_saf is None else check_prob(self.p_saf, "p_saf")
        p_tox = 1.4 * phi if self.p_tox is None else check_prob(self.p_tox, "p_tox")
        if phi - p_saf < 0.1 * phi - 1e-12:
            raise DesignError(f"p_saf = {p_saf:g} must be at most 0.9 x target = {0.9 * phi:g}")
        if p_tox - phi < 0.1 * phi - 1e-12:
            raise DesignError(f"p_tox = {p_tox:g} must be at least 1.1 x target = {1.1 * phi:g}")
        check_int(self.n_earlystop, "n_earlystop")
        check_prob(self.offset, "offset", high=0.5)
        for key in ("extrasafe", "titration", "bound_mtd"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise DesignError(f"{key} = {getattr(self, key)!r} must be true or false")

    @property
    def label(self) -> str:
        return "BOIN"

    @property
    def boundaries(self) -> tuple[float, float]:
        return boin_boundaries(self.target, self.p_saf, self.p_tox)

    def count_boundaries(self, max_n: int | None = None) -> dict[str, np.ndarray]:
        """The package's count table for n = 1..max_n: escalate if y <= esc, de-escalate if y >= deesc,
        eliminate if y >= elim (-1 / n + 1 where no count qualifies)."""
        max_n = self.max_n if max_n is None else max_n
        lam_e, lam_d = self.boundaries
        n = np.arange(1, max_n + 1)
        esc = np.floor(lam_e * n + 1e-12).astype(int)
        raw = lam_d * n
        deesc = np.ceil(raw - 1e-12).astype(int)
        deesc = np.where(np.abs(raw - np.round(raw)) < 1e-12, np.round(raw).astype(int) + 1, deesc)
        elim = np.full(max_n, max_n + 1)
        if max_n >= 3:   # the smallest y with P(p > target | Beta(y + 1, m - y + 1)) > cutoff, per m >= 3
            hit = self._tail if max_n <= self.max_n else self._tail_up_to(max_n)
            rows = np.arange(3, max_n + 1)
            found = hit[rows].any(axis=1)
            elim[rows[found] - 1] = hit[rows[found]].argmax(axis=1)
        deesc = np.minimum(deesc, elim)
        return {"n": n, "escalate_le": esc, "deescalate_ge": deesc, "eliminate_ge": elim}

    def _tail_up_to(self, max_n: int) -> np.ndarray:
        """``hit[n, y]``: P(p > target | Beta(y + 1, n - y + 1)) > cutoff_eli, for 1 <= n <= max_n and y <= n
        (False elsewhere), in one scipy call."""
        hit = np.zeros((max_n + 1, max_n + 1), dtype=bool)
        n, y = np.tril_indices(max_n + 1)
        n, y = n[n >= 1], y[n >= 1]
        hit[n, y] = special.betaincc(y + 1, n - y + 1, self.target) > self.cutoff_eli
        return hit

    @cached_property
    def _tail(self) -> np.ndarray:
        """:meth:`_tail_up_to` ``max_n``, shared by the count table and the elimination table."""
        return self._tail_up_to(self.max_n)

    @cached_property
    def elim(self) -> np.ndarray:
        """Elimination flags ``elim[n, y]`` (the safety rule with BOIN's Beta(1, 1) prior: :attr:`_tail` from
        ``elim_min_n`` patients on)."""
        if type(self)._eliminate is not IntervalDesign._eliminate or tuple(self.elim_prior) != (1.0, 1.0):
            return IntervalDesign.elim.func(self)      # a subclass with its own rule
        e = np.zeros((self.max_n + 1, self.max_n + 1), dtype=bool)
        first = max(self.elim_min_n, 1)
        e[first:] = self._tail[first:]
        return e

    @cached_property
    def _count_table(self) -> dict[str, np.ndarray]:
        """:meth:`count_boundaries` up to ``max_n``, worked out once (row ``n - 1`` is the table's last row for
        ``n`` patients: each row depends on its own ``n`` only)."""
        return self.count_boundaries()

    def _code_table(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        tab = self._count_table
        esc, deesc = tab["escalate_le"][n - 1], tab["deescalate_ge"][n - 1]
        return np.where(y <= esc, E, np.where(y >= deesc, D, S)).astype(np.int8)

    def _codes(self, n: int, y: np.ndarray) -> np.ndarray:
        tab = self._count_table if 1 <= n <= self.max_n else self.count_boundaries(n)
        row = n - 1 if 1 <= n <= self.max_n else -1
        esc, deesc = tab["escalate_le"][row], tab["deescalate_ge"][row]
        return np.where(y <= esc, E, np.where(y >= deesc, D, S)).astype(np.int8)

    @property
    def first_size(self) -> int:
        return 1 if self.titration and self.cohort_size > 1 else self.cohort_size

    def decide(self, state: TrialState) -> Decision:
        dec = super().decide(state)
        rows = np.arange(state.n_trials)
        d = state.current
        k = self.n_tiers
        # extrasafe: lowest tier with >= 3 patients and posterior above cutoff - offset
        if self.extrasafe:
            n0, y0 = state.n[:, 0], state.y[:, 0]
            post = special.betaincc(y0 + 1, n0 - y0 + 1, self.target)
            hit = (n0 >= 3) & (post > self.cutoff_eli - self.offset) & ~dec.stop
            dec.stop = dec.stop | hit
            dec.reason = np.where(hit, np.int8(StopReason.LOWEST_TIER_TOXIC), dec.reason).astype(np.int8)
        # n.earlystop: stop when the current tier has enough patients and the next tier is the same
        early = (state.n[rows, d] >= self.n_earlystop) & (dec.next == d) & ~dec.stop
        if early.any():
            dec.stop = dec.stop | early
            dec.reason = np.where(early, np.int8(StopReason.N_AT_TIER), dec.reason).astype(np.int8)
        # accelerated titration: while every tier has at most one patient
        if self.titration and self.cohort_size > 1:
            size = np.full(state.n_trials, self.cohort_size, dtype=np.int32)
            titr = (state.n.max(axis=1) <= 1) & ~dec.stop
            no_dlt = state.y.sum(axis=1) == 0
            climb = titr & no_dlt & (d < k - 1)
            settle = titr & ~climb
            dec.next = np.where(climb, d + 1, np.where(settle, d, dec.next)).astype(np.int32)
            size = np.where(climb, 1, np.where(settle, self.cohort_size - 1, size)).astype(np.int32)
            dec.size = size
        dec.next = np.where(dec.stop, -1, dec.next).astype(np.int32)
        return dec

    @property
    def max_size(self) -> int:
        return self.cohort_size

    def decision_grid(self, max_n: int | None = None) -> dict[int, tuple[str, ...]] | None:
        """The grid of BOIN's main rule, derived from the kernel (:meth:`Design.decision_grid`) of this
        design without the accelerated titration and the ``n_earlystop`` stop; a time-to-event subclass
        (TITE-BOIN) has the grid of its rule once every patient's follow-up is complete."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(BOIN) if f.init}
        main = BOIN(**{**params, "titration": False, "n_earlystop": _NO_EARLY_STOP})
        return derived_grid(main, max_n)

    def admissible(self, state: TrialState) -> np.ndarray:
        ok = ~self.eliminated(state)
        if self.extrasafe:
            n0, y0 = state.n[:, 0], state.y[:, 0]
            post = special.betaincc(y0 + 1, n0 - y0 + 1, self.target)
            ok &= ~((n0 >= 3) & (post > self.cutoff_eli - self.offset))[:, None]
        return ok

    def _select_mask(self, adj: np.ndarray) -> np.ndarray:
        if not self.bound_mtd:
            return np.ones(adj.shape, dtype=bool)
        return ~(adj > self.boundaries[1])

    def describe(self) -> str:
        lam_e, lam_d = self.boundaries
        parts = [f"BOIN, target {self.target:g}: cohorts of {self.cohort_size}; escalate if the DLT rate at the "
                 f"current tier is <= {lam_e:.3f}, de-escalate if > {lam_d:.3f}, else stay; eliminate a tier and "
                 f"those above if P(DLT rate > {self.target:g}) > {self.cutoff_eli:g} (n >= 3); "
                 "MTD by isotonic regression closest to the target"]
        if self.n_earlystop < self.max_n:
            parts.append(f"stop when {self.n_earlystop} patients are at the tier to be repeated")
        if self.extrasafe:
            parts.append(f"extra safety stop at the lowest tier (cutoff {self.cutoff_eli - self.offset:g})")
        if self.titration:
            parts.append("accelerated titration start")
        if self.bound_mtd:
            parts.append(f"MTD estimate must be <= {lam_d:.3f}")
        return "; ".join(parts) + "; " + self.rules_text()
