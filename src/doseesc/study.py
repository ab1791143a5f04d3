"""Run every design x scenario of a protocol: the library call behind the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ._version import __version__
from .actual_dose import nominal_scenario
from .compare import Comparison, impact
from .engines.exact import exact
from .engines.montecarlo import simulate
from .errors import DoseescError
from .protocol import Protocol
from .report.committee import CommitteeReport, build_report, key_metrics_table, scenario_results
from .report.document import _table_html, html_text
from .report.labels import design_colours
from .results import OperatingCharacteristics
from .rng import root_seed, seed_record


@dataclass(frozen=True)
class Study:
    """Results of a protocol's designs under its scenarios (one run each)."""

    protocol: Protocol
    method: str
    results: tuple[OperatingCharacteristics, ...]
    seed: dict | None = None
    command: str = ""
    extra: dict = field(default_factory=dict)

    def _long(self, table: str) -> pd.DataFrame:
        """Concatenate one per-result table over all results, with design and scenario columns."""
        frames = []
        for r in self.results:
            df = getattr(r, table)().reset_index()
            df.insert(0, "scenario", r.scenario.name)
            df.insert(0, "design", self.name_of(r))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """Per-tier table of every result, long form (design, scenario, dose, ...)."""
        return self._long("summary")

    def metrics(self) -> pd.DataFrame:
        """Scalar metrics of every result, long form (design, scenario, metric, estimate, mcse)."""
        return self._long("metrics")

    def trials(self) -> pd.DataFrame:
        """One row per simulated trial of every result."""
        return self._long("trials")

    def stop_report(self) -> pd.DataFrame:
        """Stop reasons and rules fired of every result."""
        return self._long("stop_report")

    def comparison(self):
        """Paired comparison of the designs (Monte Carlo runs share their patients per scenario)."""
        if self.method != "simulate":
            raise DoseescError("a paired comparison needs Monte Carlo results (method 'simulate')")
        results, designs, scenarios = {}, [], []
        for r in self.results:
            d, s = self.name_of(r), r.scenario.name
            results[(s, d)] = r
            designs.append(d) if d not in designs else None
            scenarios.append(s) if s not in scenarios else None
        return Comparison(results=results, designs=tuple(designs), scenarios=tuple(scenarios),
                          reference=designs[0], n_trials=self.results[0].n_trials, seed=self.seed)

    def dose_impact(self) -> pd.DataFrame:
        """Paired impact of the protocol's actual-dose model on every result: the same trials rerun
        without it (long form: design, scenario, metric, without, with, difference, mcse)."""
        if self.protocol.dose_model is None or self.method != "simulate":
            raise DoseescError("dose_impact() needs a Monte Carlo study of a protocol with an [actual_dose] model")
        seq = np.random.SeedSequence(self.seed["entropy"], spawn_key=tuple(self.seed["spawn_key"]))
        frames = []
        for r in self.results:
            without = simulate(r.design, nominal_scenario(r.scenario), r.n_trials, rng=seq, ladder=r.ladder,
                               obd=r.obd, target=r.target)
            df = impact(r, without).reset_index()
            df.insert(0, "scenario", r.scenario.name)
            df.insert(0, "design", self.name_of(r))
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def name_of(self, r: OperatingCharacteristics) -> str:
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
            "seed": self.seed,
            "command": self.command,
        }

    def to_dict(self) -> dict:
        out = {"provenance": self.provenance(), "results": []}
        for r in self.results:
            d = r.to_dict()
            d["design_name"] = self.name_of(r)
            out["results"].append(d)
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
        seed = "" if not self.seed else f", seed entropy {self.seed['entropy']}"
        parts = [f"<p><strong>{html_text(proto.name)}</strong>: {len(self.results)} results ({kind}{seed})</p>"]
        for s in dict.fromkeys(r.scenario.name for r in self.results):
            parts.append(_table_html(key_metrics_table(scenario_results(self, s), caption=f"Scenario '{s}'"
                                                       + ("" if self.method == "exact" else " (MCSE in brackets)"),
                                                       attrs={"scenario": s})))
        return "".join(parts)


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


def run_protocol(protocol: Protocol, *, method: str = "simulate", designs=None, scenarios=None,
                 n_trials: int | None = None, seed=None, command: str = "",
                 progress: Callable[[int], None] | None = None) -> Study:
    """Evaluate the chosen designs under the chosen scenarios of ``protocol``.

    ``method`` is ``"simulate"`` (Monte Carlo; every design sees the same
    simulated patients in a scenario) or ``"exact"``. ``progress(n)`` is
    called with the number of trials just finished.
    """
    if method not in ("simulate", "exact"):
        raise DoseescError(f"method = {method!r} must be 'simulate' or 'exact'")
    dnames = list(protocol.designs) if not designs else list(designs)
    snames = list(protocol.scenarios) if not scenarios else list(scenarios)
    chosen_d = [(n, protocol.design(n)) for n in dnames]
    chosen_s = [protocol.scenario(n) for n in snames]
    results = []
    seed_info = None
    if method == "simulate":
        n_trials = protocol.n_trials if n_trials is None else n_trials
        seq = root_seed(protocol.seed if seed is None else seed)
        seed_info = seed_record(seq)
        for sc in chosen_s:
            for _, d in chosen_d:
                last = [0]

                def cb(done, total, last=last):
                    if progress is not None:
                        progress(done - last[0])
                    last[0] = done
                results.append(simulate(d, sc, n_trials, rng=seq, ladder=protocol.tiers, progress=cb,
                                        obd=protocol.obd, dose_model=protocol.dose_model,
                                        calendar=protocol.calendar))
    else:
        if not designs:   # all designs: time-to-event ones have no exact results (simulate them)
            chosen_d = [(n, d) for n, d in chosen_d if not d.time_to_event] or chosen_d
        for sc in chosen_s:
            for _, d in chosen_d:
                results.append(exact(d, sc, ladder=protocol.tiers, obd=protocol.obd))
    return Study(protocol=protocol, method=method, results=tuple(results), seed=seed_info, command=command)


def committee_report(protocol: Protocol, *, n_trials: int | None = None, seed=None, command: str = "",
                     progress: Callable[[int], None] | None = None, **kwargs) -> CommitteeReport:
    """Simulate every design under every scenario of ``protocol`` and build the committee report
    (:func:`run_protocol`, then :func:`doseesc.report.committee.build_report` with ``kwargs``).

    ``n_trials`` defaults to the file's ``[run] n_trials``, ``seed`` to its ``[run] seed`` (else
    fresh entropy, recorded in the report). ``command`` is the command line shown as the way to
    reproduce the report.
    """
    study = run_protocol(protocol, method="simulate", n_trials=n_trials, seed=seed, command=command,
                         progress=progress)
    return build_report(study, **kwargs)
