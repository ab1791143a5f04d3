"""Calendar time: accrual, manufacturing, staggered dosing, late events, and the timed Monte Carlo engine.

A committee must know how long a design takes, not only how many patients it
needs. :class:`Calendar` describes the clock of a protocol; :func:`simulate_timed`
(reached through ``simulate(..., calendar=Calendar(...))``) simulates it.

Time line of a patient (days; time 0 is the arrival of the first patient):

1. **Arrival.** Screened candidates arrive as a Poisson process, at fixed
   spacing, or with uniform gaps (``accrual``, ``accrual_rate`` patients per
   month of 365.25 / 12 days); a candidate fails screening with probability
   ``screen_fail`` and is not enrolled. Candidates who pass form the queue.
2. **Waiting for a slot.** A queued patient is enrolled when the design has a
   place for them (a non-TITE design opens the next cohort only when every
   patient of the last cohort has completed the observation window, plus
   ``review_days``; a TITE design opens it at once unless it suspends accrual).
   A patient who would wait longer than ``max_wait_days`` leaves (lost while
   waiting); the next one in the queue takes the place.
3. **Apheresis and manufacturing.** The product is ready ``vein_to_vein_days``
   after enrolment (gamma distributed with ``vein_to_vein_sd``; fixed when the
   SD is 0), or after arrival with ``manufacture_on_arrival``. With probability
   ``dropout`` the patient drops out while waiting for the product (found at
   the planned infusion) and is replaced by the next patient in the queue.
4. **Infusion.** At the earliest time that respects the staggering rules: at
   least ``min_gap_days`` after the trial's previous infusion, and at least
   ``sentinel_days`` after the first infusion at the same tier (the sentinel
   patient of a tier is observed alone).
5. **Observation.** The DLT window (``dlt_window_days``) and the response
   window (``eff_window_days``) start at infusion. A patient's DLT is decided
   exactly as in the untimed engine (the k-th *infused* patient of trial i has a
   DLT when ``u_tox[i, k] < p``); its time within the window has the shape
   ``tox_time`` ("uniform", "weibull" or "loglogistic") with ``tox_early_share``
   of the events in the first half of the window (CAR-T default: Weibull with
   80% in the first half: CRS and ICANS mostly start within 2 weeks).

Random streams (:class:`~doseesc.rng.Stream`) and their indexing: ARRIVAL and
SCREEN by candidate (column c of a trial is its c-th screened candidate);
MANUFACTURE and DROPOUT by enrolee (patients given a place, drop-outs
included); TOX, EFF, TOX_TIME and EFF_TIME by infused patient. Without
drop-out, infused patient k is enrolee k, so the outcomes of every design are
those of the untimed engine with the same seed (bit-identical selections).

Per-trial results (``OperatingCharacteristics.extra``):

- ``duration_days``: from the first patient's arrival to the end of the last
  infused patient's follow-up (the longer of the DLT and response windows, or
  ``follow_up_days`` when set);
- ``time_to_decision_days``: from the first arrival to the final decision: the
  MTD/OBD is selected when the data it rests on are complete (the last window
  ends); a stop with no dose (lowest tier too toxic) is decided when it happens;
- ``wait_days``: patient-days spent in the queue (patients enrolled, lost, or
  turned away when the trial stopped);
- ``lost_waiting``: patients who left the queue after ``max_wait_days``.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from scipy import special

from .errors import DoseescError, ScenarioError
from .rng import Stream, patient_uniforms
from .tiers import DAYS_PER_MONTH

ACCRUAL = ("poisson", "fixed", "uniform")
EVENT_TIMES = ("uniform", "weibull", "loglogistic")
#: Default share of events in the first half of the window when the shape is not uniform.
DEFAULT_EARLY_SHARE = {"tox": 0.8, "eff": 0.5}

CALENDAR_METRICS = {
    "duration_days": "mean trial duration in days: first patient's arrival to the end of the last patient's "
                     "follow-up",
    "time_to_decision_days": "mean days from the first patient's arrival to the final decision (MTD/OBD selected "
                             "on complete data, or a stop with no dose)",
    "wait_days": "mean patient-days per trial spent waiting for a place (enrolled, lost, or turned away at the end)",
    "lost_waiting": "mean patients per trial lost after waiting longer than the maximum wait",
}


def _number(value, key: str, *, positive=False, allow_none=False, low=None, high=None, open_high=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ScenarioError(f"{key} = {value!r} must be a number")
    v = float(value)
    if positive and v <= 0:
        raise ScenarioError(f"{key} = {value!r} must be a positive number")
    if low is not None and v < low:
        raise ScenarioError(f"{key} = {value!r} must be at least {low:g}")
    if high is not None and (v >= high if open_high else v > high):
        raise ScenarioError(f"{key} = {value!r} must be {'below' if open_high else 'at most'} {high:g}")
    return v


@dataclasses.dataclass(frozen=True)
class Calendar:
    """The clock of a protocol (see the module docstring for the full time line).

    All durations are in days, accrual rates in patients per month.
    """

    accrual_rate: float = 2.0
    accrual: str = "poisson"
    screen_fail: float = 0.0
    vein_to_vein_days: float = 0.0
    vein_to_vein_sd: float = 0.0
    manufacture_on_arrival: bool = False
    dropout: float = 0.0
    dlt_window_days: float = 28.0
    eff_window_days: float | None = None
    tox_time: str = "weibull"
    tox_early_share: float | None = None
    eff_time: str = "uniform"
    eff_early_share: float | None = None
    sentinel_days: float = 0.0
    min_gap_days: float = 0.0
    review_days: float = 0.0
    max_wait_days: float | None = None
    follow_up_days: float | None = None

    def __post_init__(self):
        _number(self.accrual_rate, "accrual_rate", positive=True)
        if self.accrual not in ACCRUAL:
            raise ScenarioError(f"accrual = {self.accrual!r} must be one of {', '.join(ACCRUAL)}")
        _number(self.screen_fail, "screen_fail", low=0, high=0.95)
        _number(self.vein_to_vein_days, "vein_to_vein_days", low=0)
        _number(self.vein_to_vein_sd, "vein_to_vein_sd", low=0)
        if self.vein_to_vein_sd > 0 and self.vein_to_vein_days <= 0:
            raise ScenarioError(f"vein_to_vein_sd = {self.vein_to_vein_sd!r} needs a positive vein_to_vein_days")
        if not isinstance(self.manufacture_on_arrival, (bool, np.bool_)):
            raise ScenarioError(f"manufacture_on_arrival = {self.manufacture_on_arrival!r} must be true or false")
        _number(self.dropout, "dropout", low=0, high=0.9)
        _number(self.dlt_window_days, "dlt_window_days", positive=True)
        _number(self.eff_window_days, "eff_window_days", positive=True, allow_none=True)
        for kind in ("tox", "eff"):
            dist = getattr(self, f"{kind}_time")
            if dist not in EVENT_TIMES:
                raise ScenarioError(f"{kind}_time = {dist!r} must be one of {', '.join(EVENT_TIMES)}")
            share = getattr(self, f"{kind}_early_share")
            if share is None:
                object.__setattr__(self, f"{kind}_early_share", 0.5 if dist == "uniform" else DEFAULT_EARLY_SHARE[kind])
                continue
            _number(share, f"{kind}_early_share", low=0)
            if not 0 < share < 1:
                raise ScenarioError(f"{kind}_early_share = {share!r} must lie strictly between 0 and 1")
            if dist == "uniform" and abs(share - 0.5) > 1e-12:
                raise ScenarioError(f"{kind}_early_share = {share!r}: uniform event times put half of the events in "
                                    f"the first half of the window; choose {kind}_time = \"weibull\" or "
                                    "\"loglogistic\" for another share")
        for key in ("sentinel_days", "min_gap_days", "review_days"):
            _number(getattr(self, key), key, low=0)
        _number(self.max_wait_days, "max_wait_days", low=0, allow_none=True)
        _number(self.follow_up_days, "follow_up_days", positive=True, allow_none=True)

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def eff_window(self) -> float:
        return self.dlt_window_days if self.eff_window_days is None else float(self.eff_window_days)

    def observation_window(self, uses_efficacy: bool) -> float:
        """Days after infusion until a patient's data are complete for the design."""
        return max(self.dlt_window_days, self.eff_window) if uses_efficacy else float(self.dlt_window_days)

    def follow_window(self, uses_efficacy: bool) -> float:
        """Days after infusion until a patient's follow-up ends (for the trial duration)."""
        w = self.observation_window(uses_efficacy)
        return w if self.follow_up_days is None else max(w, float(self.follow_up_days))

    @property
    def is_instant(self) -> bool:
        """No delays and no staggering (arrival times and windows still apply)."""
        return (self.vein_to_vein_days == 0 and self.sentinel_days == 0 and self.min_gap_days == 0
                and self.review_days == 0 and self.dropout == 0)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self) -> str:
        """The calendar in plain words."""
        acc = {"poisson": "Poisson arrivals", "fixed": "arrivals at fixed spacing",
               "uniform": "arrivals with uniform gaps"}[self.accrual]
        parts = [f"{acc}, {self.accrual_rate:g} patients/month"]
        if self.screen_fail:
            parts.append(f"{100 * self.screen_fail:g}% screening failures")
        if self.vein_to_vein_days:
            sd = f" (SD {self.vein_to_vein_sd:g})" if self.vein_to_vein_sd else ""
            start = "arrival" if self.manufacture_on_arrival else "enrolment"
            parts.append(f"vein-to-vein {self.vein_to_vein_days:g} days{sd} from {start}")
        if self.dropout:
            parts.append(f"{100 * self.dropout:g}% drop out before infusion (replaced)")
        share = f"{100 * self.tox_early_share:g}% in the first half"
        parts.append(f"DLT window {self.dlt_window_days:g} days ({self.tox_time} time to DLT, {share})")
        if self.eff_window_days is not None:
            parts.append(f"response window {self.eff_window:g} days ({self.eff_time})")
        if self.sentinel_days:
            parts.append(f"sentinel: the first patient at a tier observed {self.sentinel_days:g} days alone")
        if self.min_gap_days:
            parts.append(f"at least {self.min_gap_days:g} days between infusions")
        if self.review_days:
            parts.append(f"{self.review_days:g}-day safety review between cohorts")
        parts.append("patients wait indefinitely" if self.max_wait_days is None
                     else f"patients leave after waiting {self.max_wait_days:g} days")
        if self.follow_up_days:
            parts.append(f"follow-up {self.follow_up_days:g} days per patient")
        return "; ".join(parts)

    # -- random quantities ----------------------------------------------------------------------
    def gaps(self, u: np.ndarray) -> np.ndarray:
        """Days between consecutive screened candidates from uniforms ``u``."""
        mean = DAYS_PER_MONTH / self.accrual_rate
        if self.accrual == "fixed":
            return np.full(u.shape, mean)
        if self.accrual == "uniform":
            return 2 * mean * u
        return -mean * np.log1p(-u)

    def vein_to_vein(self, u: np.ndarray) -> np.ndarray:
        """Days from apheresis to infusion from uniforms ``u`` (gamma with the set mean and SD)."""
        mu, sd = float(self.vein_to_vein_days), float(self.vein_to_vein_sd)
        if sd == 0:
            return np.full(u.shape, mu)
        shape = (mu / sd) ** 2
        return special.gammaincinv(shape, u) * (sd * sd / mu)

    def event_time(self, kind: str, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Time of an event known to occur within the window, as a fraction of the window in (0, 1].

        ``p`` is the patient's probability of the event within the window
        (the shape of Weibull and log-logistic times is solved from it and the
        share of events in the first half, as Yuan et al. 2018 and Lin & Yuan
        2020 simulate); ``v`` a uniform. Inverse of F(t) / F(window).
        """
        dist = getattr(self, f"{kind}_time")
        s = getattr(self, f"{kind}_early_share")
        v = np.clip(v, 1e-15, 1.0)
        if dist == "uniform":
            return v
        p = np.clip(np.asarray(p, float), 1e-9, 1 - 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            if dist == "weibull":
                # F(t) = 1 - exp(-lam t^k), F(1) = p, F(1/2) = s p
                k = np.log(np.log1p(-p) / np.log1p(-s * p)) / math.log(2)
                t = (np.log1p(-v * p) / np.log1p(-p)) ** (1 / k)
            else:
                # F(t) = 1 - 1 / (1 + lam t^k), F(1) = p, F(1/2) = s p
                odds = p / (1 - p)
                k = np.log(odds / (s * p / (1 - s * p))) / math.log(2)
                t = ((v * p / (1 - v * p)) / odds) ** (1 / k)
        return np.clip(t, 1e-12, 1.0)


_CAL_KEYS = {f.name for f in dataclasses.fields(Calendar)}


def calendar_from_toml(table, where: str) -> Calendar:
    """Build a :class:`Calendar` from a scenario file's ``[calendar]`` table; errors name file, key and value."""
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: 'calendar' must be a table [calendar]")
    for key in table:
        if key not in _CAL_KEYS:
            raise ScenarioError(f"{where}: [calendar] unknown key {key!r} (known: {', '.join(sorted(_CAL_KEYS))})")
    try:
        return Calendar(**table)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: [calendar] {exc}") from None


# -- arrivals ---------------------------------------------------------------------------------------
class _Arrivals:
    """Arrival times (days) of the screened-in patients of one batch, shape ``(n_trials, width)``.

    Time 0 is the first screened-in patient's arrival. Generated for ``cols``
    candidates; :meth:`ensure` regenerates with more candidates (the first
    columns never change: the streams are prefix-stable).
    """

    def __init__(self, cal: Calendar, seq, start: int, stop: int, cols: int):
        self.cal, self.seq, self.start, self.stop = cal, seq, start, stop
        self._make(max(int(cols), 8))

    def _make(self, cols: int) -> None:
        cal = self.cal
        u = patient_uniforms(self.seq, self.start, self.stop, cols, Stream.ARRIVAL)
        gaps = cal.gaps(u)
        gaps[:, 0] = 0.0
        t = np.cumsum(gaps, axis=1)
        if cal.screen_fail > 0:
            ok = patient_uniforms(self.seq, self.start, self.stop, cols, Stream.SCREEN) >= cal.screen_fail
            t = np.sort(np.where(ok, t, np.inf), axis=1)
            first = t[:, :1]
            t = t - np.where(np.isfinite(first), first, 0.0)
            self.count = ok.sum(axis=1)
        else:
            self.count = np.full(t.shape[0], cols)
        self.cols = cols
        self.t = t

    def ensure(self, rows: np.ndarray, index: np.ndarray | None = None, until: np.ndarray | None = None) -> None:
        """Make arrival ``index`` exist for ``rows`` (and arrivals past time ``until``)."""
        for _ in range(60):
            short = np.zeros(rows.size, dtype=bool)
            if index is not None:
                short |= index >= self.count[rows]
            if until is not None:
                last = self.t[rows, np.maximum(self.count[rows] - 1, 0)]
                short |= last <= until
            if not short.any():
                return
            self._make(self.cols * 2)
        raise DoseescError("the calendar needs more than a billion arrivals per trial: check accrual_rate")


# -- shared enrolment step ----------------------------------------------------------------------------
class _Clock:
    """Per-trial calendar state of one batch and the enrolment of one patient per call."""

    def __init__(self, cal: Calendar, seq, start: int, stop: int, n_tiers: int, enrol_cap: int):
        n = stop - start
        self.cal, self.seq, self.start, self.stop = cal, seq, start, stop
        self.arr = _Arrivals(cal, seq, start, stop, enrol_cap + 16)
        self.ptr = np.zeros(n, dtype=np.int64)          # next arrival in the queue
        self.enrolled = np.zeros(n, dtype=np.int64)     # enrolees so far (drop-outs included)
        self.last_inf = np.full(n, -np.inf)
        self.first_inf = np.full((n, n_tiers), np.nan)  # first infusion at each tier (sentinel)
        self.wait = np.zeros(n)
        self.lost = np.zeros(n)
        self.cap = enrol_cap
        self.u_v2v = patient_uniforms(seq, start, stop, enrol_cap, Stream.MANUFACTURE) \
            if cal.vein_to_vein_sd > 0 else None
        self.u_drop = patient_uniforms(seq, start, stop, enrol_cap, Stream.DROPOUT) if cal.dropout > 0 else None

    def next_arrival(self, rows: np.ndarray, open_t: np.ndarray):
        """Take the next queued patient of each row who has not left by ``open_t``.

        Returns (arrival time, slot time = max(arrival, open)); counts the lost."""
        cal = self.cal
        while True:
            self.arr.ensure(rows, self.ptr[rows])
            a = self.arr.t[rows, self.ptr[rows]]
            if cal.max_wait_days is None:
                break
            gone = open_t - a > cal.max_wait_days
            if not gone.any():
                break
            g = rows[gone]
            self.lost[g] += 1
            self.wait[g] += cal.max_wait_days
            self.ptr[g] += 1
        slot = np.maximum(a, open_t)
        return a, slot

    def enrol(self, rows: np.ndarray, open_t: np.ndarray, tier: np.ndarray, sentinel: bool = True,
              infused: np.ndarray | None = None):
        """Enrol one patient per row (replacing drop-outs) and plan the infusion.

        Returns (slot time of the enrolee who is infused, infusion time). With
        ``infused`` False for a row (the actual-dose model: a failed or withheld
        product), the patient is enrolled and manufactured but not infused: the
        time returned is when the product was due (the failure becomes known),
        and the infusion bookkeeping (gaps, sentinel) is left unchanged."""
        cal = self.cal
        inf = np.empty(rows.size)
        slot_out = np.empty(rows.size)
        pos = np.arange(rows.size)
        open_t = np.asarray(open_t, float).copy()
        for _ in range(10_000):
            r = rows[pos]
            a, slot = self.next_arrival(r, open_t[pos])
            self.wait[r] += slot - a
            self.ptr[r] += 1
            j = self.enrolled[r]
            if np.any(j >= self.cap):
                raise DoseescError("the calendar's drop-out rate needs more replacements than the enrolment cap; "
                                   "lower dropout")
            self.enrolled[r] += 1
            v2v = self.cal.vein_to_vein(self.u_v2v[r, j]) if self.u_v2v is not None \
                else np.full(r.size, float(cal.vein_to_vein_days))
            ready = (a if cal.manufacture_on_arrival else slot) + v2v
            ready = np.maximum(ready, slot)
            planned = np.maximum(ready, self.last_inf[r] + cal.min_gap_days)
            if sentinel and cal.sentinel_days > 0:
                first = self.first_inf[r, tier[pos]]
                planned = np.where(np.isnan(first), planned, np.maximum(planned, first + cal.sentinel_days))
            if self.u_drop is not None:
                drop = self.u_drop[r, j] < cal.dropout
            else:
                drop = np.zeros(r.size, dtype=bool)
            keep = ~drop
            gives = np.ones(r.size, dtype=bool) if infused is None else np.asarray(infused)[pos]
            inf[pos[keep]] = np.where(gives, planned, ready)[keep]
            slot_out[pos[keep]] = slot[keep]
            keep = keep & gives
            rk = r[keep]
            self.last_inf[rk] = planned[keep]
            tk = tier[pos[keep]]
            f = self.first_inf[rk, tk]
            self.first_inf[rk, tk] = np.where(np.isnan(f), planned[keep], f)
            if not drop.any():
                return slot_out, inf
            open_t[pos[drop]] = planned[drop]       # the replacement's place opens when the drop-out is found
            pos = pos[drop]
        raise DoseescError("the calendar's drop-out rate never lets a patient be infused")  # pragma: no cover

    def settle(self, stop_t: np.ndarray) -> None:
        """Count the waiting of patients still queued when the trial stops (turned away, or lost before)."""
        cal = self.cal
        rows = np.arange(stop_t.size)
        self.arr.ensure(rows, until=stop_t)
        t = self.arr.t
        idx = np.arange(t.shape[1])[None, :]
        queued = (idx >= self.ptr[:, None]) & (t < stop_t[:, None])
        waited = np.where(queued, stop_t[:, None] - t, 0.0)
        if cal.max_wait_days is not None:
            self.lost += (queued & (waited > cal.max_wait_days)).sum(axis=1)
            waited = np.minimum(waited, cal.max_wait_days)
        self.wait += waited.sum(axis=1)


# -- the engine ----------------------------------------------------------------------------------------
def _calendar_batch(cal: Calendar, design, out: dict, seq, start: int, stop: int) -> dict:
    """Calendar of a batch already simulated by the untimed engine (designs that wait for complete cohorts).

    The decisions of such a design depend on the counts only, never on time, so
    the calendar is laid over the untimed trials patient by patient: each
    cohort opens when the previous one has completed its windows (plus the
    review), and its patients are enrolled from the queue.

    With the actual-dose model (``out`` from the engine's actual-dose path) the
    calendar is laid over every *enrolee*: a failed or withheld product is
    manufactured but not infused, and becomes known when it was due; the
    patient who replaces it (or a patient whose product is not evaluable) is
    enrolled from the queue only then. The cohort is complete when its
    evaluable patients have completed their windows; infused patients who are
    not evaluable are still followed (duration).
    """
    from .actual_dose import PatientStatus

    uses_eff = bool(getattr(design, "uses_efficacy", False))
    obs = cal.observation_window(uses_eff)
    fol = cal.follow_window(uses_eff)
    status = out.get("status")
    if status is None:
        tier_pt = out["tier"].astype(np.int64)
        new = out["new_cohort"]
        repl = None
    else:
        tier_pt = out["assigned"].astype(np.int64)
        new = out["cohort_start"]
        repl = out["replacement"]
    n, max_n = tier_pt.shape
    cap = _enrol_cap(max_n, cal)
    clock = _Clock(cal, seq, start, stop, design.n_tiers, cap)
    open_t = np.zeros(n)
    found = np.full(n, -np.inf)      # when the latest non-evaluable product of the cohort became known
    comp = np.full(n, -np.inf)       # completion of the current cohort
    end = np.zeros(n)                # end of the last follow-up
    inf_t = np.full((n, max_n), np.nan)
    for k in range(max_n):
        rows = np.flatnonzero(tier_pt[:, k] >= 0)
        if rows.size == 0:
            break
        starts = new[rows, k] & (k > 0)
        if starts.any():
            s = rows[starts]
            open_t[s] = comp[s] + cal.review_days
            comp[s] = -np.inf
            found[s] = -np.inf
        if status is None:
            _, inf = clock.enrol(rows, open_t[rows], tier_pt[rows, k])
            gives = evaluable = np.ones(rows.size, dtype=bool)
        else:
            st = status[rows, k]
            gives = (st == PatientStatus.EVALUABLE) | (st == PatientStatus.NOT_EVALUABLE)
            evaluable = st == PatientStatus.EVALUABLE
            opens = np.where(repl[rows, k], np.maximum(open_t[rows], found[rows]), open_t[rows])
            _, inf = clock.enrol(rows, opens, tier_pt[rows, k], infused=gives)
            bad = ~evaluable & (st != PatientStatus.LOST)   # replaced: the replacement waits for this news
            found[rows[bad]] = np.maximum(found[rows[bad]], inf[bad])
        ri = rows[gives]
        inf_t[ri, k] = inf[gives]
        re = rows[evaluable]
        comp[re] = np.maximum(comp[re], inf[evaluable] + obs)
        end[ri] = np.maximum(end[ri], inf[gives] + fol)
    decision = comp.copy()
    clock.settle(decision)
    return {"duration_days": end, "time_to_decision_days": decision, "wait_days": clock.wait,
            "lost_waiting": clock.lost.astype(float), "infusion_days": inf_t}


def _enrol_cap(max_n: int, cal: Calendar) -> int:
    """Enrolees per trial to draw manufacturing and drop-out numbers for (replacements included)."""
    if cal.dropout <= 0:
        return max_n + 1
    extra = max(8, math.ceil(4 * max_n * cal.dropout / (1 - cal.dropout)) + 8)
    return max_n + extra


def simulate_timed(design, scenario, n_trials: int = 10_000, *, rng=None, target=None, ladder=None, obd=None,
                   batch_size: int = 8192, progress=None, dose_model=None, calendar=None):
    """Monte Carlo operating characteristics with calendar time (``simulate(..., calendar=...)``).

    Returns the same :class:`~doseesc.results.OperatingCharacteristics` as
    :func:`~doseesc.simulate`, with the per-trial ``duration_days``,
    ``time_to_decision_days``, ``wait_days`` and ``lost_waiting`` in ``extra``
    (see :meth:`~doseesc.results.OperatingCharacteristics.duration_summary`).
    Designs that wait for complete cohorts are simulated by the untimed engine
    and the calendar laid over them (identical selections for the same seed);
    time-to-event designs (``time_to_event = True``) are simulated in time,
    deciding with the pending patients' partial follow-up.
    """
    from .engines.montecarlo import check_compatible, check_run, monte_carlo_result, plain_batch
    from .obd import resolve_obd
    from .results import provenance, resolve_target
    from .rng import root_seed

    if dose_model is not None and getattr(design, "time_to_event", False):
        raise DoseescError(f"{design.label}: time-to-event designs do not yet combine with the actual-dose model "
                           "(simulate them with the calendar alone, or give [actual_dose] to the other designs)")
    if not isinstance(calendar, Calendar):
        raise DoseescError(f"calendar = {calendar!r} is not a doseesc Calendar")
    check_compatible(design, scenario)
    obd_def = resolve_obd(obd, design, scenario)
    check_run(n_trials, batch_size)
    if scenario.true_eff is None and getattr(design, "uses_efficacy", False):
        raise DoseescError(f"{design.label} needs true_eff in scenario {scenario.name!r}")
    seq = root_seed(rng)
    tgt = resolve_target(target, scenario, design)
    tite = bool(getattr(design, "time_to_event", False))
    parts = []
    t0 = time.perf_counter()
    if dose_model is not None:
        from .engines.montecarlo import simulate

        plain = simulate(design, scenario, n_trials, rng=seq, target=target, ladder=ladder, obd=obd,
                         batch_size=batch_size, dose_model=dose_model)
        pt = plain.patients
        out = {"status": pt["status"], "assigned": pt["assigned"], "cohort_start": pt["cohort_start"],
               "replacement": pt["replacement"]}
        for start in range(0, int(n_trials), int(batch_size)):
            stop = min(start + int(batch_size), int(n_trials))
            parts.append(_calendar_batch(calendar, design, {k: v[start:stop] for k, v in out.items()}, seq, start,
                                         stop))
            if progress is not None:
                progress(stop, int(n_trials))
        cal = {key: np.concatenate([b[key] for b in parts]) for key in parts[0]}
        extra = dict(plain.extra)
        extra.update({key: (cal[key].astype(float), text) for key, text in CALENDAR_METRICS.items()})
        prov = dict(plain.provenance)
        prov["calendar"] = calendar.to_dict()
        prov["calendar_text"] = calendar.describe()
        prov["seconds"] = round(time.perf_counter() - t0, 4)
        return dataclasses.replace(plain, extra=extra, provenance=prov,
                                   patients={**pt, "infusion_days": cal["infusion_days"]})
    for start in range(0, int(n_trials), int(batch_size)):
        stop = min(start + int(batch_size), int(n_trials))
        if tite:
            from .designs.tite import simulate_tite_batch

            b = simulate_tite_batch(design, scenario, calendar, seq, start, stop)
        else:
            b = plain_batch(design, scenario, seq, start, stop)
            b.update(_calendar_batch(calendar, design, b, seq, start, stop))
        parts.append(b)
        if progress is not None:
            progress(stop, int(n_trials))
    out = {key: np.concatenate([b[key] for b in parts]) for key in parts[0]}
    extra = {key: (out[key].astype(float), text) for key, text in CALENDAR_METRICS.items()}
    patients = {"tier": out["tier"], "tox": out["tox"], "eff": out["eff"], "new_cohort": out["new_cohort"],
                "infusion_days": out["infusion_days"]}
    prov = provenance(design, scenario, method="monte carlo", n_trials=int(n_trials), seed=seq,
                      batch_size=int(batch_size), seconds=time.perf_counter() - t0, target=tgt)
    prov["calendar"] = calendar.to_dict()
    prov["calendar_text"] = calendar.describe()
    return monte_carlo_result(design, scenario, ladder, tgt, obd_def, out, patients, prov, extra)
