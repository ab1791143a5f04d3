"""Any MTD design followed by an OBD pick: what trials like the seeds do in practice."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._lazy import lazy
from ..errors import DesignError, DoseescError
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, check_prob, design_from_dict, register

special = lazy("scipy.special")

#: BOIN12's default utility of the four outcomes: neither, DLT only, response only, both.
DEFAULT_UTILITY = (40.0, 0.0, 100.0, 60.0)


# -- shared by the wrappers that run a base design, then a stage of their own (OBDPick, Expansion) ----------------
class BaseWrapper:
    """Properties of a design that runs a base design, then a stage of its own (OBDPick, Expansion): the base's.
    The base's escalation reads DLTs (and response only where the base does): its cohorts wait for the base's
    windows; the wrapper's own stage and final pick need the response follow-up."""

    @property
    def n_tiers(self) -> int:
        return self.base.n_tiers

    @property
    def cohort_size(self) -> int:
        return self.base.cohort_size

    @property
    def start(self) -> int:
        return self.base.start

    @property
    def first_size(self) -> int:
        return self.base.first_size

    @property
    def uses_last_cohort(self) -> bool:
        return self.base.uses_last_cohort

    @property
    def steps_by_one(self) -> bool:
        return self.base.steps_by_one

    @property
    def decides_on_response(self) -> bool:
        return self.base.decides_on_response

    @property
    def fixed_cohorts(self) -> bool:
        return self.base.fixed_cohorts


def resolve_base(base) -> Design:
    """A wrapper's base design, from a design or a table with its type and options."""
    if isinstance(base, dict):
        try:
            base = design_from_dict(base)
        except DoseescError as exc:
            raise type(exc)(f"base: {exc}") from None
    if not isinstance(base, Design):
        raise DesignError(f"base = {base!r} must be a design (or a table with its type and options)")
    return base


def blank_arrays(state: TrialState, cohort_size: int) -> tuple:
    """A wrapper's decision arrays before it decides: (next -1, stop False, reason 0, fired 0, size
    ``cohort_size``, phase and aux as they are), each a new array of ``state.n_trials``."""
    t = state.n_trials
    return (np.full(t, -1, dtype=np.int32), np.zeros(t, dtype=bool), np.zeros(t, dtype=np.int8),
            np.zeros(t, dtype=np.int16), np.full(t, cohort_size, dtype=np.int32), state.phase.copy(),
            state.aux.copy())


def base_step(base: Design, state: TrialState, rows: np.ndarray, arrays: tuple) -> tuple[TrialState, Decision]:
    """The base design's step (its rule slots included) on the trials ``rows`` still in its escalation, written
    into ``arrays`` (next, stop, reason, fired, size: :func:`blank_arrays`); returns their state and the step."""
    nxt, stop, reason, fired, size = arrays[:5]
    sub = state.take(rows)
    dec = base.step(sub)
    nxt[rows], stop[rows], reason[rows], fired[rows] = dec.next, dec.stop, dec.reason, dec.fired
    if dec.size is not None:
        size[rows] = dec.size
    return sub, dec


def base_choice(base: Design, sub: TrialState, dec: Decision) -> np.ndarray:
    """The base design's final tier for the trials of ``sub`` its step ``dec`` stopped (-1 for the others)."""
    m = np.full(sub.n_trials, -1, dtype=np.int32)
    m[dec.stop] = base.conclude(sub.take(dec.stop), dec.reason[dec.stop])
    return m


def stop_at_max_n(d: Decision, state: TrialState, max_n: int) -> Decision:
    """A wrapper's own guard after its decision: a trial with ``max_n`` patients stops (reason MAX_N)."""
    full = (state.total_n >= max_n) & ~d.stop
    if full.any():
        d.stop = d.stop | full
        d.reason = np.where(full, np.int8(StopReason.MAX_N), d.reason).astype(np.int8)
        d.next = np.where(full, -1, d.next)
    return d


def summed_utility(state: TrialState, utility=DEFAULT_UTILITY) -> tuple[np.ndarray, np.ndarray]:
    """(patients, summed observed utility) per tier as floats, each shape ``(n_trials, n_tiers)``: the four
    outcome cells (neither, DLT only, response only, both) weighted by ``utility``."""
    n, y, e, ye = (np.asarray(a, float) for a in (state.n, state.y, state.e, state.ye))
    cells = (n - y - e + ye, y - ye, e - ye, ye)
    return n, sum(u * c for u, c in zip(utility, cells))


def utility_merge_key(state: TrialState, utility=DEFAULT_UTILITY) -> np.ndarray:
    """Exact-engine merge key of a design that sees DLTs only but picks by utility: each tier's patients, DLTs
    and summed utility (to 1e-6)."""
    _, total = summed_utility(state, utility)
    return np.column_stack([state.n, state.y, np.round(total * 1e6).astype(np.int64)])


def observed_utility(state: TrialState, utility=DEFAULT_UTILITY) -> np.ndarray:
    """Mean observed utility per tier, shape ``(n_trials, n_tiers)`` (NaN where untried)."""
    n, total = summed_utility(state, utility)
    with np.errstate(invalid="ignore", divide="ignore"):
        # rounded so that exact ties stay ties (merged exact states carry averaged counts)
        return np.where(n > 0, np.round(total / np.where(n > 0, n, 1), 9), np.nan)


@register
@dataclasses.dataclass(frozen=True)
class OBDPick(BaseWrapper, Design):
    """An MTD design (``base``) for safety, then the OBD named from the data.

    1. The base design (3+3, BOIN, CRM, ...) runs with its own rules and rule
       slots until it stops and names an MTD ``m``.
    2. Optional expansion (``expansion`` > 0): ``expansion`` more patients at
       ``m``, then ``expansion`` at ``m - 1`` (the top two tolerated tiers);
       skipped when the base names no MTD. Or ``fill = True`` (``expansion``
       0): the expansion treats the places the base left, up to the base's
       ``max_n`` (the registered N), so that the design is compared with
       others at that N: with ``R = max_n - patients treated`` when the base
       stops, ``ceil(R / 2)`` at ``m`` and the rest at ``m - 1`` (all ``R``
       at ``m`` when ``m`` is the lowest tier); nothing when ``R = 0``.
    3. The OBD is the tried tier at or below ``m`` with the highest mean
       observed utility (``utility`` of the four outcomes, BOIN12's defaults:
       neither 40, DLT only 0, response only 100, both 60; the lower tier on
       ties); no OBD when the base names no MTD. A tier the data (expansion
       included) show to be too toxic cannot be named, nor any tier above it:
       with n >= 3, P(p_T > target | Beta(1 + y, 1 + n - y)) > ``tox_cutoff``
       (0.95), target the base's (1/3 for a base without one, such as 3+3).

    The maximum sample size is the base's ``max_n`` plus ``2 x expansion``
    (with ``fill``: the base's ``max_n``, reached by every trial that names
    an MTD).

    With ``fill`` this is a case of :class:`~doseesc.designs.expansion.Expansion`
    (``layout="selected+below", order="blocks", monitor=False, selection="obd-pick"``,
    target the base's or 1/3): the same patients at the same tiers; this class keeps
    its kernel (one cohort per block) so that its outputs stay as they were
    (docs/notes/expansion.md).
    """

    kind = "obd-pick"
    uses_efficacy = True

    base: Design
    expansion: int = 0
    utility: tuple[float, float, float, float] = DEFAULT_UTILITY
    tox_cutoff: float = dataclasses.field(default=0.95, kw_only=True)
    #: The expansion fills the places the base left, up to its ``max_n`` (``expansion`` must be 0).
    fill: bool = dataclasses.field(default=False, kw_only=True)

    def __post_init__(self):
        base = resolve_base(self.base)
        object.__setattr__(self, "base", base)
        if isinstance(base, OBDPick):
            raise DesignError("base: an OBD pick cannot wrap another OBD pick")
        if self.expansion == "fill":
            raise DesignError('expansion = "fill": write fill = true (and no expansion, or expansion = 0) for an '
                              "expansion that fills the places the base design leaves, up to its max_n")
        check_int(self.expansion, "expansion", minimum=0)
        if self.expansion > 100:
            raise DesignError(f"expansion = {self.expansion} must be at most 100 patients per tier")
        if not isinstance(self.fill, (bool, np.bool_)):
            raise DesignError(f"fill = {self.fill!r} must be true or false")
        object.__setattr__(self, "fill", bool(self.fill))
        if self.fill and self.expansion:
            raise DesignError(f"fill = true with expansion = {self.expansion}: give one of them (fill treats every "
                              f"place the base leaves, up to its max_n = {base.max_n})")
        try:
            u = tuple(float(v) for v in self.utility)
        except (TypeError, ValueError):
            raise DesignError(f"utility = {self.utility!r} must be 4 numbers") from None
        if len(u) != 4:
            raise DesignError(f"utility = {self.utility!r} needs 4 values: neither, DLT only, response only, both")
        object.__setattr__(self, "utility", u)
        check_prob(self.tox_cutoff, "tox_cutoff")
        self._check_slots()

    # the other properties are the base design's (BaseWrapper)
    @property
    def max_n(self) -> int:
        return self.base.max_n + 2 * self.expansion

    @property
    def max_size(self) -> int:
        if self.fill:   # the expansion at the MTD: at most the places the base leaves, below its max_n
            return max(self.base.max_size, self.base.max_n)
        return max(self.base.max_size, self.expansion)

    @property
    def target(self):
        return self.base.target

    @property
    def label(self) -> str:
        extra = (f", expansion to N = {self.max_n}" if self.fill
                 else f", expansion {self.expansion} x 2" if self.expansion else "")
        return f"{self.base.label} + OBD pick{extra}"

    def admissible(self, state):
        return self.base.admissible(state)

    def merge_key(self, state):
        """The base design sees DLTs only; the pick needs each tier's summed utility."""
        return utility_merge_key(state, self.utility)

    def check_state(self, state):
        if int(state.phase[0]) == 0:
            self.base.check_state(state)

    def decide(self, state: TrialState) -> Decision:
        phase = state.phase
        arrays = blank_arrays(state, self.cohort_size)
        nxt, stop, reason, fired, size, new_phase, new_aux = arrays
        p0 = phase == 0
        if p0.any():
            sub, dec = base_step(self.base, state, p0, arrays)
            if (self.expansion or self.fill) and dec.stop.any():
                m = base_choice(self.base, sub, dec)
                if self.fill:
                    # the places left, half at the MTD (rounded up), all of them when the MTD is the lowest tier
                    left = self.max_n - np.asarray(sub.total_n, dtype=np.int32)
                    first = np.where(m >= 1, (left + 1) // 2, left)
                else:
                    first = np.full(sub.n_trials, self.expansion, dtype=np.int32)
                expand = dec.stop & (m >= 0) & (first > 0)
                idx = np.flatnonzero(p0)[expand]
                nxt[idx], stop[idx], reason[idx] = m[expand], False, 0
                size[idx] = first[expand]
                new_phase[idx], new_aux[idx] = 1, m[expand]
        p1 = phase == 1
        if p1.any():
            m = state.aux[p1]
            if self.fill:   # the rest of the places at the tier below
                second = self.max_n - np.asarray(state.total_n, dtype=np.int32)[p1]
            else:
                second = np.full(m.shape, self.expansion, dtype=np.int32)
            more = (m >= 1) & (second > 0)
            idx = np.flatnonzero(p1)
            nxt[idx] = np.where(more, m - 1, -1)
            stop[idx] = ~more
            reason[idx] = np.where(more, 0, StopReason.EXPANSION_DONE)
            size[idx] = np.where(more, second, self.cohort_size) if self.fill else second
            new_phase[idx] = 2
        p2 = phase == 2
        if p2.any():
            stop[p2] = True
            reason[p2] = StopReason.EXPANSION_DONE
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason, fired=fired,
                        size=size, phase=new_phase, aux=new_aux)

    def step(self, state: TrialState) -> Decision:
        # the base design applies its own rule slots; the wrapper adds only its own max_n guard
        return stop_at_max_n(self.decide(state), state, self.max_n)

    def select(self, state: TrialState) -> np.ndarray:  # pragma: no cover - conclude is used
        return self.conclude(state, np.zeros(state.n_trials, dtype=np.int8))

    def conclude(self, state: TrialState, reason: np.ndarray) -> np.ndarray:
        in_base = state.phase == 0
        m = state.aux.copy()
        if in_base.any():
            m[in_base] = self.base.conclude(state.take(in_base), reason[in_base])
        u = observed_utility(state, self.utility)
        k = self.n_tiers
        ok = (np.arange(k)[None, :] <= m[:, None]) & (state.n > 0) & ~self.too_toxic(state)
        score = np.where(ok, u, -np.inf)
        best = np.argmax(score, axis=1).astype(np.int32)
        return np.where(ok.any(axis=1), best, -1).astype(np.int32)

    @property
    def tox_target(self) -> float:
        """The DLT rate the pick's toxicity screen is against: the base's target, else 1/3."""
        target = self.target
        return 1 / 3 if target is None else float(target)

    def too_toxic(self, state: TrialState) -> np.ndarray:
        """Tiers the data show to be too toxic, and every tier above the lowest such, shape
        ``(n_trials, n_tiers)``: n >= 3 and P(p_T > target | Beta(1 + y, 1 + n - y)) > ``tox_cutoff``."""
        n, y = np.asarray(state.n, float), np.asarray(state.y, float)
        over = (n >= 3) & (special.betaincc(1 + y, 1 + n - y, self.tox_target) > self.tox_cutoff)
        return np.maximum.accumulate(over, axis=1)

    def expansion_text(self) -> str:
        if self.fill:
            return f"expansion to N = {self.max_n}"
        return super().expansion_text()

    def to_dict(self) -> dict:
        out = {"type": self.kind, "base": self.base.to_dict(), "expansion": self.expansion}
        if self.utility != DEFAULT_UTILITY:
            out["utility"] = list(self.utility)
        if self.tox_cutoff != 0.95:
            out["tox_cutoff"] = self.tox_cutoff
        if self.fill:
            out["fill"] = True
        return out

    def describe(self) -> str:
        exp = (f"; then {self.expansion} more patients at the MTD and {self.expansion} at the tier below"
               if self.expansion else "")
        if self.fill:
            exp = (f"; then the places left up to N = {self.max_n}, half at the MTD (rounded up) and half at the "
                   "tier below (all at the MTD when it is the lowest tier)")
        n, t, e, b = self.utility
        return (f"{self.base.describe()}{exp}; OBD = the tried tier at or below the MTD with the best observed "
                f"utility (response without DLT {e:g}, neither {n:g}, both {b:g}, DLT without response {t:g}), "
                f"never a tier at or above one with P(DLT rate > {self.tox_target:.3g}) > {self.tox_cutoff:g} "
                "(n >= 3)")
