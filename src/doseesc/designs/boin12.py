"""BOIN12: Bayesian optimal interval phase I/II design for the OBD (Lin, Zhou, Yan, Li & Yuan 2020)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
from scipy import special, stats

from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, check_prob, register
from .boin import boin_boundaries
from .obd_pick import DEFAULT_UTILITY
from .selection import isotonic, unimodal


def _counts(state):
    """n, y, e, ye as floats; e and ye rounded (the exact engine's merged states carry them as means of
    equal values, which rounding makes exact again)."""
    return (np.asarray(state.n, float), np.asarray(state.y, float), np.round(np.asarray(state.e, float), 6),
            np.round(np.asarray(state.ye, float), 6))


def _cells(state):
    n, y, e, ye = _counts(state)
    return n - y - e + ye, y - ye, e - ye, ye   # neither, DLT only, response only, both


@register
@dataclasses.dataclass(frozen=True)
class BOIN12(Design):
    """BOIN12, behaving like the published worked example and the authors' BOIN12 app.

    Outcome utility (order: neither, DLT only, response only, both) defaults to
    BOIN12's (40, 0, 100, 60). Per tier, the pseudo-response count is
    x = sum(utility x cell count) / 100 and the standardised utility has
    posterior Beta(1 + x, 1 + n - x); the *desirability score* is
    DS = P(utility > u_b / 100 | data), with benchmark u_b = u_low + (100 -
    u_low) / 2 and u_low the utility at (phi_t, phi_e) under independence
    (70.5 by default). A tier is *admissible* while P(p_T > phi_t) < c_t
    (0.95) and P(p_E < phi_e) < c_e (0.90) under Beta(1, 1) priors.

    With p = y/n at the current tier d and BOIN boundaries lambda_e,
    lambda_d at phi_t (0.6 and 1.4 phi_t), in this order:

    1. exploration: n_d >= ``explore_n`` (9), p < lambda_d and d + 1 untried:
       go to d + 1;
    2. p >= lambda_d: de-escalate (stay at the lowest tier);
    3. lambda_e < p and n_d >= ``n_star`` (6): the admissible tier of {d - 1, d}
       with the higher DS;
    4. otherwise the admissible tier of {d - 1, d, d + 1} with the highest DS;
       ties go to the higher tier (as the authors' app); no admissible tier:
       stop with no OBD (also in 3, where R ``escalation`` falls back to tier
       1 - an untested corner we do not copy).

    The trial stops when any tier reaches ``cap`` (12) patients or at
    ``max_n``. Final OBD (as the authors' simulation code): toxicity by
    isotonic regression of (y + 0.05)/(n + 0.1), weights n + 0.1, + 0.001 j;
    estimated MTD = the tier closest to phi_t; response by unimodal isotonic
    regression (weights n + 0.5) averaged over the mode position with
    binomial-likelihood weights, + 0.01 j; utility of the estimates (under
    independence); OBD = the best utility among tried, admissible tiers at or
    below the estimated MTD (the lower on ties); none if there is none.
    """

    kind = "BOIN12"
    uses_efficacy = True

    n_tiers: int
    phi_t: float = 0.35
    phi_e: float = 0.25
    cohort_size: int = 3
    max_n: int = dataclasses.field(kw_only=True)
    utility: tuple[float, float, float, float] = dataclasses.field(default=DEFAULT_UTILITY, kw_only=True)
    c_t: float = dataclasses.field(default=0.95, kw_only=True)
    c_e: float = dataclasses.field(default=0.90, kw_only=True)
    n_star: int = dataclasses.field(default=6, kw_only=True)
    explore_n: int = dataclasses.field(default=9, kw_only=True)
    cap: int = dataclasses.field(default=12, kw_only=True)

    def __post_init__(self):
        check_int(self.n_tiers, "n_tiers")
        check_prob(self.phi_t, "phi_t")
        check_prob(self.phi_e, "phi_e")
        check_int(self.cohort_size, "cohort_size")
        check_int(self.max_n, "max_n")
        check_prob(self.c_t, "c_t")
        check_prob(self.c_e, "c_e")
        check_int(self.n_star, "n_star")
        check_int(self.explore_n, "explore_n")
        check_int(self.cap, "cap")
        try:
            u = tuple(float(v) for v in self.utility)
        except (TypeError, ValueError):
            raise DesignError(f"utility = {self.utility!r} must be 4 numbers") from None
        if len(u) != 4 or not all(0 <= v <= 100 for v in u):
            raise DesignError(f"utility = {self.utility!r} needs 4 values in [0, 100]: neither, DLT only, "
                              "response only, both")
        object.__setattr__(self, "utility", u)
        if not 0.05 <= self.phi_t <= 0.6:
            raise DesignError(f"phi_t = {self.phi_t:g} must lie in [0.05, 0.6] (BOIN boundaries)")
        self._check_slots()

    @property
    def label(self) -> str:
        return "BOIN12"

    @property
    def target(self) -> float:
        return self.phi_t

    @property
    def obd_definition(self):
        from ..obd import OBDDefinition

        return OBDDefinition(utility=self.utility, phi_t=self.phi_t, phi_e=self.phi_e, rule="admissible")

    @cached_property
    def boundaries(self) -> tuple[float, float]:
        return boin_boundaries(self.phi_t)

    @property
    def benchmark(self) -> float:
        """u_b: the midpoint between the utility at (phi_t, phi_e) and 100."""
        n, t, e, b = self.utility
        pt, pe = self.phi_t, self.phi_e
        low = n * (1 - pt) * (1 - pe) + t * pt * (1 - pe) + e * (1 - pt) * pe + b * pt * pe
        return low + (100 - low) / 2

    # -- quantities per tier -------------------------------------------------
    @cached_property
    def _limit(self) -> int:
        """Largest n a tier can hold: the cap plus a cohort, or max_n."""
        return min(self.max_n, self.cap + self.cohort_size - 1)

    @cached_property
    def _tables(self):
        """Desirability by (n, neither, DLT-only, response-only) cells and admissibility by (n, y, e)."""
        L = self._limit
        n = np.arange(L + 1)[:, None, None]
        y = np.arange(L + 1)[None, :, None]
        e = np.arange(L + 1)[None, None, :]
        tox = stats.beta.sf(self.phi_t, 1 + y, np.maximum(1 + n - y, 1e-9))
        fut = stats.beta.cdf(self.phi_e, 1 + e, np.maximum(1 + n - e, 1e-9))
        adm = (tox < self.c_t) & (fut < self.c_e)
        # desirability by (n, y, e, ye): x = utility-weighted cell counts / 100
        n4 = np.arange(L + 1)[:, None, None, None].astype(float)
        y4 = np.arange(L + 1)[None, :, None, None].astype(float)
        e4 = np.arange(L + 1)[None, None, :, None].astype(float)
        b4 = np.arange(L + 1)[None, None, None, :].astype(float)
        cells = (n4 - y4 - e4 + b4, y4 - b4, e4 - b4, b4)
        x = sum(u * c for u, c in zip(self.utility, cells)) / 100
        with np.errstate(invalid="ignore"):
            ds = special.betaincc(1 + x, np.maximum(1 + n4 - x, 1e-9), self.benchmark / 100)
        return adm, ds

    def pseudo_responses(self, state: TrialState) -> np.ndarray:
        return sum(u * c for u, c in zip(self.utility, _cells(state))) / 100

    def desirability(self, state: TrialState) -> np.ndarray:
        """DS = P(standardised utility > u_b / 100 | data), shape ``(n_trials, n_tiers)``."""
        n = np.asarray(state.n)
        if n.max(initial=0) <= self._limit:
            e = np.round(np.asarray(state.e, float)).astype(np.intp)
            ye = np.round(np.asarray(state.ye, float)).astype(np.intp)
            return self._tables[1][n, np.asarray(state.y), e, ye]
        x = self.pseudo_responses(state)
        return special.betaincc(1 + x, 1 + np.asarray(n, float) - x, self.benchmark / 100)

    def admissible(self, state: TrialState) -> np.ndarray:
        n = np.asarray(state.n)
        if n.max(initial=0) <= self._limit:
            e = np.round(np.asarray(state.e, float)).astype(np.intp)
            return self._tables[0][n, np.asarray(state.y), e]
        n, y, e, _ = _counts(state)
        tox = stats.beta.sf(self.phi_t, 1 + y, 1 + n - y)
        fut = stats.beta.cdf(self.phi_e, 1 + e, 1 + n - e)
        return (tox < self.c_t) & (fut < self.c_e)

    def merge_key(self, state):
        u = sum(w * c for w, c in zip(self.utility, _cells(state)))
        return np.column_stack([state.n, state.y, np.round(np.asarray(state.e, float)),
                                np.round(u * 1e6)]).astype(np.int64)

    # -- kernel ---------------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        rows = np.arange(state.n_trials)
        d = state.current
        p = state.y[rows, d] / np.maximum(state.n[rows, d], 1)
        return self._move(state, p, self.desirability(state), self.admissible(state))

    def _move(self, state: TrialState, p: np.ndarray, ds: np.ndarray, ok: np.ndarray) -> Decision:
        """BOIN12's rules 1-4 and the cap from the DLT rate ``p`` at the current tier (n_trials,), the
        desirability ``ds`` and admissibility ``ok`` (n_trials, n_tiers); shared with TITE-BOIN12."""
        t, k = state.n.shape
        rows = np.arange(t)
        d = state.current
        nd = state.n[rows, d]
        lam_e, lam_d = self.boundaries
        up = np.minimum(d + 1, k - 1)
        down = np.maximum(d - 1, 0)
        # candidate scores for d-1, d, d+1 (-inf where not a candidate); ties to the higher tier
        score = np.full((t, 3), -np.inf)
        cand_down = (d > 0) & ok[rows, down]
        cand_here = ok[rows, d]
        cand_up = (d < k - 1) & ok[rows, up]
        middle = (p > lam_e) & (nd >= self.n_star)
        score[:, 0] = np.where(cand_down, ds[rows, down], -np.inf)
        score[:, 1] = np.where(cand_here, ds[rows, d], -np.inf)
        score[:, 2] = np.where(cand_up & ~middle, ds[rows, up], -np.inf)
        best = 2 - np.argmax(score[:, ::-1], axis=1)          # highest position among the maxima
        none = ~np.isfinite(score.max(axis=1))
        nxt = d + best - 1
        explore = (nd >= self.explore_n) & (p < lam_d) & (d < k - 1) & (state.n[rows, up] == 0)
        deesc = ~explore & (p >= lam_d)
        nxt = np.where(explore, d + 1, np.where(deesc, down, nxt))
        stop = ~explore & ~deesc & none
        reason = np.where(stop, np.int8(StopReason.LOWEST_TIER_TOXIC), np.int8(0)).astype(np.int8)
        capped = ~stop & (state.n.max(axis=1) >= self.cap)
        stop |= capped
        reason = np.where(capped, np.int8(StopReason.N_AT_TIER), reason).astype(np.int8)
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason)

    # -- final OBD ------------------------------------------------------------
    def estimates(self, state: TrialState):
        """Final estimates: isotonic P(DLT), model-averaged unimodal P(response), and their utility."""
        t, k = state.n.shape
        n, y, e, _ = _counts(state)
        j = np.arange(1, k + 1)[None, :]
        pt = isotonic((y + 0.05) / (n + 0.1), n + 0.1, np.ones((t, k), dtype=bool)) + 0.001 * j
        pe_raw = (e + 0.05) / (n + 0.1)
        fits, loglik = [], []
        for m in range(k):
            f = np.clip(unimodal(pe_raw, n + 0.5, m), 1e-10, 1 - 1e-10)
            fits.append(f)
            loglik.append((stats.binom.logpmf(e, n, f)).sum(axis=1))
        ll = np.stack(loglik, axis=1)
        wts = np.exp(ll - ll.max(axis=1, keepdims=True))
        wts /= wts.sum(axis=1, keepdims=True)
        pe = np.einsum("tm,mtk->tk", wts, np.stack(fits)) + 0.01 * j
        un, ut, ue, ub = self.utility
        util = un * (1 - pt) * (1 - pe) + ut * pt * (1 - pe) + ue * (1 - pt) * pe + ub * pt * pe
        return pt, pe, util

    def select(self, state: TrialState) -> np.ndarray:
        pt, pe, util = self.estimates(state)
        k = self.n_tiers
        mtd = np.argmin(np.abs(pt - self.phi_t), axis=1)
        ok = self.admissible(state) & (state.n > 0) & (np.arange(k)[None, :] <= mtd[:, None])
        score = np.where(ok, util, -np.inf)
        best = np.argmax(score, axis=1).astype(np.int32)
        return np.where(ok.any(axis=1), best, -1).astype(np.int32)

    def describe(self) -> str:
        lam_e, lam_d = self.boundaries
        n, t, e, b = self.utility
        return (f"BOIN12 (phi_t {self.phi_t:g}, phi_e {self.phi_e:g}): cohorts of {self.cohort_size}; de-escalate if "
                f"the DLT rate >= {lam_d:.3f}; otherwise move among admissible neighbours to the most desirable "
                f"(P(utility > {self.benchmark:g}); utility: response without DLT {e:g}, neither {n:g}, both {b:g}, "
                f"DLT without response {t:g}); explore an untried higher tier after {self.explore_n} patients; stop "
                f"when a tier has {self.cap} patients; OBD by isotonic toxicity and unimodal response estimates; "
                + self.rules_text())
