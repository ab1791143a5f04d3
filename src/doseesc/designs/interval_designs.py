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
from scipy import stats

from ..errors import DesignError
from .base import check_prob, register
from .interval import D, E, S, IntervalDesign


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


@register
@dataclasses.dataclass(frozen=True)
class MTPI(_EquivalenceInterval):
    """Modified toxicity probability interval design (Ji, Liu, Li & Bekele 2010, Clin Trials 7:653).

    Posterior Beta(1 + y, 1 + n - y) at the current tier; the unit probability
    mass (posterior mass / interval length) of the under-dosing interval
    [0, target - eps1), the equivalence interval [target - eps1, target + eps2]
    and the over-dosing interval (target + eps2, 1]; the largest UPM decides
    E, S or D (exact ties to E, then S; values within a relative 1e-9 count as
    tied, e.g. target 0.25, n = 2, y = 1 gives UPM(S) = UPM(D) = 1.12 and S).
    Defaults eps1 = eps2 = 0.05.
    MTD: isotonic regression of the Beta(1, 1) posterior means, weighted by
    inverse variance, closest to the target.
    """

    kind = "mTPI"
    select_prior = (1.0, 1.0)

    @property
    def label(self) -> str:
        return "mTPI"

    def _codes(self, n, y):
        a, b = 1 + y, 1 + n - y
        lo, hi = self.target - self.eps1, self.target + self.eps2
        f_lo, f_hi = stats.beta.cdf(lo, a, b), stats.beta.cdf(hi, a, b)
        upm = np.stack([f_lo / lo, (f_hi - f_lo) / (hi - lo), (1 - f_hi) / (1 - hi)])
        return _argmax_ties(upm).astype(np.int8)

    def describe(self) -> str:
        return (f"mTPI, target {self.target:g}, equivalence interval [{self.target - self.eps1:g}, "
                f"{self.target + self.eps2:g}]: largest unit probability mass decides; eliminate if "
                f"P(DLT rate > {self.target:g}) > {self.cutoff_eli:g}; " + self.rules_text())


@register
@dataclasses.dataclass(frozen=True)
class MTPI2(_EquivalenceInterval):
    """mTPI-2 (Guo, Wang, Yang, Lynn & Ji 2017, Contemp Clin Trials 58:23).

    As mTPI, but the under- and over-dosing regions are split into intervals of
    the equivalence interval's width (eps1 + eps2), built outwards from it and
    cut at 0 and 1 (the cut intervals keep their UPM over their actual length).
    The interval with the largest UPM decides: below the equivalence interval
    E, the equivalence interval S, above D (exact ties to the lower interval,
    as the authors' software). MTD as R BOIN's ``select.mtd`` (the authors'
    software uses the same procedure).
    """

    kind = "mTPI-2"

    @property
    def label(self) -> str:
        return "mTPI-2"

    def _region_codes(self, n, y, prefer_high: bool) -> np.ndarray:
        edges, mid = _edges(self.target, self.eps1, self.eps2)
        a, b = 1 + y, 1 + n - y
        cdf = stats.beta.cdf(edges[:, None], a[None, :], b[None, :])
        mass = np.diff(cdf, axis=0)
        upm = mass / np.diff(edges)[:, None]
        best = _argmax_ties(upm, prefer_high=prefer_high)
        return np.where(best < mid, E, np.where(best == mid, S, D)).astype(np.int8)

    def _codes(self, n, y):
        return self._region_codes(n, y, prefer_high=False)

    def describe(self) -> str:
        return (f"mTPI-2, target {self.target:g}, equivalence interval [{self.target - self.eps1:g}, "
                f"{self.target + self.eps2:g}] and equal-width intervals around it: the interval with the "
                f"largest unit probability mass decides; eliminate if P(DLT rate > {self.target:g}) > "
                f"{self.cutoff_eli:g}; " + self.rules_text())


@register
@dataclasses.dataclass(frozen=True)
class Keyboard(MTPI2):
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
        return super().describe().replace("mTPI-2", "Keyboard", 1).replace(
            "the interval with the largest unit probability mass", "the strongest key")


@register
@dataclasses.dataclass(frozen=True)
class TPI(IntervalDesign):
    """Toxicity probability interval design (Ji, Li & Bekele 2007, Clin Trials 4:235).

    Posterior Beta(0.005 + y, 0.005 + n - y) with standard deviation sigma; the
    regions p < target - k2 sigma (E), [target - k2 sigma, target + k1 sigma]
    (S) and p > target + k1 sigma (D); the region with the largest posterior
    probability decides. Defaults k1 = 1, k2 = 1.5. Elimination uses the same
    Beta(0.005, 0.005) prior (this reproduces the published table, e.g. n = 9,
    y = 5 is not eliminated). MTD: isotonic regression of the posterior means,
    closest to the target.
    """

    kind = "TPI"
    k1: float = dataclasses.field(default=1.0, kw_only=True)
    k2: float = dataclasses.field(default=1.5, kw_only=True)
    prior: float = dataclasses.field(default=0.005, kw_only=True)

    def _validate(self) -> None:
        for key in ("k1", "k2", "prior"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise DesignError(f"{key} = {v!r} must be a positive number")

    @property
    def elim_prior(self):
        return (self.prior, self.prior)

    @property
    def select_prior(self):
        return (self.prior, self.prior)

    @property
    def label(self) -> str:
        return "TPI"

    def _codes(self, n, y):
        a, b = self.prior + y, self.prior + n - y
        sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        lo = self.target - self.k2 * sd
        hi = self.target + self.k1 * sd
        f_lo = stats.beta.cdf(np.clip(lo, 0, 1), a, b)
        f_hi = stats.beta.cdf(np.clip(hi, 0, 1), a, b)
        probs = np.stack([f_lo, f_hi - f_lo, 1 - f_hi])
        return _argmax_ties(probs).astype(np.int8)

    def describe(self) -> str:
        return (f"TPI, target {self.target:g}, k1 = {self.k1:g}, k2 = {self.k2:g}: the interval with the "
                f"largest posterior probability decides; eliminate if P(DLT rate > {self.target:g}) > "
                f"{self.cutoff_eli:g}; " + self.rules_text())


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
