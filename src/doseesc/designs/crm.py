"""The continual reassessment method (O'Quigley, Pepe & Fisher 1990; Cheung 2011), vectorised over trials.

The posterior of the one model parameter beta is computed for all trials at
once on a fixed grid of beta values, from the sufficient statistics (patients
and DLTs per tier): the log-likelihood of every trial at every grid point is
two matrix products, ``y @ log p(beta).T + (n - y) @ log(1 - p(beta)).T``.
No MCMC and no loop over trials. The grid is uniform over the prior mean
+- 10 prior SDs, 301 points (the trapezoid rule, which converges
geometrically for these smooth integrands); a scalar reference with adaptive
quadrature agrees to 1e-9 (tests).
"""

from __future__ import annotations

import dataclasses
import math
from functools import cached_property

import numpy as np

from ..errors import DesignError
from ..limits import short
from ..state import Decision, TrialState
from .base import Design, check_int, check_prob, register
from .memo import count_key, memoised

MODELS = ("empiric", "logistic")


def crm_skeleton(target: float, halfwidth: float, prior_mtd: int, n_tiers: int, model: str = "empiric",
                 intercept: float = 3.0) -> np.ndarray:
    """Indifference-interval skeleton of Lee & Cheung (2009, Clin Trials 6:227).

    ``prior_mtd`` is the 1-based prior guess of the MTD. With the empiric model
    p = s^exp(beta), the skeleton is the unique one for which the interval of
    beta where tier i is recommended gives P(DLT) at tier i within target +-
    halfwidth: s_nu = target and, moving outwards, s_{i+1} = exp(log(s_i) *
    log(target + delta) / log(target - delta)) and s_{i-1} = exp(log(s_i) *
    log(target - delta) / log(target + delta)). For the logistic model the same
    recursion runs on the logit scale with intercept a0 (dfcrm ``getprior``).
    """
    if model not in MODELS:
        raise DesignError(f"model = {model!r} must be one of {', '.join(MODELS)}")
    check_prob(target, "target")
    check_int(n_tiers, "n_tiers")
    check_int(prior_mtd, "prior_mtd")
    if prior_mtd > n_tiers:
        raise DesignError(f"prior_mtd = {prior_mtd} exceeds n_tiers = {n_tiers}")
    if not (0 < halfwidth < min(target, 1 - target)):
        raise DesignError(f"halfwidth = {halfwidth!r} must lie in (0, min(target, 1 - target)) = "
                          f"(0, {min(target, 1 - target):g})")
    lo, hi = target - halfwidth, target + halfwidth
    s = np.empty(n_tiers)
    nu = prior_mtd - 1
    if model == "empiric":
        s[nu] = target
        for i in range(nu + 1, n_tiers):
            s[i] = math.exp(math.log(s[i - 1]) * math.log(hi) / math.log(lo))
        for i in range(nu - 1, -1, -1):
            s[i] = math.exp(math.log(s[i + 1]) * math.log(lo) / math.log(hi))
        return s
    a0 = intercept
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    x = np.empty(n_tiers)  # dose labels at beta = 0: x_i = logit(s_i) - a0
    x[nu] = logit(target) - a0
    for i in range(nu + 1, n_tiers):
        x[i] = (logit(hi) - a0) * x[i - 1] / (logit(lo) - a0)
    for i in range(nu - 1, -1, -1):
        x[i] = (logit(lo) - a0) * x[i + 1] / (logit(hi) - a0)
    return 1 / (1 + np.exp(-(a0 + x)))


@register
@dataclasses.dataclass(frozen=True)
class CRM(Design):
    """Bayesian CRM with a one-parameter working model, as R dfcrm's ``crm``/``crmsim`` by default.

    - Working model: ``"empiric"`` p_i(beta) = s_i^exp(beta), or ``"logistic"``
      p_i(beta) = expit(a0 + exp(beta) x_i) with intercept a0 = 3 and dose labels
      x_i = logit(s_i) - a0 (so that p_i(0) = s_i).
    - Prior beta ~ Normal(0, prior_var), prior_var = 1.34 (dfcrm's default).
    - After each cohort: posterior mean of beta by quadrature; the estimated
      P(DLT) of each tier is the model at that posterior mean (dfcrm's
      plug-in ``ptox``); the recommended tier is the one closest to the target
      (the lower on exact ties).
    - Restrictions (each switchable, all on by default as dfcrm's
      ``restrict = TRUE``): escalate at most one tier above the last cohort's
      (``escalate_by_one``; dfcrm counts from the last dose, not the highest
      tried); never skip an untried tier (rule slot ``forbid_skip``); no
      escalation right after a cohort whose observed DLT rate is at or above
      the target (``no_escalation_after_dlt``). De-escalation is never
      restricted.
    - ``startup``: optional rule-based first stage (two-stage CRM), the tiers
      (1-based) of the successive cohorts while no DLT has been seen, e.g.
      ``[1, 2, 3, 4]``; the model takes over at the first DLT or when the list
      ends (dfcrm's vector ``x0``, given per cohort here). dfcrm's quirk of
      refitting with prior SD 500 when every outcome so far is a DLT is not
      reproduced: the model keeps its prior.
    - Final MTD: the model's recommendation with all the data (no restrictions).

    The design never stops by itself: ``max_n`` (required) and the rule slots
    (``stop_n_at_tier``, ``safety_cutoff``) end trials.
    """

    kind = "CRM"
    uses_last_cohort = True

    skeleton: tuple[float, ...]
    target: float
    n_tiers: int | None = None
    cohort_size: int = 3
    max_n: int = dataclasses.field(kw_only=True)
    model: str = dataclasses.field(default="empiric", kw_only=True)
    prior_var: float = dataclasses.field(default=1.34, kw_only=True)
    intercept: float = dataclasses.field(default=3.0, kw_only=True)
    no_escalation_after_dlt: bool = dataclasses.field(default=True, kw_only=True)
    escalate_by_one: bool = dataclasses.field(default=True, kw_only=True)
    startup: tuple[int, ...] | None = dataclasses.field(default=None, kw_only=True)
    grid_points: int = dataclasses.field(default=301, kw_only=True)

    def __post_init__(self):
        try:
            sk = tuple(float(v) for v in self.skeleton)
        except (TypeError, ValueError, OverflowError):
            raise DesignError(f"skeleton = {short(self.skeleton)} must be a list of probabilities") from None
        if not sk:
            raise DesignError("skeleton: at least one tier is needed")
        for i, v in enumerate(sk):
            if not (0 < v < 1) or not math.isfinite(v):
                raise DesignError(f"skeleton[{i}] = {v:g} must lie strictly between 0 and 1")
        for i in range(1, len(sk)):
            if sk[i] <= sk[i - 1]:
                raise DesignError(f"skeleton[{i}] = {sk[i]:g} is not above skeleton[{i - 1}] = {sk[i - 1]:g}: "
                                  "the skeleton must be strictly increasing")
        object.__setattr__(self, "skeleton", sk)
        if self.n_tiers is None:
            object.__setattr__(self, "n_tiers", len(sk))
        check_int(self.n_tiers, "n_tiers")
        if self.n_tiers != len(sk):
            raise DesignError(f"n_tiers = {self.n_tiers} but the skeleton has {len(sk)} values")
        check_prob(self.target, "target")
        check_int(self.cohort_size, "cohort_size")
        check_int(self.max_n, "max_n")
        if self.model not in MODELS:
            raise DesignError(f"model = {self.model!r} must be one of {', '.join(MODELS)}")
        if isinstance(self.prior_var, bool) or not isinstance(self.prior_var, (int, float)) or self.prior_var <= 0:
            raise DesignError(f"prior_var = {self.prior_var!r} must be a positive number")
        if isinstance(self.intercept, bool) or not isinstance(self.intercept, (int, float)):
            raise DesignError(f"intercept = {self.intercept!r} must be a number")
        for key in ("no_escalation_after_dlt", "escalate_by_one"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise DesignError(f"{key} = {getattr(self, key)!r} must be true or false")
        if self.startup is not None:
            st = tuple(self.startup)
            for i, t in enumerate(st):
                if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= self.n_tiers:
                    raise DesignError(f"startup[{i}] = {t!r} must be a tier number 1..{self.n_tiers}")
            object.__setattr__(self, "startup", st)
        check_int(self.grid_points, "grid_points", minimum=51)
        self._check_slots()

    @property
    def label(self) -> str:
        return "CRM" if self.model == "empiric" else "CRM (logistic)"

    @property
    def start(self) -> int:
        return (self.startup[0] - 1) if self.startup else 0

    # -- posterior ---------------------------------------------------------
    @cached_property
    def _grid(self):
        sd = math.sqrt(self.prior_var)
        beta = np.linspace(-10 * sd, 10 * sd, self.grid_points)
        log_prior = -0.5 * beta ** 2 / self.prior_var
        s = np.asarray(self.skeleton)
        if self.model == "empiric":
            logp = np.exp(beta)[:, None] * np.log(s)[None, :]
            log1mp = np.log1p(-np.exp(logp))
        else:
            x = np.log(s / (1 - s)) - self.intercept
            eta = self.intercept + np.exp(beta)[:, None] * x[None, :]
            logp = -np.logaddexp(0, -eta)
            log1mp = -np.logaddexp(0, eta)
        return beta, log_prior, logp, log1mp

    def posterior_mean(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Posterior mean of beta for each trial; ``n``, ``y`` of shape ``(n_trials, n_tiers)``."""
        beta, log_prior, logp, log1mp = self._grid
        n = np.asarray(n, float)
        y = np.asarray(y, float)
        ll = y @ logp.T + (n - y) @ log1mp.T + log_prior[None, :]
        ll -= ll.max(axis=1, keepdims=True)
        w = np.exp(ll)
        return (w @ beta) / w.sum(axis=1)

    def ptox(self, beta: np.ndarray) -> np.ndarray:
        """Working-model P(DLT) per tier at ``beta`` (shape ``(n_trials, n_tiers)``)."""
        beta = np.asarray(beta, float)[:, None]
        s = np.asarray(self.skeleton)[None, :]
        if self.model == "empiric":
            return s ** np.exp(beta)
        x = np.log(s / (1 - s)) - self.intercept
        return np.exp(-np.logaddexp(0.0, -(self.intercept + np.exp(beta) * x)))

    #: Most posterior means the memo of :meth:`posterior_mean_memo` holds (about 16 bytes each); past it
    #: the memo starts again.
    MEMO_LIMIT = 1_000_000

    def __getstate__(self) -> dict:
        """The design without its posterior memo (a copy sent to a worker process starts its own)."""
        state = dict(self.__dict__)
        state.pop("_memo", None)
        return state

    @cached_property
    def _memo(self) -> list:
        """Posterior means already computed: [sorted int64 keys of the sufficient statistics, beta]."""
        return [np.zeros(0, dtype=np.int64), np.zeros(0)]

    def _stat_key(self, n, y) -> np.ndarray | None:
        """One int64 per trial for (n, y) per tier (:func:`doseesc.designs.memo.count_key`); None when the
        counts do not fit."""
        return count_key(n, y, self.max_n, self.n_tiers)

    def posterior_mean_memo(self, n, y) -> np.ndarray:
        """:meth:`posterior_mean`, computed once per distinct (n, y) and remembered by the design: trials that
        share their counts share their posterior, and a run meets the same counts again and again (every batch,
        and the final choice after the last decision). The memo holds at most :data:`MEMO_LIMIT` values."""
        key = self._stat_key(n, y)
        if key is None:
            return self.posterior_mean(n, y)
        return memoised(self._memo, key, n, y, self.posterior_mean, self.MEMO_LIMIT)

    def recommend_tier(self, n, y) -> np.ndarray:
        """Tier whose estimated P(DLT) is closest to the target (lower on ties), no restrictions."""
        return self.closest_tier(self.posterior_mean_memo(n, y))

    def closest_tier(self, beta_hat: np.ndarray) -> np.ndarray:
        """Tier whose P(DLT) at the plug-in estimate ``beta_hat`` is closest to the target (lower on ties)."""
        p = self.ptox(beta_hat)
        dist = np.abs(p - self.target)
        best = dist.min(axis=1, keepdims=True)
        return np.argmax(dist <= best + 1e-12, axis=1).astype(np.int32)

    # -- kernel ------------------------------------------------------------
    def decide(self, state: TrialState) -> Decision:
        return self.restrict(state, self.recommend_tier(state.n, state.y))

    def restrict(self, state: TrialState, rec: np.ndarray) -> Decision:
        """The decision from the unrestricted tier ``rec``: dfcrm's restrictions and the start-up sequence."""
        d = state.current
        if self.escalate_by_one:
            rec = np.minimum(rec, d + 1)
        if self.no_escalation_after_dlt:
            toxic = (state.last_n > 0) & (state.last_y >= self.target * state.last_n - 1e-12)
            rec = np.where(toxic & (rec > d), d, rec)
        if self.startup:
            done = state.total_n // self.cohort_size
            in_startup = (state.y.sum(axis=1) == 0) & (done < len(self.startup))
            seq = np.asarray(self.startup) - 1
            rec = np.where(in_startup, seq[np.minimum(done, len(seq) - 1)], rec)
        stop = np.zeros(state.n_trials, dtype=bool)
        return Decision(next=rec.astype(np.int32), stop=stop, reason=np.zeros(state.n_trials, dtype=np.int8))

    def select(self, state: TrialState) -> np.ndarray:
        return self.recommend_tier(state.n, state.y)

    def to_dict(self) -> dict:
        out = super().to_dict()
        if out.get("startup") is None:
            out.pop("startup", None)
        return out

    def describe(self) -> str:
        sk = ", ".join(f"{v:.3f}" for v in self.skeleton)
        parts = [f"{self.label}: {self.model} model, skeleton {sk}, prior variance {self.prior_var:g}, target "
                 f"{self.target:g}: cohorts of {self.cohort_size} at the tier whose estimated DLT rate is "
                 "closest to the target"]
        if self.no_escalation_after_dlt:
            parts.append("no escalation right after a cohort with DLT rate >= target")
        if self.startup:
            parts.append(f"start-up stage through tiers {list(self.startup)} until the first DLT")
        return "; ".join(parts) + "; " + self.rules_text()
