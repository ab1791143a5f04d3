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

    *Logs that do not start at the lowest tier, or that deviate* (a protocol
    starting above tier 1, a cohort treated elsewhere than recommended): the
    rules read the counts only, never the order of the cohorts nor the tier
    of the last one, so ``recommend`` and the engines cannot disagree. With
    L = the lowest tier with >= 2 DLTs and h = the highest tried tier below
    it, the design acts at h as above: 1/3 adds 3 at h; a passed h escalates
    to h + 1 unless h + 1 = L, where it stops with h as MTD (without
    de-escalation, as on "1NNN 2NTT") or, with de-escalation, treats 3 more
    at h if h has only 3 patients (Korn: the MTD has 6). With no tried tier
    below L the next cohort goes to L - 1 (untried: not a return); L = the
    lowest tier stops with no dose. A tier with >= 2 DLTs is never treated
    again, and the MTD is always a tier below L. Logs that start at the
    lowest tier and follow the design get exactly the answers above
    (docs/notes/three-plus-three.md, section 4).

    ``max_n`` defaults to 6 per tier, which no trial can exceed (a larger cap
    is allowed and never binds). A smaller
    ``max_n`` stops trials early (reason ``MAX_N``); the MTD then follows the
    same selection rule on the data so far (without de-escalation: the
    highest tier passed with 0/3 or <= 1/6).
    """

    kind = "3+3"
    steps_by_one = True
    fixed_cohorts = True
    decides_on_current_tier = True

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

    def grid_sizes(self, max_n: int) -> list[int]:
        """3+3 decides after 3 and after 6 patients at a tier (whatever ``max_n``)."""
        return [3, 6]

    def decision_words(self) -> dict[str, str]:
        """The published grid's letters: D is the stop (MTD = tier below) without de-escalation."""
        return {"E": "escalate", "S": "stay", "D": "de-escalate" if self.deescalation else "stop: MTD = tier below"}

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

    @staticmethod
    def _frontier(state: TrialState):
        """What the rules read from the counts, shape ``(n_trials,)`` each.

        ``low_tox``: the lowest tier with >= 2 DLTs (``n_tiers`` if none); ``h``: the
        highest tried tier below it (-1 if none); ``nh``, ``yh``: the counts at ``h``;
        ``cut``: some tier holds a cohort cut short by ``max_n``.

        The decision is a function of the counts alone, never of the order in which
        the cohorts came or of the tier of the last one: every log with the same
        counts gets the same answer (``recommend`` and the engines cannot differ).
        On logs that start at the lowest tier and follow the design, ``h`` is the
        tier of the last cohort, so these are the familiar rules.
        """
        n, y = state.n, state.y
        k = n.shape[1]
        tiers = np.arange(k)[None, :]
        toxic = y >= 2
        low_tox = np.where(toxic.any(axis=1), np.argmax(toxic, axis=1), k)
        below = tiers < low_tox[:, None]
        h = np.where((n > 0) & below, tiers, -1).max(axis=1)
        rows = np.arange(n.shape[0])
        hc = np.maximum(h, 0)
        nh = np.where(h >= 0, n[rows, hc], 0)
        yh = np.where(h >= 0, y[rows, hc], 0)
        cut = (n % 3 != 0).any(axis=1)
        return low_tox, h, nh, yh, cut

    def decide(self, state: TrialState) -> Decision:
        k = self.n_tiers
        low_tox, h, nh, yh, cut = self._frontier(state)
        t = state.n_trials
        stop = np.zeros(t, dtype=bool)
        reason = np.zeros(t, dtype=np.int8)
        nxt = state.current.astype(np.int32).copy()
        rule = ~cut  # a cohort cut short by max_n: no rule applies (max_n stops the trial)
        lowest = rule & (low_tox == 0)
        rule &= ~lowest
        # no tried tier below the lowest toxic one (a log that started above the lowest tier):
        # treat the next cohort at the untried tier just below
        start_below = rule & (h < 0)
        expand = rule & (h >= 0) & (nh == 3) & (yh == 1)
        passed = rule & (h >= 0) & self._passed(nh, yh)
        # a passed tier: escalate unless it is the highest tier or its upper neighbour has >= 2 DLTs
        top = passed & (h == k - 1)
        under_toxic = passed & ~top & (h + 1 == low_tox)
        esc = passed & ~top & ~under_toxic
        if self.deescalation:
            # Korn et al. 1994: the MTD has 6 patients; 3 more at a passed tier with only 3
            more = under_toxic & (nh == 3)
            mtd = under_toxic & (nh >= 6)
        else:
            more = np.zeros(t, dtype=bool)
            mtd = under_toxic
        nxt = np.where(start_below, low_tox - 1, nxt)
        nxt = np.where(expand | more, h, nxt)
        nxt = np.where(esc, h + 1, nxt)
        stop = lowest | top | mtd
        reason[lowest] = StopReason.LOWEST_TIER_TOXIC
        reason[top] = StopReason.TOP_TIER_TOLERATED
        reason[mtd] = StopReason.MTD_IDENTIFIED
        nxt = np.where(stop, -1, nxt)
        return Decision(next=nxt.astype(np.int32), stop=stop, reason=reason)

    def select(self, state: TrialState) -> np.ndarray:
        """Highest tier below the lowest tier with >= 2 DLTs that passed (0/3 or <= 1/6; with
        de-escalation: >= 6 patients and <= 1 DLT, or the highest tier passed); -1 if none."""
        if self.deescalation:
            ok = (state.n >= 6) & (state.y <= 1)
            ok[:, -1] |= self._passed(state.n[:, -1], state.y[:, -1])
        else:
            ok = self._passed(state.n, state.y)
        k = self.n_tiers
        low_tox = self._frontier(state)[0]
        ok &= np.arange(k)[None, :] < low_tox[:, None]
        # highest tier satisfying ok, -1 if none
        idx = np.where(ok, np.arange(k)[None, :], -1)
        return idx.max(axis=1).astype(np.int32)

    def check_state(self, state: TrialState) -> None:
        bad = np.flatnonzero((state.n[0] % 3 != 0) | (state.n[0] > 6))
        if bad.size:
            t = int(bad[0])
            raise DesignError(
                f"tier {t + 1} has {int(state.n[0, t])} patients: 3+3 treats 3 or 6 patients per tier")
