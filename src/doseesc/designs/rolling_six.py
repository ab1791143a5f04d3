"""The rolling six design (Skolnik, Barrett, Jayaraman, Patel & Adamson 2008, J Clin Oncol 26:190-195).

Patients are assigned one at a time, on arrival, while earlier patients may
still be in their DLT window: two to six patients can be on a tier at once.
The decision for each new patient reads the current tier only: n patients
enrolled there, y DLTs observed so far, m patients still pending (no DLT yet,
window not complete). ``docs/notes/rolling-six.md`` gives the decision table,
its sources and the choices made where the paper is silent.

With complete follow-up (no calendar, or a log without follow-up times) no
patient is ever pending and the design is sequential with cohorts of one; its
selection probabilities then equal those of the 3+3 design with de-escalation
(the tests check it). Exact enumeration and dose paths refuse the design,
as they refuse every time-to-event design.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, register

#: Most patients the design treats at one tier.
PER_TIER = 6
#: Patients with complete follow-up and no DLT that allow escalation while others are pending (0 DLTs).
CLEARED = 3


def pending_at_current(state: TrialState) -> np.ndarray:
    """Patients at each trial's current tier with no DLT yet and follow-up not complete, shape ``(n_trials,)``;
    zeros for a state without per-patient arrays (complete data)."""
    if state.pt_tier is None:
        return np.zeros(state.n_trials, dtype=np.int32)
    pend = (state.pt_tier >= 0) & ~state.pt_dlt & (state.pt_follow < 1)
    return (pend & (state.pt_tier == state.current[:, None])).sum(axis=1).astype(np.int32)


def lowest_toxic(y: np.ndarray) -> np.ndarray:
    """Lowest tier with >= 2 DLTs per trial (``n_tiers`` where none), shape ``(n_trials,)``."""
    toxic = y >= 2
    return np.where(toxic.any(axis=1), np.argmax(toxic, axis=1), y.shape[1]).astype(np.int32)


def table_code(n, y, m) -> np.ndarray:
    """Skolnik's table at one tier: 1 escalate, 0 stay, -1 de-escalate, 2 suspend accrual (arrays).

    y >= 2: de-escalate. Otherwise with 6 enrolled: escalate when none is pending (y <= 1), else suspend.
    With fewer than 6: escalate when y = 0 and at least 3 have completed the window (n - m >= 3), else stay.
    """
    n, y, m = (np.asarray(v) for v in (n, y, m))
    full = n >= PER_TIER
    up = np.where(full, m == 0, (y == 0) & (n - m >= CLEARED))
    code = np.where(up, 1, np.where(full, 2, 0))
    return np.where(y >= 2, -1, code).astype(np.int8)


@register
@dataclasses.dataclass(frozen=True)
class RollingSix(Design):
    """The rolling six design (Skolnik et al. 2008): 3+3 rules applied to each arriving patient.

    At the current tier, with n enrolled, y DLTs observed and m pending:

    - y >= 2: de-escalate to the tier below (below the lowest tier with >= 2 DLTs, which is never treated
      again); if that tier already has 6 patients the MTD is defined and the trial stops; at the lowest
      tier the trial stops with no dose;
    - y = 0 and at least 3 patients completed without DLT (n - m >= 3), with n < 6: escalate;
    - n = 6 and no patient pending (y <= 1): escalate; n = 6 with patients pending: suspend accrual (the
      arriving patient waits for the next DLT or window completion at the tier);
    - otherwise (n < 6): enrol at the current tier.

    An escalation from the highest tier stops the trial with it as MTD, once no patient there is pending
    (the design waits for them). An escalation into a tier with >= 2 DLTs is refused: the current tier is
    filled to 6 patients and, when they are complete with <= 1 DLT, the trial stops with it as MTD.
    Final selection on complete data, as the 3+3 with de-escalation: the highest tier below the lowest
    tier with >= 2 DLTs that has >= 6 patients and <= 1 DLT, or the highest tier passed (0 DLTs in >= 3,
    or <= 1 in >= 6); -1 if none. Cohorts are single patients; ``max_n`` is required.
    """

    kind = "rolling-six"
    time_to_event = True
    complete_data = True
    steps_by_one = True

    n_tiers: int
    max_n: int

    def __post_init__(self):
        check_int(self.n_tiers, "n_tiers")
        check_int(self.max_n, "max_n", minimum=2)
        self._check_slots()

    @classmethod
    def example(cls) -> "RollingSix":
        """Four tiers, at most 24 patients (6 per tier)."""
        return cls(4, max_n=24)

    @property
    def cohort_size(self) -> int:
        return 1

    @property
    def label(self) -> str:
        return "Rolling six"

    def describe(self) -> str:
        return ("Rolling six (Skolnik et al. 2008): each arriving patient is assigned from the current tier's "
                "enrolled, DLT and pending counts; 0 DLTs with 3 complete escalates, 6 enrolled with <= 1 DLT "
                "escalates once complete (accrual suspended meanwhile), >= 2 DLTs de-escalates; at most 6 "
                "patients per tier; MTD = highest tier with <= 1 DLT in 6; " + self.rules_text())

    def pending_grid(self) -> dict[tuple[int, int], tuple[str, ...]]:
        """Skolnik's table from :func:`table_code`: E escalate, S stay (enrol here), D de-escalate, W suspend
        accrual, for n = 1..6 enrolled at the tier, m pending and y <= n - m DLTs seen."""
        letters = {1: "E", 0: "S", -1: "D", 2: "W"}
        out = {}
        for n in range(1, PER_TIER + 1):
            for m in range(n + 1):
                ys = np.arange(n - m + 1)
                out[(n, m)] = tuple(letters[int(c)] for c in table_code(np.full(ys.size, n), ys,
                                                                        np.full(ys.size, m)))
        return out

    # -- the kernel ---------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        t = state.n_trials
        rows = np.arange(t)
        d = state.current.astype(np.int32)
        nd, yd = state.n[rows, d], state.y[rows, d]
        m = pending_at_current(state)
        low = lowest_toxic(state.y)
        code = table_code(nd, yd, m)
        down = d >= low                                  # >= 2 DLTs here, or at a tier below (late DLTs)
        nxt, stop, reason, wait = self._up(d, nd, m, low, down, code)
        nxt, stop, reason = self._down(state, d, low, down, nxt, stop, reason)
        nxt = np.where(stop, -1, nxt).astype(np.int32)
        return Decision(next=nxt, stop=stop, reason=reason, wait=wait & ~stop, down=down)

    def _up(self, d, nd, m, low, down, code):
        """Escalation, stay and suspension at a tier below the lowest toxic one."""
        t = d.shape[0]
        top = d == self.n_tiers - 1
        blocked = d + 1 >= low                           # the tier above has >= 2 DLTs: never re-entered
        esc = ~down & (code == 1)
        stop = np.zeros(t, dtype=bool)
        reason = np.zeros(t, dtype=np.int8)
        # the highest tier passed: the MTD, once its pending patients are complete
        done_top = esc & top & (m == 0)
        # below a toxic tier: the MTD has 6 patients, all complete
        done_mtd = esc & ~top & blocked & (nd >= PER_TIER) & (m == 0)
        stop |= done_top | done_mtd
        reason[done_top] = StopReason.TOP_TIER_TOLERATED
        reason[done_mtd] = StopReason.MTD_IDENTIFIED
        wait = ~down & ((code == 2) | (esc & (top | blocked) & (m > 0) & ((nd >= PER_TIER) | top)))
        nxt = np.where(esc & ~top & ~blocked, d + 1, d)
        return nxt, stop, reason, wait

    def _down(self, state, d, low, down, nxt, stop, reason):
        """De-escalation to the tier below the lowest toxic one; stop there if it has 6, or at the lowest."""
        t = d.shape[0]
        target = low - 1
        none = down & (target < 0)
        full = down & ~none & (state.n[np.arange(t), np.maximum(target, 0)] >= PER_TIER)
        stop = stop | none | full
        reason = np.where(none, np.int8(StopReason.LOWEST_TIER_TOXIC), reason)
        reason = np.where(full, np.int8(StopReason.MTD_IDENTIFIED), reason).astype(np.int8)
        nxt = np.where(down & ~none & ~full, target, nxt)
        return nxt, stop, reason

    def wake_follow(self, state: TrialState) -> tuple[np.ndarray, np.ndarray]:
        """Rolling six suspends accrual only until a pending patient at the tier has a DLT or completes the
        window (an event), never at a follow-up threshold between events: +inf (toxicity, response)."""
        inf = np.full(state.n_trials, np.inf)
        return inf, inf.copy()

    def select(self, state: TrialState) -> np.ndarray:
        """Highest tier below the lowest tier with >= 2 DLTs with >= 6 patients and <= 1 DLT, or the highest
        tier if it passed (0 DLTs in >= 3, or <= 1 in >= 6); -1 if none. Shape ``(n_trials,)``."""
        n, y = state.n, state.y
        k = self.n_tiers
        ok = (n >= PER_TIER) & (y <= 1)
        ok[:, -1] |= (n[:, -1] >= CLEARED) & (y[:, -1] == 0)
        ok &= np.arange(k)[None, :] < lowest_toxic(y)[:, None]
        return np.where(ok, np.arange(k)[None, :], -1).max(axis=1).astype(np.int32)

    def check_state(self, state: TrialState) -> None:
        bad = np.flatnonzero(state.n[0] > PER_TIER)
        if bad.size:
            t = int(bad[0])
            raise DesignError(f"tier {t + 1} has {int(state.n[0, t])} patients: rolling six treats at most "
                              f"{PER_TIER} patients per tier")


__all__ = ["RollingSix", "lowest_toxic", "pending_at_current", "table_code"]
