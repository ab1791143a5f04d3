"""Backfill cohorts: patients treated at a lower, already cleared tier while the escalation waits.

While the escalation cohort is followed through its observation window, patients who arrive would
otherwise wait for the next cohort (or be turned away). With a :class:`Backfill` they are treated at once at
a tier *below* the current tier that the escalation has already cleared (escalated from), and their
outcomes count toward that tier's toxicity and response data once their window is complete. The rules are
pinned in ``docs/notes/backfill.md`` (Zhao, Yuan et al. 2024, BF-BOIN; crmPack's ``Backfill``; Dehbi,
O'Quigley & Iasonos 2021) and summarised here:

- **Eligible tiers** (decided when each escalation cohort opens): below the current tier, cleared (the
  escalation has escalated from it), not closed, with at least ``min_responses`` responses observed there
  (complete response windows; BF-BOIN asks for 1, the default 0 asks for none), and, with ``tier_cap``,
  fewer than ``tier_cap`` patients there (BF-BOIN's ``n.cap``).
- **Which eligible tier** (``priority``): the highest (default; BF-BOIN and crmPack), the lowest, or one
  drawn at random (per patient, stream :attr:`~doseesc.rng.Stream.BACKFILL`).
- **Closing** (a closed tier closes every tier above it): a tier is closed while its complete data
  (escalation and backfill patients whose DLT window has ended) show an observed DLT rate at or above
  ``close_at`` (default: the design's target; 1/3 for designs without one), checked at every backfill
  arrival on the data complete then (as BF-BOIN re-checks its boundary); and a tier the escalation
  de-escalates from closes for good, with every tier above it. So a tier whose own data show too much
  toxicity is never backfilled.
- **Cap**: at most ``cap`` backfill patients per trial. Backfill patients count toward the design's
  ``max_n`` (the registered N): a backfill patient is enrolled only while at least one cohort's places
  (``cohort_size``) remain for the escalation. Backfill ends when the escalation stops.

This module is data and parsing only (no engine import): the engine is :mod:`doseesc.engines.backfill`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import DesignError

#: Which eligible tier a backfill patient is given (BF-BOIN's ``backfill.assign``, crmPack's ``priority``).
PRIORITIES = ("highest", "lowest", "random")
#: Observed DLT rate that closes a tier for a design without a target (3+3, A+B): 1 DLT in 3 patients.
DEFAULT_CLOSE_WITHOUT_TARGET = 1.0 / 3.0
_KEYS = ("cap", "priority", "close_at", "min_responses", "tier_cap")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class Backfill:
    """A backfill policy (see the module docstring for the rules).

    Parameters
    ----------
    cap
        Most backfill patients per trial (0: backfill off; the run is then today's calendar run bit for bit).
    priority
        ``"highest"`` (default), ``"lowest"`` or ``"random"`` eligible tier.
    close_at
        Observed DLT rate (complete data) at or above which a tier closes to backfill, with every tier above
        it; None: the design's target, or 1/3 for a design without one.
    min_responses
        Responses that must have been observed at a tier (complete response windows) before it opens to
        backfill (BF-BOIN: 1); 0 (default): none needed.
    tier_cap
        A tier with this many patients (escalation and backfill, pending included) takes no more backfill
        patients (BF-BOIN's ``n.cap``, 12 there); None (default): no per-tier limit.
    """

    cap: int
    priority: str = "highest"
    close_at: float | None = None
    min_responses: int = 0
    tier_cap: int | None = None

    def __post_init__(self):
        if not _is_int(self.cap) or self.cap < 0:
            raise DesignError(f"backfill cap = {self.cap!r} must be a whole number of patients, 0 or more")
        if self.cap > 100_000:
            raise DesignError(f"backfill cap = {self.cap!r} is above the limit of 100,000 patients")
        object.__setattr__(self, "cap", int(self.cap))
        if self.priority not in PRIORITIES:
            raise DesignError(f"backfill priority = {self.priority!r} must be one of {', '.join(PRIORITIES)}")
        if self.close_at is not None:
            c = self.close_at
            if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(c)) or not 0 < float(c) <= 1:
                raise DesignError(f"backfill close_at = {c!r} must be an observed DLT rate in (0, 1]")
            object.__setattr__(self, "close_at", float(c))
        if not _is_int(self.min_responses) or self.min_responses < 0:
            raise DesignError(f"backfill min_responses = {self.min_responses!r} must be a whole number, 0 or more")
        object.__setattr__(self, "min_responses", int(self.min_responses))
        if self.tier_cap is not None:
            if not _is_int(self.tier_cap) or self.tier_cap < 1:
                raise DesignError(f"backfill tier_cap = {self.tier_cap!r} must be a whole number of patients, "
                                  "1 or more")
            object.__setattr__(self, "tier_cap", int(self.tier_cap))

    @property
    def on(self) -> bool:
        """Whether any patient can be backfilled (``cap > 0``)."""
        return self.cap > 0

    def threshold(self, design) -> float:
        """The observed DLT rate that closes a tier under ``design``: :attr:`close_at`, else the design's
        target, else :data:`DEFAULT_CLOSE_WITHOUT_TARGET`."""
        if self.close_at is not None:
            return self.close_at
        target = getattr(design, "target", None)
        return DEFAULT_CLOSE_WITHOUT_TARGET if target is None else float(target)

    def to_dict(self) -> dict:
        """The options that differ from the defaults, ``cap`` always."""
        out = {"cap": self.cap}
        for f in dataclasses.fields(self)[1:]:
            v = getattr(self, f.name)
            if v != f.default:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict, where: str = "backfill") -> "Backfill":
        """A policy from a dict such as ``{"cap": 6, "priority": "lowest"}``; errors name ``where``, the key and
        the value."""
        if not isinstance(d, dict):
            raise DesignError(f"{where} = {d!r} must be a table such as {{ cap = 6 }}")
        unknown = [k for k in d if k not in _KEYS]
        if unknown:
            raise DesignError(f"{where}: unknown key {unknown[0]!r} = {d[unknown[0]]!r} (keys: {', '.join(_KEYS)})")
        if "cap" not in d:
            raise DesignError(f"{where}: needs cap (the most backfill patients per trial), e.g. {{ cap = 6 }}")
        try:
            return cls(**d)
        except DesignError as err:
            raise DesignError(f"{where}: {err}") from None

    def describe(self) -> str:
        """The policy in plain words."""
        close = "the design's target" if self.close_at is None else f"{self.close_at:g}"
        words = [f"backfill up to {self.cap} patients per trial at the {self.priority} eligible cleared tier "
                 f"below the current one", f"a tier closes (with those above) when its observed DLT rate "
                 f"reaches {close} or the escalation de-escalates from it"]
        if self.min_responses:
            words.append(f"a tier opens after {self.min_responses} response(s) there")
        if self.tier_cap is not None:
            words.append(f"at most {self.tier_cap} patients per tier")
        return "; ".join(words)


@dataclasses.dataclass(frozen=True)
class BackfilledDesign:
    """A design with a backfill policy (what :func:`with_backfill` returns until ``Design`` has a ``backfill``
    slot of its own). :func:`doseesc.engines.backfill.simulate_backfill` runs it."""

    design: object
    backfill: Backfill

    @property
    def label(self) -> str:
        return f"{self.design.label} + backfill (cap {self.backfill.cap})"

    def to_dict(self) -> dict:
        return {**self.design.to_dict(), "backfill": self.backfill.to_dict()}


def check_backfill_design(design) -> None:
    """Refuse designs the backfill engine cannot run (time-to-event designs decide on partial follow-up, and
    backfill data pending at a decision would need the same treatment): a :class:`DesignError` naming the
    design."""
    if getattr(design, "time_to_event", False):
        raise DesignError(f"backfill with the time-to-event design {design.label}: not supported (backfill runs "
                          "with designs that wait for complete cohorts: 3+3, BOIN, Keyboard, i3+3, CRM, BOIN12, "
                          "BOIN-ET, obd-pick ...)")
    if getattr(design, "fixed_cohorts", False):
        raise DesignError(f"backfill with {design.label}: not supported: its rules read complete cohorts of 3 or 6 "
                          "patients at a tier (3+3, A+B, an OBD pick or expansion on such a base), which backfill "
                          "patients would break; use an interval design (BOIN, Keyboard, i3+3, mTPI-2), CRM, "
                          "BOIN12, BOIN-ET, or an obd-pick on one of these")
    if getattr(design, "kind", "") == "expansion":
        raise DesignError(f"backfill with {design.label}: not supported yet: backfill patients count toward "
                          "max_n, so the base stage would pass its own N and stop the trial (an Expansion counts "
                          "the base's patients in total); use an obd-pick, or backfill the base design alone")


def with_backfill(design, backfill: Backfill | dict | None = None, **options) -> BackfilledDesign:
    """``design`` with the backfill policy ``backfill`` (a :class:`Backfill`, a dict, or keyword options such
    as ``cap=6, priority="lowest"``)."""
    if backfill is None:
        backfill = Backfill(**options) if options else None
        if backfill is None:
            raise DesignError("with_backfill: give a Backfill or its options, e.g. cap=6")
    elif options:
        raise DesignError("with_backfill: give either a Backfill or keyword options, not both")
    elif isinstance(backfill, dict):
        backfill = Backfill.from_dict(backfill)
    elif not isinstance(backfill, Backfill):
        raise DesignError(f"with_backfill: backfill = {backfill!r} must be a Backfill or a dict")
    check_backfill_design(design)
    return BackfilledDesign(design, backfill)


def backfill_from_toml(value, at: str) -> Backfill:
    """The ``backfill = { cap = ..., ... }`` key of a ``[[design]]`` table (``at`` names the file and table,
    e.g. ``"scenarios/x.toml: [[design]] 'BOIN12 + backfill'"``): a :class:`Backfill`, or a
    :class:`DesignError` naming ``at``, the key and the value. Backfill needs the calendar: the caller checks
    that the protocol has a ``[calendar]`` (:func:`check_calendar`)."""
    if not isinstance(value, dict):
        raise DesignError(f"{at}: backfill = {value!r} must be a table such as {{ cap = 6 }}")
    return Backfill.from_dict(value, where=f"{at}: backfill")


def check_calendar(calendar, at: str) -> None:
    """Backfill needs patients arriving in time: a :class:`DesignError` naming ``at`` without a calendar."""
    if calendar is None:
        raise DesignError(f"{at}: backfill needs a [calendar] (patients arriving in time): add one, or remove "
                          "the backfill key")


def check_backfill(backfill: Backfill, design, calendar, at: str, scenarios=(), dose_model=None) -> None:
    """The checks a file's ``backfill`` key needs once its design and calendar are known, each a
    :class:`DesignError` naming ``at`` (file and table): a [calendar] is required; the design must be one the
    engine runs (:func:`check_backfill_design`); no [actual_dose] model (the backfill engine does not draw
    products yet); ``min_responses`` needs response probabilities in every scenario of ``scenarios``."""
    check_calendar(calendar, at)
    if dose_model is not None:
        raise DesignError(f"{at}: backfill with the [actual_dose] model: not supported yet (the backfill engine "
                          "treats every patient at the nominal dose); remove one of them")
    try:
        check_backfill_design(design)
    except DesignError as err:
        raise DesignError(f"{at}: {err}") from None
    if backfill.min_responses:
        for sc in scenarios:
            if sc.true_eff is None:
                raise DesignError(f"{at}: backfill min_responses = {backfill.min_responses} needs response "
                                  f"probabilities (true_eff) in scenario {sc.name!r}")
