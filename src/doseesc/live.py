"""What to do next in a running trial: ``recommend(design, "1NNN 2NTN")``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .designs.base import Design
from .errors import DesignError, DeviationWarning, OutcomeError
from .outcomes import Cohort, format_outcomes, parse_outcomes
from .state import StopReason, TrialState
from .tiers import DoseLadder


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

    @property
    def message(self) -> str:
        lab = self.ladder.label
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
                lines.append(f"  {label}: {self.y[t]} DLT / {self.n[t]} patients")
        for d in self.deviations:
            lines.append(f"  note: {d}")
        return "\n".join(lines)


def recommend(design: Design, outcomes: str | list[Cohort], ladder: DoseLadder | None = None,
              warn: bool = True) -> Recommendation:
    """The design's next step after the observed ``outcomes``.

    ``outcomes`` is a trial log such as ``"1NNN 2NTN"``. The log is replayed
    cohort by cohort through the same decision kernel the simulation engines
    use; cohorts where the log departs from the design's recommendation are
    reported in ``deviations`` (and as a :class:`DeviationWarning` if
    ``warn``). An incomplete last cohort yields "complete the cohort".
    """
    if not isinstance(design, Design):
        raise DesignError(f"design = {design!r} is not a doseesc design")
    ladder = ladder if ladder is not None else DoseLadder.unlabelled(design.n_tiers)
    if ladder.n_tiers != design.n_tiers:
        raise DesignError(f"the ladder has {ladder.n_tiers} tiers but the design has {design.n_tiers}")
    cohorts = parse_outcomes(outcomes, design.n_tiers) if isinstance(outcomes, str) else list(outcomes)
    text = format_outcomes(cohorts)
    k = design.n_tiers
    total = sum(c.size for c in cohorts)
    if total > design.max_n:
        raise OutcomeError(f"outcomes {text!r} has {total} patients, more than max_n = {design.max_n}")

    deviations = []
    n = np.zeros(k, dtype=np.int64)
    y = np.zeros(k, dtype=np.int64)
    e = np.zeros(k, dtype=np.int64)
    ye = np.zeros(k, dtype=np.int64)
    phase = aux = 0
    expected = design.start
    size = design.first_size
    stopped = None
    for i, c in enumerate(cohorts):
        last = i == len(cohorts) - 1
        if c.size > size or (c.size < size and not last):
            raise OutcomeError(
                f"outcomes {text!r}: cohort {i + 1} {str(c)!r} has {c.size} patients; "
                f"{design.label} treats a cohort of {size} there")
        if stopped is not None:
            deviations.append(f"cohort {i + 1} ({c}) was treated after the design had stopped "
                              f"({stopped.text})")
            stopped = None
        elif c.tier != expected:
            deviations.append(f"cohort {i + 1} ({c}) was treated at {ladder.label(c.tier)}; "
                              f"the design recommended {ladder.label(expected)}")
        n[c.tier] += c.size
        y[c.tier] += sum(c.tox)
        e[c.tier] += sum(c.eff)
        ye[c.tier] += sum(t and r for t, r in zip(c.tox, c.eff))
        if c.size < size and n.sum() < design.max_n:
            # incomplete last cohort: no decision yet
            rec = Recommendation(design.label, text, c.tier, False, StopReason.NOT_STOPPED, None,
                                 tuple(int(v) for v in n), tuple(int(v) for v in y), ladder,
                                 incomplete=size - c.size, deviations=tuple(deviations))
            _warn(rec, warn)
            return rec
        state = TrialState.from_counts(n, y, c.tier, e=e, last_n=c.size, last_y=sum(c.tox), ye=ye,
                                       phase=phase, aux=aux)
        design.check_state(state)
        decided_on = state
        dec = design.step(state)
        if dec.phase is not None:
            phase = int(dec.phase[0])
        if dec.aux is not None:
            aux = int(dec.aux[0])
        if dec.stop[0]:
            stopped = StopReason(int(dec.reason[0]))
            expected = -1
        else:
            expected = int(dec.next[0])
            size = design.cohort_size if dec.size is None else int(dec.size[0])
    if not cohorts:
        rec = Recommendation(design.label, text, design.start, False, StopReason.NOT_STOPPED, None,
                             (0,) * k, (0,) * k, ladder)
        return rec
    if stopped is not None:
        sel = int(design.conclude(decided_on, np.array([int(stopped)]))[0])
        rec = Recommendation(design.label, text, -1, True, stopped, sel, tuple(int(v) for v in n),
                             tuple(int(v) for v in y), ladder, deviations=tuple(deviations))
    else:
        rec = Recommendation(design.label, text, expected, False, StopReason.NOT_STOPPED, None,
                             tuple(int(v) for v in n), tuple(int(v) for v in y), ladder,
                             deviations=tuple(deviations))
    _warn(rec, warn)
    return rec


def _warn(rec: Recommendation, warn: bool) -> None:
    if warn and rec.deviations:
        warnings.warn("; ".join(rec.deviations), DeviationWarning, stacklevel=3)
