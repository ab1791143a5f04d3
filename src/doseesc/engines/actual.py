"""The actual-dose Monte Carlo engine: each enrolee's actual dose, failed and withheld products, replacements.

The model itself (:class:`~doseesc.actual_dose.DoseModel`) and the truth on the actual dose live in
:mod:`doseesc.actual_dose`; this module simulates trials under it, batch by batch, recording every enrolee.
"""

from __future__ import annotations

import math

import numpy as np

from ..actual_dose import DoseModel, PatientStatus
from ..designs.base import Design
from ..errors import DesignError
from ..rng import BLOCK_SIZE, Stream, block_generator
from ..scenario import Scenario, plackett_joint
from ..state import StopReason, TrialState
from ..tiers import DoseLadder
from .run import Run, apply_decisions, in_batches


def _response_probability(scenario: Scenario, ptox: np.ndarray, peff: np.ndarray, dlt: np.ndarray) -> np.ndarray:
    """P(response | the patient's DLT outcome) from per-patient marginals and the scenario's odds ratio."""
    shape = dlt.shape
    pt = np.broadcast_to(ptox, shape).ravel()
    jt = plackett_joint(pt, np.broadcast_to(peff, shape).ravel(), scenario.association)
    with np.errstate(invalid="ignore", divide="ignore"):
        given_t = np.where(pt > 0, jt[:, 3] / np.where(pt > 0, pt, 1), jt[:, 2] + jt[:, 3])
        given_n = np.where(pt < 1, jt[:, 2] / np.where(pt < 1, 1 - pt, 1), jt[:, 2] + jt[:, 3])
    return np.clip(np.where(dlt.ravel(), given_t, given_n), 0, 1).reshape(shape)


# -- the actual-dose model ------------------------------------------------------------------------
class _LazyUniforms:
    """Per-enrolee latent uniforms of one batch, filled as trials enrol more patients.

    Each stream is stored as its random blocks (:data:`~doseesc.rng.BLOCK_SIZE`
    trials each) in the generator's own order, shape ``(blocks, cap,
    BLOCK_SIZE)``: row ``j`` of a block is enrolee ``j`` of its trials, so
    filling more enrolees continues each block's generator where it stopped,
    straight into the array (no copy, no jump). Enrolee ``j`` of a trial gets
    the numbers of :func:`~doseesc.rng.patient_uniforms` whatever the number
    of enrolees filled. :meth:`index` gives the flat positions to read.
    """

    def __init__(self, seq, start: int, stop: int, streams: dict, initial: int, cap: int):
        first, last = start // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE
        self.cap, self.rows = cap, 0
        self.u = {key: np.empty((last - first + 1, cap, BLOCK_SIZE)) for key in streams}
        self.gens = {key: [block_generator(seq, b, s) for b in range(first, last + 1)]
                     for key, s in streams.items()}
        g = np.arange(start, stop)
        self.base = (g // BLOCK_SIZE - first) * (cap * BLOCK_SIZE) + g % BLOCK_SIZE
        self.ensure(initial)

    def ensure(self, m: int) -> None:
        if m <= self.rows:
            return
        new = min(self.cap, max(m, self.rows + max(6, self.rows // 2)))
        for key, gens in self.gens.items():
            for b, gen in enumerate(gens):
                gen.random(out=self.u[key][b, self.rows:new])
        self.rows = new

    #: distance between the flat positions of consecutive enrolees of a trial
    step = BLOCK_SIZE

    def index(self, trials: np.ndarray, enrolee: np.ndarray) -> np.ndarray:
        """Flat positions (for ``np.take``) of enrolee ``enrolee`` of trial ``trials`` (broadcast)."""
        return self.base[trials] + enrolee * BLOCK_SIZE

    def __contains__(self, key) -> bool:
        return key in self.u

    def __getitem__(self, key) -> np.ndarray:
        return self.u[key]


def _batch_actual(design: Design, scenario: Scenario, ladder: DoseLadder, model, u: _LazyUniforms,
                  n_trials: int, cap: int, rec: dict, offset: int) -> dict:
    """Simulate one batch with the actual-dose and manufacturing model (:mod:`doseesc.actual_dose`).

    ``u`` maps stream names to per-enrolee latent uniforms (read at
    ``u.index(trial, enrolee)``; :class:`_LazyUniforms`), for up to ``cap``
    enrolees (the enrolment cap). The batch holds the run's trials ``offset``
    onwards; their per-enrolee records go straight into the run's record
    buffers ``rec`` (:func:`_records`). Enrolee ``j`` of trial ``i`` has a DLT
    when its ``"tox"`` uniform is below their risk: the scenario's curve at their
    actual dose, or the per-tier truth of the tier they were assigned. A
    cohort enrols until it has its evaluable patients (replacing those the
    policies replace), then the design decides on the evaluable patients.

    Speed: each round, one pass examines the next patients of every active
    trial (a few more than its cohort needs, so that a replacement rarely
    needs another pass); the few trials still short enrol again at once with
    a wide look-ahead. The body weight is computed only for the patients the
    flat cap may reach (:meth:`DoseModel.cap_screen`).
    """
    _check_patient_doses(design, ladder)
    m = _Model(design, scenario, ladder, model, "eff" in u)
    return _ActualBatch(design, m, u, n_trials, cap, rec, offset).run()


def _check_patient_doses(design: Design, ladder: DoseLadder) -> None:
    """A design fitted on each patient's dose (``uses_patient_doses``: BLRM) gets the doses on the ladder's scale:
    refuse one whose own ``doses`` are on another."""
    if not getattr(design, "uses_patient_doses", False):
        return
    own = np.asarray(getattr(design, "doses"), dtype=float)
    lad = np.asarray(ladder.doses, dtype=float)
    if own.shape != lad.shape or not np.allclose(own, lad, rtol=1e-9, atol=0.0):
        raise DesignError(f"{design.label}: doses = {[float(v) for v in own]} differ from the dose ladder's "
                          f"{[float(v) for v in lad]}: under the actual-dose model each patient's actual dose (on "
                          "the ladder's scale) enters the model, so the design's doses must be the ladder's")


class _Model:
    """What one actual-dose run needs of the model, the ladder and the scenario, worked out once."""

    def __init__(self, design: Design, scenario: Scenario, ladder: DoseLadder, model, eff_on: bool):
        self.model = model
        self.tol = tol = ladder.tolerance or 0.0
        self.doses = doses = np.asarray(ladder.doses, dtype=float)
        self.lower = doses * (1 - tol) * (1 - 1e-9)
        self.p_tier = np.asarray(scenario.true_tox, dtype=float)
        self.curve = scenario.tox_curve
        self.scenario = scenario
        self.eff_on = eff_on
        if eff_on and self.curve is None:
            self.pe_t_tier, self.pe_n_tier = scenario.response_given_tox()
        self.policy, self.lose = model.below_band, model.on_failure == "lost"
        self.can_fail = model.failure > 0
        self.capping = model.cap_total is not None
        self.can_below = model.shortfall > 0 or self.capping
        self.band = self.policy == "band" and self.can_below
        self.replaces = self.can_fail or (self.can_below and self.policy != "nominal")
        # look-ahead: extra enrolees examined per round so that a cohort rarely needs another round for
        # its replacements; wider arrays cost every patient, so it grows with the chance of a replacement
        p_repl = model.failure + (model.shortfall if self.policy != "nominal" else 0.0)
        self.look = 0 if not self.replaces else int(min(3, max(1, math.ceil(2 * design.max_size * p_repl))))
        self.split = self.can_fail or self.can_below   # enrolees may be lost, not evaluable or counted elsewhere
        if self.capping:
            self.w_edges, self.w_thr = model.cap_screen(doses, 1 + tol)
            self.tier_binds = (self.w_thr < 2).any(axis=0)

    def dose(self, u, cur: np.ndarray, cell: np.ndarray, width: int):
        """Whether each examined enrolee's product failed (None when none can), and their actual dose."""
        failed = None
        if "product" in u:
            failed, factor = self.model.product(np.take(u["product"], cell), self.tol)
            dose = factor
            dose *= self.doses[cur]
        else:
            dose = np.repeat(self.doses[cur][None, :], width, axis=0)
        if self.capping:
            # the weight matters only where the cap may bind: heavy patients at high tiers
            br = np.flatnonzero(self.tier_binds[cur])
            if br.size:
                uw = np.take(u["weight"], cell[:, br])
                grp = np.searchsorted(self.w_edges[1:-1], uw, side="right")
                wi, bi = np.nonzero(uw > self.w_thr[grp, cur[br]])
                if wi.size:
                    at = (wi, br[bi])
                    dose[at] = np.minimum(dose[at], self.model.cap_total / self.model.weight(uw[wi, bi], grp[wi, bi]))
        return failed, dose

    def fates(self, take, failed, dose, cur, need_r, width: int):
        """Which examined enrolees are enrolled, infused and evaluable (and at which tier they count), under
        the protocol's policies: ``(take, infused, evaluable, lost_kept, below, counted)``."""
        lost_kept = below = counted = None
        if not self.split:
            return take, take, take, lost_kept, below, counted
        policy = self.policy
        if self.can_below:
            below = dose < self.lower[cur]     # (a failed product's dose is meaningless)
        infused = take & ~failed if self.can_fail else take
        if policy == "nominal" or not self.can_below:
            evaluable = infused
        elif policy == "band":
            alt = np.searchsorted(self.lower, dose, side="right") - 1   # highest tier with lower limit <= dose
            counted = np.where(below, alt, cur)
            evaluable = infused & (counted >= 0)
        elif policy == "not_evaluable":
            evaluable = infused & ~below
        else:  # do_not_infuse
            infused = infused & ~below
            evaluable = infused
        if self.lose and self.can_fail:
            lost_kept = failed & take
        if self.look:
            # enrol up to the patient who completes the cohort; those after are not enrolled
            fill = evaluable if lost_kept is None else evaluable | lost_kept
            seen = np.zeros(need_r.size, dtype=np.int32)
            for w in range(width):
                take[w] &= seen < need_r
                seen += fill[w]
            infused &= take
            evaluable &= take
            if lost_kept is not None:
                lost_kept &= take
        return take, infused, evaluable, lost_kept, below, counted

    def outcomes(self, u, dose, cur, cell, infused):
        """DLT (and response, with efficacy) of each examined enrolee at their actual dose."""
        _, dlt, _, resp = self.risks(u, dose, cur, cell, infused)
        return dlt, resp

    def risks(self, u, dose, cur, cell, infused):
        """:meth:`outcomes` with the probabilities they were drawn from: ``(ptox, dlt, pe, resp)``, ``ptox``
        the enrolee's P(DLT) (the curve at the actual dose, or the assigned tier's truth) and ``pe`` their
        P(response) given their DLT outcome (None without efficacy). The timed engine draws the event times
        within the window from them (:meth:`~doseesc.calendar.Calendar.event_time`)."""
        ptox = self.curve(dose) if self.curve is not None else self.p_tier[cur]
        dlt = (np.take(u["tox"], cell) < ptox) & infused
        resp = pe_use = None
        if self.eff_on:
            if self.curve is not None:
                pe_use = _response_probability(self.scenario, ptox, self.scenario.eff_curve(dose), dlt)
            else:
                pe_use = np.where(dlt, self.pe_t_tier[cur], self.pe_n_tier[cur])
            resp = (np.take(u["eff"], cell) < pe_use) & infused
        return ptox, dlt, pe_use, resp


class _ActualBatch:
    """One batch of the actual-dose engine: its trials' state, enrolment and records (:func:`_batch_actual`).

    Each round, every active trial enrols its next cohort: the patients it needs and a few more
    (look-ahead), enrolling up to the patient who completes the cohort. Trials whose cohort is still
    short (patients replaced) enrol again at once, with a wide look-ahead: they are few, so a wide
    window is cheap and a third pass is rare. Then the design decides on every complete cohort.
    Arrays of a pass are (enrolee within the pass, trial): sums over a trial's enrolees run
    across whole rows.
    """

    def __init__(self, design: Design, m: _Model, u: _LazyUniforms, n_trials: int, cap: int, rec: dict,
                 offset: int):
        self.design, self.m, self.u, self.n_trials, self.cap, self.rec = design, m, u, n_trials, cap, rec
        self.state = TrialState.empty(n_trials, design.n_tiers, design.start)
        self.trash = rec["dose"].size - 1          # the spare element of every record buffer
        self.base = offset * cap                   # where the batch's records start
        self.enrolled = np.zeros(n_trials, dtype=np.int32)
        self.n_eval = np.zeros(n_trials, dtype=np.int32)          # evaluable patients so far
        self.n_out = np.zeros(n_trials, dtype=np.int32)           # infused below their tier's lower limit
        self.selected = np.full(n_trials, -1, dtype=np.int32)
        self.reason = np.zeros(n_trials, dtype=np.int8)
        self.fired = np.zeros(n_trials, dtype=np.int16)
        self.size = np.full(n_trials, design.first_size, dtype=np.int32)
        self.need = np.zeros(n_trials, dtype=np.int32)      # evaluable patients the current cohort still needs
        self.coh_n = np.zeros(n_trials, dtype=np.int32)     # evaluable patients and DLTs of the current cohort
        self.coh_y = np.zeros(n_trials, dtype=np.int32)
        self.logged = np.zeros(n_trials, dtype=bool)        # the cohort's first evaluable patient is logged
        if getattr(design, "uses_patient_doses", False):
            # the design fits each evaluable patient's own dose (BLRM): their actual dose and DLT, by enrolee
            self.state.pt_dose = np.full((n_trials, cap), np.nan)
            self.state.pt_dlt = np.zeros((n_trials, cap), dtype=bool)

    def view(self, key: str) -> np.ndarray:
        return self.rec[key][self.base:self.base + self.n_trials * self.cap].reshape(self.n_trials, self.cap)

    def run(self) -> dict:
        for _ in range(self.cap + 1):
            act = np.flatnonzero(self.state.active)
            if act.size == 0:
                break
            rows, need_r = self._open_cohorts(act)
            fresh = True
            while rows.size:
                rows, need_r = self._enrol_pass(rows, need_r, fresh)
                fresh = False
            self._stop_capped(act)
            self._decide(act)
        else:  # pragma: no cover - every round enrols a patient in each active trial, up to the cap
            raise RuntimeError(f"{self.design.label}: trials did not stop within {self.cap} enrolments")
        return self._finish()

    def _open_cohorts(self, act: np.ndarray):
        """Start the next cohort of the active trials ``act``: the trials that can still enrol, and the
        evaluable patients each needs."""
        cap = self.cap
        self.need[act] = np.minimum(self.size[act], self.design.max_n - self.n_eval[act])
        self.coh_n[act] = 0
        self.coh_y[act] = 0
        self.logged[act] = False
        rows = act[self.enrolled[act] < cap]
        self.rec["cohort_start"][rows * cap + (self.base + self.enrolled[rows])] = True
        return rows, self.need[rows]

    def _cells(self, rows, need_r, fresh: bool):
        """The enrolees one pass examines: ``(take, j, cell, flat)``, (enrolee within the pass, trial) arrays
        of who is examined, their number within the pass, where their latent numbers are and their record."""
        u, cap, base = self.u, self.cap, self.base
        room = cap - self.enrolled[rows]
        # enrolees examined: those needed, a few more (look-ahead), and never past the enrolment cap
        ahead = self.m.look if fresh else self.m.look + 2 * self.design.max_size
        lim = np.minimum(need_r + ahead, room)
        width = int(lim.max())
        j = np.arange(width)[:, None]
        take = j < lim
        start = self.enrolled[rows]
        if width > int(room.min()):   # near the enrolment cap: enrolees past it are not read
            slot = np.minimum(start + j, cap - 1)        # (width, trials): enrolee number
            u.ensure(int(slot.max()) + 1)
            cell = u.index(rows, slot)                   # where each enrolee's latent numbers are
            flat = (rows * cap + base) + slot            # index of each enrolee's record
        else:
            u.ensure(int(start.max()) + width)
            cell = u.index(rows, start) + j * u.step
            flat = (rows * cap + base + start) + j
        return take, j, cell, flat

    def _enrol_pass(self, rows, need_r, fresh: bool):
        """Examine the next enrolees of trials ``rows``, enrol those the cohort needs, record and count them;
        returns the trials whose cohort is still short and what each still needs."""
        m = self.m
        cur = self.state.current[rows]
        take, j, cell, flat = self._cells(rows, need_r, fresh)
        width = take.shape[0]
        failed, dose = m.dose(self.u, cur, cell, width)
        take, infused, evaluable, lost_kept, below, counted = m.fates(take, failed, dose, cur, need_r, width)
        dlt, resp = m.outcomes(self.u, dose, cur, cell, infused)
        self._record(rows, need_r, fresh, take, j, flat, cur, dose, dlt, resp, infused, evaluable, lost_kept,
                     below, counted)
        ev_n = self._count(rows, cur, dlt, resp, evaluable, counted)
        if self.state.pt_dose is not None:
            w_idx, r_idx = np.nonzero(evaluable)
            at = (rows[r_idx], flat[w_idx, r_idx] - (self.base + rows[r_idx] * self.cap))   # (trial, enrolee)
            self.state.pt_dose[at] = dose[w_idx, r_idx]
            self.state.pt_dlt[at] = dlt[w_idx, r_idx]
        self.enrolled[rows] += take.sum(axis=0, dtype=np.int32)
        need_r -= ev_n if lost_kept is None else ev_n + lost_kept.sum(axis=0, dtype=np.int32)
        self.need[rows] = need_r
        more = (need_r > 0) & (self.enrolled[rows] < self.cap)
        return rows[more], need_r[more]

    def _record(self, rows, need_r, fresh, take, j, flat, cur, dose, dlt, resp, infused, evaluable, lost_kept,
                below, counted) -> None:
        """Write the enrolees of a pass into the records (examined but not enrolled: the spare element)."""
        m, rec = self.m, self.rec
        fidx = np.where(take, flat, self.trash)
        rec["assigned"][fidx] = cur
        rec["dose"][fidx] = dose
        rec["tox"][fidx] = dlt
        if m.eff_on:
            rec["eff"][fidx] = resp
        if m.replaces or lost_kept is not None:
            # enrolled in place of another: past the cohort's size, or in a later round of the cohort
            if fresh:
                j0 = int(need_r.min())
                if j0 < take.shape[0]:
                    rec["replacement"][flat[j0:][take[j0:] & (j[j0:] >= need_r)]] = True
            else:
                rec["replacement"][flat[take]] = True
        if m.split:
            # 0 evaluable, 1 infused but not evaluable, 2 not infused (replaced), 3 lost (not replaced)
            status = 2 - evaluable.view(np.int8) - infused.view(np.int8)
            if lost_kept is not None:
                status += lost_kept.view(np.int8)
            rec["status"][fidx] = status
            if m.band:
                rec["tier"][fidx] = np.where(evaluable, counted, -1)
            if m.can_below:
                self.n_out[rows] += (below & infused).sum(axis=0, dtype=np.int32)
        # the first evaluable patient of a cohort starts it in the log
        opener = evaluable.copy() if fresh else evaluable & ~self.logged[rows]
        if evaluable is not take:
            seen = np.zeros(rows.size, dtype=bool)
            for w in range(take.shape[0]):
                opener[w] &= ~seen
                seen |= evaluable[w]
        else:
            opener[1:] = False
        rec["new_cohort"][flat[opener]] = True
        self.logged[rows] |= opener.any(axis=0)

    def _count(self, rows, cur, dlt, resp, evaluable, counted) -> np.ndarray:
        """Add the evaluable patients of a pass to the trials' counts where the policy counts them; returns
        the evaluable patients per trial."""
        state, eff_on = self.state, self.m.eff_on
        ev_n = evaluable.sum(axis=0, dtype=np.int32)
        ev_y = (dlt & evaluable).sum(axis=0, dtype=np.int32)
        if self.m.band:
            w_idx, r_idx = np.nonzero(evaluable)
            at = (rows[r_idx], counted[w_idx, r_idx])
            np.add.at(state.n, at, 1)
            np.add.at(state.y, at, dlt[w_idx, r_idx].astype(np.int32))
            if eff_on:
                np.add.at(state.e, at, resp[w_idx, r_idx].astype(np.int32))
                np.add.at(state.ye, at, (resp & dlt)[w_idx, r_idx].astype(np.int32))
        else:
            state.n[rows, cur] += ev_n
            state.y[rows, cur] += ev_y
            if eff_on:
                resp_ev = resp & evaluable
                state.e[rows, cur] += resp_ev.sum(axis=0, dtype=np.int32)
                state.ye[rows, cur] += (resp_ev & dlt).sum(axis=0, dtype=np.int32)
        self.coh_n[rows] += ev_n
        self.coh_y[rows] += ev_y
        self.n_eval[rows] += ev_n
        return ev_n

    def _stop_capped(self, act) -> None:
        """Enrolment cap reached before a cohort is complete: the trial stops on the data it has."""
        capped = act[self.need[act] > 0]
        if capped.size:
            self.reason[capped] = StopReason.ENROLMENT_CAP
            self.selected[capped] = self.design.conclude(self.state.take(capped),
                                                         np.full(capped.size, StopReason.ENROLMENT_CAP, np.int8))
            self.state.active[capped] = False

    def _decide(self, act) -> None:
        """Complete cohorts go to the design; one whose patients were all lost (not replaced) repeats the tier
        without a decision."""
        state = self.state
        decide = act[(self.coh_n[act] > 0) & state.active[act]]
        if decide.size == 0:
            return
        state.last_n[decide] = self.coh_n[decide]
        state.last_y[decide] = self.coh_y[decide]
        sub = state if decide.size == self.n_trials else state.take(decide)
        dec = self.design.step(sub)
        apply_decisions(self.design, state, decide, sub, dec, self.selected, self.reason, self.fired, self.size)

    def _finish(self) -> dict:
        """Per-patient tiers and statuses of the records, and the per-trial arrays of the batch."""
        m, enrolled, n_trials = self.m, self.enrolled, self.n_trials
        # enrolees past the most any trial enrolled are never written: work on the columns before them
        cols = int(enrolled.max())
        view = self.view
        pt_status, pt_assigned, pt_tier = view("status")[:, :cols], view("assigned")[:, :cols], view("tier")[:, :cols]
        if not m.split:   # every enrolee infused and evaluable at the assigned tier
            pt_tier[...] = pt_assigned
            np.negative((pt_assigned < 0).view(np.int8), out=pt_status)   # EVALUABLE (0) or NOT_ENROLLED (-1)
            n_repl = n_lost = np.zeros(n_trials, dtype=np.int32)
            n_inf = enrolled
        else:
            never = pt_status >= PatientStatus.LOST_REPLACED      # statuses 2 and 3: never infused
            view("dose")[np.nonzero(never)] = np.nan                 # (few: index them rather than mask all)
            if not m.band:   # counted at the assigned tier when evaluable: (assigned + 1) x evaluable - 1
                tier = pt_assigned + np.int8(1)
                tier *= (pt_status == PatientStatus.EVALUABLE).view(np.int8)
                tier -= np.int8(1)
                pt_tier[...] = tier
            n_lost = never.sum(axis=1, dtype=np.int32)
            n_repl = (pt_status >= PatientStatus.NOT_EVALUABLE).sum(axis=1, dtype=np.int32)   # statuses 1 to 3
            if m.lose:
                n_repl -= (pt_status == PatientStatus.LOST).sum(axis=1, dtype=np.int32)
            n_inf = enrolled - n_lost
        share_out = np.where(n_inf > 0, self.n_out / np.maximum(n_inf, 1), np.nan)
        state = self.state
        return {"n": state.n, "y": state.y, "e": state.e, "ye": state.ye, "selected": self.selected,
                "reason": self.reason, "fired": self.fired, "n_enrolled": enrolled.astype(float),
                "n_replaced": n_repl.astype(float), "n_lost": n_lost.astype(float), "share_outside_band": share_out}


def _records(n_trials: int, cap: int, n_tiers: int) -> dict:
    """The per-enrolee records of a run, each a flat buffer of ``(trial, enrolee)`` in C order with one
    spare element at the end, where a pass writes the entries of the patients it examines but does not
    enrol (so it writes whole arrays instead of gathering the enrolled first)."""
    size = n_trials * cap + 1
    tier_dtype = np.int8 if n_tiers < 127 else np.int16
    return {"assigned": np.full(size, -1, dtype=tier_dtype),
            "tier": np.full(size, -1, dtype=tier_dtype),              # tier counted at (-1: not evaluable)
            "status": np.full(size, int(PatientStatus.NOT_ENROLLED), dtype=np.int8),
            "dose": np.full(size, np.nan),                            # actual dose (NaN: not infused)
            "tox": np.zeros(size, dtype=bool), "eff": np.zeros(size, dtype=bool),
            "new_cohort": np.zeros(size, dtype=bool),                 # first evaluable patient of a cohort
            "cohort_start": np.zeros(size, dtype=bool),               # first enrolee of a cohort
            "replacement": np.zeros(size, dtype=bool)}                # enrolled in place of another


ACTUAL_DOSE_METRICS = {
    "n_enrolled": "mean patients enrolled per trial (replacements included)",
    "n_evaluable": "mean evaluable patients per trial (the design's sample size)",
    "n_replaced": "mean patients replaced per trial (not evaluable or not infused, and replaced)",
    "n_lost": "mean patients enrolled but never infused per trial (failed or withheld product)",
    "share_outside_band": "mean share of a trial's infused patients whose actual dose was below their "
                          "tier's lower release limit",
}


def _streams(scenario: Scenario, ladder: DoseLadder, model) -> dict:
    """The random streams the actual-dose engine reads per enrolee."""
    streams = {"tox": Stream.TOX}
    if scenario.true_eff is not None:
        streams["eff"] = Stream.EFF
    if (ladder.tolerance or 0.0) > 0 or model.shortfall > 0 or model.failure > 0:
        streams["product"] = Stream.PRODUCT
    if model.cap_total is not None:
        streams["weight"] = Stream.WEIGHT
    return streams


def simulate_actual(run: Run, progress=None) -> tuple[dict, dict, dict]:
    """The checked run ``run`` (:func:`~doseesc.engines.run.check_simulation`, with a dose model) in batches of
    :func:`_batch_actual`. Returns the per-trial arrays, the per-patient records and the per-trial
    :data:`ACTUAL_DOSE_METRICS`."""
    design, scenario, ladder, model = run.design, run.scenario, run.ladder, run.dose_model
    cap = model.enrolment_cap(design.max_n)
    streams = _streams(scenario, ladder, model)
    rec = _records(run.n_trials, cap, design.n_tiers)
    width = design.max_n + _margin(design, model)

    def batch(start: int, stop: int) -> dict:
        u = _LazyUniforms(run.seq, start, stop, streams, width, cap)
        return _batch_actual(design, scenario, ladder, model, u, stop - start, cap, rec, start)

    out = in_batches(run.n_trials, run.batch_size, batch, progress)
    out.update(_record_arrays(rec, run.n_trials, cap))
    return finish_actual(out)


def actual_range(run: Run, start: int, stop: int) -> dict:
    """The actual-dose trials ``start..stop-1`` of the checked run ``run``, with their own record buffers:
    the numbers :func:`simulate_actual` gives those trials (for worker processes and runs to a precision)."""
    design, scenario, ladder, model = run.design, run.scenario, run.ladder, run.dose_model
    cap = model.enrolment_cap(design.max_n)
    u = _LazyUniforms(run.seq, start, stop, _streams(scenario, ladder, model), design.max_n + _margin(design, model),
                      cap)
    rec = _records(stop - start, cap, design.n_tiers)
    b = _batch_actual(design, scenario, ladder, model, u, stop - start, cap, rec, 0)
    b.update(_record_arrays(rec, stop - start, cap))
    return b


def finish_actual(out: dict) -> tuple[dict, dict, dict]:
    """The gathered trials of an actual-dose run as ``(per-trial arrays, per-patient records, extra metrics)``
    (the records a run without them dropped are left out)."""
    out["n_evaluable"] = out["n"].sum(axis=1).astype(float)
    extra = {key: (out[key], text) for key, text in ACTUAL_DOSE_METRICS.items()}
    patients = {key: out[key] for key in PATIENT_RECORDS if key in out}
    return out, patients, extra


def _margin(design: Design, model: DoseModel) -> int:
    """Spare patient columns beyond ``max_n`` for replacements: a cohort, plus a quarter of ``max_n`` where
    failed products are replaced."""
    return design.max_size + (-(-design.max_n // 4) if model.replaces else 0)


#: Per-patient records of an actual-dose run.
PATIENT_RECORDS = ("tier", "tox", "eff", "new_cohort", "assigned", "dose", "status", "cohort_start",
                   "replacement")


def _record_arrays(rec: dict, n_trials: int, cap: int) -> dict:
    """The record buffers of :func:`_records` as ``(n_trials, cap)`` arrays (views, spare element left out)."""
    return {key: buf[:-1].reshape(n_trials, cap) for key, buf in rec.items()}

