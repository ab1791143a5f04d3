"""The seamless phase 2 stage after an escalation run (issue 22 item 3).

:func:`run_phase2` takes an escalation result (Monte Carlo: one record per trial; exact: weighted terminal
states) and a :class:`~doseesc.phase2.Phase2Stage`, and treats the stage's patients at each trial's selected
tier (a trial that selected no dose has no phase 2). It returns a :class:`Phase2Result`: P(declare
promising), P(promising | the selected tier is the true MTD / OBD), the expected total N (escalation +
phase 2) and, given a calendar, the mean time to the phase 2 decision.

Monte Carlo: the k-th phase 2 patient of trial i has the latent uniforms ``u_T = PHASE2_TOX[i, k]`` and
``u_E = PHASE2_EFF[i, k]`` (:func:`doseesc.rng.patient_uniforms`, by block of the escalation's root seed), a
DLT when ``u_T < P(DLT)`` and a response when ``u_E < P(response | DLT or not)`` at the selected tier (the
scenario's joint probabilities: its association or its curve-averaged ``true_joint``), so the numbers do not
depend on the batch size, and the escalation's own streams are untouched.

Exact: the stage is applied at the selected tier, so P(promising) = sum over tiers of P(select tier) x
P(promising | tier truth), with the stage's exact operating characteristics
(:func:`doseesc.phase2.stage_oc`); likewise the expected phase 2 N and the time. For a Monte Carlo
escalation this is the "exact given the selections" value (the escalation's P(select) estimated, the stage
exact).

Time (with a :class:`~doseesc.calendar.Calendar`): the phase 2 starts at the escalation's decision
(``time_to_decision_days`` of the calendar run); its patients are infused one accrual gap apart (the mean
gap of the calendar: DAYS_PER_MONTH / (accrual_rate x (1 - screen_fail) x (1 - dropout)) per infused
patient, Poisson arrivals having that mean gap), each after the mean vein-to-vein time, and each analysis
waits for its last patient's observation window (the longer of the DLT and response windows); accrual
pauses at an interim analysis. The time of a stage stopping at look k is therefore the sum over looks j <= k
of (new patients x gap + vein_to_vein_days + window). Expected values, not draws: no stream is spent on time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._lazy import lazy
from ..errors import DoseescError
from ..phase2 import Phase2Stage, stage_oc
from ..rng import BLOCK_SIZE, Stream, patient_uniforms
from ..tiers import DAYS_PER_MONTH

pd = lazy("pandas")

DEFINITIONS = {
    "p_promising": "probability that the trial selects a tier and the phase 2 stage declares it promising",
    "p_promising_given_mtd": "P(declare promising | the escalation selected the true MTD)",
    "p_promising_given_obd": "P(declare promising | the escalation selected the true OBD)",
    "expected_n_phase2": "mean phase 2 patients per trial (0 where no tier was selected)",
    "expected_n_total": "mean patients per trial, escalation + phase 2",
    "time_to_phase2_decision_days": "mean days from the first escalation patient to the phase 2 decision "
                                    "(the escalation's decision where no tier was selected)",
}


@dataclass(frozen=True, eq=False)
class Phase2Result:
    """Phase 2 stage results of one design under one scenario; ``mcse`` maps metric -> MCSE (0 for exact)."""

    method: str                 # "monte carlo" or "exact"
    stage: Phase2Stage
    scenario: str
    design: str
    metrics: dict
    mcse: dict
    #: Per tier: P(select), the stage's exact P(promising | tier) and expected phase 2 N.
    by_tier: pd.DataFrame
    #: Per trial (Monte Carlo only): promising (bool) and phase 2 patients; None for exact results.
    promising: np.ndarray | None = None
    n_phase2: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        rows = [{"metric": k, "value": v, "mcse": self.mcse.get(k, 0.0), "definition": DEFINITIONS[k]}
                for k, v in self.metrics.items()]
        return pd.DataFrame(rows)

    def row(self) -> dict:
        """One flat row (scenario, design, method, each metric and its MCSE) for a table over scenarios."""
        out = {"scenario": self.scenario, "design": self.design, "method": self.method}
        for k, v in self.metrics.items():
            out[k] = v
            out[f"{k}_mcse"] = self.mcse.get(k, 0.0)
        return out


def _stage_times(stage: Phase2Stage, calendar) -> np.ndarray:
    """Days from the start of the stage to the analysis at each look (see the module docstring)."""
    rule = stage.rule
    rate = calendar.accrual_rate * (1 - calendar.screen_fail) * (1 - calendar.dropout)
    gap = DAYS_PER_MONTH / rate
    window = max(calendar.dlt_window_days, calendar.eff_window_days or calendar.dlt_window_days)
    new = np.diff(np.concatenate([[0], rule.looks]))
    return np.cumsum(new * gap + calendar.vein_to_vein_days + window)


def _tier_oc(stage: Phase2Stage, scenario) -> list[dict]:
    if scenario.true_eff is None:
        raise DoseescError(f"phase 2: scenario {scenario.name!r} has no true_eff (the response rate the stage "
                           "tests)")
    joint = scenario.joint()
    return [stage_oc(stage.rule, joint=joint[t]) for t in range(scenario.n_tiers)]


def _targets(result) -> dict:
    out = {"p_promising_given_mtd": result.true_mtd}
    if result.obd is not None and result.true_obd is not None:
        out["p_promising_given_obd"] = result.true_obd
    return out


def _by_tier(result, ocs, p_sel) -> pd.DataFrame:
    labels = list(result.ladder.tier_labels)
    return pd.DataFrame({"tier": ["No dose"] + labels, "p_select": p_sel,
                         "p_promising_at_tier": [0.0] + [o["p_promising"] for o in ocs],
                         "expected_n_phase2_at_tier": [0.0] + [o["expected_n"] for o in ocs]})


def phase2_exact(result, stage: Phase2Stage, *, calendar=None, design_name: str | None = None) -> Phase2Result:
    """The exact phase 2 results given the escalation's P(select): sum over tiers of P(select tier) x the
    stage's exact operating characteristics at the tier's truth (exact when ``result`` is exact)."""
    ocs = _tier_oc(stage, result.scenario)
    p_sel = np.asarray(result.p_select, dtype=float)                     # No dose first
    q = np.array([0.0] + [o["p_promising"] for o in ocs])
    en2 = np.array([0.0] + [o["expected_n"] for o in ocs])
    metrics = {"p_promising": float(p_sel @ q)}
    for name, tier in _targets(result).items():
        metrics[name] = float(q[tier + 1]) if tier is not None and tier >= 0 else math.nan
    metrics["expected_n_phase2"] = float(p_sel @ en2)
    metrics["expected_n_total"] = float(result.expected_n + p_sel @ en2)
    if calendar is not None and "time_to_decision_days" in result.extra:
        times = _stage_times(stage, calendar)
        t_stage = np.array([0.0] + [float(o["p_stop"] @ times + (1 - o["p_stop"].sum()) * times[-1]) for o in ocs])
        dec = np.asarray(result.extra["time_to_decision_days"][0], dtype=float)
        metrics["time_to_phase2_decision_days"] = float(result._mean(dec)[0] + p_sel @ t_stage)
    return Phase2Result("exact", stage, result.scenario.name, design_name or _design_name(result), metrics,
                        {k: 0.0 for k in metrics}, _by_tier(result, ocs, p_sel))


def _design_name(result) -> str:
    return getattr(result.design, "name", None) or type(result.design).__name__


def _seed_of(result) -> np.random.SeedSequence:
    rec = result.provenance.get("seed")
    if rec is None:
        raise DoseescError("phase 2 Monte Carlo needs a Monte Carlo escalation result with its seed "
                           "(use phase2_exact for an exact result)")
    return np.random.SeedSequence(rec["entropy"], spawn_key=tuple(rec["spawn_key"]))


def simulate_stage(selected, scenario, stage: Phase2Stage, seq, *, start: int = 0,
                   batch_size: int = 8 * BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stage at each trial's selected tier, trials ``start..start + len(selected) - 1`` of the run seeded
    by ``seq``: ``(promising bool, phase 2 patients int, stopping look int (-1: no stage))``, each
    ``(n_trials,)``. Vectorised over trials in batches; results do not depend on ``batch_size``."""
    selected = np.asarray(selected, dtype=int)
    rule = stage.rule
    looks = np.array(rule.looks)
    eff = np.array(rule.eff_stop)
    tox = None if rule.tox_stop is None else np.array(rule.tox_stop)
    joint = scenario.joint()
    p_t = joint[:, 1] + joint[:, 3]
    e_given_t, e_given_n = scenario.response_given_tox()
    n_max = rule.max_n
    total = selected.size
    promising = np.zeros(total, dtype=bool)
    n2 = np.zeros(total, dtype=np.int64)
    look_at = np.full(total, -1, dtype=np.int64)
    for lo in range(0, total, batch_size):
        hi = min(lo + batch_size, total)
        s = selected[lo:hi]
        ok = s >= 0
        t = np.where(ok, s, 0)
        u_t = patient_uniforms(seq, start + lo, start + hi, n_max, Stream.PHASE2_TOX)
        u_e = patient_uniforms(seq, start + lo, start + hi, n_max, Stream.PHASE2_EFF)
        dlt = u_t < p_t[t][:, None]
        resp = u_e < np.where(dlt, e_given_t[t][:, None], e_given_n[t][:, None])
        x = np.cumsum(resp, axis=1)[:, looks - 1]                          # (B, K) responses at each look
        y = np.cumsum(dlt, axis=1)[:, looks - 1]
        stop = x <= eff[None, :]
        if tox is not None:
            stop |= y >= tox[None, :]
        any_stop = stop.any(axis=1)
        first = np.where(any_stop, np.argmax(stop, axis=1), len(looks) - 1)
        promising[lo:hi] = ok & ~any_stop
        n2[lo:hi] = np.where(ok, looks[first], 0)
        look_at[lo:hi] = np.where(ok, first, -1)
    return promising, n2, look_at


def run_phase2(result, stage: Phase2Stage, *, calendar=None, design_name: str | None = None,
               batch_size: int = 8 * BLOCK_SIZE) -> Phase2Result:
    """The phase 2 stage after ``result``: Monte Carlo on the trials of a Monte Carlo result (with the
    exact-given-selection values in ``extra["exact"]``), exact for an exact result."""
    if not isinstance(stage, Phase2Stage):
        raise DoseescError(f"phase 2: stage = {stage!r} must be a Phase2Stage")
    if result.is_exact:
        return phase2_exact(result, stage, calendar=calendar, design_name=design_name)
    ocs = _tier_oc(stage, result.scenario)
    seq = _seed_of(result)
    promising, n2, look_at = simulate_stage(result.selected, result.scenario, stage, seq, batch_size=batch_size)
    metrics, mcse = {}, {}
    metrics["p_promising"], mcse["p_promising"] = _mean_se(promising.astype(float))
    for name, tier in _targets(result).items():
        if tier is not None and tier >= 0 and (result.selected == tier).any():
            metrics[name], mcse[name] = _mean_se(promising[result.selected == tier].astype(float))
        else:
            metrics[name], mcse[name] = math.nan, math.nan
    metrics["expected_n_phase2"], mcse["expected_n_phase2"] = _mean_se(n2.astype(float))
    metrics["expected_n_total"], mcse["expected_n_total"] = _mean_se(result.total_n + n2)
    extra = {}
    if calendar is not None and "time_to_decision_days" in result.extra:
        times = _stage_times(stage, calendar)
        dec = np.asarray(result.extra["time_to_decision_days"][0], dtype=float)
        t2 = dec + np.where(look_at >= 0, times[np.maximum(look_at, 0)], 0.0)
        metrics["time_to_phase2_decision_days"], mcse["time_to_phase2_decision_days"] = _mean_se(t2)
        extra["time_to_phase2_decision_days"] = t2
    extra["exact"] = phase2_exact(result, stage, calendar=calendar, design_name=design_name)
    p_sel = np.asarray(result.p_select, dtype=float)
    return Phase2Result("monte carlo", stage, result.scenario.name, design_name or _design_name(result), metrics,
                        mcse, _by_tier(result, ocs, p_sel), promising=promising, n_phase2=n2, extra=extra)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    se = x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else math.nan
    return float(x.mean()), float(se)


def phase2_table(results, stage: Phase2Stage, *, calendar=None, names=None) -> pd.DataFrame:
    """One row per escalation result (design x scenario) with the phase 2 metrics and their MCSE."""
    rows = []
    for i, r in enumerate(results):
        name = None if names is None else names[i]
        rows.append(run_phase2(r, stage, calendar=calendar, design_name=name).row())
    return pd.DataFrame(rows)


def study_phase2(study, stage: Phase2Stage | None = None) -> pd.DataFrame:
    """Per design x scenario of a :class:`~doseesc.study.Study`, the phase 2 stage (``stage``, default the
    protocol's ``phase2``) after each escalation result: columns ``design``, ``scenario``, ``method``, each
    metric of :data:`DEFINITIONS` with its MCSE, and ``p_promising_exact`` (the exact P(select) x stage OC:
    the exact escalation run where the study has one (method "auto" or "exact"), else the Monte Carlo
    selections). Time uses the protocol's calendar for results of a calendar run."""
    stage = stage if stage is not None else getattr(study.protocol, "phase2", None)
    if stage is None:
        return pd.DataFrame()
    calendar = getattr(study.protocol, "calendar", None)
    rows = []
    for r in study.results:
        name = study.name_of(r)
        res = run_phase2(r, stage, calendar=calendar, design_name=name)
        row = res.row()
        ex = study.exact_of(r)
        exact = phase2_exact(ex, stage, design_name=name) if ex is not None else res.extra.get("exact", res)
        row["p_promising_exact"] = exact.metrics["p_promising"]
        row["exact_from"] = "exact escalation" if ex is not None else "simulated selections"
        rows.append(row)
    return pd.DataFrame(rows)
