"""Scenario: the truth a simulation runs under."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ScenarioError


def _probabilities(values, key: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ScenarioError(f"{key} = {values!r}: expected a list of probabilities, one per tier")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ScenarioError(f"{key}[{i}] = {v!r} is not a number")
        v = float(v)
        if not math.isfinite(v) or v < 0 or v > 1:
            raise ScenarioError(f"{key}[{i}] = {v:g} is not a probability (must lie in [0, 1])")
        out.append(v)
    if not out:
        raise ScenarioError(f"{key}: at least one tier is needed")
    return tuple(out)


def plackett_joint(pt, pe, psi: float = 1.0) -> np.ndarray:
    """Joint outcome probabilities, shape ``(n, 4)``: columns N (neither), T (DLT only), E (response only),
    B (both), for marginals ``pt``, ``pe`` and Plackett odds ratio ``psi``."""
    pt = np.asarray(pt, dtype=float)
    pe = np.asarray(pe, dtype=float)
    if abs(psi - 1) < 1e-12:
        p11 = pt * pe
    else:
        a = 1 + (pt + pe) * (psi - 1)
        p11 = (a - np.sqrt(np.maximum(a * a - 4 * psi * (psi - 1) * pt * pe, 0))) / (2 * (psi - 1))
    p11 = np.clip(p11, np.maximum(0, pt + pe - 1), np.minimum(pt, pe))
    return np.column_stack([1 - pt - pe + p11, pt - p11, pe - p11, p11])


def true_mtd(true_tox, target: float) -> int:
    """The true MTD: the highest tier whose true P(DLT) <= ``target``; -1 if none."""
    ok = np.flatnonzero(np.asarray(true_tox) <= target)
    return int(ok[-1]) if ok.size else -1


def check_target(target, key: str = "target") -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not (0 < target < 1):
        raise ScenarioError(f"{key} = {target!r} must be a probability strictly between 0 and 1")
    return float(target)


@dataclass(frozen=True)
class Scenario:
    """True per-tier probabilities that a simulation runs under.

    Parameters
    ----------
    true_tox
        True P(DLT) of each tier.
    true_eff
        True P(response) of each tier (optional; used by OBD designs).
    name, description
        For tables and reports.
    target
        Target DLT rate used to define the true MTD (the highest tier whose
        true P(DLT) is at most ``target``, or no dose when the lowest tier
        exceeds it). Optional: a design's own target is used when this is
        ``None``.
    association
        Toxicity-response odds ratio psi (Plackett form, as in EffTox and the
        BOIN12 simulations): the joint probability of DLT and response solves
        p11 (1 - pT - pE + p11) / ((pT - p11)(pE - p11)) = psi. Default 1:
        independence. A patient's DLT is ``u_T < pT`` whatever psi; the
        response is ``u_E < P(E | DLT or not)``, so adding efficacy never
        changes the toxicity outcomes of the same patients.
    tox_curve, eff_curve
        Optional truth on the actual dose (see :mod:`doseesc.actual_dose`);
        build such a scenario with
        :func:`~doseesc.actual_dose.scenario_from_curves`, which sets
        ``true_tox``/``true_eff`` to the tier-averaged truth and
        ``nominal_tox``/``nominal_eff`` to the curves at the nominal doses.
    true_joint
        Tier-averaged joint outcome probabilities (N, T, E, B per tier), set
        for curve scenarios with efficacy; otherwise computed from the
        marginals and ``association``.
    """

    true_tox: tuple[float, ...]
    true_eff: tuple[float, ...] | None = None
    name: str = "scenario"
    description: str = ""
    target: float | None = None
    association: float = 1.0
    tox_curve: object | None = None
    eff_curve: object | None = None
    nominal_tox: tuple[float, ...] | None = None
    nominal_eff: tuple[float, ...] | None = None
    true_joint: tuple | None = None

    def __post_init__(self):
        tox = _probabilities(self.true_tox, "true_tox")
        object.__setattr__(self, "true_tox", tox)
        if self.true_eff is not None:
            eff = _probabilities(self.true_eff, "true_eff")
            if len(eff) != len(tox):
                raise ScenarioError(
                    f"true_eff has {len(eff)} tiers but true_tox has {len(tox)}: give one value per tier")
            object.__setattr__(self, "true_eff", eff)
        if self.target is not None:
            object.__setattr__(self, "target", check_target(self.target))
        a = self.association
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (0 < a < math.inf):
            raise ScenarioError(f"association = {a!r} must be a positive odds ratio (1 = independence)")
        object.__setattr__(self, "association", float(a))
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError(f"name = {self.name!r} must be a non-empty string")
        if self.eff_curve is not None and self.tox_curve is None:
            raise ScenarioError("eff_curve needs tox_curve: give both truths on the actual dose")
        if self.true_joint is not None:
            j = np.asarray(self.true_joint, dtype=float)
            if j.shape != (len(tox), 4) or self.true_eff is None or not np.all(np.isfinite(j)) or (j < -1e-12).any():
                raise ScenarioError("true_joint must give 4 non-negative outcome probabilities per tier, with true_eff")
            if not (np.allclose(j.sum(axis=1), 1, atol=1e-9) and np.allclose(j[:, 1] + j[:, 3], tox, atol=1e-9)
                    and np.allclose(j[:, 2] + j[:, 3], self.true_eff, atol=1e-9)):
                raise ScenarioError("true_joint does not agree with true_tox and true_eff")
            object.__setattr__(self, "true_joint", tuple(tuple(float(v) for v in row) for row in np.clip(j, 0, 1)))

    @property
    def n_tiers(self) -> int:
        return len(self.true_tox)

    def mtd(self, target: float) -> int:
        """The true MTD (0-based; -1 for no dose) for ``target``."""
        return true_mtd(self.true_tox, target)

    def joint(self) -> np.ndarray:
        """Joint outcome probabilities per tier, shape ``(n_tiers, 4)``: columns N (neither), T (DLT only),
        E (response only), B (both)."""
        if self.true_eff is None:
            raise ScenarioError(f"scenario {self.name!r} has no true_eff")
        if self.true_joint is not None:
            return np.array(self.true_joint, dtype=float)
        return plackett_joint(self.true_tox, self.true_eff, self.association)

    def response_given_tox(self) -> tuple[np.ndarray, np.ndarray]:
        """P(response | DLT) and P(response | no DLT) per tier."""
        j = self.joint()
        pt = np.asarray(self.true_tox)
        with np.errstate(invalid="ignore", divide="ignore"):
            given_t = np.where(pt > 0, j[:, 3] / np.where(pt > 0, pt, 1), np.asarray(self.true_eff))
            given_n = np.where(pt < 1, j[:, 2] / np.where(pt < 1, 1 - pt, 1), np.asarray(self.true_eff))
        return np.clip(given_t, 0, 1), np.clip(given_n, 0, 1)

    def to_dict(self) -> dict:
        out = {"name": self.name, "true_tox": list(self.true_tox)}
        if self.true_eff is not None:
            out["true_eff"] = list(self.true_eff)
        if self.description:
            out["description"] = self.description
        if self.target is not None:
            out["target"] = self.target
        if self.association != 1.0:
            out["association"] = self.association
        if self.tox_curve is not None:
            out["tox_curve"] = self.tox_curve.to_dict()
            out["nominal_tox"] = list(self.nominal_tox)
        if self.eff_curve is not None:
            out["eff_curve"] = self.eff_curve.to_dict()
            out["nominal_eff"] = list(self.nominal_eff)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Scenario":
        known = {"name", "true_tox", "true_eff", "description", "target", "association"}
        extra = sorted(set(d) - known)
        if extra:
            raise ScenarioError(f"unknown key {extra[0]!r} (known: {', '.join(sorted(known))})")
        if "true_tox" not in d:
            raise ScenarioError("missing key 'true_tox' (the true P(DLT) of each tier)")
        return cls(**d)
