"""BOIN12: Bayesian optimal interval phase I/II design for the OBD (Lin, Zhou, Yan, Li & Yuan 2020)."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from ..obd import OBDDefinition
from ..state import Decision, StopReason, TrialState, distinct_rows
from .base import Design, check_int, check_prob, register
from .boin import boin_boundaries
from .obd_pick import DEFAULT_UTILITY
from .selection import isotonic, unimodal

special = lazy("scipy.special")
stats = lazy("scipy.stats")


def _counts(state):
    """n, y, e, ye as floats; e and ye rounded (the exact engine's merged states carry them as means of
    equal values, which rounding makes exact again)."""
    return (np.asarray(state.n, float), np.asarray(state.y, float), np.round(np.asarray(state.e, float), 6),
            np.round(np.asarray(state.ye, float), 6))


class _IntegralCounts:
    """``stats.binom.logpmf(e, n, p)`` for many ``p`` at the same counts, by scipy's own formula for integral
    0 <= e <= n (gammaln of the counts once; the same operations in the same order, so the same numbers) and
    without importing scipy.stats; other counts go to scipy.stats."""

    def __init__(self, e: np.ndarray, n: np.ndarray):
        self.e, self.n = e, n
        self.plain = bool(np.all((e == np.floor(e)) & (e >= 0) & (e <= n) & (n == np.floor(n))))
        if self.plain:
            self.combiln = special.gammaln(n + 1) - (special.gammaln(e + 1) + special.gammaln(n - e + 1))

    def logpmf(self, p: np.ndarray) -> np.ndarray:
        if not self.plain:
            return stats.binom.logpmf(self.e, self.n, p)
        return self.combiln + special.xlogy(self.e, p) + special.xlog1py(self.n - self.e, -p)


def _integral(a: np.ndarray) -> np.ndarray:
    """Counts as integers (rounded where merged states carry them as floats)."""
    a = np.asarray(a)
    return a if a.dtype.kind in "iu" else np.round(a.astype(float)).astype(np.intp)


def merge_columns(state: TrialState, fields) -> np.ndarray:
    """Exact-engine merge key: the count fields ``fields`` ((name, sign) pairs) per tier, side by side, as integers."""
    return np.concatenate([_integral(getattr(state, name)) * sign for name, sign in fields], axis=1)


#: BOIN12's rule sets: the authors' simulation code (default) and the authors' app as reconstructed in R escalation.
VARIANTS = ("authors", "app")
#: Largest n of the tabulated desirability (a table of (n + 1)^4 cells: 0.3 s and 2.7 MB at 17; larger n are computed).
_TABLE_N = 17
#: Largest n of the tabulated elimination boundaries; larger counts are computed directly.
_ELIM_TABLE_N = 256


def eliminated(tox: np.ndarray, futile: np.ndarray) -> np.ndarray:
    """Tiers closed by the authors' elimination, shape ``(n_trials, n_tiers)``: a tier too toxic on its own
    counts closes itself and every tier above it; a futile one closes itself alone."""
    return np.maximum.accumulate(tox, axis=1) | futile


def _cells(state):
    n, y, e, ye = _counts(state)
    return n - y - e + ye, y - ye, e - ye, ye   # neither, DLT only, response only, both


@register
@dataclasses.dataclass(frozen=True)
class BOIN12(Design):
    """BOIN12 (Lin et al. 2020), by default with the authors' own rules (``variant="authors"``).

    Outcome utility (order: neither, DLT only, response only, both) defaults to
    BOIN12's (40, 0, 100, 60). Per tier, the pseudo-response count is
    x = sum(utility x cell count) / 100 and the standardised utility has
    posterior Beta(1 + x, 1 + n - x); the *desirability score* is
    DS = P(utility > u_b / 100 | data), with benchmark u_b = u_low + (100 -
    u_low) / 2 and u_low the utility at (phi_t, phi_e) under independence
    (70.5 by default). BOIN boundaries lambda_e, lambda_d at phi_t (0.6 and
    1.4 phi_t); p = y/n at the current tier d.

    ``variant="authors"`` (default): the rules of the authors' simulation code
    (R. Lin's ``get.oc.obd``, ``boin12.R`` in the public repository
    zichen-liu/ModelAssistedPhase12) and the paper's dose elimination; see
    docs/notes/boin12-boinet.md for each rule's source.

    - Elimination, persistent: with n >= 3 at a tier, a tier with
      P(p_T > phi_t | data) > c_t (and at least 3 DLTs) is eliminated with
      every tier above it; a tier with P(p_E < phi_e | data) > c_e is
      eliminated alone (Beta(1, 1) priors). Counts at an eliminated tier
      never change, so elimination is a function of the counts (the state is
      the whole memory). The trial stops with no dose when the lowest tier is
      eliminated for toxicity or every tier is eliminated.
    - At ``cap`` patients at the current tier the trial stops (after the
      elimination checks). The authors' code has no such cap (cap = N).
    - The neighbours of d are the nearest non-eliminated tiers below and
      above (they may skip an eliminated tier).
    - p >= lambda_d (or d eliminated): the lower neighbour; none: stay at d,
      or stop with no dose if d is eliminated.
    - Otherwise the candidates are d, the lower neighbour, and the upper
      neighbour if n_d < ``n_star`` (6) or p <= lambda_e; the candidate with
      the highest DS (0 for eliminated tiers) is chosen, ties to the higher
      tier (the authors' code breaks ties at random); if it is eliminated the
      trial stops with no dose.
    - Exploration last: n_d >= ``explore_n`` (9), p < lambda_d and the upper
      neighbour untried: go to the upper neighbour.

    ``variant="app"``: the decision rules of the authors' BOIN12 app as
    reconstructed in R package escalation 0.2.3 (it reproduces the paper's
    worked example and 109 app decisions): admissibility P(p_T > phi_t) < c_t
    and P(p_E < phi_e) < c_e, re-evaluated for the three neighbours at each
    decision and not propagated; in order: (1) n_d >= 9, p < lambda_d and
    d + 1 untried: go to d + 1; (2) p >= lambda_d: de-escalate (stay at the
    lowest tier, whatever its data); (3) lambda_e < p and n_d >= 6: the
    admissible tier of {d - 1, d} with the higher DS; (4) otherwise the
    admissible tier of {d - 1, d, d + 1} with the highest DS, ties to the
    higher; no admissible candidate: stop. It never stops for toxicity at the
    lowest tier ("1TTT" says treat again at tier 1), which is why it is not
    the default. The trial stops when any tier reaches ``cap`` (12).

    Both stop at ``max_n``. Final OBD (as the authors' simulation code):
    toxicity by isotonic regression of (y + 0.05)/(n + 0.1), weights n + 0.1,
    + 0.001 j; estimated MTD = the tier closest to phi_t; response by unimodal
    isotonic regression (weights n + 0.5) averaged over the mode position with
    binomial-likelihood weights, + 0.01 j; utility of the estimates (under
    independence); OBD = the best utility among tried, admissible tiers at or
    below the estimated MTD (the lower on ties); none if there is none (the
    authors' code then names tier 1). A trial stopped by the design's own
    elimination rules (authors' variant) selects no dose.
    """

    kind = "BOIN12"
    uses_efficacy = True
    #: The exact engine merges each cohort's outcomes on :meth:`merge_key` before deciding.
    exact_merge_children = True

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
    variant: str = dataclasses.field(default="authors", kw_only=True)

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
        if self.variant not in VARIANTS:
            raise DesignError(f"variant = {self.variant!r} must be one of: {', '.join(VARIANTS)}")
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
        return "BOIN12" + ("" if self.variant == "authors" else " (app rules)")

    @property
    def target(self) -> float:
        return self.phi_t

    @property
    def obd_definition(self):
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
        """Largest n of the tabulated desirability and admissibility: what a tier can hold (the cap plus a
        cohort, or max_n), at most ``_TABLE_N`` (the table has (n + 1)^4 cells); larger n are computed."""
        return min(self.max_n, self.cap + self.cohort_size - 1, _TABLE_N)

    @cached_property
    def _tables(self):
        """Desirability by (n, neither, DLT-only, response-only) cells and admissibility by (n, y, e)."""
        L = self._limit
        n = np.arange(L + 1)[:, None, None]
        y = np.arange(L + 1)[None, :, None]
        e = np.arange(L + 1)[None, None, :]
        tox = special.betaincc(1 + y, np.maximum(1 + n - y, 1e-9), self.phi_t)
        fut = special.betainc(1 + e, np.maximum(1 + n - e, 1e-9), self.phi_e)
        adm = (tox < self.c_t) & (fut < self.c_e)
        # desirability by (n, y, e, ye): x = utility-weighted cell counts / 100
        n4 = np.arange(L + 1)[:, None, None, None].astype(float)
        y4 = np.arange(L + 1)[None, :, None, None].astype(float)
        e4 = np.arange(L + 1)[None, None, :, None].astype(float)
        b4 = np.arange(L + 1)[None, None, None, :].astype(float)
        cells = (n4 - y4 - e4 + b4, y4 - b4, e4 - b4, b4)
        x = sum(u * c for u, c in zip(self.utility, cells)) / 100
        a = np.broadcast_to(1 + x, x.shape)
        b = np.maximum(1 + n4 - x, 1e-9)
        # the incomplete beta once per distinct (a, b) pair (the same numbers, far fewer calls)
        pairs, inverse = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0, return_inverse=True)
        with np.errstate(invalid="ignore"):
            ds = special.betaincc(pairs[:, 0], pairs[:, 1], self.benchmark / 100)[inverse.reshape(-1)].reshape(b.shape)
        return adm, ds

    def pseudo_responses(self, state: TrialState) -> np.ndarray:
        return sum(u * c for u, c in zip(self.utility, _cells(state))) / 100

    def desirability(self, state: TrialState) -> np.ndarray:
        """DS = P(standardised utility > u_b / 100 | data), shape ``(n_trials, n_tiers)``."""
        n = np.asarray(state.n)
        if n.max(initial=0) <= self._limit:
            ds = self._tables[1]
            w = ds.shape[0]
            return ds.ravel().take(((n * w + np.asarray(state.y)) * w + _integral(state.e)) * w + _integral(state.ye))
        x = np.asarray(self.pseudo_responses(state), float)
        nf = np.broadcast_to(np.asarray(n, float), x.shape)
        # the incomplete beta once per distinct (n, pseudo-responses) pair (few of them; the same values)
        pairs, inverse = np.unique(np.stack([nf.ravel(), x.ravel()], axis=1), axis=0, return_inverse=True)
        ds = special.betaincc(1 + pairs[:, 1], 1 + pairs[:, 0] - pairs[:, 1], self.benchmark / 100)
        return ds[inverse.reshape(-1)].reshape(x.shape)

    def admissible(self, state: TrialState) -> np.ndarray:
        """Tiers the design may treat at, shape ``(n_trials, n_tiers)``: not eliminated (authors' rules),
        or the app's admissibility (P(p_T > phi_t) < c_t and P(p_E < phi_e) < c_e, whatever n)."""
        if self.variant == "authors":
            tox, futile = self.elimination(state)
            return ~eliminated(tox, futile)
        n = np.asarray(state.n)
        if n.max(initial=0) <= self._limit:
            return self._tables[0][n, np.asarray(state.y), _integral(state.e)]
        n, y, e, _ = _counts(state)
        tox = special.betaincc(1 + y, 1 + n - y, self.phi_t)
        fut = special.betainc(1 + e, 1 + n - e, self.phi_e)
        return (tox < self.c_t) & (fut < self.c_e)

    @cached_property
    def _elimination_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per n = 0.._ELIM_TABLE_N: the fewest DLTs that eliminate a tier (n + 1: none) and the most
        responses that eliminate it for futility (-1: none); both need n >= 3, toxicity at least 3 DLTs."""
        L = _ELIM_TABLE_N
        n = np.arange(L + 1)[:, None]
        x = np.arange(L + 1)[None, :]
        valid = (x <= n) & (n >= 3)
        with np.errstate(invalid="ignore"):
            over = valid & (x >= 3) & (special.betaincc(1 + x, np.maximum(1 + n - x, 1e-9), self.phi_t) > self.c_t)
            futile = valid & (special.betainc(1 + x, np.maximum(1 + n - x, 1e-9), self.phi_e) > self.c_e)
        fewest = np.where(over.any(axis=1), over.argmax(axis=1), n[:, 0] + 1)
        most = np.where(futile.any(axis=1), L - futile[:, ::-1].argmax(axis=1), -1)
        return fewest, most

    def elimination(self, state: TrialState) -> tuple[np.ndarray, np.ndarray]:
        """The authors' elimination on each tier's own counts, shape ``(n_trials, n_tiers)`` each: too toxic
        (P(p_T > phi_t | data) > c_t, n >= 3, at least 3 DLTs) and futile (P(p_E < phi_e | data) > c_e,
        n >= 3). A tier too toxic also eliminates every tier above it (see :meth:`admissible`)."""
        n = np.asarray(state.n)
        y = np.asarray(state.y)
        e = _integral(state.e)
        if n.max(initial=0) <= _ELIM_TABLE_N:
            fewest, most = self._elimination_bounds
            return y >= fewest[n], e <= most[n]
        with np.errstate(invalid="ignore"):
            tox = (n >= 3) & (y >= 3) & (special.betaincc(1 + y, np.maximum(1 + n - y, 1e-9), self.phi_t) > self.c_t)
            fut = (n >= 3) & (special.betainc(1 + e, np.maximum(1 + n - e, 1e-9), self.phi_e) > self.c_e)
        return tox, fut

    def merge_key(self, state):
        """Each tier's patients, DLTs and responses, and patients with both where the utility depends on them.

        Every rule and the final choice read the counts through (n, y, e) and the summed utility
        u = u_N n + (u_T - u_N) y + (u_E - u_N) e + (u_N - u_T - u_E + u_B) ye: where the last coefficient is 0
        (the default (40, 0, 100, 60): u = 40 n - 40 y + 60 e) u is a function of (n, y, e) and ye is left out
        (merged states carry it as a mean); otherwise u and ye determine each other given (n, y, e)."""
        return merge_columns(state, self.merge_fields)

    @property
    def merge_fields(self) -> tuple:
        """The count fields of :meth:`merge_key` with their signs (the exact engine adds a cohort to a key in place):
        n, y, e, and ye where the utility reads it (signed as u grows with it, so that keys sort as the former
        (n, y, e, u) keys did)."""
        both = self._both_coefficient
        return (("n", 1), ("y", 1), ("e", 1)) + ((("ye", 1 if both > 0 else -1),) if both != 0 else ())

    @cached_property
    def _both_coefficient(self) -> float:
        """u_N - u_T - u_E + u_B: how the summed utility grows with the patients with both outcomes, given (n, y, e)."""
        un, ut, ue, ub = self.utility
        return un - ut - ue + ub

    # -- kernel ---------------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        rows = np.arange(state.n_trials)
        d = state.current
        p = state.y[rows, d] / np.maximum(state.n[rows, d], 1)
        # the authors' rules read the elimination flags, not the app's admissibility
        return self._move(state, p, self.desirability(state), None if self.variant == "authors" else
                          self.admissible(state))

    def _move(self, state: TrialState, p: np.ndarray, ds: np.ndarray, ok: np.ndarray) -> Decision:
        """The next tier from the DLT rate ``p`` at the current tier (n_trials,), the desirability ``ds``
        and, for the app's rules, the admissibility ``ok`` (n_trials, n_tiers); shared with TITE-BOIN12,
        whose :meth:`elimination` and ``ok`` come from its pending-outcome estimates."""
        if self.variant == "authors":
            return self._move_authors(state, p, ds, *self.elimination(state))
        return self._move_app(state, p, ds, ok)

    def _move_app(self, state: TrialState, p: np.ndarray, ds: np.ndarray, ok: np.ndarray) -> Decision:
        """The app's rules 1-4 and the cap (see the class docstring)."""
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

    def _move_authors(self, state: TrialState, p: np.ndarray, ds: np.ndarray, tox: np.ndarray,
                      futile: np.ndarray) -> Decision:
        """The authors' rules (see the class docstring) from each tier's own elimination flags ``tox`` and
        ``futile`` (n_trials, n_tiers)."""
        t, k = state.n.shape
        rows = np.arange(t)
        tiers = np.arange(k)[None, :]
        d = state.current
        nd = state.n[rows, d]
        lam_e, lam_d = self.boundaries
        gone = eliminated(tox, futile)
        below = np.where(~gone & (tiers < d[:, None]), tiers, -1).max(axis=1)       # -1: none
        above = np.where(~gone & (tiers > d[:, None]), tiers, k).min(axis=1)        # k: none
        gone_d = gone[rows, d]
        # elimination stops first: lowest tier too toxic, or nothing left
        no_tier = tox[:, 0] | gone.all(axis=1)
        capped = ~no_tier & (nd >= self.cap)
        # de-escalation (a tier too toxic on its own counts de-escalates whatever p)
        deesc = (p >= lam_d) | tox[rows, d]
        # otherwise the most desirable of d and its neighbours (eliminated tiers score 0; ties to the higher)
        score = np.where(gone, 0.0, ds)
        cand = np.stack([below, d, above], axis=1)
        up_ok = (above < k) & ((nd < self.n_star) | (p <= lam_e))
        pick = np.full((t, 3), -np.inf)
        pick[:, 0] = np.where(below >= 0, score[rows, np.maximum(below, 0)], -np.inf)
        pick[:, 1] = score[rows, d]
        pick[:, 2] = np.where(up_ok, score[rows, np.minimum(above, k - 1)], -np.inf)
        chosen = cand[rows, 2 - np.argmax(pick[:, ::-1], axis=1)]
        nxt = np.where(deesc, np.where(below >= 0, below, d), chosen)
        dead_end = np.where(deesc, (below < 0) & gone_d, gone[rows, chosen])
        stop = no_tier | capped | dead_end
        # exploration of an untried higher tier, last
        explore = ~stop & (nd >= self.explore_n) & (above < k) & (p < lam_d) & \
            (state.n[rows, np.minimum(above, k - 1)] == 0)
        nxt = np.where(explore, above, nxt)
        reason = np.where(capped, np.int8(StopReason.N_AT_TIER),
                          np.where(stop, np.int8(StopReason.LOWEST_TIER_TOXIC), np.int8(0))).astype(np.int8)
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason)

    def conclude(self, state: TrialState, reason: np.ndarray) -> np.ndarray:
        """Final tier of stopped trials; no dose after the design's own stops for toxicity or elimination (as
        :func:`~doseesc.recommend` reports them)."""
        sel = super().conclude(state, reason)
        return np.where(reason == StopReason.LOWEST_TIER_TOXIC, -1, sel).astype(np.int32)

    # -- final OBD ------------------------------------------------------------
    def estimates(self, state: TrialState):
        """Final estimates: isotonic P(DLT), model-averaged unimodal P(response), and their utility."""
        t, k = state.n.shape
        n, y, e, _ = _counts(state)
        j = np.arange(1, k + 1)[None, :]
        # row by row (every operation acts on each row alone), so once per distinct row of the counts it reads
        # and broadcast: the same numbers (tests/test_exact_obd_merge.py checks a batch against its rows alone)
        rows, back = distinct_rows([n, y])
        pt = isotonic(((y + 0.05) / (n + 0.1))[rows], (n + 0.1)[rows], np.ones((rows.size, k), dtype=bool))[back] \
            + 0.001 * j
        rows, back = distinct_rows([n, e])
        n, e = n[rows], e[rows]
        pe_raw = (e + 0.05) / (n + 0.1)
        fits, loglik = [], []
        counts = _IntegralCounts(e, n)
        for m in range(k):
            f = np.clip(unimodal(pe_raw, n + 0.5, m), 1e-10, 1 - 1e-10)
            fits.append(f)
            loglik.append(counts.logpmf(f).sum(axis=1))
        ll = np.stack(loglik, axis=1)
        wts = np.exp(ll - ll.max(axis=1, keepdims=True))
        wts /= wts.sum(axis=1, keepdims=True)
        pe = np.einsum("tm,mtk->tk", wts, np.stack(fits))[back] + 0.01 * j
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
        util = (f"(highest P(utility > {self.benchmark:g}), with utility: response without DLT {e:g}, neither {n:g}, "
                f"both {b:g}, DLT without response {t:g})")
        if self.variant == "authors":
            rules = (f"BOIN12 (phi_t {self.phi_t:g}, phi_e {self.phi_e:g}; the authors' rules): cohorts of "
                     f"{self.cohort_size}; a tier is eliminated with those above it if P(DLT rate > {self.phi_t:g}) > "
                     f"{self.c_t:g} (n >= 3), alone if P(response rate < {self.phi_e:g}) > {self.c_e:g} (n >= 3); "
                     "stop with no dose when the lowest tier is eliminated for toxicity or no tier is left; "
                     f"de-escalate if the DLT rate >= {lam_d:.3f}; otherwise move among the current tier and its "
                     f"nearest non-eliminated neighbours to the most desirable {util}, escalation only if the DLT rate "
                     f"<= {lam_e:.3f} once {self.n_star} patients are treated; ")
        else:
            rules = (f"BOIN12 (phi_t {self.phi_t:g}, phi_e {self.phi_e:g}; the app's rules, no toxicity stop at the "
                     f"lowest tier): cohorts of {self.cohort_size}; de-escalate if the DLT rate >= {lam_d:.3f}; otherwise "
                     f"move among admissible neighbours to the most desirable {util}; ")
        return (rules + f"explore an untried higher tier after {self.explore_n} patients; stop when a tier has "
                f"{self.cap} patients; OBD by isotonic toxicity and unimodal response estimates; " + self.rules_text())
