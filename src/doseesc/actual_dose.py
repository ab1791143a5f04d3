"""The actual infused dose: release tolerance, manufacturing shortfall and failure, body weight.

A cell product is released for a tier when its dose lies within the tier's
tolerance band (e.g. ±20% around nominal). Each patient therefore receives an
*actual* dose that differs from the nominal one; some products fall short of
the tier's lower limit, and some fail to manufacture. :class:`DoseModel`
describes this per protocol, with the policy the protocol applies to a
product below the band and to a failed product. A :class:`Scenario` can give
the truth as curves of the actual dose (:class:`LogisticCurve` for P(DLT),
:class:`EmaxCurve` for P(response)); each simulated patient's risk is then
evaluated at the dose they received.

The *tier-averaged truth* of tier ``t`` is the curve averaged over the
actual-dose distribution of every product released for tier ``t`` (within the
band, or short of it; failed products are never infused), integrated with
scipy. The true MTD and OBD of a scenario given by curves are defined on the
tier-averaged truth: it is the risk a patient assigned to that tier actually
carries.

Random numbers (per enrolled patient, each from its own stream, see
:mod:`doseesc.rng`): ``PRODUCT`` gives whether manufacture fails
(``u < failure``), the product falls short (``u >= 1 - shortfall``) or
conforms, and, rescaled within that interval, the release factor
(:meth:`DoseModel.product`); ``WEIGHT`` the body weight. Patient ``j`` of a trial keeps the same numbers
whatever the design, so comparisons stay paired.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from ._lazy import lazy
from .errors import DoseescError, ScenarioError
from .scenario import Scenario, plackett_joint
from .tiers import DoseLadder, format_dose

integrate = lazy("scipy.integrate")
special = lazy("scipy.special")

#: Policies for a product below its tier's lower release limit.
BELOW_BAND = {
    "nominal": "infuse and count the patient at the nominal (assigned) tier",
    "band": "infuse and count the patient at the tier whose band contains the actual dose, else the nearest "
            "lower tier; below the lowest tier's band the patient is not evaluable and is replaced",
    "not_evaluable": "infuse, but the patient is not evaluable for dose finding and is replaced",
    "do_not_infuse": "do not infuse; the patient is lost and replaced",
}
#: Policies for a failed manufacture (no product).
ON_FAILURE = {
    "replace": "the patient is lost and replaced by a new patient in the same cohort",
    "lost": "the patient is lost and not replaced: the cohort goes on with fewer evaluable patients",
}


class PatientStatus(IntEnum):
    """What happened to an enrolled patient (int8 per patient; -1: not enrolled)."""

    NOT_ENROLLED = -1
    #: Infused and evaluable at the tier the policy counts them at.
    EVALUABLE = 0
    #: Infused with a product below the band, not evaluable, replaced.
    NOT_EVALUABLE = 1
    #: Not infused (failed product or below-band product withheld), replaced.
    LOST_REPLACED = 2
    #: Failed product, not replaced.
    LOST = 3


def _number(value, key: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DoseescError(f"{key} = {value!r} must be a number")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
        raise DoseescError(f"{key} = {value!r} must be a finite number {' and '.join(x for x in (lo, hi) if x)}")
    return v


# -- dose-response curves ----------------------------------------------------------------------
@dataclass(frozen=True)
class LogisticCurve:
    """P(DLT) as a logistic function of log dose.

    ``logit p(d) = logit(p_ref) + slope * ln(d / ref_dose)``: ``p_ref`` is the
    risk at ``ref_dose``; ``slope`` is the change in log-odds per e-fold
    increase of dose (slope 1.5: doubling the dose multiplies the odds by
    2**1.5 = 2.8).
    """

    ref_dose: float
    p_ref: float
    slope: float

    kind = "logistic"

    def __post_init__(self):
        object.__setattr__(self, "ref_dose", _number(self.ref_dose, "ref_dose", low=0, low_open=True))
        object.__setattr__(self, "p_ref", _number(self.p_ref, "p_ref", low=0, high=1, low_open=True,
                                                  high_open=True))
        object.__setattr__(self, "slope", _number(self.slope, "slope", low=0))

    def __call__(self, dose) -> np.ndarray:
        # P = 1 / (1 + exp(-eta)), -eta = -slope ln(d) + (slope ln(ref_dose) - logit(p_ref)), in place
        if self.slope == 0:
            return np.full(np.shape(dose), self.p_ref) if np.ndim(dose) else np.float64(self.p_ref)
        with np.errstate(over="ignore", divide="ignore"):   # exp(-eta) = inf gives P = 0, as it should
            z = np.log(np.asarray(dose, dtype=float))
            z *= -self.slope
            z += self.slope * math.log(self.ref_dose) - special.logit(self.p_ref)
            z = np.exp(z, out=z) if isinstance(z, np.ndarray) else np.exp(z)
        z += 1.0
        return np.reciprocal(z, out=z) if isinstance(z, np.ndarray) else 1.0 / z

    def text(self, unit: str = "") -> str:
        return (f"logistic in log dose: P(DLT) = {self.p_ref:g} at {format_dose(self.ref_dose, unit)}, "
                f"log-odds slope {self.slope:g} per e-fold dose")

    def to_dict(self) -> dict:
        return {"model": "logistic", "ref_dose": self.ref_dose, "p_ref": self.p_ref, "slope": self.slope}


@dataclass(frozen=True)
class EmaxCurve:
    """P(response) as an Emax (Hill) curve of dose with a plateau.

    ``p(d) = e0 + emax * d**hill / (ed50**hill + d**hill)``; the plateau is
    ``e0 + emax`` (at most 1).
    """

    e0: float
    emax: float
    ed50: float
    hill: float = 1.0

    kind = "emax"

    def __post_init__(self):
        object.__setattr__(self, "e0", _number(self.e0, "e0", low=0, high=1))
        object.__setattr__(self, "emax", _number(self.emax, "emax", low=0, high=1))
        object.__setattr__(self, "ed50", _number(self.ed50, "ed50", low=0, low_open=True))
        object.__setattr__(self, "hill", _number(self.hill, "hill", low=0, low_open=True))
        if self.e0 + self.emax > 1 + 1e-12:
            raise DoseescError(f"e0 + emax = {self.e0 + self.emax:g} is the plateau P(response) and must be <= 1")

    def __call__(self, dose) -> np.ndarray:
        d = np.asarray(dose, dtype=float)
        r = (d / self.ed50) ** self.hill
        return np.clip(self.e0 + self.emax * r / (1 + r), 0.0, 1.0)

    def text(self, unit: str = "") -> str:
        return (f"Emax: P(response) from {self.e0:g} to a plateau of {self.e0 + self.emax:g}, half way at "
                f"{format_dose(self.ed50, unit)} (Hill {self.hill:g})")

    def to_dict(self) -> dict:
        return {"model": "emax", "e0": self.e0, "emax": self.emax, "ed50": self.ed50, "hill": self.hill}


CURVES = {"logistic": LogisticCurve, "emax": EmaxCurve}


def curve_from_dict(d, key: str):
    """A curve from ``{model = "logistic", ...}``; errors name ``key``."""
    if not isinstance(d, dict):
        raise ScenarioError(f"{key} = {d!r} must be a table such as {{ model = \"logistic\", ... }}")
    d = dict(d)
    model = d.pop("model", None)
    if model not in CURVES:
        raise ScenarioError(f"{key}: model = {model!r} is not one of {', '.join(CURVES)}")
    cls = CURVES[model]
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    for k in d:
        if k not in known:
            raise ScenarioError(f"{key}: unknown key {k!r} for a {model} curve (known: model, {', '.join(known)})")
    missing = [f.name for f in fields if f.name not in d and f.default is dataclasses.MISSING]
    if missing:
        raise ScenarioError(f"{key}: a {model} curve needs {', '.join(missing)}")
    try:
        return cls(**d)
    except DoseescError as exc:
        raise ScenarioError(f"{key}: {exc}") from None


# -- body weight --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightGroup:
    """One group of the enrolled population's body weight: normal(mean, sd) truncated to [min, max] kg."""

    share: float
    mean: float
    sd: float
    min: float
    max: float
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "share", _number(self.share, "share", low=0, high=1, low_open=True))
        object.__setattr__(self, "mean", _number(self.mean, "mean", low=0, low_open=True))
        object.__setattr__(self, "sd", _number(self.sd, "sd", low=0, low_open=True))
        object.__setattr__(self, "min", _number(self.min, "min", low=0, low_open=True))
        object.__setattr__(self, "max", _number(self.max, "max", low=0, low_open=True))
        if self.max <= self.min:
            raise DoseescError(f"max = {self.max:g} kg must be above min = {self.min:g} kg")

    def _truncation(self) -> tuple[float, float]:
        """The standard normal CDF at the group's lower and upper limits."""
        return special.ndtr((self.min - self.mean) / self.sd), special.ndtr((self.max - self.mean) / self.sd)

    def ppf(self, v: np.ndarray) -> np.ndarray:
        a, b = self._truncation()
        w = self.mean + self.sd * special.ndtri(a + v * (b - a))
        return np.clip(w, self.min, self.max)

    def cdf(self, w) -> np.ndarray:
        a, b = self._truncation()
        return np.clip((special.ndtr((np.asarray(w, float) - self.mean) / self.sd) - a) / (b - a), 0.0, 1.0)

    def pdf(self, w):
        a, b = self._truncation()
        z = (np.asarray(w, float) - self.mean) / self.sd
        return np.exp(-0.5 * z * z) / (math.sqrt(2 * math.pi) * self.sd * (b - a))

    def to_dict(self) -> dict:
        out = {"share": self.share, "mean": self.mean, "sd": self.sd, "min": self.min, "max": self.max}
        if self.name:
            out["name"] = self.name
        return out


#: Points of the tabulated inverse CDF of the normal release factor, on a uniform grid over [0, 1]
#: (truncated to the band, the function is smooth: interpolation error below 1e-8, tested).
_TABLE = 1 << 16


#: Within this distance of either end of a weight group the exact inverse CDF is used.
_TAIL = 1e-3


def _interpolation_table(exact, ends=()) -> tuple[np.ndarray, np.ndarray]:
    """``exact`` (a function on [0, 1] smooth between the points ``ends``) at ``q = i / (_TABLE - 1)`` and
    the step to the next point, each with one padding point, for linear interpolation. The step is NaN
    (the caller then uses ``exact`` itself) in the cells that straddle a point of ``ends`` and in those
    where linear interpolation is off by more than 4e-9 at the cell's middle (the steep ends of a narrow
    truncated normal), so that the interpolation error stays below 1e-8 (tested)."""
    q = np.linspace(0.0, 1.0, _TABLE)
    value = exact(q)
    step = np.diff(value)
    bad = np.abs(value[:-1] + step / 2 - exact((q[1:] + q[:-1]) / 2)) > 4e-9
    for e in ends:
        bad |= (q[:-1] < e) != (q[1:] < e)
    step[bad] = np.nan
    return np.append(value, value[-1]), np.append(step, [0.0, 0.0])


# -- the model ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DoseModel:
    """How the actual infused dose of each patient arises, and what the protocol does about it.

    Parameters
    ----------
    release
        Distribution of the release factor (actual / nominal dose) of a
        conforming product, within the ladder's tolerance band:
        ``"uniform"`` over the band, or ``"normal"``: normal with mean 1 and
        SD ``release_sd`` truncated to the band.
    release_sd
        SD of the release factor for ``release = "normal"``.
    shortfall
        Probability that a product falls short of its tier's lower limit.
    shortfall_min
        A shortfall product's factor is uniform on ``[shortfall_min, 1 - tolerance)``.
    failure
        Probability that manufacture fails (no product).
    below_band, on_failure
        Protocol policies; see :data:`BELOW_BAND` and :data:`ON_FAILURE`.
    weights
        Body-weight groups (:class:`WeightGroup`) of the enrolled
        population; used with ``cap_total`` for per-kg dosing.
    cap_total
        Flat cap on the total cells infused (per-kg ladders only): a patient
        heavier than ``cap_total / (factor x nominal)`` kg gets ``cap_total``
        cells, i.e. ``cap_total / weight`` per kg.
    max_enrolled
        Most patients a trial may enrol, replacements included (default:
        twice the design's ``max_n`` when replacements can happen). A trial
        that reaches it before a cohort is complete stops (reason
        ``ENROLMENT_CAP``).
    """

    release: str = "uniform"
    release_sd: float = 0.10
    shortfall: float = 0.0
    shortfall_min: float = 0.5
    failure: float = 0.0
    below_band: str = "nominal"
    on_failure: str = "replace"
    weights: tuple[WeightGroup, ...] = field(default=())
    cap_total: float | None = None
    max_enrolled: int | None = None

    def __post_init__(self):
        if self.release not in ("uniform", "normal"):
            raise DoseescError(f"release = {self.release!r} must be 'uniform' or 'normal'")
        object.__setattr__(self, "release_sd", _number(self.release_sd, "release_sd", low=0, low_open=True))
        object.__setattr__(self, "shortfall", _number(self.shortfall, "shortfall", low=0, high=1, high_open=True))
        object.__setattr__(self, "shortfall_min", _number(self.shortfall_min, "shortfall_min", low=0, high=1,
                                                          low_open=True, high_open=True))
        object.__setattr__(self, "failure", _number(self.failure, "failure", low=0, high=1, high_open=True))
        if self.below_band not in BELOW_BAND:
            raise DoseescError(f"below_band = {self.below_band!r} is not one of {', '.join(BELOW_BAND)}")
        if self.on_failure not in ON_FAILURE:
            raise DoseescError(f"on_failure = {self.on_failure!r} is not one of {', '.join(ON_FAILURE)}")
        groups = []
        for i, g in enumerate(self.weights):
            if isinstance(g, dict):
                try:
                    g = WeightGroup(**g)
                except DoseescError as exc:
                    raise DoseescError(f"weights[{i}]: {exc}") from None
                except TypeError as exc:
                    raise DoseescError(f"weights[{i}]: {exc}") from None
            if not isinstance(g, WeightGroup):
                raise DoseescError(f"weights[{i}] = {g!r} must be a WeightGroup or a table")
            groups.append(g)
        if groups and abs(sum(g.share for g in groups) - 1) > 1e-9:
            raise DoseescError(f"weights: the shares add up to {sum(g.share for g in groups):g}, not 1")
        object.__setattr__(self, "weights", tuple(groups))
        if self.cap_total is not None:
            object.__setattr__(self, "cap_total", _number(self.cap_total, "cap_total", low=0, low_open=True))
            if not groups:
                raise DoseescError("cap_total needs a body-weight distribution ('weights')")
        if self.failure + self.shortfall >= 1:
            raise DoseescError(f"failure + shortfall = {self.failure + self.shortfall:g}: no product would conform")
        if self.max_enrolled is not None:
            m = self.max_enrolled
            if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
                raise DoseescError(f"max_enrolled = {m!r} must be a positive integer")

    # -- facts ---------------------------------------------------------------------------------
    @property
    def replaces(self) -> bool:
        """Whether a patient can be replaced (so trials may enrol more than ``max_n``)."""
        return (self.failure > 0 and self.on_failure == "replace") or (
            (self.shortfall > 0 or self.cap_total is not None) and self.below_band != "nominal")

    def enrolment_cap(self, max_n: int) -> int:
        if self.max_enrolled is not None:
            if self.max_enrolled < max_n:
                raise DoseescError(f"max_enrolled = {self.max_enrolled} is below the design's max_n = {max_n}")
            return int(self.max_enrolled)
        return 2 * max_n if self.replaces else max_n

    def check(self, ladder: DoseLadder, design=None) -> None:
        """Refuse combinations that cannot be simulated faithfully."""
        if self.cap_total is not None and "/kg" not in ladder.unit:
            raise DoseescError(f"cap_total is set but the tiers' unit {ladder.unit!r} is not per kg "
                               "(a flat cap applies to per-kg dosing)")
        if design is not None and design.fixed_cohorts:
            if self.below_band == "band" and self.shortfall > 0:
                raise DoseescError(f"{design.label} counts patients in complete cohorts at one tier: "
                                   "below_band = 'band' would split a cohort; use 'nominal', 'not_evaluable' "
                                   "or 'do_not_infuse'")
            if self.on_failure == "lost" and self.failure > 0:
                raise DoseescError(f"{design.label} needs complete cohorts of evaluable patients: "
                                   "on_failure = 'lost' would leave short cohorts; use 'replace'")

    # -- sampling --------------------------------------------------------------------------------
    def release_factor(self, u: np.ndarray, tolerance: float) -> np.ndarray:
        """Release factor of a conforming product from a uniform ``u`` (the normal's inverse CDF tabulated,
        as in :meth:`product`)."""
        if tolerance == 0 or self.release == "uniform":   # closed forms: nothing to tabulate
            return self._release_exact(u, tolerance)
        return self._interpolate(("_rtable", tolerance), u, lambda q: self._release_exact(q, tolerance))

    def product(self, u: np.ndarray, tolerance: float):
        """Whether each product failed, and its release factor, from one uniform ``u`` each.

        Returns ``(failed, factor)`` (``failed`` is None when the model has no
        failures; a failed product's factor is meaningless). Failed when ``u <
        failure``; short of the band when ``u >= 1 - shortfall``, the factor
        then uniform on ``[shortfall_min, 1 - tolerance)``; conforming
        otherwise, the factor drawn from the release distribution. Within each
        interval ``u`` is rescaled to a fresh uniform (exact: it is uniform on
        [0, 1) and independent of the outcome), so one random stream gives both.

        The factor as a function of ``u`` is tabulated once and interpolated
        linearly (:func:`_interpolation_table`); the grid cells that straddle an
        interval's end are computed from the definition.
        """
        f, s = self.failure, self.shortfall
        if f == 0 and s == 0:
            return None, self.release_factor(u, tolerance)
        if s == 0 and tolerance == 0:   # every product that exists is at its nominal dose
            return u < f, np.ones_like(u)
        factor = self._interpolate(("_ptable", tolerance), u, lambda q: self._product_exact(q, tolerance),
                                   ends=(f, 1 - s))
        return (u < f if f > 0 else None), factor

    def _interpolate(self, key, u: np.ndarray, exact, ends=()) -> np.ndarray:
        """``exact(u)`` by linear interpolation in its table (built once, kept under ``key``)."""
        table = self.__dict__.get(key)
        if table is None:
            table = self.__dict__[key] = _interpolation_table(exact, ends)
        values, steps = table
        x = u * (_TABLE - 1)
        cell = np.floor(x)
        x -= cell
        i = cell.astype(np.intp)
        x *= np.take(steps, i)
        x += np.take(values, i)
        odd = np.isnan(x)               # a cell the table leaves to the definition
        if odd.any():
            x[odd] = exact(u[odd])
        return x

    def _release_exact(self, v: np.ndarray, tolerance: float) -> np.ndarray:
        """The release factor of a conforming product at the uniform ``v``, from its definition."""
        v = np.asarray(v, dtype=float)
        if tolerance == 0:
            return np.ones_like(v)
        if self.release == "uniform":
            return 1 - tolerance + 2 * tolerance * v
        sd = self.release_sd
        a, b = special.ndtr(-tolerance / sd), special.ndtr(tolerance / sd)
        return np.clip(1 + sd * special.ndtri(a + v * (b - a)), 1 - tolerance, 1 + tolerance)

    def _product_exact(self, u: np.ndarray, tolerance: float) -> np.ndarray:
        """The release factor of :meth:`product` from its definition (any factor for a failed product)."""
        f, s = self.failure, self.shortfall
        u = np.asarray(u, dtype=float)
        out = self._release_exact(np.clip((u - f) / (1.0 - f - s), 0.0, 1.0), tolerance)
        if s > 0:
            short = u >= 1 - s
            out[short] = self.shortfall_factor((u[short] - (1 - s)) / s, tolerance)
        return out

    def shortfall_factor(self, u: np.ndarray, tolerance: float) -> np.ndarray:
        hi = 1 - tolerance
        lo = min(self.shortfall_min, hi)
        return lo + (hi - lo) * u

    def weight(self, v: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """Body weight (kg) from a uniform ``v``: the group by the cumulative shares (or ``group`` when the
        caller knows it), then the group's inverse CDF at the position of ``v`` within the group's share.

        The inverse CDFs are tabulated once (all groups in one table, each on its own uniform grid of
        ``_TABLE`` points) and interpolated linearly; within ``_TAIL`` of either end of a group, where a
        truncated normal's inverse CDF is steep, the exact inverse CDF is used (tested: error below 0.001 kg).
        """
        cached = self.__dict__.get("_wtable")
        if cached is None:
            edges = self._weight_edges()
            q = np.linspace(0.0, 1.0, _TABLE)
            cached = (edges, np.concatenate([g.ppf(q) for g in self.weights]))
            object.__setattr__(self, "_wtable", cached)
        edges, table = cached
        n_groups = len(self.weights)
        if n_groups == 1:
            g = np.zeros(v.shape, dtype=np.intp)
            local = v
        else:
            g = np.searchsorted(edges[1:-1], v, side="right") if group is None else group
            local = (v - edges[g]) / (edges[g + 1] - edges[g])
        x = np.clip(local, 0.0, 1.0) * (_TABLE - 1)
        i = np.minimum(x.astype(np.intp), _TABLE - 2)
        i += g * _TABLE
        lo = table[i]
        out = lo + (x - (i - g * _TABLE)) * (table[i + 1] - lo)
        tail = (local < _TAIL) | (local > 1 - _TAIL)
        if tail.any():
            for k, grp in enumerate(self.weights):
                m = tail & (g == k)
                if m.any():
                    out[m] = grp.ppf(np.clip(local[m], 0.0, 1.0))
        return out

    def _weight_edges(self) -> np.ndarray:
        """Cumulative group shares: group ``g`` takes the weight uniforms in ``[edges[g], edges[g + 1])``."""
        edges = np.cumsum([0.0] + [g.share for g in self.weights])
        edges[-1] = 1.0
        return edges

    def cap_screen(self, doses, top_factor: float) -> tuple[np.ndarray, np.ndarray]:
        """Where the flat cap may bind: ``(edges, threshold)`` with ``threshold[g, t]`` such that a patient
        whose weight uniform ``v`` falls in group ``g`` (``edges[g] <= v < edges[g + 1]``) and who is
        dosed at tier ``t`` can only reach the cap when ``v > threshold[g, t]``.

        The cap binds when the weight exceeds ``cap_total / (dose x factor)``; with the largest factor
        ``top_factor`` this is a per-tier weight, mapped to ``v`` by the group's CDF. The threshold is
        lowered by 0.001 in the group's own uniform scale, far more than the tabulated inverse CDF's error,
        so that every patient the cap reaches passes the screen (the engine then computes their exact dose).
        A threshold of 2 means that tier never reaches the cap.
        """
        edges = self._weight_edges()
        w_bind = self.cap_total / (np.asarray(doses, dtype=float) * top_factor)   # heavier: the cap may bind
        thr = np.full((len(self.weights), w_bind.size), 2.0)
        for k, grp in enumerate(self.weights):
            local = np.maximum(grp.cdf(w_bind) - 1e-3, 0.0)
            thr[k] = np.where(w_bind < grp.max, edges[k] + local * (edges[k + 1] - edges[k]), 2.0)
            # the lowest v of a group binds too when the threshold sits at the group's edge
            thr[k] = np.where((w_bind < grp.max) & (local == 0), np.nextafter(edges[k], -1), thr[k])
        return edges, thr

    # -- integration -----------------------------------------------------------------------------
    def _factor_densities(self, tolerance: float):
        """(weight, density, lo, hi) components of the actual/nominal factor distribution."""
        comps = []
        p_ok = 1 - self.shortfall
        if tolerance == 0:
            comps.append((p_ok, None, 1.0, 1.0))
        elif self.release == "uniform":
            comps.append((p_ok, lambda r: 1 / (2 * tolerance), 1 - tolerance, 1 + tolerance))
        else:
            s = self.release_sd
            z = special.ndtr(tolerance / s) - special.ndtr(-tolerance / s)
            comps.append((p_ok, lambda r: math.exp(-0.5 * ((r - 1) / s) ** 2) / (math.sqrt(2 * math.pi) * s * z),
                          1 - tolerance, 1 + tolerance))
        if self.shortfall > 0:
            hi = 1 - tolerance
            lo = min(self.shortfall_min, hi)
            if hi > lo:
                comps.append((self.shortfall, lambda r: 1 / (hi - lo), lo, hi))
            else:
                comps.append((self.shortfall, None, hi, hi))
        return comps

    def tier_average(self, curve, nominal: float, tolerance: float) -> float:
        """E[curve(actual dose)] over every product released for a tier of dose ``nominal`` (scipy quad).

        Without a cap this is one integral over the factor distribution. With a
        flat cap ``C`` a patient of weight ``w`` gets ``min(nominal x r, C / w)``
        per kg: for each weight the factor integral splits at ``r* = C / (w x
        nominal)``, above which the dose (hence the risk) is constant; the outer
        integral over each weight group is split where ``r*`` crosses the
        factor range.
        """
        comps = self._factor_densities(tolerance)

        def below(x):  # sum over components of the integral of curve(nominal r) dens(r) over r <= x
            total = 0.0
            for wt, dens, lo, hi in comps:
                if dens is None:
                    total += wt * float(curve(nominal * lo)) if lo <= x else 0.0
                    continue
                top = min(hi, x)
                if top > lo:
                    total += wt * integrate.quad(lambda r: float(curve(nominal * r)) * dens(r), lo, top,
                                                 epsabs=1e-13, epsrel=1e-11, limit=200)[0]
            return total

        def above(x):  # probability mass of the factor above x
            total = 0.0
            for wt, dens, lo, hi in comps:
                if dens is None:
                    total += wt if lo > x else 0.0
                elif x < hi:
                    total += wt * integrate.quad(dens, max(lo, x), hi, epsabs=1e-14, epsrel=1e-12)[0]
            return total

        if self.cap_total is None:
            return below(math.inf)
        edges = sorted({lo for _, _, lo, _ in comps} | {hi for _, _, _, hi in comps})
        total = 0.0
        for grp in self.weights:
            def inner(w, grp=grp):
                r_star = self.cap_total / (w * nominal)
                return (below(r_star) + float(curve(self.cap_total / w)) * above(r_star)) * grp.pdf(w)
            kinks = [self.cap_total / (nominal * r) for r in edges if r > 0]
            pts = sorted(x for x in kinks if grp.min < x < grp.max)
            val, _ = integrate.quad(inner, grp.min, grp.max, points=pts or None, epsabs=1e-12, epsrel=1e-10,
                                    limit=200)
            total += grp.share * val
        return total

    # -- words -------------------------------------------------------------------------------------
    def describe(self, ladder: DoseLadder | None = None) -> str:
        tol = None if ladder is None else (ladder.tolerance or 0.0)
        parts = []
        band = "" if tol is None else f" within ±{100 * tol:g}% of nominal"
        if tol == 0:
            parts.append("no release tolerance (a conforming product has its nominal dose)")
        elif self.release == "uniform":
            parts.append(f"release factor uniform{band}")
        else:
            parts.append(f"release factor normal (mean 1, SD {self.release_sd:g}) truncated{band}")
        if self.shortfall:
            parts.append(f"{100 * self.shortfall:g}% of products short of the lower limit "
                         f"(down to {self.shortfall_min:g}x nominal): {BELOW_BAND[self.below_band]}")
        if self.failure:
            parts.append(f"{100 * self.failure:g}% manufacturing failures: {ON_FAILURE[self.on_failure]}")
        if self.weights:
            parts.append("body weight " + "; ".join(
                f"{g.name + ': ' if g.name else ''}{100 * g.share:g}% normal({g.mean:g}, {g.sd:g}) kg "
                f"in [{g.min:g}, {g.max:g}]" for g in self.weights))
        if self.cap_total is not None:
            parts.append(f"at most {format_dose(self.cap_total, 'cells')} in total per patient")
        if self.max_enrolled is not None:
            parts.append(f"at most {self.max_enrolled} patients enrolled")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        out = {"release": self.release}
        if self.release == "normal":
            out["release_sd"] = self.release_sd
        for key in ("shortfall", "shortfall_min", "failure", "below_band", "on_failure", "cap_total",
                    "max_enrolled"):
            out[key] = getattr(self, key)
        if self.weights:
            out["weights"] = [g.to_dict() for g in self.weights]
        return out


_MODEL_KEYS = {f for f in DoseModel.__dataclass_fields__}


def dose_model_from_toml(table, where: str) -> DoseModel:
    """Build a :class:`DoseModel` from a scenario file's ``[actual_dose]`` table."""
    at = f"{where}: [actual_dose]"
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: 'actual_dose' must be a table [actual_dose]")
    for key in table:
        if key not in _MODEL_KEYS:
            raise ScenarioError(f"{at}: unknown key {key!r} (known: {', '.join(sorted(_MODEL_KEYS))})")
    kw = dict(table)
    if "weights" in kw:
        if not isinstance(kw["weights"], list):
            raise ScenarioError(f"{at}: weights = {kw['weights']!r} must be a list of tables")
        kw["weights"] = tuple(kw["weights"])
    try:
        return DoseModel(**kw)
    except DoseescError as exc:
        raise ScenarioError(f"{at}: {exc}") from None


# -- scenarios on the actual dose ----------------------------------------------------------------
def tier_averages(curve, ladder: DoseLadder, model: DoseModel | None) -> tuple[float, ...]:
    """Tier-averaged truth of ``curve`` on ``ladder`` (the nominal-dose value when ``model`` is None)."""
    if model is None:
        return tuple(float(curve(d)) for d in ladder.doses)
    tol = ladder.tolerance or 0.0
    return tuple(model.tier_average(curve, d, tol) for d in ladder.doses)


def scenario_from_curves(name: str, ladder: DoseLadder, tox_curve, eff_curve=None,
                         dose_model: DoseModel | None = None, **kwargs):
    """A :class:`~doseesc.scenario.Scenario` whose truth is given on the actual dose.

    ``true_tox`` / ``true_eff`` are the tier-averaged values (so the true
    MTD and OBD are defined on them); ``nominal_tox`` / ``nominal_eff`` hold
    the curves at the nominal doses. With efficacy, ``true_joint`` holds the
    tier-averaged joint outcome probabilities (the average of the per-patient
    joint, which is not the joint of the averages).
    """
    tox = tier_averages(tox_curve, ladder, dose_model)
    nom_t = tuple(float(tox_curve(d)) for d in ladder.doses)
    eff = nom_e = joint = None
    if eff_curve is not None:
        eff = tier_averages(eff_curve, ladder, dose_model)
        nom_e = tuple(float(eff_curve(d)) for d in ladder.doses)
        psi = float(kwargs.get("association", 1.0))
        cells = []
        for c in range(4):
            class _Cell:
                def __call__(self, dose, c=c):
                    d = np.atleast_1d(np.asarray(dose, float))
                    out = plackett_joint(tox_curve(d), eff_curve(d), psi)[:, c]
                    return out if np.ndim(dose) else float(out[0])
            cells.append(tier_averages(_Cell(), ladder, dose_model))
        joint = tuple(tuple(float(cells[c][t]) for c in range(4)) for t in range(ladder.n_tiers))
    return Scenario(true_tox=tox, true_eff=eff, name=name, tox_curve=tox_curve, eff_curve=eff_curve,
                    nominal_tox=nom_t, nominal_eff=nom_e, true_joint=joint, **kwargs)


# -- the per-tier truth a run without the model uses ------------------------------------------------
def nominal_scenario(scenario):
    """The scenario a run without the actual-dose model uses: the curves at the nominal doses, or the
    per-tier truth itself."""
    if scenario.tox_curve is None:
        return scenario
    return Scenario(true_tox=scenario.nominal_tox, true_eff=scenario.nominal_eff, name=scenario.name,
                    description=scenario.description, target=scenario.target, association=scenario.association)
