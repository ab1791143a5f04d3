"""Several indications (or strata) in one protocol: pooled, parallel and staggered conduct.

:func:`simulate_indications` runs a design under an :class:`~doseesc.indications.IndicationScenario` with a
:class:`~doseesc.indications.Conduct` policy and returns a :class:`StrataResult`: one
:class:`~doseesc.results.OperatingCharacteristics` per indication (its truth, its patients) and, for pooled
conduct, the pooled one.

- ``pooled``: one escalation (:class:`Escalation`); each patient's indication is drawn from its own latent
  uniform (stream :data:`~doseesc.indications.INDICATION_STREAM` of the trial's seed) by the shares of
  accrual; the patient's DLT is ``u_tox < true_tox[indication, tier]`` with the same TOX uniform as the plain
  run, so with identical truths every trial is the plain run's trial, bit for bit.
- ``parallel``: one independent escalation per indication, indication ``j`` on :func:`indication_seed`
  (the trial's own seed for the first): each indication's trials are a plain run of its own design on that seed.
- ``staggered``: two strata stepped in rounds (a cohort of the first stratum, then one of the second); the
  second opens once the first has cleared a tier and never treats above the highest tier the first has
  cleared at that time (see docs/notes/indications.md for the exact rules).

The loop runs over cohorts, never over trials or patients; memory is per-trial counts plus the per-patient
records every Monte Carlo run keeps.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from .._lazy import lazy
from ..designs.base import Design
from ..errors import DoseescError
from ..indications import (INDICATION_KEY, INDICATION_STREAM, POLICIES, Conduct, Indications, IndicationScenario,
                           by_indication_frame, indication_metrics_frame)
from ..limits import BATCH_SIZE
from ..results import OperatingCharacteristics, resolve_target
from ..rng import Stream, patient_uniforms, root_seed
from ..scenario import Scenario
from ..state import StopReason, TrialState
from ..tiers import DoseLadder
from .run import (PATIENT_KEYS, check_simulation, conclude_decided, decide_distinct, in_batches,
                  monte_carlo_result, run_result)
from .timed import calendar_batch, calendar_extra

pd = lazy("pandas")

__all__ = ["simulate_indications", "StrataResult", "Escalation", "indication_seed"]


def indication_seed(seq: np.random.SeedSequence, j: int) -> np.random.SeedSequence:
    """The seed stream of indication ``j`` in parallel and staggered conduct: the trial's own seed for the first
    indication (one indication is a plain run), else ``spawn_key + (INDICATION_KEY, j)``."""
    if j == 0:
        return seq
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (INDICATION_KEY, int(j)))


class Escalation:
    """One escalation of ``design`` over a batch of trials, one cohort per :meth:`step`.

    ``true_tox`` has shape ``(n_indications, n_tiers)``; ``indication`` (int array ``(n_trials, max_n)`` or
    None for all 0) is each patient slot's indication; ``u_tox`` (and ``u_eff``) the latent uniforms
    ``(n_trials, >= max_n)``; ``eff_given`` = (P(response | DLT), P(response | no DLT)), each
    ``(n_indications, n_tiers)``. Patient ``k`` of trial ``i`` at tier ``t`` has a DLT when
    ``u_tox[i, k] < true_tox[indication[i, k], t]`` and a response as in
    :func:`~doseesc.engines.montecarlo.run_batch`, of which this is the generalisation (same state
    transitions, same decisions: with one row of truth it gives the same numbers).
    """

    def __init__(self, design: Design, true_tox, u_tox, *, indication=None, u_eff=None, eff_given=None,
                 start: int | None = None):
        n_trials = u_tox.shape[0]
        k, max_n = design.n_tiers, design.max_n
        if u_tox.shape[1] < max_n:
            raise ValueError(f"u_tox has {u_tox.shape[1]} patients per trial; the design needs {max_n}")
        self.design = design
        self.p = np.atleast_2d(np.asarray(true_tox, dtype=float))
        self.u2 = np.ascontiguousarray(u_tox[:, :max_n])
        self.u = self.u2.ravel()
        self.ind2 = None if indication is None else np.ascontiguousarray(indication[:, :max_n])
        self.ind = None if indication is None else self.ind2.ravel()
        self.eff_on = u_eff is not None
        if self.eff_on:
            self.ue2 = np.ascontiguousarray(u_eff[:, :max_n])
            self.ue = self.ue2.ravel()
            self.pe_t, self.pe_n = (np.atleast_2d(np.asarray(a, float)) for a in eff_given)
        self.state = TrialState.empty(n_trials, k, design.start if start is None else int(start),
                                      size=design.first_size)
        dtype = np.int8 if k < 127 else np.int16
        self.tier = np.full((n_trials, max_n), -1, dtype=dtype)
        self.tox = np.zeros((n_trials, max_n), dtype=bool)
        self.eff = np.zeros((n_trials, max_n), dtype=bool)
        self.new = np.zeros((n_trials, max_n), dtype=bool)
        self.total = np.zeros(n_trials, dtype=np.int32)
        self.selected = np.full(n_trials, -1, dtype=np.int32)
        self.reason = np.zeros(n_trials, dtype=np.int8)
        self.cols = np.arange(min(design.max_size, max_n))
        self.distinct = True
        self.steps = 0
        #: Tier each trial of the last step's ``act`` was treated at.
        self.treated = np.zeros(0, dtype=np.int32)
        #: Per patient slot, the ``cap`` in force when the patient was treated (-1: none), int8/16 like ``tier``.
        self.cap_record = np.full((n_trials, max_n), -1, dtype=dtype)

    def _truth(self, table: np.ndarray, flat: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if self.ind is None:
            return table[0][cur][:, None]
        return table[self.ind[flat], cur[:, None]]

    def step(self, allowed: np.ndarray | None = None, cap: np.ndarray | None = None):
        """Treat one cohort in every active trial (where ``allowed``, if given) and decide; ``cap`` (per trial,
        over all trials), where given, is recorded per patient treated (:attr:`cap_record`). Returns the
        :class:`~doseesc.engines.run.Decided` decisions, or None where no trial was treated."""
        design, state = self.design, self.state
        live = state.active if allowed is None else state.active & allowed
        act = np.flatnonzero(live)
        if act.size == 0:
            return None
        self.steps += 1
        if self.steps > design.max_n + 1:  # pragma: no cover - guarded by max_n in Design.step
            raise RuntimeError(f"{design.label}: trials did not stop within max_n = {design.max_n} cohorts")
        max_n = design.max_n
        cur = state.current[act]
        self.treated = cur
        base = self.total[act]
        cols = self.cols
        width = cols.size
        b0 = int(base[0])
        if b0 + width <= max_n and base.min() == base.max() and state.size[act].min() == width:
            # every trial's cohort fills the same patient slots b0..b0+width-1 (the usual case): slices, as
            # run_batch's fast path (the same outcomes as the general path below)
            rows = slice(None) if act.size == self.total.size else act
            cells = (rows, slice(b0, b0 + width))
            ind = None if self.ind2 is None else self.ind2[cells]

            def truth(table):
                return table[0][cur][:, None] if ind is None else table[ind, cur[:, None]]

            dlt = self.u2[cells] < truth(self.p)
            cnt = np.full(act.size, width, dtype=np.int32)
            n_resp = n_both = None
            if self.eff_on:
                resp = self.ue2[cells] < np.where(dlt, truth(self.pe_t), truth(self.pe_n))
                n_resp = resp.sum(axis=1, dtype=np.int32)
                n_both = (resp & dlt).sum(axis=1, dtype=np.int32)
                self.eff[cells] = resp
            self.tier[cells] = cur[:, None]
            self.tox[cells] = dlt
            self.new[rows, b0] = True
            if cap is not None:
                self.cap_record[cells] = cap[act][:, None]
            self.total[rows] = b0 + width
            return self._close(act, cnt, dlt.sum(axis=1, dtype=np.int32), n_resp, n_both)
        slots = base[:, None] + cols
        take = (cols < state.size[act][:, None]) & (slots < max_n)
        full = bool(take.all())   # every cohort complete within max_n: no masks (the same outcomes)
        if not full:
            np.minimum(slots, max_n - 1, out=slots)
        flat = slots
        flat += (act * max_n)[:, None]
        dlt = self.u[flat] < self._truth(self.p, flat, cur)
        if not full:
            dlt &= take
        cnt = np.full(act.size, width, dtype=np.int32) if full else take.sum(axis=1, dtype=np.int32)
        n_dlt = dlt.sum(axis=1, dtype=np.int32)
        n_resp = n_both = None
        cells = flat if full else flat[take]

        def kept(values):
            return values if full else values[take]

        if self.eff_on:
            pe = np.where(dlt, self._truth(self.pe_t, flat, cur), self._truth(self.pe_n, flat, cur))
            resp = self.ue[flat] < pe
            if not full:
                resp &= take
            n_resp = resp.sum(axis=1, dtype=np.int32)
            n_both = (resp & dlt).sum(axis=1, dtype=np.int32)
            self.eff.ravel()[cells] = kept(resp)
        self.tier.ravel()[cells] = kept(np.broadcast_to(cur[:, None], take.shape))
        self.tox.ravel()[cells] = kept(dlt)
        self.new.ravel()[flat[:, 0] if full else flat[take[:, 0], 0]] = True
        if cap is not None:
            self.cap_record.ravel()[cells] = kept(np.broadcast_to(cap[act][:, None], take.shape))
        self.total[act] = base + cnt
        return self._close(act, cnt, n_dlt, n_resp, n_both)

    def _close(self, act, cnt, n_dlt, n_resp, n_both):
        """Add the cohort's outcomes to the trials ``act``, decide, conclude the trials that stop, move on."""
        design, state = self.design, self.state
        state.add_cohort(cnt, n_dlt, n_resp, n_both, rows=act)
        decided = decide_distinct(design, state, act, self.distinct)
        self.distinct = self.distinct and not decided.crowded
        conclude_decided(design, decided, self.selected, self.reason)
        state.advance(decided.dec, design.cohort_size, rows=act)
        return decided

    def run(self) -> None:
        while self.step() is not None:
            pass

    def out(self) -> dict:
        """Per-trial and per-patient arrays, keyed as :func:`~doseesc.engines.montecarlo.run_batch`'s."""
        s = self.state
        return {"n": s.n, "y": s.y, "e": s.e, "ye": s.ye, "selected": self.selected, "reason": self.reason,
                "fired": s.fired, "tier": self.tier, "tox": self.tox, "eff": self.eff, "new_cohort": self.new}


def _truth_tables(scenarios) -> tuple[np.ndarray, tuple | None]:
    """P(DLT) ``(n_indications, n_tiers)`` and, where the scenarios model response, (P(response | DLT),
    P(response | no DLT)) of the same shape."""
    tox = np.array([s.true_tox for s in scenarios], dtype=float)
    if scenarios[0].true_eff is None:
        return tox, None
    given = [s.response_given_tox() for s in scenarios]
    return tox, (np.array([g[0] for g in given]), np.array([g[1] for g in given]))


def _uniforms(design: Design, scenario_has_eff: bool, seq, start: int, stop: int):
    u = patient_uniforms(seq, start, stop, design.max_n, Stream.TOX)
    ue = patient_uniforms(seq, start, stop, design.max_n, Stream.EFF) if scenario_has_eff else None
    return u, ue


def _counts_by_indication(out: dict, indication: np.ndarray, n_ind: int, k: int) -> dict:
    """Patients, DLTs and responses per indication and tier, each ``(n_trials, n_indications, n_tiers)``."""
    tier = out["tier"].astype(np.intp)
    rows = tier.shape[0]
    on = tier >= 0
    cell = (np.arange(rows)[:, None] * n_ind + indication.astype(np.intp)) * k + np.maximum(tier, 0)
    cell = cell[on]
    size = rows * n_ind * k
    shape = (rows, n_ind, k)
    count = lambda w: np.bincount(cell, weights=w, minlength=size).astype(np.int32).reshape(shape)  # noqa: E731
    return {"n_ind": count(None), "y_ind": count(out["tox"][on].astype(float)),
            "e_ind": count(out["eff"][on].astype(float))}


def pooled_batch(design: Design, scenario: IndicationScenario, seq, start: int, stop: int, calendar=None) -> dict:
    """Pooled conduct on trials ``start..stop-1`` of the run seeded by ``seq``: the plain run's arrays, each
    patient slot's ``indication`` and the counts by indication (``n_ind``, ``y_ind``, ``e_ind``); with a
    ``calendar`` (designs that wait for complete cohorts), the calendar laid over the trials as the plain run
    lays it (:func:`~doseesc.engines.timed.calendar_batch`, which reads tiers and cohort starts only)."""
    eff = scenario.pooled.true_eff is not None
    u, ue = _uniforms(design, eff, seq, start, stop)
    ind = scenario.indications.draw(patient_uniforms(seq, start, stop, design.max_n, INDICATION_STREAM))
    tox, given = _truth_tables(scenario.truths)
    esc = Escalation(design, tox, u, indication=ind, u_eff=ue, eff_given=given)
    esc.run()
    out = esc.out()
    out["indication"] = ind
    out.update(_counts_by_indication(out, ind, scenario.indications.n_indications, design.n_tiers))
    if calendar is not None:
        out.update(calendar_batch(calendar, design, out, seq, start, stop))
    return out


def single_batch(design: Design, truth: Scenario, seq, start: int, stop: int, start_tier: int) -> dict:
    """One indication's own escalation (parallel conduct) on trials ``start..stop-1`` of ``seq``."""
    u, ue = _uniforms(design, truth.true_eff is not None, seq, start, stop)
    tox, given = _truth_tables([truth])
    esc = Escalation(design, tox, u, u_eff=ue, eff_given=given, start=start_tier)
    esc.run()
    return esc.out()


def staggered_batch(designs, truths, seqs, starts, offset: int, opens_after: int, start: int,
                    stop: int) -> tuple[dict, dict, dict]:
    """Staggered strata on trials ``start..stop-1``: (first stratum's arrays, second's, per-trial extras).

    Rounds: the first stratum treats a cohort and decides, and its cleared tier is updated (:func:`_cleared`).
    The second stratum opens where it has not yet, the first has cleared tier ``opens_after`` (0-based) and has
    not stopped with no dose, at ``max(min(base - offset, cleared), 0)``, ``base`` being the first stratum's
    current tier (its selected tier once stopped). Then every open second-stratum trial whose next tier is at
    most the cleared tier treats a cohort and decides; one whose design asks for a higher tier waits for the
    first stratum. Once the first stratum has stopped, a second-stratum trial still asking for a tier above the
    cleared tier stops there (selected = cleared tier, reason ``TIER_CAP``); where the first stratum ends with no
    dose the second closes (no dose). The second stratum's selection is never above the final cleared tier."""
    esc = []
    for d, t, seq, s0 in zip(designs, truths, seqs, starts):
        u, ue = _uniforms(d, t.true_eff is not None, seq, start, stop)
        tox, given = _truth_tables([t])
        esc.append(Escalation(d, tox, u, u_eff=ue, eff_given=given, start=s0))
    a, b = esc
    n = stop - start
    b.state.active[:] = False
    cleared = np.full(n, -1, dtype=np.int32)
    opened = np.zeros(n, dtype=bool)
    open_n = np.zeros(n, dtype=np.int32)               # first-stratum patients when the second opened
    for _ in range(a.design.max_n + b.design.max_n + 2):
        decided = a.step()
        if decided is not None:
            _cleared(decided, a, cleared)
        closed = ~a.state.active & (cleared < 0)
        b.state.active[opened & closed] = False
        new = ~opened & (cleared >= opens_after) & ~closed
        if new.any():
            base = np.where(a.state.active, a.state.current, a.selected)
            b.state.current[new] = np.maximum(np.minimum(base[new] - offset, cleared[new]), 0)
            b.state.active[new] = True
            opened |= new
            open_n[new] = a.total[new]
        waiting = b.state.active & (b.state.current > cleared)
        blocked = waiting & ~a.state.active
        if blocked.any():
            b.state.active[blocked] = False
            b.selected[blocked] = cleared[blocked]
            b.reason[blocked] = StopReason.TIER_CAP
        stepped = b.step(allowed=~waiting, cap=cleared)
        if decided is None and stepped is None and not blocked.any():
            break
    b.selected[:] = np.where(opened, np.minimum(b.selected, cleared), -1)
    extra = {"opened": opened, "open_n": open_n, "cleared": cleared, "cap": b.cap_record}
    return a.out(), b.out(), extra


def _cleared(decided, a: Escalation, cleared: np.ndarray) -> None:
    """Update the first stratum's cleared tier in place: a tier is cleared when the design escalates from it
    (the next tier is above the tier just treated); once a trial stops, its cleared tier becomes its selected
    tier (-1: no dose, which closes the second stratum)."""
    act, dec = decided.act, decided.dec
    up = ~dec.stop & (dec.next > a.treated)
    rows = act[up]
    cleared[rows] = np.maximum(cleared[rows], a.treated[up])
    done = act[dec.stop]
    cleared[done] = a.selected[done]


# -- the result ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class StrataResult:
    """The results of a run with several indications.

    ``results`` maps each indication to an :class:`~doseesc.results.OperatingCharacteristics` whose scenario is
    the indication's truth and whose counts are its patients (pooled conduct: the selections are the pooled
    ones, so its ``p_correct`` is P(the pooled selection is the indication's true MTD) and ``p_above_mtd``
    P(the pooled selection is above it)). ``pooled`` is the pooled run (pooled conduct; None otherwise).
    ``patient_indication`` (pooled) is each patient slot's indication, ``(n_trials, max_n)``; ``extra`` holds
    the staggered run's per-trial arrays (``opened``, ``open_n``, ``cleared``, and ``cap`` per patient).
    """

    conduct: Conduct
    indications: Indications
    scenario: IndicationScenario
    results: dict
    pooled: OperatingCharacteristics | None = None
    patient_indication: np.ndarray | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def labels(self):
        first = next(iter(self.results.values()))
        return first.ladder.tier_labels

    def by_indication(self) -> pd.DataFrame:
        """One row per indication and tier (and ``pooled`` rows in pooled conduct); see
        :func:`~doseesc.indications.by_indication_frame`."""
        return by_indication_frame(self.results, self.labels, self.pooled)

    def indication_metrics(self) -> pd.DataFrame:
        """One row per indication: true MTD/OBD, P(select it), P(selected above its true MTD), N, DLTs."""
        return indication_metrics_frame(self.results, self.labels, self.indications.shares, self.pooled)

    def to_dict(self) -> dict:
        return {"conduct": self.conduct.to_dict(), "indications": self.indications.to_dict(),
                "scenario": self.scenario.to_dict(),
                "by_indication": self.by_indication().to_dict(orient="records"),
                "indication_metrics": self.indication_metrics().to_dict(orient="records")}

    def text(self) -> str:
        m = self.indication_metrics()
        lines = [f"{POLICIES[self.conduct.policy].split(':')[0]} ({self.conduct.text()}); scenario "
                 f"{self.scenario.name!r}"]
        for _, r in m.iterrows():
            lines.append(f"  {r['indication']}: true MTD {r['true_mtd']}, P(select it) {r['p_correct']:.3f}, "
                         f"P(above it) {r['p_above_mtd']:.3f}, mean N {r['expected_n']:.1f}, "
                         f"mean DLTs {r['mean_dlt']:.2f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def simulate_indications(design: Design, scenario: IndicationScenario | Scenario, indications: Indications | None = None,
                         conduct: Conduct | str = "pooled", n_trials: int = 10_000, *, rng=None,
                         target: float | None = None, ladder: DoseLadder | None = None, obd=None,
                         batch_size: int = BATCH_SIZE, progress: Callable[[int, int], None] | None = None,
                         calendar=None) -> StrataResult:
    """Simulate ``n_trials`` trials of ``design`` with several indications, conducted by ``conduct``.

    ``scenario`` is an :class:`~doseesc.indications.IndicationScenario` (or a plain
    :class:`~doseesc.scenario.Scenario`: the same truth in every indication of ``indications``). The other
    arguments are those of :func:`~doseesc.simulate`; the actual-dose model does not yet combine with
    indications, and a ``calendar`` only with pooled conduct of a design that waits for complete cohorts (the
    calendar is laid over the pooled trials as in the plain run). Pooled conduct with identical truths gives the
    plain run's numbers (same seed, same patients, any batch size; with the calendar too)."""
    if isinstance(conduct, str):
        conduct = Conduct(policy=conduct)
    if not isinstance(conduct, Conduct):
        raise DoseescError(f"conduct = {conduct!r} must be a Conduct or one of {', '.join(POLICIES)}")
    if isinstance(scenario, Scenario):
        scenario = IndicationScenario.same(scenario, indications if indications is not None else Indications.one())
    if not isinstance(scenario, IndicationScenario):
        raise DoseescError(f"scenario = {scenario!r} is not a doseesc Scenario or IndicationScenario")
    if indications is not None and indications != scenario.indications:
        raise DoseescError("indications differ from the scenario's: build the scenario on the same [[indication]]s")
    inds = scenario.indications
    if isinstance(design, Design):
        conduct.check(inds, design.n_tiers)
    if design.time_to_event:
        raise DoseescError(f"{design.label}: time-to-event designs need the calendar, which does not yet combine "
                           "with several indications")
    if calendar is not None and conduct.policy != "pooled":
        raise DoseescError(f"conduct {conduct.policy!r} runs without calendar time (its strata step in rounds of "
                           "cohorts); pass calendar only with pooled conduct")
    seq = root_seed(rng)
    if conduct.policy == "pooled":
        return _pooled(design, scenario, conduct, n_trials, seq, target, ladder, obd, batch_size, progress,
                       calendar)
    if conduct.policy == "parallel":
        return _parallel(design, scenario, conduct, n_trials, seq, target, ladder, obd, batch_size, progress)
    return _staggered(design, scenario, conduct, n_trials, seq, target, ladder, obd, batch_size, progress)


def _provenance(oc: OperatingCharacteristics, scenario: IndicationScenario, conduct: Conduct, name=None) -> None:
    oc.provenance["indications"] = scenario.indications.to_dict()
    oc.provenance["conduct"] = conduct.to_dict()
    oc.provenance["indication_scenario"] = scenario.to_dict()
    if name is not None:
        oc.provenance["indication"] = name


def _pooled(design, scenario, conduct, n_trials, seq, target, ladder, obd, batch_size, progress,
            calendar=None) -> StrataResult:
    run = check_simulation(design, scenario.pooled, n_trials, rng=seq, target=target, ladder=ladder, obd=obd,
                           batch_size=batch_size, calendar=calendar)
    t0 = time.perf_counter()
    out = in_batches(run.n_trials, run.batch_size,
                     lambda a, b: pooled_batch(design, scenario, seq, a, b, calendar), progress)
    keys = PATIENT_KEYS + (("infusion_days",) if calendar is not None else ())
    pooled = run_result(run, {k: v for k, v in out.items() if k not in ("n_ind", "y_ind", "e_ind", "indication")},
                        {key: out[key] for key in keys}, calendar_extra(out) if calendar is not None else {},
                        time.perf_counter() - t0)
    _provenance(pooled, scenario, conduct)
    eff = scenario.pooled.true_eff is not None
    results = {}
    for j, (name, truth) in enumerate(zip(scenario.indications.names, scenario.truths)):
        part = {"n": out["n_ind"][:, j], "y": out["y_ind"][:, j], "e": out["e_ind"][:, j],
                "selected": out["selected"], "reason": out["reason"], "fired": out["fired"]}
        oc = monte_carlo_result(design, truth, pooled.ladder, resolve_target(target, truth, design), run.obd if eff else None, part, None,
                                dict(pooled.provenance), {})
        _provenance(oc, scenario, conduct, name)
        results[name] = oc
    return StrataResult(conduct, scenario.indications, scenario, results, pooled, out["indication"])


def _own_run(design, truth, n_trials, seq, target, ladder, obd, batch_size, progress, start_tier):
    run = check_simulation(design, truth, n_trials, rng=seq, target=target, ladder=ladder, obd=obd,
                           batch_size=batch_size)
    t0 = time.perf_counter()
    out = in_batches(run.n_trials, run.batch_size,
                     lambda a, b: single_batch(design, truth, seq, a, b, start_tier), progress)
    return run_result(run, out, {key: out[key] for key in PATIENT_KEYS}, {}, time.perf_counter() - t0)


def _parallel(design, scenario, conduct, n_trials, seq, target, ladder, obd, batch_size, progress) -> StrataResult:
    results = {}
    for j, (name, truth) in enumerate(zip(scenario.indications.names, scenario.truths)):
        d, s0 = conduct.design_for(name, design)
        oc = _own_run(d, truth, n_trials, indication_seed(seq, j), target, ladder, obd, batch_size, progress, s0)
        _provenance(oc, scenario, conduct, name)
        results[name] = oc
    return StrataResult(conduct, scenario.indications, scenario, results)


def _staggered(design, scenario, conduct, n_trials, seq, target, ladder, obd, batch_size, progress) -> StrataResult:
    inds = scenario.indications
    order = conduct.order(inds)
    names = [inds.names[j] for j in order]
    truths = [scenario.truths[j] for j in order]
    pairs = [conduct.design_for(n, design) for n in names]
    designs = [p[0] for p in pairs]
    starts = [p[1] for p in pairs]
    seqs = [indication_seed(seq, j) for j in order]
    runs = [check_simulation(d, t, n_trials, rng=s, target=target, ladder=ladder, obd=obd, batch_size=batch_size)
            for d, t, s in zip(designs, truths, seqs)]
    t0 = time.perf_counter()

    def batch(a: int, b: int) -> dict:
        first, second, extra = staggered_batch(designs, truths, seqs, starts, conduct.offset,
                                               conduct.opens_after, a, b)
        return {**{f"a_{k}": v for k, v in first.items()}, **{f"b_{k}": v for k, v in second.items()},
                **{f"x_{k}": v for k, v in extra.items()}}

    out = in_batches(n_trials, batch_size, batch, progress)
    seconds = time.perf_counter() - t0
    results = {}
    extra = {k[2:]: v for k, v in out.items() if k.startswith("x_")}
    for tag, name, run in zip("ab", names, runs):
        part = {k[2:]: v for k, v in out.items() if k.startswith(f"{tag}_")}
        more = {}
        if tag == "b":
            more = {"opened": (extra["opened"].astype(float), "the second stratum opened"),
                    "open_n": (extra["open_n"].astype(float),
                               "first-stratum patients treated when the second stratum opened")}
        oc = run_result(run, part, {key: part[key] for key in PATIENT_KEYS}, more, seconds)
        _provenance(oc, scenario, conduct, name)
        results[name] = oc
    results = {n: results[n] for n in inds.names}
    return StrataResult(conduct, inds, scenario, results, extra=extra)
