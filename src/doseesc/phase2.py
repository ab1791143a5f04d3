"""A seamless phase 2 stage after the escalation: Simon's two-stage design or BOP2 (issue 22 item 3).

The stage treats new patients at the tier the escalation selected and declares the tier *promising* (go) or
not (no-go). Both designs reduce to one rule, :class:`StageRule`:

- analyses after ``looks[k]`` patients in all (cumulative counts, the last one the stage's maximum N);
- at analysis ``k`` the stage stops with no-go when the responses so far are ``<= eff_stop[k]``, or when
  the DLTs so far are ``>= tox_stop[k]`` (only where a toxicity rule is given);
- a stage that passes its last analysis declares the tier promising.

:class:`SimonTwoStage` (Simon 1989): two analyses ``(n1, n)`` with response boundaries ``(r1, r)``: stop
after stage 1 with ``<= r1`` responses of ``n1``; promising with ``> r`` responses of ``n``. The optimal
design minimises the expected N under ``p0`` and the minimax design the maximum N (ties: the smaller
expected N under ``p0``), both subject to P(promising | p0) <= alpha and P(promising | p1) >= 1 - beta,
found by an exact binomial search.

:class:`BOP2` (Zhou, Lee & Yuan 2017): Beta (Dirichlet) prior with the null rates as means and prior
effective sample size 1; at ``n`` patients of ``N``, no-go when Pr(p_E > phi_E | data) < C(n) or, with a
toxicity rule, Pr(p_T <= phi_T | data) < C(n), where C(n) = lambda (n / N)^gamma; lambda and gamma are
chosen on a grid to maximise P(go) under the alternative subject to P(go) <= alpha under the null, both
computed exactly (enumeration of the counts at each look, no Monte Carlo).

:func:`stage_oc` gives the exact operating characteristics of a rule for one true patient: P(promising),
expected N, P(stop) at each look. See docs/notes/phase2.md for the facts and their sources.

This module imports no engine (:mod:`doseesc.engines.phase2` runs the stage after a simulated escalation).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ._lazy import lazy
from .errors import DesignError
from .scenario import plackett_joint

special = lazy("scipy.special")
stats = lazy("scipy.stats")

#: The designs a [phase2] table can name (its ``design`` key).
DESIGNS = ("Simon", "BOP2")
SIMON_KINDS = ("optimal", "minimax")
#: Largest maximum N a stage may have (the exact searches and the per-patient draws are sized by it).
MAX_STAGE_N = 200
#: Default calibration grids of BOP2 (lambda in (0, 1), gamma in [0, 1]), as the BOP2 software searches.
LAMBDA_GRID = tuple(round(0.01 * i, 2) for i in range(1, 100))
GAMMA_GRID = tuple(round(0.01 * i, 2) for i in range(0, 101))


# -- input checks ---------------------------------------------------------------------------------------
def _prob(value, key: str, *, open_ends: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise DesignError(f"{key} = {value!r} must be a number")
    v = float(value)
    if open_ends and not (0 < v < 1):
        raise DesignError(f"{key} = {value!r} must be a probability strictly between 0 and 1")
    if not open_ends and not (0 <= v <= 1):
        raise DesignError(f"{key} = {value!r} must be a probability in [0, 1]")
    return v


def _int(value, key: str, *, low: int = 0, high: int = MAX_STAGE_N) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DesignError(f"{key} = {value!r} must be an integer")
    if not (low <= int(value) <= high):
        raise DesignError(f"{key} = {value!r} must lie in {low}..{high}")
    return int(value)


def _ints(values, key: str, *, low: int, high: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise DesignError(f"{key} = {values!r} must be a non-empty list of integers")
    return tuple(_int(v, f"{key}[{i}]", low=low, high=high) for i, v in enumerate(values))


# -- the common rule and its exact operating characteristics -------------------------------------------------
@dataclass(frozen=True)
class StageRule:
    """Cumulative looks and stopping boundaries (see the module docstring).

    ``eff_stop[k]`` is -1 where no response count stops at look ``k``; ``tox_stop`` is None without a toxicity
    rule, and ``tox_stop[k] = looks[k] + 1`` where no DLT count stops there.
    """

    looks: tuple[int, ...]
    eff_stop: tuple[int, ...]
    tox_stop: tuple[int, ...] | None = None

    def __post_init__(self):
        looks = _ints(self.looks, "looks", low=1, high=MAX_STAGE_N)
        if any(b <= a for a, b in zip(looks, looks[1:])):
            raise DesignError(f"looks = {list(looks)} must increase strictly (cumulative patients at each analysis)")
        eff = _ints(self.eff_stop, "eff_stop", low=-1, high=MAX_STAGE_N)
        if len(eff) != len(looks):
            raise DesignError(f"eff_stop = {list(eff)} needs one boundary per look ({len(looks)})")
        for k, (f, n) in enumerate(zip(eff, looks)):
            if f > n:
                raise DesignError(f"eff_stop[{k}] = {f} exceeds the {n} patients of look {k}")
        object.__setattr__(self, "looks", looks)
        object.__setattr__(self, "eff_stop", eff)
        if self.tox_stop is not None:
            tox = _ints(self.tox_stop, "tox_stop", low=0, high=MAX_STAGE_N + 1)
            if len(tox) != len(looks):
                raise DesignError(f"tox_stop = {list(tox)} needs one boundary per look ({len(looks)})")
            object.__setattr__(self, "tox_stop", tox)

    @property
    def max_n(self) -> int:
        return self.looks[-1]

    def decision(self, n: int, responses: int, dlts: int = 0) -> str:
        """What the rule says with ``responses`` and ``dlts`` among the first ``n`` patients: ``"no-go"`` (a
        boundary crossed at a look), ``"promising"`` (the last look passed) or ``"continue"`` (``n`` is not a
        look, or an interim look passed)."""
        n = _int(n, "n", low=0, high=self.max_n)
        responses = _int(responses, "responses", low=0, high=n)
        dlts = _int(dlts, "dlts", low=0, high=n)
        if n not in self.looks:
            return "continue"
        k = self.looks.index(n)
        stop = responses <= self.eff_stop[k] or (self.tox_stop is not None and dlts >= self.tox_stop[k])
        if stop:
            return "no-go"
        return "promising" if k == len(self.looks) - 1 else "continue"


def _joint(p_e, p_t=None, joint=None) -> tuple[float, float, float, float]:
    """One patient's outcome probabilities (N, T, E, B) from the response and DLT rates (independent) or a
    given joint row."""
    if joint is not None:
        j = np.asarray(joint, dtype=float).reshape(4)
        return tuple(float(v) for v in j)
    pe = float(p_e)
    pt = 0.0 if p_t is None else float(p_t)
    return (1 - pe) * (1 - pt), (1 - pe) * pt, pe * (1 - pt), pe * pt


def stage_oc(rule: StageRule, p_e=None, p_t=None, joint=None) -> dict:
    """Exact operating characteristics of ``rule`` for patients with response rate ``p_e`` and DLT rate
    ``p_t`` (independent), or the joint outcome probabilities ``joint = (N, T, E, B)``.

    Returns ``{"p_promising", "expected_n", "p_stop": array (n_looks,), "p_stop_tox": array (n_looks,)}``:
    ``p_stop[k]`` is P(no-go at look k) for any reason, ``p_stop_tox[k]`` the part where the DLT boundary
    was crossed (responses may have crossed theirs as well)."""
    return stage_oc_many([rule], p_e, p_t, joint)[0]


#: Largest number of (rule, responses, DLTs) cells :func:`stage_oc_many` holds at once.
_CELLS = 4_000_000


def stage_oc_many(rules, p_e=None, p_t=None, joint=None) -> list[dict]:
    """:func:`stage_oc` for rules with the same looks, vectorised over the rules (their count is the leading
    axis of the enumeration: ``(rules, responses, DLTs)``)."""
    rules = list(rules)
    looks = rules[0].looks
    if any(r.looks != looks for r in rules):
        raise DesignError("stage_oc_many: the rules must share their looks")
    pn, pt, pe, pb = _joint(p_e, p_t, joint)
    with_tox = rules[0].tox_stop is not None
    if any((r.tox_stop is not None) != with_tox for r in rules):
        raise DesignError("stage_oc_many: all rules or none must have a toxicity boundary")
    n_max = looks[-1]
    ny = n_max + 1 if with_tox else 1
    chunk = max(1, _CELLS // ((n_max + 1) * ny))        # bounded memory: rules evaluated in chunks
    if len(rules) > chunk:
        out = []
        for i in range(0, len(rules), chunk):
            out.extend(stage_oc_many(rules[i:i + chunk], p_e, p_t, joint))
        return out
    u = len(rules)
    eff = np.array([r.eff_stop for r in rules])                              # (u, K)
    tox = np.array([r.tox_stop for r in rules]) if with_tox else None         # (u, K)
    # dist[:, x, y]: P(x responses and y DLTs among the patients so far, not stopped), patient by patient,
    # the arrays as large as the counts can be so far (y summed out without a toxicity rule)
    dist = np.ones((u, 1, 1))
    p_stop = np.zeros((u, len(looks)))
    p_stop_tox = np.zeros((u, len(looks)))
    n = 0
    for k, n_k in enumerate(looks):
        while n < n_k:
            nx, ny = dist.shape[1], dist.shape[2]
            if with_tox:
                new = np.zeros((u, nx + 1, ny + 1))
                new[:, :-1, :-1] += pn * dist
                new[:, :-1, 1:] += pt * dist
                new[:, 1:, :-1] += pe * dist
                new[:, 1:, 1:] += pb * dist
            else:
                new = np.zeros((u, nx + 1, 1))
                new[:, :-1] += (pn + pt) * dist
                new[:, 1:] += (pe + pb) * dist
            dist = new
            n += 1
        x = np.arange(dist.shape[1])[None, :, None]
        stop_e = x <= eff[:, k][:, None, None]
        if with_tox:
            y = np.arange(dist.shape[2])[None, None, :]
            stop_t = y >= tox[:, k][:, None, None]
        else:
            stop_t = np.zeros((u, 1, 1), dtype=bool)
        stop = stop_e | stop_t
        p_stop[:, k] = (dist * stop).sum(axis=(1, 2))
        p_stop_tox[:, k] = (dist * stop_t).sum(axis=(1, 2))
        if k < len(looks) - 1:
            dist = np.where(stop, 0.0, dist)
    p_go = 1.0 - p_stop.sum(axis=1)
    ln = np.array(looks, dtype=float)
    # a trial that stops at look k has treated looks[k]; one that goes has treated all
    expected_n = p_stop @ ln + p_go * ln[-1]
    return [{"p_promising": float(max(p_go[i], 0.0)), "expected_n": float(expected_n[i]),
             "p_stop": p_stop[i].copy(), "p_stop_tox": p_stop_tox[i].copy()} for i in range(u)]


# -- Simon's two-stage design ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _simon_search(p0: float, p1: float, alpha: float, beta: float, nmax: int) -> list:
    """Every (n, n1, r1, r, EN0, PET0) meeting the error constraints; per ``(n, n1, r1)`` the smallest ``r``
    meeting the type I error (the largest power at that level). Exact binomial sums, vectorised over ``r1``
    and ``r``."""
    m = np.arange(nmax + 1)
    k = np.arange(nmax + 1)
    pmf = {p: stats.binom.pmf(k[None, :], m[:, None], p) for p in (p0, p1)}        # [size, count]
    # P(X > j) for X ~ Bin(size, p), j = -1..nmax, with j = -1 first (probability 1)
    sf = {p: np.concatenate([np.ones((nmax + 1, 1)), stats.binom.sf(k[None, :], m[:, None], p)], axis=1)
          for p in (p0, p1)}
    cdf0 = np.cumsum(pmf[p0], axis=1)
    feasible = []
    for n in range(2, nmax + 1):
        r = np.arange(n + 1)
        for n1 in range(1, n):
            n2 = n - n1
            x1 = np.arange(n1 + 1)
            j = np.clip(r[None, :] - x1[:, None], -1, nmax) + 1                        # (x1, r) -> sf column
            t0 = pmf[p0][n1, :n1 + 1, None] * sf[p0][n2][j]                            # P(X1 = x1, X2 > r - x1)
            rej0 = np.cumsum(t0[::-1], axis=0)[::-1][1:]                               # row r1: sum over x1 > r1
            ok0 = rej0 <= alpha                                                        # monotone in r
            has = ok0[:, -1]
            if not has.any():
                continue
            r1s = np.flatnonzero(has)
            rmin = np.maximum(np.argmax(ok0[r1s], axis=1), r1s)
            t1 = pmf[p1][n1, :n1 + 1, None] * sf[p1][n2][j]
            rej1 = np.cumsum(t1[::-1], axis=0)[::-1][1:]
            power = rej1[r1s, rmin]
            good = power >= 1 - beta
            for r1, rr in zip(r1s[good], rmin[good]):
                pet0 = float(cdf0[n1, r1])
                feasible.append((n, n1, int(r1), int(rr), n1 + (1 - pet0) * n2, pet0))
    return feasible


@dataclass(frozen=True)
class SimonTwoStage:
    """Simon's (1989) two-stage design: stop after ``n1`` patients with ``<= r1`` responses; promising with
    ``> r`` responses of ``n``.

    ``SimonTwoStage(p0, p1, alpha, beta, kind="optimal" | "minimax")`` searches the design exactly (maximum N
    ``nmax``); :meth:`from_boundaries` takes given ``r1, n1, r, n``. ``tox_stop`` (optional): stop at each of
    the two analyses when the DLTs so far are ``>=`` the given counts (a protocol's own safety rule; not part
    of Simon's search).
    """

    p0: float | None = None
    p1: float | None = None
    alpha: float | None = 0.05
    beta: float | None = 0.20
    kind: str = "optimal"
    nmax: int = 100
    r1: int | None = None
    n1: int | None = None
    r: int | None = None
    n: int | None = None
    tox_stop: tuple[int, int] | None = None
    #: Expected N and P(early termination) under p0 (computed).
    en0: float | None = field(default=None, compare=False)
    pet0: float | None = field(default=None, compare=False)

    def __post_init__(self):
        given = [v is not None for v in (self.r1, self.n1, self.r, self.n)]
        if self.kind == "given":
            if not all(given):
                raise DesignError("Simon: a design from given boundaries needs r1, n1, r and n")
        elif self.kind not in SIMON_KINDS:
            raise DesignError(f"kind = {self.kind!r} must be one of {', '.join(SIMON_KINDS)} (or use "
                              "SimonTwoStage.from_boundaries)")
        elif any(given):
            raise DesignError("Simon: give either p0, p1, alpha, beta and kind, or r1, n1, r, n "
                              "(SimonTwoStage.from_boundaries), not both")
        if self.kind != "given":
            p0 = _prob(self.p0, "p0")
            p1 = _prob(self.p1, "p1")
            if p1 <= p0:
                raise DesignError(f"p1 = {self.p1!r} must exceed p0 = {self.p0!r}")
            alpha = _prob(self.alpha, "alpha")
            beta = _prob(self.beta, "beta")
            nmax = _int(self.nmax, "nmax", low=2, high=MAX_STAGE_N)
            found = _simon_search(p0, p1, alpha, beta, nmax)
            if not found:
                raise DesignError(f"Simon: no two-stage design with n <= nmax = {nmax} meets alpha = {alpha:g} "
                                  f"and beta = {beta:g} for p0 = {p0:g}, p1 = {p1:g}; raise nmax")
            if self.kind == "optimal":
                best = min(found, key=lambda d: (round(d[4], 10), d[0], d[1]))
            else:
                best = min(found, key=lambda d: (d[0], round(d[4], 10), d[1]))
            n, n1, r1, r, en0, pet0 = best
            for k, v in (("p0", p0), ("p1", p1), ("alpha", alpha), ("beta", beta), ("r1", r1), ("n1", n1),
                         ("r", r), ("n", n), ("en0", en0), ("pet0", pet0)):
                object.__setattr__(self, k, v)
        else:
            n = _int(self.n, "n", low=2)
            n1 = _int(self.n1, "n1", low=1, high=n - 1)
            r1 = _int(self.r1, "r1", low=0, high=n1 - 1)
            r = _int(self.r, "r", low=r1, high=n - 1)
            for k, v in (("n", n), ("n1", n1), ("r1", r1), ("r", r)):
                object.__setattr__(self, k, v)
            if self.p0 is not None:
                p0 = _prob(self.p0, "p0")
                pet0 = float(stats.binom.cdf(r1, n1, p0))
                object.__setattr__(self, "p0", p0)
                object.__setattr__(self, "pet0", pet0)
                object.__setattr__(self, "en0", n1 + (1 - pet0) * (n - n1))
        if self.tox_stop is not None:
            t = _ints(self.tox_stop, "tox_stop", low=1, high=MAX_STAGE_N + 1)
            if len(t) != 2:
                raise DesignError(f"tox_stop = {list(t)} needs two counts (after stage 1 and at the end)")
            object.__setattr__(self, "tox_stop", t)

    @classmethod
    def from_boundaries(cls, r1: int, n1: int, r: int, n: int, *, p0=None, tox_stop=None) -> "SimonTwoStage":
        """A Simon design with the given boundaries (``p0``, optional, gives EN0 and PET0)."""
        return cls(p0=p0, p1=None, alpha=None, beta=None, kind="given", r1=r1, n1=n1, r=r, n=n, tox_stop=tox_stop)

    @property
    def rule(self) -> StageRule:
        return StageRule((self.n1, self.n), (self.r1, self.r), self.tox_stop)

    def boundaries(self) -> dict:
        return {"r1": self.r1, "n1": self.n1, "r": self.r, "n": self.n}

    def to_dict(self) -> dict:
        out = {"design": "Simon"}
        if self.kind == "given":
            out.update(self.boundaries())
            if self.p0 is not None:
                out["p0"] = self.p0
        else:
            out.update({"kind": self.kind, "p0": self.p0, "p1": self.p1, "alpha": self.alpha, "beta": self.beta})
            if self.nmax != 100:
                out["nmax"] = self.nmax
        if self.tox_stop is not None:
            out["tox_stop"] = list(self.tox_stop)
        return out


# -- BOP2 -----------------------------------------------------------------------------------------------------
def bop2_boundaries(looks, p0: float, lam: float, gam: float, tox_null: float | None = None):
    """BOP2 boundaries for cutoff C(n) = lam (n / N)^gam: ``(eff_stop, tox_stop)``; ``eff_stop[k]`` = the
    largest response count with Pr(p_E > p0 | data) < C(n_k) (-1: none), ``tox_stop[k]`` = the smallest DLT
    count with Pr(p_T <= tox_null | data) < C(n_k) (n_k + 1: none; None without ``tox_null``). Priors
    Beta(p0, 1 - p0) and Beta(tox_null, 1 - tox_null)."""
    eff, tox = _bop2_many(tuple(looks), p0, np.array([float(lam)]), np.array([float(gam)]), tox_null)
    return tuple(int(v) for v in eff[0]), (None if tox is None else tuple(int(v) for v in tox[0]))


def _bop2_many(looks, p0, lams, gams, tox_null):
    """Boundaries for each (lam, gam) pair: arrays ``(pairs, K)`` (tox: None without ``tox_null``)."""
    looks = np.asarray(looks)
    big_n = looks[-1]
    cut = lams[:, None] * (looks[None, :] / big_n) ** gams[:, None]            # (P, K)
    eff = np.full(cut.shape, -1, dtype=int)
    tox = None if tox_null is None else np.array(np.broadcast_to(looks + 1, cut.shape))
    for k, n in enumerate(looks):
        x = np.arange(n + 1)
        post_e = special.betaincc(p0 + x, 1 - p0 + n - x, p0)                  # Pr(p_E > p0 | x), rising in x
        below = post_e[None, :] < cut[:, k][:, None]                            # (P, x)
        # largest x with the posterior below the cutoff (the posterior rises with x, so the set is a prefix)
        cnt = below.sum(axis=1)
        eff[:, k] = cnt - 1
        if tox_null is not None:
            post_t = special.betainc(tox_null + x, 1 - tox_null + n - x, tox_null)  # Pr(p_T <= phi_T | y), falls
            below_t = post_t[None, :] < cut[:, k][:, None]
            tox[:, k] = n + 1 - below_t.sum(axis=1)
    return eff, tox


@dataclass(frozen=True)
class BOP2:
    """BOP2 (Zhou, Lee & Yuan 2017) for a binary response, optionally monitored jointly with toxicity.

    Parameters
    ----------
    p0, p1
        Response rate under the null (phi_E: the go rule asks Pr(p_E > p0 | data)) and under the alternative.
    looks
        Cumulative patients at each analysis; the last is the stage's maximum N.
    alpha
        Type I error: the largest P(go) allowed under the null (p_E = p0 and, with toxicity, p_T = tox_null).
    tox_null, tox_alt
        Optional toxicity rule: the unacceptable DLT rate phi_T (no-go when Pr(p_T <= phi_T | data) < C(n))
        and the DLT rate under the alternative (for the power).
    association
        Plackett odds ratio of response and DLT under the null and the alternative for the calibration
        (1: independent). The boundaries do not depend on it (the Dirichlet prior's marginals are Beta).
    lam, gam
        Give both to fix C(n) = lam (n/N)^gam; otherwise they are calibrated on ``lambda_grid`` x
        ``gamma_grid``: the largest power under the alternative with type I error <= alpha (ties: the smaller
        expected N under the null, then the first pair in grid order).
    """

    p0: float
    p1: float | None
    looks: tuple[int, ...]
    alpha: float = 0.10
    tox_null: float | None = None
    tox_alt: float | None = None
    association: float = 1.0
    lam: float | None = None
    gam: float | None = None
    lambda_grid: tuple[float, ...] = field(default=LAMBDA_GRID, repr=False)
    gamma_grid: tuple[float, ...] = field(default=GAMMA_GRID, repr=False)
    #: Computed: boundaries and the exact type I error and power of the chosen (lam, gam).
    eff_stop: tuple[int, ...] = field(default=(), compare=False)
    tox_stop: tuple[int, ...] | None = field(default=None, compare=False)
    type1: float | None = field(default=None, compare=False)
    power: float | None = field(default=None, compare=False)

    def __post_init__(self):
        p0 = _prob(self.p0, "p0")
        looks = _ints(self.looks, "looks", low=1, high=MAX_STAGE_N)
        if any(b <= a for a, b in zip(looks, looks[1:])):
            raise DesignError(f"looks = {list(self.looks)} must increase strictly (cumulative patients)")
        alpha = _prob(self.alpha, "alpha")
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "looks", looks)
        object.__setattr__(self, "alpha", alpha)
        if (self.tox_null is None) != (self.tox_alt is None) and self.lam is None:
            raise DesignError("BOP2: give tox_null and tox_alt together (the toxicity rule and its alternative)")
        tox_null = None if self.tox_null is None else _prob(self.tox_null, "tox_null")
        object.__setattr__(self, "tox_null", tox_null)
        a = self.association
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (0 < a < math.inf):
            raise DesignError(f"association = {a!r} must be a positive odds ratio (1 = independence)")
        object.__setattr__(self, "association", float(a))
        fixed = (self.lam is not None, self.gam is not None)
        if any(fixed) and not all(fixed):
            raise DesignError("BOP2: give lam and gam together, or neither (then they are calibrated)")
        if all(fixed):
            lam = _prob(self.lam, "lam")
            gam = self.gam
            if isinstance(gam, bool) or not isinstance(gam, (int, float)) or not (0 <= gam <= 10):
                raise DesignError(f"gam = {gam!r} must be a number in [0, 10]")
            lams, gams = np.array([lam]), np.array([float(gam)])
        else:
            if self.p1 is None:
                raise DesignError("BOP2: p1 (the response rate under the alternative) is needed to calibrate "
                                  "lam and gam")
            lg = tuple(_prob(v, f"lambda_grid[{i}]") for i, v in enumerate(self.lambda_grid))
            gg = []
            for i, v in enumerate(self.gamma_grid):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v <= 10):
                    raise DesignError(f"gamma_grid[{i}] = {v!r} must be a number in [0, 10]")
                gg.append(float(v))
            if not lg or not gg:
                raise DesignError("BOP2: lambda_grid and gamma_grid must not be empty")
            object.__setattr__(self, "lambda_grid", lg)
            object.__setattr__(self, "gamma_grid", tuple(gg))
            lams = np.repeat(np.array(lg), len(gg))
            gams = np.tile(np.array(gg), len(lg))
        if self.p1 is not None:
            p1 = _prob(self.p1, "p1")
            if p1 <= p0:
                raise DesignError(f"p1 = {self.p1!r} must exceed p0 = {self.p0!r}")
            object.__setattr__(self, "p1", p1)
        if self.tox_alt is not None:
            ta = _prob(self.tox_alt, "tox_alt")
            if tox_null is not None and ta >= tox_null:
                raise DesignError(f"tox_alt = {self.tox_alt!r} must be below tox_null = {self.tox_null!r}")
            object.__setattr__(self, "tox_alt", ta)
        eff, tox = _bop2_many(looks, p0, lams, gams, tox_null)
        rows = np.concatenate([eff, tox], axis=1) if tox is not None else eff
        uniq, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        k = len(looks)
        rules = [StageRule(looks, tuple(int(v) for v in row[:k]),
                           None if tox is None else tuple(int(v) for v in row[k:])) for row in uniq]
        oc0 = stage_oc_many(rules, joint=self.null_joint())
        t1 = np.array([o["p_promising"] for o in oc0])
        en0 = np.array([o["expected_n"] for o in oc0])
        if self.p1 is not None:
            oc1 = stage_oc_many(rules, joint=self.alt_joint())
            pw = np.array([o["p_promising"] for o in oc1])
        else:
            pw = np.full(len(rules), np.nan)
        if all(fixed):
            pick = 0
        else:
            ok = t1 <= alpha + 1e-12
            if not ok.any():
                raise DesignError(f"BOP2: no (lambda, gamma) on the grid keeps the type I error <= alpha = {alpha:g}")
            # ties in power: the smaller expected N under the null, then the first pair in grid order
            order = sorted(np.flatnonzero(ok), key=lambda i: (-round(pw[i], 12), round(en0[i], 12), first[i]))
            pick = order[0]
            object.__setattr__(self, "lam", float(lams[first[pick]]))
            object.__setattr__(self, "gam", float(gams[first[pick]]))
        rule = rules[pick]
        object.__setattr__(self, "eff_stop", rule.eff_stop)
        object.__setattr__(self, "tox_stop", rule.tox_stop)
        object.__setattr__(self, "type1", float(t1[pick]))
        object.__setattr__(self, "power", None if self.p1 is None else float(pw[pick]))

    def null_joint(self) -> np.ndarray:
        """(N, T, E, B) of one patient under the null (p_E = p0, p_T = tox_null)."""
        return plackett_joint([self.tox_null or 0.0], [self.p0], self.association)[0]

    def alt_joint(self) -> np.ndarray:
        return plackett_joint([self.tox_alt or 0.0], [self.p1], self.association)[0]

    @property
    def rule(self) -> StageRule:
        return StageRule(self.looks, self.eff_stop, self.tox_stop)

    def cutoffs(self) -> np.ndarray:
        """C(n) at each look."""
        n = np.asarray(self.looks, dtype=float)
        return self.lam * (n / n[-1]) ** self.gam

    def boundaries(self) -> dict:
        out = {"looks": list(self.looks), "eff_stop": list(self.eff_stop)}
        if self.tox_stop is not None:
            out["tox_stop"] = list(self.tox_stop)
        return out

    def to_dict(self) -> dict:
        out = {"design": "BOP2", "p0": self.p0, "looks": list(self.looks), "alpha": self.alpha,
               "lam": self.lam, "gam": self.gam}
        if self.p1 is not None:
            out["p1"] = self.p1
        if self.tox_null is not None:
            out["tox_null"] = self.tox_null
        if self.tox_alt is not None:
            out["tox_alt"] = self.tox_alt
        if self.association != 1.0:
            out["association"] = self.association
        return out


# -- the stage ----------------------------------------------------------------------------------------------
_SIMON_KEYS = {"design", "kind", "p0", "p1", "alpha", "beta", "nmax", "r1", "n1", "r", "n", "tox_stop"}
_BOP2_KEYS = {"design", "p0", "p1", "looks", "alpha", "tox_null", "tox_alt", "association", "lam", "gam"}


@dataclass(frozen=True)
class Phase2Stage:
    """A phase 2 stage at the tier the escalation selected: a :class:`SimonTwoStage` or a :class:`BOP2`."""

    design: SimonTwoStage | BOP2

    def __post_init__(self):
        if not isinstance(self.design, (SimonTwoStage, BOP2)):
            raise DesignError(f"Phase2Stage: design = {self.design!r} must be a SimonTwoStage or a BOP2")

    @property
    def rule(self) -> StageRule:
        return self.design.rule

    @property
    def max_n(self) -> int:
        return self.rule.max_n

    @property
    def uses_toxicity(self) -> bool:
        return self.rule.tox_stop is not None

    def oc(self, p_e=None, p_t=None, joint=None) -> dict:
        """Exact operating characteristics of the stage alone (see :func:`stage_oc`)."""
        if joint is None:
            if p_e is None:
                raise DesignError("Phase2Stage.oc: give p_e (and p_t) or joint")
            _prob(p_e, "p_e", open_ends=False)
            if p_t is not None:
                _prob(p_t, "p_t", open_ends=False)
        return stage_oc(self.rule, p_e, p_t, joint)

    def to_dict(self) -> dict:
        return self.design.to_dict()

    def describe(self) -> str:
        """One paragraph for a protocol or report: the rule, and its exact error rates where known."""
        r = self.rule
        d = self.design
        looks = ", ".join(f"{f}/{n}" for f, n in zip(r.eff_stop, r.looks))
        text = (f"no-go with at most {looks} responses"
                if isinstance(d, BOP2) else
                f"stop after {d.n1} patients with at most {d.r1} responses; promising with more than {d.r} "
                f"responses of {d.n}")
        if isinstance(d, BOP2):
            if r.tox_stop is not None:
                text += " or at least " + ", ".join(f"{t}/{n}" for t, n in zip(r.tox_stop, r.looks)) + " DLTs"
            text += "; promising otherwise"
        elif r.tox_stop is not None:
            text += f"; also stop with at least {r.tox_stop[0]}/{d.n1} or {r.tox_stop[1]}/{d.n} DLTs"
        if isinstance(d, BOP2):
            head = (f"BOP2 (Zhou, Lee & Yuan 2017), C(n) = {d.lam:g} (n/{r.max_n})^{d.gam:g}, response null "
                    f"{d.p0:g}" + ("" if d.tox_null is None else f", DLT limit {d.tox_null:g}"))
            errs = f"; P(go) under the null {d.type1:.3f}" + ("" if d.power is None else f", under the "
                                                              f"alternative {d.power:.3f}")
        else:
            head = "Simon two-stage" + ("" if d.kind == "given" else f" ({d.kind}, Simon 1989)")
            errs = ""
            if d.p0 is not None:
                errs = f"; P(promising) at p0 = {d.p0:g}: {self.oc(d.p0)['p_promising']:.3f}"
            if d.p1 is not None:
                errs += f", at p1 = {d.p1:g}: {self.oc(d.p1)['p_promising']:.3f}"
            if d.tox_stop is not None and errs:
                errs += " (response alone)"
        return f"{head}: {text}{errs}."

    @classmethod
    def from_dict(cls, d: dict, where: str = "[phase2]") -> "Phase2Stage":
        """From a ``[phase2]`` table: ``design = "Simon"`` (``kind``, ``p0``, ``p1``, ``alpha``, ``beta``,
        ``nmax``; or ``r1``, ``n1``, ``r``, ``n``; optional ``tox_stop``) or ``design = "BOP2"`` (``p0``,
        ``p1``, ``looks``, ``alpha``, optional ``tox_null``, ``tox_alt``, ``association``, ``lam``, ``gam``).
        Errors name ``where``, the key and the value."""
        if not isinstance(d, dict):
            raise DesignError(f"{where}: expected a table, got {d!r}")
        kind = d.get("design")
        if kind not in DESIGNS:
            raise DesignError(f"{where}: design = {kind!r} must be one of {', '.join(repr(k) for k in DESIGNS)}")
        known = _SIMON_KEYS if kind == "Simon" else _BOP2_KEYS
        extra = sorted(set(d) - known)
        if extra:
            raise DesignError(f"{where}: unknown key {extra[0]!r} = {d[extra[0]]!r} for design {kind!r} "
                              f"(known: {', '.join(sorted(known))})")
        args = {k: v for k, v in d.items() if k != "design"}
        try:
            if kind == "Simon":
                if any(k in args for k in ("r1", "n1", "r", "n")):
                    missing = [k for k in ("r1", "n1", "r", "n") if k not in args]
                    if missing:
                        raise DesignError(f"missing key {missing[0]!r} (give r1, n1, r and n together)")
                    bad = sorted(set(args) - {"r1", "n1", "r", "n", "p0", "tox_stop"})
                    if bad:
                        raise DesignError(f"{bad[0]} = {args[bad[0]]!r} does not apply to given boundaries")
                    design = SimonTwoStage.from_boundaries(args["r1"], args["n1"], args["r"], args["n"],
                                                           p0=args.get("p0"), tox_stop=args.get("tox_stop"))
                else:
                    for key in ("p0", "p1"):
                        if key not in args:
                            raise DesignError(f"missing key {key!r}")
                    design = SimonTwoStage(**args)
            else:
                for key in ("p0", "looks"):
                    if key not in args:
                        raise DesignError(f"missing key {key!r}")
                if "looks" in args and not isinstance(args["looks"], (list, tuple)):
                    raise DesignError(f"looks = {args['looks']!r} must be a list of cumulative patient counts")
                args.setdefault("p1", None)
                design = BOP2(**args)
        except DesignError as exc:
            raise DesignError(f"{where}: {exc}") from None
        return cls(design)


def phase2_from_toml(table, where: str) -> Phase2Stage:
    """The :class:`Phase2Stage` of a scenario file's ``[phase2]`` table (``where``: the file, for messages)."""
    return Phase2Stage.from_dict(table, f"{where}: [phase2]")


def phase2_from_file(data: dict, scenarios: dict, where: str) -> Phase2Stage | None:
    """The ``[phase2]`` table of a parsed scenario file (``data``), or None without one; every scenario must
    give ``true_eff`` (the response rate the stage tests). ``scenarios``: name -> Scenario."""
    if "phase2" not in data:
        return None
    stage = phase2_from_toml(data["phase2"], where)
    for name, s in scenarios.items():
        if getattr(s, "true_eff", None) is None:
            raise DesignError(f"{where}: [phase2] needs true_eff in every [[scenario]]: scenario {name!r} has "
                              "none (the phase 2 stage tests the response rate at the selected tier)")
    return stage
