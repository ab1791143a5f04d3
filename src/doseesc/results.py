"""Operating characteristics: one result type for Monte Carlo and exact runs.

A result is a weighted set of *records*. For a Monte Carlo run each record is
one simulated trial with weight ``1 / n_trials``; for an exact run each record
is one distinct terminal trial state with its probability. Every summary is a
weighted mean over records, so the two kinds of result are computed by the
same code and compare directly. Monte Carlo standard errors (MCSE) are the
sample standard deviation over trials divided by ``sqrt(n_trials)``; they are
zero for exact results.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
from dataclasses import dataclass, field

import numpy as np

from ._lazy import lazy
from ._version import __version__
from .designs.base import Design
from .errors import DoseescError
from .obd import UTILITY_MARGIN   # margin of p_within_margin (utility points), shared with the near-tie warning
from .outcomes import patient_log
from .rng import seed_record
from .scenario import Scenario, check_target
from .state import Rule, StopReason
from .tiers import DAYS_PER_MONTH, DoseLadder

pd = lazy("pandas")

#: Quantiles of the sample size reported in every result.
QUANTILES = (0.10, 0.50, 0.90)

DEFINITIONS = {
    "expected_n": "mean number of patients treated per trial",
    "sd_n": "standard deviation of the number of patients per trial",
    "p_no_dose": "probability the trial stops with no tier selected",
    "p_correct": "probability of selecting the true MTD (highest tier with true P(DLT) <= target; "
                 "'No dose' when the lowest tier exceeds the target)",
    "share_above_mtd": "expected share of a trial's patients treated above the true MTD "
                       "(mean over trials of each trial's share)",
    "mean_dlt": "mean total number of DLTs per trial",
    "p_above_mtd": "probability of selecting a tier above the true MTD (any tier when no tier is safe)",
    "p_overdose_60": "probability that more than 60% of a trial's patients are treated above the true MTD",
    "p_overdose_80": "probability that more than 80% of a trial's patients are treated above the true MTD",
    "p_poor_allocation": "risk of poor allocation (Zhou et al. 2018): probability that fewer patients are treated "
                         "at the true MTD than at some other tier (undefined when no tier is safe)",
    "p_two_dlt_cohort": "probability that some cohort has 2 or more DLTs (needs per-patient records: "
                        "not computable from exact enumeration, which merges cohort orders; NaN there)",
    "expected_screened": "mean number of patients screened per trial: enrolled (drop-outs and replaced patients "
                         "included) + lost while waiting + screening failures, counted up to the last candidate "
                         "enrolled or lost (calendar runs; without a calendar screened = enrolled)",
    "p_select_obd": "probability of selecting the true OBD",
    "expected_utility": "expected true utility of the selected tier (a no-dose selection scores 0)",
    "utility_loss": "expected loss of true utility: the best true utility among admissible tiers (0 when none "
                    "is admissible) minus the selected tier's (no dose 0); negative when an inadmissible tier "
                    "of higher utility is selected",
    "p_within_margin": "probability of selecting an admissible tier whose true utility is within "
                       "UTILITY_MARGIN utility points of the best (or no dose when no tier is admissible)",
    "share_at_obd": "expected share of a trial's patients treated at the true OBD",
    "mean_eff": "mean total number of responses per trial",
}


def two_dlt_cohort(tier, tox, new_cohort) -> np.ndarray:
    """Per trial, 1.0 where some cohort had 2 or more DLTs, else 0.0, from the per-patient arrays
    ``(n_trials, slots)``: ``tier`` (-1: no patient), ``tox`` and ``new_cohort`` (the first patient of each
    cohort)."""
    tox = np.asarray(tox, dtype=bool) & (np.asarray(tier) >= 0)
    new = np.asarray(new_cohort, dtype=bool)
    rows, width = tox.shape
    cohort = np.cumsum(new, axis=1)              # cohort number of each patient slot (0 before the first)
    flat = (np.arange(rows)[:, None] * (width + 1) + cohort).ravel()
    per_cohort = np.bincount(flat, weights=tox.ravel(), minlength=rows * (width + 1))
    return (per_cohort.reshape(rows, width + 1).max(axis=1) >= 2).astype(float)


def resolve_target(target, scenario: Scenario, design: Design) -> float | None:
    """Target DLT rate for the true MTD: explicit, else scenario's, else design's."""
    if target is not None:
        return check_target(target)
    if scenario.target is not None:
        return scenario.target
    return design.target


def provenance(design: Design, scenario: Scenario, *, method, n_trials, seed, batch_size,
               seconds, target) -> dict:
    out = {
        "doseesc_version": __version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": method,
        "n_trials": n_trials,
        "target": target,
        "design": design.to_dict(),
        "scenario": scenario.to_dict(),
        "seconds": round(seconds, 4),
    }
    if seed is not None:
        out["seed"] = seed_record(seed)
        out["batch_size"] = batch_size
    return out


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Smallest ``v`` with ``P(X <= v) >= q`` (the inverse CDF)."""
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    i = np.searchsorted(cw, q * cw[-1] - 1e-12, side="left")
    return float(x[order][min(i, x.size - 1)])


#: Rows per chunk when a large Monte Carlo result works out per-trial values (:meth:`OperatingCharacteristics._mean_of`):
#: transient memory stays at a few megabytes whatever the number of trials. Runs of at most this many trials are
#: computed in one piece.
CHUNK_ROWS = 1 << 17


class _SortedFromCounts:
    """The sorted sample of integer values with ``counts[v]`` copies of ``v``, indexable by position (for
    :func:`_quantile_mcse` without sorting the trials)."""

    def __init__(self, counts: np.ndarray):
        self.cum = np.cumsum(counts)
        self.size = int(self.cum[-1])

    def __getitem__(self, j: int) -> int:
        return int(np.searchsorted(self.cum, j, side="right"))


def _quantile_mcse(xs: np.ndarray, q: float) -> float:
    """MCSE of the ``q`` quantile of the equally weighted sorted sample ``xs``, from the order-statistic 95%
    interval (half-width / 1.96)."""
    t = xs.size
    half = 1.96 * math.sqrt(t * q * (1 - q))
    lo = xs[max(int(math.floor(t * q - half)), 0)]
    hi = xs[min(int(math.ceil(t * q + half)), t - 1)]
    return float(hi - lo) / (2 * 1.96)


#: The standard safety and accuracy metrics (issue 18 item 6), in :meth:`OperatingCharacteristics.metrics` order.
SAFETY_METRICS = ("p_above_mtd", "p_overdose_60", "p_overdose_80", "p_poor_allocation", "p_two_dlt_cohort")

#: Key under which the timed engine hands a calendar run's per-trial screened count to the result (moved from
#: ``extra`` to :attr:`OperatingCharacteristics.screened`).
SCREENED_KEY = "n_screened"

#: OBD metrics that do not break on ties or near-ties of the true utility (issue 18 item 3).
UTILITY_METRICS = ("expected_utility", "utility_loss", "p_within_margin")

#: Direction of the worst case over scenarios of the safety and accuracy metrics (``"max"``: larger is worse,
#: ``"min"``: smaller is worse), used by :meth:`doseesc.study.Study.averages`.
WORST_CASE = {**{name: "max" for name in SAFETY_METRICS + ("share_above_mtd", "utility_loss")},
              **{name: "min" for name in ("p_correct", "p_select_obd", "p_within_margin", "expected_utility")}}


@dataclass(frozen=True, eq=False)
class OperatingCharacteristics:
    """Operating characteristics of one design under one scenario.

    Attributes
    ----------
    method : ``"monte carlo"`` or ``"exact"``
    n, y : int arrays ``(n_records, n_tiers)``
        Patients and DLTs per tier in each record.
    selected : int array ``(n_records,)``
        Final tier, 0-based, ``-1`` for no dose.
    reason : int8 array
        :class:`~doseesc.state.StopReason` of each record.
    weight : float array
        Probability of each record (``1 / n_trials`` for simulations).
    """

    method: str
    design: Design
    scenario: Scenario
    ladder: DoseLadder
    target: float | None
    n: np.ndarray
    y: np.ndarray
    selected: np.ndarray
    reason: np.ndarray
    weight: np.ndarray
    fired: np.ndarray | None = None
    e: np.ndarray | None = None
    obd: object | None = None
    n_trials: int | None = None
    patients: dict | None = None
    provenance: dict = field(default_factory=dict)
    #: Further per-record metrics from realism models (actual dose, calendar):
    #: ``name -> (float array (n_records,), definition)``. Each appears in
    #: :meth:`metrics` (mean with MCSE) and as a column of :meth:`trials`.
    #: NaN entries (e.g. a duration that does not apply) are left out of the mean.
    extra: dict = field(default_factory=dict)
    #: The actual-dose model the run used (:class:`~doseesc.actual_dose.DoseModel`), or None.
    dose_model: object | None = None
    #: Candidates screened per record (float array ``(n_records,)``) for calendar runs: enrolled (drop-outs
    #: included) + lost waiting + screening failures, up to the last candidate enrolled or lost (see
    #: :mod:`doseesc.calendar`); None without a calendar (screened = enrolled). The timed engine hands it in
    #: through ``extra[SCREENED_KEY]``; it is kept apart from ``extra`` so that :meth:`trials` and the
    #: per-trial extras of existing runs are unchanged. Its mean is ``expected_screened`` in :meth:`metrics`.
    screened: np.ndarray | None = None
    #: Per-trial "some cohort had 2 or more DLTs" (bool or 0/1 array ``(n_records,)``) of a Monte Carlo run that
    #: kept no per-patient records (``simulate(..., keep_records=False)``); None where ``patients`` give it.
    two_dlt: np.ndarray | None = None

    def __post_init__(self):
        if SCREENED_KEY in self.extra:
            extra = dict(self.extra)
            values, _ = extra.pop(SCREENED_KEY)
            object.__setattr__(self, "extra", extra)
            object.__setattr__(self, "screened", np.asarray(values, dtype=float))

    # -- basic weighted statistics ---------------------------------------
    @property
    def is_exact(self) -> bool:
        return self.method == "exact"

    def _chunked(self) -> bool:
        """Whether per-trial values are worked out in row chunks (:data:`CHUNK_ROWS`): a Monte Carlo run of
        more trials than one chunk. Smaller runs (and exact results) are computed in one piece, as before."""
        return not self.is_exact and self.n.shape[0] > CHUNK_ROWS

    def _chunks(self):
        """Row slices of at most :data:`CHUNK_ROWS` records covering all records, in order."""
        t = self.n.shape[0]
        return [slice(a, min(a + CHUNK_ROWS, t)) for a in range(0, t, CHUNK_ROWS)]

    def _rows(self, rows: slice) -> "OperatingCharacteristics":
        """A view of records ``rows`` (a slice: arrays are views, nothing is copied), for per-chunk values."""
        view = object.__new__(type(self))
        for f in self.__dataclass_fields__:
            object.__setattr__(view, f, getattr(self, f))
        for f in ("n", "y", "selected", "reason", "weight", "fired", "e", "screened", "two_dlt"):
            v = getattr(self, f)
            if v is not None:
                object.__setattr__(view, f, v[rows])
        if self.patients is not None:
            object.__setattr__(view, "patients", {k: v[rows] for k, v in self.patients.items()})
        object.__setattr__(view, "extra", {k: (np.asarray(v)[rows], text) for k, (v, text) in self.extra.items()})
        return view

    def _mean_of(self, fn) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_mean` of the per-record values ``fn(view)`` (``view``: this result or a view of some of its
        records, :meth:`_rows`), chunk by chunk in a large Monte Carlo run so that memory does not grow with
        the values' size: the mean from per-chunk sums, the MCSE from per-chunk sums of squared deviations
        from that mean (the formulas of the one-piece computation, summed in another order)."""
        if not self._chunked():
            return self._mean(fn(self))
        chunks = self._chunks()
        total = None
        for rows in chunks:
            s = np.asarray(fn(self._rows(rows)), dtype=float).sum(axis=0)
            total = s if total is None else total + s
        t = self.n_trials
        m = total / t
        ss = None
        for rows in chunks:
            d = np.asarray(fn(self._rows(rows)), dtype=float) - m
            s = (d * d).sum(axis=0)
            ss = s if ss is None else ss + s
        sd = np.sqrt(ss / (t - 1))
        return m, sd / math.sqrt(t)

    def _total_n_counts(self) -> np.ndarray:
        """Trials by number of patients (index = total N), counted chunk by chunk."""
        counts = np.zeros(0, dtype=np.int64)
        for rows in self._chunks():
            c = np.bincount(self.n[rows].sum(axis=1))
            if c.size > counts.size:
                c[:counts.size] += counts
                counts = c
            else:
                counts[:c.size] += c
        return counts

    def _mean(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean over records (axis 0) and its MCSE."""
        x = np.asarray(x, dtype=float)
        if self.is_exact:
            w = self.weight.reshape((-1,) + (1,) * (x.ndim - 1))
            m = (w * x).sum(axis=0)
            return m, np.zeros_like(m)
        m = x.mean(axis=0)  # equal weights: a plain mean (exact for constant values)
        t = self.n_trials
        sd = x.std(axis=0, ddof=1) if t > 1 else np.full_like(m, np.nan)
        return m, sd / math.sqrt(t)

    @property
    def total_n(self) -> np.ndarray:
        return self.n.sum(axis=1)

    @property
    def true_mtd(self) -> int | None:
        """True MTD (0-based, -1 for no dose) or None when no target is known."""
        return None if self.target is None else self.scenario.mtd(self.target)

    # -- headline numbers ----------------------------------------------
    @property
    def p_select(self) -> np.ndarray:
        """P(select), shape ``(n_tiers + 1,)``: index 0 is No dose, then tiers in order."""
        return self._select()[0]

    @property
    def p_select_mcse(self) -> np.ndarray:
        return self._select()[1]

    def _select(self):
        tiers = np.arange(-1, self.ladder.n_tiers)[None, :]
        return self._mean_of(lambda r: r.selected[:, None] == tiers)

    @property
    def expected_n(self) -> float:
        return float(self._mean_of(lambda r: r.total_n)[0])

    @property
    def expected_n_mcse(self) -> float:
        return float(self._mean_of(lambda r: r.total_n)[1])

    @property
    def sd_n(self) -> float:
        m = self.expected_n
        if self._chunked():
            counts = self._total_n_counts()
            v = np.arange(counts.size, dtype=float)
            var = float((counts * (v - m) ** 2).sum()) / self.n_trials
        else:
            var = float((self.weight * (self.total_n - m) ** 2).sum())
        if not self.is_exact and self.n_trials > 1:
            var *= self.n_trials / (self.n_trials - 1)
        return math.sqrt(max(var, 0.0))

    def quantile_n(self, q: float) -> float:
        if self._chunked():   # the smallest N with at least q of the trials at or below it
            cum = np.cumsum(self._total_n_counts())
            return float(np.searchsorted(cum, q * self.n_trials - 1e-12 * self.n_trials, side="left"))
        return _weighted_quantile(self.total_n.astype(float), self.weight, q)

    def quantile_n_mcse(self, q: float) -> float:
        """MCSE of a sample-size quantile from the order-statistic 95% interval (half-width / 1.96)."""
        if self.is_exact:
            return 0.0
        if self._chunked():
            return _quantile_mcse(_SortedFromCounts(self._total_n_counts()), q)
        return _quantile_mcse(np.sort(self.total_n), q)

    def values(self, name: str) -> np.ndarray | None:
        """Per-record values whose weighted mean is the metric ``name`` (e.g. 0/1 indicators for a probability),
        as float array ``(n_records,)``; None where the metric is not defined for this run or is not a mean
        (``sd_n``, the quantiles ``n_qXX``). NaN entries (extras that do not apply) are left out of the mean."""
        if name == "sd_n" or name.startswith("n_q"):
            return None
        x = self._per_trial(name)
        return None if x is None else np.asarray(x, dtype=float)

    def _per_trial(self, name: str) -> np.ndarray | None:
        k = self.ladder.n_tiers
        mtd = self.true_mtd
        if name == "p_no_dose":
            return (self.selected == -1).astype(float)
        if name == "p_correct":
            return None if mtd is None else (self.selected == mtd).astype(float)
        if name == "share_above_mtd":
            if mtd is None:
                return None
            above = self.n[:, mtd + 1:].sum(axis=1) if mtd + 1 < k else np.zeros(self.n.shape[0])
            return above / np.maximum(self.total_n, 1)
        if name == "mean_dlt":
            return self.y.sum(axis=1).astype(float)
        if name in SAFETY_METRICS:
            return self._safety(name)
        if name in UTILITY_METRICS:
            return self._utility(name)
        if name == "p_select_obd":
            obd = self.true_obd
            return None if obd is None else (self.selected == obd).astype(float)
        if name == "share_at_obd":
            obd = self.true_obd
            if obd is None:
                return None
            return (self.n[:, obd] if obd >= 0 else np.zeros(self.n.shape[0])) / np.maximum(self.total_n, 1)
        if name == "mean_eff":
            return None if self.e is None else np.asarray(self.e, float).sum(axis=1)
        if name == "expected_n":
            return self.total_n.astype(float)
        if name == "expected_screened":
            return self._screened()
        if name in self.extra:
            return np.asarray(self.extra[name][0], dtype=float)
        raise KeyError(name)

    def _safety(self, name: str) -> np.ndarray | None:
        """Per-record values of the standard safety and accuracy metrics (:data:`SAFETY_METRICS`)."""
        if name == "p_two_dlt_cohort":
            return self._two_dlt_cohort()
        mtd = self.true_mtd
        if mtd is None:
            return None
        if name == "p_above_mtd":
            return (self.selected > mtd).astype(float)
        if name in ("p_overdose_60", "p_overdose_80"):
            cut = 0.6 if name == "p_overdose_60" else 0.8
            share = self.n[:, mtd + 1:].sum(axis=1) / np.maximum(self.total_n, 1)
            return (share > cut).astype(float)
        # p_poor_allocation: fewer patients at the MTD than at some other tier
        if mtd < 0 or self.ladder.n_tiers < 2:
            return None
        others = np.delete(self.n, mtd, axis=1).max(axis=1)
        return (self.n[:, mtd] < others).astype(float)

    def _screened(self) -> np.ndarray:
        """Patients screened per record: the calendar's count (``extra["n_screened"]``: enrolled + lost waiting
        + screening failures); without a calendar every screened patient is enrolled: the actual-dose model's
        enrolees (replacements included, ``extra["n_enrolled"]``), else the patients treated."""
        if self.screened is not None:
            return np.asarray(self.screened, dtype=float)
        if "n_enrolled" in self.extra:
            return np.asarray(self.extra["n_enrolled"][0], dtype=float)
        return self.total_n.astype(float)

    def _screened_text(self) -> str:
        base = DEFINITIONS["expected_screened"].split(" (calendar runs")[0]
        if self.screened is not None:
            return base
        return ("mean number of patients screened per trial; no calendar (no screening failures or waiting "
                "losses modelled): screened = enrolled" + (" (replacements included)" if "n_enrolled" in self.extra
                                                           else " = treated"))

    def _admissible(self) -> np.ndarray:
        """Tiers the OBD definition's rule allows as the true OBD."""
        return self.obd.admissible(self.scenario)

    def _utility(self, name: str) -> np.ndarray | None:
        """Per-record values of the tie-robust OBD metrics (:data:`UTILITY_METRICS`).

        A no-dose selection scores utility 0 (the OBD definition scores only treated patients' outcomes);
        the best utility is that of the true OBD, or 0 (no dose) when no tier is admissible."""
        obd = self.true_obd
        if obd is None:
            return None
        u = np.r_[np.asarray(self.obd.true_utility(self.scenario), dtype=float), 0.0]  # index -1: no dose
        got = u[self.selected]
        best = u[obd]
        if name == "expected_utility":
            return got
        if name == "utility_loss":
            return best - got
        ok = np.r_[self._admissible(), obd == -1]                                       # no dose ok iff no OBD
        return (ok[self.selected] & (got >= best - UTILITY_MARGIN)).astype(float)

    def _two_dlt_cohort(self) -> np.ndarray | None:
        """1 for a trial in which some cohort (per-patient ``new_cohort`` boundaries) had 2 or more DLTs.

        None for exact results (their records merge paths with different cohort orders) and for runs
        without per-patient records (unless the run kept the per-trial flag, :attr:`two_dlt`)."""
        pt = self.patients
        if self.is_exact:
            return None
        if pt is None or "new_cohort" not in pt:
            return None if self.two_dlt is None else np.asarray(self.two_dlt, dtype=float)
        return two_dlt_cohort(pt["tier"], pt["tox"], pt["new_cohort"])

    def metric(self, name: str) -> tuple[float, float]:
        """``(estimate, mcse)`` of a scalar metric (see :data:`DEFINITIONS`)."""
        if name == "sd_n":
            if self.is_exact or self.sd_n == 0:
                return self.sd_n, 0.0
            # delta method: Var(s^2) ~ (mu4 - sigma^4) / n, SE(s) = SE(s^2) / (2 s); valid for skewed, discrete N
            if self._chunked():
                counts = self._total_n_counts()
                v = np.arange(counts.size, dtype=float)
                w = counts / self.n_trials
                d2 = (v - (w * v).sum()) ** 2
                var_s2 = max(float((w * d2 ** 2).sum() - (w * d2).sum() ** 2), 0.0) / self.n_trials
                return self.sd_n, math.sqrt(var_s2) / (2 * self.sd_n)
            x = self.total_n.astype(float)
            d2 = (x - x.mean()) ** 2
            var_s2 = max(float((d2 ** 2).mean() - d2.mean() ** 2), 0.0) / self.n_trials
            return self.sd_n, math.sqrt(var_s2) / (2 * self.sd_n)
        if self._chunked():
            return self._metric_chunked(name)
        x = self._per_trial(name)
        if x is None:
            return math.nan, math.nan
        if name in self.extra and np.isnan(x).any():
            ok = ~np.isnan(x)
            if not ok.any():
                return math.nan, math.nan
            if self.is_exact:
                w = self.weight[ok]
                return float((w * x[ok]).sum() / w.sum()), 0.0
            xs = x[ok]
            se = xs.std(ddof=1) / math.sqrt(xs.size) if xs.size > 1 else math.nan
            return float(xs.mean()), float(se)
        m, se = self._mean(x)
        return float(m), float(se)

    def _metric_chunked(self, name: str) -> tuple[float, float]:
        """:meth:`metric` of a per-trial metric of a large Monte Carlo run, chunk by chunk (NaN entries of
        extras left out, as in :meth:`metric`)."""
        chunks = self._chunks()
        if self._rows(chunks[0])._per_trial(name) is None:
            return math.nan, math.nan
        total, count = 0.0, 0
        for rows in chunks:
            x = np.asarray(self._rows(rows)._per_trial(name), dtype=float)
            x = x[~np.isnan(x)]
            total += float(x.sum())
            count += x.size
        if count == 0:
            return math.nan, math.nan
        m = total / count
        ss = 0.0
        for rows in chunks:
            x = np.asarray(self._rows(rows)._per_trial(name), dtype=float)
            d = x[~np.isnan(x)] - m
            ss += float((d * d).sum())
        return m, (math.sqrt(ss / (count - 1)) / math.sqrt(count) if count > 1 else math.nan)

    @property
    def true_obd(self) -> int | None:
        """True OBD (0-based, -1 for none) under the run's OBD definition, or None without efficacy."""
        if self.obd is None or self.scenario.true_eff is None:
            return None
        return self.obd.true_obd(self.scenario)

    @property
    def p_select_obd(self) -> float:
        return self.metric("p_select_obd")[0]

    @property
    def p_select_obd_mcse(self) -> float:
        return self.metric("p_select_obd")[1]

    @property
    def p_correct(self) -> float:
        return self.metric("p_correct")[0]

    @property
    def p_correct_mcse(self) -> float:
        return self.metric("p_correct")[1]

    @property
    def p_no_dose(self) -> float:
        return self.metric("p_no_dose")[0]

    # -- tables ---------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """Per-tier table: No dose first, then the tiers in order.

        Columns: ``dose`` (label in the protocol's units), ``true_tox``,
        ``p_select``, ``p_select_mcse``, ``mean_n``, ``mean_n_mcse``,
        ``mean_dlt``, ``mean_dlt_mcse``; ``true_mtd`` marks the true MTD row.
        """
        k = self.ladder.n_tiers
        ps, ps_se = self._select()
        mn, mn_se = self._mean_of(lambda r: r.n)
        md, md_se = self._mean_of(lambda r: r.y)
        nan = np.array([np.nan])
        labels = ["No dose"] + list(self.ladder.tier_labels)
        df = pd.DataFrame({
            "tier": [0] + list(range(1, k + 1)),
            "dose": labels,
            "true_tox": np.r_[nan, self.scenario.true_tox],
            "p_select": ps,
            "p_select_mcse": ps_se,
            "mean_n": np.r_[nan, mn],
            "mean_n_mcse": np.r_[nan, mn_se],
            "mean_dlt": np.r_[nan, md],
            "mean_dlt_mcse": np.r_[nan, md_se],
        })
        mtd = self.true_mtd
        df["true_mtd"] = False if mtd is None else (df["tier"] == mtd + 1)
        if self.scenario.nominal_tox is not None:   # truth on the actual dose: true_tox is tier-averaged
            df.insert(df.columns.get_loc("true_tox") + 1, "nominal_tox", np.r_[nan, self.scenario.nominal_tox])
        if self.e is not None:
            me, me_se = self._mean_of(lambda r: np.asarray(r.e, float))
            df.insert(df.columns.get_loc("mean_dlt_mcse") + 1, "mean_eff", np.r_[nan, me])
            df.insert(df.columns.get_loc("mean_eff") + 1, "mean_eff_mcse", np.r_[nan, me_se])
            df.insert(df.columns.get_loc("true_tox") + 1, "true_eff", np.r_[nan, self.scenario.true_eff])
            if self.scenario.nominal_eff is not None:
                df.insert(df.columns.get_loc("true_eff") + 1, "nominal_eff", np.r_[nan, self.scenario.nominal_eff])
            if self.obd is not None:
                df.insert(df.columns.get_loc("true_eff") + 1, "true_utility",
                          np.r_[nan, self.obd.true_utility(self.scenario)])
                df["true_obd"] = df["tier"] == self.true_obd + 1
        return df.set_index("dose")

    def dose_summary(self) -> pd.DataFrame:
        """Actual infused doses per assigned tier (runs with an actual-dose model).

        Columns: ``nominal`` dose, ``lower``/``upper`` release limits,
        ``mean_infused`` (patients infused per trial, with MCSE), the mean and
        10/50/90% quantiles of the actual dose over all infused patients,
        ``share_below_band`` (of infused patients), and ``mean_not_infused``
        (patients per trial assigned to the tier whose product failed or was
        withheld).
        """
        if self.dose_model is None or self.patients is None or "dose" not in self.patients:
            raise DoseescError("dose_summary() needs a Monte Carlo run with an actual-dose model (dose_model=...)")
        dose = self.patients["dose"]
        tier = self.patients["assigned"]
        band = self.ladder.band()
        rows = []
        for t in range(self.ladder.n_tiers):
            at = tier == t
            infused = at & ~np.isnan(dose)
            d = dose[infused]
            per_trial = infused.sum(axis=1)
            m, se = self._mean(per_trial)
            q = np.quantile(d, [0.1, 0.5, 0.9]) if d.size else np.full(3, np.nan)
            rows.append({
                "dose": self.ladder.label(t), "nominal": self.ladder.doses[t], "lower": band[t, 0],
                "upper": band[t, 1], "mean_infused": float(m), "mean_infused_mcse": float(se),
                "mean_dose": float(d.mean()) if d.size else np.nan, "dose_q10": q[0], "dose_q50": q[1],
                "dose_q90": q[2],
                "share_below_band": float((d < band[t, 0] * (1 - 1e-9)).mean()) if d.size else np.nan,
                "mean_not_infused": float((at & np.isnan(dose)).sum(axis=1).mean()),
            })
        return pd.DataFrame(rows).set_index("dose")

    def plot_actual_doses(self, ax=None):
        """Distribution of the actual infused dose per tier (see :func:`doseesc.report.plots.plot_actual_doses`)."""
        from .report.plots import plot_actual_doses

        return plot_actual_doses(self, ax=ax)

    def metrics(self) -> pd.DataFrame:
        """Scalar operating characteristics with MCSE and their definitions."""
        rows = []
        for name in ("expected_n", "sd_n"):
            est, se = self.metric(name)
            rows.append((name, est, se, DEFINITIONS[name]))
        for q in QUANTILES:
            rows.append((f"n_q{int(q * 100):02d}", self.quantile_n(q), self.quantile_n_mcse(q),
                         f"{int(q * 100)}% quantile of the number of patients"))
        for name in ("p_no_dose", "p_correct", "share_above_mtd", "mean_dlt") + SAFETY_METRICS:
            est, se = self.metric(name)
            rows.append((name, est, se, DEFINITIONS[name]))
        est, se = self.metric("expected_screened")
        rows.append(("expected_screened", est, se, self._screened_text()))
        if self.e is not None:
            for name in ("p_select_obd", "share_at_obd", "mean_eff"):
                est, se = self.metric(name)
                text = DEFINITIONS[name] + ("" if name == "mean_eff" or self.obd is None else f" ({self.obd.text()})")
                rows.append((name, est, se, text))
        if self.true_obd is not None:
            for name in UTILITY_METRICS:
                est, se = self.metric(name)
                text = DEFINITIONS[name].replace("UTILITY_MARGIN", f"{UTILITY_MARGIN:g}") + f" ({self.obd.text()})"
                rows.append((name, est, se, text))
        for name, (_, text) in self.extra.items():
            est, se = self.metric(name)
            rows.append((name, est, se, text))
        return pd.DataFrame(rows, columns=["metric", "estimate", "mcse", "definition"]).set_index("metric")

    def stop_report(self) -> pd.DataFrame:
        """Why trials stopped, and which rules acted, with probabilities and MCSE.

        Rows ``kind == "stop reason"`` partition the trials by the reported reason
        (they sum to 1); rows ``kind == "rule fired"`` give the probability that
        each rule acted at least once (several may act in one trial).
        """
        codes = [r for r in StopReason if r != StopReason.NOT_STOPPED]
        code_row = np.array([int(r) for r in codes])[None, :]
        p, se = self._mean_of(lambda r: r.reason[:, None] == code_row)
        rows = [("stop reason", r.name.lower(), r.text, pi, si) for r, pi, si in zip(codes, p, se) if pi > 0]
        if self.fired is not None:
            flags = list(Rule)
            flag_row = np.array([int(f) for f in flags])[None, :]
            p, se = self._mean_of(lambda r: (r.fired[:, None].astype(np.int64) & flag_row) != 0)
            rows += [("rule fired", f.name.lower(), f.text, pi, si) for f, pi, si in zip(flags, p, se) if pi > 0]
        return pd.DataFrame(rows, columns=["kind", "name", "description", "probability", "mcse"]) \
            .set_index("name")

    def trials(self) -> pd.DataFrame:
        """One row per simulated trial (exact: per terminal state, with its probability)."""
        k = self.ladder.n_tiers

        def wide(a):   # the 8-bit counts of a run without records (keep_records=False) read as the others
            return a.astype(np.promote_types(a.dtype, np.int32), copy=False)

        df = pd.DataFrame({
            "selected_tier": wide(self.selected) + 1,
            "selected": [self.ladder.label(int(s)) for s in self.selected],
            "n": self.total_n,
            "dlt": self.y.sum(axis=1),
            "stop_reason": [StopReason(int(r)).name.lower() for r in self.reason],
        })
        for t in range(k):
            df[f"n_{t + 1}"] = wide(self.n[:, t])
        for t in range(k):
            df[f"dlt_{t + 1}"] = wide(self.y[:, t])
        if self.e is not None:
            for t in range(k):
                df[f"resp_{t + 1}"] = wide(self.e[:, t])
        for name, (values, _) in self.extra.items():
            df[name] = np.asarray(values)
        if self.is_exact:
            df.insert(0, "probability", self.weight)
            df.index.name = "state"
        else:
            pt = self.patients
            if pt is not None:
                eff = pt.get("eff") if self.e is not None else None
                df["log"] = [patient_log(pt["tier"][i], pt["tox"][i], None if eff is None else eff[i],
                                         cohort_breaks=pt["new_cohort"][i]) for i in range(self.n.shape[0])]
            df.index.name = "trial"
        return df

    # -- rendering --------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready summary, metrics, stop report and provenance."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v
        summ = self.summary().reset_index()
        return {
            "design": self.design.label,
            "scenario": self.scenario.name,
            "method": self.method,
            "target": self.target,
            "true_mtd_tier": None if self.true_mtd is None else self.true_mtd + 1,
            "true_obd_tier": None if self.true_obd is None else self.true_obd + 1,
            "obd_definition": None if self.obd is None else self.obd.text(),
            "summary": [{k: clean(v) for k, v in row.items()} for row in summ.to_dict(orient="records")],
            "metrics": {m: {"estimate": clean(r["estimate"]), "mcse": clean(r["mcse"])}
                        for m, r in self.metrics().iterrows()},
            "stop_report": [{"kind": r["kind"], "name": m, "probability": float(r["probability"]),
                             "mcse": float(r["mcse"])} for m, r in self.stop_report().iterrows()],
            "provenance": self.provenance,
        }

    def headline(self, both_questions: bool = False) -> str:
        """One paragraph of the key numbers with their MCSE.

        P(select the true MTD) is given for designs that answer the MTD question, P(select the true OBD) for
        those that answer the OBD question (:attr:`~doseesc.designs.base.Design.question`); ``both_questions``
        gives both."""
        own = self.design.question
        def fmt(name, pct=False):
            est, se = self.metric(name)
            if math.isnan(est):
                return "n/a"
            if pct:
                return f"{100 * est:.1f}%" + ("" if self.is_exact else f" (±{100 * se:.1f})")
            return f"{est:.2f}" + ("" if self.is_exact else f" (±{se:.2f})")
        kind = "exact" if self.is_exact else f"Monte Carlo, {self.n_trials:,} trials, ± = 1 MCSE"
        mtd = self.true_mtd
        lines = [
            f"{self.design.label} under scenario {self.scenario.name!r} [{kind}]",
            f"  expected N {fmt('expected_n')}, SD {self.sd_n:.2f}, "
            f"10/50/90% quantiles {self.quantile_n(0.1):g}/{self.quantile_n(0.5):g}/{self.quantile_n(0.9):g}",
            f"  P(no dose selected) {fmt('p_no_dose', True)}; mean DLTs {fmt('mean_dlt')}",
        ]
        if mtd is not None:
            pick = f"P(select true MTD) {fmt('p_correct', True)}; " if both_questions or own == "MTD" else ""
            lines.append(f"  target {self.target:g}: true MTD {self.ladder.label(mtd)}; {pick}"
                         f"share of patients above the true MTD {fmt('share_above_mtd', True)}")
        else:
            lines.append("  no target DLT rate given: P(select true MTD) not computed")
        if self.extra:
            short = {"n_enrolled": "enrolled", "n_evaluable": "evaluable", "n_replaced": "replaced",
                     "n_lost": "never infused", "share_outside_band": "infused below their band"}
            cells = []
            for name in self.extra:
                pct = name.startswith("share")
                cells.append(f"{short.get(name, name.replace('_', ' '))} {fmt(name, pct)}")
            lines.append("  per trial: " + "; ".join(cells))
        if self.scenario.nominal_tox is not None:
            lines.append("  true P(DLT) is tier-averaged over the actual doses (nominal-dose values in nominal_tox); "
                         "the true MTD/OBD are defined on it")
        obd = self.true_obd
        if obd is not None:
            pick = f"P(select true OBD) {fmt('p_select_obd', True)}; " if both_questions or own == "OBD" else ""
            lines.append(f"  true OBD {self.ladder.label(obd)}; {pick}"
                         f"share of patients at the OBD {fmt('share_at_obd', True)}; mean responses {fmt('mean_eff')}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def text(self, both_questions: bool = False) -> str:
        """The headline (:meth:`headline`) and the per-tier table."""
        summ = self.summary()
        cols = ["true_tox", "p_select", "p_select_mcse", "mean_n", "mean_dlt"]
        if "nominal_tox" in summ:
            cols.insert(1, "nominal_tox")
        if "true_eff" in summ:
            cols[1:1] = ["true_eff"]
            cols.append("mean_eff")
        if self.is_exact:
            cols.remove("p_select_mcse")
        nice = {"true_tox": "true P(DLT)", "p_select": "P(select)", "p_select_mcse": "MCSE",
                "mean_n": "mean patients", "mean_dlt": "mean DLTs", "true_eff": "true P(resp)",
                "mean_eff": "mean resp", "nominal_tox": "at nominal"}
        view = summ[cols].rename(columns=nice)
        view.index = [f"{i} *" if m else i for i, m in zip(view.index, summ["true_mtd"])]
        view.index.name = "tier (* true MTD)" if summ["true_mtd"].any() else "tier"
        table = view.to_string(float_format=lambda v: f"{v:.3f}", na_rep="")
        return self.headline(both_questions) + "\n" + table

    def __repr__(self) -> str:
        extra = "exact" if self.is_exact else f"n_trials={self.n_trials}"
        return (f"<OperatingCharacteristics {self.design.label!r} / {self.scenario.name!r}, {extra}, "
                f"E[N]={self.expected_n:.2f}>")

    def _repr_html_(self) -> str:
        head = "<br>".join(self.headline().splitlines())
        return f"<p>{head}</p>" + self.summary().to_html(float_format=lambda v: f"{v:.3f}", na_rep="")

    # -- plots (matplotlib imported only here; each returns the Axes) -------------------------
    def plot_selection(self, ax=None):
        """P(select) per tier (No dose first) with ±1.96 MCSE bars; the true MTD/OBD shaded."""
        from .report.plots import plot_selection

        return plot_selection(self, ax=ax)

    def plot_allocation(self, ax=None):
        """Mean number of patients treated at each tier."""
        from .report.plots import plot_allocation

        return plot_allocation(self, ax=ax)

    def plot_sample_size(self, ax=None):
        """Distribution of the number of patients per trial, its 10-90% range and mean."""
        from .report.plots import plot_sample_size

        return plot_sample_size(self, ax=ax)

    def plot_dose_response(self, ax=None):
        """The scenario's true P(DLT) (and P(response)) per tier with the target, true MTD and OBD."""
        from .report.plots import plot_dose_response

        return plot_dose_response(self.scenario, self.ladder, self.target, self.obd, ax=ax)

    # -- calendar time (runs with a Calendar) ------------------------------------------------------
    def duration_summary(self) -> pd.DataFrame:
        """Trial duration and time to the final decision (days), for a run with a calendar.

        One row each for ``duration_days`` and ``time_to_decision_days`` (see
        :mod:`doseesc.calendar`): ``mean``, ``sd``, ``q10``, ``q50``, ``q90``,
        each with its MCSE (``*_mcse``; SD by the delta method, quantiles from
        the order-statistic 95% interval, as the sample-size quantiles), and
        ``months`` (the mean in months of 365.25 / 12 days).
        """
        if "duration_days" not in self.extra:
            raise DoseescError("duration_summary() needs a Monte Carlo run with a calendar (simulate(..., "
                               "calendar=Calendar(...)) or a [calendar] table in the scenario file)")
        rows = []
        for name in ("duration_days", "time_to_decision_days"):
            x = np.asarray(self.extra[name][0], dtype=float)
            x = x[np.isfinite(x)]
            t = x.size
            m = float(x.mean())
            sd = float(x.std(ddof=1)) if t > 1 else math.nan
            d2 = (x - m) ** 2
            sd_se = math.sqrt(max(float((d2 ** 2).mean() - d2.mean() ** 2), 0.0) / t) / (2 * sd) if sd > 0 else 0.0
            row = {"metric": name, "mean": m, "mean_mcse": sd / math.sqrt(t), "sd": sd, "sd_mcse": sd_se}
            xs = np.sort(x)
            for q in QUANTILES:
                row[f"q{int(q * 100):02d}"] = _weighted_quantile(xs, np.full(t, 1.0 / t), q)
                row[f"q{int(q * 100):02d}_mcse"] = _quantile_mcse(xs, q)
            row["months"] = m / DAYS_PER_MONTH
            row["definition"] = self.extra[name][1]
            rows.append(row)
        return pd.DataFrame(rows).set_index("metric")

    def plot_duration(self, ax=None):
        """Median trial duration against P(select the true MTD/OBD) (one point; see
        :func:`doseesc.report.plots.plot_duration_vs_correct`)."""
        from .report.plots import plot_duration_vs_correct

        return plot_duration_vs_correct(self, ax=ax)
