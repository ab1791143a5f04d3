"""The 3+3 design, with and without de-escalation, as a vectorised kernel."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, register


@register
@dataclasses.dataclass(frozen=True)
class ThreePlusThree(Design):
    """The traditional 3+3 design.

    Cohorts of 3 patients start at the lowest tier. With ``y`` DLTs among the
    ``n`` patients of the current tier:

    *Without de-escalation* (``deescalation=False``; the traditional algorithm
    of Storer 1989, studied in closed form by Lin & Shih 2001, Biostatistics
    2:203, as the A+B design with A = B = 3, C = D = E = 1):

    - 0/3: escalate to the next tier;
    - 1/3: treat 3 more patients at the same tier;
    - >= 2/3 or >= 2/6: stop; the MTD is the tier below (no MTD at the
      lowest tier);
    - <= 1/6: escalate;
    - at the highest tier, 0/3 or <= 1/6 stops the trial with the highest
      tier as MTD. Tiers are never skipped and never revisited.

    *With de-escalation* (``deescalation=True``; Korn et al. 1994, Stat Med
    13:1799; Lin & Shih 2001, section 2.2):

    - 0/3, 1/3, <= 1/6 as above, except that a tier passed with 0/3 or
      <= 1/6 whose upper neighbour has already proved too toxic stops the
      trial with that tier as MTD;
    - >= 2 DLTs: instead of stopping, treat 3 more patients at the tier
      below if it has fewer than 6; if it already has 6, stop; at the
      lowest tier, stop with no MTD;
    - the MTD is the highest tier with >= 6 patients and <= 1 DLT, or the
      highest tier when it passes (with 0/3 it is not expanded to 6: this is
      what Lin & Shih's closed form, R ``escalation``'s ``allow_deescalate``,
      ``bcrm::threep3`` and Wheeler's AplusB all do).

    ``max_n`` defaults to 6 per tier, which no trial can exceed (a larger cap
    is allowed and never binds). A smaller
    ``max_n`` stops trials early (reason ``MAX_N``); the MTD then follows the
    same selection rule on the data so far (without de-escalation: the
    highest tier passed with 0/3 or <= 1/6).
    """

    kind = "3+3"
    steps_by_one = True
    fixed_cohorts = True

    n_tiers: int
    deescalation: bool = False
    max_n: int | None = None

    def __post_init__(self):
        check_int(self.n_tiers, "n_tiers")
        self._check_slots()
        if not isinstance(self.deescalation, (bool, np.bool_)):
            raise DesignError(f"deescalation = {self.deescalation!r} must be true or false")
        if self.max_n is None:
            object.__setattr__(self, "max_n", 6 * self.n_tiers)
        else:
            check_int(self.max_n, "max_n", minimum=3)

    @property
    def cohort_size(self) -> int:
        return 3

    @property
    def label(self) -> str:
        return "3+3 (with de-escalation)" if self.deescalation else "3+3"

    def describe(self) -> str:
        return self._describe() + "; " + self.rules_text()

    def _describe(self) -> str:
        base = ("3+3: cohorts of 3; 0/3 escalate, 1/3 add 3 at the same tier, <=1/6 escalate, "
                ">=2 DLTs stop")
        if self.deescalation:
            return base + (" or de-escalate to a tier with fewer than 6 patients; "
                           "MTD = highest tier with >=6 patients and <=1 DLT")
        return base + "; MTD = tier below the stopping tier; no de-escalation"

    # ------------------------------------------------------------------
    @staticmethod
    def _passed(n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Tiers whose data allow escalation: 0/3 or <= 1/6."""
        return ((n == 3) & (y == 0)) | ((n == 6) & (y <= 1))

    def decide(self, state: TrialState) -> Decision:
        k = self.n_tiers
        d = state.current
        rows = np.arange(state.n_trials)
        nd = state.n[rows, d]
        yd = state.y[rows, d]
        top = d == k - 1
        passed = self._passed(nd, yd)
        expand = (nd == 3) & (yd == 1)
        incomplete = nd % 3 != 0  # a cohort cut short by max_n: no rule applies
        toxic = ~passed & ~expand & ~incomplete
        up = np.minimum(d + 1, k - 1)
        down = np.maximum(d - 1, 0)

        stop = np.zeros(state.n_trials, dtype=bool)
        reason = np.zeros(state.n_trials, dtype=np.int8)
        nxt = d.copy()
        if not self.deescalation:
            esc = passed & ~top
            nxt = np.where(esc, d + 1, nxt)
            top_done = passed & top
            stop |= top_done | toxic
            reason[top_done] = StopReason.TOP_TIER_TOLERATED
            reason[toxic] = StopReason.MTD_IDENTIFIED
            reason[toxic & (d == 0)] = StopReason.LOWEST_TIER_TOXIC
        else:
            above_tried = np.where(top, False, state.n[rows, up] > 0)
            top_done = passed & top
            done = passed & ~top & above_tried
            esc = passed & ~top & ~above_tried
            nxt = np.where(esc, d + 1, nxt)
            stop |= top_done | done
            reason[top_done] = StopReason.TOP_TIER_TOLERATED
            reason[done] = StopReason.MTD_IDENTIFIED
            # too toxic: de-escalate if the tier below has fewer than 6 patients
            below_full = state.n[rows, down] >= 6
            lowest = toxic & (d == 0)
            halt = toxic & (d > 0) & below_full
            desc = toxic & (d > 0) & ~below_full
            nxt = np.where(desc, d - 1, nxt)
            stop |= lowest | halt
            reason[lowest] = StopReason.LOWEST_TIER_TOXIC
            reason[halt] = StopReason.MTD_IDENTIFIED
        nxt = np.where(stop, -1, nxt)
        return Decision(next=nxt.astype(np.int32), stop=stop, reason=reason)

    def select(self, state: TrialState) -> np.ndarray:
        if self.deescalation:
            ok = (state.n >= 6) & (state.y <= 1)
            ok[:, -1] |= self._passed(state.n[:, -1], state.y[:, -1])
        else:
            ok = self._passed(state.n, state.y)
        k = self.n_tiers
        # highest tier satisfying ok, -1 if none
        idx = np.where(ok, np.arange(k)[None, :], -1)
        return idx.max(axis=1).astype(np.int32)

    def check_state(self, state: TrialState) -> None:
        bad = np.flatnonzero((state.n[0] % 3 != 0) | (state.n[0] > 6))
        if bad.size:
            t = int(bad[0])
            raise DesignError(
                f"tier {t + 1} has {int(state.n[0, t])} patients: 3+3 treats 3 or 6 patients per tier")
