"""What every design provides, and the registry that builds designs by name.

A design is a frozen dataclass of parameters. Its decision kernel
:meth:`Design.decide` maps a batch of :class:`~doseesc.state.TrialState` to a
:class:`~doseesc.state.Decision` with numpy operations only; the Monte Carlo
engine, the exact engine and :func:`~doseesc.recommend` all call it through
:meth:`Design.step`, which adds the rules every design shares (the maximum
sample size). :meth:`Design.select` names the final tier of a stopped trial.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import ClassVar

import numpy as np


from .._lazy import lazy
from ..backfill import with_backfill as _with_backfill
from ..errors import DesignError
from ..limits import MAX_COHORT, MAX_N, MAX_TIERS, short
from ..state import Decision, Rule, StopReason, TrialState
from .rules import (DemandNAtTier, RescueTier, StopAtN, StopRule, StopWhenDeescalationImpossible, StopWhenNAtTier,
                    StopWhenTooToxic, StopWhenToxCICovered, any_of, rule_from_dict, value_from_dict)

special = lazy("scipy.special")

#: Reasons whose trials select no tier (the rescue tier is tried before these stops).
NO_DOSE_REASONS = np.array([int(r) for r in StopReason if r.no_dose], dtype=np.int8)
#: The rule slots' no-dose reasons, which :meth:`Design.conclude` maps to -1 (a design's own
#: LOWEST_TIER_TOXIC stop keeps the design's own :meth:`Design.select`).
_SLOT_NO_DOSE = np.array([StopReason.SAFETY, StopReason.TOO_TOXIC, StopReason.DEESCALATION_IMPOSSIBLE], dtype=np.int8)
#: Rule bits and reasons of :meth:`Design.step` as numpy scalars (bool mask * bit gives the int16 bits).
_DESIGN_STOP_BIT = np.int16(Rule.DESIGN_STOP)
_MAX_N_BIT = np.int16(Rule.MAX_N)
_MAX_N_REASON = np.int8(StopReason.MAX_N)


#: Upper limits of the integer options every design checks (:mod:`doseesc.limits`), by option name.
_INT_LIMITS = {"max_n": MAX_N, "cohort_size": MAX_COHORT, "n_tiers": MAX_TIERS}


def check_prob(value, key: str, low: float = 0.0, high: float = 1.0, open_low=True, open_high=True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DesignError(f"{key} = {value!r} must be a number")
    try:
        v = float(value)
    except OverflowError:   # an integer too large for a float
        raise DesignError(f"{key} = {short(value)} must lie in [{low:g}, {high:g}]") from None
    bad_low = v <= low if open_low else v < low
    bad_high = v >= high if open_high else v > high
    if not np.isfinite(v) or bad_low or bad_high:
        lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
        raise DesignError(f"{key} = {value!r} must lie in {lo}{low:g}, {high:g}{hi}")
    return v


def check_int(value, key: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int, refused unless an integer from ``minimum`` to ``maximum`` (default: the limit of
    :data:`_INT_LIMITS` for ``max_n``, ``cohort_size`` and ``n_tiers``; none for other options, some of which
    use a huge value to mean "never", e.g. BOIN's ``n_earlystop``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DesignError(f"{key} = {short(value)} must be an integer")
    if value < minimum:
        raise DesignError(f"{key} = {short(value)} must be at least {minimum}")
    top = _INT_LIMITS.get(key) if maximum is None else maximum
    if top is not None and value > top:
        raise DesignError(f"{key} = {short(value)} is above the limit of {top:,} (doseesc.limits)")
    return int(value)


class KernelContractError(RuntimeError):
    """A design's kernel broke the :class:`Design` contract (a bug in the design, not in the input)."""


_REQUIRED = object()


class _SameAs:
    """A capability tag whose default is another tag's value (class or instance access); a subclass sets its
    own value as a class variable, or a property (a design wrapping another)."""

    def __init__(self, other: str):
        self.other = other

    def __get__(self, obj, owner=None):
        return getattr(owner if obj is None else obj, self.other)


class _Question:
    """The :attr:`Design.question` tag: ``"OBD"`` where the design's :attr:`~Design.uses_efficacy`, else
    ``"MTD"`` (class or instance access); a subclass may set its own value as a class variable."""

    def __get__(self, obj, owner=None):
        return "OBD" if getattr(owner if obj is None else obj, "uses_efficacy") else "MTD"


#: The questions a design can answer (:attr:`Design.question`), with their words.
QUESTIONS = {"MTD": "the maximum tolerated dose", "OBD": "the optimal biological dose"}


@dataclasses.dataclass(frozen=True)
class Conduct:
    """How a design conducts a trial, in the terms a fair comparison of designs needs
    (:meth:`Design.conduct`).

    ``max_n``: the most patients a trial can treat, expansion included (:meth:`Design.largest_n`); ``expansion``: patients per tier of
    an expansion stage after dose finding (0: none; the OBD pick treats them at two tiers);
    ``safety_stop``: whether the trial stops with no dose selected when the lowest tier is too toxic;
    ``question``: ``"MTD"`` or ``"OBD"`` (:attr:`Design.question`); ``expansion_text``: the expansion in
    words for a comparison's notes (``"+6 per tier expansion"``, ``"expansion to N = 18"``; ``""``: none).
    """

    max_n: int
    safety_stop: bool
    expansion: int
    question: str
    expansion_text: str = ""


class Declared:
    """A member every design has, declared on :class:`Design` with its contract.

    A subclass provides it as a dataclass field or a property. The declaration
    is invisible on the class itself (class access raises ``AttributeError``),
    so that a subclass's dataclass field of the same name takes no default
    from it (a property on the base would become that default and break the
    order of the subclass's fields). On an instance that does not provide the
    member it gives ``default``, or raises ``AttributeError`` naming the design
    when the member is required.
    """

    def __init__(self, doc: str, default=_REQUIRED):
        self.__doc__ = doc
        self.default = default
        self.name = ""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError(self.name)
        if self.required:
            raise AttributeError(f"{type(obj).__name__} does not declare {self.name!r} (a Design declares it as a "
                                 "dataclass field or a property)")
        return self.default


@dataclasses.dataclass(frozen=True)
class Design:
    """Base class of designs.

    What a subclass provides (its contract):

    - ``kind``: the type name in scenario files, unique in the registry
      (:func:`register` refuses a second class of the same kind);
    - the common members ``n_tiers``, ``cohort_size``, ``max_n`` (required)
      and ``target`` (the target DLT rate; ``None`` for designs without one,
      such as 3+3), each as a dataclass field or a property (see
      :class:`Declared`);
    - the capability tags below, class variables (or properties, for designs
      that wrap another) whose defaults describe a plain cohort design deciding
      on toxicity alone;
    - :meth:`decide` and :meth:`select`; optionally :attr:`max_size` (a design
      whose kernel asks for cohorts larger than ``cohort_size``: :meth:`step`
      refuses a ``Decision.size`` above it) and :meth:`decision_grid`.

    Every design also has named *rule slots* (keyword-only fields), applied by
    :meth:`step` in this fixed order whatever order they were set in:

    1. the design's own rule (:meth:`decide`): next tier, or stop and why;
    2. constraints on the next tier: ``forbid_skip`` (never escalate above
       the highest tried tier + 1), then ``forbid_skip_down`` (never
       de-escalate by more than one tier), then ``tier_cap`` (a tier with
       ``tier_cap`` patients is closed: the cohort goes to the highest open
       admissible tier below; if none, the trial stops);
    3. stopping rules, any of which stops the trial: ``safety_cutoff`` (stop
       with no dose when P(p_lowest > target | Beta(1 + y, 1 + n - y)) >
       cutoff with at least ``safety_min_n`` patients at the lowest tier),
       the safety rules of ``stopping`` (``too_toxic``,
       ``deescalation_impossible``: stop with no dose), ``max_n`` (stop at N
       patients), ``stop_n_at_tier`` (stop when the tier recommended for the
       next cohort already has that many patients), then the other rules of
       ``stopping`` (an ``any_of``/``all_of`` expression of
       :mod:`~doseesc.designs.rules` values). ``demand`` (``demand_n_at_dose``)
       vetoes ``stop_n_at_tier`` and the sample-size and precision rules of
       ``stopping`` (``n_in_total``, ``n_at_tier``, ``tox_ci_covered``) until
       its tier has its n patients; it never vetoes the design's own stops,
       safety stops, the tier cap or ``max_n``;
    4. ``rescue`` (``try_rescue_dose``): a trial about to stop with no dose
       selected, below ``max_n``, treats its next cohort at the rescue tier
       instead while that tier has fewer than the rescue n patients.

    The reported reason is the design's own if it stopped, else the first of
    tier cap, safety, too toxic / de-escalation impossible, max_n, n-at-tier,
    then the ``stopping`` rules in their fixed order (n in total, n at a tier,
    credible interval); every rule that acted is recorded in the per-trial
    :class:`~doseesc.state.Rule` bit mask.
    """

    #: Name of the design type in scenario files (``type = "3+3"``).
    kind: ClassVar[str] = ""
    #: True for designs that decide on toxicity and efficacy (BOIN12, BOIN-ET, OBD pick): the engines
    #: draw responses and the state carries ``e``; a scenario for them needs ``true_eff``.
    uses_efficacy: ClassVar[bool] = False
    #: True for designs whose decision also depends on the last cohort's own outcomes (CRM's
    #: coherence rule): the exact engine keeps the last cohort in the state key.
    uses_last_cohort: ClassVar[bool] = False
    #: True when the design's own moves are at most one tier up (the no-skip check cannot bind).
    steps_by_one: ClassVar[bool] = False
    #: True for designs whose rules need complete cohorts of evaluable patients at one tier (3+3).
    fixed_cohorts: ClassVar[bool] = False
    #: True for time-to-event designs (TITE): they decide with pending patients' partial follow-up, so
    #: exact enumeration and dose paths do not apply.
    time_to_event: ClassVar[bool] = False
    #: True for designs fitted on each patient's own dose (BLRM): under the actual-dose model the engine gives the
    #: state each evaluable patient's actual dose (``pt_dose``) and DLT (``pt_dlt``).
    uses_patient_doses: ClassVar[bool] = False
    #: True for a time-to-event design that is also defined on complete data (every patient followed to the
    #: end of the window before the next decision, as when accrual is slow): exact enumeration, dose paths
    #: and ``recommend`` without follow-up times use that form (rolling six: then the 3+3 with de-escalation).
    complete_data: ClassVar[bool] = False
    #: True when the design's own move depends only on the patients and DLTs at the current tier (and
    #: the eliminations they cause), as for interval designs and 3+3: :meth:`decision_grid` is then
    #: derived from the kernel. False (default): the design has no decision grid unless it gives one.
    decides_on_current_tier: ClassVar[bool] = False
    #: True when the design's escalation decisions read responses (BOIN12, BOIN-ET, TITE-BOIN12): the calendar
    #: waits for the response window between cohorts. False for a design that reads responses only for its
    #: final choice (an OBD pick on a 3+3 or BOIN base): cohorts wait for the DLT window alone, and only the
    #: final selection waits for the response follow-up. Default: the design's :attr:`uses_efficacy`.
    decides_on_response: ClassVar[bool] = _SameAs("uses_efficacy")
    #: The question the design answers, on which it is reported: ``"OBD"`` (the optimal biological dose) for
    #: designs that select on response (:attr:`uses_efficacy`: BOIN12, BOIN-ET, OBD pick), else ``"MTD"``
    #: (the maximum tolerated dose). Its headline P(correct) is P(select the true OBD), resp. the true MTD.
    question: ClassVar[str] = _Question()


    # -- the common members (fields or properties of every subclass) -----------
    n_tiers = Declared("Number of dose tiers.")
    cohort_size = Declared("Patients per cohort (the usual cohort; see :attr:`first_size` and :attr:`max_size`).")
    max_n = Declared("Maximum number of patients in a trial.")
    target = Declared("Target DLT rate; None for designs without one (3+3, A+B).", default=None)
    expansion = Declared("Patients per tier of an expansion stage after dose finding (0: none); "
                         ":attr:`max_n` includes them.", default=0)

    stop_n_at_tier: int | None = dataclasses.field(default=None, kw_only=True)
    tier_cap: int | None = dataclasses.field(default=None, kw_only=True)
    forbid_skip: bool = dataclasses.field(default=True, kw_only=True)
    safety_cutoff: float | None = dataclasses.field(default=None, kw_only=True)
    safety_min_n: int = dataclasses.field(default=3, kw_only=True)
    forbid_skip_down: bool = dataclasses.field(default=False, kw_only=True)
    stopping: StopRule | None = dataclasses.field(default=None, kw_only=True)
    demand: DemandNAtTier | None = dataclasses.field(default=None, kw_only=True)
    rescue: RescueTier | None = dataclasses.field(default=None, kw_only=True)

    def _check_slots(self) -> None:
        if self.stop_n_at_tier is not None:
            check_int(self.stop_n_at_tier, "stop_n_at_tier")
        if self.tier_cap is not None:
            check_int(self.tier_cap, "tier_cap")
        if not isinstance(self.forbid_skip, (bool, np.bool_)):
            raise DesignError(f"forbid_skip = {self.forbid_skip!r} must be true or false")
        check_int(self.safety_min_n, "safety_min_n")
        if self.safety_cutoff is not None:
            check_prob(self.safety_cutoff, "safety_cutoff")
            if self.target is None:
                raise DesignError(f"safety_cutoff needs a target DLT rate; {self.kind} has none")
        if not isinstance(self.forbid_skip_down, (bool, np.bool_)):
            raise DesignError(f"forbid_skip_down = {self.forbid_skip_down!r} must be true or false")
        if self.stopping is not None:
            object.__setattr__(self, "stopping", rule_from_dict(self.stopping))
            self.stopping.check(self.n_tiers)
        object.__setattr__(self, "demand", value_from_dict(DemandNAtTier, self.demand, "demand"))
        object.__setattr__(self, "rescue", value_from_dict(RescueTier, self.rescue, "rescue"))
        for key, value in (("demand", self.demand), ("rescue", self.rescue)):
            if value is not None and isinstance(value.tier, int) and value.tier > self.n_tiers:
                raise DesignError(f"{key}: tier = {value.tier} but the design has {self.n_tiers} tiers")

    # -- fluent helpers: each returns a new design ----------------------
    def stop_when_n_at_tier(self, m: int) -> "Design":
        """Stop when the tier recommended for the next cohort already has ``m`` patients."""
        return dataclasses.replace(self, stop_n_at_tier=m)

    def cap_per_tier(self, c: int) -> "Design":
        """Treat at most ``c`` patients at any tier."""
        return dataclasses.replace(self, tier_cap=c)

    def no_skip(self) -> "Design":
        """Never escalate to a tier above the highest tried tier + 1."""
        return dataclasses.replace(self, forbid_skip=True)

    def allow_skip(self) -> "Design":
        return dataclasses.replace(self, forbid_skip=False)

    def safety_stop(self, cutoff: float = 0.95, min_n: int = 3) -> "Design":
        """Stop with no dose when P(p_lowest > target | data) > ``cutoff`` (Beta(1, 1) prior)."""
        return dataclasses.replace(self, safety_cutoff=cutoff, safety_min_n=min_n)

    def stop_when(self, rule: StopRule) -> "Design":
        """Add a stopping rule or expression (``any_of`` with the rules already set)."""
        new = rule_from_dict(rule)
        return dataclasses.replace(self, stopping=new if self.stopping is None else any_of(self.stopping, new))

    def stop_when_too_toxic(self, tier="lowest", threshold: float = 0.35, confidence: float = 0.9,
                            min_n: int = 1) -> "Design":
        """Stop with no dose when P(DLT rate at ``tier`` > ``threshold``) >= ``confidence``
        (``tier``: ``"lowest"``, ``"recommended"``, ``"any"`` or a tier number)."""
        return self.stop_when(StopWhenTooToxic(tier, threshold, confidence, min_n))

    def stop_when_deescalation_impossible(self) -> "Design":
        """Stop with no dose when the design's rule says de-escalate at the lowest tier."""
        return self.stop_when(StopWhenDeescalationImpossible())

    def stop_at_n(self, n: int) -> "Design":
        """Stop once ``n`` patients have been treated in all."""
        return self.stop_when(StopAtN(n))

    def stop_when_n_at_dose(self, n: int, tier="recommended") -> "Design":
        """Stop when ``tier`` (``"recommended"``, ``"any"`` or a tier number) has ``n`` patients."""
        return self.stop_when(StopWhenNAtTier(n, tier))

    def stop_when_tox_ci_covered(self, width: float, tier="recommended", level: float = 0.9) -> "Design":
        """Stop when the ``level`` credible interval of the DLT rate at ``tier`` is narrower than ``width``."""
        return self.stop_when(StopWhenToxCICovered(width, tier, level))

    def demand_n_at_dose(self, n: int, tier="recommended") -> "Design":
        """No stop for sample size or precision until ``tier`` (``"recommended"``, ``"any"`` or a tier number)
        has ``n`` patients; safety stops and ``max_n`` still apply."""
        return dataclasses.replace(self, demand=DemandNAtTier(n, tier))

    def dont_skip_doses(self, when_escalating: bool = True, when_deescalating: bool = False) -> "Design":
        """Never skip a tier when escalating (untried tiers) and/or when de-escalating."""
        return dataclasses.replace(self, forbid_skip=when_escalating, forbid_skip_down=when_deescalating)

    def try_rescue_dose(self, tier: int, n: int = 3) -> "Design":
        """Before stopping with no dose, treat tier ``tier`` (1 = lowest) until it has ``n`` patients."""
        return dataclasses.replace(self, rescue=RescueTier(tier, n))

    @property
    def label(self) -> str:
        """Short human name, e.g. ``3+3 (with de-escalation)``."""
        return self.kind

    @property
    def start(self) -> int:
        """Tier of the first cohort (0-based)."""
        return 0

    @property
    def first_size(self) -> int:
        """Size of the first cohort."""
        return self.cohort_size

    @property
    def max_size(self) -> int:
        """Largest cohort the design can ask for."""
        return self.cohort_size

    @property
    def obd_definition(self):
        """The optimal-biological-dose definition of the design's own final rule
        (:class:`~doseesc.obd.OBDDefinition`); None for designs that select on toxicity alone."""
        return None

    @classmethod
    def example(cls) -> "Design":
        """A design of this type with sensible parameters (for contract checks); raises
        ``NotImplementedError`` where the class gives none."""
        raise NotImplementedError(f"{cls.__name__} gives no example design")

    # -- conduct: what a fair comparison must say ---------------------------
    def conduct(self) -> Conduct:
        """The design's conduct in the terms of a fair comparison: maximum N, expansion, whether it can stop
        with no dose when the lowest tier is too toxic (:meth:`stops_for_safety`), and its question."""
        return Conduct(max_n=self.largest_n(), safety_stop=self.stops_for_safety(), expansion=int(self.expansion),
                       question=self.question, expansion_text=self.expansion_text())

    def expansion_text(self) -> str:
        """The expansion stage in words for a comparison's notes (``""`` when there is none)."""
        return f"+{int(self.expansion)} per tier expansion" if self.expansion else ""

    def largest_n(self) -> int:
        """The most patients a trial of this design can treat: :attr:`max_n`, or fewer where the rules cap
        every tier. A tier holds at most ``tier_cap`` patients, and at most the largest count of the design's
        :meth:`decision_grid` when the grid never says stay at that count (the 3+3 decides at 3 and 6 patients
        and never stays at 6: at most 6 per tier, so 6 x n_tiers in all). A design wrapping another (a
        dataclass field holding a design, as the OBD pick holds its base) with an :attr:`expansion` treats at
        most the inner design's largest N plus what its own ``max_n`` adds to the inner one's (the OBD pick's
        2 x expansion); without an expansion, its own ``max_n`` (an expansion that fills the places the inner
        design leaves reaches it). A design whose rules bound N otherwise overrides this method.
        """
        limit = int(self.max_n)
        inner = [getattr(self, f.name) for f in dataclasses.fields(self)]
        inner = [d for d in inner if isinstance(d, Design)]
        if len(inner) == 1:
            if not self.expansion:
                return limit
            return min(limit, inner[0].largest_n() + limit - int(inner[0].max_n))
        per_tier = [] if self.tier_cap is None else [int(self.tier_cap)]
        grid = self.decision_grid(limit)
        if grid:
            top = max(grid)
            if "S" not in grid[top]:
                per_tier.append(int(top))
        if per_tier:
            limit = min(limit, min(per_tier) * int(self.n_tiers))
        return limit

    def stops_for_safety(self) -> bool:
        """True when the design stops the trial with no dose selected once the lowest tier is too toxic.

        Read from the design itself, not from its name: :meth:`step` (the design's own rule and every
        rule slot, in their order) is asked about trials with only the lowest tier tried and every patient
        there a DLT (and a response, so that no futility rule acts), with 1, 2, ... cohorts of
        :attr:`cohort_size` up to :attr:`max_n`. A 3+3 stops at 3/3 (its own rule), BOIN by its elimination
        rule, a CRM only with a safety slot (``safety_cutoff``, ``stop_when_too_toxic``, ...); a design that
        keeps treating at the lowest tier, or stops for another reason (``max_n``), has no safety stop.
        """
        c = max(int(self.cohort_size), 1)
        m = np.arange(c, int(self.max_n) + 1, c, dtype=np.int32)[:200]
        if m.size == 0:
            return False
        n = np.zeros((m.size, self.n_tiers), dtype=np.int32)
        n[:, 0] = m
        zero = np.zeros(m.size, dtype=np.int32)
        state = TrialState.from_counts(n, n, zero, e=n, ye=n, last_n=np.full(m.size, c), last_y=np.full(m.size, c),
                                       phase=zero, aux=zero)
        d = self.step(state)
        return bool((d.stop & np.isin(d.reason, NO_DOSE_REASONS)).any())

    # -- the decision grid (what protocols print) ----------------------------
    def decision_grid(self, max_n: int | None = None) -> dict[int, tuple[str, ...]] | None:
        """Decision letter for every (n, y) at the current tier, from the kernel itself.

        ``{n: (letter for y = 0, ..., letter for y = n)}`` for each n of
        :meth:`grid_sizes` (1..``max_n``, default the design's ``max_n``);
        letters of :data:`GRID_WORDS` (E escalate, S stay, D de-escalate, DU
        de-escalate and eliminate this tier and those above). ``None`` where
        decisions depend on more than (n, y): designs not tagged
        :attr:`decides_on_current_tier` (model-based designs), and designs
        that use efficacy, the last cohort or time to event.

        Derived from the kernel on one-tier states (n patients, y DLTs at the
        current tier, a tier below and a tier above untried), so the table
        cannot drift from the kernel. A design may override this (its
        published grid, or the grid of its main phase).
        """
        if not self.decides_on_current_tier or self.uses_efficacy or self.uses_last_cohort or self.time_to_event:
            return None
        return derived_grid(self, max_n)

    def pending_grid(self) -> dict[tuple[int, int], tuple[str, ...]] | None:
        """For designs that decide from the patients, DLTs and pending patients at the current tier (rolling
        six): ``{(n enrolled, m pending): (letter for y = 0, ..., letter for y = n - m)}`` with the letters of
        :data:`GRID_WORDS` and W (suspend accrual). None (default) for every other design."""
        return None

    def grid_sizes(self, max_n: int) -> list[int]:
        """The patient counts at a tier at which the design decides (rows of :meth:`decision_grid`)."""
        return list(range(1, max_n + 1))

    def decision_words(self) -> dict[str, str]:
        """What each letter of :meth:`decision_grid` means for this design, in legend order."""
        return dict(GRID_WORDS)

    # -- the kernel ---------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:  # pragma: no cover - overridden
        """The design's own rule for every trial of ``state``."""
        raise NotImplementedError

    def select(self, state: TrialState) -> np.ndarray:  # pragma: no cover - overridden
        """Final tier (0-based, -1 for none) of each trial, shape ``(n_trials,)``."""
        raise NotImplementedError

    def with_backfill(self, backfill=None, **options):
        """This design with backfill cohorts (:func:`doseesc.backfill.with_backfill`): a
        :class:`~doseesc.backfill.BackfilledDesign` that :func:`doseesc.simulate_backfill` runs in calendar time."""
        return _with_backfill(self, backfill, **options)

    def merge_key(self, state: TrialState) -> np.ndarray | None:
        """Columns that fully determine this design's future decisions and final choice, for merging
        states in the exact engine; None (default) merges on every count, responses included."""
        return None

    def admissible(self, state: TrialState) -> np.ndarray:
        """Tiers still open to treatment, shape ``(n_trials, n_tiers)`` (default: all)."""
        return np.ones(state.n.shape, dtype=bool)

    def conclude(self, state: TrialState, reason: np.ndarray) -> np.ndarray:
        """Final tier of stopped trials: :meth:`select`, or no dose after a stop whose reason selects none."""
        sel = self.select(state)
        return np.where(np.isin(reason, _SLOT_NO_DOSE), -1, sel).astype(np.int32)

    def check_state(self, state: TrialState) -> None:
        """Raise :class:`DesignError` if a (single-trial) state cannot arise under this design."""

    def step(self, state: TrialState) -> Decision:
        """Decision after a completed cohort: the design's rule, then the rule slots (see class doc)."""
        d = self.decide(state)
        self._check_size(d)
        n_trials, k = state.n.shape
        stop = d.stop.copy()
        reason = d.reason.astype(np.int8)          # astype copies
        fired = d.fired.astype(np.int16)
        fired |= stop * _DESIGN_STOP_BIT
        nxt = np.where(stop, -1, d.next).astype(np.int32)
        go = ~stop
        # 2a. no skipping of untried tiers when escalating
        if self.forbid_skip and not self.steps_by_one and go.any():
            tried = state.n > 0
            highest = np.where(tried, np.arange(k)[None, :], -1).max(axis=1)
            limit = np.maximum(highest + 1, self.start)
            held = go & (nxt > limit)
            if held.any():
                nxt = np.where(held, limit, nxt)
                fired[held] |= Rule.NO_SKIP
        # 2b. no skipping when de-escalating
        if self.forbid_skip_down:
            held = go & (nxt < state.current - 1)
            nxt = np.where(held, state.current - 1, nxt).astype(np.int32)
            fired[held] |= Rule.NO_SKIP_DOWN
        # 2c. per-tier cap
        if self.tier_cap is not None and go.any():
            rows = np.arange(n_trials)
            safe_next = np.clip(nxt, 0, k - 1)
            full = go & (state.n[rows, safe_next] >= self.tier_cap)
            if full.any():
                open_ = (state.n < self.tier_cap) & self.admissible(state)
                below = open_ & (np.arange(k)[None, :] <= safe_next[:, None])
                alt = np.where(below, np.arange(k)[None, :], -1).max(axis=1)
                fired[full] |= Rule.TIER_CAP
                nxt = np.where(full, alt, nxt)
                closed = full & (alt < 0)
                reason = np.where(closed & ~stop, np.int8(StopReason.TIER_CAP), reason).astype(np.int8)
                stop = stop | closed
        # 3. stopping rules (all evaluated; the first in order gives the reason)
        for flag, why, hit in self._stop_checks(state, d, nxt):
            fired |= flag
            reason = np.where(hit & ~stop, why, reason).astype(np.int8, copy=False)
            stop = stop | hit
        # 4. rescue tier before a no-dose stop
        if self.rescue is not None:
            r = self.rescue.tier - 1
            take = stop & np.isin(reason, NO_DOSE_REASONS) & (state.n[:, r] < self.rescue.n) \
                & (state.total_n < self.max_n)
            stop, reason = stop & ~take, np.where(take, np.int8(0), reason).astype(np.int8)
            nxt = np.where(take, r, nxt)
            fired[take] |= Rule.RESCUE
        nxt = np.where(stop, -1, nxt).astype(np.int32)
        size = d.size
        wait = None if d.wait is None else d.wait & ~stop
        return Decision(next=nxt, stop=stop, reason=reason, fired=fired, size=size, wait=wait)

    def _check_size(self, d: Decision) -> None:
        """Refuse a kernel's cohort larger than :attr:`max_size` (the engines size their arrays by it)."""
        if d.size is None:
            return
        size = np.asarray(d.size)
        over = size > self.max_size
        if d.stop is not None and np.shape(d.stop) == size.shape:
            over = over & ~np.asarray(d.stop, dtype=bool)
        if over.any():
            raise KernelContractError(
                f"{type(self).__name__} ({self.kind}): its kernel asked for a cohort of {int(size[over].max())} "
                f"patients, above its max_size = {self.max_size}; a design with variable cohorts must override "
                "max_size with the largest cohort decide() can return")

    def _stop_checks(self, state: TrialState, d: Decision, nxt: np.ndarray) -> list:
        """Step 3's rules in the fixed order: ``(bits, reason, mask)`` per rule, each of shape ``(n_trials,)``."""
        k = state.n.shape[1]
        checks = []
        if self.safety_cutoff is not None:
            a = 1 + state.y[:, 0]
            b = 1 + state.n[:, 0] - state.y[:, 0]
            post = special.betaincc(a, b, self.target)
            hit = (state.n[:, 0] >= self.safety_min_n) & (post > self.safety_cutoff)
            checks.append((np.where(hit, np.int16(Rule.SAFETY), np.int16(0)), np.int8(StopReason.SAFETY), hit))
        veto = None if self.demand is None else self.demand.veto(state, nxt)
        rule = self.stopping
        if rule is not None:
            down = d.down if d.down is not None else (d.next < state.current) & ~d.stop
            f = rule.evaluate(state, nxt, down, veto)
            safe = f.mask & np.isin(f.reason, NO_DOSE_REASONS)
            checks.append((f.bits, f.reason, safe))
        hit = state.total_n >= self.max_n
        checks.append((hit * _MAX_N_BIT, _MAX_N_REASON, hit))
        enough = False      # no stop on the patients at the next tier (a scalar: broadcast where it is read)
        if self.stop_n_at_tier is not None:
            rows = np.arange(state.n_trials)
            enough = (nxt >= 0) & (state.n[rows, np.clip(nxt, 0, k - 1)] >= self.stop_n_at_tier)
            hit = enough if veto is None else enough & ~veto
            checks.append((np.where(hit, np.int16(Rule.N_AT_TIER), np.int16(0)), np.int8(StopReason.N_AT_TIER), hit))
        if rule is not None:
            checks.append((np.int16(0), f.reason, f.mask & ~safe))
            if veto is not None:
                enough = enough | rule.evaluate(state, nxt, down).mask
        if veto is not None:
            held = veto & enough & (nxt >= 0) & ~np.logical_or.reduce([c[2] for c in checks])
            checks.append((np.where(held, np.int16(Rule.DEMAND_N), np.int16(0)), np.int8(0), np.zeros_like(held)))
        return checks

    # -- parameters ---------------------------------------------------------
    def to_dict(self) -> dict:
        """Parameters as a dict (``type`` first); rule slots only where set."""
        out = {"type": self.kind}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            v = getattr(self, f.name)
            if f.kw_only and f.name in _SLOT_DEFAULTS and v == _SLOT_DEFAULTS[f.name]:
                continue
            if f.name in ("stopping", "demand", "rescue"):
                v = v.to_dict()
                v = v["any_of"] if f.name == "stopping" and list(v) == ["any_of"] else v
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def rules_text(self) -> str:
        """The rule slots in plain words."""
        parts = []
        if self.safety_cutoff is not None:
            parts.append(f"safety stop if P(DLT rate at the lowest tier > {self.target:g}) > "
                         f"{self.safety_cutoff:g} with >= {self.safety_min_n} patients there")
        if self.stop_n_at_tier is not None:
            parts.append(f"stop when the recommended tier has {self.stop_n_at_tier} patients")
        if self.stopping is not None:
            parts += [r.text for r in (self.stopping.rules if self.stopping.word == "any_of" else (self.stopping,))]
        if self.demand is not None:
            parts.append(self.demand.text)
        if self.rescue is not None:
            parts.append(self.rescue.text)
        if self.tier_cap is not None:
            parts.append(f"at most {self.tier_cap} patients per tier")
        parts.append("no skipping of untried tiers" if self.forbid_skip else "skipping allowed")
        if self.forbid_skip_down:
            parts.append("no skipping when de-escalating")
        parts.append(f"at most {self.max_n} patients")
        return "; ".join(parts)

    def describe(self) -> str:
        """The design's rules in plain words."""
        return self.label


#: Letters of a decision grid and their meaning.
GRID_WORDS = {"E": "escalate", "S": "stay", "D": "de-escalate", "DU": "de-escalate and eliminate"}


def grid_probe(design: Design, max_n: int) -> Design:
    """The design as :func:`derived_grid` runs it: room for ``max_n`` patients at a tier and at least 3
    tiers (one below and one above the current tier), where those are parameters of the design."""
    init = {f.name for f in dataclasses.fields(design) if f.init}
    changes = {}
    if "max_n" in init and design.max_n < max_n:
        changes["max_n"] = max_n
    if "n_tiers" in init and design.n_tiers < 3:
        changes["n_tiers"] = 3
    return dataclasses.replace(design, **changes) if changes else design


def derived_grid(design: Design, max_n: int | None = None) -> dict[int, tuple[str, ...]] | None:
    """:meth:`Design.decision_grid` from the kernel, run on every one-tier state.

    Each state has n patients and y DLTs at tier 2 (0-based 1) of the probe
    design (:func:`grid_probe`), the tiers below and above untried. The
    design's own rule (:meth:`Design.decide`, with the cohort-size check of
    :meth:`Design.step`; the rule slots are not the design's rule and would
    only stop at ``max_n``) gives the next tier, and the next tier the
    letter: above E, same S, below D, or DU when the current tier is closed
    (:meth:`Design.admissible`). None if the kernel stops on such a state
    (the grid cannot say it).
    """
    sizes = design.grid_sizes(design.max_n if max_n is None else max_n)
    probe = grid_probe(design, max(sizes))
    if probe.n_tiers < 3 or probe.max_n < max(sizes):
        return None
    ns = np.concatenate([np.full(n + 1, n) for n in sizes]).astype(np.int32)
    ys = np.concatenate([np.arange(n + 1) for n in sizes]).astype(np.int32)
    n = np.zeros((ns.size, probe.n_tiers), dtype=np.int32)
    y = np.zeros_like(n)
    n[:, 1], y[:, 1] = ns, ys
    state = TrialState.from_counts(n, y, np.ones(ns.size, dtype=np.int32))
    d = probe.decide(state)
    probe._check_size(d)
    if d.stop.any():
        return None
    closed = ~probe.admissible(state)[:, 1]
    letters = np.where(d.next > 1, "E", np.where(d.next == 1, "S", np.where(closed, "DU", "D")))
    out, i = {}, 0
    for m in sizes:
        out[int(m)] = tuple(str(c) for c in letters[i: i + m + 1])
        i += m + 1
    return out


_SLOT_DEFAULTS = {"stop_n_at_tier": None, "tier_cap": None, "forbid_skip": True,
                  "safety_cutoff": None, "safety_min_n": 3, "forbid_skip_down": False, "stopping": None,
                  "demand": None, "rescue": None}

REGISTRY: dict[str, type[Design]] = {}


def register(cls: type[Design]) -> type[Design]:
    """Class decorator: add a design class to :data:`REGISTRY` under its ``kind``.

    Refuses an empty kind, a kind already registered by another class, and a
    class that does not provide the required common members (``n_tiers``,
    ``cohort_size``, ``max_n``) as dataclass fields or properties.
    """
    if not cls.kind:
        raise DesignError(f"{cls.__qualname__} has no kind (the type name in scenario files)")
    other = REGISTRY.get(cls.kind)
    if other is not None and other is not cls:
        raise DesignError(f"design type {cls.kind!r} is already registered by {other.__module__}.{other.__qualname__}; "
                          f"{cls.__module__}.{cls.__qualname__} cannot register it again")
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name in ("n_tiers", "cohort_size", "max_n"):
        if name not in fields and isinstance(inspect.getattr_static(cls, name, None), Declared):
            raise DesignError(f"{cls.__qualname__} ({cls.kind!r}) does not declare {name!r} as a field or a property")
    REGISTRY[cls.kind] = cls
    return cls


def design_from_dict(d: dict) -> Design:
    """Build a design from ``{"type": ..., **parameters}``; clear errors on unknown keys."""
    d = dict(d)
    kind = d.pop("type", None)
    if kind is None:
        raise DesignError(f"missing key 'type' (one of: {', '.join(sorted(REGISTRY))})")
    if kind not in REGISTRY:
        raise DesignError(f"type = {kind!r} is not a known design (known: {', '.join(sorted(REGISTRY))})")
    cls = REGISTRY[kind]
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in d:
        if key not in names:
            raise DesignError(f"unknown option {key!r} for design type {kind!r} (options: {', '.join(names)})")
    for f in dataclasses.fields(cls):
        if f.init and f.name not in d and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            raise DesignError(f"missing option {f.name!r} for design type {kind!r}"
                              + (" (the maximum number of patients; or set max_n in [protocol])"
                                 if f.name == "max_n" else ""))
    return cls(**d)
