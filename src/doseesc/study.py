"""Run every design x scenario of a protocol: the library call behind the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._lazy import lazy
from ._version import __version__
from .actual_dose import nominal_scenario
from .engines.strata import StrataResult, simulate_indications
from .compare import Comparison, impact
from .engines.exact import exact
from .engines.backfill import simulate_backfill
from .engines.montecarlo import simulate
from .engines.phase2 import study_phase2
from .errors import DoseescError
from .files import atomic_write
from .limits import PREFER_EXACT_STATES
from .indications import IndicationScenario, indication_sections, indication_text
from .protocol import Protocol
from .report.committee import CommitteeReport, build_report, key_metrics_table, scenario_results
from .report.document import _table_html, html_text
from .report.labels import design_colours
from .results import WORST_CASE, OperatingCharacteristics
from .rng import root_seed, seed_record

pd = lazy("pandas")

#: Methods of :func:`run_protocol`.
METHODS = ("simulate", "exact", "auto")


def exact_refusal(protocol: Protocol, design, name: str | None = None) -> str | None:
    """Why the exact engine cannot stand in for the Monte Carlo run of ``design`` in ``protocol``, or None.

    The exact engine enumerates counts. It gives the run's own selections and allocations when the
    design decides on complete cohorts' counts: with or without a calendar (the calendar is laid over the
    untimed trials and changes no selection; its time metrics stay Monte Carlo), not with the actual-dose
    model (actual doses change the outcomes) nor for a time-to-event design simulated in calendar time, nor
    for a design ``name`` whose ``conduct`` is parallel or staggered (several escalations) or
    that has backfill cohorts (treated in calendar time)."""
    conduct = protocol.conducts.get(name) if name is not None else None
    if conduct is not None and conduct.policy != "pooled":
        return f"conduct {conduct.policy!r} runs an escalation per indication or stratum: Monte Carlo only"
    if name is not None and name in protocol.backfills:
        return "backfill cohorts are treated in calendar time while the escalation waits: Monte Carlo only"
    if protocol.dose_model is not None:
        return "the actual-dose model changes the patients' outcomes: Monte Carlo only"
    if design.time_to_event and (not design.complete_data or protocol.calendar is not None):
        return "a time-to-event design decides on partial follow-up in calendar time: Monte Carlo only"
    return None


def _timed(name: str, mc: OperatingCharacteristics) -> bool:
    """A metric of the Monte Carlo run ``mc`` that depends on its realism models (calendar, actual dose)."""
    return name in mc.extra or (name == "expected_screened" and (mc.screened is not None or "n_enrolled" in mc.extra))


def preferred_metrics(mc: OperatingCharacteristics | None, ex: OperatingCharacteristics | None) -> pd.DataFrame:
    """``mc.metrics()`` with every row the exact run ``ex`` gives exactly in its place, and a ``method`` column
    (``"exact"`` or ``"monte carlo"``) per row.

    A row comes from ``ex`` when its exact estimate is finite and the metric does not depend on the Monte
    Carlo run's calendar or actual-dose model (durations, waiting, patients screened: :func:`_timed`);
    ``p_two_dlt_cohort`` (NaN for exact runs) stays Monte Carlo. With ``mc`` None, ``ex.metrics()``."""
    if mc is None:
        m = ex.metrics().copy()
        m["method"] = ex.method
        return m
    m = mc.metrics().copy()
    m["method"] = mc.method
    if ex is None:
        return m
    e = ex.metrics()
    for name in m.index:
        if name in e.index and math.isfinite(e.loc[name, "estimate"]) and not _timed(name, mc):
            for col in ("estimate", "mcse", "definition"):
                m.at[name, col] = e.at[name, col]
            m.at[name, "method"] = ex.method
    return m


def _scenario_weights(weights, names: list[str]) -> np.ndarray:
    """Weights per scenario of ``names`` (not normalised): equal by default, a dict by scenario name, or a
    sequence in the study's scenario order."""
    if weights is None:
        return np.ones(len(names))
    if isinstance(weights, dict):
        unknown = [k for k in weights if k not in names]
        if unknown:
            raise DoseescError(f"weights: no scenario named {unknown[0]!r} in the study (scenarios: {', '.join(names)})")
        missing = [n for n in names if n not in weights]
        if missing:
            raise DoseescError(f"weights: no weight for scenario {missing[0]!r} (give every scenario a weight, "
                               "0 to leave it out)")
        w = [weights[n] for n in names]
    else:
        w = list(weights)
        if len(w) != len(names):
            raise DoseescError(f"weights = {weights!r}: {len(w)} weights for {len(names)} scenarios "
                               f"({', '.join(names)})")
    for name, v in zip(names, w):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(v)) or v < 0:
            raise DoseescError(f"weights: scenario {name!r} has weight {v!r}; weights must be non-negative numbers")
    w = np.asarray(w, dtype=float)
    if w.sum() <= 0:
        raise DoseescError("weights: every weight is 0")
    return w


def _average_mcse(name: str, cells: list, w: np.ndarray) -> float:
    """MCSE of ``sum_s w_s est_s`` over the scenario cells ``(est, se, result)`` (``w`` normalised).

    Exact cells add no error. Monte Carlo runs with the same seed and number of trials share their patients
    (``run_protocol`` gives every scenario the same latent uniforms), so they are correlated: for a metric that
    is a mean of per-trial values the MCSE is that of the per-trial weighted sum, SD over trials / sqrt(T)
    (the covariances included). Runs with different seeds are independent: sqrt(sum w_s^2 se_s^2) (equal
    weights: sqrt(sum se_s^2) / k). Where per-trial values are not available within a group of shared
    patients (``sd_n``, quantiles, extras with NaN entries) the bound sum w_s se_s (perfect correlation) is
    used for that group."""
    groups: dict = {}
    for (est, se, r), ws in zip(cells, w):
        if r is None or r.is_exact or se == 0:
            continue
        seed = (r.provenance or {}).get("seed")
        key = (json.dumps(seed, sort_keys=True, default=str), r.n_trials) if seed is not None else id(r)
        groups.setdefault(key, []).append((ws, se, r))
    var = 0.0
    for members in groups.values():
        if len(members) == 1:
            ws, se, _ = members[0]
            var += (ws * se) ** 2
            continue
        xs = [r.values(name) for _, _, r in members]
        if all(x is not None and not np.isnan(x).any() for x in xs):
            total = sum(ws * x for (ws, _, _), x in zip(members, xs))
            var += float(total.var(ddof=1)) / total.size
        else:
            var += sum(ws * se for ws, se, _ in members) ** 2
    return math.sqrt(var)


@dataclass(frozen=True)
class Study:
    """Results of a protocol's designs under its scenarios (one run each).

    ``results`` are the Monte Carlo runs (methods ``"simulate"`` and ``"auto"``) or the exact runs (method
    ``"exact"``), in scenario-major order. Method ``"auto"`` holds, beside the Monte Carlo runs (which the paired
    comparison needs), the exact runs wherever the exact engine applies (:attr:`exact_results`, keyed
    ``(scenario, design)`` as :class:`~doseesc.compare.Comparison`), with the reason elsewhere
    (:attr:`exact_skipped`); :meth:`preferred`, :meth:`metrics` ``(prefer_exact=True)``, :meth:`summary`
    ``(prefer_exact=True)`` and :meth:`averages` use them and say per result or row which was used.
    """

    protocol: Protocol
    method: str
    results: tuple[OperatingCharacteristics, ...]
    seed: dict | None = None
    command: str = ""
    extra: dict = field(default_factory=dict)
    #: Method ``"auto"``: the exact run of each (scenario name, design name) the exact engine accepted.
    exact_results: dict = field(default_factory=dict)
    #: Method ``"auto"``: why each other (scenario name, design name) has no exact run.
    exact_skipped: dict = field(default_factory=dict)
    #: Files with [[indication]] tables: the per-indication run (:class:`~doseesc.engines.strata.StrataResult`)
    #: of each (scenario name, design name) (see :func:`run_protocol` for which run it is).
    indication_results: dict[tuple[str, str], StrataResult] = field(default_factory=dict)
    #: Files with [[indication]] tables: why a (scenario name, design name) has no per-indication run, or what
    #: its per-indication run leaves out (the calendar, the actual-dose model), keyed like
    #: :attr:`indication_results`.
    indication_notes: dict = field(default_factory=dict)

    # -- several indications ----------------------------------------------------------------------------
    def _indication_long(self, table: str) -> pd.DataFrame:
        frames = []
        for (s, d), sr in self.indication_results.items():
            df = getattr(sr, table)()
            df.insert(0, "conduct", sr.conduct.policy)
            df.insert(0, "scenario", s)
            df.insert(0, "design", d)
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=["design", "scenario", "conduct", "indication"])
        return pd.concat(frames, ignore_index=True)

    def by_indication(self) -> pd.DataFrame:
        """Per design x scenario (columns ``design``, ``scenario``, ``conduct``), one row per indication and tier
        (:meth:`~doseesc.engines.strata.StrataResult.by_indication`: ``indication`` (``pooled`` rows in pooled
        conduct), ``tier`` (``No dose`` first), true P(DLT) and P(response), P(select) and its MCSE, mean patients,
        DLTs and responses per trial, true MTD/OBD flags). Empty without [[indication]] tables."""
        return self._indication_long("by_indication")

    def indication_metrics(self) -> pd.DataFrame:
        """Per design x scenario, one row per indication: share, true MTD and P(select it), P(selected above
        it), P(no dose), mean N and DLTs, true OBD and P(select it), each with its MCSE."""
        return self._indication_long("indication_metrics")

    def indication_files(self) -> dict:
        """The per-indication CSV tables of an ``--out`` folder, by file name (empty without indications):
        ``by_indication.csv`` and ``indication_metrics.csv``."""
        if not self.indication_results:
            return {}
        return {"by_indication.csv": self.by_indication(), "indication_metrics.csv": self.indication_metrics()}

    def indication_sections(self) -> list[dict]:
        """The data of the committee report's section per indication
        (:func:`doseesc.indications.indication_sections`); empty without per-indication runs."""
        if not self.indication_results:
            return []
        return indication_sections(self.indication_metrics(), self.by_indication(), self.protocol.indications)

    def indication_text(self) -> str:
        """The compact per-indication tables for the terminal (:func:`doseesc.indications.indication_text` of each
        design x scenario, with the notes on what each leaves out); "" without [[indication]] tables."""
        if self.protocol.indications is None:
            return ""
        inds = self.protocol.indications
        parts = ["Indications: " + "; ".join(f"{e.text()} ({100 * s:.1f}% of accrual)"
                                             for e, s in zip(inds.entries, inds.shares))]
        for key, sr in self.indication_results.items():
            parts.append("")
            parts.append(f"{key[1]} under '{key[0]}'")
            parts.append(indication_text(sr))
            if key in self.indication_notes:
                parts.append(f"  note: {self.indication_notes[key]}")
        for key, why in self.indication_notes.items():
            if key not in self.indication_results:
                parts.append("")
                parts.append(f"{key[1]} under '{key[0]}': no per-indication results ({why})")
        return "\n".join(parts)

    # -- which run stands for each design x scenario ------------------------------------------------------
    @property
    def simulations(self) -> tuple[OperatingCharacteristics, ...]:
        """The Monte Carlo runs (every design x scenario for methods ``"simulate"`` and ``"auto"``)."""
        return () if self.method == "exact" else self.results

    def phase2(self) -> pd.DataFrame:
        """The protocol's [phase2] stage after each escalation result, one row per design x scenario
        (:func:`doseesc.engines.phase2.study_phase2`); empty without a [phase2] table."""
        return study_phase2(self)

    def exact_of(self, r: OperatingCharacteristics) -> OperatingCharacteristics | None:
        """The exact run beside the Monte Carlo run ``r`` (method ``"auto"``), ``r`` itself if it is exact, or None."""
        if r.is_exact:
            return r
        return self.exact_results.get((r.scenario.name, self.name_of(r)))

    def preferred(self) -> tuple[OperatingCharacteristics, ...]:
        """One run per design x scenario, in the order of :attr:`results`: the exact run where there is one, else
        the Monte Carlo run (``r.method`` says which). An exact run in place of a calendar run has no time
        metrics: :meth:`metrics` ``(prefer_exact=True)`` merges the two row by row."""
        return tuple(self.exact_of(r) or r for r in self.results)

    def methods(self) -> pd.DataFrame:
        """Per design x scenario: ``method`` of :meth:`preferred` (``"exact"`` or ``"monte carlo"``) and ``note``
        (why not exact: the method asked for, a model, or the exact engine's state limit)."""
        rows = []
        for r in self.results:
            d, s = self.name_of(r), r.scenario.name
            p = self.exact_of(r) or r
            note = "" if p.is_exact else self.exact_skipped.get(
                (s, d), "Monte Carlo asked for (method 'simulate')" if self.method == "simulate" else "")
            rows.append({"design": d, "scenario": s, "method": p.method, "note": note})
        return pd.DataFrame(rows)

    def _long(self, table: str, results=None, prefer_exact: bool = False) -> pd.DataFrame:
        """Concatenate one per-result table over all results, with design and scenario columns (and, with
        ``prefer_exact``, the method of each result or row)."""
        frames = []
        for r in self.results if results is None else results:
            if prefer_exact and table == "metrics":
                df = preferred_metrics(None if r.is_exact else r, self.exact_of(r)).reset_index()
            else:
                df = getattr(r, table)().reset_index()
                if prefer_exact:
                    df["method"] = r.method
            df.insert(0, "scenario", r.scenario.name)
            df.insert(0, "design", self.name_of(r))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def summary(self, prefer_exact: bool = False) -> pd.DataFrame:
        """Per-tier table of every result, long form (design, scenario, dose, ...); with ``prefer_exact`` from
        :meth:`preferred` with a ``method`` column (per-tier selections and allocations do not depend on a
        calendar)."""
        return self._long("summary", self.preferred() if prefer_exact else None, prefer_exact)

    def metrics(self, prefer_exact: bool = False) -> pd.DataFrame:
        """Scalar metrics of every result, long form (design, scenario, metric, estimate, mcse, definition).

        With ``prefer_exact`` each row is exact where the study holds an exact run and the metric does not
        depend on the calendar or actual-dose model (:func:`preferred_metrics`), with a ``method`` column."""
        return self._long("metrics", prefer_exact=prefer_exact)

    def averages(self, weights=None, *, prefer_exact: bool = True) -> pd.DataFrame:
        """Every metric per design averaged over the scenarios, with its MCSE and the worst case.

        ``weights``: None (equal), a dict scenario name -> weight, or a sequence in scenario order;
        normalised over the scenarios where the metric is defined (finite), whose number is ``n_scenarios``
        (e.g. ``p_poor_allocation`` is undefined where no tier is safe). Columns: ``design``, ``metric``,
        ``estimate`` (weighted mean), ``mcse`` (see :func:`_average_mcse`: 0 for exact runs, the paired
        per-trial formula for Monte Carlo runs sharing their patients, sqrt(sum w^2 se^2) for independent
        runs), ``worst``, ``worst_mcse`` and ``worst_scenario`` (for the metrics of
        :data:`~doseesc.results.WORST_CASE`: the largest over scenarios of ``p_above_mtd``, the overdose and
        allocation risks, ``share_above_mtd``, ``utility_loss``; the smallest of ``p_correct``,
        ``p_select_obd``, ``p_within_margin``, ``expected_utility``; NaN for the others), ``n_scenarios``,
        ``method`` (``"exact"``, ``"monte carlo"`` or ``"mixed"`` over the scenarios) and ``definition``.
        With ``prefer_exact`` (default) exact rows are used where the study has them (method ``"auto"``).
        """
        snames = list(dict.fromkeys(r.scenario.name for r in self.results))
        wall = dict(zip(snames, _scenario_weights(weights, snames)))
        by_design: dict = {}
        for r in self.results:
            ex = self.exact_of(r) if prefer_exact else (r if r.is_exact else None)
            mc = None if r.is_exact else r
            by_design.setdefault(self.name_of(r), []).append((r.scenario.name, preferred_metrics(mc, ex), mc))
        rows = []
        for dname, cells in by_design.items():
            names = list(dict.fromkeys(n for _, table, _ in cells for n in table.index))
            for name in names:
                use = [(s, table.loc[name], mc) for s, table, mc in cells
                       if name in table.index and math.isfinite(table.loc[name, "estimate"]) and wall[s] > 0]
                row = {"design": dname, "metric": name, "estimate": math.nan, "mcse": math.nan,
                       "worst": math.nan, "worst_mcse": math.nan, "worst_scenario": None, "n_scenarios": len(use),
                       "method": None,
                       "definition": next((t.loc[name, "definition"] for _, t, _ in cells if name in t.index), "")}
                if use:
                    w = np.array([wall[s] for s, _, _ in use])
                    w = w / w.sum()
                    est = np.array([float(x["estimate"]) for _, x, _ in use])
                    se = np.array([float(x["mcse"]) for _, x, _ in use])
                    kinds = {x["method"] for _, x, _ in use}
                    row["estimate"] = float(w @ est)
                    row["mcse"] = _average_mcse(name, [(e, s_, mc if x["method"] != "exact" else None)
                                                       for e, s_, (_, x, mc) in zip(est, se, use)], w)
                    row["method"] = kinds.pop() if len(kinds) == 1 else "mixed"
                    if name in WORST_CASE:
                        i = int(np.argmax(est) if WORST_CASE[name] == "max" else np.argmin(est))
                        row.update(worst=float(est[i]), worst_mcse=float(se[i]), worst_scenario=use[i][0])
                rows.append(row)
        return pd.DataFrame(rows)

    def trials(self) -> pd.DataFrame:
        """One row per simulated trial of every result."""
        return self._long("trials")

    def stop_report(self) -> pd.DataFrame:
        """Stop reasons and rules fired of every result."""
        return self._long("stop_report")

    def comparison(self, prefer_exact: bool = False):
        """Paired comparison of the designs (Monte Carlo runs share their patients per scenario).

        ``prefer_exact``: each design's exact run in place of its Monte Carlo run where the study holds one
        (method ``"auto"``); differences involving an exact run are differences of the estimates, with the
        Monte Carlo side's MCSE (:meth:`doseesc.compare.Comparison.table`)."""
        if self.method not in ("simulate", "auto"):
            raise DoseescError("a paired comparison needs Monte Carlo results (method 'simulate' or 'auto')")
        results, designs, scenarios = {}, [], []
        for r in self.results:
            d, s = self.name_of(r), r.scenario.name
            results[(s, d)] = (self.exact_of(r) or r) if prefer_exact else r
            designs.append(d) if d not in designs else None
            scenarios.append(s) if s not in scenarios else None
        return Comparison(results=results, designs=tuple(designs), scenarios=tuple(scenarios),
                          reference=designs[0], n_trials=self.results[0].n_trials, seed=self.seed)

    def dose_impact(self) -> pd.DataFrame:
        """Paired impact of the protocol's actual-dose model on every result: the same trials rerun
        without it (long form: design, scenario, metric, without, with, difference, mcse)."""
        if self.protocol.dose_model is None or self.method not in ("simulate", "auto"):
            raise DoseescError("dose_impact() needs a Monte Carlo study of a protocol with an [actual_dose] model")
        seq = np.random.SeedSequence(self.seed["entropy"], spawn_key=tuple(self.seed["spawn_key"]))
        frames = []
        for r in self.results:
            without = simulate(r.design, nominal_scenario(r.scenario), r.n_trials, rng=seq, ladder=r.ladder,
                               obd=r.obd, target=r.target, keep_records=False)
            df = impact(r, without).reset_index()
            df.insert(0, "scenario", r.scenario.name)
            df.insert(0, "design", self.name_of(r))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def name_of(self, r: OperatingCharacteristics) -> str:
        own = (r.provenance or {}).get("design_name")
        if own is not None:
            return own
        for name, d in self.protocol.designs.items():
            if d is r.design:
                return name
        return r.design.label

    def provenance(self) -> dict:
        return {
            "doseesc_version": __version__,
            "numpy_version": np.__version__,
            "protocol": self.protocol.name,
            "file": self.protocol.path,
            "file_sha256": self.protocol.sha256,
            "method": self.method,
            "n_trials": None if self.method == "exact" else self.results[0].n_trials,
            **({"exact_runs": len(self.exact_results)} if self.method == "auto" else {}),
            "seed": self.seed,
            "command": self.command,
        }

    def to_dict(self) -> dict:
        out = {"provenance": self.provenance(), "results": []}
        for r in self.results:
            d = r.to_dict()
            d["design_name"] = self.name_of(r)
            out["results"].append(d)
        if self.method == "auto":
            out["exact_results"] = []
            for (_, name), r in self.exact_results.items():
                d = r.to_dict()
                d["design_name"] = name
                out["exact_results"].append(d)
            out["exact_skipped"] = [{"scenario": s, "design": d, "reason": why}
                                    for (s, d), why in self.exact_skipped.items()]
        if self.protocol.indications is not None:
            out["indications"] = {
                "declared": self.protocol.indications.to_dict(),
                "conduct": {name: self.protocol.conduct(name).to_dict()
                            for name in dict.fromkeys(self.name_of(r) for r in self.results)
                            if name in self.protocol.designs},
                "by_indication": _records(self.by_indication()),
                "indication_metrics": _records(self.indication_metrics()),
                "notes": [{"scenario": s, "design": d, "note": why} for (s, d), why in self.indication_notes.items()]}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default, allow_nan=False)

    # -- figures and rich display (matplotlib imported only when drawing) -----------------------
    def _scenario_results(self, scenario: str) -> dict:
        return scenario_results(self, scenario)

    def _colours(self) -> dict:
        return design_colours(list(self.protocol.designs) +
                              [self.name_of(r) for r in self.results if self.name_of(r) not in self.protocol.designs])

    def plot_selection(self, scenario: str, ax=None):
        """Grouped bars of P(select) per tier by design under ``scenario`` (one colour per design)."""
        from .report.plots import plot_selection

        return plot_selection(self._scenario_results(scenario), ax=ax, colors=self._colours())

    def plot_allocation(self, scenario: str, ax=None):
        """Mean patients per tier by design under ``scenario``."""
        from .report.plots import plot_allocation

        return plot_allocation(self._scenario_results(scenario), ax=ax, colors=self._colours())

    def plot_sample_size(self, scenario: str, ax=None):
        """Distribution of the number of patients per trial, by design, under ``scenario``."""
        from .report.plots import plot_sample_size

        return plot_sample_size(self._scenario_results(scenario), ax=ax, colors=self._colours())

    def plot_dose_response(self, scenario: str, ax=None):
        """True dose-response curves of ``scenario`` with the target, true MTD and OBD."""
        from .report.plots import plot_dose_response

        res = self._scenario_results(scenario)
        first = next(iter(res.values()))
        obd = next((r.obd for r in res.values() if r.obd is not None), self.protocol.obd)
        return plot_dose_response(first.scenario, self.protocol.tiers, first.target, obd, ax=ax)

    def plot_scenario(self, scenario: str):
        """Composite Figure of ``scenario``: dose-response, selection, allocation, sample size."""
        from .report.plots import plot_scenario

        return plot_scenario(self._scenario_results(scenario), colors=self._colours())

    def report(self, **kwargs):
        """The committee report of this study (:func:`doseesc.report.committee.build_report`)."""
        return build_report(self, **kwargs)

    def _repr_html_(self) -> str:
        proto = self.protocol
        kind = "exact" if self.method == "exact" else f"Monte Carlo, {self.results[0].n_trials:,} trials"
        if self.method == "auto":
            kind += f"; exact runs beside {len(self.exact_results)} of them"
        seed = "" if not self.seed else f", seed entropy {self.seed['entropy']}"
        parts = [f"<p><strong>{html_text(proto.name)}</strong>: {len(self.results)} results ({kind}{seed})</p>"]
        for s in dict.fromkeys(r.scenario.name for r in self.results):
            parts.append(_table_html(key_metrics_table(scenario_results(self, s), caption=f"Scenario '{s}'"
                                                       + ("" if self.method == "exact" else " (MCSE in brackets)"),
                                                       attrs={"scenario": s})))
        return "".join(parts)


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows of ``df`` as dicts, NaN as None (JSON has no NaN)."""
    return df.astype(object).where(pd.notna(df), None).to_dict(orient="records")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        f = float(o)
        return None if not math.isfinite(f) else f
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


class RunCheckpoint:
    """A folder of the finished design x scenario units of :func:`run_protocol`, so that an interrupted run
    can be resumed: ``manifest.json`` (what run the folder belongs to: the file's SHA-256, method, designs,
    scenarios, trials, seed, version) and one pickle per finished unit, each written atomically.

    Each unit of a run is seeded on its own (the scenario's blocks of latent uniforms come from the root seed
    and the block number only, :mod:`doseesc.rng`), so units read back from the folder are the very objects
    an uninterrupted run computes, and a resumed run gives bit-identical results. A folder of another run is
    refused rather than mixed in. The pickles are doseesc's own files: read only folders you wrote."""

    MANIFEST = "manifest.json"

    def __init__(self, directory, key: dict):
        self.dir = Path(directory)
        self.key = json.loads(json.dumps(key, default=str))
        manifest = self.dir / self.MANIFEST
        if manifest.exists():
            got = self.read_manifest(self.dir)
            if got != self.key:
                diff = sorted(k for k in set(got) | set(self.key) if got.get(k) != self.key.get(k))
                raise DoseescError(f"checkpoint {str(self.dir)!r} belongs to another run (it differs in "
                                   f"{', '.join(diff)}); delete it or run without --resume")
        else:
            self.dir.mkdir(parents=False, exist_ok=True)
            atomic_write(manifest, json.dumps(self.key, indent=2).encode())

    @classmethod
    def read_manifest(cls, directory) -> dict:
        try:
            return json.loads((Path(directory) / cls.MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise DoseescError(f"checkpoint {str(directory)!r}: no readable {cls.MANIFEST} ({exc})") from None

    def _path(self, kind: str, scenario: str, design: str) -> Path:
        h = hashlib.sha256(f"{kind}\0{scenario}\0{design}".encode()).hexdigest()[:20]
        return self.dir / f"{kind}-{h}.pkl"

    def load(self, kind: str, scenario: str, design: str):
        """The unit's stored value, or None when it has not finished."""
        path = self._path(kind, scenario, design)
        if not path.exists():
            return None
        with open(path, "rb") as fh:
            return pickle.load(fh)

    def save(self, kind: str, scenario: str, design: str, value) -> None:
        atomic_write(self._path(kind, scenario, design), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def count(self, kind: str = "mc") -> int:
        """Finished units of ``kind`` in the folder."""
        return sum(1 for _ in self.dir.glob(f"{kind}-*.pkl"))


def run_protocol(protocol: Protocol, *, method: str = "simulate", designs=None, scenarios=None,
                 n_trials: int | None = None, seed=None, command: str = "",
                 progress: Callable[[int], None] | None = None, max_states: int | None = None,
                 checkpoint=None, workers: int = 1, precision: float | None = None,
                 keep_records: bool = True) -> Study:
    """Evaluate the chosen designs under the chosen scenarios of ``protocol``.

    ``method`` is ``"simulate"`` (Monte Carlo; every design sees the same
    simulated patients in a scenario), ``"exact"``, or ``"auto"``: the same
    Monte Carlo runs as ``"simulate"`` (bit-identical, so the paired
    comparison works) and, beside them, the exact run of every design x
    scenario the exact engine accepts (:func:`exact_refusal`; within
    ``max_states`` live states, the exact engine's default when None), in
    :attr:`Study.exact_results`; the reasons for the others in
    :attr:`Study.exact_skipped` (a design the exact engine refuses for its
    number of states is not tried again under the other scenarios: the
    states it reaches depend on the truth only through outcomes of
    probability 0). ``progress(n)`` is called
    with the number of trials just finished.

    ``checkpoint``: a folder (its parent must exist) where each finished design x scenario unit is kept
    (:class:`RunCheckpoint`); a rerun with the same folder and the same arguments (seed included) reads the
    finished units back and runs the others, with bit-identical results.

    ``workers``: processes each simulation's trial blocks are split across (results identical for any
    number). ``precision``: each simulation runs until the largest MCSE of P(select) is at most this value
    (in steps of 1,024 trials; ``n_trials``, if given, is then the most trials per run), so designs may use
    different numbers of trials and their comparison is no longer paired trial by trial.

    ``keep_records``: False runs the Monte Carlo simulations without per-patient records (``simulate(...,
    keep_records=False)``: every metric, table and comparison is the same, but :attr:`Study.trials` has no
    per-patient logs and the actual-dose summary is not available), so that memory grows by tens of bytes per
    trial, not per patient.
    Runs with backfill cohorts keep their records (their summary reads them).
    """
    precise_cap = n_trials   # with ``precision``: the most trials per run (None: the engine's limit)
    if method not in METHODS:
        raise DoseescError(f"method = {method!r} must be 'simulate', 'exact' or 'auto'")
    dnames = list(protocol.designs) if not designs else list(designs)
    snames = list(protocol.scenarios) if not scenarios else list(scenarios)
    chosen_d = [(n, protocol.design(n)) for n in dnames]
    chosen_s = [protocol.scenario(n) for n in snames]
    results = []
    seed_info = None
    exact_results, skipped = {}, {}
    ind_results, ind_notes = {}, {}
    store = None
    if method in ("simulate", "auto"):
        n_trials = protocol.n_trials if n_trials is None else n_trials
        seq = root_seed(protocol.seed if seed is None else seed)
        seed_info = seed_record(seq)
    if checkpoint is not None:
        store = RunCheckpoint(checkpoint, {
            "doseesc": __version__, "file_sha256": protocol.sha256, "method": method,
            "designs": [n for n, _ in chosen_d], "scenarios": [sc.name for sc in chosen_s],
            "n_trials": n_trials if method != "exact" else None, "seed": seed_info, "max_states": max_states,
            "precision": precision})
    if method in ("simulate", "auto"):
        for sc in chosen_s:
            for name, d in chosen_d:
                kept = store.load("mc", sc.name, name) if store is not None and protocol.indications is None else None
                if kept is not None:
                    if progress is not None:
                        progress(n_trials)
                    results.append(kept)
                    continue
                last = [0]

                def cb(done, total, last=last):
                    if progress is not None:
                        progress(done - last[0])
                    last[0] = done
                if protocol.indications is not None:
                    kept = store.load("ind", sc.name, name) if store is not None else None
                    if kept is None:
                        kept = _indication_unit(protocol, name, d, sc, n_trials, precise_cap, seq, cb, workers,
                                                precision, keep_records)
                        if store is not None:
                            store.save("ind", sc.name, name, kept)
                    elif progress is not None:
                        progress(n_trials)
                    res, sr, note = kept
                    results.append(res)
                    if sr is not None:
                        ind_results[(sc.name, name)] = sr
                    if note is not None:
                        ind_notes[(sc.name, name)] = note
                    continue
                if name in protocol.backfills:
                    if precision is not None:
                        raise DoseescError(f"design {name!r} has backfill cohorts, which run to a number of trials, "
                                           "not to a precision target: give n_trials instead")
                    results.append(simulate_backfill(d, sc, n_trials, backfill=protocol.backfills[name],
                                                     calendar=protocol.calendar, rng=seq, ladder=protocol.tiers,
                                                     obd=protocol.obd, progress=cb))
                else:
                    results.append(simulate(d, sc, n_trials if precision is None else precise_cap, rng=seq,
                                            ladder=protocol.tiers, progress=cb, obd=protocol.obd,
                                            dose_model=protocol.dose_model, calendar=protocol.calendar,
                                            workers=workers, precision=precision, keep_records=keep_records))
                if store is not None:
                    store.save("mc", sc.name, name, results[-1])
        if method == "auto":
            limit = {} if max_states is None else {"max_states": max_states}
            refused: dict = {}   # design -> the exact engine's refusal (its states hardly depend on the truth)
            for sc in chosen_s:
                for name, d in chosen_d:
                    kept = store.load("exact", sc.name, name) if store is not None else None
                    if kept is not None:   # (result, why, refusal for the other scenarios)
                        res, why, ref = kept
                        if res is not None:
                            exact_results[(sc.name, name)] = res
                        else:
                            skipped[(sc.name, name)] = why
                        if ref is not None:
                            refused[name] = ref
                        continue
                    why = exact_refusal(protocol, d, name) or refused.get(name)
                    ref = None
                    if why is None:
                        try:
                            exact_results[(sc.name, name)] = exact(d, sc, ladder=protocol.tiers, obd=protocol.obd,
                                                                   **limit)
                        except DoseescError as err:
                            why = str(err)
                            ref = refused[name] = f"{why} (scenario {sc.name!r}; not tried again for the others)"
                    if why is not None:
                        skipped[(sc.name, name)] = why
                    if store is not None:
                        store.save("exact", sc.name, name, (exact_results.get((sc.name, name)), why, ref))
    else:
        if not designs:   # all designs: time-to-event ones have no exact results (simulate them)
            chosen_d = [(n, d) for n, d in chosen_d if not d.time_to_event] or chosen_d
        several = [n for n, _ in chosen_d if (n in protocol.conducts and protocol.conducts[n].policy != "pooled")
                   or n in protocol.backfills]
        if several and designs:
            raise DoseescError(f"design {several[0]!r}: {exact_refusal(protocol, chosen_d[0][1], several[0])} "
                               "(use method 'simulate')")
        chosen_d = [(n, d) for n, d in chosen_d if n not in several]
        for sc in chosen_s:
            for name, d in chosen_d:
                kept = store.load("exact", sc.name, name) if store is not None else None
                if kept is None:
                    kept = exact(d, sc, ladder=protocol.tiers, obd=protocol.obd)
                    if store is not None:
                        store.save("exact", sc.name, name, kept)
                results.append(kept)
    return Study(protocol=protocol, method=method, results=tuple(results), seed=seed_info, command=command,
                 exact_results=exact_results, exact_skipped=skipped, indication_results=ind_results,
                 indication_notes=ind_notes)


def _indication_scenario_run(protocol: Protocol, sc) -> IndicationScenario:
    """The per-indication truth the conduct engine runs for scenario ``sc``: the file's, with a scenario given as
    curves of the actual dose read at the nominal doses (the engine has no actual-dose model)."""
    isc = protocol.indication_scenario(sc.name)
    if isc.identical and sc.tox_curve is not None:
        return IndicationScenario.same(nominal_scenario(sc), protocol.indications)
    return isc


#: What a per-indication run of a file with realism models leaves out (the conduct engine has neither).
_NOMINAL_NOTE = ("per-indication tables from the same trials on nominal doses (the actual-dose model does not yet "
                 "combine with indications); the design's own results are the file's run with the model")


def _indication_unit(protocol: Protocol, name: str, d, sc, n_trials: int, cap, seq, progress, workers: int,
                     precision, keep_records: bool = True) -> tuple:
    """(result, per-indication run or None, note or None) of design ``name`` under scenario ``sc`` in a file with
    [[indication]] tables; the rules are in docs/notes/indications.md ("Files and run_protocol")."""
    conduct = protocol.conduct(name)
    kw = {"ladder": protocol.tiers, "obd": protocol.obd}

    def plain():
        return simulate(d, sc, n_trials if precision is None else cap, rng=seq, progress=progress,
                        dose_model=protocol.dose_model, calendar=protocol.calendar, workers=workers,
                        precision=precision, keep_records=keep_records, **kw)

    if conduct.policy == "pooled":
        if d.time_to_event:
            return plain(), None, ("a time-to-event design runs in calendar time, which the per-indication engine "
                                   "does not have: pooled results only")
        if precision is not None:
            return plain(), None, "a run to a precision target has pooled results only (give n_trials instead)"
        if protocol.dose_model is None:
            sr = simulate_indications(d, protocol.indication_scenario(sc.name), conduct=conduct, n_trials=n_trials,
                                      rng=seq, progress=progress, calendar=protocol.calendar, **kw)
            return sr.pooled, sr, None
        main = plain()
        sr = simulate_indications(d, _indication_scenario_run(protocol, sc), conduct=conduct, n_trials=n_trials,
                                  rng=seq, **kw)
        return main, sr, _NOMINAL_NOTE
    n = n_trials if precision is None else (cap if cap is not None else protocol.n_trials)
    sr = simulate_indications(d, _indication_scenario_run(protocol, sc), conduct=conduct, n_trials=n, rng=seq, **kw)
    if progress is not None:
        progress(n, n)
    inds = protocol.indications
    first = inds.names[conduct.order(inds)[0] if conduct.policy == "staggered" else 0]
    oc = sr.results[first]
    main = dataclasses.replace(oc, scenario=dataclasses.replace(oc.scenario, name=sc.name),
                               provenance={**oc.provenance, "design_name": name, "indication": first})
    left = [m for m, on in (("calendar time", protocol.calendar is not None),
                            ("the actual-dose model", protocol.dose_model is not None)) if on]
    note = (f"conduct {conduct.policy!r}: the design's own results are the {first!r} "
            f"{'stratum' if conduct.policy == 'staggered' else 'indication'}'s escalation; every "
            f"{'stratum' if conduct.policy == 'staggered' else 'indication'} is in the per-indication tables")
    if left:
        note += f"; run without {' and '.join(left)} (the conduct engine has neither yet)"
    if precision is not None:
        note += f"; {n:,} trials (no precision target for a conduct)"
    return main, sr, note


def committee_report(protocol: Protocol, *, n_trials: int | None = None, seed=None, command: str = "",
                     progress: Callable[[int], None] | None = None, method: str = "auto",
                     max_states: int | None = PREFER_EXACT_STATES, grids: bool = True, checkpoint=None,
                     **kwargs) -> CommitteeReport:
    """Simulate every design under every scenario of ``protocol`` and build the committee report
    (:func:`run_protocol`, then :func:`doseesc.report.committee.build_report` with ``kwargs``).

    ``n_trials`` defaults to the file's ``[run] n_trials``, ``seed`` to its ``[run] seed`` (else
    fresh entropy, recorded in the report). ``command`` is the command line shown as the way to
    reproduce the report. ``method`` is ``"auto"`` (default: the simulations, with exact runs beside them
    within ``max_states`` live states, which the report's key and by-tier tables show in place of the
    Monte Carlo estimates, marked exact; see :func:`run_protocol`) or ``"simulate"`` (Monte Carlo only).
    ``grids``: run the file's ``[[grid]]`` tables (in this process) and add the calibration section.
    ``checkpoint``: a folder that keeps the finished design x scenario units (see :func:`run_protocol`).
    """
    if method not in ("simulate", "auto"):
        raise DoseescError(f"method = {method!r} must be 'simulate' or 'auto' for a committee report")
    study = run_protocol(protocol, method=method, n_trials=n_trials, seed=seed, command=command,
                         progress=progress, max_states=max_states if method == "auto" else None,
                         checkpoint=checkpoint)
    ran = {name: g.run() for name, g in protocol.grids.items()} if grids else None
    return build_report(study, grids=ran, **kwargs)
