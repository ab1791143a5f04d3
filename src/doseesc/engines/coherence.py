"""Coherence (Cheung 2005, Biometrika 92:863): can a design escalate right after a DLT, or de-escalate
right after a cohort without one? Checked over every reachable trial state, for any design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..designs.base import Design
from ..errors import DoseescError
from ..outcomes import format_cohort
from ..state import TrialState


@dataclass(frozen=True)
class Coherence:
    """Result of :func:`coherence`: flags and one example log for each kind of incoherence."""

    design: str
    escalation_coherent: bool
    deescalation_coherent: bool
    escalation_example: str | None
    deescalation_example: str | None
    states_checked: int

    @property
    def coherent(self) -> bool:
        return self.escalation_coherent and self.deescalation_coherent

    def __str__(self) -> str:
        lines = [f"{self.design}: checked {self.states_checked:,} reachable decisions"]
        lines.append("  coherent in escalation (never escalates right after a cohort with a DLT)"
                     if self.escalation_coherent else
                     f"  INCOHERENT in escalation: escalates after {self.escalation_example}")
        lines.append("  coherent in de-escalation (never de-escalates right after a cohort without a DLT)"
                     if self.deescalation_coherent else
                     f"  INCOHERENT in de-escalation: de-escalates after {self.deescalation_example}")
        return "\n".join(lines)


def coherence(design: Design, max_states: int = 2_000_000) -> Coherence:
    """Check every reachable decision of ``design`` for incoherent moves.

    States are enumerated as in the exact engine (identical states merged),
    keeping one example log per state; a decision is an incoherent escalation
    when the next tier is above the current one although the last cohort had
    a DLT, and an incoherent de-escalation when it is below although the last
    cohort had none.
    """
    if not isinstance(design, Design):
        raise DoseescError(f"design = {design!r} is not a doseesc design")
    state = TrialState.empty(1, design.n_tiers, design.start, size=design.first_size)
    logs = [""]
    esc_ex = desc_ex = None
    checked = 0
    for _ in range(design.max_n + 1):
        if state.n_trials == 0:
            break
        kids, dl = _children(design, state)
        child = kids.state
        dec = design.step(child)
        checked += dl.size
        t, c = child.current, child.last_n
        go = ~dec.stop
        up = go & (dec.next > t) & (dl > 0)
        down = go & (dec.next < t) & (dl == 0)
        new_logs = [(logs[p] + " " + format_cohort(int(t[i]), [False] * int(c[i] - dl[i]) + [True] * int(dl[i])))
                    .strip() for i, p in enumerate(kids.parent)]
        if esc_ex is None and up.any():
            esc_ex = new_logs[int(np.flatnonzero(up)[0])]
        if desc_ex is None and down.any():
            desc_ex = new_logs[int(np.flatnonzero(down)[0])]
        child.advance(dec, design.cohort_size)
        state, keep = _merge(design, child.take(go), max_states)
        go_idx = np.flatnonzero(go)
        logs = [new_logs[go_idx[i]] for i in keep]
    return Coherence(design=design.label, escalation_coherent=esc_ex is None, deescalation_coherent=desc_ex is None,
                     escalation_example=esc_ex, deescalation_example=desc_ex, states_checked=int(checked))


class _Kids(NamedTuple):
    state: TrialState      # each live state with one outcome of its next cohort added
    parent: np.ndarray     # index of the live state it came from


def _children(design: Design, state: TrialState) -> tuple[_Kids, np.ndarray]:
    """Every DLT count 0..c of each live state's next cohort of c (its size, within ``max_n``)."""
    room = np.minimum(state.size, design.max_n - state.total_n)
    rep = np.repeat(np.arange(state.n_trials), room + 1)
    dl = np.concatenate([np.arange(r + 1) for r in room])
    child = state.take(rep)
    child.add_cohort(room[rep], dl)
    return _Kids(child, rep), dl


def _merge(design: Design, state: TrialState, max_states: int) -> tuple[TrialState, np.ndarray]:
    """One state per distinct memory (counts, next tier and size, last cohort, multi-stage memory), and the
    index of the first state of each in ``state``."""
    keys = np.column_stack([state.n, state.y, state.current, state.size, state.last_n, state.last_y,
                            state.phase, state.aux])
    if keys.shape[0] > max_states:
        raise DoseescError(f"coherence check of {design.label} needs more than {max_states:,} states")
    _, first = np.unique(keys, axis=0, return_index=True)
    return state.take(first), first
