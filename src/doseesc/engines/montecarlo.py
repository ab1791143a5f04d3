"""Monte Carlo engine: all trials of a batch step together, cohort by cohort.

:func:`simulate` is the one entry of every Monte Carlo run: it checks the run once
(:func:`~doseesc.engines.run.check_simulation`) and picks the batch runner: plain (:func:`plain_batch`),
actual dose (:mod:`~doseesc.engines.actual`), calendar time laid over either, or time-to-event designs in
time (:mod:`~doseesc.engines.timed`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np

from ..designs.base import Design
from ..errors import DoseescError
from ..limits import BATCH_SIZE, MAX_TRIALS
from ..results import two_dlt_cohort
from ..rng import BLOCK_SIZE, Stream, patient_uniforms
from ..scenario import Scenario
from ..state import TrialState
from ..tiers import DoseLadder
from . import run as run_module
from .actual import PATIENT_RECORDS, actual_range, finish_actual, simulate_actual
from .chain import TWO_DLT_KEY, ChainFull, chain_for
from .run import (PATIENT_KEYS, Run, check_compatible, check_run, check_simulation, conclude_decided,
                  decide_distinct, in_batches, monte_carlo_result, run_result, until_precise)
from .timed import (TITE_ACTUAL_RECORDS, calendar_batch, calendar_extra, finish_tite_actual, simulate_tite_actual,
                    tite_actual_batch, tite_batch)

__all__ = ["simulate", "run_batch", "plain_batch", "check_compatible", "check_run", "monte_carlo_result"]


def run_batch(design: Design, true_tox: np.ndarray, u_tox: np.ndarray, u_eff: np.ndarray | None = None,
              eff_given: tuple[np.ndarray, np.ndarray] | None = None, records: bool = True) -> dict:
    """Simulate one batch of trials with latent uniforms ``u_tox`` ``(n_trials, max_n)``.

    Patient ``k`` of trial ``i`` has a DLT when ``u_tox[i, k] < true_tox[tier]``; with ``u_eff`` and
    ``eff_given`` = (P(response | DLT), P(response | no DLT)) per tier, a response when
    ``u_eff[i, k]`` is below the probability that matches the patient's DLT outcome.
    Returns per-trial arrays (``n``, ``y``, ``selected``, ``reason``) and
    per-patient arrays (``tier``, ``tox``, ``new_cohort``; tier -1 past the end).

    The batch walks the design's state graph (:mod:`~doseesc.engines.chain`): each distinct state is decided
    once, by this run or an earlier one of an equal design. Where the graph would grow too large (or with
    :data:`CHAIN` off) the trials step cohort by cohort below, and the design decides once per distinct trial
    state where that is cheaper (:func:`~doseesc.engines.run.decide_distinct`). Both give the same arrays.

    ``records`` False lets the graph walk leave the per-patient arrays out and give the per-trial flag they would
    feed (:data:`TWO_DLT_KEY`) instead; the cohort-by-cohort path gives the records either way.
    """
    n_trials = u_tox.shape[0]
    k, max_n = design.n_tiers, design.max_n
    if u_tox.shape[1] < max_n:
        raise ValueError(f"u_tox has {u_tox.shape[1]} patients per trial; the design needs {max_n}")
    if run_module.DISTINCT_STATES and CHAIN:
        chain = chain_for(design, u_eff is not None)
        if not chain.full:
            try:
                return chain.run(np.asarray(true_tox, dtype=float), u_tox, u_eff, eff_given, records=records)
            except ChainFull:   # the design's graph is too large: this batch and later ones cohort by cohort
                chain.full = True
    u_2d = np.ascontiguousarray(u_tox[:, :max_n])
    u_flat = u_2d.ravel()
    eff_on = u_eff is not None
    if eff_on:
        e_2d = np.ascontiguousarray(u_eff[:, :max_n])
        e_flat = e_2d.ravel()
        pe_t, pe_n = (np.asarray(a, float) for a in eff_given)
    pt_eff = np.zeros((n_trials, max_n), dtype=bool)
    state = TrialState.empty(n_trials, k, design.start, size=design.first_size)
    tier_dtype = np.int8 if k < 127 else np.int16
    pt_tier = np.full((n_trials, max_n), -1, dtype=tier_dtype)
    pt_tox = np.zeros((n_trials, max_n), dtype=bool)
    pt_new = np.zeros((n_trials, max_n), dtype=bool)
    total = np.zeros(n_trials, dtype=np.int32)
    selected = np.full(n_trials, -1, dtype=np.int32)
    reason = np.zeros(n_trials, dtype=np.int8)
    p = np.asarray(true_tox, dtype=float)
    width = min(design.max_size, max_n)
    cols = np.arange(width)
    pt_tier_flat, pt_tox_flat, pt_new_flat, pt_eff_flat = (a.ravel() for a in (pt_tier, pt_tox, pt_new, pt_eff))
    distinct = True        # look for distinct states until a cohort has too many (later ones have more)

    def responses(u: np.ndarray, dlt: np.ndarray, cur: np.ndarray):
        """Each patient's response from latent uniforms ``u`` (the probability matching the DLT outcome)."""
        return u < np.where(dlt, pe_t[cur][:, None], pe_n[cur][:, None])

    def close_cohort(act, cnt, n_dlt, resp, dlt, distinct: bool) -> bool:
        """Add the cohort's outcomes, decide (once per distinct state while that pays), conclude the trials that
        stop and move on; returns whether to keep looking for distinct states."""
        n_resp = None if resp is None else resp.sum(axis=1, dtype=np.int32)
        n_both = None if resp is None else (resp & dlt).sum(axis=1, dtype=np.int32)
        state.add_cohort(cnt, n_dlt, n_resp, n_both, rows=act)
        decided = decide_distinct(design, state, act, distinct)
        conclude_decided(design, decided, selected, reason)
        state.advance(decided.dec, design.cohort_size, rows=act)
        return distinct and not decided.crowded

    for _ in range(max_n + 1):
        act = np.flatnonzero(state.active)
        if act.size == 0:
            break
        cur = state.current[act]
        base = total[act]
        b0 = int(base[0])
        if b0 + width <= max_n and base.min() == base.max() and state.size[act].min() == width:
            # every trial's cohort fills the same patient slots b0..b0+width-1 (the usual case): slices
            rows = slice(None) if act.size == n_trials else act
            cells = (rows, slice(b0, b0 + width))
            dlt = u_2d[cells] < p[cur][:, None]
            resp = responses(e_2d[cells], dlt, cur) if eff_on else None
            if eff_on:
                pt_eff[cells] = resp
            pt_tier[cells] = cur[:, None]
            pt_tox[cells] = dlt
            pt_new[rows, b0] = True
            total[rows] = b0 + width
            distinct = close_cohort(act, np.full(act.size, width, dtype=np.int32), dlt.sum(axis=1, dtype=np.int32),
                                    resp, dlt, distinct)
            continue
        # patients j = 0..width-1 of this cohort: slot total + j, if within the cohort and max_n
        slots = base[:, None] + cols
        take = (cols < state.size[act][:, None]) & (slots < max_n)
        full = bool(take.all())
        if not full:
            np.minimum(slots, max_n - 1, out=slots)
        flat = slots
        flat += (act * max_n)[:, None]                # flat index of each patient slot
        dlt = u_flat[flat] < p[cur][:, None]
        if not full:
            dlt &= take
        cnt = np.full(act.size, width, dtype=np.int32) if full else take.sum(axis=1, dtype=np.int32)
        resp = None
        if eff_on:
            resp = responses(e_flat[flat], dlt, cur) & take
            if full:
                pt_eff_flat[flat] = resp
            else:
                pt_eff_flat[flat[take]] = resp[take]
        if full:
            pt_tier_flat[flat] = cur[:, None]
            pt_tox_flat[flat] = dlt
        else:
            pt_tier_flat[flat[take]] = np.broadcast_to(cur[:, None], take.shape)[take]
            pt_tox_flat[flat[take]] = dlt[take]
        first = take[:, 0]
        pt_new_flat[flat[first, 0] if not full else flat[:, 0]] = True
        total[act] = base + cnt
        distinct = close_cohort(act, cnt, dlt.sum(axis=1, dtype=np.int32), resp, dlt, distinct)
    else:  # pragma: no cover - guarded by max_n in Design.step
        raise RuntimeError(f"{design.label}: trials did not stop within max_n = {max_n} cohorts")
    return {"n": state.n, "y": state.y, "e": state.e, "ye": state.ye, "selected": selected, "reason": reason,
            "fired": state.fired, "tier": pt_tier, "tox": pt_tox, "eff": pt_eff, "new_cohort": pt_new}


#: Run complete-cohort designs as a walk on their state graph (:mod:`~doseesc.engines.chain`); False: cohort by
#: cohort below (tests compare the two; the results are identical).
CHAIN = True


def plain_batch(design: Design, scenario: Scenario, seq, start: int, stop: int, records: bool = True) -> dict:
    """:func:`run_batch` on trials ``start..stop-1`` of the run seeded by ``seq`` (their TOX, and EFF when the
    scenario has response, latent uniforms); ``records`` as there."""
    p = np.asarray(scenario.true_tox, dtype=float)
    major = run_module.DISTINCT_STATES and CHAIN     # the chain reads the uniforms patient by patient
    # run_batch reads the uniforms and keeps nothing of them: they can live in this thread's reused buffers
    u = patient_uniforms(seq, start, stop, design.max_n, Stream.TOX, patient_major=major, scratch=major)
    if scenario.true_eff is None:
        return run_batch(design, p, u, records=records)
    ue = patient_uniforms(seq, start, stop, design.max_n, Stream.EFF, patient_major=major, scratch=major)
    return run_batch(design, p, u, ue, scenario.response_given_tox(), records=records)


def simulate(design: Design, scenario: Scenario, n_trials: int | None = None, *, rng=None,
             target: float | None = None, ladder: DoseLadder | None = None, obd=None,
             batch_size: int = BATCH_SIZE, progress: Callable[[int, int], None] | None = None,
             dose_model=None, calendar=None, workers: int = 1, precision: float | None = None,
             keep_records: bool = True):
    """Simulate ``n_trials`` trials of ``design`` under ``scenario``.

    Parameters
    ----------
    n_trials
        Trials to simulate (default 10,000); with ``precision``, the most trials to simulate (default
        :data:`~doseesc.limits.MAX_TRIALS`).
    rng
        Integer seed, :class:`numpy.random.SeedSequence`, Generator or None
        (fresh entropy, recorded in the result's provenance).
    target
        Target DLT rate defining the true MTD; defaults to the scenario's
        ``target``, then the design's.
    batch_size
        Trials simulated at once (bounds memory). Results are bit-identical
        for any batch size: trial ``i`` always sees the same patients.
    progress
        Called as ``progress(done, n_trials)`` after each batch.
    dose_model
        A :class:`~doseesc.actual_dose.DoseModel` (with ``ladder``): each
        patient's actual dose, failed and withheld products, replacements.
    calendar
        A :class:`~doseesc.calendar.Calendar`: calendar time (per-trial
        ``duration_days``, ``time_to_decision_days``, ``wait_days`` and
        ``lost_waiting`` in ``extra``); time-to-event designs are simulated
        in time, deciding with the pending patients' partial follow-up.
    workers
        Processes to split the batches across (1: this process). Results are
        bit-identical for any number of workers: each batch draws from the
        random blocks of its own trials.
    precision
        Simulate until the largest Monte Carlo standard error of P(select)
        (over No dose and the tiers) is at or below ``precision``: the run
        stops at the first multiple of :data:`PRECISION_STEP` trials where it
        is (or at ``n_trials``), so the same seed and precision always give the
        same trials, and the result equals a plain run of that many trials.
        ``n_trials`` and ``provenance["precision"]`` of the result say how
        many trials were used and the standard error reached.
    keep_records
        Keep the per-patient records (``patients``: each trial's log in
        :meth:`~doseesc.results.OperatingCharacteristics.trials`, the actual
        doses of ``dose_summary``). False keeps per-trial summaries only:
        memory grows by about 15 bytes per trial (5 tiers) instead of a few
        per patient; every metric, including ``p_two_dlt_cohort``, is
        unchanged (the counts ``n``, ``y``, ``e`` are kept as 8-bit integers
        up to 127 patients, 16-bit above, and the selected tier as 8-bit).

    Returns
    -------
    OperatingCharacteristics
        With ``method == "monte carlo"`` and Monte Carlo standard errors.
    """
    check_workers(workers)
    if precision is not None:
        check_precision(precision)
    if n_trials is None:
        n_trials = 10_000 if precision is None else MAX_TRIALS
    run = check_simulation(design, scenario, n_trials, rng=rng, target=target, ladder=ladder, obd=obd,
                           batch_size=batch_size, dose_model=dose_model, calendar=calendar)
    t0 = time.perf_counter()
    kind = _kind(run)
    if workers == 1 and precision is None and keep_records:
        out, patients, extra = _RUNNERS[kind](run, progress)
        return run_result(run, out, patients, extra, time.perf_counter() - t0)
    batch = RangeBatch(run, kind, keep_records)
    reached = None
    if precision is None:
        out = in_batches(run.n_trials, run.batch_size, batch, progress, workers=workers)
    else:
        out, reached = until_precise(batch, run.n_trials, run.batch_size, float(precision), PRECISION_STEP,
                                     workers=workers, progress=progress)
        run = dataclasses.replace(run, n_trials=int(out["selected"].shape[0]))
    out, patients, extra = _finish(run, kind, out)
    two = out.pop(TWO_DLT_KEY, None)
    res = run_result(run, out, patients if keep_records else None, extra, time.perf_counter() - t0, two_dlt=two)
    if workers > 1:
        res.provenance["workers"] = int(workers)
    if not keep_records:
        res.provenance["keep_records"] = False
    if reached is not None:
        res.provenance["precision"] = {"target": float(precision), "reached": reached[0],
                                       "max_p_select_mcse": reached[1], "n_trials": run.n_trials,
                                       "step": PRECISION_STEP}
    return res


#: A precision-targeted run stops at a multiple of this many trials (a whole number of random blocks).
PRECISION_STEP = BLOCK_SIZE


def check_workers(workers) -> None:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 1 <= workers <= 256:
        raise DoseescError(f"workers = {workers!r} must be an integer from 1 to 256")


def check_precision(precision) -> None:
    if isinstance(precision, bool) or not isinstance(precision, (int, float, np.floating)) \
            or not math.isfinite(precision) or not 0.0005 <= precision < 0.5:
        raise DoseescError(f"precision = {precision!r} must be a Monte Carlo standard error from 0.0005 to "
                           "below 0.5 (e.g. 0.005)")


def _kind(run: Run) -> str:
    if run.dose_model is not None:
        if run.calendar is None:
            return "actual"
        return "tite_actual" if run.time_to_event else "actual_calendar"
    if run.calendar is not None:
        return "tite" if run.time_to_event else "plain_calendar"
    return "plain"


# -- the batch runners: each returns (per-trial arrays, per-patient arrays, extra per-trial metrics) ---------
def _plain(run: Run, progress) -> tuple[dict, dict, dict]:
    out = in_batches(run.n_trials, run.batch_size,
                     lambda start, stop: plain_batch(run.design, run.scenario, run.seq, start, stop), progress)
    return out, {key: out[key] for key in PATIENT_KEYS}, {}


def _actual(run: Run, progress) -> tuple[dict, dict, dict]:
    return simulate_actual(run, progress)


def _plain_calendar(run: Run, progress) -> tuple[dict, dict, dict]:
    """Designs that wait for complete cohorts: the untimed trials, with the calendar laid over them."""
    def batch(start: int, stop: int) -> dict:
        b = plain_batch(run.design, run.scenario, run.seq, start, stop)
        b.update(calendar_batch(run.calendar, run.design, b, run.seq, start, stop))
        return b

    out = in_batches(run.n_trials, run.batch_size, batch, progress)
    return out, {key: out[key] for key in PATIENT_KEYS + ("infusion_days",)}, calendar_extra(out)


def _tite(run: Run, progress) -> tuple[dict, dict, dict]:
    """Time-to-event designs, simulated in calendar time."""
    out = in_batches(run.n_trials, run.batch_size,
                     lambda start, stop: tite_batch(run.design, run.scenario, run.calendar, run.seq, start, stop),
                     progress)
    return out, {key: out[key] for key in PATIENT_KEYS + ("infusion_days",)}, calendar_extra(out)


def _actual_calendar(run: Run, progress) -> tuple[dict, dict, dict]:
    """The actual-dose trials, with the calendar laid over every enrolee."""
    out, patients, extra = simulate_actual(run, None)
    keys = ("status", "assigned", "cohort_start", "replacement")

    def batch(start: int, stop: int) -> dict:
        enrolees = {key: patients[key][start:stop] for key in keys}
        return calendar_batch(run.calendar, run.design, enrolees, run.seq, start, stop)

    cal = in_batches(run.n_trials, run.batch_size, batch, progress)
    extra.update(calendar_extra(cal))
    return out, {**patients, "infusion_days": cal["infusion_days"]}, extra


_RUNNERS = {"plain": _plain, "actual": _actual, "plain_calendar": _plain_calendar, "tite": _tite,
            "actual_calendar": _actual_calendar, "tite_actual": simulate_tite_actual}
#: Per-patient arrays of each kind of run (besides the records an actual-dose run keeps).
_CAL = "cal_"


# -- any range of trials, in a process or a worker: workers, precision and runs without records --------------
@dataclasses.dataclass(frozen=True)
class RangeBatch:
    """The batch function of a run on any trials ``start..stop-1`` (picklable, for the worker processes):
    the same numbers as the runners above (:data:`_RUNNERS`) give those trials. Without ``keep_records`` the
    per-patient arrays are dropped once the per-trial flag they feed (:data:`TWO_DLT_KEY`) is worked out."""

    run: Run
    kind: str
    keep_records: bool = True

    def __call__(self, start: int, stop: int) -> dict:
        run, kind = self.run, self.kind
        if kind in ("actual", "actual_calendar"):
            b = actual_range(run, start, stop)
            if kind == "actual_calendar":
                keys = ("status", "assigned", "cohort_start", "replacement")
                cal = calendar_batch(run.calendar, run.design, {key: b[key] for key in keys}, run.seq, start, stop)
                b.update({_CAL + key: v for key, v in cal.items()})
            records = PATIENT_RECORDS + ((_CAL + "infusion_days",) if kind == "actual_calendar" else ())
        elif kind == "tite_actual":
            b = tite_actual_batch(run, start, stop)
            records = TITE_ACTUAL_RECORDS
        elif kind == "tite":
            b = tite_batch(run.design, run.scenario, run.calendar, run.seq, start, stop)
            records = PATIENT_KEYS + ("infusion_days",)
        else:
            # a plain run without records needs none from the batch (the calendar reads them)
            b = plain_batch(run.design, run.scenario, run.seq, start, stop,
                            records=self.keep_records or kind == "plain_calendar")
            if kind == "plain_calendar":
                b.update(calendar_batch(run.calendar, run.design, b, run.seq, start, stop))
            records = PATIENT_KEYS + (("infusion_days",) if kind == "plain_calendar" else ())
        if self.keep_records:
            return b
        if TWO_DLT_KEY not in b:
            b[TWO_DLT_KEY] = two_dlt_cohort(b["tier"], b["tox"], b["new_cohort"]).astype(bool)
        for key in records + ("ye",) + (("e",) if run.scenario.true_eff is None else ()):
            b.pop(key, None)
        counts = _count_dtype(run.design.max_n)
        for key in ("n", "y", "e"):   # counts of at most max_n patients: 1 byte each up to 127, else 2
            if key in b and counts is not None:
                b[key] = b[key].astype(counts)
        if run.design.n_tiers < 127:  # the selected tier (-1 for no dose): 1 byte
            b["selected"] = b["selected"].astype(np.int8)
        return b


def _count_dtype(max_n: int):
    """The smallest signed integer type holding counts of at most ``max_n`` patients (None: keep the type)."""
    if max_n < 2 ** 7:
        return np.int8
    return np.int16 if max_n < 2 ** 15 else None


def _finish(run: Run, kind: str, out: dict) -> tuple[dict, dict, dict]:
    """The per-trial arrays, per-patient records and extra metrics of a run gathered by :class:`RangeBatch`
    (what the runners of :data:`_RUNNERS` return)."""
    if kind == "tite_actual":
        return finish_tite_actual(out)
    if kind in ("actual", "actual_calendar"):
        cal = {key[len(_CAL):]: out.pop(key) for key in list(out) if key.startswith(_CAL)}
        out, patients, extra = finish_actual(out)
        if kind == "actual_calendar":
            extra.update(calendar_extra(cal))
            if "infusion_days" in cal:
                patients["infusion_days"] = cal["infusion_days"]
        return out, patients, extra
    keys = PATIENT_KEYS + (() if kind == "plain" else ("infusion_days",))
    patients = {key: out[key] for key in keys if key in out}
    return out, patients, ({} if kind == "plain" else calendar_extra(out))
