"""Calendar time: accrual, manufacturing, staggered dosing, late events (the model and its file table).

A committee must know how long a design takes, not only how many patients it
needs. :class:`Calendar` describes the clock of a protocol;
``simulate(..., calendar=Calendar(...))`` simulates it (the timed engine,
:mod:`doseesc.engines.timed`).

Time line of a patient (days; time 0 is the arrival of the first patient):

1. **Arrival.** Screened candidates arrive as a Poisson process, at fixed
   spacing, or with uniform gaps (``accrual``, ``accrual_rate`` patients per
   month of 365.25 / 12 days); a candidate fails screening with probability
   ``screen_fail`` and is not enrolled. Candidates who pass form the queue.
2. **Waiting for a slot.** A queued patient is enrolled when the design has a
   place for them (a non-TITE design opens the next cohort only when every
   patient of the last cohort has completed the observation window, plus
   ``review_days``: the DLT window, and the response window too for a design
   whose escalation reads responses (``decides_on_response``: BOIN12, BOIN-ET),
   not for one that reads them only for its final choice (an OBD pick on a
   3+3 base: its final selection waits for its patients' response window);
   a TITE design opens it at once unless it suspends accrual).
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
- ``lost_waiting``: patients who left the queue after ``max_wait_days``;
- ``n_screened``: candidates screened, counted up to and including the last
  candidate who was enrolled (drop-outs included) or lost while waiting:
  enrolled + lost waiting + the screening failures among them. Screening
  failures after that candidate, and queued patients turned away when
  enrolment ends, are not counted. ``metrics()`` shows its mean as
  ``expected_screened``; the per-trial counts are
  ``OperatingCharacteristics.screened`` (not a column of ``trials()``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._lazy import lazy
from .errors import ScenarioError
from .tiers import DAYS_PER_MONTH

special = lazy("scipy.special")

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

    def observation_window(self, reads_response: bool) -> float:
        """Days after infusion until a patient's data are complete for a decision that reads responses
        (``reads_response``: the longer of the two windows) or DLTs only (the DLT window). The engine asks it
        with ``decides_on_response`` for the wait between cohorts and ``uses_efficacy`` for the final choice."""
        return max(self.dlt_window_days, self.eff_window) if reads_response else float(self.dlt_window_days)

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
