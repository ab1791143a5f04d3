"""BOIN-ET: Bayesian optimal interval design for toxicity and efficacy (Takeda, Taguri & Morita 2018)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from ..obd import OBDDefinition
from ..state import Decision, StopReason, TrialState, distinct_rows
from .base import Design, check_int, check_prob, register
from .boin12 import merge_columns
from .selection import isotonic

special = lazy("scipy.special")
stats = lazy("scipy.stats")


#: Batches of at least this many trials decide once per distinct row of what the rule reads.
_DISTINCT_FROM = 4096


def _responses(state: TrialState) -> np.ndarray:
    """Responses per tier as floats: integer counts as they are, others (merged states' means) rounded to 6
    decimals (the same values either way for whole numbers)."""
    e = np.asarray(state.e)
    return e.astype(float) if e.dtype.kind in "iu" else np.round(np.asarray(e, float), 6)


def _binom_cdf(k, n: int, p: float) -> np.ndarray:
    """``stats.binom.cdf(k, n, p)`` for a whole number n >= 0 and p in [0, 1], by the ufunc scipy.stats itself
    calls for 0 <= k < n (1 at k >= n, 0 below 0), without importing scipy.stats (1-2 s); through scipy.stats
    where this scipy has no such ufunc. tests/test_exact_obd_merge.py checks both give the same numbers."""
    ufunc = getattr(special._ufuncs, "_binom_cdf", None)
    if ufunc is None:  # pragma: no cover - other scipy versions
        return stats.binom.cdf(k, n, p)
    k = np.floor(np.asarray(k, dtype=float))
    out = np.where(k >= n, 1.0, 0.0)
    inside = (k >= 0) & (k < n)
    out[inside] = ufunc(k[inside], float(n), p)
    return out


def boinet_boundaries(phi: float, delta: float, phi1: float | None = None, phi2: float | None = None,
                      delta1: float | None = None, n: int = 100) -> tuple[float, float, float]:
    """(lambda_1, lambda_2, eta_1) minimising the average probability of a wrong decision, as R boinet 1.5.0.

    Grid search in steps of 0.01 over lambda_1 in [phi1, phi], lambda_2 in [phi, phi2], eta_1 in
    [delta1, delta], with n = 100 and equal weights 1/6 on the hypotheses (phi1, delta1), (phi1, delta),
    (phi, delta), (phi2, delta1), (phi2, delta), in the package's form (including its use of
    L1(phi1) in the third term and its unused third hypothesis; stated in docs/notes). The first
    minimiser in the order lambda_1, then lambda_2, then eta_1 is returned.
    """
    phi1 = 0.1 * phi if phi1 is None else phi1
    phi2 = 1.4 * phi if phi2 is None else phi2
    delta1 = 0.6 * delta if delta1 is None else delta1
    l1 = np.arange(phi1, phi + 1e-12, 0.01)
    l2 = np.arange(phi, phi2 + 1e-12, 0.01)
    e1 = np.arange(delta1, delta + 1e-12, 0.01)
    L1 = lambda th: _binom_cdf(np.floor(n * l1 + 1e-9), n, th)[:, None, None]  # noqa: E731
    L2 = lambda th: _binom_cdf(np.floor(n * l2 - 1 + 1e-9), n, th)[None, :, None]  # noqa: E731
    E = lambda th: _binom_cdf(np.floor(n * e1 + 1e-9), n, th)[None, None, :]  # noqa: E731
    h1 = L1(phi1) * (1 - E(delta1)) + 2 / 3 * (L2(phi1) - L1(phi1)) * E(delta1) + \
        (L2(phi1) - L1(phi1)) * (1 - E(delta1)) + 1 - L2(phi1)
    h2 = L1(phi1) * E(delta) + 2 / 3 * (L2(phi1) - L1(phi1)) * E(delta) + 1 - L2(phi1)
    h4 = L1(phi) * E(delta) + 2 / 3 * (L2(phi) - L1(phi1)) * E(delta) + 1 - L2(phi)
    h5 = L1(phi2) + 2 / 3 * (L2(phi2) - L1(phi2)) * E(delta1) + (L2(phi2) - L1(phi2)) * (1 - E(delta1))
    h6 = L1(phi2) + 2 / 3 * (L2(phi2) - L1(phi2)) * E(delta) + (L2(phi2) - L1(phi2)) * (1 - E(delta))
    total = (h1 + h2 + h4 + h5 + h6) / 6
    i, j, k = np.unravel_index(np.argmin(total), total.shape)
    return float(l1[i]), float(l2[j]), float(e1[k])


@register
@dataclasses.dataclass(frozen=True)
class BOINET(Design):
    """BOIN-ET, behaving like R package boinet 1.5.0 (``boinet``) with its defaults.

    Target toxicity ``phi`` (0.3) and target efficacy ``delta`` (0.6); boundaries
    (lambda_1, lambda_2, eta_1) from :func:`boinet_boundaries`. With the observed
    DLT rate pT and response rate pE at the current tier:

    - pT <= lambda_1 and pE <= eta_1: escalate;
    - pT < lambda_2 and pE > eta_1: stay;
    - pT >= lambda_2: de-escalate;
    - lambda_1 < pT < lambda_2 and pE <= eta_1: an untried next tier is
      escalated to; otherwise the tier among the neighbours ({d - 1, d, d + 1},
      or the two at an end) with the highest observed response rate (untried
      counts as 0). The package breaks ties at random; doseesc takes the lower
      tier so that a decision is a function of the data.

    A tier is admissible unless P(pT > phi) > 0.95 or P(pE <= delta1) > 0.99
    (Beta(1, 1) priors, recomputed every cohort). A move to an inadmissible tier
    goes to the lowest admissible tier above (escalation; else stay) or the
    highest admissible tier below (else stop); no admissible tier: stop.
    Final OBD ("max.effprob"): among tried admissible tiers, the MTD is the
    highest tier whose isotonic DLT estimate (unweighted) is closest to phi;
    the OBD is the lowest tier at or below it with the highest observed
    response rate.
    """

    kind = "BOIN-ET"
    uses_efficacy = True
    #: The exact engine merges each cohort's outcomes on :meth:`merge_key` before deciding.
    exact_merge_children = True

    n_tiers: int
    phi: float = 0.3
    delta: float = 0.6
    cohort_size: int = 3
    max_n: int = dataclasses.field(kw_only=True)
    phi1: float | None = dataclasses.field(default=None, kw_only=True)
    phi2: float | None = dataclasses.field(default=None, kw_only=True)
    delta1: float | None = dataclasses.field(default=None, kw_only=True)
    stop_prob_t: float = dataclasses.field(default=0.95, kw_only=True)
    stop_prob_e: float = dataclasses.field(default=0.99, kw_only=True)

    def __post_init__(self):
        check_int(self.n_tiers, "n_tiers")
        check_prob(self.phi, "phi")
        check_prob(self.delta, "delta")
        check_int(self.cohort_size, "cohort_size")
        check_int(self.max_n, "max_n")
        for key in ("phi1", "phi2", "delta1"):
            if getattr(self, key) is not None:
                check_prob(getattr(self, key), key)
        if not self.phi1_ < self.phi < self.phi2_:
            raise DesignError(f"need phi1 < phi < phi2, got {self.phi1_:g}, {self.phi:g}, {self.phi2_:g}")
        if not self.delta1_ < self.delta:
            raise DesignError(f"need delta1 < delta, got {self.delta1_:g}, {self.delta:g}")
        check_prob(self.stop_prob_t, "stop_prob_t")
        check_prob(self.stop_prob_e, "stop_prob_e")
        self._check_slots()

    @property
    def phi1_(self):
        return 0.1 * self.phi if self.phi1 is None else self.phi1

    @property
    def phi2_(self):
        return 1.4 * self.phi if self.phi2 is None else self.phi2

    @property
    def delta1_(self):
        return 0.6 * self.delta if self.delta1 is None else self.delta1

    @property
    def label(self) -> str:
        return "BOIN-ET"

    @property
    def target(self) -> float:
        return self.phi

    @property
    def obd_definition(self):
        return OBDDefinition(phi_t=self.phi, phi_e=self.delta1_, rule="admissible")

    @cached_property
    def boundaries(self) -> tuple[float, float, float]:
        return boinet_boundaries(self.phi, self.delta, self.phi1_, self.phi2_, self.delta1_)

    @cached_property
    def _admissible_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per (n, count) with count <= n <= max_n: too toxic (P(pT > phi) > stop_prob_t) and futile
        (P(pE <= delta1) > stop_prob_e), the same expressions as :meth:`admissible` computes directly."""
        n = np.arange(self.max_n + 1, dtype=float)[:, None]
        x = np.arange(self.max_n + 1, dtype=float)[None, :]
        with np.errstate(invalid="ignore"):
            tox = special.betaincc(1 + x, 1 + n - x, self.phi) > self.stop_prob_t
            fut = special.betainc(1 + x, 1 + n - x, self.delta1_) > self.stop_prob_e
        return tox, fut

    def admissible(self, state: TrialState) -> np.ndarray:
        n, y, e = np.asarray(state.n), np.asarray(state.y), np.asarray(state.e)
        if n.dtype.kind == y.dtype.kind == e.dtype.kind == "i" and n.size and n.max() <= self.max_n \
                and min(y.min(), e.min()) >= 0:
            tox, fut = self._admissible_tables   # integer counts within the table: look the values up
            row = n * tox.shape[1]
            return ~(tox.ravel().take(row + y) | fut.ravel().take(row + e))
        n, y = np.asarray(state.n, float), np.asarray(state.y, float)
        e = np.round(np.asarray(state.e, float), 6)
        if n.size and n.max() <= self.max_n and np.array_equal(e, np.round(e)) and y.min() >= 0 and e.min() >= 0:
            tox, fut = self._admissible_tables   # counts within the table: look the same values up
            ni = n.astype(np.intp)
            return ~(tox[ni, y.astype(np.intp)] | fut[ni, e.astype(np.intp)])
        tox = special.betaincc(1 + y, 1 + n - y, self.phi)
        fut = special.betainc(1 + e, 1 + n - e, self.delta1_)
        return ~((tox > self.stop_prob_t) | (fut > self.stop_prob_e))

    def merge_key(self, state):
        """Each tier's patients, DLTs and responses: every rule and the final choice read nothing else."""
        return merge_columns(state, self.merge_fields)

    #: The count fields of :meth:`merge_key` with their signs (the exact engine adds a cohort to a key in place).
    merge_fields = (("n", 1), ("y", 1), ("e", 1))

    def decide(self, state: TrialState) -> Decision:
        t, k = state.n.shape
        ok = self.admissible(state)
        if t >= _DISTINCT_FROM:
            # the rule reads the current tier, the counts at it and its neighbours and which tiers are admissible:
            # decide once per distinct row of those and broadcast (the same decisions)
            rows = np.arange(t)
            cols = [state.current, ok]
            for off in (-1, 0, 1):
                j = np.clip(state.current + off, 0, k - 1)
                cols += [state.n[rows, j], state.y[rows, j], state.e[rows, j]]
            first, back = distinct_rows(cols)
            if first.size <= t // 2:
                dec = self._decide(state.take(first), ok[first])
                return Decision(next=dec.next[back], stop=dec.stop[back], reason=dec.reason[back])
        return self._decide(state, ok)

    def _decide(self, state: TrialState, ok: np.ndarray) -> Decision:
        """The rule on each trial, given its admissible tiers ``ok``."""
        t, k = state.n.shape
        rows = np.arange(t)
        d = state.current
        l1, l2, e1 = self.boundaries
        n = np.asarray(state.n, float)
        pt_all = np.where(n > 0, state.y / np.maximum(n, 1), 0.0)
        pe_all = np.where(n > 0, _responses(state) / np.maximum(n, 1), 0.0)
        pt, pe = pt_all[rows, d], pe_all[rows, d]
        eps = 1e-12
        esc = (pt <= l1 + eps) & (pe <= e1 + eps)
        stay = ~esc & (pt < l2 - eps) & (pe > e1 + eps)
        down = ~esc & ~stay & (pt >= l2 - eps)
        grey = ~esc & ~stay & ~down
        nxt = np.where(esc, d + 1, np.where(stay, d, d - 1))
        # grey zone: untried next tier, else the neighbour with the best observed response rate (lower on ties)
        up_untried = (d < k - 1) & (state.n[rows, np.minimum(d + 1, k - 1)] == 0)
        lo = np.maximum(d - 1, 0)
        hi = np.minimum(d + 1, k - 1)
        best = d.copy()
        best_val = np.full(t, -np.inf)
        for off in (-1, 0, 1):
            j = d + off
            valid = (j >= lo) & (j <= hi)
            jj = np.clip(j, 0, k - 1)
            val = np.where(valid, pe_all[rows, jj], -np.inf)
            better = val > best_val + eps
            best = np.where(better, jj, best)
            best_val = np.where(better, val, best_val)
        nxt = np.where(grey, np.where(up_untried, d + 1, best), nxt)
        # admissibility
        idx = np.arange(k)[None, :]
        none = ~ok.any(axis=1)
        nxt = np.clip(nxt, -1, k)
        stop = none.copy()
        low0 = nxt < 0
        first_ok = np.where(ok[:, 0], 0, -1)
        nxt = np.where(low0, first_ok, nxt)
        stop |= low0 & (first_ok < 0)
        nxt = np.minimum(nxt, k - 1)
        target_ok = ok[rows, np.clip(nxt, 0, k - 1)]
        above = np.where(ok & (idx >= nxt[:, None]), idx, k).min(axis=1)
        below = np.where(ok & (idx <= nxt[:, None]), idx, -1).max(axis=1)
        escalating = nxt > d
        redirect_up = ~target_ok & escalating
        nxt = np.where(redirect_up, np.where(above < k, above, d), nxt)
        redirect_down = ~target_ok & ~escalating
        nxt = np.where(redirect_down, below, nxt)
        stop |= redirect_down & (below < 0)
        # staying at an inadmissible tier after a failed escalation redirect
        stop |= ~ok[rows, np.clip(nxt, 0, k - 1)] & ~stop & redirect_up & (above >= k) & ~ok[rows, d]
        reason = np.where(stop, np.int8(StopReason.LOWEST_TIER_TOXIC), np.int8(0)).astype(np.int8)
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason)

    def select(self, state: TrialState) -> np.ndarray:
        t, k = state.n.shape
        n = np.asarray(state.n, float)
        tried = n > 0
        cand = tried & self.admissible(state)
        pt = np.where(tried, state.y / np.maximum(n, 1), 0.0)
        pe = np.where(tried, _responses(state) / np.maximum(n, 1), 0.0)
        # row by row, so once per distinct (n, y, tried) row and broadcast: the same numbers
        rows, back = distinct_rows([n, state.y])
        iso = isotonic(pt[rows], np.ones((rows.size, k)), tried[rows])[back]
        dist = np.where(cand, np.abs(iso - self.phi), np.inf)
        mind = dist.min(axis=1, keepdims=True)
        mtd = np.where(cand & (dist <= mind + 1e-12), np.arange(k)[None, :], -1).max(axis=1)
        ok = cand & (np.arange(k)[None, :] <= mtd[:, None])
        score = np.where(ok, pe, -np.inf)
        best = np.argmax(score, axis=1).astype(np.int32)   # the lowest tier among the maxima
        return np.where(ok.any(axis=1), best, -1).astype(np.int32)

    def describe(self) -> str:
        l1, l2, e1 = self.boundaries
        return (f"BOIN-ET (phi {self.phi:g}, delta {self.delta:g}): cohorts of {self.cohort_size}; escalate if the "
                f"DLT rate <= {l1:.3f} and the response rate <= {e1:.3f}; stay if DLT rate < {l2:.3f} and response "
                f"rate > {e1:.3f}; de-escalate if DLT rate >= {l2:.3f}; OBD = best observed response at or below "
                "the isotonic MTD; " + self.rules_text())
