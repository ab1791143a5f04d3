"""The A+B designs of Lin & Shih (2001), with and without de-escalation, as a vectorised kernel."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, register


@register
@dataclasses.dataclass(frozen=True)
class AplusB(Design):
    """The A+B design (Lin & Shih 2001, Biostatistics 2:203-215).

    ``A`` patients are treated at a tier, starting at the lowest. With ``x``
    DLTs among them:

    - ``x < C``: escalate to the next tier;
    - ``x > D``: the tier is too toxic;
    - ``C <= x <= D``: treat ``B`` more patients at the same tier; then, with
      ``x'`` DLTs among the ``A + B``, ``x' <= E`` escalates and ``x' > E``
      makes the tier too toxic.

    (``1 <= C <= D < A`` and ``D <= E < A + B``.) A tier that passes (``x < C``
    among ``A``, or ``x' <= E`` among ``A + B``) at the highest tier stops the
    trial with the highest tier as MTD. 3+3 is A = B = 3, C = D = E = 1 and
    gives exactly the decisions and results of :class:`ThreePlusThree`.

    *Without de-escalation* (Lin & Shih, section 2.1): a too-toxic tier stops
    the trial; the MTD is the tier below it (no MTD at the lowest tier).

    *With de-escalation* (section 2.2): after a too-toxic tier the next cohort
    goes to the tier below: if it has only ``A`` patients, ``B`` more are
    treated there, and with ``<= E`` DLTs among the ``A + B`` it is the MTD,
    otherwise it is too toxic and de-escalation goes on; if it already has
    ``A + B`` patients it is the MTD. A too-toxic lowest tier stops with no
    MTD. The MTD is the highest tier below the lowest too-toxic tier with
    ``A + B`` patients and ``<= E`` DLTs, or the highest tier when it passes
    (with ``x < C`` it is not expanded).

    The rules read the counts only, never the order of the cohorts, exactly
    as :class:`ThreePlusThree` does (its docstring states the rules for logs
    that start above the lowest tier or deviate): L = the lowest too-toxic
    tier, h = the highest tried tier below it, and the rules above act at h.

    ``max_n`` defaults to ``(A + B) x n_tiers``, which no trial can exceed; a
    smaller ``max_n`` stops trials early (``MAX_N``) and the MTD then follows
    the same selection rule on the data so far.
    """

    kind = "A+B"
    steps_by_one = True
    fixed_cohorts = True
    decides_on_current_tier = True

    n_tiers: int
    A: int = 3
    B: int = 3
    C: int = 1
    D: int = 1
    E: int = 1
    deescalation: bool = False
    max_n: int | None = None

    def __post_init__(self):
        check_int(self.n_tiers, "n_tiers")
        self._check_slots()
        self._check_parameters()
        if not isinstance(self.deescalation, (bool, np.bool_)):
            raise DesignError(f"deescalation = {self.deescalation!r} must be true or false")
        if self.max_n is None:
            object.__setattr__(self, "max_n", (self.A + self.B) * self.n_tiers)
        else:
            check_int(self.max_n, "max_n", minimum=self.A)

    @classmethod
    def example(cls) -> "AplusB":
        """A 3+3 variant that escalates with up to 2 DLTs in 6, with de-escalation, four tiers."""
        return cls(4, A=3, B=3, C=1, D=2, E=2, deescalation=True)

    def _check_parameters(self) -> None:
        for key in "ABC":
            check_int(getattr(self, key), key)
        check_int(self.D, "D")
        check_int(self.E, "E")
        A, B, C, D, E = self.A, self.B, self.C, self.D, self.E
        if not C <= D:
            raise DesignError(f"C = {C} and D = {D}: the A+B design needs C <= D")
        if not D < A:
            raise DesignError(f"D = {D} and A = {A}: the A+B design needs D < A (more than D DLTs among A "
                              "must be possible)")
        if not D <= E < A + B:
            raise DesignError(f"E = {E}: the A+B design needs D <= E < A + B (D = {D}, A + B = {A + B})")

    @property
    def cohort_size(self) -> int:
        return self.A

    @property
    def max_size(self) -> int:
        return max(self.A, self.B)

    @property
    def label(self) -> str:
        name = f"{self.A}+{self.B}"
        if (self.A, self.B, self.C, self.D, self.E) != (3, 3, 1, 1, 1):
            name += f" (C={self.C}, D={self.D}, E={self.E})"
        return name + (" with de-escalation" if self.deescalation else "")

    def describe(self) -> str:
        A, B, C, D, E = self.A, self.B, self.C, self.D, self.E
        middle = f"{C}/{A}" if C == D else f"{C}-{D}/{A}"
        text = (f"A+B design (Lin & Shih 2001), A={A}, B={B}, C={C}, D={D}, E={E}: cohorts of {A}; "
                f"< {C}/{A} DLTs escalate, > {D}/{A} too toxic, {middle} add {B} at the same tier; "
                f"<= {E}/{A + B} escalate, > {E}/{A + B} too toxic; ")
        if self.deescalation:
            text += (f"after a too-toxic tier de-escalate, adding {B} at a tier with {A}; MTD = highest tier with "
                     f"{A + B} patients and <= {E} DLTs below the lowest too-toxic tier")
        else:
            text += "MTD = tier below the too-toxic tier; no de-escalation"
        return text + "; " + self.rules_text()

    # ------------------------------------------------------------------
    def grid_sizes(self, max_n: int) -> list[int]:
        """A+B decides after A and after A + B patients at a tier (whatever ``max_n``)."""
        return [self.A, self.A + self.B]

    def decision_words(self) -> dict[str, str]:
        """As the 3+3's grid: D is the stop (MTD = tier below) without de-escalation."""
        return {"E": "escalate", "S": "stay", "D": "de-escalate" if self.deescalation else "stop: MTD = tier below"}

    def _passed(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Tiers whose data allow escalation: fewer than C DLTs among A, or at most E among A + B."""
        return ((n == self.A) & (y < self.C)) | ((n == self.A + self.B) & (y <= self.E))

    def _toxic(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Tiers certain to be too toxic: more than D DLTs with at most A patients, or more than E."""
        return (y > self.E) | ((n <= self.A) & (y > self.D))

    def _frontier(self, state: TrialState):
        """``low_tox`` (the lowest too-toxic tier, ``n_tiers`` if none), ``h`` (the highest tried tier
        below it, -1 if none), the counts ``nh``, ``yh`` at ``h``, and ``cut`` (some tier holds a
        cohort cut short by ``max_n``), each of shape ``(n_trials,)``."""
        n, y = state.n, state.y
        k = n.shape[1]
        tiers = np.arange(k)[None, :]
        toxic = self._toxic(n, y)
        low_tox = np.where(toxic.any(axis=1), np.argmax(toxic, axis=1), k)
        h = np.where((n > 0) & (tiers < low_tox[:, None]), tiers, -1).max(axis=1)
        rows = np.arange(n.shape[0])
        hc = np.maximum(h, 0)
        nh = np.where(h >= 0, n[rows, hc], 0)
        yh = np.where(h >= 0, y[rows, hc], 0)
        cut = ((n != 0) & (n != self.A) & (n != self.A + self.B)).any(axis=1)
        return low_tox, h, nh, yh, cut

    def decide(self, state: TrialState) -> Decision:
        k = self.n_tiers
        low_tox, h, nh, yh, cut = self._frontier(state)
        rule = ~cut  # a cohort cut short by max_n: no rule applies (max_n stops the trial)
        lowest = rule & (low_tox == 0)
        rule &= ~lowest
        start_below = rule & (h < 0)  # nothing tried below the lowest too-toxic tier: the untried tier below
        tried = rule & (h >= 0)
        expand = tried & (nh == self.A) & (yh >= self.C) & (yh <= self.D)
        passed = tried & self._passed(nh, yh)
        top = passed & (h == k - 1)
        under_toxic = passed & ~top & (h + 1 == low_tox)
        esc = passed & ~top & ~under_toxic
        if self.deescalation:
            more = under_toxic & (nh == self.A)  # B more at a passed tier with A patients
            mtd = under_toxic & (nh > self.A)
        else:
            more = np.zeros_like(under_toxic)
            mtd = under_toxic
        nxt = state.current.astype(np.int32).copy()
        nxt = np.where(start_below, low_tox - 1, nxt)
        nxt = np.where(expand | more, h, nxt)
        nxt = np.where(esc, h + 1, nxt)
        stop = lowest | top | mtd
        reason = np.zeros(state.n_trials, dtype=np.int8)
        reason[lowest] = StopReason.LOWEST_TIER_TOXIC
        reason[top] = StopReason.TOP_TIER_TOLERATED
        reason[mtd] = StopReason.MTD_IDENTIFIED
        nxt = np.where(stop, -1, nxt).astype(np.int32)
        size = np.where(expand | more, self.B, self.A).astype(np.int32)
        return Decision(next=nxt, stop=stop, reason=reason, size=size)

    def select(self, state: TrialState) -> np.ndarray:
        """Highest tier below the lowest too-toxic tier that passed (with de-escalation: with A + B
        patients and <= E DLTs, or the highest tier when it passed); -1 if none."""
        n, y = state.n, state.y
        if self.deescalation:
            ok = (n == self.A + self.B) & (y <= self.E)
            ok[:, -1] |= self._passed(n[:, -1], y[:, -1])
        else:
            ok = self._passed(n, y)
        k = self.n_tiers
        low_tox = self._frontier(state)[0]
        ok &= np.arange(k)[None, :] < low_tox[:, None]
        return np.where(ok, np.arange(k)[None, :], -1).max(axis=1).astype(np.int32)

    def check_state(self, state: TrialState) -> None:
        n = state.n[0]
        bad = np.flatnonzero((n != 0) & (n != self.A) & (n != self.A + self.B))
        if bad.size:
            t = int(bad[0])
            raise DesignError(f"tier {t + 1} has {int(n[t])} patients: the {self.A}+{self.B} design treats "
                              f"{self.A} or {self.A + self.B} patients per tier")
