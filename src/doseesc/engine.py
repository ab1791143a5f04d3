"""Monte Carlo engine: all trials of a batch step together, cohort by cohort."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .designs.base import Design
from .errors import DesignError, DoseescError
from .rng import Stream, patient_uniforms, root_seed
from .scenario import Scenario
from .state import TrialState
from .tiers import DoseLadder


def check_compatible(design: Design, scenario: Scenario) -> None:
    if not isinstance(design, Design):
        raise DesignError(f"design = {design!r} is not a doseesc design")
    if not isinstance(scenario, Scenario):
        raise DoseescError(f"scenario = {scenario!r} is not a doseesc Scenario")
    if design.n_tiers != scenario.n_tiers:
        raise DesignError(
            f"design {design.label!r} has {design.n_tiers} tiers but scenario {scenario.name!r} "
            f"gives true_tox for {scenario.n_tiers}")


def run_batch(design: Design, true_tox: np.ndarray, u_tox: np.ndarray, u_eff: np.ndarray | None = None,
              eff_given: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Simulate one batch of trials with latent uniforms ``u_tox`` ``(n_trials, max_n)``.

    Patient ``k`` of trial ``i`` has a DLT when ``u_tox[i, k] < true_tox[tier]``; with ``u_eff`` and
    ``eff_given`` = (P(response | DLT), P(response | no DLT)) per tier, a response when
    ``u_eff[i, k]`` is below the probability that matches the patient's DLT outcome.
    Returns per-trial arrays (``n``, ``y``, ``selected``, ``reason``) and
    per-patient arrays (``tier``, ``tox``, ``new_cohort``; tier -1 past the end).
    """
    n_trials = u_tox.shape[0]
    k, max_n = design.n_tiers, design.max_n
    if u_tox.shape[1] < max_n:
        raise ValueError(f"u_tox has {u_tox.shape[1]} patients per trial; the design needs {max_n}")
    u_flat = np.ascontiguousarray(u_tox[:, :max_n]).ravel()
    eff_on = u_eff is not None
    if eff_on:
        e_flat = np.ascontiguousarray(u_eff[:, :max_n]).ravel()
        pe_t, pe_n = (np.asarray(a, float) for a in eff_given)
    pt_eff = np.zeros((n_trials, max_n), dtype=bool)
    state = TrialState.empty(n_trials, k, design.start)
    tier_dtype = np.int8 if k < 127 else np.int16
    pt_tier = np.full((n_trials, max_n), -1, dtype=tier_dtype)
    pt_tox = np.zeros((n_trials, max_n), dtype=bool)
    pt_new = np.zeros((n_trials, max_n), dtype=bool)
    total = np.zeros(n_trials, dtype=np.int32)
    selected = np.full(n_trials, -1, dtype=np.int32)
    reason = np.zeros(n_trials, dtype=np.int8)
    fired = np.zeros(n_trials, dtype=np.int16)
    size = np.full(n_trials, design.first_size, dtype=np.int32)
    p = np.asarray(true_tox, dtype=float)

    for _ in range(max_n + 1):
        act = np.flatnonzero(state.active)
        if act.size == 0:
            break
        cur = state.current[act]
        width = min(design.max_size, max_n)
        # patients j = 0..width-1 of this cohort: slot total + j, if within the cohort and max_n
        slots = total[act][:, None] + np.arange(width)[None, :]
        take = (np.arange(width)[None, :] < size[act][:, None]) & (slots < max_n)
        slots = np.minimum(slots, max_n - 1)
        flat = act[:, None] * max_n + slots          # flat index of each patient slot
        dlt = (u_flat[flat] < p[cur][:, None]) & take
        full = bool(take.all())
        cnt = np.full(act.size, width, dtype=np.int32) if full else take.sum(axis=1).astype(np.int32)
        state.n[act, cur] += cnt
        ncoh = dlt.sum(axis=1, dtype=np.int32)
        state.y[act, cur] += ncoh
        state.last_n[act] = cnt
        state.last_y[act] = ncoh
        if eff_on:
            pe = np.where(dlt, pe_t[cur][:, None], pe_n[cur][:, None])
            resp = (e_flat[flat] < pe) & take
            state.e[act, cur] += resp.sum(axis=1, dtype=np.int32)
            state.ye[act, cur] += (resp & dlt).sum(axis=1, dtype=np.int32)
            if full:
                pt_eff.ravel()[flat] = resp
            else:
                pt_eff.ravel()[flat[take]] = resp[take]
        if full:
            pt_tier.ravel()[flat] = cur[:, None]
            pt_tox.ravel()[flat] = dlt
        else:
            pt_tier.ravel()[flat[take]] = np.broadcast_to(cur[:, None], take.shape)[take]
            pt_tox.ravel()[flat[take]] = dlt[take]
        first = take[:, 0]
        pt_new.ravel()[flat[first, 0]] = True
        total[act] += cnt
        sub = state if act.size == n_trials else state.take(act)
        dec = design.step(sub)
        fired[act] |= dec.fired
        st = dec.stop
        done = act[st]
        if done.size:
            reason[done] = dec.reason[st]
            selected[done] = design.conclude(sub.take(st), dec.reason[st])
            state.active[done] = False
        go = ~st
        state.current[act[go]] = dec.next[go]
        if dec.size is not None:
            size[act[go]] = dec.size[go]
        if dec.phase is not None:
            state.phase[act[go]] = dec.phase[go]
        if dec.aux is not None:
            state.aux[act[go]] = dec.aux[go]
    else:  # pragma: no cover - guarded by max_n in Design.step
        raise RuntimeError(f"{design.label}: trials did not stop within max_n = {max_n} cohorts")
    return {"n": state.n, "y": state.y, "e": state.e, "ye": state.ye, "selected": selected, "reason": reason,
            "fired": fired, "tier": pt_tier, "tox": pt_tox, "eff": pt_eff, "new_cohort": pt_new}


def simulate(design: Design, scenario: Scenario, n_trials: int = 10_000, *, rng=None,
             target: float | None = None, ladder: DoseLadder | None = None, obd=None,
             batch_size: int = 8192, progress: Callable[[int, int], None] | None = None):
    """Simulate ``n_trials`` trials of ``design`` under ``scenario``.

    Parameters
    ----------
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

    Returns
    -------
    OperatingCharacteristics
        With ``method == "monte carlo"`` and Monte Carlo standard errors.
    """
    from .obd import resolve_obd
    from .results import OperatingCharacteristics, provenance, resolve_target

    check_compatible(design, scenario)
    obd_def = resolve_obd(obd, design, scenario)
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 2:
        raise DoseescError(f"n_trials = {n_trials!r} must be an integer of at least 2")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DoseescError(f"batch_size = {batch_size!r} must be a positive integer")
    seq = root_seed(rng)
    tgt = resolve_target(target, scenario, design)
    p = np.asarray(scenario.true_tox, dtype=float)
    parts = []
    t0 = time.perf_counter()
    for start in range(0, int(n_trials), int(batch_size)):
        stop = min(start + int(batch_size), int(n_trials))
        u = patient_uniforms(seq, start, stop, design.max_n, Stream.TOX)
        if scenario.true_eff is not None:
            ue = patient_uniforms(seq, start, stop, design.max_n, Stream.EFF)
            parts.append(run_batch(design, p, u, ue, scenario.response_given_tox()))
        else:
            if getattr(design, "uses_efficacy", False):
                raise DoseescError(f"{design.label} needs true_eff in scenario {scenario.name!r}")
            parts.append(run_batch(design, p, u))
        if progress is not None:
            progress(stop, int(n_trials))
    out = {key: np.concatenate([b[key] for b in parts]) for key in parts[0]}
    prov = provenance(design, scenario, method="monte carlo", n_trials=int(n_trials), seed=seq,
                      batch_size=int(batch_size), seconds=time.perf_counter() - t0, target=tgt)
    return OperatingCharacteristics(
        method="monte carlo", design=design, scenario=scenario,
        ladder=ladder if ladder is not None else DoseLadder.unlabelled(design.n_tiers),
        target=tgt, n=out["n"], y=out["y"], selected=out["selected"], reason=out["reason"],
        fired=out["fired"], e=out["e"] if scenario.true_eff is not None else None, obd=obd_def,
        weight=np.full(int(n_trials), 1.0 / int(n_trials)), n_trials=int(n_trials),
        patients={"tier": out["tier"], "tox": out["tox"], "eff": out["eff"], "new_cohort": out["new_cohort"]},
        provenance=prov)
