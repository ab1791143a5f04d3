"""Coherence (Cheung 2005, Biometrika 92:863): can a design escalate right after a DLT, or de-escalate
right after a cohort without one? Checked over every reachable trial state, for any design."""

from __future__ import annotations

from dataclasses import dataclass

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
    k = design.n_tiers
    n = np.zeros((1, k), dtype=np.int32)
    y = np.zeros((1, k), dtype=np.int32)
    cur = np.full(1, design.start, dtype=np.int32)
    size = np.full(1, design.first_size, dtype=np.int32)
    logs = [""]
    esc_ex = desc_ex = None
    checked = 0
    for _ in range(design.max_n + 1):
        if cur.size == 0:
            break
        room = np.minimum(size, design.max_n - n.sum(axis=1))
        rep = np.repeat(np.arange(cur.size), room + 1)
        dl = np.concatenate([np.arange(r + 1) for r in room])
        c = room[rep]
        nn, yy = n[rep].copy(), y[rep].copy()
        t = cur[rep]
        r = np.arange(rep.size)
        nn[r, t] += c
        yy[r, t] += dl
        dec = design.step(TrialState.from_counts(nn, yy, t, last_n=c, last_y=dl))
        checked += rep.size
        go = ~dec.stop
        up = go & (dec.next > t) & (dl > 0)
        down = go & (dec.next < t) & (dl == 0)
        new_logs = [(logs[rep[i]] + " " + format_cohort(int(t[i]), [False] * int(c[i] - dl[i]) + [True] * int(dl[i])))
                    .strip() for i in range(rep.size)]
        if esc_ex is None and up.any():
            esc_ex = new_logs[int(np.flatnonzero(up)[0])]
        if desc_ex is None and down.any():
            desc_ex = new_logs[int(np.flatnonzero(down)[0])]
        nxt_size = np.full(int(go.sum()), design.cohort_size) if dec.size is None else dec.size[go]
        keys = np.column_stack([nn[go], yy[go], dec.next[go], nxt_size, c[go], dl[go]])
        if keys.shape[0] > max_states:
            raise DoseescError(f"coherence check of {design.label} needs more than {max_states:,} states")
        uniq, first = np.unique(keys, axis=0, return_index=True)
        go_idx = np.flatnonzero(go)
        logs = [new_logs[go_idx[i]] for i in first]
        n, y, cur = uniq[:, :k], uniq[:, k:2 * k], uniq[:, 2 * k]
        size = uniq[:, 2 * k + 1]
    return Coherence(design=design.label, escalation_coherent=esc_ex is None, deescalation_coherent=desc_ex is None,
                     escalation_example=esc_ex, deescalation_example=desc_ex, states_checked=int(checked))
