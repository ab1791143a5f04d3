"""Dose tiers: labels, nominal doses with their unit, tolerance band."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ScenarioError

#: Days per month (accrual rates are per month; durations are shown in months of this length).
DAYS_PER_MONTH = 365.25 / 12


def format_dose(value: float, unit: str = "") -> str:
    """Compact human label of a dose: ``3e5 cells/kg``, ``2.5e6 cells/kg``, ``50 mg``."""
    if value == 0:
        text = "0"
    else:
        exp = int(math.floor(math.log10(abs(value))))
        if -2 <= exp <= 3:
            text = f"{value:g}"
        else:
            mant = value / 10 ** exp
            mant_text = f"{mant:.3g}"
            if mant_text == "10":
                mant_text, exp = "1", exp + 1
            text = f"{mant_text}e{exp}"
    return f"{text} {unit}".strip()


@dataclass(frozen=True)
class DoseLadder:
    """The dose tiers of a protocol.

    Parameters
    ----------
    doses
        Nominal dose of each tier, strictly increasing and positive.
    unit
        Unit of ``doses``, e.g. ``"cells/kg"``. Kept explicit in every label.
    labels
        Optional names of the tiers; default: the formatted dose with unit.
    tolerance
        Release tolerance as a fraction of nominal (0.20 means a product
        between 0.8x and 1.2x nominal counts as that tier), or ``None``.
    """

    doses: tuple[float, ...]
    unit: str = ""
    labels: tuple[str, ...] | None = None
    tolerance: float | None = None
    _labels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.doses, (str, bytes)) or any(isinstance(d, (bool, np.bool_, str, bytes))
                                                       for d in np.atleast_1d(np.asarray(self.doses, dtype=object))):
            raise ScenarioError(f"doses = {self.doses!r}: expected a list of numbers")
        try:
            doses = tuple(float(d) for d in self.doses)
        except (TypeError, ValueError):
            raise ScenarioError(f"doses = {self.doses!r}: expected a list of numbers") from None
        if len(doses) == 0:
            raise ScenarioError("doses: at least one tier is needed")
        for i, d in enumerate(doses):
            if not math.isfinite(d) or d <= 0:
                raise ScenarioError(f"doses[{i}] = {d:g} must be a positive number")
        for i in range(1, len(doses)):
            if doses[i] <= doses[i - 1]:
                raise ScenarioError(
                    f"doses[{i}] = {doses[i]:g} is not above doses[{i - 1}] = {doses[i - 1]:g}: "
                    "tiers must be strictly increasing")
        object.__setattr__(self, "doses", doses)
        if not isinstance(self.unit, str):
            raise ScenarioError(f"unit = {self.unit!r} must be a string")
        if self.tolerance is not None:
            tol = self.tolerance
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol < 1):
                raise ScenarioError(f"tolerance = {tol!r} must be a fraction in [0, 1), e.g. 0.20 for ±20%")
            object.__setattr__(self, "tolerance", float(tol))
        if self.labels is not None:
            if isinstance(self.labels, (str, bytes)) or not all(isinstance(x, str) for x in self.labels):
                raise ScenarioError(f"labels = {self.labels!r}: expected a list of names, one per tier")
            labels = tuple(self.labels)
            if len(labels) != len(doses):
                raise ScenarioError(f"labels has {len(labels)} entries but there are {len(doses)} tiers")
            if len(set(labels)) != len(labels):
                raise ScenarioError(f"labels = {list(labels)} must be distinct")
            object.__setattr__(self, "labels", labels)
            names = labels
        else:
            names = tuple(format_dose(d, self.unit) for d in doses)
        object.__setattr__(self, "_labels", names)

    @classmethod
    def unlabelled(cls, n_tiers: int) -> "DoseLadder":
        """A ladder of ``n_tiers`` tiers with no stated dose: labels ``Tier 1`` ..."""
        return cls(doses=tuple(range(1, n_tiers + 1)), unit="",
                   labels=tuple(f"Tier {i + 1}" for i in range(n_tiers)))

    @property
    def n_tiers(self) -> int:
        return len(self.doses)

    @property
    def tier_labels(self) -> tuple[str, ...]:
        """People's names of the tiers, in the protocol's units."""
        return self._labels

    def label(self, tier: int) -> str:
        """Label of 0-based ``tier``; ``-1`` is ``"No dose"``."""
        return "No dose" if tier < 0 else self._labels[tier]

    def band(self) -> np.ndarray:
        """Lower and upper release limits per tier, shape ``(n_tiers, 2)``."""
        d = np.asarray(self.doses)
        tol = self.tolerance or 0.0
        return np.column_stack([d * (1 - tol), d * (1 + tol)])

    def to_dict(self) -> dict:
        out = {"doses": list(self.doses), "unit": self.unit}
        if self.labels is not None:
            out["labels"] = list(self.labels)
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance
        return out
