"""The optimal biological dose (OBD): utility of the four patient outcomes and the true OBD of a scenario."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ScenarioError
from .scenario import Scenario

#: Utility points within which two tiers' true utilities count as a near-tie: the true OBD is then
#: fragile (a small change of the assumed truth changes it), so P(true OBD) is read with
#: ``p_within_margin`` and ``expected_utility`` beside it (metrics.md).
UTILITY_MARGIN = 5.0

RULES = {
    "admissible": "the tier with the highest true utility among tiers with P(DLT) <= phi_t and "
                  "P(response) >= phi_e (no OBD if none)",
    "below_mtd": "the tier with the highest true utility among tiers at or below the true MTD "
                 "(highest tier with P(DLT) <= phi_t; no OBD if none)",
}


@dataclass(frozen=True)
class OBDDefinition:
    """How the true OBD of a scenario is defined.

    ``utility`` scores the four outcomes (N neither, T DLT only, E response
    only, B both); BOIN12's defaults are N 40, T 0, E 100, B 60. The true
    utility of a tier is the expected score under the scenario's joint outcome
    probabilities. ``rule`` is ``"admissible"`` (BOIN12's definition, default)
    or ``"below_mtd"``; ties go to the lower tier.
    """

    utility: tuple[float, float, float, float] = (40.0, 0.0, 100.0, 60.0)
    phi_t: float = 0.35
    phi_e: float = 0.25
    rule: str = "admissible"

    def __post_init__(self):
        vals = self.utility
        ok = isinstance(vals, (list, tuple)) and len(vals) == 4 and all(
            not isinstance(v, bool) and isinstance(v, (int, float)) and np.isfinite(v) for v in vals)
        if not ok:
            raise ScenarioError(f"utility = {vals!r} needs 4 finite numbers: neither, DLT only, response only, both")
        u = tuple(float(v) for v in vals)
        object.__setattr__(self, "utility", u)
        for key in ("phi_t", "phi_e"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ScenarioError(f"{key} = {v!r} must lie in (0, 1)")
        if not isinstance(self.rule, str) or self.rule not in RULES:
            raise ScenarioError(f"rule = {self.rule!r} must be one of {', '.join(RULES)}")

    def true_utility(self, scenario: Scenario) -> np.ndarray:
        return scenario.joint() @ np.asarray(self.utility)

    def admissible(self, scenario: Scenario) -> np.ndarray:
        """Tiers the rule allows as the true OBD, shape ``(n_tiers,)`` (bool)."""
        pt = np.asarray(scenario.true_tox)
        if self.rule == "admissible":
            return (pt <= self.phi_t) & (np.asarray(scenario.true_eff) >= self.phi_e)
        below = np.flatnonzero(pt <= self.phi_t)
        ok = np.zeros(pt.size, dtype=bool)
        if below.size:
            ok[: below[-1] + 1] = True
        return ok

    def true_obd(self, scenario: Scenario) -> int:
        """True OBD (0-based; -1 for none): the admissible tier with the highest true utility."""
        u = self.true_utility(scenario)
        ok = self.admissible(scenario)
        if not ok.any():
            return -1
        return int(np.flatnonzero(ok)[np.argmax(u[ok])])

    def near_ties(self, scenario: Scenario, margin: float = UTILITY_MARGIN) -> list[tuple[int, float]]:
        """Admissible tiers other than the true OBD whose true utility is within ``margin`` of it.

        ``[(tier, utility), ...]`` (0-based tiers, lowest first); empty when the true OBD stands
        clear of every other admissible tier, or when there is no OBD.
        """
        best = self.true_obd(scenario)
        if best < 0:
            return []
        u = self.true_utility(scenario)
        ok = self.admissible(scenario)
        return [(int(t), float(u[t])) for t in np.flatnonzero(ok)
                if t != best and u[best] - u[t] <= margin]

    def near_tie_text(self, scenario: Scenario, labels=None, margin: float = UTILITY_MARGIN) -> str | None:
        """A one-line warning naming the near-tied tiers, or None where the true OBD is clear."""
        ties = self.near_ties(scenario, margin)
        if not ties:
            return None
        best = self.true_obd(scenario)
        u = self.true_utility(scenario)
        name = (lambda t: labels[t]) if labels is not None else (lambda t: f"tier {t + 1}")
        others = ", ".join(f"{name(t)} ({v:.1f})" for t, v in ties)
        return (f"near-tie in scenario {scenario.name!r}: true OBD {name(best)} (utility {u[best]:.1f}), "
                f"within {margin:g} points: {others}; read expected utility and P(within {margin:g} points) "
                f"beside P(true OBD)")

    def text(self) -> str:
        n, t, e, b = self.utility
        return (f"true OBD = {RULES[self.rule].replace('phi_t', f'{self.phi_t:g}').replace('phi_e', f'{self.phi_e:g}')}"
                f"; utility: response without DLT {e:g}, neither {n:g}, both {b:g}, DLT without response {t:g}")

    def to_dict(self) -> dict:
        return {"utility": list(self.utility), "phi_t": self.phi_t, "phi_e": self.phi_e, "rule": self.rule}


def resolve_obd(obd, design, scenario: Scenario) -> OBDDefinition | None:
    """The OBD definition of a run: explicit, else the design's own, else BOIN12's defaults (with true_eff)."""
    if obd is not None:
        if isinstance(obd, dict):
            return OBDDefinition(**obd)
        if not isinstance(obd, OBDDefinition):
            raise ScenarioError(f"obd = {obd!r} must be an OBDDefinition")
        return obd
    if scenario.true_eff is None:
        return None
    own = design.obd_definition   # declared on Design (None unless the design defines its own OBD)
    return own if own is not None else OBDDefinition()
