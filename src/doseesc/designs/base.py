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
from typing import ClassVar

import numpy as np

from ..errors import DesignError
from ..state import Decision, StopReason, TrialState


def check_int(value, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DesignError(f"{key} = {value!r} must be an integer")
    if value < minimum:
        raise DesignError(f"{key} = {value} must be at least {minimum}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Design:
    """Base class of designs.

    Subclasses set ``kind``, have the fields (or properties) ``n_tiers``,
    ``cohort_size`` and ``max_n``, and implement :meth:`decide` and
    :meth:`select`.
    """

    #: Name of the design type in scenario files (``type = "3+3"``).
    kind: ClassVar[str] = ""

    @property
    def label(self) -> str:
        """Short human name, e.g. ``3+3 (with de-escalation)``."""
        return self.kind

    @property
    def start(self) -> int:
        """Tier of the first cohort (0-based)."""
        return 0

    # -- the kernel ---------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:  # pragma: no cover - overridden
        """The design's own rule for every trial of ``state``."""
        raise NotImplementedError

    def select(self, state: TrialState) -> np.ndarray:  # pragma: no cover - overridden
        """Final tier (0-based, -1 for none) of each trial, shape ``(n_trials,)``."""
        raise NotImplementedError

    def check_state(self, state: TrialState) -> None:
        """Raise :class:`DesignError` if a (single-trial) state cannot arise under this design."""

    def step(self, state: TrialState) -> Decision:
        """Decision after a completed cohort: the design's rule, then the shared rules.

        Shared rules, applied after the design's own (whose stop reason wins):
        the trial stops once ``max_n`` patients have been treated.
        """
        d = self.decide(state)
        full = (state.total_n >= self.max_n) & ~d.stop
        if full.any():
            d.stop = d.stop | full
            d.reason = np.where(full, np.int8(StopReason.MAX_N), d.reason).astype(np.int8)
            d.next = np.where(full, -1, d.next)
        return d

    # -- parameters ---------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"type": self.kind}
        for f in dataclasses.fields(self):
            if f.init:
                out[f.name] = getattr(self, f.name)
        return out

    def describe(self) -> str:
        """The design's rules in plain words."""
        return self.label


REGISTRY: dict[str, type[Design]] = {}


def register(cls: type[Design]) -> type[Design]:
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
    return cls(**d)
