"""mTPI, mTPI-2, Keyboard, TPI and i3+3: interval designs with their published decision rules.

All share :class:`~doseesc.designs.interval.IntervalDesign`: the decision at
the current tier from (n, y), elimination of a tier and all above when
P(p > target | data) > ``cutoff_eli`` (0.95) with at least ``elim_min_n`` (3)
patients there ("DU", de-escalate and eliminate; at the lowest tier the trial
stops with no MTD), one-tier moves, and isotonic MTD selection.

Where the papers leave a choice open, doseesc takes the convention of the
authors' software and says so in each class. An elimination always overrides
the interval decision (for target 0.30 and n <= 30 this never changes a cell).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from .base import check_prob, register
from .interval import D, E, S, IntervalDesign

special = lazy("scipy.special")


def _argmax_ties(values: np.ndarray, prefer_high: bool = False, rtol: float = 1e-9) -> np.ndarray:
    """Index of the largest value along axis 0; values within ``rtol`` of the largest count as ties,
    resolved to the first (or, with ``prefer_high``, the last) so that rounding cannot flip a tie."""
    best = values.max(axis=0)
    near = values >= best * (1 - rtol)
    if prefer_high:
        return values.shape[0] - 1 - np.argmax(near[::-1], axis=0)
    return np.argmax(near, axis=0)


def _edges(target: float, eps1: float, eps2: float) -> tuple[np.ndarray, int]:
    """Breakpoints of equal-width intervals around [target - eps1, target + eps2], cut at 0 and 1.

    Returns the edges (ascending, from 0 to 1) and the index of the equivalence interval.
    """
    w = eps1 + eps2
    lo, hi = target - eps1, target + eps2
    below = []
    x = lo
    while x > 1e-12:
        below.append(x)
        x -= w
    above = []
    x = hi
    while x < 1 - 1e-12:
        above.append(x)
        x += w
    edges = np.array([0.0] + sorted(below)[:-1] + [lo, hi] + above[1:] + [1.0])
    edges = np.unique(np.round(edges, 12))
    mid = int(np.flatnonzero(np.isclose(edges, lo))[0])
    return edges, mid


@dataclasses.dataclass(frozen=True)
class _EquivalenceInterval(IntervalDesign):
    eps1: float = dataclasses.field(default=0.05, kw_only=True)
    eps2: float = dataclasses.field(default=0.05, kw_only=True)

    def _validate(self) -> None:
        check_prob(self.eps1, "eps1")
        check_prob(self.eps2, "eps2")
        if not (self.eps1 < self.target < 1 - self.eps2):
            raise DesignError(f"the equivalence interval [target - eps1, target + eps2] = "
                              f"[{self.target - self.eps1:g}, {self.target + self.eps2:g}] must lie inside (0, 1)")


#: Final-selection tie rules (see :meth:`IntervalDesign.select` and ``closest_mean_ties``).
MTD_TIES = ("below", "mean")


@dataclasses.dataclass(frozen=True)
class _BetaPrior(IntervalDesign):
    """A Beta(``alpha``, ``beta``) prior on each tier's DLT rate and the final-selection tie rule ``mtd_ties``.

    ``mtd_ties = "below"``: of the tiers tied for the isotonic estimate closest
    to the target, the highest one below the target, else the lowest (R BOIN's
    ``select.mtd``; R escalation's reading of Ji et al. 2010). ``"mean"``: if
    the mean of the tied estimates is below the target, the highest tied tier,
    else the lowest (R escalation's reading of Guo et al. 2017). They differ
    only when tied tiers lie on both sides of the target.
    """

    alpha: float = dataclasses.field(default=1.0, kw_only=True)
    beta: float = dataclasses.field(default=1.0, kw_only=True)
    mtd_ties: str = dataclasses.field(default="below", kw_only=True)

    def _validate(self) -> None:
        super()._validate()
        for key in ("alpha", "beta"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v) or not v > 0:
                raise DesignError(f"{key} = {v!r} must be a positive number (the Beta(alpha, beta) prior)")
        if self.mtd_ties not in MTD_TIES:
            raise DesignError(f"mtd_ties = {self.mtd_ties!r} must be one of: {', '.join(map(repr, MTD_TIES))}")

    @property
    def elim_prior(self):
        return (self.alpha, self.beta)

    def _mtd_tie_rule(self) -> str:
        return self.mtd_ties

    def _options_text(self) -> str:
        """The prior and the tie rule in words, where they differ from the class defaults."""
        fields = {f.name: f.default for f in dataclasses.fields(self)}
        parts = []
        if (self.alpha, self.beta) != (fields["alpha"], fields["beta"]):
            parts.append(f"Beta({self.alpha:g}, {self.beta:g}) prior on the DLT rate")
        if self.mtd_ties != fields["mtd_ties"]:
            parts.append(f"MTD ties: {self.mtd_ties!r} rule")
        return "".join(p + "; " for p in parts)


@register
@dataclasses.dataclass(frozen=True)
class MTPI(_BetaPrior, _EquivalenceInterval):
    """Modified toxicity probability interval design (Ji, Liu, Li & Bekele 2010, Clin Trials 7:653).

    Posterior Beta(alpha + y, beta + n - y) at the current tier (default
    Beta(1, 1) prior, as the paper); the unit probability
    mass (posterior mass / interval length) of the under-dosing interval
    [0, target - eps1), the equivalence interval [target - eps1, target + eps2]
    and the over-dosing interval (target + eps2, 1]; the largest UPM decides
    E, S or D (exact ties to E, then S; values within a relative 1e-9 count as
    tied, e.g. target 0.25, n = 2, y = 1 gives UPM(S) = UPM(D) = 1.12 and S).
    Defaults eps1 = eps2 = 0.05. Elimination uses the same posterior.
    MTD: isotonic regression of the posterior means (same prior), weighted by
    inverse variance, closest to the target; ties by ``mtd_ties`` (default
    ``"below"``: R escalation's encoding of Ji et al. 2010; see
    docs/notes/interval-designs.md, section 8).
    """

    kind = "mTPI"

    @property
    def select_prior(self):
        return (self.alpha, self.beta)

    @property
    def label(self) -> str:
        return "mTPI"

    def _codes(self, n, y):
        a, b = self.alpha + y, self.beta + n - y
        lo, hi = self.target - self.eps1, self.target + self.eps2
        f_lo, f_hi = special.betainc(a, b, lo), special.betainc(a, b, hi)
        upm = np.stack([f_lo / lo, (f_hi - f_lo) / (hi - lo), (1 - f_hi) / (1 - hi)])
        return _argmax_ties(upm).astype(np.int8)

    def describe(self) -> str:
        return (f"mTPI, target {self.target:g}, equivalence interval [{self.target - self.eps1:g}, "
                f"{self.target + self.eps2:g}]: largest unit probability mass decides; eliminate if "
                f"P(DLT rate > {self.target:g}) > {self.cutoff_eli:g}; " + self._options_text() + self.rules_text())


@dataclasses.dataclass(frozen=True)
class _EqualWidthIntervals(_EquivalenceInterval):
    """mTPI-2's and Keyboard's rule: equal-width intervals around the equivalence interval, largest UPM."""

    def _region_codes(self, n, y, prefer_high: bool, prior=(1, 1)) -> np.ndarray:
        edges, mid = _edges(self.target, self.eps1, self.eps2)
        a, b = prior[0] + y, prior[1] + n - y
        cdf = special.betainc(a[None, :], b[None, :], edges[:, None])
        mass = np.diff(cdf, axis=0)
        upm = mass / np.diff(edges)[:, None]
        best = _argmax_ties(upm, prefer_high=prefer_high)
        return np.where(best < mid, E, np.where(best == mid, S, D)).astype(np.int8)

    def _rule_text(self, name: str, how: str) -> str:
        return (f"{name}, target {self.target:g}, equivalence interval [{self.target - self.eps1:g}, "
                f"{self.target + self.eps2:g}] and equal-width intervals around it: {how} decides; "
                f"eliminate if P(DLT rate > {self.target:g}) > {self.cutoff_eli:g}; ")


@register
@dataclasses.dataclass(frozen=True)
class MTPI2(_BetaPrior, _EqualWidthIntervals):
    """mTPI-2 (Guo, Wang, Yang, Lynn & Ji 2017, Contemp Clin Trials 58:23).

    As mTPI, but the under- and over-dosing regions are split into intervals of
    the equivalence interval's width (eps1 + eps2), built outwards from it and
    cut at 0 and 1 (the cut intervals keep their UPM over their actual length).
    Posterior Beta(alpha + y, beta + n - y) (default Beta(1, 1)), also for
    elimination. The interval with the largest UPM decides: below the
    equivalence interval E, the equivalence interval S, above D (exact ties to
    the lower interval, as the authors' software). MTD as R BOIN's
    ``select.mtd`` (the authors' software uses the same procedure; its
    Beta(0.05, 0.05) estimate whatever ``alpha``, ``beta``); ties by
    ``mtd_ties``, default ``"mean"``, the rule R escalation attributes to Guo et
    al. 2017 (docs/notes/interval-designs.md, section 8).
    """

    kind = "mTPI-2"
    mtd_ties: str = dataclasses.field(default="mean", kw_only=True)

    @property
    def label(self) -> str:
        return "mTPI-2"

    def _codes(self, n, y):
        return self._region_codes(n, y, prefer_high=False, prior=(self.alpha, self.beta))

    def describe(self) -> str:
        return (self._rule_text("mTPI-2", "the interval with the largest unit probability mass")
                + self._options_text() + self.rules_text())


@register
@dataclasses.dataclass(frozen=True)
class Keyboard(_EqualWidthIntervals):
    """Keyboard design (Yan, Mandrekar & Yuan 2017, Clin Cancer Res 23:3994).

    Keys of width eps1 + eps2 tile [0, 1] around the target key [target -
    eps1, target + eps2]; the end keys are scaled to full width. Under Beta(1 +
    y, 1 + n - y), the strongest key (largest posterior mass, exact ties to the
    higher key as R package Keyboard) below the target key means E, the target
    key S, above D. With equal-width keys this is mTPI-2's rule (Yan et al.
    note the equivalence); only exact ties differ. Elimination and MTD as BOIN.
    """

    kind = "Keyboard"

    @property
    def label(self) -> str:
        return "Keyboard"

    def _codes(self, n, y):
        return self._region_codes(n, y, prefer_high=True)

    def describe(self) -> str:
        return self._rule_text("Keyboard", "the strongest key") + self.rules_text()


@register
@dataclasses.dataclass(frozen=True)
class TPI(_BetaPrior):
    """Toxicity probability interval design (Ji, Li & Bekele 2007, Clin Trials 4:235).

    Posterior Beta(alpha + y, beta + n - y) (default alpha = beta = 0.005, the
    paper's prior) with standard deviation sigma; the
    regions p < target - k2 sigma (E), [target - k2 sigma, target + k1 sigma]
    (S) and p > target + k1 sigma (D); the region with the largest posterior
    probability decides. Defaults k1 = 1, k2 = 1.5. Elimination uses the same
    prior (with Beta(0.005, 0.005) this reproduces the published table, e.g. n = 9,
    y = 5 is not eliminated). MTD: isotonic regression of the posterior means,
    closest to the target; ties by ``mtd_ties``, default ``"below"`` (the paper's
    rule is not pinned: docs/notes/interval-designs.md, section 8).
    """

    kind = "TPI"
    k1: float = dataclasses.field(default=1.0, kw_only=True)
    k2: float = dataclasses.field(default=1.5, kw_only=True)
    alpha: float = dataclasses.field(default=0.005, kw_only=True)
    beta: float = dataclasses.field(default=0.005, kw_only=True)

    def _validate(self) -> None:
        for key in ("k1", "k2"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise DesignError(f"{key} = {v!r} must be a positive number")
        super()._validate()

    @property
    def select_prior(self):
        return (self.alpha, self.beta)

    @property
    def label(self) -> str:
        return "TPI"

    def _codes(self, n, y):
        a, b = self.alpha + y, self.beta + n - y
        sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        lo = self.target - self.k2 * sd
        hi = self.target + self.k1 * sd
        f_lo = special.betainc(a, b, np.clip(lo, 0, 1))
        f_hi = special.betainc(a, b, np.clip(hi, 0, 1))
        probs = np.stack([f_lo, f_hi - f_lo, 1 - f_hi])
        return _argmax_ties(probs).astype(np.int8)

    def describe(self) -> str:
        return (f"TPI, target {self.target:g}, k1 = {self.k1:g}, k2 = {self.k2:g}: the interval with the "
                f"largest posterior probability decides; eliminate if P(DLT rate > {self.target:g}) > "
                f"{self.cutoff_eli:g}; " + self._options_text() + self.rules_text())


@register
@dataclasses.dataclass(frozen=True)
class I3Plus3(_EquivalenceInterval):
    """i3+3 design (Liu, Wang & Ji 2020, J Biopharm Stat 30:294).

    With the observed rate y/n at the current tier and the equivalence
    interval [target - eps1, target + eps2] (compared in exact rational
    arithmetic): below it, E; inside it, S; above it, D, except S when (y - 1)/n
    is below the interval (one fewer DLT would have meant escalation).
    Elimination (n >= 3, Beta(1, 1), 0.95) overrides. MTD as R BOIN's
    ``select.mtd`` (as the authors' software).
    """

    kind = "i3+3"

    @property
    def label(self) -> str:
        return "i3+3"

    def _codes(self, n, y):
        lo = Fraction(str(self.target)) - Fraction(str(self.eps1))
        hi = Fraction(str(self.target)) + Fraction(str(self.eps2))
        out = np.empty(len(y), dtype=np.int8)
        for i, yy in enumerate(y):
            r = Fraction(int(yy), n)
            if r < lo:
                out[i] = E
            elif r <= hi:
                out[i] = S
            elif Fraction(int(yy) - 1, n) < lo:
                out[i] = S
            else:
                out[i] = D
        return out

    def describe(self) -> str:
        return (f"i3+3, target {self.target:g}, equivalence interval [{self.target - self.eps1:g}, "
                f"{self.target + self.eps2:g}] on the observed DLT rate; stay instead of de-escalating "
                f"when one DLT fewer would have escalated; eliminate if P(DLT rate > {self.target:g}) > "
                f"{self.cutoff_eli:g}; " + self.rules_text())
