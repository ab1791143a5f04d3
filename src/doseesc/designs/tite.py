"""Time-to-event designs: TITE-CRM (Cheung & Chappell 2000), TITE-BOIN (Yuan et al. 2018), TITE-BOIN12 (Zhou et al. 2022).

A time-to-event design decides before every patient has completed the DLT
window, using each pending patient's partial follow-up. The per-patient data
travel in the :class:`~doseesc.state.TrialState` arrays ``pt_tier``,
``pt_dlt`` (DLT observed so far) and ``pt_follow`` (follow-up as a fraction of
the DLT window; for a patient with a DLT, the fraction at which it occurred).
With complete follow-up (or a state without per-patient arrays) each design is
exactly its complete-data parent: TITE-CRM is CRM, TITE-BOIN is BOIN,
TITE-BOIN12 is BOIN12 (which also reads ``pt_eff`` and ``pt_eff_follow``, the
response so far and the follow-up as a fraction of the response window).

They run in the calendar engine (``simulate(..., calendar=Calendar(...))``,
which simulates them in time with :func:`doseesc.engines.timed.tite_batch`) and in
:func:`~doseesc.recommend` with per-patient follow-up times. Exact enumeration
and dose paths do not apply (their decisions depend on continuous follow-up
times) and refuse them. ``docs/notes/tite.md`` lists the rules and their sources.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np


from .._lazy import lazy
from ..errors import DesignError
from ..state import Decision, StopReason, TrialState
from .base import check_int, check_prob, register
from .boin import BOIN
from .boin12 import BOIN12, eliminated
from .crm import CRM
from .interval import D, E, S

special = lazy("scipy.special")
stats = lazy("scipy.stats")

WEIGHTS = ("linear", "adaptive")
TITE_BOIN_METHODS = ("imputation", "ess")


def _pending(state: TrialState) -> np.ndarray:
    """Patients assigned, without an observed DLT and not yet followed for the whole window."""
    return (state.pt_tier >= 0) & ~state.pt_dlt & (state.pt_follow < 1)


def _per_tier(tier: np.ndarray, k: int):
    """A function that sums per-patient values ``(n_trials, n_patients)`` by trial and assigned tier
    (``tier`` -1: no patient, adds nothing), giving ``(n_trials, k)`` floats."""
    t = tier.shape[0]
    cell = (np.arange(t)[:, None] * k + np.maximum(tier, 0)).ravel()
    assigned = tier >= 0

    def total(values) -> np.ndarray:
        weights = np.where(assigned, values, 0).ravel().astype(float)
        return np.bincount(cell, weights=weights, minlength=t * k).reshape(t, k)

    return total


def adaptive_weights(follow: np.ndarray, dlt: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    """Adaptive weights of Cheung & Chappell (2000), as dfcrm ``titecrm(scheme = "adaptive")``.

    With the z observed DLT times s_1 <= ... <= s_z (fractions of the window),
    s_0 = 0 and s_{z+1} = 1, a patient followed for a fraction u with
    s_m <= u < s_{m+1} has weight (m + (u - s_m) / (s_{m+1} - s_m)) / (z + 1);
    with no DLT yet the weight is linear (u). Patients with a DLT weigh 1.
    Shapes ``(n_trials, n_patients)``.
    """
    t = follow.shape[0]
    has = dlt & assigned
    z = has.sum(axis=1)
    support = np.sort(np.where(has, follow, np.inf), axis=1)            # DLT times first, then +inf
    support = np.concatenate([np.zeros((t, 1)), support, np.full((t, 1), np.inf)], axis=1)
    cols = np.arange(support.shape[1])[None, :]
    support = np.where(cols == (z + 1)[:, None], 1.0, support)          # s_{z+1} = 1
    u = np.minimum(follow, 1.0)
    m = (support[:, None, 1:-1] <= u[:, :, None]).sum(axis=2)          # DLT times <= u, per patient
    m = np.minimum(m, z[:, None])
    lo = np.take_along_axis(support, m, axis=1)
    hi = np.take_along_axis(support, m + 1, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(hi > lo, (u - lo) / (hi - lo), 0.0)
    w = (m + frac) / (z[:, None] + 1)
    w = np.where(z[:, None] == 0, u, w)
    return np.clip(np.where(dlt, 1.0, w), 0.0, 1.0)


@register
@dataclasses.dataclass(frozen=True)
class TITECRM(CRM):
    """TITE-CRM: the CRM with a weighted likelihood for pending patients (Cheung & Chappell 2000).

    A patient without a DLT who has been followed for a fraction w of the DLT
    window contributes ``log(1 - w p_d(beta))`` to the log-likelihood; a
    patient with a DLT contributes ``log p_d(beta)`` (weight 1), a complete
    patient ``log(1 - p_d(beta))``: dfcrm ``titecrm``. Weights ``"linear"``
    (w = follow-up / window, capped at 1) or ``"adaptive"`` (the paper's
    data-driven weights, see :func:`adaptive_weights`). The posterior mean of
    beta is computed on CRM's grid for all trials at once (complete patients
    through the sufficient statistics, pending ones one column at a time);
    everything else (working model, prior, restrictions, final selection on
    complete data) is :class:`CRM`'s. Cohorts are usually of 1 patient.
    """

    kind = "TITE-CRM"
    time_to_event = True

    cohort_size: int = 1
    weights: str = dataclasses.field(default="linear", kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        if self.weights not in WEIGHTS:
            raise DesignError(f"weights = {self.weights!r} must be one of {', '.join(WEIGHTS)}")

    @property
    def label(self) -> str:
        return "TITE-CRM" + ("" if self.model == "empiric" else " (logistic)") + \
            (" (adaptive weights)" if self.weights == "adaptive" else "")

    @cached_property
    def _ptab(self) -> np.ndarray:
        """Working-model P(DLT) per tier at every grid point, shape ``(n_tiers, grid_points)``."""
        return np.ascontiguousarray(np.exp(self._grid[2]).T)

    def patient_weights(self, state: TrialState) -> np.ndarray:
        """Likelihood weight of every patient, shape ``(n_trials, n_patients)``."""
        assigned = state.pt_tier >= 0
        if self.weights == "adaptive":
            return adaptive_weights(state.pt_follow, state.pt_dlt, assigned)
        return np.where(state.pt_dlt, 1.0, np.clip(state.pt_follow, 0.0, 1.0))

    #: Trials per block of the posterior computation: the (block, grid) arrays stay in the CPU cache. A
    #: multiple of 16: BLAS kernels take rows in groups (4 here), and a block boundary inside a group would
    #: change the last bit of the matrix products for the rows after it.
    _BLOCK = 256

    def weighted_posterior_mean(self, state: TrialState) -> np.ndarray:
        """Posterior mean of beta under the weighted likelihood, one value per trial.

        Trials are processed in blocks of :attr:`_BLOCK` rows so that the ``(block, grid)`` arrays stay in
        the cache (the whole batch at once is memory bound, and larger blocks start BLAS threads); every
        operation is row-wise, so the values equal the whole-batch computation bit for bit (tested; see
        :attr:`_BLOCK`), and complete patients give exactly CRM's numbers.
        """
        beta, log_prior, logp, log1mp = self._grid
        n = np.asarray(state.n, float)
        y = np.asarray(state.y, float)
        if state.pt_tier is None:
            return self.posterior_mean(n, y)
        t, k = n.shape
        tier = state.pt_tier
        pend = _pending(state)
        npend = _per_tier(tier, k)(pend)
        # complete patients: sufficient statistics, exactly as CRM (npend = 0 leaves n - y unchanged)
        fail = (n - npend) - y
        w = self.patient_weights(state)
        part = pend & (w > 0)
        count = part.sum(axis=1)
        width = int(count.max(initial=0))
        if width:
            order = np.argsort(~part, axis=1, kind="stable")[:, :width]     # pending patients first
            tiers = np.maximum(np.take_along_axis(tier, order, axis=1), 0).astype(np.intp)
            ws = np.where(np.take_along_axis(part, order, axis=1), np.take_along_axis(w, order, axis=1), 0.0)
            neg_ws = -ws
        ptab = self._ptab                                                  # (tiers, grid)
        out = np.empty(t)
        for s in range(0, t, self._BLOCK):
            sl = slice(s, min(s + self._BLOCK, t))
            ll = y[sl] @ logp.T + fail[sl] @ log1mp.T + log_prior[None, :]
            c = count[sl] if width else None
            if width and c.max(initial=0) > 0:
                # product of the factors (1 - w p) and one log: the absolute error of the log-likelihood stays
                # ~1e-16 (what the posterior weights feel), at a fraction of the cost of one log1p per patient
                rows = np.flatnonzero(c)
                cr = c[rows]
                tb, wb = tiers[sl][rows], neg_ws[sl][rows]
                prod = ptab[tb[:, 0]]
                prod *= wb[:, 0, None]
                prod += 1.0
                for j in range(1, int(cr.max())):
                    more = cr > j                       # only the trials with that many pending patients
                    if more.all():
                        tmp = ptab[tb[:, j]]
                        tmp *= wb[:, j, None]
                        tmp += 1.0
                        prod *= tmp
                    else:
                        r = np.flatnonzero(more)
                        tmp = ptab[tb[r, j]]
                        tmp *= wb[r, j, None]
                        tmp += 1.0
                        prod[r] *= tmp
                np.log(prod, out=prod)
                if rows.size == ll.shape[0]:
                    ll += prod
                else:
                    ll[rows] += prod
            ll -= ll.max(axis=1, keepdims=True)
            e = np.exp(ll, out=ll)
            out[sl] = (e @ beta) / e.sum(axis=1)
        return out

    def decide(self, state: TrialState) -> Decision:
        if state.pt_tier is None:
            return super().decide(state)
        return self.restrict(state, self.closest_tier(self.weighted_posterior_mean(state)))

    def wake_follow(self, state: TrialState) -> tuple[np.ndarray, np.ndarray]:
        """TITE-CRM never suspends accrual (each patient is assigned on arrival), so no wait can end between
        events: +inf for every trial (toxicity, response), shapes ``(n_trials,)``."""
        inf = np.full(state.n_trials, np.inf)
        return inf, inf.copy()

    def describe(self) -> str:
        # CRM.describe opens with self.label, which already says TITE-CRM
        return (super().describe()
                + f"; pending patients weighted by follow-up ({self.weights} weights, Cheung & Chappell 2000)")


@register
@dataclasses.dataclass(frozen=True)
class TITEBOIN(BOIN):
    """TITE-BOIN (Yuan, Lin, Li, Nie & Warren 2018): BOIN deciding with pending patients.

    At the current tier d, with n patients assigned, y DLTs observed, m pending
    patients (no DLT yet, window not complete) and STFT = the sum of their
    follow-up fractions (the standardised total follow-up time):

    - ``method="imputation"`` (the paper): each pending patient's DLT is
      imputed as (1 - t/T) p~ with p~ = (y + phi/2) / (n - m + STFT + 1), the
      posterior mean under the prior Beta(phi/2, 1 - phi/2) and the
      approximated likelihood; the estimate is p^ = (y + (m - STFT) p~) / n;
    - ``method="ess"`` (Lin & Yuan 2020, R TITEgBOIN): p^ = y / (n - m + STFT).

    Rules, in order: elimination and the extra safety stop use the observed
    DLTs among all n patients (as BOIN, pending included: R TITEgBOIN); if the
    current tier is eliminated, de-escalate (or stop) at once; **accrual is
    suspended** (the next patient waits) when more than ``max_pending`` (half)
    of the patients at the current tier are pending; otherwise escalate if
    p^ <= lambda_e, de-escalate if p^ > lambda_d, else stay; escalation
    waits until at least ``min_complete`` (3) patients at the tier have complete
    data; a de-escalation decided at the lowest tier waits (stays) while
    patients there are pending. ``n_earlystop`` and the final selection are
    BOIN's (select.mtd on complete data). With no pending patient at the
    current tier the decision is BOIN's exactly.
    """

    kind = "TITE-BOIN"
    time_to_event = True

    method: str = dataclasses.field(default="imputation", kw_only=True)
    max_pending: float = dataclasses.field(default=0.5, kw_only=True)
    min_complete: int = dataclasses.field(default=3, kw_only=True)

    def _validate(self) -> None:
        super()._validate()
        if self.method not in TITE_BOIN_METHODS:
            raise DesignError(f"method = {self.method!r} must be one of {', '.join(TITE_BOIN_METHODS)}")
        check_prob(self.max_pending, "max_pending", open_high=False)
        check_int(self.min_complete, "min_complete", minimum=0)
        if self.titration:
            raise DesignError("titration = true is not available for TITE-BOIN")

    @property
    def label(self) -> str:
        return "TITE-BOIN" + (" (ESS)" if self.method == "ess" else "")

    def estimate(self, n, y, m, stft) -> np.ndarray:
        """TITE-BOIN's estimate of the DLT rate at a tier from (n, y, pending m, STFT) (arrays)."""
        n, y, m, stft = (np.asarray(v, float) for v in (n, y, m, stft))
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.method == "ess":
                ess = n - m + stft
                return np.where(ess > 0, y / np.where(ess > 0, ess, 1), 0.0)
            phi = self.target
            ptilde = (y + phi / 2) / (n - m + stft + 1)
            return np.where(n > 0, (y + (m - stft) * ptilde) / np.where(n > 0, n, 1), 0.0)

    def decide(self, state: TrialState) -> Decision:
        dec = super().decide(state)
        t = state.n_trials
        dec.wait = np.zeros(t, dtype=bool)
        if state.pt_tier is None:
            return dec
        rows = np.arange(t)
        d = state.current
        at = _pending(state) & (state.pt_tier == d[:, None])
        m = at.sum(axis=1)
        hit = (m > 0) & ~(dec.stop & (dec.reason == StopReason.LOWEST_TIER_TOXIC))
        if not hit.any():
            return dec
        nd, yd, stft, code = self._current(state, at, m)
        gone = self.eliminated(state)
        nxt = self._moves(state, code, gone)
        k = self.n_tiers
        up = np.minimum(d + 1, k - 1)
        can_up = (d < k - 1) & ~gone[rows, up]
        cur_gone = gone[rows, d]
        wait = ~cur_gone & ((m > self.max_pending * nd)
                            | ((code == E) & can_up & (nd - m < self.min_complete))
                            | ((code == D) & (d == 0)))
        early = ~cur_gone & ~wait & (nd >= self.n_earlystop) & (nxt == d)
        dec.next = np.where(hit, nxt, dec.next).astype(np.int32)
        dec.stop = np.where(hit, early | (dec.stop & cur_gone), dec.stop)
        reason = np.where(early, np.int8(StopReason.N_AT_TIER), np.int8(StopReason.NOT_STOPPED))
        dec.reason = np.where(hit, np.where(dec.stop, np.where(early, reason, dec.reason), 0), dec.reason).astype(np.int8)
        dec.wait = hit & wait & ~dec.stop
        dec.next = np.where(dec.stop, -1, dec.next).astype(np.int32)
        return dec

    def _current(self, state: TrialState, at: np.ndarray, m: np.ndarray):
        """n, y, STFT and the decision code (E, S, D) at the current tier, from the pending mask ``at``."""
        rows = np.arange(state.n_trials)
        d = state.current
        stft = np.where(at, np.clip(state.pt_follow, 0, 1), 0.0).sum(axis=1)
        nd, yd = state.n[rows, d], state.y[rows, d]
        lam_e, lam_d = self.boundaries
        phat = self.estimate(nd, yd, m, stft)
        code = np.where(phat <= lam_e, E, np.where(phat > lam_d, D, S)).astype(np.int8)
        return nd, yd, stft, code

    def wake_follow(self, state: TrialState) -> tuple[np.ndarray, np.ndarray]:
        """For trials that wait: the total follow-up (toxicity, response; fractions of the window) of the
        pending patients at the current tier at which the wait ends without an event; +inf where only an
        event (a DLT, a window completed, an enrolment) can end it. Shapes ``(n_trials,)``.

        Between events the estimate p^ only falls as the STFT grows (both methods), so of TITE-BOIN's
        waiting rules only one can end between events: a de-escalation decided at the lowest tier (p^ >
        lambda_d) while accrual is not suspended ends when p^ reaches lambda_d. The suspension (pending count
        against n) and the escalation held for ``min_complete`` (p^ <= lambda_e stays so while p^ falls;
        the complete count) change only at events. Closed forms: ESS n - m + STFT = y / lambda_d; for the
        imputation, (y + (m - s) a / (b + s)) / n = lambda_d with a = y + phi/2, b = n - m + 1, so
        s = (m a - c b) / (a + c), c = n lambda_d - y (no crossing when c < 0: p^ >= y/n > lambda_d).
        """
        t = state.n_trials
        inf = np.full(t, np.inf)
        if state.pt_tier is None:
            return inf, inf.copy()
        d = state.current
        at = _pending(state) & (state.pt_tier == d[:, None])
        m = at.sum(axis=1)
        nd, yd, stft, code = self._current(state, at, m)
        lam_d = self.boundaries[1]
        cur_gone = self.eliminated(state)[np.arange(t), d]
        lowest = (m > 0) & (d == 0) & (code == D) & ~cur_gone & ~(m > self.max_pending * nd)
        nd, yd, m = (np.asarray(v, float) for v in (nd, yd, m))
        if self.method == "ess":
            target = yd / lam_d - (nd - m)
        else:
            a = yd + self.target / 2
            b = nd - m + 1
            c = nd * lam_d - yd
            with np.errstate(invalid="ignore", divide="ignore"):
                target = np.where(c >= 0, (m * a - c * b) / (a + c), np.inf)
        return np.where(lowest, target, np.inf), inf

    def describe(self) -> str:
        how = ("pending outcomes imputed from the follow-up (Yuan et al. 2018)" if self.method == "imputation"
               else "effective sample size n - pending + STFT (Lin & Yuan 2020)")
        return (super().describe().replace("BOIN, target", "TITE-BOIN, target", 1)
                + f"; {how}; accrual suspended while more than {self.max_pending:g} of the patients at the tier are "
                  f"pending; escalation needs {self.min_complete} patients with complete data")


@register
@dataclasses.dataclass(frozen=True)
class TITEBOIN12(BOIN12):
    """TITE-BOIN12 (Zhou, Lin, Lee, Li, Wang, Li & Yuan 2022): BOIN12 deciding with pending outcomes.

    The approximated-likelihood version. For each tier and each outcome
    (toxicity with the DLT window, response with the response window), with
    y observed events, c patients ascertained without the event and pending
    patients followed for fractions w_i of the window:

    - effective sample size ESS = y + c + sum(w_i) and estimate p^ = y / ESS
      (the maximiser of the approximated likelihood p^y (1 - p)^(ESS - y) of
      Lin & Yuan 2020; the prior means phi_t / 2 and phi_e where ESS = 0);
    - each pending outcome imputed by its conditional probability given no
      event so far, p^ (1 - w) / (1 - p^ w); the four outcome cells of a
      patient are the products of the two marginal imputations (observed
      outcomes are 0 or 1), so the pseudo-response count is
      x = sum(utility x expected cells) / 100 and DS = P(Beta(1 + x, 1 + n - x)
      > u_b / 100) with n all assigned patients;
    - admissibility from Beta(1 + y, 1 + ESS - y) for each outcome.

    BOIN12's rules then run on p^_T at the current tier (n_d counts every
    assigned patient). With the authors' rules (the default ``variant``),
    a tier is eliminated for toxicity, with every tier above, from the DLTs
    observed among all assigned patients (as TITE-BOIN and R TITEgBOIN), and
    for futility from the responses under the approximated likelihood
    (pending responses are not failures), n >= 3; the lowest tier eliminated
    for toxicity stops the trial with no dose. ``variant="app"`` keeps the
    app's admissibility, from Beta(1 + y, 1 + ESS - y) for each outcome. **Accrual is suspended** (the next patient waits) while
    more than ``max_pending`` (half) of the patients at the current tier have
    their toxicity *or* their response pending, unless the trial stops or the
    current tier is inadmissible (then the design acts at once). Optionally
    (``min_complete`` > 0, off by default: not a rule of the paper) escalation
    waits until that many patients at the tier have both outcomes ascertained.
    Tiers without a pending outcome use BOIN12's own numbers, so with complete
    follow-up the decisions are BOIN12's exactly; the final OBD is BOIN12's,
    on complete data. ``docs/notes/tite.md`` lists the sources of each rule.
    """

    kind = "TITE-BOIN12"
    time_to_event = True

    max_pending: float = dataclasses.field(default=0.5, kw_only=True)
    min_complete: int = dataclasses.field(default=0, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        check_prob(self.max_pending, "max_pending", open_high=False)
        check_int(self.min_complete, "min_complete", minimum=0)

    @property
    def label(self) -> str:
        return "TITE-BOIN12"

    def pending_summary(self, state: TrialState) -> dict:
        """Per tier, shape ``(n_trials, n_tiers)``: pending counts, effective sample sizes, estimates,
        pseudo-responses x, desirability and admissibility under the approximated likelihood."""
        k = self.n_tiers
        tier = state.pt_tier
        assigned = tier >= 0
        tox = state.pt_dlt & assigned
        eff = state.pt_eff & assigned
        pend_t = assigned & ~tox & (state.pt_follow < 1)
        pend_e = assigned & ~eff & (state.pt_eff_follow < 1)
        w_t = np.where(pend_t, np.clip(state.pt_follow, 0.0, 1.0), 0.0)
        w_e = np.where(pend_e, np.clip(state.pt_eff_follow, 0.0, 1.0), 0.0)
        per_tier = _per_tier(tier, k)
        n = np.asarray(state.n, float)
        y, e = per_tier(tox), per_tier(eff)
        m_t, m_e = per_tier(pend_t), per_tier(pend_e)
        ess_t = n - m_t + per_tier(w_t)
        ess_e = n - m_e + per_tier(w_e)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_t = np.where(ess_t > 0, y / np.where(ess_t > 0, ess_t, 1), self.phi_t / 2)
            p_e = np.where(ess_e > 0, e / np.where(ess_e > 0, ess_e, 1), self.phi_e)
        tiers = np.maximum(tier, 0)
        pt_i = np.take_along_axis(p_t, tiers, axis=1)
        pe_i = np.take_along_axis(p_e, tiers, axis=1)
        it = np.where(pend_t, pt_i * (1 - w_t) / (1 - pt_i * w_t), tox.astype(float))
        ie = np.where(pend_e, pe_i * (1 - w_e) / (1 - pe_i * w_e), eff.astype(float))
        un, ut, ue, ub = self.utility
        u_i = (un * (1 - it) * (1 - ie) + ut * it * (1 - ie) + ue * (1 - it) * ie + ub * it * ie) / 100
        x = per_tier(u_i)
        ds = special.betaincc(1 + x, 1 + n - x, self.benchmark / 100)
        over = stats.beta.sf(self.phi_t, 1 + y, 1 + ess_t - y)
        futile = stats.beta.cdf(self.phi_e, 1 + e, 1 + ess_e - e)
        return {"pending_tox": m_t, "pending_eff": m_e, "ess_tox": ess_t, "ess_eff": ess_e, "p_tox": p_t,
                "p_eff": p_e, "x": x, "desirability": ds, "admissible": (over < self.c_t) & (futile < self.c_e),
                "futile": futile, "complete": per_tier(~pend_t & ~pend_e), "responses": e}

    def _eliminated_with_pending(self, state: TrialState, s: dict, pending: np.ndarray):
        """The authors' elimination with pending outcomes, shape ``(n_trials, n_tiers)`` each: toxicity from
        the DLTs observed among all assigned patients (pending counted as without DLT, as TITE-BOIN and R
        TITEgBOIN; DLTs only accrue, so it stays persistent); futility, at tiers with a pending outcome, from
        the responses under the approximated likelihood (Beta(1 + e, 1 + ESS_E - e), n >= 3), since pending
        responses are not failures."""
        tox, futile = BOIN12.elimination(self, state)
        futile = np.where(pending, (state.n >= 3) & (s["futile"] > self.c_e), futile)
        return tox, futile

    def elimination(self, state: TrialState):
        if state.pt_tier is None or state.pt_eff is None:
            return super().elimination(state)
        s = self.pending_summary(state)
        return self._eliminated_with_pending(state, s, (s["pending_tox"] + s["pending_eff"]) > 0)

    def decide(self, state: TrialState) -> Decision:
        if state.pt_tier is None or state.pt_eff is None:
            dec = super().decide(state)
            dec.wait = np.zeros(state.n_trials, dtype=bool)
            return dec
        rows = np.arange(state.n_trials)
        d = state.current
        s = self.pending_summary(state)
        pending = (s["pending_tox"] + s["pending_eff"]) > 0          # tiers with a pending outcome
        ds = np.where(pending, s["desirability"], self.desirability(state))
        ok = np.where(pending, s["admissible"], self.admissible(state))
        nd = state.n[rows, d]
        p = np.where(pending[rows, d], s["p_tox"][rows, d], state.y[rows, d] / np.maximum(nd, 1))
        if self.variant == "authors":
            tox, futile = self._eliminated_with_pending(state, s, pending)
            ok = ~eliminated(tox, futile)
            dec = self._move_authors(state, p, ds, tox, futile)
        else:
            dec = self._move_app(state, p, ds, ok)
        many = np.maximum(s["pending_tox"][rows, d], s["pending_eff"][rows, d]) > self.max_pending * nd
        early = (dec.next > d) & (s["complete"][rows, d] < self.min_complete)
        dec.wait = ~dec.stop & ok[rows, d] & (many | early)
        return dec

    #: Bisection steps for the effective sample size at which the current tier turns futile (60 halvings of
    #: an interval of at most max_n: below the spacing of floats there).
    _BISECT = 60

    def wake_follow(self, state: TrialState) -> tuple[np.ndarray, np.ndarray]:
        """For trials that wait: the total follow-up (toxicity, response; fractions of each window) of the
        pending patients at the current tier at which the wait ends without an event; +inf where only an
        event can end it. Shapes ``(n_trials,)``.

        A wait needs the current tier admissible. Between events the effective sample sizes only grow, so
        P(p_T > phi_t) only falls (the tier cannot turn too toxic) while P(p_E < phi_e) =
        Beta(1 + e, 1 + ESS_E - e).cdf(phi_e) only rises: the tier can turn futile between events, and
        then the design acts at once. The ESS_E at which it reaches ``c_e`` is found by bisection (on
        arrays, the design's own formula). The suspension (pending counts against n) changes only at
        events. The optional ``min_complete`` hold is not covered: whether BOIN12's rules still escalate
        can change either way as the estimates move (docs/notes/tite.md).
        """
        t = state.n_trials
        inf = np.full(t, np.inf)
        if state.pt_tier is None or state.pt_eff is None:
            return inf, inf.copy()
        target = inf.copy()
        here = state.pt_tier == state.current[:, None]
        at = here & ~state.pt_eff & (state.pt_eff_follow < 1)
        n_here = here.sum(axis=1)
        e_here = (here & state.pt_eff).sum(axis=1)
        # a response pending at the current tier, and the tier futile once every pending response is ascertained
        # (ESS_E = n, its largest value): only those trials can turn futile before an event
        some = np.flatnonzero(at.any(axis=1) & (stats.beta.cdf(self.phi_e, 1 + e_here, 1 + n_here - e_here)
                                                >= self.c_e) & ((n_here >= 3) | (self.variant == "app")))
        if some.size == 0:
            return inf, target
        sub = state.take(some)
        rows = np.arange(some.size)
        d = sub.current
        s = self.pending_summary(sub)
        m_e = s["pending_eff"][rows, d]
        nd = np.asarray(sub.n, float)[rows, d]
        ed = s["responses"][rows, d]
        if self.variant == "authors":
            tox, futile = self._eliminated_with_pending(sub, s, (s["pending_tox"] + s["pending_eff"]) > 0)
            ok = ~eliminated(tox, futile)[rows, d]
        else:
            ok = s["admissible"][rows, d]

        def futile(ess, r):
            return stats.beta.cdf(self.phi_e, 1 + ed[r], 1 + ess - ed[r]) >= self.c_e

        r = np.flatnonzero(ok & (m_e > 0))
        r = r[futile(nd[r], r)]                    # futile once every pending response were ascertained
        if r.size:
            lo, hi = s["ess_eff"][r, d[r]], nd[r]
            for _ in range(self._BISECT):
                mid = 0.5 * (lo + hi)
                up = futile(mid, r)
                hi = np.where(up, mid, hi)
                lo = np.where(up, lo, mid)
            target[some[r]] = hi - (nd[r] - m_e[r])  # the pending patients' share of ESS_E
        return inf, target

    def describe(self) -> str:
        extra = (f"; escalation needs {self.min_complete} patients with both outcomes ascertained"
                 if self.min_complete else "")
        return (super().describe().replace("BOIN12 (", "TITE-BOIN12 (", 1)
                + "; pending toxicity and response imputed from the follow-up (approximated likelihood, Zhou et "
                  f"al. 2022); accrual suspended while more than {self.max_pending:g} of the patients at the tier "
                  "have either outcome pending" + extra)


__all__ = ["TITEBOIN", "TITEBOIN12", "TITECRM", "adaptive_weights"]
