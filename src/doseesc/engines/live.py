"""What to do next in a running trial: ``recommend(design, "1NNN 2NTN")``."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._lazy import lazy
from ..designs.base import Design
from ..designs.selection import isotonic
from ..errors import DesignError, DeviationWarning, OutcomeError
from ..obd import OBDDefinition
from ..outcomes import Cohort, counts, format_outcomes, parse_outcomes
from ..state import StopReason, TrialState
from ..tiers import DoseLadder

pd = lazy("pandas")
stats = lazy("scipy.stats")


@dataclass(frozen=True)
class Recommendation:
    """The design's answer for a running trial.

    ``next_tier`` is 0-based (``-1`` when the trial stops); ``selected`` is the
    design's final choice when it stops (``-1``: no dose). ``deviations``
    lists the cohorts where the log departs from what the design would have
    done.
    """

    design: str
    outcomes: str
    next_tier: int
    stop: bool
    reason: StopReason
    selected: int | None
    n: tuple[int, ...]
    y: tuple[int, ...]
    ladder: DoseLadder
    incomplete: int = 0
    deviations: tuple[str, ...] = field(default=())
    #: The design's state after the log (one trial): counts per tier, the tier and size of the next cohort
    #: (of the rest of an incomplete cohort), the multi-stage ``phase`` and ``aux`` and the rules that fired,
    #: so that callers (``paths``) go on from it without replaying the log. None for time-to-event designs.
    state: TrialState | None = field(default=None, repr=False, compare=False)
    #: Time-to-event designs: accrual is suspended (wait for more follow-up before the next patient).
    wait: bool = False
    #: Time-to-event designs: patients still within the DLT window without a DLT (or, for designs that use
    #: response, within the response window without a response).
    pending: int = 0
    #: Designs that use response: responses (``E`` or ``B``) per tier in the log; None for toxicity-only designs.
    responses: tuple[int, ...] | None = field(default=None, repr=False, compare=False)
    #: Designs that use response: patients with both a DLT and a response (``B``) per tier; None otherwise.
    both: tuple[int, ...] | None = field(default=None, repr=False, compare=False)
    #: Designs that use response: the utility of the four outcomes (neither, DLT only, response only, both)
    #: the design scores tiers with (its own OBD definition, else BOIN12's 40/0/100/60).
    utility: tuple[float, float, float, float] | None = field(default=None, repr=False, compare=False)

    @property
    def responses_recorded(self) -> bool | None:
        """Designs that use response: whether the log records any response (an ``E`` or ``B``).

        A log of ``N`` and ``T`` only is read as "no patient has responded", which the
        design cannot tell from "responses not recorded"; :attr:`message` says so. None for
        toxicity-only designs.
        """
        if self.responses is None:
            return None
        return sum(self.responses) > 0 or sum(self.n) == 0

    def estimates(self, level: float = 0.95) -> pd.DataFrame:
        """End-of-trial estimates per tier, as R BOIN's ``select.mtd`` reports them.

        One row per tier: ``tier`` (1 = lowest), ``dose`` (its label), ``n``, ``dlt``,
        ``p_dlt_isotonic`` (weighted isotonic regression of ``(y + 0.05) / (n + 0.1)``
        over the tried tiers, weights ``1 / var`` of the Beta(y + 0.05, n - y + 0.05)
        posterior), ``ci_low`` and ``ci_high`` (the ``level`` credible limits of that
        posterior, each made monotone by the same weighted isotonic regression).
        Untried tiers have NaN estimates. Designs that use response add ``responses``,
        ``response_rate`` (observed, responses / n) and ``utility``: the observed mean utility
        of the tier's patients under the design's outcome utilities (:attr:`utility`), e.g.
        with 40/0/100/60 a tier with outcomes N, E, B scores (40 + 100 + 60) / 3 = 66.7.
        """
        if not 0 < level < 1:
            raise OutcomeError(f"level = {level!r} must be between 0 and 1 (e.g. 0.95)")
        n, y = np.asarray(self.n), np.asarray(self.y)
        est, low, high = isotonic_dlt(n, y, level)
        df = pd.DataFrame({"tier": np.arange(1, n.size + 1), "dose": list(self.ladder.tier_labels), "n": n,
                           "dlt": y, "p_dlt_isotonic": est, "ci_low": low, "ci_high": high})
        if self.responses is not None:
            e = np.asarray(self.responses)
            df["responses"] = e
            df["response_rate"] = np.where(n > 0, e / np.maximum(n, 1), np.nan)
            b = np.asarray(self.both)
            cells = np.stack([n - y - e + b, y - b, e - b, b])   # neither, DLT only, response only, both
            score = np.asarray(self.utility) @ cells
            df["utility"] = np.where(n > 0, score / np.maximum(n, 1), np.nan)
        return df

    @property
    def message(self) -> str:
        lab = self.ladder.label
        if self.wait:
            return (f"suspend accrual: wait for more follow-up of the {self.pending} pending patient(s) before "
                    f"treating the next patient (then at {lab(self.next_tier)} or as the design decides)")
        if self.stop and self.pending and self.selected is not None and self.selected >= 0:
            return (f"stop enrolling ({self.reason.text}); provisional choice {lab(self.selected)}: select when the "
                    f"{self.pending} pending patient(s) complete the DLT window")
        if self.incomplete:
            return (f"complete the cohort at {lab(self.next_tier)}: {self.incomplete} more patient(s) "
                    "before the next decision")
        if self.stop:
            sel = "no dose" if self.selected < 0 else lab(self.selected)
            return f"stop the trial ({self.reason.text}); selected: {sel}"
        return f"treat the next cohort at {lab(self.next_tier)}"

    def __str__(self) -> str:
        lines = [f"{self.design}, after {self.outcomes or '(no patients yet)'}:", f"  {self.message}"]
        for t, label in enumerate(self.ladder.tier_labels):
            if self.n[t]:
                resp = "" if self.responses is None else f", {self.responses[t]} response(s)"
                lines.append(f"  {label}: {self.y[t]} DLT / {self.n[t]} patients{resp}")
        if self.responses_recorded is False:
            lines.append(f"  note: no response (E or B) is recorded in the log; {self.design} reads every "
                         "patient as a non-responder. Record responses as E (response) or B (DLT and "
                         "response) as they are known")
        for d in self.deviations:
            lines.append(f"  note: {d}")
        return "\n".join(lines)


def recommend(design: Design, outcomes: str | list[Cohort], ladder: DoseLadder | None = None,
              warn: bool = True, follow_up=None, window: float | None = None, eff_follow_up=None,
              eff_window: float | None = None, doses=None) -> Recommendation:
    """The design's next step after the observed ``outcomes``.

    ``outcomes`` is a trial log such as ``"1NNN 2NTN"``. The log is replayed
    cohort by cohort through the same decision kernel the simulation engines
    use; cohorts where the log departs from the design's recommendation are
    reported in ``deviations`` (and as a :class:`DeviationWarning` if
    ``warn``). An incomplete last cohort yields "complete the cohort".

    Time-to-event designs (TITE-CRM, TITE-BOIN) take ``follow_up``: the days
    each patient of the log (in order) has been followed, or for a patient
    with a DLT (``T``) the day of the DLT, and ``window``, the DLT window in
    days. An ``N`` followed for less than the window is *pending*. The design
    then decides with the partial follow-up (possibly suspending accrual).
    Without ``follow_up`` every patient counts as complete.

    Time-to-event designs that use response (TITE-BOIN12) also take
    ``eff_follow_up``: the days each patient has been followed for response,
    or for a responder (``E`` or ``B``) the day of the response, and
    ``eff_window``, the response window in days (default: ``window``). A
    patient without a response followed for less than ``eff_window`` has a
    pending response.

    Designs fitted on each patient's own dose (BLRM: ``uses_patient_doses``) take ``doses``: the actual dose
    each patient of the log (in order) received, on the ladder's scale; the model is then fitted on those
    doses instead of the tiers' nominal ones.
    """
    if not isinstance(design, Design):
        raise DesignError(f"design = {design!r} is not a doseesc design")
    if doses is not None:
        if not getattr(design, "uses_patient_doses", False):
            raise DesignError(f"doses: {design.label} is fitted on counts per tier, not on each patient's dose; "
                              "only BLRM takes the patients' actual doses")
        if follow_up is not None:
            raise DesignError("doses and follow_up cannot be combined (no time-to-event design takes doses)")
    if follow_up is not None:
        return _with_responses(design, _recommend_tite(design, outcomes, ladder, follow_up, window, eff_follow_up,
                                                       eff_window))
    if eff_follow_up is not None:
        raise DesignError("eff_follow_up needs follow_up (each patient's days of DLT follow-up) as well")
    ladder = _ladder(design, ladder)
    cohorts = parse_outcomes(outcomes, design.n_tiers) if isinstance(outcomes, str) else list(outcomes)
    text = format_outcomes(cohorts)
    total = sum(c.size for c in cohorts)
    if total > design.max_n:
        raise OutcomeError(f"outcomes {text!r} has {total} patients, more than max_n = {design.max_n}")
    if doses is not None:
        doses = _patient_doses(doses, total, text)
    rec = _with_responses(design, _replay(design, cohorts, text, ladder, doses))
    _warn(rec, warn)
    return rec


def isotonic_dlt(n, y, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isotonic estimates of P(DLT) per tier and ``level`` credible limits (R BOIN ``select.mtd``'s ``p_est``).

    Each tried tier (``n > 0``) has the Beta(y + 0.05, n - y + 0.05) posterior; its mean
    ``(y + 0.05) / (n + 0.1)`` and its two quantiles are each fitted by weighted isotonic
    regression over the tried tiers, weights ``1 / variance`` of that posterior. NaN at
    untried tiers.
    """
    n, y = np.asarray(n, float), np.asarray(y, float)
    tried = n > 0
    a, b = y + 0.05, n - y + 0.05
    var = a * b / ((n + 0.1) ** 2 * (n + 1.1))
    tail = (1 - level) / 2
    rows = np.stack([a / (n + 0.1), stats.beta.ppf(tail, a, b), stats.beta.ppf(1 - tail, a, b)])
    w = np.broadcast_to(1.0 / var, rows.shape)
    fit = isotonic(rows, w, np.broadcast_to(tried, rows.shape))
    return fit[0], fit[1], fit[2]


def _with_responses(design: Design, rec: Recommendation) -> Recommendation:
    """``rec`` with its responses per tier (read from its log) when the design uses response."""
    if not design.uses_efficacy:
        return rec
    cohorts = parse_outcomes(rec.outcomes, design.n_tiers)
    _, _, e = counts(cohorts, design.n_tiers)
    b = np.zeros(design.n_tiers, dtype=np.int64)
    for c in cohorts:
        b[c.tier] += sum(t and r for t, r in zip(c.tox, c.eff))
    own = design.obd_definition
    utility = (own if own is not None else OBDDefinition()).utility
    return dataclasses.replace(rec, responses=tuple(int(v) for v in e), both=tuple(int(v) for v in b),
                               utility=utility)


def _patient_doses(values, size: int, text: str) -> np.ndarray:
    """Each patient's actual dose (``doses`` of :func:`recommend`), refused unless one positive number each."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise OutcomeError(f"doses = {values!r}: give a list of the patients' actual doses, one per patient of the log")
    out = list(values)
    if len(out) != size:
        raise OutcomeError(f"doses has {len(out)} values but outcomes {text!r} has {size} patients")
    for i, v in enumerate(out):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(v) and v > 0):
            raise OutcomeError(f"doses[{i}] = {v!r} must be a positive dose")
    return np.asarray(out, dtype=float)


def _replay(design: Design, cohorts: list[Cohort], text: str, ladder: DoseLadder,
            doses: np.ndarray | None = None) -> Recommendation:
    """Replay the log cohort by cohort through the kernel, one transition per cohort, noting deviations; with
    ``doses`` (each patient's actual dose) the state carries them (``pt_dose``, ``pt_dlt``)."""
    state = TrialState.empty(1, design.n_tiers, design.start, size=design.first_size)
    if doses is not None:
        state.pt_dose = np.full((1, doses.size), np.nan)
        state.pt_dlt = np.zeros((1, doses.size), dtype=bool)
    seen = 0
    deviations = []
    stopped = decided_on = None
    for i, c in enumerate(cohorts):
        size = int(state.size[0])
        if c.size > size or (c.size < size and i < len(cohorts) - 1):
            raise OutcomeError(
                f"outcomes {text!r}: cohort {i + 1} {str(c)!r} has {c.size} patients; "
                f"{design.label} treats a cohort of {size} there")
        if stopped is not None:
            deviations.append(f"cohort {i + 1} ({c}) was treated after the design had stopped "
                              f"({stopped.text})")
            stopped = None
        elif c.tier != state.current[0]:
            deviations.append(f"cohort {i + 1} ({c}) was treated at {ladder.label(c.tier)}; "
                              f"the design recommended {ladder.label(int(state.current[0]))}")
        state.active[0] = True  # a cohort treated after a stop: the trial goes on (a deviation, noted above)
        state.current[0] = c.tier
        state.add_cohort(c.size, sum(c.tox), sum(c.eff), sum(t and r for t, r in zip(c.tox, c.eff)))
        if doses is not None:
            state.pt_dose[0, seen:seen + c.size] = doses[seen:seen + c.size]
            state.pt_dlt[0, seen:seen + c.size] = [bool(t) for t in c.tox]
        seen += c.size
        if c.size < size and state.total_n[0] < design.max_n:
            state.size[0] = size - c.size  # incomplete last cohort: no decision yet
            return _recommendation(design, text, ladder, state, None, deviations, incomplete=size - c.size)
        design.check_state(state)
        dec = design.step(state)
        if dec.stop[0]:
            stopped, decided_on = StopReason(int(dec.reason[0])), state.copy()
        state.advance(dec, design.cohort_size)
    sel = None if stopped is None else int(design.conclude(decided_on, np.array([int(stopped)]))[0])
    return _recommendation(design, text, ladder, state, stopped, deviations, selected=sel)


def _recommendation(design: Design, text: str, ladder: DoseLadder, state: TrialState, stopped, deviations,
                    selected=None, incomplete: int = 0) -> Recommendation:
    """The answer from the state after the log (``stopped``: the reason the design stopped, or None)."""
    counts = tuple(int(v) for v in state.n[0]), tuple(int(v) for v in state.y[0])
    if stopped is not None:
        return Recommendation(design.label, text, -1, True, stopped, selected, *counts, ladder,
                              deviations=tuple(deviations), state=state)
    return Recommendation(design.label, text, int(state.current[0]), False, StopReason.NOT_STOPPED, None, *counts,
                          ladder, incomplete=incomplete, deviations=tuple(deviations), state=state)


def _ladder(design: Design, ladder: DoseLadder | None) -> DoseLadder:
    """The dose ladder to label ``design``'s tiers with (unlabelled tiers when None), checked against it."""
    ladder = ladder if ladder is not None else DoseLadder.unlabelled(design.n_tiers)
    if ladder.n_tiers != design.n_tiers:
        raise DesignError(f"the ladder has {ladder.n_tiers} tiers but the design has {design.n_tiers}")
    return ladder


def _window(value, name: str, what: str):
    """A window in days, refused unless a positive number."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise OutcomeError(f"{name} = {value!r}: give the {what} in days (a positive number)")
    return value


def _events_within(days: list, events: list, window, name: str, event: str, where: str) -> None:
    """Refuse an event (DLT or response) dated after the end of its window."""
    for i, v in enumerate(days):
        if events[i] and v > window:
            raise OutcomeError(f"{name}[{i}] = {v!r}: patient {i + 1} has {event}, which must occur within the "
                               f"{where} ({window:g} days)")


def _days(values, name: str, size: int, text: str) -> list:
    days = list(values)
    if len(days) != size:
        raise OutcomeError(f"{name} has {len(days)} values but outcomes {text!r} has {size} patients")
    for i, v in enumerate(days):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not v >= 0:
            raise OutcomeError(f"{name}[{i}] = {v!r} must be a number of days >= 0")
    return days


def _recommend_tite(design: Design, outcomes, ladder, follow_up, window, eff_follow_up=None,
                    eff_window=None) -> Recommendation:
    """A time-to-event design's next step from the log and each patient's follow-up (days)."""
    if not design.time_to_event:
        raise DesignError(f"follow-up times apply to time-to-event designs (TITE-CRM, TITE-BOIN, TITE-BOIN12), not to "
                          f"{design.label}, which decides on complete cohorts")
    ladder = _ladder(design, ladder)
    _window(window, "window", "DLT window")
    cohorts = parse_outcomes(outcomes, design.n_tiers) if isinstance(outcomes, str) else list(outcomes)
    text = format_outcomes(cohorts)
    tiers = [c.tier for c in cohorts for _ in range(c.size)]
    tox = [bool(t) for c in cohorts for t in c.tox]
    eff = [bool(e) for c in cohorts for e in c.eff]
    days = _days(follow_up, "follow_up", len(tiers), text)
    uses_eff = design.uses_efficacy
    if uses_eff:
        if eff_follow_up is None:
            raise OutcomeError(f"{design.label} uses response: give eff_follow_up, the days each patient has been "
                               "followed for response (the response day for an E or B)")
        eff_window = _window(window if eff_window is None else eff_window, "eff_window", "response window")
        eff_days = _days(eff_follow_up, "eff_follow_up", len(tiers), text)
        _events_within(eff_days, eff, eff_window, "eff_follow_up", "a response", "response window")
    elif eff_follow_up is not None:
        raise DesignError(f"eff_follow_up applies to time-to-event designs that use response (TITE-BOIN12), not to "
                          f"{design.label}")
    _events_within(days, tox, window, "follow_up", "a DLT", "window")
    if len(tiers) > design.max_n:
        raise OutcomeError(f"outcomes {text!r} has {len(tiers)} patients, more than max_n = {design.max_n}")
    k = design.n_tiers
    if not cohorts:
        return Recommendation(design.label, text, design.start, False, StopReason.NOT_STOPPED, None, (0,) * k,
                              (0,) * k, ladder)
    frac = np.minimum(np.asarray(days, float) / float(window), 1.0)
    pt_tier = np.asarray(tiers)[None, :]
    pt_dlt = np.asarray(tox)[None, :]
    n = np.bincount(tiers, minlength=k)
    y = np.bincount(tiers, weights=tox, minlength=k).astype(int)
    e = np.bincount(tiers, weights=eff, minlength=k).astype(int)
    ye = np.bincount(tiers, weights=np.asarray(tox) & np.asarray(eff), minlength=k).astype(int)
    last = cohorts[-1]
    state = TrialState.from_counts(n, y, last.tier, e=e, last_n=last.size, last_y=sum(last.tox), ye=ye)
    state.pt_tier, state.pt_dlt, state.pt_follow = pt_tier, pt_dlt, frac[None, :]
    open_ = (~pt_dlt) & (frac[None, :] < 1)
    if uses_eff:
        pt_eff = np.asarray(eff, bool)[None, :]
        frac_e = np.minimum(np.asarray(eff_days, float) / float(eff_window), 1.0)[None, :]
        state.pt_eff, state.pt_eff_follow = pt_eff, frac_e
        open_ = open_ | ((~pt_eff) & (frac_e < 1))
    pending = int(open_.sum())
    dec = design.step(state)
    counts = (tuple(int(v) for v in n), tuple(int(v) for v in y))
    if dec.wait is not None and dec.wait[0]:
        return Recommendation(design.label, text, int(dec.next[0]), False, StopReason.NOT_STOPPED, None, *counts,
                              ladder, wait=True, pending=pending)
    if dec.stop[0]:
        why = StopReason(int(dec.reason[0]))
        complete = TrialState.from_counts(n, y, last.tier, e=e, ye=ye)
        sel = -1 if why == StopReason.LOWEST_TIER_TOXIC or why.no_dose else \
            int(design.conclude(complete, np.array([int(why)]))[0])
        return Recommendation(design.label, text, -1, True, why, sel, *counts, ladder, pending=pending)
    return Recommendation(design.label, text, int(dec.next[0]), False, StopReason.NOT_STOPPED, None, *counts, ladder,
                          pending=pending)


def _warn(rec: Recommendation, warn: bool) -> None:
    if warn and rec.deviations:
        warnings.warn("; ".join(rec.deviations), DeviationWarning, stacklevel=3)
