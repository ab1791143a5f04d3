"""Escalation, then expansion cohorts up to a total N, with toxicity monitoring and a final choice from all data.

docs/notes/expansion.md gives the rules, the published default of the boundary and hand-worked examples.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from ..limits import MAX_N
from ..state import Decision, Rule, StopReason, TrialState
from .base import _SLOT_DEFAULTS, Design, check_int, check_prob, register
from .obd_pick import (DEFAULT_UTILITY, BaseWrapper, OBDPick, base_choice, base_step, blank_arrays, observed_utility,
                       resolve_base, stop_at_max_n, utility_merge_key)
from .selection import closest, isotonic
from .three_plus_three import ThreePlusThree

special = lazy("scipy.special")

#: Expansion layouts (``layout``), in words.
LAYOUTS = {
    "selected": "every expansion cohort at the selected tier",
    "selected+below": "the selected tier and the tier below",
    "randomised": "1:1 between the selected tier and the tier below, realised as allocation in fixed alternation "
                  "in cohort order",
}
#: Order of the cohorts of the two-tier layout ``"selected+below"`` (``order``).
ORDERS = ("alternate", "blocks")
#: Final selection rules (``selection``).
SELECTS = {
    "base": "the base design's own selection rule on all the data",
    "isotonic": "the tier whose isotonic DLT-rate estimate (Beta(0.05, 0.05) posterior means, BOIN's select.mtd) "
                "is closest to the target",
    "obd-pick": "the tier with the best observed utility (the OBD pick)",
    "escalation": "the tier the escalation selected",
}
#: What ``on_crossing`` may say.
CROSSINGS = ("down", "stop")

# phase memory of a trial in expansion: the tier its last cohort went to
_UPPER, _LOWER, _SINGLE = 1, 2, 3


@register
@dataclasses.dataclass(frozen=True)
class Expansion(BaseWrapper, Design):
    """A dose-finding design (``base``), then expansion cohorts up to a total of ``to_n`` patients.

    1. The base design (3+3, BOIN, CRM, BOIN12, ...) runs with its own rules and
       rule slots until it stops and names a tier ``m`` (its own selection rule on
       its data). No tier named (a safety stop), or no place left (``to_n``
       patients treated): the trial ends there.
    2. Expansion: cohorts of the base's ``cohort_size`` (the last one smaller
       where ``to_n`` leaves fewer places) up to ``to_n`` patients in all, by
       ``layout``, with ``top`` = ``m`` at first:

       - ``"selected"``: every cohort at ``top``;
       - ``"selected+below"``: ``top`` and ``top - 1``; ``order = "alternate"``
         (default) alternates cohorts, starting at ``top``; ``order = "blocks"``
         treats ceil(R / 2) of the R places left at ``top`` first, then the rest
         at ``top - 1`` (the OBD pick's ``fill``);
       - ``"randomised"``: 1:1 between ``top`` and ``top - 1``, realised as
         allocation in fixed alternation in cohort order (deterministic given
         the data, so exact enumeration applies; equal in distribution to 1:1
         block randomisation by cohorts when outcomes are exchangeable).

       With ``top`` the lowest tier a two-tier layout treats ``top`` alone.
    3. Toxicity boundary (``monitor``, default on): before each expansion
       cohort (the first included), a tier *crosses* when it has at least
       ``min_n`` patients and P(p_DLT > ``target`` | Beta(a + y, b + n - y)) >
       ``cutoff`` (``prior`` = (a, b); defaults Beta(1, 1), 0.95, 3: BOIN's
       elimination rule), on all the data at that tier. A crossing tier and every
       tier above it are closed for good: ``top`` becomes the highest tier below
       the lowest crossing one. ``on_crossing = "down"`` (default): the
       expansion goes on one tier down: ``"selected"`` at the new ``top``;
       ``"selected+below"`` at the new pair (``top``, ``top - 1``), starting at
       ``top``; ``"randomised"``: the surviving arm alone (no new arm is opened).
       No open tier left: the trial stops with no dose (``TOO_TOXIC``).
       ``on_crossing = "stop"``: the expansion ends (``EXPANSION_DONE``).
       The trial never returns to a closed tier.
    4. Final tier (``selection``) from all the data, never above ``top`` (``m``
       for a trial without expansion) nor at or above a tier that crosses the
       boundary (with or without ``monitor``): ``"base"`` the base's own rule
       (the default, except for fixed-cohort designs such as the 3+3, whose rule
       reads 3 or 6 patients per tier: ``"isotonic"``); ``"isotonic"``
       (BOIN's rule: Beta(0.05, 0.05) posterior means, weighted isotonic
       regression, the tried tier closest to ``target``, ties broken as BOIN
       does); ``"obd-pick"`` the tried tier with the best mean observed
       ``utility`` (BOIN12's by default; the lower tier on ties, as
       :class:`OBDPick`); ``"escalation"`` the base's pick ``m`` (lowered by
       closures).

    ``OBDPick(base, fill=True)`` is ``Expansion(base, to_n=base.max_n,
    layout="selected+below", order="blocks", monitor=False, selection="obd-pick",
    target=base.target or 1/3)`` trial for trial (tests/test_expansion.py).
    """

    kind = "expansion"

    base: Design
    to_n: int | None = None
    layout: str = "selected"
    order: str = "alternate"
    target: float | None = None
    monitor: bool = True
    prior: tuple[float, float] = (1.0, 1.0)
    cutoff: float = 0.95
    min_n: int = 3
    on_crossing: str = "down"
    selection: str | None = None
    utility: tuple[float, float, float, float] = DEFAULT_UTILITY

    def __post_init__(self):
        base = resolve_base(self.base)
        object.__setattr__(self, "base", base)
        if isinstance(base, (Expansion, OBDPick)):
            raise DesignError(f"base: a {base.kind} design already has an expansion; give its own base design")
        if base.time_to_event:
            raise DesignError(f"base: {base.kind} is a time-to-event design; an expansion after it is not supported "
                              "(give a design that decides on complete cohorts)")
        for f in dataclasses.fields(Design):
            if f.name in _SLOT_DEFAULTS and getattr(self, f.name) != _SLOT_DEFAULTS[f.name]:
                raise DesignError(f"{f.name} = {getattr(self, f.name)!r}: give the rule slots to the base design "
                                  f"(its table: base = {{ type = ..., {f.name} = ... }}); the expansion has its own "
                                  "boundary")
        largest = int(base.largest_n())
        to_n = base.max_n if self.to_n is None else self.to_n
        to_n = check_int(to_n, "to_n", maximum=MAX_N)
        if to_n < largest:
            raise DesignError(f"to_n = {to_n} is below the {largest} patients the base design ({base.label}) may "
                              f"treat; give to_n of at least {largest} (or a smaller max_n to the base)")
        object.__setattr__(self, "to_n", to_n)
        # the base as it judges data beyond its own max_n (its tables sized for to_n patients): used for its
        # selection rule and admissible tiers on the expansion's data; the escalation itself runs the base
        wide = base
        if any(f.name == "max_n" and f.init for f in dataclasses.fields(base)) and base.max_n < to_n:
            wide = dataclasses.replace(base, max_n=to_n)
        object.__setattr__(self, "_wide", wide)
        if not isinstance(self.layout, str) or self.layout not in LAYOUTS:
            raise DesignError(f"layout = {self.layout!r} must be one of {', '.join(map(repr, LAYOUTS))}")
        if not isinstance(self.order, str) or self.order not in ORDERS:
            raise DesignError(f"order = {self.order!r} must be one of {', '.join(map(repr, ORDERS))}")
        if self.order == "blocks" and self.layout != "selected+below":
            raise DesignError(f"order = 'blocks' applies to layout = 'selected+below', not {self.layout!r}")
        target = base.target if self.target is None else self.target
        if target is None:
            raise DesignError(f"target: the base design ({base.label}) has no target DLT rate; give target = ... "
                              "for the expansion's toxicity boundary and selection")
        object.__setattr__(self, "target", check_prob(target, "target"))
        if not isinstance(self.monitor, (bool, np.bool_)):
            raise DesignError(f"monitor = {self.monitor!r} must be true or false")
        object.__setattr__(self, "monitor", bool(self.monitor))
        prior = self.prior
        if isinstance(prior, (str, bytes)) or not hasattr(prior, "__len__") or len(prior) != 2:
            raise DesignError(f"prior = {prior!r} must be two numbers (a, b) of a Beta(a, b) prior")
        for i, v in enumerate(prior):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v) or not 0 < v <= 1000:
                raise DesignError(f"prior[{i}] = {v!r} must be a number in (0, 1000] (Beta(a, b) prior, "
                                  f"prior = {list(prior)!r})")
        object.__setattr__(self, "prior", (float(prior[0]), float(prior[1])))
        object.__setattr__(self, "cutoff", check_prob(self.cutoff, "cutoff"))
        object.__setattr__(self, "min_n", check_int(self.min_n, "min_n", maximum=1000))
        if not isinstance(self.on_crossing, str) or self.on_crossing not in CROSSINGS:
            raise DesignError(f"on_crossing = {self.on_crossing!r} must be one of {', '.join(map(repr, CROSSINGS))}")
        select = self.selection
        if select is None:
            select = "isotonic" if base.fixed_cohorts else "base"
        if not isinstance(select, str) or select not in SELECTS:
            raise DesignError(f"selection = {select!r} must be one of {', '.join(map(repr, SELECTS))}")
        if select == "base" and base.fixed_cohorts:
            raise DesignError(f"selection = 'base': the {base.label} rule reads complete cohorts of its own size at "
                              "each tier and cannot name a tier from expansion data; use 'isotonic', 'obd-pick' or "
                              "'escalation'")
        object.__setattr__(self, "selection", select)
        try:
            u = tuple(float(v) for v in self.utility)
        except (TypeError, ValueError):
            raise DesignError(f"utility = {self.utility!r} must be 4 numbers") from None
        if len(u) != 4 or not all(np.isfinite(u)):
            raise DesignError(f"utility = {self.utility!r} needs 4 finite values: neither, DLT only, response "
                              "only, both")
        object.__setattr__(self, "utility", u)

    @classmethod
    def example(cls) -> "Expansion":
        return cls(ThreePlusThree(3), to_n=21, layout="selected+below", target=0.25)

    # properties (the others are the base design's: BaseWrapper) ---------------
    @property
    def max_n(self) -> int:
        return self.to_n

    @property
    def max_size(self) -> int:
        return max(self.base.max_size, self.base.cohort_size)

    @property
    def uses_efficacy(self) -> bool:
        return self.selection == "obd-pick" or self.base.uses_efficacy

    @property
    def obd_definition(self):
        return self.base.obd_definition if self.selection == "base" else None

    @property
    def label(self) -> str:
        where = {"selected": "", "selected+below": ", selected tier and below",
                 "randomised": ", randomised selected/below"}[self.layout]
        pick = {"base": "", "isotonic": " + isotonic pick", "obd-pick": " + OBD pick",
                "escalation": ""}[self.selection]
        return f"{self.base.label} + expansion to N = {self.to_n}{where}{pick}"

    # the memory -------------------------------------------------------------
    def _pack(self, top, upper_left):
        return (np.asarray(top) + 1 + (self.n_tiers + 1) * np.asarray(upper_left)).astype(np.int32)

    def _top(self, aux):
        return (np.asarray(aux) % (self.n_tiers + 1) - 1).astype(np.int32)

    def _upper_left(self, aux):
        return (np.asarray(aux) // (self.n_tiers + 1)).astype(np.int32)

    def crossed(self, state: TrialState) -> np.ndarray:
        """Tiers whose data cross the boundary, and every tier above the lowest such, shape
        ``(n_trials, n_tiers)``: n >= ``min_n`` and P(p_DLT > target | Beta(a + y, b + n - y)) > ``cutoff``."""
        n, y = np.asarray(state.n, float), np.asarray(state.y, float)
        a, b = self.prior
        over = (n >= self.min_n) & (special.betaincc(a + y, b + n - y, self.target) > self.cutoff)
        return np.maximum.accumulate(over, axis=1)

    def _open_top(self, state: TrialState) -> np.ndarray:
        """The highest tier below the lowest crossing one (n_tiers - 1 where none crosses; -1: none open)."""
        over = self.crossed(state)
        return np.where(over.any(axis=1), np.argmax(over, axis=1) - 1, self.n_tiers - 1).astype(np.int32)

    def admissible(self, state):
        exp = state.phase > 0
        ok = (self._wide if exp.any() else self.base).admissible(state)
        if exp.any():
            top = np.where(exp, self._top(state.aux), self.n_tiers - 1)
            ok = ok & (np.arange(self.n_tiers)[None, :] <= top[:, None])
        return ok

    def merge_key(self, state):
        """Counts of DLTs, and for the OBD pick of a toxicity-only base each tier's summed utility."""
        if self.base.uses_efficacy:
            return None if self.selection == "obd-pick" else self._wide.merge_key(state)
        return utility_merge_key(state, self.utility)

    def check_state(self, state):
        if int(state.phase[0]) == 0:
            self.base.check_state(state)

    # the kernel ---------------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        t = state.n_trials
        phase = state.phase
        arrays = blank_arrays(state, self.cohort_size)
        nxt, stop, reason, fired, size, new_phase, new_aux = arrays
        top = np.full(t, -1, dtype=np.int32)       # the highest open expansion tier before this decision
        plan = np.zeros(t, dtype=bool)             # trials entering the expansion now
        p0 = phase == 0
        base_n = int(self.base.max_n)
        over = p0 & (np.asarray(state.total_n) > base_n)   # only a log that went on after the base stopped
        if over.any():
            stop[over], reason[over] = True, np.int8(StopReason.MAX_N)
            fired[over] = np.int16(Rule.MAX_N)
            p0 = p0 & ~over
        if p0.any():
            sub, dec = base_step(self.base, state, p0, arrays)
            # the escalation stays within the base's max_n (a last cohort cut short, as the base alone does)
            size[p0] = np.minimum(size[p0], np.maximum(base_n - np.asarray(sub.total_n, dtype=np.int32), 1))
            if dec.stop.any():
                m = base_choice(self.base, sub, dec)
                go = dec.stop & (m >= 0) & (np.asarray(sub.total_n) < self.to_n)
                idx = np.flatnonzero(p0)[go]
                top[idx], plan[idx] = m[go], True
                stop[idx], reason[idx] = False, 0
        going = phase > 0
        top[going] = self._top(state.aux[going])
        exp = plan | going
        if not exp.any():
            return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason, fired=fired,
                            size=size, phase=new_phase, aux=new_aux)
        i = np.flatnonzero(exp)
        prev = phase[i]
        left = self.to_n - np.asarray(state.total_n, dtype=np.int32)[i]
        old = top[i]
        new = np.minimum(old, self._open_top(state.take(i))) if self.monitor else old
        closed = new < old
        fired[i[closed]] |= np.int16(Rule.ELIMINATION)
        none_open = new < 0
        ended = ~none_open & ((left <= 0) | (closed & (self.on_crossing == "stop")))
        stop[i] = none_open | ended
        reason[i] = np.where(none_open, np.int8(StopReason.TOO_TOXIC),
                             np.where(ended, np.int8(StopReason.EXPANSION_DONE), np.int8(0)))
        lower = new >= 1
        replan = plan[i] | closed
        upper_left = self._upper_left(state.aux[i])
        cohort = np.minimum(self.cohort_size, np.maximum(left, 0))
        if self.layout == "selected":
            tier, ph = new, np.full(i.size, _SINGLE)
        elif self.layout == "randomised":
            single = (prev == _SINGLE) | closed | ~lower
            to_lower = ~single & (prev == _UPPER)
            tier = np.where(to_lower, new - 1, new)
            ph = np.where(single, _SINGLE, np.where(to_lower, _LOWER, _UPPER))
        elif self.order == "alternate":
            to_lower = lower & ~replan & (prev == _UPPER)
            tier = np.where(to_lower, new - 1, new)
            ph = np.where(~lower, _SINGLE, np.where(to_lower, _LOWER, _UPPER))
        else:   # blocks: ceil(R / 2) of the R places left at top, then the rest at top - 1
            upper_left = np.where(replan, np.where(lower, (left + 1) // 2, left), upper_left)
            at_upper = upper_left > 0
            tier = np.where(at_upper, new, new - 1)
            cohort = np.where(at_upper, np.minimum(cohort, upper_left), cohort)
            upper_left = np.where(at_upper, upper_left - cohort, 0)
            ph = np.where(~lower, _SINGLE, np.where(at_upper, _UPPER, _LOWER))
        go = ~stop[i]
        nxt[i] = np.where(go, tier, -1)
        size[i] = np.where(go, cohort, self.cohort_size)
        new_phase[i] = np.where(go, ph, np.maximum(prev, _UPPER))
        new_aux[i] = self._pack(np.where(go, new, np.maximum(new, -1)), np.where(go, upper_left, 0))
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason, fired=fired,
                        size=size, phase=new_phase, aux=new_aux)

    def step(self, state: TrialState) -> Decision:
        # the base design applies its own rule slots; the wrapper adds only its own max_n guard (decide already
        # stops every trial at to_n)
        d = self.decide(state)
        self._check_size(d)
        return stop_at_max_n(d, state, self.max_n)

    # the final choice -----------------------------------------------------------
    def conclude(self, state: TrialState, reason: np.ndarray) -> np.ndarray:
        """Final tier of stopped trials (see the class doc, step 4); ``state`` is the state the last decision
        was taken on (its ``phase`` and ``aux`` from before that decision)."""
        k = self.n_tiers
        in_base = state.phase == 0
        cap = self._top(state.aux)
        if in_base.any():
            cap[in_base] = self._wide.conclude(state.take(in_base), np.asarray(reason)[in_base])
        cap = np.minimum(cap, self._open_top(state)).astype(np.int32)
        tiers = np.arange(k)[None, :]
        tried = (state.n > 0) & (tiers <= cap[:, None])
        if self.selection == "escalation":
            return cap
        if self.selection == "base":
            out = cap.copy()
            exp = ~in_base
            if exp.any():
                own = np.asarray(self._wide.select(state.take(exp)), dtype=np.int32)
                out[exp] = np.minimum(own, cap[exp])
            return out.astype(np.int32)
        if self.selection == "obd-pick":
            score = np.where(tried, observed_utility(state, self.utility), -np.inf)
            best = np.argmax(score, axis=1).astype(np.int32)
            return np.where(tried.any(axis=1), best, -1).astype(np.int32)
        n, y = state.n.astype(float), state.y.astype(float)
        est = (y + 0.05) / (n + 0.1)
        var = (y + 0.05) * (n - y + 0.05) / ((n + 0.1) ** 2 * (n + 0.1 + 1))
        iso = isotonic(est, 1.0 / var, tried)
        adj = iso + np.cumsum(tried, axis=1) * 1e-10
        return closest(adj, self.target, tried)

    def select(self, state: TrialState) -> np.ndarray:  # pragma: no cover - conclude is used
        return self.conclude(state, np.zeros(state.n_trials, dtype=np.int8))

    def stops_for_safety(self) -> bool:
        """The base's safety stop, or the expansion's boundary at the lowest tier (``monitor``): either stops
        the trial with no dose when the lowest tier is too toxic."""
        return bool(self.monitor or self.base.stops_for_safety())

    # words and parameters ---------------------------------------------------------
    def expansion_text(self) -> str:
        return f"expansion to N = {self.to_n}"

    def to_dict(self) -> dict:
        out = {"type": self.kind, "base": self.base.to_dict(), "to_n": self.to_n, "layout": self.layout}
        if self.order != "alternate":
            out["order"] = self.order
        out["target"] = self.target
        if not self.monitor:
            out["monitor"] = False
        if self.prior != (1.0, 1.0):
            out["prior"] = list(self.prior)
        if self.cutoff != 0.95:
            out["cutoff"] = self.cutoff
        if self.min_n != 3:
            out["min_n"] = self.min_n
        if self.on_crossing != "down":
            out["on_crossing"] = self.on_crossing
        out["selection"] = self.selection
        if self.utility != DEFAULT_UTILITY:
            out["utility"] = list(self.utility)
        return out

    def describe(self) -> str:
        a, b = self.prior
        where = {"selected": "all at the selected tier",
                 "selected+below": ("the selected tier and the tier below, "
                                    + ("alternating cohorts" if self.order == "alternate"
                                       else "half of the places (rounded up) first, then the rest below")),
                 "randomised": ("1:1 between the selected tier and the tier below (fixed alternation in cohort "
                                "order)")}[self.layout]
        if self.monitor:
            move = ("the expansion goes one tier down" if self.on_crossing == "down" else "the expansion stops")
            mon = (f"; a tier with >= {self.min_n} patients and P(DLT rate > {self.target:g} | Beta({a:g}, {b:g}) "
                   f"prior) > {self.cutoff:g} is closed with every tier above it and {move}")
        else:
            mon = "; no toxicity monitoring during the expansion"
        pick = SELECTS[self.selection]
        if self.selection == "obd-pick":
            n, t, e, bb = self.utility
            pick += (f" (response without DLT {e:g}, neither {n:g}, both {bb:g}, DLT without response {t:g})")
        return (f"{self.base.describe()}; then expansion cohorts of {self.cohort_size} up to N = {self.to_n}: "
                f"{where}{mon}; final tier: {pick}, never above the expansion's highest open tier nor at or above "
                f"a tier with P(DLT rate > {self.target:g}) > {self.cutoff:g} (n >= {self.min_n})")
