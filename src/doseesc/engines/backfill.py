"""Backfill cohorts in calendar time (issue 19 item 2; rules in :mod:`doseesc.backfill` and
``docs/notes/backfill.md``).

A design that waits for complete cohorts is simulated here *in time*, cohort by cohort over all the trials of
a batch (no loop per trial or per patient; the loops run over cohorts and over backfill arrivals):

1. A cohort opens at the decision time (time 0 for the first; then the previous escalation cohort's
   completion plus ``review_days``). Its patients come from the queue (:class:`~doseesc.engines.timed._Clock`:
   manufacturing, staggering, drop-outs replaced, patients who leave after ``max_wait_days``), exactly as in
   :func:`~doseesc.engines.timed.calendar_batch`.
2. While the cohort is followed, each patient at the head of the queue before the next decision time is
   backfilled at once (at ``max(arrival, decision time)``) at the eligible tier the policy picks, while the
   trial has an eligible tier, backfill places (``cap``) and places in ``max_n`` beyond one cohort. A backfill
   patient who drops out before the infusion is not replaced. Patients who are not backfilled wait as today.
3. At the next decision the escalation cohort's outcomes are added to the state (:meth:`TrialState.add_cohort`)
   and so are those of the backfill patients whose observation window has ended by then (at their own tiers);
   the design decides (:meth:`Design.step`) on these combined counts.
4. A trial that stops (or whose design goes on with no place left in ``max_n``: then ``MAX_N``) selects on
   its complete data, every backfill patient included, when their windows have ended.

Per-patient outcomes follow the enrolment order: the k-th infused patient of trial i (escalation or
backfill) has a DLT when ``u_tox[i, k] < p[tier]`` (Stream.TOX) and a response from Stream.EFF, as in every
engine. With no backfill patient (``cap = 0``, or no eligible tier) a trial is therefore the untimed trial of
:func:`~doseesc.engines.montecarlo.run_batch` with the calendar of :func:`calendar_batch`, bit for bit.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .._lazy import lazy
from ..backfill import Backfill, BackfilledDesign, check_backfill_design, check_calendar, with_backfill
from ..errors import DesignError
from ..limits import BATCH_SIZE
from ..rng import Stream, patient_uniforms
from ..state import Rule, StopReason, TrialState, group_keys
from .run import (PATIENT_KEYS, Decided, _spread, check_simulation, conclude_decided, decide_distinct, in_batches,
                  run_result)
from .timed import _Clock, _enrol_cap, calendar_extra

pd = lazy("pandas")

__all__ = ["Backfill", "with_backfill", "simulate_backfill", "compare_backfill", "backfill_summary", "backfill_batch",
           "backfill_runner", "BACKFILL_METRICS"]

#: Per-trial backfill metrics in ``OperatingCharacteristics.extra`` (mean per trial in ``metrics()``).
BACKFILL_METRICS = {
    "n_backfilled": "mean backfill patients per trial (treated below the escalation's current tier)",
    "backfill_dlts": "mean DLTs per trial among backfill patients",
    "backfill_responses": "mean responses per trial among backfill patients",
}


#: With backfill, decide once per distinct state while they are at most this share of the trials.
_DISTINCT_BACKFILL = 0.9


def _per_tier(mask: np.ndarray, tier: np.ndarray, k: int) -> np.ndarray:
    """Counts per tier ``(rows, k)`` of the patients ``mask`` ``(rows, width)`` at tiers ``tier``."""
    rows = mask.shape[0]
    flat = (np.arange(rows)[:, None] * k + np.maximum(tier, 0))[mask]
    return np.bincount(flat, minlength=rows * k).reshape(rows, k)


class _BackfillBatch:
    """One batch of :func:`backfill_batch`."""

    def __init__(self, design, spec: Backfill, scenario, cal, seq, start: int, stop: int):
        self.design, self.spec, self.cal = design, spec, cal
        self.n = n = stop - start
        self.k = k = design.n_tiers
        self.max_n = w = design.max_n
        self.p = np.asarray(scenario.true_tox, float)
        self.u_tox = patient_uniforms(seq, start, stop, w, Stream.TOX)
        self.eff_on = scenario.true_eff is not None
        if self.eff_on:
            self.u_eff = patient_uniforms(seq, start, stop, w, Stream.EFF)
            self.pe_t, self.pe_n = (np.asarray(a, float) for a in scenario.response_given_tox())
        self.u_pick = patient_uniforms(seq, start, stop, w, Stream.BACKFILL) \
            if spec.on and spec.priority == "random" else None
        # enrolees: every infused patient, the replaced drop-outs and the backfill drop-outs (at most cap)
        self.clock = _Clock(cal, seq, start, stop, k, _enrol_cap(w, cal) + (spec.cap if cal.dropout > 0 else 0))
        self.obs = cal.observation_window(design.decides_on_response)
        self.obs_final = cal.observation_window(design.uses_efficacy)
        self.fol = cal.follow_window(design.uses_efficacy)
        self.state = TrialState.empty(n, k, design.start, size=design.first_size)
        dt = np.int8 if k < 127 else np.int16
        self.pt = {"tier": np.full((n, w), -1, dtype=dt), "tox": np.zeros((n, w), dtype=bool),
                   "eff": np.zeros((n, w), dtype=bool), "new": np.zeros((n, w), dtype=bool),
                   "inf": np.full((n, w), np.nan), "bf": np.zeros((n, w), dtype=bool),
                   "counted": np.zeros((n, w), dtype=bool)}
        self.total = np.zeros(n, dtype=np.int64)          # infused patients (escalation and backfill)
        self.n_bf = np.zeros(n, dtype=np.int64)           # backfill enrolees (drop-outs included)
        self.selected = np.full(n, -1, dtype=np.int32)
        self.reason = np.zeros(n, dtype=np.int8)
        self.comp = np.full(n, -np.inf)                   # completion of the current escalation cohort
        self.cohort = np.zeros((4, n), dtype=np.int32)    # the escalation cohort's patients, DLTs, responses, both
        self.cleared = np.zeros((n, k), dtype=bool)       # the escalation has escalated from the tier
        self.closed_from = np.full(n, k, dtype=np.int64)  # de-escalated from: this tier and those above closed
        self.threshold = spec.threshold(design)

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> dict:
        design, state, cal = self.design, self.state, self.cal
        distinct = True
        t_dec = np.zeros(self.n)
        for c in range(self.max_n + 1):
            act = np.flatnonzero(state.active)
            if act.size == 0:
                break
            if c > 0:
                t_dec[act] = self.comp[act] + cal.review_days
                coh = self.cohort[:, act]
                state.add_cohort(coh[0], coh[1], coh[2] if self.eff_on else None, coh[3] if self.eff_on else None,
                                 rows=act)
                self._count(act, t_dec[act])
                decided = self._decide(act, distinct)
                distinct = distinct and not decided.crowded
                dec = decided.dec
                if self.spec.on:    # the final choice is made at the end, on complete data (_finish)
                    self.reason[act[dec.stop]] = dec.reason[dec.stop]
                else:
                    conclude_decided(design, decided, self.selected, self.reason)
                old = state.current[act].astype(np.int64)
                go = ~dec.stop
                up = go & (dec.next > old)
                self.cleared[act[up], old[up]] = True
                down = go & (dec.next < old)
                self.closed_from[act[down]] = np.minimum(self.closed_from[act[down]], old[down])
                state.advance(dec, design.cohort_size, rows=act)
                full = go & (self.total[act] >= self.max_n)
                if full.any():            # the design goes on but max_n is taken (by backfill patients): stop
                    f = act[full]
                    state.active[f] = False
                    self.reason[f] = StopReason.MAX_N
                    state.fired[f] |= np.int16(Rule.MAX_N)
                act = np.flatnonzero(state.active)
                if act.size == 0:
                    break
            self._enrol_cohort(act, t_dec[act])
            if self.spec.on and c > 0:
                self._backfill(act, t_dec[act])
        return self._finish()

    def _decide(self, act: np.ndarray, distinct: bool) -> Decided:
        """:meth:`Design.step` on trials ``act``: as the untimed engine decides (:func:`decide_distinct`), and
        with backfill once per distinct state whenever they are fewer than :data:`_DISTINCT_BACKFILL` of the
        trials (backfill counts spread the states; a kernel's slow path, e.g. BOIN12 past its tables, then
        runs once per distinct state). The decisions are the same either way (a kernel is a function of the
        state)."""
        state = self.state
        if self.spec.on and act.size > 1:
            key = state.key()
            if key is not None:
                first, inverse = group_keys(key[act])
                if first.size <= _DISTINCT_BACKFILL * act.size:
                    rep = state.take(act[first])
                    ddec = self.design.step(rep)
                    return Decided(act, _spread(ddec, inverse), rep, ddec, inverse)
        return decide_distinct(self.design, state, act, distinct)

    def _count(self, rows: np.ndarray, t: np.ndarray) -> None:
        """Add to the state the backfill patients of trials ``rows`` whose observation window has ended by
        ``t`` (per row) and who are not counted yet."""
        pt = self.pt
        new = pt["bf"][rows] & ~pt["counted"][rows] & (pt["inf"][rows] + self.obs <= t[:, None])
        if not new.any():
            return
        tier = pt["tier"][rows]
        st = self.state
        st.n[rows] += _per_tier(new, tier, self.k).astype(np.int32)
        st.y[rows] += _per_tier(new & pt["tox"][rows], tier, self.k).astype(np.int32)
        if self.eff_on:
            eff = pt["eff"][rows]
            st.e[rows] += _per_tier(new & eff, tier, self.k).astype(np.int32)
            st.ye[rows] += _per_tier(new & eff & pt["tox"][rows], tier, self.k).astype(np.int32)
        pt["counted"][rows] |= new

    def _patient(self, rows: np.ndarray, tier: np.ndarray, inf: np.ndarray, backfill: bool, first=None):
        """Record one infused patient per row (the next column) at ``tier``; returns (DLT, response)."""
        pt, col = self.pt, self.total[rows]
        dlt = self.u_tox[rows, col] < self.p[tier]
        if self.eff_on:
            resp = self.u_eff[rows, col] < np.where(dlt, self.pe_t[tier], self.pe_n[tier])
        else:
            resp = np.zeros(rows.size, dtype=bool)
        pt["tier"][rows, col] = tier
        pt["tox"][rows, col] = dlt
        pt["eff"][rows, col] = resp
        pt["inf"][rows, col] = inf
        pt["bf"][rows, col] = backfill
        pt["new"][rows, col] = True if backfill else first
        self.total[rows] += 1
        return dlt, resp

    def _enrol_cohort(self, act: np.ndarray, t_open: np.ndarray) -> None:
        """Enrol the escalation cohort of trials ``act`` at their current tier, from the decision time on."""
        st = self.state
        size = np.minimum(st.size[act], self.max_n - self.total[act])
        self.cohort[:, act] = 0
        self.comp[act] = -np.inf
        for j in range(int(size.max(initial=0))):
            sel = j < size
            rows = act[sel]
            tier = st.current[rows].astype(np.int64)
            _, inf = self.clock.enrol(rows, t_open[sel], tier)
            dlt, resp = self._patient(rows, tier, inf, False, first=j == 0)
            coh = self.cohort
            coh[0, rows] += 1
            coh[1, rows] += dlt
            coh[2, rows] += resp
            coh[3, rows] += resp & dlt
            self.comp[rows] = np.maximum(self.comp[rows], inf + self.obs)

    def _complete(self, rows: np.ndarray, t: np.ndarray, window: float, what: str) -> tuple:
        """Per tier ``(rows, k)``: patients of trials ``rows`` whose ``window`` has ended by ``t``, and those of
        them with the outcome ``what``."""
        pt = self.pt
        tier = pt["tier"][rows]
        done = (tier >= 0) & (pt["inf"][rows] + window <= t[:, None])
        return _per_tier(done, tier, self.k), _per_tier(done & pt[what][rows], tier, self.k)

    def _toxic_from(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per row, the lowest tier whose complete data at ``t`` (patients whose DLT window has ended) show an
        observed DLT rate at or above the threshold (``n_tiers`` if none): it and every tier above are closed
        to backfill at ``t``."""
        n, y = self._complete(rows, t, self.cal.dlt_window_days, "tox")
        toxic = (n > 0) & (y >= self.threshold * n - 1e-12)
        return np.where(toxic.any(axis=1), toxic.argmax(axis=1), self.k)

    def _backfill(self, act: np.ndarray, t_dec: np.ndarray) -> None:
        """Backfill the trials ``act`` while their escalation cohort is followed (until the next decision)."""
        spec, cal, clock, st, k = self.spec, self.cal, self.clock, self.state, self.k
        t_next = self.comp[act] + cal.review_days
        tiers = np.arange(k)[None, :]
        open_ = self.cleared[act] & (tiers < st.current[act][:, None])
        if spec.min_responses:
            _, r = self._complete(act, t_dec, cal.eff_window, "eff")
            open_ &= r >= spec.min_responses
        reserve = self.max_n - self.design.cohort_size
        keep = open_.any(axis=1)
        pos = np.flatnonzero(keep)               # indices into act
        for _ in range(self.max_n + spec.cap + 1):
            rows = act[pos]
            ok = (self.n_bf[rows] < spec.cap) & (self.total[rows] < reserve)
            pos, rows = pos[ok], rows[ok]
            if pos.size == 0:
                return
            # the head of the queue (patients who waited past max_wait_days by the decision have left)
            _, t_bf = clock.next_arrival(rows, t_dec[pos])
            ok = t_bf < t_next[pos]
            pos, rows, t_bf = pos[ok], rows[ok], t_bf[ok]
            if pos.size == 0:
                return
            below = np.minimum(self.closed_from[rows], self._toxic_from(rows, t_bf))
            elig = open_[pos] & (tiers < below[:, None])
            if spec.tier_cap is not None:
                tier_pt = self.pt["tier"][rows]
                elig &= _per_tier(tier_pt >= 0, tier_pt, k) < spec.tier_cap
            some = elig.any(axis=1)
            pos, rows, t_bf, elig = pos[some], rows[some], t_bf[some], elig[some]
            if pos.size == 0:
                return
            tier = self._pick(rows, elig)
            _, inf = clock.enrol(rows, t_bf, tier, replace=False)
            self.n_bf[rows] += 1
            given = ~np.isnan(inf)
            if given.any():
                self._patient(rows[given], tier[given], inf[given], True)
        raise DesignError("backfill: more arrivals than places in one window")  # pragma: no cover

    def _pick(self, rows: np.ndarray, elig: np.ndarray) -> np.ndarray:
        """The tier each row's backfill patient is given among the eligible tiers ``elig``."""
        k = self.k
        if self.spec.priority == "highest":
            return (k - 1 - elig[:, ::-1].argmax(axis=1)).astype(np.int64)
        if self.spec.priority == "lowest":
            return elig.argmax(axis=1).astype(np.int64)
        u = self.u_pick[rows, self.total[rows]]
        count = elig.sum(axis=1)
        which = np.minimum((u * count).astype(np.int64), count - 1)      # the which-th eligible tier
        rank = np.cumsum(elig, axis=1) - 1
        return np.argmax(elig & (rank == which[:, None]), axis=1).astype(np.int64)

    def _finish(self) -> dict:
        pt, st = self.pt, self.state
        rows = np.arange(self.n)
        self._count(rows, np.full(self.n, np.inf))          # every backfill patient, for the final choice
        if self.spec.on:   # the final choice on complete data (backfill patients pending at the stop included)
            self.selected[:] = self.design.conclude(st, self.reason)
        inf = pt["inf"]
        given = pt["tier"] >= 0
        data = np.where(given, inf + self.obs_final, -np.inf).max(axis=1)
        comp = self.comp
        decision = np.maximum(comp, data)
        end = np.where(given, inf + self.fol, -np.inf).max(axis=1)
        self.clock.settle(comp.copy())
        bf = pt["bf"] & given
        return {"n": st.n, "y": st.y, "e": st.e, "ye": st.ye, "selected": self.selected, "reason": self.reason,
                "fired": st.fired, "tier": pt["tier"], "tox": pt["tox"], "eff": pt["eff"], "new_cohort": pt["new"],
                "backfill": bf, "duration_days": end, "time_to_decision_days": decision,
                "wait_days": self.clock.wait, "lost_waiting": self.clock.lost.astype(float),
                "n_screened": self.clock.screened.astype(float), "infusion_days": inf,
                "n_backfilled": bf.sum(axis=1).astype(float),
                "backfill_dlts": (bf & pt["tox"]).sum(axis=1).astype(float),
                "backfill_responses": (bf & pt["eff"]).sum(axis=1).astype(float)}


def backfill_batch(design, spec: Backfill, scenario, cal, seq, start: int, stop: int) -> dict:
    """Trials ``start..stop-1`` of ``design`` with the backfill policy ``spec`` under the calendar ``cal``
    (the module docstring gives the time line)."""
    return _BackfillBatch(design, spec, scenario, cal, seq, start, stop).run()


def simulate_backfill(design, scenario, n_trials: int = 10_000, *, backfill: Backfill | None = None, calendar=None,
                      rng=None, target=None, ladder=None, obd=None, batch_size: int = BATCH_SIZE, progress=None):
    """Simulate ``design`` (a :class:`~doseesc.backfill.BackfilledDesign` from
    :func:`~doseesc.backfill.with_backfill`, or a design with ``backfill=``) under ``scenario`` in calendar
    time with backfill cohorts. Returns :class:`~doseesc.results.OperatingCharacteristics` whose ``extra``
    has the calendar metrics and :data:`BACKFILL_METRICS`, and whose ``patients`` mark the backfill patients
    (``patients["backfill"]``; per tier: :func:`backfill_summary`). Backfill needs ``calendar``."""
    if isinstance(design, BackfilledDesign):
        if backfill is not None:
            raise DesignError("simulate_backfill: the design already carries a backfill policy")
        design, backfill = design.design, design.backfill
    if backfill is None:
        raise DesignError("simulate_backfill: give a backfill policy (with_backfill(design, cap=...))")
    if not isinstance(backfill, Backfill):
        backfill = Backfill.from_dict(backfill)
    check_calendar(calendar, "simulate_backfill")
    check_backfill_design(design)
    if backfill.min_responses and scenario.true_eff is None:
        raise DesignError(f"backfill min_responses = {backfill.min_responses} needs response probabilities "
                          f"(true_eff) in scenario {scenario.name!r}")
    run = check_simulation(design, scenario, n_trials, rng=rng, target=target, ladder=ladder, obd=obd,
                           batch_size=batch_size, calendar=calendar)
    t0 = time.perf_counter()
    out, patients, extra = backfill_runner(run, backfill, progress)
    res = run_result(run, out, patients, extra, time.perf_counter() - t0)
    res.provenance["backfill"] = backfill.to_dict()
    res.provenance["backfill_text"] = backfill.describe()
    return res


def backfill_runner(run, backfill: Backfill, progress=None) -> tuple[dict, dict, dict]:
    """The checked run ``run`` (:class:`~doseesc.engines.run.Run`, with a calendar) with the backfill policy
    ``backfill``, in batches of :func:`backfill_batch`: ``(per-trial arrays, per-patient records, extra
    metrics)`` as the runners of :func:`~doseesc.simulate` return them."""
    out = in_batches(run.n_trials, run.batch_size,
                     lambda a, b: backfill_batch(run.design, backfill, run.scenario, run.calendar, run.seq, a, b),
                     progress)
    patients = {key: out[key] for key in PATIENT_KEYS + ("infusion_days", "backfill")}
    extra = calendar_extra(out)
    extra.update({key: (out[key], text) for key, text in BACKFILL_METRICS.items()})
    return out, patients, extra


def backfill_summary(oc) -> pd.DataFrame:
    """Per tier: mean backfill patients, DLTs and responses per trial, and the share of the tier's patients who
    were backfilled (from the per-patient records of :func:`simulate_backfill`)."""
    pt = oc.patients
    if pt is None or "backfill" not in pt:
        raise DesignError("backfill_summary: the result has no backfill records (run simulate_backfill)")
    tier, bf = np.asarray(pt["tier"]), np.asarray(pt["backfill"], dtype=bool)
    k = oc.n.shape[1]
    w = np.asarray(oc.weight, float)
    rows = []
    for j in range(k):
        at = (tier == j) & bf
        rows.append({"tier": j + 1, "mean_backfilled": float(w @ at.sum(axis=1)),
                     "mean_backfill_dlts": float(w @ (at & pt["tox"]).sum(axis=1)),
                     "mean_backfill_responses": float(w @ (at & pt["eff"]).sum(axis=1)),
                     "mean_n": float(w @ oc.n[:, j])})
    df = pd.DataFrame(rows)
    df["share_backfilled"] = df["mean_backfilled"] / df["mean_n"].where(df["mean_n"] > 0, np.nan)
    return df


@dataclasses.dataclass(frozen=True)
class BackfillComparison:
    """Paired comparison of the same trials (same seed: same patients) with and without backfill."""

    with_backfill: object
    without: object
    table: pd.DataFrame

    def __repr__(self) -> str:
        return f"BackfillComparison\n{self.table.to_string(index=False)}"


def _correct(oc) -> np.ndarray:
    """1.0 per trial that selected the true OBD (OBD designs) or the true MTD, else 0.0."""
    best = oc.true_obd if oc.design.question == "OBD" else oc.true_mtd
    best = -1 if best is None else best
    return (np.asarray(oc.selected) == best).astype(float)


def compare_backfill(design, scenario, n_trials: int = 10_000, *, backfill: Backfill | None = None, calendar=None,
                     rng=None, **kw) -> BackfillComparison:
    """Run ``design`` with and without its backfill policy on the same trials (``rng`` must be given, so both
    runs see the same patients) and compare them pairwise: P(select the true OBD, or MTD for an MTD design),
    mean duration and time to decision, mean patients, with the paired difference and its Monte Carlo SE."""
    if rng is None:
        raise DesignError("compare_backfill: give rng (a seed), so that both runs see the same patients")
    if isinstance(design, BackfilledDesign):
        design, backfill = design.design, design.backfill
    if backfill is None:
        raise DesignError("compare_backfill: give a backfill policy")
    on = simulate_backfill(design, scenario, n_trials, backfill=backfill, calendar=calendar, rng=rng, **kw)
    off = simulate_backfill(design, scenario, n_trials, backfill=Backfill(cap=0), calendar=calendar, rng=rng, **kw)
    n = on.selected.shape[0]
    what = "P(select true OBD)" if design.question == "OBD" else "P(select true MTD)"
    pairs = {what: (_correct(on), _correct(off)),
             "mean duration (days)": (on.extra["duration_days"][0], off.extra["duration_days"][0]),
             "mean time to decision (days)": (on.extra["time_to_decision_days"][0],
                                              off.extra["time_to_decision_days"][0]),
             "mean patients": (on.n.sum(axis=1).astype(float), off.n.sum(axis=1).astype(float)),
             "mean backfill patients": (on.extra["n_backfilled"][0], off.extra["n_backfilled"][0])}
    rows = []
    for name, (a, b) in pairs.items():
        a, b = np.asarray(a, float), np.asarray(b, float)
        d = a - b
        rows.append({"metric": name, "with_backfill": a.mean(), "without": b.mean(), "difference": d.mean(),
                     "difference_mcse": d.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan})
    return BackfillComparison(on, off, pd.DataFrame(rows))
