"""EffTox: dose finding on efficacy-toxicity trade-offs (Thall & Cook 2004; Thall et al. 2014), vectorised.

The model (docs/notes/efftox.md): with x the standardised log dose
(log d - mean log d over the ladder),

    logit pi_T(x) = mu_T + beta_T x,    logit pi_E(x) = mu_E + beta_E1 x + beta_E2 x^2,

and the two binary outcomes joined by the Gumbel/Morgenstern association
psi, independent normal priors on the six parameters.

Posterior by importance sampling with a proposal fitted to each state, from
a *fixed* point set (deterministic given the design: exact enumeration, dose
paths and :func:`~doseesc.recommend` agree with the Monte Carlo engine; no MCMC,
no loop over trials). For every state at once: (1) the posterior modes and
curvatures of the two marginal logistic models with psi = 0 (toxicity on the
DLT counts, efficacy on the response counts; damped Newton, log-concave);
(2) the ``draws`` points of a 7-dimensional Sobol net (centred in its cells)
mapped to a multivariate t (5 df) around those modes with the curvature's
covariance inflated by 1.3, and psi from its prior; (3) weights prior x full
likelihood (association included) / proposal. The proposal's ESS is about half
the points in every state (the prior as proposal keeps about 0.2% of its points
after 30 patients). Each distinct state is computed once and remembered; each
marginal mode once per distinct (patients, events) row; the work on the points
is single precision, each step elementwise or per row (docs/notes/efftox.md).
"""

from __future__ import annotations

import dataclasses
import math
from functools import cached_property

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from ..limits import short
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, check_prob, register

optimize = lazy("scipy.optimize")
special = lazy("scipy.special")
qmc = lazy("scipy.stats.qmc")

#: The six model parameters, in the order of ``prior_mean`` and ``prior_sd``.
PARAMETERS = ("mu_T", "beta_T", "mu_E", "beta_E1", "beta_E2", "psi")
#: Thall et al. (2014, Clin Trials 11:657), prostate cancer example, as in trialr's EffTox vignette.
THALL_2014_MEAN = (-7.9593, 1.5482, 0.7367, 3.4181, 0.0, 0.0)
THALL_2014_SD = (3.5487, 3.5018, 2.5423, 2.4406, 0.2, 1.0)
#: Fewest and most points of the sampler per state (powers of two).
MIN_DRAWS, MAX_DRAWS = 2 ** 4, 2 ** 16
#: The proposal: multivariate t with this many degrees of freedom, its scale the marginal models' posterior
#: covariance inflated by this factor (in SD).
PROPOSAL_DF = 5.0
PROPOSAL_INFLATE = 1.3
#: Damped Newton for the marginal modes: iterations, and the largest change of a parameter in one step.
NEWTON_STEPS, NEWTON_MAX_STEP = 60, 2.0


def _cholesky(h: dict, d: int) -> dict:
    """Lower Cholesky factor of symmetric positive definite d x d matrices given by their lower entries
    ``h[i, j]`` (i >= j), each an array over rows; written out so that every row is computed by the same
    elementwise instructions whatever the number of rows (no LAPACK call, whose blocking may depend on it)."""
    el = {}
    for j in range(d):
        el[j, j] = np.sqrt(h[j, j] - sum(el[j, m] * el[j, m] for m in range(j)))
        for i in range(j + 1, d):
            el[i, j] = (h[i, j] - sum(el[i, m] * el[j, m] for m in range(j))) / el[j, j]
    return el


def _chol_solve(el: dict, g: list, d: int) -> list:
    """Solve L L^T v = g for the factor ``el`` of :func:`_cholesky` (g: d arrays over rows)."""
    z = []
    for i in range(d):
        z.append((g[i] - sum(el[i, m] * z[m] for m in range(i))) / el[i, i])
    v = [None] * d
    for i in reversed(range(d)):
        v[i] = (z[i] - sum(el[m, i] * v[m] for m in range(i + 1, d))) / el[i, i]
    return v


def _inverse_cholesky(h: dict, d: int) -> np.ndarray:
    """Lower Cholesky factor of the inverse of the matrices ``h`` (as :func:`_cholesky`): shape (s, d, d)."""
    el = _cholesky(h, d)
    inv = {}                                    # L^-1, lower triangular
    for j in range(d):
        inv[j, j] = 1 / el[j, j]
        for i in range(j + 1, d):
            inv[i, j] = -sum(el[i, m] * inv[m, j] for m in range(j, i)) / el[i, i]
    cov = {(i, j): sum(inv[m, i] * inv[m, j] for m in range(i, d)) for i in range(d) for j in range(i + 1)}
    low = _cholesky(cov, d)                     # H^-1 = L^-T L^-1; its own lower factor
    out = np.zeros((next(iter(h.values())).shape[0], d, d))
    for (i, j), v in low.items():
        out[:, i, j] = v
    return out


def _newton(X: np.ndarray, n: np.ndarray, y: np.ndarray, mean: np.ndarray, prec: np.ndarray):
    """Mode and the lower Cholesky factor of the inverse negative Hessian of a logistic regression's log
    posterior, for every row at once: design ``X`` (k, d), patients and events ``n``, ``y`` (s, k), independent
    normal prior (``mean``, precisions ``prec``). Damped Newton from the prior mean (the log posterior is
    strictly concave, so it converges); a row stops moving once its step is below 1e-10 in every parameter.
    Every row is computed by elementwise instructions of its own (sums over tiers, d x d algebra written
    out), so its result does not depend on the other rows. Returns (s, d) and (s, d, d)."""
    s_rows, d = n.shape[0], X.shape[1]
    theta = np.tile(mean, (s_rows, 1))
    pairs = [(i, j) for i in range(d) for j in range(i + 1)]
    xx = {(i, j): X[:, i] * X[:, j] for i, j in pairs}

    def hessian(th, nn):
        p = special.expit(sum(th[:, i:i + 1] * X[:, i] for i in range(d)))     # (rows, k)
        w = nn * p * (1 - p)
        return p, {(i, j): (w * xx[i, j]).sum(axis=1) + (prec[i] if i == j else 0.0) for i, j in pairs}

    active = np.arange(s_rows)
    for _ in range(NEWTON_STEPS):
        th, nn = theta[active], n[active]
        p, h = hessian(th, nn)
        r = y[active] - nn * p
        grad = [(r * X[:, i]).sum(axis=1) - (th[:, i] - mean[i]) * prec[i] for i in range(d)]
        step = np.clip(np.stack(_chol_solve(_cholesky(h, d), grad, d), axis=1), -NEWTON_MAX_STEP, NEWTON_MAX_STEP)
        theta[active] = th + step
        active = active[np.abs(step).max(axis=1) >= 1e-10]
        if active.size == 0:
            break
    return theta, _inverse_cholesky(hessian(theta, n)[1], d)


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a non-negative whole-number array (s, c) and the index of each row among them, as
    ``np.unique(rows, axis=0, return_inverse=True)`` up to the order of the distinct rows, but much faster:
    the columns are packed into as few 62-bit integer keys as they fit in, sorted by ``np.lexsort``."""
    rows = np.asarray(rows)
    s_rows, n_cols = rows.shape
    base = int(rows.max(initial=0)) + 1
    per = n_cols if base == 1 else int(62 // math.log2(base))
    if s_rows == 0 or per == 0:
        uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
        return uniq, inverse.ravel()
    keys = []
    for lo in range(0, n_cols, per):
        key = np.zeros(s_rows, np.int64)
        for col in rows[:, lo:lo + per].T.astype(np.int64):
            key = key * base + col
        keys.append(key)
    order = np.lexsort(keys[::-1])
    new = np.zeros(s_rows, bool)
    new[0] = True
    for key in keys:
        sk = key[order]
        new[1:] |= sk[1:] != sk[:-1]
    inverse = np.empty(s_rows, np.int64)
    inverse[order] = np.cumsum(new) - 1
    return rows[order[new]], inverse


def _num(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DesignError(f"{key} = {short(value)} must be a number")
    v = float(value)
    if not math.isfinite(v):
        raise DesignError(f"{key} = {value!r} must be finite")
    return v


def efftox_p(eff0: float, tox1: float, eff_star: float, tox_star: float) -> float:
    """The power p of the L^p contour through (eff0, 0), (1, tox1) and (eff_star, tox_star).

    The contour is the set of (pi_E, pi_T) with ((1 - pi_E)/(1 - eff0))^p + (pi_T/tox1)^p = 1; it passes
    through the first two points for every p, and p is the unique root of a^p + b^p = 1 with
    a = (1 - eff_star)/(1 - eff0) and b = tox_star/tox1, both in (0, 1) for a trade-off point (a^p + b^p
    falls from 2 at p = 0 to 0 as p grows). Refused (naming key and value) unless the third point is a
    trade-off: eff0 < eff_star < 1 and 0 < tox_star < tox1.
    """
    eff0 = check_prob(eff0, "eff0")
    tox1 = check_prob(tox1, "tox1")
    eff_star = check_prob(eff_star, "eff_star")
    tox_star = check_prob(tox_star, "tox_star")
    if eff_star <= eff0:
        raise DesignError(f"eff_star = {eff_star:g} is not above eff0 = {eff0:g}: the contour points are not a trade-off "
                          "(the third point (eff_star, tox_star) must buy more efficacy than (eff0, 0) with some "
                          "toxicity: eff0 < eff_star < 1 and 0 < tox_star < tox1)")
    if tox_star >= tox1:
        raise DesignError(f"tox_star = {tox_star:g} is not below tox1 = {tox1:g}: the contour points are not a trade-off "
                          "(the third point (eff_star, tox_star) must allow less toxicity than (1, tox1), which has "
                          "certain efficacy: eff0 < eff_star < 1 and 0 < tox_star < tox1)")
    la = math.log((1 - eff_star) / (1 - eff0))
    lb = math.log(tox_star / tox1)
    f = lambda p: math.exp(p * la) + math.exp(p * lb) - 1.0  # noqa: E731
    hi = 1.0
    while f(hi) > 0:
        hi *= 2
        if hi > 1e6:  # pragma: no cover - a and b both within 1e-6 of 1
            raise DesignError(f"eff_star = {eff_star:g}, tox_star = {tox_star:g}: the contour is too close to the "
                              "corner (1, 0) to solve for p")
    return float(optimize.brentq(f, 1e-12, hi, xtol=1e-14, rtol=1e-14))


@register
@dataclasses.dataclass(frozen=True)
class EffTox(Design):
    """EffTox (Thall & Cook 2004, Biometrics 60:684; priors as Thall et al. 2014, Clin Trials 11:657).

    - ``doses``: the real doses of the tiers (positive, increasing; any unit): the model's covariate is
      x = log d - mean(log d).
    - Model (module doc) with normal priors ``prior_mean``, ``prior_sd`` on (mu_T, beta_T, mu_E, beta_E1,
      beta_E2, psi); defaults: the Thall et al. (2014) prostate cancer example.
    - Acceptable tier: P(pi_E > ``eff_min`` | data) > ``p_e`` and P(pi_T < ``tox_max`` | data) > ``p_t``,
      and within one tier of the tried range (no untried tier skipped, up or down; trialr's rule).
    - Desirability delta(pi_E, pi_T) = 1 - (((1 - pi_E)/(1 - eff0))^p + (pi_T/tox1)^p)^(1/p) at the
      posterior means of pi_E and pi_T, with p the contour through (``eff0``, 0), (1, ``tox1``) and
      (``eff_star``, ``tox_star``) (:func:`efftox_p`).
    - First cohort at ``start_tier`` (1-based); after each cohort the next goes to the most desirable acceptable
      tier (the lower on exact ties); none acceptable: stop, no dose.
    - Final choice: the most desirable acceptable tier, among tried tiers (``final_tried_only``, default;
      False: any acceptable tier, as the next-cohort rule).
    - ``draws``: points of the importance sampler per state (a power of 2; module doc).
    """

    kind = "EffTox"
    uses_efficacy = True

    doses: tuple[float, ...]
    eff_min: float
    tox_max: float
    eff0: float
    tox1: float
    eff_star: float
    tox_star: float
    p_e: float = 0.1
    p_t: float = 0.1
    n_tiers: int | None = None
    cohort_size: int = 3
    max_n: int = dataclasses.field(kw_only=True)
    prior_mean: tuple[float, ...] = dataclasses.field(default=THALL_2014_MEAN, kw_only=True)
    prior_sd: tuple[float, ...] = dataclasses.field(default=THALL_2014_SD, kw_only=True)
    start_tier: int = dataclasses.field(default=1, kw_only=True)
    final_tried_only: bool = dataclasses.field(default=True, kw_only=True)
    draws: int = dataclasses.field(default=2 ** 7, kw_only=True)

    def __post_init__(self):
        if isinstance(self.doses, (str, bytes, dict)) or not hasattr(self.doses, "__len__"):
            raise DesignError(f"doses = {short(self.doses)} must be a list of positive numbers")
        doses = tuple(_num(v, f"doses[{i}]") for i, v in enumerate(self.doses))
        if not doses:
            raise DesignError("doses: at least one tier is needed")
        for i, v in enumerate(doses):
            if v <= 0:
                raise DesignError(f"doses[{i}] = {v:g} must be positive (the model uses log dose)")
            if i and v <= doses[i - 1]:
                raise DesignError(f"doses[{i}] = {v:g} is not above doses[{i - 1}] = {doses[i - 1]:g}: the doses "
                                  "must be strictly increasing")
        object.__setattr__(self, "doses", doses)
        if self.n_tiers is None:
            object.__setattr__(self, "n_tiers", len(doses))
        check_int(self.n_tiers, "n_tiers")
        if self.n_tiers != len(doses):
            raise DesignError(f"n_tiers = {self.n_tiers} but doses has {len(doses)} values")
        for key in ("eff_min", "tox_max", "p_e", "p_t"):
            object.__setattr__(self, key, check_prob(getattr(self, key), key))
        object.__setattr__(self, "_p", efftox_p(self.eff0, self.tox1, self.eff_star, self.tox_star))
        for key in ("eff0", "tox1", "eff_star", "tox_star"):
            object.__setattr__(self, key, float(getattr(self, key)))
        for key, low in (("prior_mean", None), ("prior_sd", 0.0)):
            raw = getattr(self, key)
            if isinstance(raw, (str, bytes, dict)) or not hasattr(raw, "__len__") or len(raw) != 6:
                raise DesignError(f"{key} = {short(raw)} must be 6 numbers, for {', '.join(PARAMETERS)}")
            vals = tuple(_num(v, f"{key}[{i}] ({PARAMETERS[i]})") for i, v in enumerate(raw))
            if low is not None:
                for i, v in enumerate(vals):
                    if v <= low:
                        raise DesignError(f"{key}[{i}] ({PARAMETERS[i]}) = {v:g} must be positive")
            object.__setattr__(self, key, vals)
        check_int(self.cohort_size, "cohort_size")
        check_int(self.max_n, "max_n")
        check_int(self.start_tier, "start_tier", maximum=self.n_tiers)
        if not isinstance(self.final_tried_only, (bool, np.bool_)):
            raise DesignError(f"final_tried_only = {self.final_tried_only!r} must be true or false")
        check_int(self.draws, "draws", minimum=MIN_DRAWS, maximum=MAX_DRAWS)
        if self.draws & (self.draws - 1):
            raise DesignError(f"draws = {self.draws} must be a power of 2 (a Sobol net), e.g. {2 ** 7}")
        self._check_slots()

    @classmethod
    def thall2014(cls, max_n: int = 39) -> "EffTox":
        """The Thall et al. (2014) prostate cancer design (trialr's EffTox vignette): doses 1, 2, 4, 6.6 and 10,
        eff_min 0.5, tox_max 0.3, p_e = p_t = 0.1, contour through (0.5, 0), (1, 0.65) and (0.7, 0.25), the
        paper's priors, 39 patients in cohorts of 3."""
        return cls(doses=(1.0, 2.0, 4.0, 6.6, 10.0), eff_min=0.5, tox_max=0.3, eff0=0.5, tox1=0.65, eff_star=0.7,
                   tox_star=0.25, p_e=0.1, p_t=0.1, max_n=max_n)

    @classmethod
    def example(cls) -> "EffTox":
        """:meth:`thall2014` with two cohorts (max_n = 6), small enough for exact enumeration (contract checks)."""
        return cls.thall2014(max_n=6)

    @property
    def label(self) -> str:
        return "EffTox"

    @property
    def target(self) -> float:
        """The highest acceptable toxicity probability ``tox_max`` (what rule slots such as ``safety_cutoff`` use)."""
        return self.tox_max

    @property
    def start(self) -> int:
        return self.start_tier - 1

    @property
    def p(self) -> float:
        """The contour's power (:func:`efftox_p`)."""
        return self._p

    def __getstate__(self) -> dict:
        """The design without its posterior memo and prior points (a worker process builds its own)."""
        state = dict(self.__dict__)
        state.pop("_memo", None)
        state.pop("_points", None)
        return state

    # -- the model -------------------------------------------------------------
    @property
    def x(self) -> np.ndarray:
        """Standardised log doses, shape ``(n_tiers,)``."""
        ld = np.log(np.asarray(self.doses))
        return ld - ld.mean()

    def probabilities(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pi_E, pi_T (shape ``(m, n_tiers)``) and the log cell probabilities (neither, DLT only, response
        only, both; shape ``(m, n_tiers, 4)``) at parameter points ``theta`` of shape ``(m, 6)``."""
        theta = np.atleast_2d(np.asarray(theta, float))
        x = self.x[None, :]
        mu_t, beta_t, mu_e, b1, b2, psi = (theta[:, i:i + 1] for i in range(6))
        pt = special.expit(mu_t + beta_t * x)
        pe = special.expit(mu_e + b1 * x + b2 * x * x)
        c = np.tanh(psi / 2)                      # (e^psi - 1) / (e^psi + 1)
        g = pe * (1 - pe) * pt * (1 - pt) * c
        cells = np.stack([(1 - pe) * (1 - pt) + g, (1 - pe) * pt - g, pe * (1 - pt) - g, pe * pt + g], axis=-1)
        return pe, pt, np.log(np.maximum(cells, 1e-300))   # floor: a cell that underflows, never observed, adds 0

    def desirability(self, pe, pt) -> np.ndarray:
        """delta(pi_E, pi_T) = 1 - L^p distance from (1, 0) scaled by the contour (0 on the contour)."""
        pe, pt = np.asarray(pe, float), np.asarray(pt, float)
        a = (1 - pe) / (1 - self.eff0)
        b = pt / self.tox1
        return 1 - (a ** self.p + b ** self.p) ** (1 / self.p)

    @staticmethod
    def sobol(n: int, dim: int) -> np.ndarray:
        """The first ``n`` (a power of 2) points of the unscrambled ``dim``-dimensional Sobol sequence, moved to
        the centres of their cells (+ 1/(2n)): deterministic, strictly inside (0, 1)."""
        return qmc.Sobol(d=dim, scramble=False).random_base2(int(round(math.log2(n)))) + 0.5 / n

    @cached_property
    def _points(self):
        """The fixed points: t (draws, 5), the standard multivariate t (``PROPOSAL_DF`` df) of the marginal
        parameters; c (draws,), tanh(psi / 2) at psi drawn from its prior; log_q (draws,), the log density of t
        up to a constant."""
        u = self.sobol(self.draws, 7)
        z = special.ndtri(u[:, :5])
        chi2 = special.chdtri(PROPOSAL_DF, u[:, 6])
        t = z / np.sqrt(chi2 / PROPOSAL_DF)[:, None]
        log_q = -(PROPOSAL_DF + 5) / 2 * np.log1p((t * t).sum(axis=1) / PROPOSAL_DF)
        psi = self.prior_mean[5] + self.prior_sd[5] * special.ndtri(u[:, 5])
        return t, np.tanh(psi / 2), log_q

    @staticmethod
    def cells(state: TrialState) -> np.ndarray:
        """Cell counts per tier (neither, DLT only, response only, both), shape ``(n_trials, n_tiers, 4)``
        (responses rounded: the exact engine's merged states carry them as means of equal values)."""
        n = np.asarray(state.n, np.int64)
        y = np.asarray(state.y, np.int64)
        e = np.round(np.asarray(state.e, float)).astype(np.int64)
        if state.ye is None:
            ye = np.maximum(y + e - n, 0)
        else:
            ye = np.round(np.asarray(state.ye, float)).astype(np.int64)
        return np.stack([n - y - e + ye, y - ye, e - ye, ye], axis=-1)

    #: Rows x points of a block of :meth:`_summaries` (about 1 MB per single-precision array: fewer fresh memory
    #: pages per block than larger blocks, less Python per row than smaller). Every step of a block is
    #: elementwise, a reduction along one row, or one matrix-vector product per row, so a state's summaries do
    #: not depend on the block, batch size, workers or what the memo already holds (tested).
    BLOCK = 2 ** 14

    def modes(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Posterior modes of the toxicity (mu_T, beta_T) and efficacy (mu_E, beta_E1, beta_E2) logistic models
        with psi = 0, and the lower Cholesky factors of their covariances (inverse negative Hessians), for count
        rows ``(s, 4 n_tiers)``: shapes (s, 2), (s, 2, 2), (s, 3), (s, 3, 3). Each model is solved once per
        distinct (patients, events) row: states differing only in the other outcome share it."""
        k = self.n_tiers
        c4 = np.asarray(counts, float).reshape(-1, k, 4)
        n = c4.sum(axis=2)
        x = self.x
        m0, s0 = np.asarray(self.prior_mean), np.asarray(self.prior_sd)
        out = []
        for cols, X, y in (((0, 1), np.stack([np.ones(k), x], axis=1), c4[..., 1] + c4[..., 3]),
                           ((2, 3, 4), np.stack([np.ones(k), x, x * x], axis=1), c4[..., 2] + c4[..., 3])):
            mean, prec = m0[list(cols)], 1 / s0[list(cols)] ** 2
            uniq, inverse = _unique_rows(np.concatenate([n, y], axis=1))
            theta, chol = _newton(X, uniq[:, :k], uniq[:, k:], mean, prec)
            out += [theta[inverse], chol[inverse]]
        return tuple(out)

    def _summaries(self, counts: np.ndarray, ess: bool = False) -> np.ndarray:
        """Posterior summaries of distinct count rows ``(s, 4 n_tiers)``: shape ``(s, 4 n_tiers)`` with E[pi_E],
        E[pi_T], P(pi_E > eff_min), P(pi_T < tox_max) per tier; with ``ess``, one more column, the effective
        number of points (sum w)^2 / sum w^2 (module doc)."""
        k = self.n_tiers
        s_rows = counts.shape[0]
        out = np.empty((s_rows, 4 * k + bool(ess)))
        if s_rows == 0:
            return out
        counts = np.asarray(counts, float)
        mode_t, lt, mode_e, le = self.modes(counts)
        lt = lt * PROPOSAL_INFLATE                                            # (s, 2, 2)
        le = le * PROPOSAL_INFLATE                                            # (s, 3, 3)
        b = max(1, self.BLOCK // self.draws)
        # rows by their number of nonzero cell counts, so that a block's rows have about as many (the log
        # likelihood is computed for as many cells per row as the block's most)
        order = np.argsort((counts > 0).sum(axis=1), kind="stable")
        with np.errstate(over="ignore", under="ignore"):
            for lo in range(0, s_rows, b):
                rows = order[lo:lo + b]
                out[rows] = self._block(counts[rows], mode_t[rows], lt[rows], mode_e[rows], le[rows], ess)
        return out

    def _block(self, counts, mode_t, lt, mode_e, le, ess: bool) -> np.ndarray:
        """:meth:`_summaries` for one block of count rows, given the proposal (modes and scaled Cholesky factors).
        Single precision throughout (the sampler's own error is some 1e-2, single precision's some 1e-6). Call
        under ``np.errstate(over="ignore", under="ignore")``."""
        k = self.n_tiers
        f4 = np.float32
        t, c, log_q = (v.astype(f4) for v in self._points)
        m0, s0 = np.asarray(self.prior_mean[:5], f4), np.asarray(self.prior_sd[:5], f4)
        mode_t, lt, mode_e, le = (v.astype(f4) for v in (mode_t, lt, mode_e, le))
        # parameters at the points, (s, P) each: mode + L t (lower-triangular L written out); log prior - log t
        a = mode_t[:, 0:1] + lt[:, 0, 0:1] * t[:, 0]
        bt = mode_t[:, 1:2] + lt[:, 1, 0:1] * t[:, 0] + lt[:, 1, 1:2] * t[:, 1]
        g0 = mode_e[:, 0:1] + le[:, 0, 0:1] * t[:, 2]
        g1 = mode_e[:, 1:2] + le[:, 1, 0:1] * t[:, 2] + le[:, 1, 1:2] * t[:, 3]
        g2 = mode_e[:, 2:3] + le[:, 2, 0:1] * t[:, 2] + le[:, 2, 1:2] * t[:, 3] + le[:, 2, 2:3] * t[:, 4]
        log_w = sum(np.square((v - m0[i]) / s0[i]) for i, v in enumerate((a, bt, g0, g1, g2)))
        log_w *= f4(-0.5)
        log_w -= log_q
        # linear predictors (s, k, P) and both probabilities of each outcome without cancellation:
        # u = exp(-eta) (eta floored at -88 so that u stays finite), p = 1 / (1 + u), 1 - p = u p;
        # pq[0] = (1 - pi_E, pi_E), pq[1] = (1 - pi_T, pi_T), each flattened to rows (s k) x points
        s_rows, P = a.shape
        x = self.x.astype(f4)[None, :, None]
        neg = lambda v: np.negative(v)[:, None, :]   # noqa: E731
        pq = np.empty((2, 2, s_rows * k, P), f4)
        tmp = np.empty((s_rows, k, P), f4)
        for i, terms in enumerate(((g0, g1, g2), (a, bt))):
            u = pq[i, 0]
            u3 = u.reshape(s_rows, k, P)          # -eta = -c0 + (-c1) x [+ (-c2) x^2], written in place
            np.multiply(neg(terms[1]), x, out=u3)
            u3 += neg(terms[0])
            if len(terms) == 3:
                u3 += np.multiply(neg(terms[2]), x * x, out=tmp)
            np.minimum(u, f4(88), out=u)
            np.exp(u, out=u)
            p = np.add(u, 1, out=pq[i, 1])
            np.reciprocal(p, out=p)
            u *= p
        # cell probabilities P(a, b) = pi_E^a (1 - pi_E)^(1-a) pi_T^b (1 - pi_T)^(1-b) + (-1)^(a+b) g, with
        # g = pi_E (1 - pi_E) pi_T (1 - pi_T) tanh(psi/2): gs = (g, -g) per row and tier
        gs = np.empty((2, s_rows * k, P), f4)
        np.multiply(pq[0, 0], pq[0, 1], out=gs[0])
        gs[0] *= pq[1, 0]
        gs[0] *= pq[1, 1]
        gs[0] *= c
        np.negative(gs[0], out=gs[1])
        # log likelihood: for each row its nonzero cell counts (tier j, cell), in the order of (j, cell), padded
        # to the block's most with count 0; log cell probability (floored at 1e-30) x count, summed in order
        cnt = counts.reshape(s_rows, 4 * k)
        nz = cnt > 0
        m = max(1, int(nz.sum(axis=1).max()))
        idx = np.argsort(~nz, axis=1, kind="stable")[:, :m]                  # (s, m) cells, nonzero first
        ncell = np.take_along_axis(cnt, idx, axis=1).astype(f4)[:, :, None]
        base = np.arange(s_rows)[:, None] * k + idx // 4                      # row of pq[i, j] and gs[i]
        eff, tox = (idx % 4) // 2, idx % 2
        rows = s_rows * k
        term = np.take(pq[0].reshape(-1, P), eff * rows + base, axis=0)       # (s, m, P)
        term *= np.take(pq[1].reshape(-1, P), tox * rows + base, axis=0)
        term += np.take(gs.reshape(-1, P), (eff != tox) * rows + base, axis=0)
        np.maximum(term, f4(1e-30), out=term)
        np.log(term, out=term)
        term *= ncell
        for i in range(m):                       # in order, so that padding (exact zeros) changes nothing
            log_w += term[:, i]
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= w.sum(axis=1, keepdims=True)
        # summaries: weighted means of pi_E, pi_T and the two indicators (one matrix-vector product per row)
        pe, pt = pq[0, 1].reshape(s_rows, k, P), pq[1, 1].reshape(s_rows, k, P)
        hits = np.empty((2, s_rows, k, P), f4)
        np.greater(pe, self.eff_min, out=hits[0])
        np.less(pt, self.tox_max, out=hits[1])
        w3 = w[:, :, None]
        parts = [np.matmul(v, w3)[:, :, 0] for v in (pe, pt, hits[0], hits[1])]
        if ess:
            w64 = w.astype(float)
            parts.append(np.square(w64.sum(axis=1, keepdims=True)) / (w64 * w64).sum(axis=1, keepdims=True))
        return np.concatenate(parts, axis=1, dtype=float)

    #: Most states the memo of :meth:`posterior` holds; past it the memo starts again.
    MEMO_LIMIT = 500_000

    @cached_property
    def _memo(self) -> dict:
        return {}

    def posterior(self, state: TrialState) -> dict[str, np.ndarray]:
        """Posterior summaries per trial and tier (shape ``(n_trials, n_tiers)``): ``eff`` and ``tox`` (posterior
        means of pi_E and pi_T), ``p_eff`` = P(pi_E > eff_min), ``p_tox`` = P(pi_T < tox_max),
        ``desirability`` (at the posterior means). Each distinct state is computed once and remembered by the
        design (:meth:`effective_points` gives the sampler's effective number of points)."""
        k = self.n_tiers
        counts = self.cells(state).reshape(state.n_trials, 4 * k)
        if counts.shape[0] == 0:
            rows = np.zeros((0, 4 * k))
        else:
            uniq, inverse = _unique_rows(counts)
            keys = [r.tobytes() for r in uniq]
            memo = self._memo
            found = [memo.get(key) for key in keys]
            miss = [i for i, v in enumerate(found) if v is None]
            if miss:
                fresh = self._summaries(uniq[miss])
                if len(memo) + len(miss) > self.MEMO_LIMIT:
                    memo.clear()
                for i, row in zip(miss, fresh):
                    memo[keys[i]] = row
                    found[i] = row
            rows = np.asarray(found)[inverse]
        eff, tox = rows[:, :k], rows[:, k:2 * k]
        return {"eff": eff, "tox": tox, "p_eff": rows[:, 2 * k:3 * k], "p_tox": rows[:, 3 * k:4 * k],
                "desirability": self.desirability(eff, tox)}

    def effective_points(self, state: TrialState) -> np.ndarray:
        """The importance sampler's effective number of points (sum w)^2 / sum w^2 per trial, shape
        ``(n_trials,)`` (a diagnostic: the posterior summaries' error grows as it falls)."""
        counts = self.cells(state).reshape(state.n_trials, 4 * self.n_tiers)
        return self._summaries(counts, ess=True)[:, -1]

    def acceptable(self, state: TrialState, post: dict | None = None) -> np.ndarray:
        """Tiers acceptable on the probability rules and within one tier of the tried range (no untried tier
        skipped), shape ``(n_trials, n_tiers)``."""
        post = self.posterior(state) if post is None else post
        ok = (post["p_eff"] > self.p_e) & (post["p_tox"] > self.p_t)
        return ok & self._reachable(state)

    def _reachable(self, state: TrialState) -> np.ndarray:
        k = self.n_tiers
        tiers = np.arange(k)[None, :]
        tried = np.asarray(state.n) > 0
        lowest = np.where(tried, tiers, k).min(axis=1)
        highest = np.where(tried, tiers, -1).max(axis=1)
        none = highest < 0
        lowest = np.where(none, self.start, lowest)
        highest = np.where(none, self.start, highest)
        return (tiers >= lowest[:, None] - 1) & (tiers <= highest[:, None] + 1)

    def admissible(self, state: TrialState) -> np.ndarray:
        return self.acceptable(state)

    def merge_key(self, state):
        return self.cells(state).reshape(state.n_trials, 4 * state.n.shape[1])

    # -- the kernel --------------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        post = self.posterior(state)
        ok = self.acceptable(state, post)
        score = np.where(ok, post["desirability"], -np.inf)
        nxt = np.argmax(score, axis=1).astype(np.int32)     # first maximum: the lower tier on exact ties
        stop = ~ok.any(axis=1)
        reason = np.where(stop, np.int8(StopReason.LOWEST_TIER_TOXIC), np.int8(0)).astype(np.int8)
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason)

    def select(self, state: TrialState) -> np.ndarray:
        post = self.posterior(state)
        ok = self.acceptable(state, post)
        if self.final_tried_only:
            ok &= np.asarray(state.n) > 0
        score = np.where(ok, post["desirability"], -np.inf)
        return np.where(ok.any(axis=1), np.argmax(score, axis=1), -1).astype(np.int32)

    def conclude(self, state: TrialState, reason: np.ndarray) -> np.ndarray:
        """Final tier of stopped trials; no dose after the design's own stop (no acceptable tier)."""
        sel = super().conclude(state, reason)
        return np.where(reason == StopReason.LOWEST_TIER_TOXIC, -1, sel).astype(np.int32)

    def to_dict(self) -> dict:
        out = super().to_dict()
        for key, default in (("prior_mean", THALL_2014_MEAN), ("prior_sd", THALL_2014_SD)):
            if tuple(out[key]) == default:
                out.pop(key)
        return out

    def describe(self) -> str:
        doses = ", ".join(f"{d:g}" for d in self.doses)
        return (f"EffTox (Thall & Cook 2004; Thall et al. 2014): doses {doses}; logistic toxicity and quadratic "
                f"logistic efficacy in the standardised log dose, Gumbel association; a tier is acceptable if "
                f"P(response rate > {self.eff_min:g}) > {self.p_e:g} and P(DLT rate < {self.tox_max:g}) > "
                f"{self.p_t:g}; cohorts of {self.cohort_size} at the most desirable acceptable tier on the "
                f"trade-off contour through ({self.eff0:g}, 0), (1, {self.tox1:g}) and ({self.eff_star:g}, "
                f"{self.tox_star:g}) (p = {self.p:.4f}); stop with no dose when no tier is acceptable; "
                + self.rules_text())
