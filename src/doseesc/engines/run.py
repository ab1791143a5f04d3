"""What every run of a design shares: the checks of its arguments, the batch loop, and its result.

:func:`check_simulation` checks the arguments of a Monte Carlo run once, whatever runs it (plain, actual dose,
calendar, time-to-event), and resolves what the run needs (seed, target, OBD definition) into a :class:`Run`.
:func:`in_batches` is the one loop over batches of trials (bit-identical results for any batch size: trial
``i`` always sees the same patients). :func:`run_result` builds the
:class:`~doseesc.results.OperatingCharacteristics` of the simulated trials with their provenance.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import itertools
import math
import multiprocessing
import os
import pickle
from typing import Callable

import numpy as np

from ..actual_dose import DoseModel
from ..calendar import Calendar
from ..designs.base import Design
from ..errors import DesignError, DoseescError
from ..limits import BATCH_SIZE, MAX_TRIALS, short
from ..obd import OBDDefinition, resolve_obd
from ..results import OperatingCharacteristics, provenance, resolve_target
from ..rng import root_seed
from ..scenario import Scenario
from ..state import Decision, TrialState, group_keys
from ..tiers import DoseLadder

#: Per-patient arrays every Monte Carlo run records.
PATIENT_KEYS = ("tier", "tox", "eff", "new_cohort")


# -- checks ---------------------------------------------------------------------------------------------
def check_compatible(design: Design, scenario: Scenario) -> None:
    """A doseesc design and scenario with the same number of tiers."""
    if not isinstance(design, Design):
        raise DesignError(f"design = {design!r} is not a doseesc design")
    if not isinstance(scenario, Scenario):
        raise DoseescError(f"scenario = {scenario!r} is not a doseesc Scenario")
    if design.n_tiers != scenario.n_tiers:
        raise DesignError(
            f"design {design.label!r} has {design.n_tiers} tiers but scenario {scenario.name!r} "
            f"gives true_tox for {scenario.n_tiers}")


def check_run(n_trials, batch_size) -> None:
    """Validate the number of trials and the batch size of a Monte Carlo run."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 2:
        raise DoseescError(f"n_trials = {n_trials!r} must be an integer of at least 2")
    if n_trials > MAX_TRIALS:
        raise DoseescError(f"n_trials = {short(n_trials)} is above the limit of {MAX_TRIALS:,} trials per run "
                           "(doseesc.limits; use precision= to stop at a target MCSE)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DoseescError(f"batch_size = {batch_size!r} must be a positive integer")


def check_not_tite(design: Design, what: str) -> None:
    """Refuse time-to-event designs in engines that enumerate counts (exact, paths), unless the design is also
    defined on complete data (:attr:`~doseesc.designs.base.Design.complete_data`)."""
    if isinstance(design, Design) and design.time_to_event and not design.complete_data:
        raise DoseescError(f"{what} does not apply to {design.label}: a time-to-event design decides with the "
                           "pending patients' follow-up times, which counts cannot enumerate; use simulate with a "
                           "calendar")


def _check_models(design: Design, ladder, dose_model, calendar) -> None:
    """The optional models of a run: their types, and the combinations the engines support."""
    if calendar is not None and not isinstance(calendar, Calendar):
        raise DoseescError(f"calendar = {calendar!r} is not a doseesc Calendar")
    if dose_model is None:
        return
    if not isinstance(dose_model, DoseModel):
        raise DoseescError(f"dose_model = {dose_model!r} is not a doseesc DoseModel")
    if ladder is None:
        raise DoseescError("the actual-dose model needs the dose ladder (ladder=DoseLadder(...)) for the "
                           "nominal doses and the tolerance band")


def _check_dose_model(design: Design, scenario: Scenario, ladder: DoseLadder, model: DoseModel) -> None:
    """The actual-dose model against the ladder, the design and the scenario's curves."""
    model.check(ladder, design)
    if ladder.n_tiers != design.n_tiers:
        raise DesignError(f"the dose ladder has {ladder.n_tiers} tiers but design {design.label!r} has "
                          f"{design.n_tiers}")
    if scenario.tox_curve is not None and scenario.nominal_tox is not None:
        expect = tuple(float(scenario.tox_curve(d)) for d in ladder.doses)
        if not np.allclose(expect, scenario.nominal_tox, rtol=1e-9, atol=1e-12):
            raise DoseescError(f"scenario {scenario.name!r} was built on other doses than this ladder's")


# -- a checked run -----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    """The checked arguments of a Monte Carlo run, with its seed, target and OBD definition resolved."""

    design: Design
    scenario: Scenario
    n_trials: int
    batch_size: int
    seq: np.random.SeedSequence
    target: float | None
    obd: OBDDefinition | None
    ladder: DoseLadder | None = None
    dose_model: DoseModel | None = None
    calendar: Calendar | None = None

    @property
    def time_to_event(self) -> bool:
        return self.design.time_to_event


def check_simulation(design, scenario, n_trials, *, rng=None, target=None, ladder=None, obd=None,
                     batch_size=BATCH_SIZE, dose_model=None, calendar=None) -> Run:
    """Check the arguments of :func:`~doseesc.simulate` once (every batch runner shares them) and resolve the
    seed, the target and the OBD definition."""
    check_compatible(design, scenario)
    _check_models(design, ladder, dose_model, calendar)
    obd_def = resolve_obd(obd, design, scenario)
    check_run(n_trials, batch_size)
    if scenario.true_eff is None and design.uses_efficacy:
        raise DoseescError(f"{design.label} needs true_eff in scenario {scenario.name!r}")
    seq = root_seed(rng)
    tgt = resolve_target(target, scenario, design)
    if dose_model is not None:
        _check_dose_model(design, scenario, ladder, dose_model)
    return Run(design=design, scenario=scenario, n_trials=int(n_trials), batch_size=int(batch_size), seq=seq,
               target=tgt, obd=obd_def, ladder=ladder, dose_model=dose_model, calendar=calendar)


# -- BLAS threads ------------------------------------------------------------------------------------------
#: (get, set) symbol names of the thread count in the OpenBLAS builds numpy and scipy ship (plain, 64-bit
#: interface, and the ``scipy_`` prefixed builds of the wheels).
_OPENBLAS_SYMBOLS = tuple((f"{pre}openblas_get_num_threads{suf}", f"{pre}openblas_set_num_threads{suf}")
                          for pre in ("", "scipy_") for suf in ("", "64_", "_64_"))
_blas_controls: list | None = None


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries loaded in this process (Linux: from /proc/self/maps; elsewhere none)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.isfile(p))


def blas_controls() -> list:
    """``(get, set)`` ctypes functions of the thread count of every loaded OpenBLAS (found once; empty where none
    is found, e.g. another BLAS: then :func:`one_blas_thread` does nothing)."""
    global _blas_controls
    if _blas_controls is None:
        found = []
        for path in _loaded_openblas():
            try:
                lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
            except OSError:
                continue
            for get_name, set_name in _OPENBLAS_SYMBOLS:
                get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    found.append((get, put))
                    break
        _blas_controls = found
    return _blas_controls


@contextlib.contextmanager
def one_blas_thread():
    """Run the block with one BLAS thread (the engines' matrix products are small and many: threads only add
    overhead, about 2x for CRM on 2 cores), restoring each library's thread count afterwards. The equivalent
    of ``threadpoolctl.threadpool_limits(1, "blas")`` for the OpenBLAS builds of numpy and scipy."""
    controls = blas_controls()
    before = [get() for get, _ in controls]
    try:
        for (_, put), n in zip(controls, before):
            if n != 1:
                put(1)
        yield
    finally:
        for (_, put), n in zip(controls, before):
            if n != 1:
                put(n)


# -- the batch loop ----------------------------------------------------------------------------------------
def in_batches(n_trials: int, batch_size: int, batch: Callable[[int, int], dict],
               progress: Callable[[int, int], None] | None = None, *, workers: int = 1, start: int = 0,
               total: int | None = None) -> dict:
    """``batch(start, stop)`` on trials ``start..stop-1`` of each batch, in order, calling
    ``progress(stop, total)`` after each (``total`` defaults to ``n_trials``); returns each per-trial array
    over the batches, in trial order. The batches cover trials ``start..n_trials-1`` (``start`` 0: the whole
    run) and run with one BLAS thread (:func:`one_blas_thread`).

    With ``workers`` above 1 the batches run in that many processes (:func:`worker_pool`); ``batch`` must then
    pickle (a module-level function or a dataclass instance, not a closure). Each batch draws its random
    numbers from the blocks of its own trials (:mod:`doseesc.rng`), so the result is bit-identical for any
    number of workers and any batch size.

    Memory: the answer's arrays are allocated once, after the first batch, and each batch is copied in and
    dropped (no list of batches concatenated at the end).
    """
    n_trials, batch_size, start = int(n_trials), int(batch_size), int(start)
    total = n_trials if total is None else int(total)
    bounds = [(a, min(a + batch_size, n_trials)) for a in range(start, n_trials, batch_size)]
    out = _Gather(n_trials - start)
    if workers > 1 and len(bounds) > 1:
        for (a, b), part in zip(bounds, _in_workers(batch, bounds, workers)):
            out.put(a - start, b - start, part)
            if progress is not None:
                progress(b, total)
        return out.arrays()
    with one_blas_thread():
        for a, b in bounds:
            out.put(a - start, b - start, batch(a, b))
            if progress is not None:
                progress(b, total)
    return out.arrays()


def _order(v: np.ndarray) -> str:
    """The memory order to gather ``v``'s batches in: "F" for a 2-D array laid out column by column (the per-patient
    records of :mod:`~doseesc.engines.chain`, patient-major), so that each batch copies in without transposing."""
    return "F" if v.ndim == 2 and v.flags.f_contiguous and not v.flags.c_contiguous else "C"


class _Gather:
    """Per-trial arrays of ``n`` trials filled batch by batch (allocated from the first batch's shapes and
    types; a later batch of another shape or type falls back to concatenation, as before)."""

    def __init__(self, n: int):
        self.n = n
        self.buf: dict | None = None
        self.parts: list | None = None

    def put(self, a: int, b: int, part: dict) -> None:
        if self.parts is not None:
            self.parts.append(part)
            return
        if self.buf is None:
            if b - a == self.n:               # one batch: its own arrays
                self.buf = dict(part)
                return
            self.buf = {key: np.empty((self.n,) + v.shape[1:], dtype=v.dtype, order=_order(v))
                        for key, v in part.items()}
        if part.keys() != self.buf.keys() or any(
                v.shape[1:] != self.buf[key].shape[1:] or v.dtype != self.buf[key].dtype for key, v in part.items()):
            self.parts = [{key: v[:a] for key, v in self.buf.items()}, part]
            return
        for key, v in part.items():
            self.buf[key][a:b] = v

    def arrays(self) -> dict:
        if self.parts is not None:
            return {key: np.concatenate([p[key] for p in self.parts]) for key in self.parts[0]}
        return self.buf if self.buf is not None else {}


# -- runs to a target precision ----------------------------------------------------------------------------
def max_select_mcse(selected: np.ndarray, n_tiers: int, ends: np.ndarray) -> np.ndarray:
    """The largest MCSE of P(select) (over No dose and the tiers) of the first ``ends[j]`` trials of
    ``selected`` for each ``j``: ``sqrt(p (1 - p) / (m - 1))`` with ``p`` the share of the first ``m`` trials
    selecting a tier (the sample standard deviation of the 0/1 indicator over ``sqrt(m)``, as
    :attr:`~doseesc.results.OperatingCharacteristics.p_select_mcse`)."""
    ends = np.asarray(ends, dtype=np.int64)
    counts = np.zeros((ends.size, n_tiers + 1))
    onehot = np.zeros((selected.size, n_tiers + 1), dtype=np.int32)
    onehot[np.arange(selected.size), np.asarray(selected) + 1] = 1
    cum = np.cumsum(onehot, axis=0)
    counts[:] = cum[ends - 1]
    m = ends[:, None].astype(float)
    p = counts / m
    return np.sqrt(p * (1 - p) / (m - 1)).max(axis=1)


def until_precise(batch: Callable[[int, int], dict], cap: int, batch_size: int, precision: float, step: int, *,
                  workers: int = 1, progress: Callable[[int, int], None] | None = None) -> tuple[dict, tuple]:
    """The trials of ``batch`` up to the first multiple of ``step`` trials (at most ``cap``; ``cap`` itself when
    no multiple reaches it) whose largest MCSE of P(select) (:func:`max_select_mcse`) is at or below
    ``precision``, and ``(reached, that MCSE)``.

    The stopping point depends only on the trials (the seed), never on how far the run looked ahead: the run
    simulates in rounds, each as long as the standard errors so far say is needed (at least one ``step``
    more), and keeps only the trials up to the first multiple of ``step`` that meets the target."""
    n_tiers = None
    parts: list[dict] = []
    done = 0
    nxt = min(cap, step)
    while True:
        parts.append(in_batches(nxt, batch_size, batch, progress, workers=workers, start=done, total=cap))
        done = nxt
        selected = np.concatenate([p["selected"] for p in parts]) if len(parts) > 1 else parts[0]["selected"]
        if n_tiers is None:
            n_tiers = int(parts[0]["n"].shape[1])
        ends = np.arange(step, done + 1, step)
        if done % step or ends.size == 0:
            ends = np.r_[ends, done]
        ends = ends[ends >= 2]
        se = max_select_mcse(selected, n_tiers, ends)
        ok = np.flatnonzero(se <= precision)
        if ok.size or done >= cap:
            j = int(ok[0]) if ok.size else ends.size - 1
            n = int(ends[j])
            out = {key: np.concatenate([p[key] for p in parts])[:n] if len(parts) > 1 else parts[0][key][:n]
                   for key in parts[0]}
            return out, (bool(ok.size), float(se[j]))
        p_now = np.bincount(selected + 1, minlength=n_tiers + 1) / selected.size
        need = float((p_now * (1 - p_now)).max()) / precision ** 2 + 1
        nxt = min(cap, max(done + step, -(-int(math.ceil(need)) // step) * step))


# -- workers -------------------------------------------------------------------------------------------------
_pool: tuple[int, object] | None = None
_tokens = itertools.count()
#: The batch function each worker process last unpickled: (token, function); tasks of one run share it.
_worker_batch: tuple | None = None


def worker_pool(workers: int):
    """A process pool of ``workers`` processes (forkserver where the platform has it, else spawn; never fork,
    which copies the parent's threads and locks), kept for later runs of the same size. The forkserver
    imports doseesc's engines once, so each worker starts without importing them again."""
    global _pool
    if _pool is not None and _pool[0] == workers:
        return _pool[1]
    if _pool is not None:
        _pool[1].shutdown(wait=True)
        _pool = None
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload(["doseesc.engines.montecarlo"])
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    _pool = (workers, pool)
    return pool


def shutdown_workers() -> None:
    """Stop the worker processes of :func:`worker_pool` (they also stop when the interpreter exits)."""
    global _pool
    if _pool is not None:
        _pool[1].shutdown(wait=True)
        _pool = None


def _worker_task(token: str, payload: bytes, a: int, b: int) -> dict:
    """One batch in a worker process: the run's batch function (unpickled once per run and worker, so that
    what a design remembers within a run, such as CRM's posterior memo, carries from batch to batch as in
    one process) on trials ``a..b-1``, with one BLAS thread."""
    global _worker_batch
    if _worker_batch is None or _worker_batch[0] != token:
        _worker_batch = (token, pickle.loads(payload))
    with one_blas_thread():
        return _worker_batch[1](a, b)


def _in_workers(batch, bounds: list, workers: int):
    """The answers of ``batch`` on each ``(start, stop)`` of ``bounds`` from the worker processes, in order;
    at most two batches per worker are pending at a time (bounded memory)."""
    pool = worker_pool(workers)
    token = f"{os.getpid()}-{next(_tokens)}"
    payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    pending: collections.deque = collections.deque()
    todo = iter(bounds)
    try:
        for a, b in itertools.islice(todo, 2 * workers):
            pending.append(pool.submit(_worker_task, token, payload, a, b))
        while pending:
            part = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_worker_task, token, payload, *nxt))
            yield part
    finally:
        for f in pending:
            f.cancel()


# -- the result ----------------------------------------------------------------------------------------------
def monte_carlo_result(design, scenario, ladder, target, obd_def, out: dict, patients: dict, prov: dict,
                       extra: dict, dose_model=None, two_dlt=None) -> OperatingCharacteristics:
    """The :class:`~doseesc.results.OperatingCharacteristics` of simulated trials ``out`` (per-trial arrays
    ``n``, ``y``, ``e``, ``selected``, ``reason``, ``fired``), each trial weighted ``1 / n_trials`` (one value
    broadcast over the trials: no memory per trial)."""
    n_trials = out["n"].shape[0]
    return OperatingCharacteristics(
        method="monte carlo", design=design, scenario=scenario,
        ladder=ladder if ladder is not None else DoseLadder.unlabelled(design.n_tiers),
        target=target, n=out["n"], y=out["y"], selected=out["selected"], reason=out["reason"],
        fired=out["fired"], e=out["e"] if scenario.true_eff is not None else None, obd=obd_def,
        weight=np.broadcast_to(1.0 / n_trials, (n_trials,)), n_trials=n_trials,
        patients=patients, provenance=prov, extra=extra, dose_model=dose_model, two_dlt=two_dlt)


def run_provenance(run: Run, seconds: float) -> dict:
    """The provenance of a Monte Carlo run: seed, batch size, time, and the models it ran with."""
    prov = provenance(run.design, run.scenario, method="monte carlo", n_trials=run.n_trials, seed=run.seq,
                      batch_size=run.batch_size, seconds=seconds, target=run.target)
    if run.dose_model is not None:
        prov["dose_model"] = run.dose_model.to_dict()
        prov["dose_model_text"] = run.dose_model.describe(run.ladder)
    if run.calendar is not None:
        prov["calendar"] = run.calendar.to_dict()
        prov["calendar_text"] = run.calendar.describe()
    return prov


def run_result(run: Run, out: dict, patients: dict | None, extra: dict, seconds: float,
               two_dlt: np.ndarray | None = None) -> OperatingCharacteristics:
    """The result of the checked run ``run`` from its per-trial arrays ``out``, per-patient arrays
    ``patients`` (None: not kept, then ``two_dlt`` is the per-trial flag they would give to
    ``p_two_dlt_cohort``) and per-trial ``extra`` metrics (``{key: (values, definition)}``)."""
    return monte_carlo_result(run.design, run.scenario, run.ladder, run.target, run.obd, out, patients,
                              run_provenance(run, seconds), extra, dose_model=run.dose_model, two_dlt=two_dlt)


#: Decide once per distinct state (:func:`decide_distinct`); False: every trial apart (tests compare the two).
DISTINCT_STATES = True
#: The distinct path is taken where the distinct states are at most this share of the trials deciding.
DISTINCT_SHARE = 0.5


@contextlib.contextmanager
def trial_by_trial():
    """Within the block, the Monte Carlo engine asks the kernel about every trial (no deciding once per
    distinct state): :func:`doseesc.testing.check_design` uses it so that a kernel depending on more than the
    trial's state (its row, the batch) is caught. Results of a correct design are identical either way."""
    global DISTINCT_STATES
    before, DISTINCT_STATES = DISTINCT_STATES, False
    try:
        yield
    finally:
        DISTINCT_STATES = before


def _spread(dec: Decision, inverse: np.ndarray) -> Decision:
    """The decisions ``dec`` on distinct states, one per trial: trial ``i`` gets ``dec``'s row ``inverse[i]``."""
    return Decision(**{f.name: None if getattr(dec, f.name) is None else getattr(dec, f.name)[inverse]
                       for f in dataclasses.fields(Decision)})


@dataclasses.dataclass
class Decided:
    """The decisions on the trials ``act`` of a state: ``dec`` per trial and, where they were made once per
    distinct state, those states (``distinct``), their decisions (``distinct_dec``) and each trial's row among
    them (``inverse``)."""

    act: np.ndarray
    dec: Decision
    distinct: TrialState | None = None
    distinct_dec: Decision | None = None
    inverse: np.ndarray | None = None
    #: The state of the trials ``act`` where the decisions were made trial by trial.
    sub: TrialState | None = None
    #: True where the distinct states were looked for and were too many (above :data:`DISTINCT_SHARE`).
    crowded: bool = False


def decide_distinct(design, state: TrialState, act: np.ndarray, distinct: bool = True) -> Decided:
    """``design.step`` on the trials ``act`` of ``state``: once per distinct state (:meth:`TrialState.key`) and
    broadcast, where the distinct states are at most :data:`DISTINCT_SHARE` of the trials; otherwise (or with
    ``distinct`` False) on every trial. A kernel is a function of the state alone, so both give the same
    decisions. ``crowded`` in the answer tells a caller that the distinct states were too many (later cohorts
    of the same trials will have more: the caller may stop looking)."""
    full = act.size == state.n_trials
    crowded = False
    if DISTINCT_STATES and distinct and act.size > 1:
        key = state.key()
        if key is not None:
            first, inverse = group_keys(key if full else key[act])
            if first.size <= DISTINCT_SHARE * act.size:
                rep = state.take(act[first])
                ddec = design.step(rep)
                return Decided(act, _spread(ddec, inverse), rep, ddec, inverse)
        crowded = True
    sub = state if full else state.take(act)
    return Decided(act, design.step(sub), sub=sub, crowded=crowded)


def conclude_decided(design, decided: Decided, selected, reason) -> None:
    """:func:`conclude` for decisions made by :func:`decide_distinct`: the final choice once per distinct
    stopped state, broadcast to its trials."""
    if decided.distinct is None:
        conclude(design, decided.act, decided.sub, decided.dec, selected, reason)
        return
    st = decided.dec.stop
    done = decided.act[st]
    if not done.size:
        return
    ddec = decided.distinct_dec
    dst = ddec.stop
    pick = np.full(dst.size, -1, dtype=np.int32)
    pick[dst] = design.conclude(decided.distinct.take(dst), ddec.reason[dst])
    reason[done] = decided.dec.reason[st]
    selected[done] = pick[decided.inverse[st]]


def conclude(design, act, sub, dec, selected, reason) -> None:
    """The final choice and stop reason of the trials ``act`` that the decisions ``dec`` (made on ``sub``,
    the state of those trials) stop; :meth:`~doseesc.state.TrialState.advance` then moves the state."""
    st = dec.stop
    done = act[st]
    if done.size:
        reason[done] = dec.reason[st]
        selected[done] = design.conclude(sub.take(st), dec.reason[st])


def apply_decisions(design, state, act, sub, dec, selected, reason, fired, size) -> None:
    """Apply the decisions ``dec`` made on ``sub`` (the trials ``act`` of ``state``): stopped trials conclude,
    the others move to their next tier, cohort size, phase and auxiliary state."""
    fired[act] |= dec.fired
    st = dec.stop
    conclude(design, act, sub, dec, selected, reason)
    state.active[act[st]] = False
    go = ~st
    state.current[act[go]] = dec.next[go]
    if dec.size is not None:
        size[act[go]] = dec.size[go]
    if dec.phase is not None:
        state.phase[act[go]] = dec.phase[go]
    if dec.aux is not None:
        state.aux[act[go]] = dec.aux[go]
