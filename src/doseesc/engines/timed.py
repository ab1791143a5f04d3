"""The timed Monte Carlo engine: calendar time over the trials (accrual, manufacturing, staggering, windows),
and time-to-event designs simulated in time.

The clock of a protocol (:class:`~doseesc.calendar.Calendar`) and its time line are described in
:mod:`doseesc.calendar`; this module runs it. Designs that wait for complete cohorts are simulated by the
untimed engine and the calendar laid over their trials (:func:`calendar_batch`; identical selections for the
same seed); time-to-event designs (``time_to_event = True``) are simulated in time, deciding with the pending
patients' partial follow-up (:func:`tite_batch`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..actual_dose import PatientStatus
from ..calendar import CALENDAR_METRICS, Calendar
from ..designs.tite import _per_tier
from ..errors import DoseescError
from ..results import DEFINITIONS, SCREENED_KEY
from ..rng import Stream, patient_uniforms
from ..state import StopReason, TrialState
from .actual import PATIENT_RECORDS, _Model, _streams, finish_actual
from .run import in_batches


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
            self.passed = np.cumsum(ok, axis=1)      # candidates who passed screening among the first c + 1
        else:
            self.count = np.full(t.shape[0], cols)
            self.passed = None
        self.cols = cols
        self.t = t

    def screened(self, m: np.ndarray) -> np.ndarray:
        """Candidates screened up to and including the ``m``-th who passed (0 for ``m == 0``), per trial:
        ``m`` plus the screening failures before that candidate. Needs ``m <= count``."""
        m = np.asarray(m, dtype=np.int64)
        if self.passed is None:
            return m.copy()
        return (self.passed < m[:, None]).sum(axis=1) + (m > 0)

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
        self.screened = np.zeros(n, dtype=np.int64)     # set by settle()
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
              infused: np.ndarray | None = None, replace: bool = True):
        """Enrol one patient per row (replacing drop-outs) and plan the infusion.

        Returns (slot time of the enrolee who is infused, infusion time). With
        ``infused`` False for a row (the actual-dose model: a failed or withheld
        product), the patient is enrolled and manufactured but not infused: the
        time returned is when the product was due (the failure becomes known),
        and the infusion bookkeeping (gaps, sentinel) is left unchanged. With ``replace`` False a drop-out is
        not replaced (a backfill place): its infusion time is NaN (its slot time is returned)."""
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
            if not replace:
                inf[pos[drop]] = np.nan
                slot_out[pos[drop]] = slot[drop]
                return slot_out, inf
            open_t[pos[drop]] = planned[drop]       # the replacement's place opens when the drop-out is found
            pos = pos[drop]
        raise DoseescError("the calendar's drop-out rate never lets a patient be infused")  # pragma: no cover

    def settle(self, stop_t: np.ndarray) -> None:
        """Count the waiting of patients still queued when the trial stops (turned away, or lost before), and
        the candidates screened (:attr:`screened`).

        Screened: every candidate up to and including the last one who was enrolled (drop-outs included) or
        left the queue after ``max_wait_days``, so enrolled + lost waiting + the screening failures among them.
        Candidates after that one are not counted: screening failures, and patients still queued when
        enrolment ends who had not waited ``max_wait_days`` (turned away). The queue is first come, first
        served, so those lost at the end are its head and the count is that of a prefix of the candidates."""
        cal = self.cal
        rows = np.arange(stop_t.size)
        self.arr.ensure(rows, until=stop_t)
        t = self.arr.t
        idx = np.arange(t.shape[1])[None, :]
        queued = (idx >= self.ptr[:, None]) & (t < stop_t[:, None])
        waited = np.where(queued, stop_t[:, None] - t, 0.0)
        lost_at_end = np.zeros(stop_t.size, dtype=np.int64)
        if cal.max_wait_days is not None:
            lost_at_end = (queued & (waited > cal.max_wait_days)).sum(axis=1)
            self.lost += lost_at_end
            waited = np.minimum(waited, cal.max_wait_days)
        self.wait += waited.sum(axis=1)
        self.screened = self.arr.screened(self.ptr + lost_at_end)


# -- the engine ----------------------------------------------------------------------------------------
def calendar_batch(cal: Calendar, design, out: dict, seq, start: int, stop: int) -> dict:
    """Calendar of a batch already simulated by the untimed engine (designs that wait for complete cohorts).

    The decisions of such a design depend on the counts only, never on time, so
    the calendar is laid over the untimed trials patient by patient: each
    cohort opens when the previous one has completed its window (plus the
    review), and its patients are enrolled from the queue. The window between
    cohorts is the DLT window, and the response window too only for a design
    whose escalation reads responses (``decides_on_response``); a design that
    reads them only for its final choice (OBD pick) decides when its patients'
    response windows end.

    With the actual-dose model (``out`` from the engine's actual-dose path) the
    calendar is laid over every *enrolee*: a failed or withheld product is
    manufactured but not infused, and becomes known when it was due; the
    patient who replaces it (or a patient whose product is not evaluable) is
    enrolled from the queue only then. The cohort is complete when its
    evaluable patients have completed their windows; infused patients who are
    not evaluable are still followed (duration).
    """
    obs = cal.observation_window(design.decides_on_response)   # between cohorts
    obs_final = cal.observation_window(design.uses_efficacy)   # the final choice (an OBD pick's responses)
    fol = cal.follow_window(design.uses_efficacy)
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
    data = np.full(n, -np.inf)       # when every evaluable patient's data for the final choice are complete
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
        data[re] = np.maximum(data[re], inf[evaluable] + obs_final)
        end[ri] = np.maximum(end[ri], inf[gives] + fol)
    # enrolment ends when the last cohort's escalation window is complete (the queue is turned away then);
    # the final choice when its data are complete (later only for a design that selects on responses alone)
    clock.settle(comp.copy())
    decision = comp.copy() if obs_final == obs else np.maximum(comp, data)
    return {"duration_days": end, "time_to_decision_days": decision, "wait_days": clock.wait,
            "lost_waiting": clock.lost.astype(float), "n_screened": clock.screened.astype(float),
            "infusion_days": inf_t}


def _enrol_cap(max_n: int, cal: Calendar) -> int:
    """Enrolees per trial to draw manufacturing and drop-out numbers for (replacements included)."""
    if cal.dropout <= 0:
        return max_n + 1
    extra = max(8, math.ceil(4 * max_n * cal.dropout / (1 - cal.dropout)) + 8)
    return max_n + extra


# -- the timed engine of time-to-event designs -------------------------------------------------------
def _tier_at(t: np.ndarray, rows: np.ndarray, pt: dict) -> np.ndarray:
    """The tier each patient of trials ``rows`` counts at, at times ``t`` (per row); -1: not counted.

    Without the actual-dose model a patient counts at the assigned tier from enrolment. With it (``pt`` has
    ``"counted"`` and ``"known"``), a patient counts at the assigned tier, pending, until the product's fate is
    known (``"known"``: when a failed or withheld product was due, else the infusion), then at the tier the
    policy counts them at (``"counted"``: -1 where not evaluable)."""
    tier = pt["tier"][rows]
    if "counted" not in pt:
        return tier
    return np.where(t[:, None] >= pt["known"][rows], pt["counted"][rows], tier)


def _state_at(t: np.ndarray, rows: np.ndarray, pt: dict, cal, k: int, current, uses_eff: bool) -> TrialState:
    """The data of trials ``rows`` at times ``t`` (per row): assigned patients, DLTs so far, follow-up."""
    tier = _tier_at(t, rows, pt)
    assigned = tier >= 0
    inf = np.nan_to_num(pt["inf"][rows], nan=np.inf)

    # An event or a window's end counts from the very time _next_event computes for it (the same float
    # expression), so a trial woken at an event sees it: (t - inf) / window can round below the fraction.
    def elapsed(window):   # follow-up as a fraction of the window (0 for no patient)
        with np.errstate(invalid="ignore"):
            el = np.nan_to_num(np.clip((t[:, None] - inf) / window, 0.0, 1.0), nan=1.0)
        el = np.where(t[:, None] >= inf + window, 1.0, el)
        return np.where(assigned, el, 0.0)

    def seen(has, frac, el, window):
        return has & ((frac <= el) | (inf + frac * window <= t[:, None])) & assigned

    w = cal.dlt_window_days
    el = elapsed(w)
    dlt = seen(pt["tox"][rows], pt["tox_frac"][rows], el, w)
    follow = np.where(dlt, pt["tox_frac"][rows], el)
    eff_follow = eff = None
    if uses_eff:
        we = cal.eff_window
        el_e = elapsed(we)
        eff = seen(pt["eff"][rows], pt["eff_frac"][rows], el_e, we)
        eff_follow = np.where(eff, pt["eff_frac"][rows], el_e)
    per_tier = _per_tier(tier, k)

    def count(mask):
        return per_tier(mask).astype(np.int32)

    n = count(assigned)
    y = count(dlt)
    e = count(eff) if uses_eff else np.zeros_like(n)
    ye = count(eff & dlt) if uses_eff else np.zeros_like(n)
    coh = pt["cohort"][rows]
    last = coh.max(axis=1)
    in_last = assigned & (coh == last[:, None])
    return TrialState(n=n, y=y, e=e, ye=ye, current=current.astype(np.int32), active=np.ones(rows.size, dtype=bool),
                      last_n=in_last.sum(axis=1).astype(np.int32), last_y=(in_last & dlt).sum(axis=1).astype(np.int32),
                      pt_tier=tier, pt_dlt=dlt, pt_follow=follow, pt_eff=eff, pt_eff_follow=eff_follow)


def _next_event(t: np.ndarray, rows: np.ndarray, pt: dict, cal, current: np.ndarray,
                uses_eff: bool = False) -> np.ndarray:
    """Next time a pending patient at the current tier has a DLT (or a response, for designs that use
    it) or completes the window (after ``t``); with the actual-dose model also when a product's fate becomes
    known and moves a patient to or from the current tier (:func:`_tier_at`)."""
    tier = _tier_at(t, rows, pt)
    inf = np.nan_to_num(pt["inf"][rows], nan=np.inf)
    w = cal.dlt_window_days
    ev = np.where(pt["tox"][rows], inf + pt["tox_frac"][rows] * w, inf + w)
    later = t[:, None] + 1e-9
    ev = np.where(ev > later, ev, np.inf)
    if uses_eff:
        we = cal.eff_window
        ev_e = np.where(pt["eff"][rows], inf + pt["eff_frac"][rows] * we, inf + we)
        ev = np.minimum(ev, np.where(ev_e > later, ev_e, np.inf))
    ev = np.where(tier == current[:, None], ev, np.inf)
    if "counted" in pt:
        before, after = pt["tier"][rows], pt["counted"][rows]
        kn = pt["known"][rows]
        moves = (before != after) & ((before == current[:, None]) | (after == current[:, None])) & (kn > later)
        ev = np.minimum(ev, np.where(moves, kn, np.inf))
    nxt = ev.min(axis=1)
    return np.where(np.isfinite(nxt), nxt, t + 1.0)


#: Days added to a computed crossing time, so that the design, deciding then, is past the boundary despite
#: rounding (the same margin as the "after t" of :func:`_next_event`).
_MARGIN = 1e-9


def _follow_reached(goal: np.ndarray, t: np.ndarray, inf: np.ndarray, pend: np.ndarray, window: float) -> np.ndarray:
    """Earliest time at which the pending patients ``pend`` (infusion days ``inf``, both ``(n_rows,
    n_patients)``) have a total follow-up of ``goal`` windows (n_rows,), if none completes its window or has
    its event first: the root of sum_i max(tau - a_i, 0) / window = goal, a convex piecewise-linear function
    of tau with a kink at every infusion a_i (patients not yet infused start later). With the infusions
    sorted, f(a_j) = j a_j - (a_1 + ... + a_j); the root lies after the J-th infusion, J the number with
    f(a_j) < goal * window, at tau = (goal * window + a_1 + ... + a_J) / J. +inf for no pending patient or
    an infinite goal; ``t`` where the goal is already reached."""
    a = np.sort(np.where(pend, inf, np.inf), axis=1)
    finite = np.isfinite(a)
    csum = np.cumsum(np.where(finite, a, 0.0), axis=1)
    j = np.arange(1, a.shape[1] + 1)[None, :]
    need = goal * window
    with np.errstate(invalid="ignore"):
        f_at = np.where(finite, j * np.where(finite, a, 0.0) - csum, np.inf)
        count = (f_at < need[:, None]).sum(axis=1)
        s_j = np.take_along_axis(csum, np.maximum(count - 1, 0)[:, None], axis=1)[:, 0]
        tau = (need + s_j) / np.maximum(count, 1)
    tau = np.where(count > 0, tau, np.where(finite.any(axis=1) & (need <= 0), t, np.inf))
    return np.where(np.isfinite(goal), tau, np.inf)


def _wake(design, st: TrialState, t: np.ndarray, rows: np.ndarray, pt: dict, cal, t_event: np.ndarray) -> np.ndarray:
    """When waiting trials ``rows`` (state ``st`` at ``t``) re-decide: at ``t_event`` (the next event at the
    current tier) unless the design's estimate crosses the boundary that ends the wait before it, while the
    pending patients' follow-up grows (:meth:`wake_follow`); then at that crossing (plus :data:`_MARGIN`).
    Where no crossing comes first the result is ``t_event`` itself (bit-identical to waking at events)."""
    tox_goal, eff_goal = design.wake_follow(st)
    if not (np.isfinite(tox_goal).any() or np.isfinite(eff_goal).any()):
        return t_event
    inf = np.nan_to_num(pt["inf"][rows], nan=np.inf)
    at = st.pt_tier == st.current[:, None]
    tau = _follow_reached(tox_goal, t, inf, at & ~st.pt_dlt & (st.pt_follow < 1), cal.dlt_window_days)
    if st.pt_eff is not None and np.isfinite(eff_goal).any():
        pend_e = at & ~st.pt_eff & (st.pt_eff_follow < 1)
        tau = np.minimum(tau, _follow_reached(eff_goal, t, inf, pend_e, cal.eff_window))
    between = (tau > t + _MARGIN) & (tau + _MARGIN < t_event)
    return np.where(between, tau + _MARGIN, t_event)


def tite_batch(design, scenario, cal, seq, start: int, stop: int) -> dict:
    """Simulate trials ``start..stop-1`` of a time-to-event design in calendar time.

    Trials step together cohort by cohort. A cohort opens when its first
    patient is available (queued and the previous cohort fully enrolled); the
    design decides on the data at that moment (pending patients with their
    follow-up); while it suspends accrual the patient waits (or leaves after
    ``max_wait_days``) until the next DLT or window completion at the current
    tier, or until the design's estimate crosses the boundary that ends the
    wait if that comes first (:func:`_wake`). The k-th infused patient's DLT is ``u_tox[i, k] < p`` as in the
    untimed engine, its time within the window from Stream.TOX_TIME. The final
    tier is selected on complete data; a stop with no dose is decided at once.
    """
    return _TiteBatch(design, scenario, cal, seq, start, stop).run()


class _TiteBatch:
    """One batch of :func:`tite_batch`: the trials' latent numbers, clock, per-patient data and state."""

    def __init__(self, design, scenario, cal, seq, start: int, stop: int, width: int | None = None):
        self.design, self.scenario, self.cal = design, scenario, cal
        self.n = n = stop - start
        self.k, self.max_n = k, max_n = design.n_tiers, design.max_n
        #: patients per trial the arrays hold (the actual-dose model: every enrolee, up to the enrolment cap)
        self.width = w = max_n if width is None else int(width)
        self.max_cohorts = max_n + 1
        self.uses_eff = design.uses_efficacy
        self.eff_on = scenario.true_eff is not None
        self.p = np.asarray(scenario.true_tox, float)
        self.u_tox = patient_uniforms(seq, start, stop, w, Stream.TOX)
        self.v_tox = patient_uniforms(seq, start, stop, w, Stream.TOX_TIME)
        if self.eff_on:
            self.u_eff = patient_uniforms(seq, start, stop, w, Stream.EFF)
            self.v_eff = patient_uniforms(seq, start, stop, w, Stream.EFF_TIME)
            self.pe_t, self.pe_n = scenario.response_given_tox()
        self.clock = _Clock(cal, seq, start, stop, k, _enrol_cap(w, cal))
        self.pt = {"tier": np.full((n, w), -1, dtype=np.int64), "inf": np.full((n, w), np.nan),
                   "tox": np.zeros((n, w), dtype=bool), "tox_frac": np.full((n, w), np.inf),
                   "eff": np.zeros((n, w), dtype=bool), "eff_frac": np.full((n, w), np.inf),
                   "cohort": np.full((n, w), -1, dtype=np.int64), "new": np.zeros((n, w), dtype=bool)}
        self.total = np.zeros(n, dtype=np.int64)
        self.current = np.full(n, design.start, dtype=np.int64)
        self.size = np.full(n, design.first_size, dtype=np.int64)
        self.active = np.ones(n, dtype=bool)
        self.selected = np.full(n, -1, dtype=np.int32)
        self.reason = np.zeros(n, dtype=np.int8)
        self.fired = np.zeros(n, dtype=np.int16)
        self.stop_t = np.zeros(n)
        self.open_t = np.zeros(n)
        self.last_slot = np.zeros(n)

    def run(self) -> dict:
        for c in range(self.max_cohorts):
            act = np.flatnonzero(self.active)
            if act.size == 0:
                break
            t_all = np.zeros(self.n)                      # time of this cohort's decision, per trial
            if c > 0:
                self._decide(act, t_all)
                act = np.flatnonzero(self.active)
                if act.size == 0:
                    break
            self._enrol_cohort(c, act, t_all[act])
        else:  # pragma: no cover - max_n bounds the cohorts
            raise RuntimeError(f"{self.design.label}: trials did not stop within {self.max_cohorts} cohorts")
        return self._finish()

    def _decide(self, act: np.ndarray, t_all: np.ndarray) -> None:
        """The design decides for trials ``act`` when the next patient is available (``t_all``), again and
        again while it suspends accrual: at the next DLT or window completion at the current tier, or when
        the estimate crosses the boundary that ends the wait if that comes first; the waiting patient may
        leave meanwhile (the next in the queue takes the place)."""
        cal, clock, pt = self.cal, self.clock, self.pt
        _, t_all[act] = clock.next_arrival(act, self.open_t[act])
        rows = act
        limit = 8 * self.max_n + 20
        for _ in range(limit):
            st = _state_at(t_all[rows], rows, pt, cal, self.k, self.current[rows], self.uses_eff)
            dec = self.design.step(st)
            wait = dec.wait if dec.wait is not None else np.zeros(rows.size, dtype=bool)
            self._apply(rows, dec, wait, t_all)
            if not wait.any():
                return
            still = np.flatnonzero(wait)
            rows = rows[still]
            t_next = _next_event(t_all[rows], rows, pt, cal, self.current[rows], self.uses_eff)
            t_next = _wake(self.design, st.take(still), t_all[rows], rows, pt, cal, t_next)
            _, t_all[rows] = clock.next_arrival(rows, t_next)
        raise DoseescError(f"{self.design.label}: accrual stayed suspended after {limit} events")  # pragma: no cover

    def _apply(self, rows, dec, wait, t_all) -> None:
        """Apply the decisions ``dec`` made for trials ``rows`` (those that ``wait`` decide again later)."""
        self.fired[rows] |= dec.fired
        halt = dec.stop & ~wait
        hr = rows[halt]
        if hr.size:
            self.active[hr] = False
            self.reason[hr] = dec.reason[halt]
            # a full trial stopped enrolling when its last patient was enrolled
            self.stop_t[hr] = np.where(self.total[hr] >= self.max_n, self.last_slot[hr], t_all[hr])
        go = ~wait & ~dec.stop
        self.current[rows[go]] = dec.next[go]
        if dec.size is not None:
            self.size[rows[go]] = dec.size[go]

    def _enrol_cohort(self, c: int, act: np.ndarray, t_dec: np.ndarray) -> None:
        """Enrol cohort ``c`` of trials ``act`` at the current tier: its first patient at the decision time
        ``t_dec``, the rest as they come."""
        cal, pt, p, size, total = self.cal, self.pt, self.p, self.size, self.total
        cohort_slot = np.zeros(act.size)
        for j in range(int(size[act].max())):
            sel = (j < size[act]) & (total[act] < self.max_n)
            rows = act[sel]
            if rows.size == 0:
                break
            tiers = self.current[rows]
            slot, inf = self.clock.enrol(rows, t_dec[sel], tiers)
            kk = total[rows]
            dlt = self.u_tox[rows, kk] < p[tiers]
            pt["tier"][rows, kk] = tiers
            pt["inf"][rows, kk] = inf
            pt["tox"][rows, kk] = dlt
            pt["tox_frac"][rows, kk] = np.where(dlt, cal.event_time("tox", p[tiers], self.v_tox[rows, kk]), np.inf)
            pt["cohort"][rows, kk] = c
            pt["new"][rows, kk] = j == 0
            if self.eff_on:
                pe = np.where(dlt, self.pe_t[tiers], self.pe_n[tiers])
                resp = self.u_eff[rows, kk] < pe
                pt["eff"][rows, kk] = resp
                pt["eff_frac"][rows, kk] = np.where(resp, cal.event_time("eff", pe, self.v_eff[rows, kk]), np.inf)
            total[rows] += 1
            cohort_slot[sel] = slot
            self.last_slot[rows] = slot
        self.open_t[act] = np.maximum(self.open_t[act], cohort_slot)

    def _finish(self) -> dict:
        """Complete data and the final choice; the calendar metrics and per-patient arrays of the batch."""
        pt, reason = self.pt, self.reason
        inf = pt["inf"]
        assigned = pt["tier"] >= 0
        complete, decision, duration = self._final(assigned, assigned)
        tier_dtype = np.int8 if self.k < 127 else np.int16
        return {"n": complete.n, "y": complete.y, "e": complete.e, "ye": complete.ye, "selected": self.selected,
                "reason": reason, "fired": self.fired, "tier": pt["tier"].astype(tier_dtype), "tox": pt["tox"],
                "eff": pt["eff"], "new_cohort": pt["new"], "duration_days": duration,
                "time_to_decision_days": decision, "wait_days": self.clock.wait,
                "lost_waiting": self.clock.lost.astype(float), "n_screened": self.clock.screened.astype(float),
                "infusion_days": inf}

    def _final(self, evaluable: np.ndarray, infused: np.ndarray):
        """The final choice on complete data (into :attr:`selected`), the time of the decision and the end of
        the follow-up of each trial: the decision waits for the observation window of the patients
        ``evaluable`` (whose data it rests on), the follow-up ends with that of the patients ``infused``.
        Settles the clock. Returns ``(complete state, decision time, duration)``."""
        n, pt, cal, reason = self.n, self.pt, self.cal, self.reason
        rows = np.arange(n)
        inf = pt["inf"]
        ends = np.where(evaluable, inf + cal.observation_window(self.uses_eff), -np.inf).max(axis=1)
        final = _state_at(np.full(n, np.inf), rows, pt, cal, self.k, self.current, self.eff_on)
        complete = TrialState(n=final.n, y=final.y, e=final.e, ye=final.ye, current=self.current.astype(np.int32),
                              active=np.zeros(n, dtype=bool))
        no_dose = np.isin(reason, [StopReason.LOWEST_TIER_TOXIC] + [r for r in StopReason if r.no_dose])
        sel = self.design.conclude(complete, reason)
        self.selected[:] = np.where(no_dose, -1, sel)
        decision = np.where(no_dose, self.stop_t, np.maximum(self.stop_t, ends))
        duration = np.where(infused, inf + cal.follow_window(self.uses_eff), -np.inf).max(axis=1)
        self.clock.settle(self.stop_t)
        return complete, decision, duration


def calendar_extra(out: dict) -> dict:
    """The per-trial :data:`~doseesc.calendar.CALENDAR_METRICS` of a timed run's arrays ``out``, and the
    candidates screened per trial under :data:`~doseesc.results.SCREENED_KEY` (the result keeps that count
    apart from its ``extra``, as :attr:`~doseesc.results.OperatingCharacteristics.screened`)."""
    extra = {key: (out[key].astype(float), text) for key, text in CALENDAR_METRICS.items()}
    extra[SCREENED_KEY] = (out[SCREENED_KEY].astype(float), DEFINITIONS["expected_screened"])
    return extra


# -- time-to-event designs with the actual-dose model ---------------------------------------------------------
#: Per-patient records of a time-to-event run with the actual-dose model: those of an actual-dose run
#: (:data:`~doseesc.engines.actual.PATIENT_RECORDS`, one column per enrolee) and the infusion days.
TITE_ACTUAL_RECORDS = PATIENT_RECORDS + ("infusion_days",)


def tite_actual_batch(run, start: int, stop: int) -> dict:
    """Trials ``start..stop-1`` of the checked run ``run`` (:class:`~doseesc.engines.run.Run`: a time-to-event
    design with a calendar and an actual-dose model) in calendar time.

    The time-to-event engine (:func:`tite_batch`) with every enrolee's product drawn as the actual-dose engine
    draws it (:mod:`doseesc.engines.actual`): conforming within the band, short of it (the protocol's
    ``below_band`` policy) or failed (``on_failure``). Enrolee ``j`` of a trial reads column ``j`` of the TOX,
    TOX_TIME, EFF, EFF_TIME, PRODUCT and WEIGHT streams (replacements included; calendar drop-outs, who never
    receive a product, are not enrolees of the model and use the MANUFACTURE and DROPOUT streams only, as in
    :func:`calendar_batch`). The DLT (and response) comes from the enrolee's actual dose where the truth is a
    dose curve, else from the assigned tier's truth, and its time within the window from that probability.

    Time line of a cohort: its first patient is enrolled when the design decides, the others as they come; a
    patient whose product fails (or is withheld, or is infused but not evaluable) is replaced, and the
    replacement's place opens only when that news is known (the product's due date, or the infusion), as in
    :func:`calendar_batch`. Until then the patient counts as pending at the assigned tier with no follow-up,
    as any patient not yet infused; from then on at the tier the policy counts them at, or not at all
    (:func:`_tier_at`), and the design, if it waits, wakes at that moment. A cohort is complete when it has its
    evaluable patients (``on_failure = "lost"``: lost patients count toward it); a trial that reaches the
    enrolment cap first stops (``ENROLMENT_CAP``) and selects on its complete data.

    With a model that changes nothing (no tolerance, shortfall, failure or cap) every enrolee is infused at the
    nominal dose and the trials are those of :func:`tite_batch` bit for bit.
    """
    return _TiteActualBatch(run, start, stop).run()


class _TiteActualBatch(_TiteBatch):
    """One batch of :func:`tite_actual_batch`: :class:`_TiteBatch` with a column per enrolee (up to the enrolment
    cap), the products of the actual-dose model and its records."""

    def __init__(self, run, start: int, stop: int):
        design, scenario, ladder, model = run.design, run.scenario, run.ladder, run.dose_model
        self.cap = cap = model.enrolment_cap(design.max_n)
        super().__init__(design, scenario, run.calendar, run.seq, start, stop, width=cap)
        self.max_cohorts = cap + 2           # each cohort enrols someone; the cap stops a trial at enrolment
        self.m = m = _Model(design, scenario, ladder, model, self.eff_on)
        # per-enrolee latent numbers, flat (trial, enrolee) as the model's methods read them (np.take)
        u = {"tox": self.u_tox.ravel()}
        if self.eff_on:
            u["eff"] = self.u_eff.ravel()
        for key, stream in _streams(scenario, ladder, model).items():
            if key not in u:
                u[key] = patient_uniforms(run.seq, start, stop, cap, stream).ravel()
        self.u = u
        n = self.n
        if m.split:
            self.pt["counted"] = np.full((n, cap), -1, dtype=np.int64)
            self.pt["known"] = np.full((n, cap), np.inf)
        self.enrolled = np.zeros(n, dtype=np.int64)
        self.n_out = np.zeros(n, dtype=np.int64)
        self.rec = {"status": np.full((n, cap), int(PatientStatus.NOT_ENROLLED), dtype=np.int8),
                    "dose": np.full((n, cap), np.nan), "cohort_start": np.zeros((n, cap), dtype=bool),
                    "replacement": np.zeros((n, cap), dtype=bool)}

    def _enrol_cohort(self, c: int, act: np.ndarray, t_dec: np.ndarray) -> None:
        """Enrol cohort ``c`` of trials ``act`` at the current tier until it has its evaluable patients: the
        first at the decision time ``t_dec``, the rest as they come, a replacement once the news it waits for
        is known."""
        m, pt, cal, cap, rec = self.m, self.pt, self.cal, self.cap, self.rec
        need = np.minimum(self.size[act], self.max_n - self.total[act]).astype(np.int64)
        size0 = need.copy()                               # the cohort's own places; enrolees past them replace
        j_in = np.zeros(act.size, dtype=np.int64)         # enrolees of this cohort so far
        found = np.full(act.size, -np.inf)                # latest news of a replaced patient of the cohort
        logged = np.zeros(act.size, dtype=bool)           # the cohort's first evaluable patient is recorded
        cohort_slot = np.zeros(act.size)
        pos = np.flatnonzero((need > 0) & (self.enrolled[act] < cap))
        rec["cohort_start"][act[pos], self.enrolled[act[pos]]] = True
        while pos.size:
            rows = act[pos]
            cur = self.current[rows]
            j = self.enrolled[rows]
            cell = (rows * cap + j)[None, :]
            failed, dose = m.dose(self.u, cur, cell, 1)
            take = np.ones((1, rows.size), dtype=bool)
            _, infused, evaluable, lost_kept, below, counted = m.fates(take, failed, dose, cur, need[pos].copy(), 1)
            ptox, dlt, pe, resp = m.risks(self.u, dose, cur, cell, infused)
            infused, evaluable, dlt, dose = infused[0], evaluable[0], dlt[0], dose[0]
            lost = np.zeros(rows.size, dtype=bool) if lost_kept is None else lost_kept[0]
            repl = j_in[pos] >= size0[pos]
            opens = np.where(repl, np.maximum(t_dec[pos], found[pos]), t_dec[pos])
            slot, t_inf = self.clock.enrol(rows, opens, cur, infused=infused)
            pt["tier"][rows, j] = cur
            pt["inf"][rows, j] = np.where(infused, t_inf, np.nan)
            pt["tox"][rows, j] = dlt
            pt["tox_frac"][rows, j] = np.where(dlt, cal.event_time("tox", ptox.reshape(-1), self.v_tox[rows, j]),
                                               np.inf)
            if self.eff_on:
                resp = resp[0]
                pt["eff"][rows, j] = resp
                pt["eff_frac"][rows, j] = np.where(resp, cal.event_time("eff", pe.reshape(-1), self.v_eff[rows, j]),
                                                   np.inf)
            pt["cohort"][rows, j] = c
            pt["new"][rows, j] = evaluable & ~logged[pos]
            logged[pos] |= evaluable
            # 0 evaluable, 1 infused but not evaluable, 2 not infused (replaced), 3 lost (not replaced)
            rec["status"][rows, j] = 2 - evaluable.view(np.int8) - infused.view(np.int8) + lost.view(np.int8)
            rec["dose"][rows, j] = np.where(infused, dose, np.nan)
            rec["replacement"][rows, j] = repl
            if m.split:
                pt["counted"][rows, j] = np.where(evaluable, cur if counted is None else counted[0], -1)
                pt["known"][rows, j] = t_inf
                bad = ~evaluable & ~lost                  # replaced: the replacement waits for this news
                found[pos[bad]] = np.maximum(found[pos[bad]], t_inf[bad])
                if m.can_below:
                    self.n_out[rows] += below[0] & infused
            need[pos] -= evaluable + lost
            self.total[rows] += evaluable
            self.enrolled[rows] += 1
            j_in[pos] += 1
            cohort_slot[pos] = slot
            self.last_slot[rows] = slot
            pos = pos[(need[pos] > 0) & (self.enrolled[rows] < cap)]
        capped = act[need > 0]
        if capped.size:   # the enrolment cap came before the cohort was complete: stop on the data there are
            self.active[capped] = False
            self.reason[capped] = StopReason.ENROLMENT_CAP
            self.stop_t[capped] = self.last_slot[capped]
        self.open_t[act] = np.maximum(self.open_t[act], cohort_slot)

    def _finish(self) -> dict:
        pt, rec, m = self.pt, self.rec, self.m
        counted = pt["counted"] if m.split else pt["tier"]
        complete, decision, duration = self._final(counted >= 0, ~np.isnan(pt["inf"]))
        status, enrolled = rec["status"], self.enrolled
        n_lost = (status >= PatientStatus.LOST_REPLACED).sum(axis=1)
        n_repl = (status >= PatientStatus.NOT_EVALUABLE).sum(axis=1)
        if m.lose:
            n_repl = n_repl - (status == PatientStatus.LOST).sum(axis=1)
        n_inf = enrolled - n_lost
        share_out = np.where(n_inf > 0, self.n_out / np.maximum(n_inf, 1), np.nan)
        tier_dtype = np.int8 if self.k < 127 else np.int16
        return {"n": complete.n, "y": complete.y, "e": complete.e, "ye": complete.ye, "selected": self.selected,
                "reason": self.reason, "fired": self.fired, "n_enrolled": enrolled.astype(float),
                "n_replaced": n_repl.astype(float), "n_lost": n_lost.astype(float), "share_outside_band": share_out,
                "tier": counted.astype(tier_dtype), "assigned": pt["tier"].astype(tier_dtype), "status": status,
                "dose": rec["dose"], "tox": pt["tox"], "eff": pt["eff"], "new_cohort": pt["new"],
                "cohort_start": rec["cohort_start"], "replacement": rec["replacement"],
                "duration_days": duration, "time_to_decision_days": decision, "wait_days": self.clock.wait,
                "lost_waiting": self.clock.lost.astype(float), "n_screened": self.clock.screened.astype(float),
                "infusion_days": pt["inf"]}


def finish_tite_actual(out: dict) -> tuple[dict, dict, dict]:
    """The per-trial arrays, per-patient records (:data:`TITE_ACTUAL_RECORDS`, those present) and extra metrics
    (:data:`~doseesc.engines.actual.ACTUAL_DOSE_METRICS` and the calendar's) of the gathered batches ``out`` of
    :func:`tite_actual_batch`."""
    out, patients, extra = finish_actual(out)
    extra.update(calendar_extra(out))
    if "infusion_days" in out:
        patients["infusion_days"] = out["infusion_days"]
    return out, patients, extra


def simulate_tite_actual(run, progress=None) -> tuple[dict, dict, dict]:
    """The checked run ``run`` of a time-to-event design with a calendar and an actual-dose model, in batches
    of :func:`tite_actual_batch`: ``(per-trial arrays, per-patient records, extra metrics)`` as the other
    runners of :func:`~doseesc.simulate` return them."""
    out = in_batches(run.n_trials, run.batch_size, functools.partial(tite_actual_batch, run), progress)
    return finish_tite_actual(out)
