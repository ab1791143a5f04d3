"""Two-parameter Bayesian logistic regression with escalation with overdose control (BLRM/EWOC).

Neuenschwander, Branson & Gsponer (2008, Stat Med 27:2420); EWOC after Babb, Rogatko & Zacks (1998,
Stat Med 17:1103). The design of OncoBayes2's single-agent BLRM and of crmPack's ``LogisticLogNormal``
with ``NextBestNCRM``. Facts and sources: docs/notes/blrm.md.

Model: ``logit P(DLT | d) = log(alpha) + beta * log(d / d_ref)``, ``beta > 0``, with a bivariate normal
prior (or a mixture of them) on ``theta = (log alpha, log beta)``.

The posterior is computed for all trials at once by deterministic quadrature on a fixed rectangular grid
in ``theta`` (no MCMC): the log-likelihood of every trial at every grid node is two matrix products of
the sufficient statistics (patients and DLTs per tier), ``y @ log p.T + (n - y) @ log(1 - p).T``, shape
``(n_trials, grid nodes)``. Posterior means use the trapezoid rule. Interval probabilities are one more
matrix product of the posterior weights with fixed per-node weights: for fixed beta, P(DLT | d) is monotone
in log alpha, so each interval is a half-line in log alpha; the density along log alpha is replaced by its
piecewise cubic interpolant (four nodes), integrated exactly above the interval's end (:func:`_share_above`,
error O(h^4)). With the default grid (121 x 41 nodes over +-5 prior SDs) interval probabilities agree with a
direct quadrature to 5e-4 (tests/test_blrm.py). Posterior summaries are memoised per distinct (n, y) as for
the CRM. Under the actual-dose model the engine gives the state each evaluable patient's actual dose
(``pt_dose``; :attr:`BLRM.uses_patient_doses`) and the model is fitted on those doses
(:meth:`BLRM.posterior_summary_patients`: each patient's term expanded in Chebyshev polynomials of the log dose,
with as many terms as each log(beta) row of the grid needs, so the log-likelihood is a few matrix products per
batch). ``prior_cov``, when given, sets ``prior_sd`` and ``prior_corr``; ``mixture``, when given, replaces the
single normal prior.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cached_property
from typing import ClassVar

import numpy as np

from ..errors import DesignError
from ..limits import short
from ..state import Decision, StopReason, TrialState
from .base import Design, check_int, check_prob, register
from .memo import count_key, memoised

#: Summary columns per tier held by the memo: P(under), P(over), posterior mean P(DLT).
_COLS = 3


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DesignError(f"{key} = {short(value)} must be a number")
    v = float(value)
    if not math.isfinite(v):
        raise DesignError(f"{key} = {short(value)} must be a finite number")
    return v


def _pair(value, key: str) -> tuple[float, float]:
    try:
        items = list(value)
    except TypeError:
        raise DesignError(f"{key} = {short(value)} must be a list of two numbers "
                          "(for log(alpha) and log(beta))") from None
    if len(items) != 2:
        raise DesignError(f"{key} = {short(value)} must be a list of two numbers (for log(alpha) and log(beta))")
    return (_number(items[0], f"{key}[0]"), _number(items[1], f"{key}[1]"))


def _component(mean, sd, corr, where: str) -> tuple[float, float, float, float, float]:
    """(m1, m2, s1, s2, rho) of one bivariate normal, checked; ``where`` names the keys for messages."""
    m = _pair(mean, f"{where}mean")
    s = _pair(sd, f"{where}sd")
    for i, v in enumerate(s):
        if v <= 0:
            raise DesignError(f"{where}sd[{i}] = {v:g}: the prior covariance is not positive definite "
                              "(a standard deviation must be > 0)")
    rho = _number(corr, f"{where}corr")
    if not -1 < rho < 1:
        raise DesignError(f"{where}corr = {rho:g}: the prior covariance is not positive definite "
                          "(the correlation must lie strictly between -1 and 1)")
    return (m[0], m[1], s[0], s[1], rho)


def _from_cov(cov, key: str) -> tuple[tuple[float, float], float]:
    """(sd pair, correlation) of a 2 x 2 covariance matrix, refused unless symmetric positive definite."""
    try:
        rows = [list(r) for r in cov]
    except TypeError:
        raise DesignError(f"{key} = {short(cov)} must be a 2 x 2 matrix [[v11, v12], [v21, v22]]") from None
    if len(rows) != 2 or any(len(r) != 2 for r in rows):
        raise DesignError(f"{key} = {short(cov)} must be a 2 x 2 matrix [[v11, v12], [v21, v22]]")
    c = [[_number(rows[i][j], f"{key}[{i}][{j}]") for j in range(2)] for i in range(2)]
    if abs(c[0][1] - c[1][0]) > 1e-12 * max(1.0, abs(c[0][1])):
        raise DesignError(f"{key} = {short(cov)} is not symmetric")
    det = c[0][0] * c[1][1] - c[0][1] ** 2
    if c[0][0] <= 0 or c[1][1] <= 0 or det <= 0:
        raise DesignError(f"{key} = {short(cov)} is not positive definite (variances {c[0][0]:g}, {c[1][1]:g}, "
                          f"determinant {det:g})")
    s1, s2 = math.sqrt(c[0][0]), math.sqrt(c[1][1])
    return (s1, s2), c[0][1] / (s1 * s2)


def _tail_of_kernel(u: np.ndarray) -> np.ndarray:
    """``int_u^inf phi(s) ds`` for the 4-point cubic Lagrange interpolation kernel ``phi`` (support [-2, 2],
    integral 1): ``phi(s) = (1 - s^2)(2 - s) / 2`` on ``|s| <= 1`` and ``(1 - s)(2 - s)(3 - s) / 6`` on
    ``1 <= |s| <= 2``. ``int_0^s phi`` is ``(2s - s^2/2 - 2s^3/3 + s^4/4) / 2`` up to 1 (13/24 at 1), then
    ``13/24 + [G(s) - G(1)] / 6`` with ``G(r) = 6r - 11r^2/2 + 2r^3 - r^4/4`` (1/2 at 2)."""
    s = np.minimum(np.abs(u), 2.0)
    inner = (2 * s - s ** 2 / 2 - 2 * s ** 3 / 3 + s ** 4 / 4) / 2

    def g(r):
        return 6 * r - 5.5 * r ** 2 + 2 * r ** 3 - r ** 4 / 4

    half = np.where(s <= 1, inner, 13.0 / 24 + (g(s) - g(1.0)) / 6)
    return np.where(u >= 0, 0.5 - half, 0.5 + half)


def _share_above(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Quadrature weight of each node ``a[i]`` (uniform spacing h) in the integral over ``a > t`` of a smooth
    function known at the nodes, in units of h.

    ``t`` has shape ``(len(a), ...)``, the same threshold for every node of a row along the first axis. The
    function is replaced by its piecewise cubic interpolant through the four nearest nodes (``sum_i f_i
    phi((a - a_i) / h)``, :func:`_tail_of_kernel`), integrated exactly above ``t``: node i gets
    ``int_{(t - a_i) / h}^inf phi``, 1 well below ``t`` (the trapezoid rule, spectrally accurate for the
    smooth, rapidly decaying posterior), 0 well above it, and a smooth share on the four nodes around it. The
    error is O(h^4) (the interpolant's), against O(h^2) for a cell-wise linear share."""
    z = (t - a.reshape((-1,) + (1,) * (t.ndim - 1))) / (a[1] - a[0])
    return _tail_of_kernel(z)


def _share_below(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """As :func:`_share_above` for the integral over ``a < t`` (each node's whole weight minus its share above;
    the end nodes carry half a cell, as in the trapezoid rule)."""
    w = 1.0 - _share_above(a, t)
    w[0] -= 0.5
    w[-1] -= 0.5
    return w


@register
@dataclasses.dataclass(frozen=True)
class BLRM(Design):
    """Bayesian logistic regression model with escalation with overdose control (EWOC).

    - Model: logit P(DLT | d) = log(alpha) + beta log(d / d_ref) on the tiers' ``doses``
      (nominal doses, in the ladder's unit; ``d_ref`` in the same unit).
    - Prior: (log alpha, log beta) bivariate normal with ``prior_mean``, ``prior_sd`` and
      ``prior_corr`` (or ``prior_cov``, a 2 x 2 covariance matrix); or ``mixture``, a list of
      components ``{weight, mean, sd, corr}`` (a mixture prior, e.g. historical data plus a
      robust component). Defaults: mean (logit 0.5 = 0, log 1 = 0), sd (2, 1), correlation 0
      (the single-agent example of OncoBayes2, after Neuenschwander et al. 2008).
    - Intervals of P(DLT): underdosing below ``boundaries[0]``, target between the boundaries,
      overdosing above ``boundaries[1]`` (default 0.16, 0.33).
    - Next cohort (EWOC): among tiers with P(overdosing) < ``ewoc`` (default 0.25) and within the
      escalation cap, the tier with the highest P(target) (the lower tier on ties).
    - Escalation cap: the next dose at most ``max_increase`` times the current tier's dose
      (default 2: at most doubling, as Neuenschwander et al. 2008 and OncoBayes2 protocols);
      ``escalate_by_one`` (default false) also limits escalation to one tier; ``max_increase = "none"``
      (or None) sets no dose cap. The rule slot
      ``forbid_skip`` (on by default) never lets a cohort skip an untried tier.
    - Own stop (safety): when no tier satisfies EWOC (P(overdosing) at the lowest tier >=
      ``ewoc``), the trial stops with no dose selected (reason: lowest tier too toxic).
    - Final MTD: among tiers given to at least one patient with P(overdosing) < ``ewoc``, the one
      with the highest P(target); none if no tried tier satisfies EWOC.

    ``max_n`` (required) and the rule slots (``stop_n_at_tier``, ``stopping``, ...) end trials.
    """

    kind = "BLRM"
    #: The actual-dose engine gives the state each evaluable patient's actual dose (``pt_dose``, ``pt_dlt``):
    #: the model is then fitted on the patients' own doses (:meth:`posterior_summary_patients`).
    uses_patient_doses: ClassVar[bool] = True
    #: Highest degree of the Chebyshev expansion, in the log dose, of each patient's term of the log-likelihood
    #: (:meth:`_cheb`); each log(beta) row of the grid keeps only the terms it needs: the dropped coefficients'
    #: absolute sum at most ``CHEB_TAIL`` at every node of the row (so at most that error per patient).
    CHEB_DEGREE: ClassVar[int] = 96
    CHEB_TAIL: ClassVar[float] = 1e-7

    doses: tuple[float, ...]
    d_ref: float
    n_tiers: int | None = None
    cohort_size: int = 3
    max_n: int = dataclasses.field(kw_only=True)
    prior_mean: tuple[float, float] = dataclasses.field(default=(0.0, 0.0), kw_only=True)
    prior_sd: tuple[float, float] = dataclasses.field(default=(2.0, 1.0), kw_only=True)
    prior_corr: float = dataclasses.field(default=0.0, kw_only=True)
    prior_cov: tuple | None = dataclasses.field(default=None, kw_only=True)
    mixture: tuple | None = dataclasses.field(default=None, kw_only=True)
    boundaries: tuple[float, float] = dataclasses.field(default=(0.16, 0.33), kw_only=True)
    ewoc: float = dataclasses.field(default=0.25, kw_only=True)
    max_increase: float | str | None = dataclasses.field(default=2.0, kw_only=True)   # a number, or "none"
    escalate_by_one: bool = dataclasses.field(default=False, kw_only=True)
    grid_points: tuple[int, int] = dataclasses.field(default=(121, 41), kw_only=True)
    grid_width: float = dataclasses.field(default=5.0, kw_only=True)

    def __post_init__(self):
        try:
            doses = tuple(self.doses)
        except TypeError:
            raise DesignError(f"doses = {short(self.doses)} must be a list of positive doses") from None
        if not doses:
            raise DesignError("doses: at least one tier is needed")
        doses = tuple(_number(v, f"doses[{i}]") for i, v in enumerate(doses))
        for i, v in enumerate(doses):
            if v <= 0:
                raise DesignError(f"doses[{i}] = {v:g} must be a positive dose")
            if i and v <= doses[i - 1]:
                raise DesignError(f"doses[{i}] = {v:g} is not above doses[{i - 1}] = {doses[i - 1]:g}: "
                                  "the doses must be strictly increasing")
        object.__setattr__(self, "doses", doses)
        d_ref = _number(self.d_ref, "d_ref")
        if d_ref <= 0:
            raise DesignError(f"d_ref = {short(self.d_ref)} must be a positive reference dose")
        object.__setattr__(self, "d_ref", d_ref)
        if self.n_tiers is None:
            object.__setattr__(self, "n_tiers", len(doses))
        check_int(self.n_tiers, "n_tiers")
        if self.n_tiers != len(doses):
            raise DesignError(f"n_tiers = {self.n_tiers} but doses has {len(doses)} values")
        check_int(self.cohort_size, "cohort_size")
        check_int(self.max_n, "max_n")
        # the prior
        object.__setattr__(self, "prior_mean", _pair(self.prior_mean, "prior_mean"))
        if self.prior_cov is not None:
            sd, rho = _from_cov(self.prior_cov, "prior_cov")
            cov = tuple(tuple(float(v) for v in row) for row in self.prior_cov)
            object.__setattr__(self, "prior_cov", cov)
            object.__setattr__(self, "prior_sd", sd)
            object.__setattr__(self, "prior_corr", rho)
        _component(self.prior_mean, self.prior_sd, self.prior_corr, "prior_")
        object.__setattr__(self, "prior_sd", _pair(self.prior_sd, "prior_sd"))
        object.__setattr__(self, "prior_corr", float(self.prior_corr))
        if self.mixture is not None:
            object.__setattr__(self, "mixture", self._check_mixture(self.mixture))
        # intervals, EWOC, cap
        b = _pair(self.boundaries, "boundaries")
        for i, v in enumerate(b):
            check_prob(v, f"boundaries[{i}]")
        if b[0] >= b[1]:
            raise DesignError(f"boundaries = {list(b)}: the underdosing bound must be below the overdosing bound")
        object.__setattr__(self, "boundaries", b)
        check_prob(self.ewoc, "ewoc")
        object.__setattr__(self, "ewoc", float(self.ewoc))
        if isinstance(self.max_increase, str) and self.max_increase.lower() == "none" or self.max_increase is False:
            object.__setattr__(self, "max_increase", None)
        if self.max_increase is not None:
            mi = _number(self.max_increase, "max_increase")
            if mi <= 1:
                raise DesignError(f"max_increase = {short(self.max_increase)} must be above 1 (the next dose at most "
                                  "this many times the current dose), or \"none\" for no dose cap")
            object.__setattr__(self, "max_increase", mi)
            for i in range(1, len(doses)):
                if doses[i] > mi * doses[i - 1] * (1 + 1e-12):
                    raise DesignError(
                        f"max_increase = {mi:g} forbids every escalation from tier {i} (dose {doses[i - 1]:g}) to "
                        f"tier {i + 1} (dose {doses[i]:g}, {doses[i] / doses[i - 1]:.3g} times): raise max_increase, "
                        "or set max_increase = \"none\" (no dose cap) with escalate_by_one = true")
        if not isinstance(self.escalate_by_one, (bool, np.bool_)):
            raise DesignError(f"escalate_by_one = {self.escalate_by_one!r} must be true or false")
        try:
            gp = tuple(self.grid_points)
        except TypeError:
            raise DesignError(f"grid_points = {short(self.grid_points)} must be two integers "
                              "(nodes along log(alpha) and log(beta))") from None
        if len(gp) != 2:
            raise DesignError(f"grid_points = {short(self.grid_points)} must be two integers")
        object.__setattr__(self, "grid_points",
                           (check_int(gp[0], "grid_points[0]", minimum=21, maximum=2001),
                            check_int(gp[1], "grid_points[1]", minimum=21, maximum=2001)))
        gw = _number(self.grid_width, "grid_width")
        if not 3 <= gw <= 20:
            raise DesignError(f"grid_width = {gw:g} must lie in [3, 20] (prior standard deviations each side)")
        object.__setattr__(self, "grid_width", gw)
        self._check_slots()

    @staticmethod
    def _check_mixture(mixture) -> tuple:
        if isinstance(mixture, dict) or isinstance(mixture, str):
            raise DesignError(f"mixture = {short(mixture)} must be a list of components {{weight, mean, sd, corr}}")
        try:
            comps = list(mixture)
        except TypeError:
            raise DesignError(f"mixture = {short(mixture)} must be a list of components "
                              "{weight, mean, sd, corr}") from None
        if not comps:
            raise DesignError("mixture: at least one component is needed")
        out = []
        for j, c in enumerate(comps):
            if not isinstance(c, dict):
                raise DesignError(f"mixture[{j}] = {short(c)} must be a table {{weight, mean, sd, corr}}")
            unknown = set(c) - {"weight", "mean", "sd", "corr"}
            if unknown:
                raise DesignError(f"mixture[{j}]: unknown key {sorted(unknown)[0]!r} (keys: weight, mean, sd, corr)")
            for key in ("weight", "mean", "sd"):
                if key not in c:
                    raise DesignError(f"mixture[{j}]: missing key {key!r}")
            w = _number(c["weight"], f"mixture[{j}].weight")
            if w <= 0:
                raise DesignError(f"mixture[{j}].weight = {w:g} must be positive")
            m1, m2, s1, s2, rho = _component(c["mean"], c["sd"], c.get("corr", 0.0), f"mixture[{j}].")
            out.append({"weight": w, "mean": [m1, m2], "sd": [s1, s2], "corr": rho})
        total = sum(c["weight"] for c in out)
        if abs(total - 1) > 1e-6:
            raise DesignError(f"mixture: the weights sum to {total:g}, not 1")
        return tuple(out)

    @classmethod
    def example(cls) -> "BLRM":
        return cls((1.0, 2.0, 4.0), 2.0, cohort_size=3, max_n=9, prior_mean=(-1.1, 0.0))

    @property
    def label(self) -> str:
        return "BLRM (EWOC)"

    # -- prior and grid ------------------------------------------------------
    @property
    def components(self) -> list[tuple[float, float, float, float, float, float]]:
        """Prior components ``(weight, m1, m2, s1, s2, rho)`` on (log alpha, log beta)."""
        if self.mixture is not None:
            return [(c["weight"], *c["mean"], *c["sd"], c["corr"]) for c in self.mixture]
        return [(1.0, *self.prior_mean, *self.prior_sd, self.prior_corr)]

    def log_prior(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log prior density (up to a constant) of (log alpha, log beta) = (``a``, ``b``), broadcast."""
        terms = []
        for w, m1, m2, s1, s2, rho in self.components:
            z1, z2 = (a - m1) / s1, (b - m2) / s2
            q = (z1 * z1 - 2 * rho * z1 * z2 + z2 * z2) / (1 - rho * rho)
            terms.append(math.log(w) - math.log(s1 * s2 * math.sqrt(1 - rho * rho)) - 0.5 * q)
        return np.logaddexp.reduce(np.stack(np.broadcast_arrays(*terms)), axis=0) if len(terms) > 1 else terms[0]

    @cached_property
    def _x(self) -> np.ndarray:
        return np.log(np.asarray(self.doses) / self.d_ref)

    @cached_property
    def _grid(self):
        """Nodes, prior, log P(DLT), log P(no DLT) and the interval fractions of every node and tier."""
        comps = self.components
        w = self.grid_width
        lo_a = min(m1 - w * s1 for _, m1, _, s1, _, _ in comps)
        hi_a = max(m1 + w * s1 for _, m1, _, s1, _, _ in comps)
        lo_b = min(m2 - w * s2 for _, _, m2, _, s2, _ in comps)
        hi_b = max(m2 + w * s2 for _, _, m2, _, s2, _ in comps)
        na, nb = self.grid_points
        a = np.linspace(lo_a, hi_a, na)
        b = np.linspace(lo_b, hi_b, nb)
        A, B = np.meshgrid(a, b, indexing="ij")
        A, B = A.ravel(), B.ravel()
        log_prior = self.log_prior(A, B)
        log_prior = log_prior - log_prior.max()
        slope = np.exp(B)[:, None] * self._x[None, :]                  # (G, K)
        eta = A[:, None] + slope
        logp = -np.logaddexp(0.0, -eta)
        log1mp = -np.logaddexp(0.0, eta)
        lo, hi = (math.log(c / (1 - c)) for c in self.boundaries)
        ta = np.ones(na)
        ta[[0, -1]] = 0.5
        tb = np.ones(nb)
        tb[[0, -1]] = 0.5
        tau = np.outer(ta, tb).ravel()                                  # trapezoid weights of the nodes
        rows = tb[np.tile(np.arange(nb), na)][:, None]                  # the log(beta) trapezoid weight of each node
        below = _share_below(a, (lo - slope).reshape(na, nb, -1)).reshape(na * nb, -1) * rows
        above = _share_above(a, (hi - slope).reshape(na, nb, -1)).reshape(na * nb, -1) * rows
        frac = np.concatenate([below, above, np.exp(logp) * tau[:, None], tau[:, None]], axis=1)   # (G, 3K + 1)
        return A, B, log_prior, logp.T.copy(), log1mp.T.copy(), frac

    def posterior_summary(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Posterior P(under), P(over) and mean P(DLT) per tier for each trial: shape ``(n_trials, 3, n_tiers)``.

        ``n``, ``y``: patients and DLTs per tier, shape ``(n_trials, n_tiers)``."""
        A, B, log_prior, logp_t, log1mp_t, frac = self._grid
        n = np.asarray(n, float)
        y = np.asarray(y, float)
        return self._summary_from_ll(y @ logp_t + (n - y) @ log1mp_t)

    def posterior_theta(self, n, y) -> np.ndarray:
        """Posterior means of (log alpha, log beta), shape ``(n_trials, 2)``."""
        A, B, log_prior, logp_t, log1mp_t, frac = self._grid
        n = np.asarray(n, float)
        y = np.asarray(y, float)
        ll = y @ logp_t + (n - y) @ log1mp_t + log_prior[None, :]
        ll -= ll.max(axis=1, keepdims=True)
        w = np.exp(ll) * frac[:, -1][None, :]
        return (w @ np.stack([A, B], axis=1)) / w.sum(axis=1, keepdims=True)

    # -- per-patient doses (the actual-dose model) ----------------------------------------------
    @cached_property
    def _cheb(self):
        """Chebyshev expansion of each patient's term ``log(1 + exp(eta))``, ``eta = log(alpha) + beta x``, in the
        log dose ``x = log(d / d_ref)`` on ``[lo, hi]`` (from 0.4 times the lowest tier's dose to 1.25 times the
        highest's), at every grid node, cut into blocks of log(beta) rows: ``(lo, hi, degree, blocks)``.

        The coefficients ``C`` (degree ``CHEB_DEGREE``) converge fast where beta is small (the term is nearly
        linear in x) and slowly where it is large (nearly a step): each log(beta) row keeps the fewest terms
        (a multiple of 8) whose dropped tail ``sum |C_k|`` is below ``CHEB_TAIL`` at every node of the row (all
        ``CHEB_DEGREE + 1`` where it never is), and consecutive rows keeping as many terms form a block. Each
        block is ``(terms, nodes, K, frac)``: its grid nodes (indices), ``K`` the rows log(alpha), beta, the log
        prior and minus ``C[:terms]`` of those nodes, and their rows of the interval weights. Summed over a
        trial's patients, the term is ``M @ C`` with ``M`` the sums of the Chebyshev polynomials of the
        patients' scaled log doses (:meth:`_patient_blocks`)."""
        A, B, log_prior = self._grid[:3]
        frac = self._grid[5]
        na, nb = self.grid_points
        lo = float(self._x[0]) + math.log(0.4)
        hi = float(self._x[-1]) + math.log(1.25)
        deg = self.CHEB_DEGREE
        theta = math.pi * (np.arange(deg + 1) + 0.5) / (deg + 1)      # Chebyshev points of the first kind
        xs = 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.cos(theta)
        vals = np.logaddexp(0.0, A[:, None] + np.exp(B)[:, None] * xs[None, :])      # (G, deg + 1)
        cos = np.cos(np.outer(np.arange(deg + 1), theta))                              # T_d at the points
        C = (cos @ vals.T) * (2.0 / (deg + 1))
        C[0] *= 0.5
        C[np.abs(C) < 1e-100] = 0.0        # no subnormal numbers in the matrix product (they are very slow)
        # tail[d, j]: the largest over row j's nodes of sum_{k >= d} |C_k| (nodes are (log alpha, log beta) row-major)
        tail = np.cumsum(np.abs(C[::-1]), axis=0)[::-1].reshape(deg + 1, na, nb).max(axis=1)
        below = tail < self.CHEB_TAIL
        terms = np.where(below.any(axis=0), np.argmax(below, axis=0), deg + 1)
        terms = np.minimum(np.maximum(8, -(-terms // 8) * 8), deg + 1)
        blocks = []
        j = 0
        while j < nb:
            k = j
            while k + 1 < nb and terms[k + 1] == terms[j]:
                k += 1
            t = int(terms[j])
            nodes = (np.arange(na)[:, None] * nb + np.arange(j, k + 1)[None, :]).ravel()
            K = np.vstack([A[None, nodes], np.exp(B)[None, nodes], log_prior[None, nodes], -C[:t, nodes]])
            blocks.append((t, nodes, np.ascontiguousarray(K), np.ascontiguousarray(frac[nodes], dtype=np.float32)))
            j = k + 1
        return lo, hi, deg, blocks

    def _patient_blocks(self, dose: np.ndarray, dlt: np.ndarray, prior: bool = False) -> list[np.ndarray]:
        """Log-likelihood of patients at their own doses at the grid nodes of each block of :meth:`_cheb`, shape
        ``(n_trials, block nodes)`` each: ``sum_i [y_i eta_i - log(1 + exp(eta_i))]``,
        ``eta_i = log(alpha) + beta log(d_i / d_ref)``.

        The DLT part is exact (``Y log(alpha) + beta sum_{DLT} x_i``); the other term is the Chebyshev
        expansion of :meth:`_cheb` for doses inside its interval, and evaluated directly for the rare patients
        outside it (products far short of the band). With ``prior`` the log prior density is added.
        Per block it is one matrix product: (DLTs, sum of the DLT patients' x, 1, Chebyshev sums) @ the block's
        rows (the first ``terms + 3`` columns of one moment matrix serve every block)."""
        A, B = self._grid[:2]
        lo, hi, deg, blocks = self._cheb
        top = max(t for t, _, _, _ in blocks)
        dose = np.asarray(dose, float)
        dlt = np.asarray(dlt, bool)
        has = ~np.isnan(dose)
        x = np.log(np.where(has, dose, self.d_ref) / self.d_ref)
        y = has & dlt
        inside = has & (x >= lo) & (x <= hi)
        t = np.where(inside, (2 * x - (lo + hi)) / (hi - lo), 0.0)
        m = np.empty((dose.shape[0], top + 3))
        m[:, 0] = y.sum(axis=1)
        m[:, 1] = np.where(y, x, 0.0).sum(axis=1)
        m[:, 2] = 1.0 if prior else 0.0
        t_prev, t_cur = inside.astype(float), np.where(inside, t, 0.0)     # T_0, T_1 (0 where no patient)
        m[:, 3] = t_prev.sum(axis=1)
        if top > 1:
            m[:, 4] = t_cur.sum(axis=1)
        for d in range(2, top):
            t_prev, t_cur = t_cur, 2 * t * t_cur - t_prev
            m[:, 3 + d] = t_cur.sum(axis=1)
        out_r, out_c = np.nonzero(has & ~inside)
        lls = []
        for terms, nodes, K, _ in blocks:
            ll = m[:, :terms + 3] @ K
            if out_r.size:
                vals = np.logaddexp(0.0, A[None, nodes] + np.exp(B)[None, nodes] * x[out_r, out_c][:, None])
                np.subtract.at(ll, out_r, vals)
            lls.append(ll)
        return lls

    def _patient_ll(self, dose: np.ndarray, dlt: np.ndarray, prior: bool = False) -> np.ndarray:
        """:meth:`_patient_blocks` at every grid node in the grid's order, shape ``(n_trials, nodes)``."""
        ll = np.empty((np.shape(dose)[0], self._grid[0].size))
        for (_, nodes, _, _), part in zip(self._cheb[3], self._patient_blocks(dose, dlt, prior)):
            ll[:, nodes] = part
        return ll

    def _summary_from_ll(self, ll: np.ndarray, prior_added: bool = False) -> np.ndarray:
        """Posterior summaries from the log-likelihood at the nodes (overwritten), plus the log prior unless
        ``prior_added``."""
        A, B, log_prior, logp_t, log1mp_t, frac = self._grid
        if not prior_added:
            ll += log_prior[None, :]
        ll -= ll.max(axis=1, keepdims=True)
        np.exp(ll, out=ll)
        out = ll @ frac
        return (out[:, :-1] / out[:, -1:]).reshape(ll.shape[0], _COLS, self.n_tiers)

    def posterior_summary_patients(self, dose, dlt) -> np.ndarray:
        """As :meth:`posterior_summary` with each patient at their own dose: ``dose`` (on the ladder's scale,
        NaN where no patient) and ``dlt`` (bool), shape ``(n_trials, patients)``. The summaries are per tier at
        the tiers' nominal ``doses``."""
        dose = np.atleast_2d(np.asarray(dose, float))
        dlt = np.atleast_2d(np.asarray(dlt, bool))
        out = np.empty((dose.shape[0], _COLS, self.n_tiers))
        blocks = self._cheb[3]
        step = 2048
        for i in range(0, dose.shape[0], step):
            lls = self._patient_blocks(dose[i:i + step], dlt[i:i + step], prior=True)
            top = np.max([ll.max(axis=1) for ll in lls], axis=0)[:, None]
            acc = 0.0
            for ll, (_, _, _, frac) in zip(lls, blocks):
                # the weights exp(ll - max) in single precision (relative error 1e-7 each; the exponentials and
                # this product are most of the cost), summed per block in double precision
                w = np.subtract(ll, top, out=np.empty(ll.shape, np.float32), casting="same_kind")
                np.exp(w, out=w)
                acc = acc + (w @ frac).astype(float)
            out[i:i + step] = (acc[:, :-1] / acc[:, -1:]).reshape(-1, _COLS, self.n_tiers)
        return out

    def state_probabilities(self, state: TrialState) -> dict[str, np.ndarray]:
        """:meth:`interval_probabilities` of a state: on each patient's own dose where the state carries them
        (``pt_dose``, the actual-dose engine), else on the counts per tier at the nominal doses."""
        if state.pt_dose is None:
            return self.interval_probabilities(state.n, state.y)
        dose = state.pt_dose
        cols = np.flatnonzero(~np.isnan(dose).all(axis=0))            # enrolee columns with some patient
        if cols.size and cols[-1] + 1 < dose.shape[1]:
            dose, dlt = dose[:, :cols[-1] + 1], state.pt_dlt[:, :cols[-1] + 1]
        else:
            dlt = state.pt_dlt
        return self._probabilities(self.posterior_summary_patients(dose, dlt))

    @staticmethod
    def _probabilities(s: np.ndarray) -> dict[str, np.ndarray]:
        under, over = s[:, 0], s[:, 1]
        return {"under": under, "target": 1.0 - under - over, "over": over, "mean": s[:, 2]}

    def interval_probabilities(self, n, y) -> dict[str, np.ndarray]:
        """``{"under", "target", "over", "mean"}``: per-tier arrays of shape ``(n_trials, n_tiers)``."""
        s = self.summary_memo(n, y)
        under, over = s[:, 0], s[:, 1]
        return {"under": under, "target": 1.0 - under - over, "over": over, "mean": s[:, 2]}

    #: Most summaries the memo of :meth:`summary_memo` holds; past it the memo starts again.
    MEMO_LIMIT = 400_000

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_memo", None)
        state.pop("_cheb", None)            # rebuilt on first use (a few MB)
        return state

    @cached_property
    def _memo(self) -> list:
        return [np.zeros(0, dtype=np.int64), np.zeros((0, _COLS, self.n_tiers))]

    def _stat_key(self, n, y) -> np.ndarray | None:
        """One int64 per trial for (n, y) per tier (:func:`doseesc.designs.memo.count_key`); None when the
        counts do not fit."""
        return count_key(n, y, self.max_n, self.n_tiers)

    def summary_memo(self, n, y) -> np.ndarray:
        """:meth:`posterior_summary`, computed once per distinct (n, y) and remembered by the design."""
        key = self._stat_key(n, y)
        if key is None:
            return self.posterior_summary(n, y)
        return memoised(self._memo, key, n, y, self.posterior_summary, self.MEMO_LIMIT)

    # -- kernel ------------------------------------------------------------
    def cap(self, current: np.ndarray) -> np.ndarray:
        """Highest tier (0-based) the escalation cap allows after a cohort at tier ``current``."""
        k = self.n_tiers
        top = np.full(np.shape(current), k - 1, dtype=np.int64)
        if self.max_increase is not None:
            d = np.asarray(self.doses)
            limit = d * self.max_increase * (1 + 1e-12)
            reach = (d[None, :] <= limit[:, None]).sum(axis=1) - 1        # highest tier within the cap of each tier
            top = np.minimum(top, reach[np.clip(current, 0, k - 1)])
        if self.escalate_by_one:
            top = np.minimum(top, np.asarray(current) + 1)
        return top

    def ewoc_choice(self, p: dict, allowed: np.ndarray | None = None) -> np.ndarray:
        """Tier with the highest P(target) among tiers with P(over) < ewoc (and ``allowed``); -1 if none."""
        ok = p["over"] < self.ewoc
        if allowed is not None:
            ok &= allowed
        score = np.where(ok, p["target"], -np.inf)
        best = score.max(axis=1, keepdims=True)
        choice = np.argmax(ok & (score >= best - 1e-12), axis=1).astype(np.int32)
        return np.where(ok.any(axis=1), choice, -1).astype(np.int32)

    def decide(self, state: TrialState) -> Decision:
        p = self.state_probabilities(state)
        top = self.cap(state.current)
        allowed = np.arange(self.n_tiers)[None, :] <= top[:, None]
        nxt = self.ewoc_choice(p, allowed)
        stop = nxt < 0
        reason = np.where(stop, np.int8(StopReason.LOWEST_TIER_TOXIC), np.int8(0)).astype(np.int8)
        return Decision(next=np.where(stop, -1, nxt).astype(np.int32), stop=stop, reason=reason)

    def select(self, state: TrialState) -> np.ndarray:
        p = self.state_probabilities(state)
        return self.ewoc_choice(p, state.n > 0)

    def to_dict(self) -> dict:
        out = super().to_dict()
        for key in ("prior_cov", "mixture"):
            if out.get(key) is None:
                out.pop(key, None)
        if self.max_increase is None:
            out["max_increase"] = "none"
        if self.prior_cov is not None:
            out["prior_cov"] = [list(r) for r in self.prior_cov]
            out.pop("prior_sd", None)
            out.pop("prior_corr", None)
        if self.mixture is not None:
            out["mixture"] = [dict(c) for c in self.mixture]
            for key in ("prior_mean", "prior_sd", "prior_corr"):
                out.pop(key, None)
        return out

    def describe(self) -> str:
        lo, hi = self.boundaries
        if self.mixture is not None:
            prior = f"a {len(self.mixture)}-component mixture prior"
        else:
            prior = (f"prior (log alpha, log beta) normal with means {self.prior_mean[0]:g}, {self.prior_mean[1]:g}, "
                     f"SDs {self.prior_sd[0]:g}, {self.prior_sd[1]:g}, correlation {self.prior_corr:g}")
        doses = ", ".join(f"{d:g}" for d in self.doses)
        parts = [f"BLRM: logit P(DLT) = log(alpha) + beta log(d / {self.d_ref:g}) on doses {doses}; {prior}; "
                 f"cohorts of {self.cohort_size} at the tier with the highest P({lo:g} <= P(DLT) <= {hi:g}) among "
                 f"tiers with P(P(DLT) > {hi:g}) < {self.ewoc:g} (EWOC)"]
        if self.max_increase is not None:
            parts.append(f"next dose at most {self.max_increase:g} x the current dose")
        if self.escalate_by_one:
            parts.append("escalation by at most one tier")
        parts.append("stop with no dose when even the lowest tier fails EWOC; final MTD: the tried tier with the "
                     "highest P(target) that satisfies EWOC")
        return "; ".join(parts) + "; " + self.rules_text()
