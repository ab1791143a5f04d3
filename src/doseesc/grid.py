"""Design calibration grids: sweep design parameters over scenarios, pick the best design that is never unsafe.

A :class:`Grid` is a base design and the values of some of its parameters to sweep (lists or ranges, crossed
or zipped) over a set of scenarios. Each grid point is the base design with those parameters replaced
(:func:`dataclasses.replace`, so the design's own validation judges every value), or, for parameters that
are not fields of a design (a CRM skeleton's halfwidth), the design a ``make`` function builds from them.
:meth:`Grid.sample_size` is the built-in sweep of ``max_n``.

:meth:`Grid.run` simulates every point under every scenario on the same simulated patients: every point of a
scenario uses the grid's one root seed, so trial ``i`` has the same latent uniforms at every point and
differences between points are paired. The work is cut into units (point, scenario, block of trials) run by
:mod:`doseesc.engines.grid_run` in-process, on local processes (``workers=N``) or on Dask (``scheduler=`` or
``dask_local=N``); the numbers are bit-identical whichever runner and however many workers, and a point's
result equals a plain :func:`~doseesc.simulate` of its design with the same seed.

The :class:`GridResult` scores each point by its *objective*, the (weighted) average over scenarios of
P(select the true MTD) or P(select the true OBD) (by the design's question), with a paired MCSE (the SD over
trials of each trial's average over scenarios / sqrt(n_trials)), checks its *constraints*
(``"p_above_mtd <= 0.2"``: in every scenario; ``"mean(mean_dlt) <= 4"``: averaged over scenarios), and gives
the best feasible point, the Pareto front on two metrics, a table of every point and metric with MCSE, and a
figure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import operator
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ._lazy import lazy
from ._version import __version__
from .designs.base import Design
from .engines.grid_run import Checkpoint, Context, make_units, run_units, runner_name
from .engines.run import check_simulation, monte_carlo_result
from .errors import DesignError, DoseescError
from .report.labels import csv_safe, metric_name
from .results import QUANTILES, SAFETY_METRICS, UTILITY_METRICS, provenance
from .rng import root_seed, seed_record
from .scenario import Scenario
from .tiers import DoseLadder

pd = lazy("pandas")

__all__ = ["Grid", "GridResult", "Constraint", "span", "grid_from_dict", "plot_pareto", "plot_sweep",
           "progress_text", "METRICS", "OBJECTIVES"]

#: Scalar metrics of every grid point and scenario (:meth:`~doseesc.results.OperatingCharacteristics.metrics`).
METRICS = (("expected_n", "sd_n") + tuple(f"n_q{int(q * 100):02d}" for q in QUANTILES)
           + ("p_no_dose", "p_correct", "share_above_mtd", "mean_dlt") + SAFETY_METRICS + ("expected_screened",
           "p_select_obd", "share_at_obd", "mean_eff") + UTILITY_METRICS)

#: The objective of each question (:attr:`~doseesc.designs.base.Design.question`).
OBJECTIVES = {"MTD": "p_correct", "OBD": "p_select_obd"}

#: Metrics for which more is better (the default direction on a Pareto front); the others are minimised.
HIGHER_IS_BETTER = {"objective", "p_correct", "p_select_obd", "share_at_obd", "mean_eff", "expected_utility",
                    "p_within_margin"}

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def span(start: float, stop: float, step: float) -> list:
    """``start, start + step, ...`` up to ``stop`` *included* (within 1e-9 of a step), each value rounded
    to 12 decimals (so ``span(0.25, 0.35, 0.025)`` gives 0.25, 0.275, 0.3, 0.325, 0.35); integers stay
    integers when all three are integers."""
    for name, v in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise DesignError(f"{name} = {v!r} must be a number")
    if step <= 0:
        raise DesignError(f"step = {step!r} must be positive")
    if stop < start:
        raise DesignError(f"stop = {stop!r} is below start = {start!r}")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if all(isinstance(v, (int, np.integer)) for v in (start, stop, step)):
        return [int(start + i * step) for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]


# -- constraints ---------------------------------------------------------------------------------------------
_CONSTRAINT = re.compile(r"^\s*(?:(mean|every)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)|([A-Za-z_][A-Za-z0-9_]*))"
                         r"\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``metric op value`` in every scenario (``over="every"``) or on the weighted mean over scenarios
    (``over="mean"``). A scenario where the metric is undefined (NaN: e.g. ``p_poor_allocation`` when no tier
    is safe) is left out."""

    metric: str
    op: str
    value: float
    over: str = "every"

    def __post_init__(self):
        if self.metric not in METRICS:
            raise DoseescError(f"constraint on metric {self.metric!r}: not a metric of a grid "
                               f"(known: {', '.join(METRICS)})")
        if self.op not in _OPS:
            raise DoseescError(f"constraint {self.metric} {self.op} ...: the comparison must be one of "
                               f"{', '.join(_OPS)}")
        if self.over not in ("every", "mean"):
            raise DoseescError(f"constraint over = {self.over!r} must be 'every' (every scenario) or 'mean'")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, np.integer, np.floating)):
            raise DoseescError(f"constraint {self.metric} {self.op} {self.value!r}: the bound must be a number")

    @classmethod
    def parse(cls, text) -> Constraint:
        """``"p_above_mtd <= 0.2"`` (every scenario), ``"mean(mean_dlt) <= 4"`` or ``"every(p_no_dose) < 0.3"``."""
        if isinstance(text, Constraint):
            return text
        if not isinstance(text, str):
            raise DoseescError(f"constraint {text!r} must be text such as 'p_above_mtd <= 0.2'")
        m = _CONSTRAINT.match(text)
        if m is None:
            raise DoseescError(f"constraint {text!r} is not of the form 'METRIC <= VALUE' or "
                               "'mean(METRIC) <= VALUE' (comparisons <=, >=, <, >)")
        over, inner, bare, op, value = m.groups()
        return cls(metric=inner or bare, op=op, value=float(value), over=over or "every")

    @property
    def text(self) -> str:
        return (f"{self.metric}" if self.over == "every" else f"mean({self.metric})") + f" {self.op} {self.value:g}"

    def check(self, values: np.ndarray, weights: np.ndarray) -> tuple[bool, float]:
        """``(satisfied, value)``: the worst scenario's value for ``every``, the weighted mean for ``mean``."""
        ok = ~np.isnan(values)
        if not ok.any():
            return True, math.nan
        v, w = values[ok], weights[ok]
        if self.over == "mean":
            got = float((w * v).sum() / w.sum())
            return bool(_OPS[self.op](got, self.value)), got
        worst = float(v.max() if self.op in ("<=", "<") else v.min())
        return bool(_OPS[self.op](worst, self.value)), worst


# -- the grid ----------------------------------------------------------------------------------------------
class Grid:
    """A base design, the parameter values to sweep and the scenarios to sweep them over.

    Parameters
    ----------
    design
        The base design; each point is ``dataclasses.replace(design, **values)``. None with ``make``.
    params
        ``{parameter: values}``: a list, tuple, range or 1-D array of values per parameter (:func:`span` for
        inclusive ranges of floats).
    scenarios
        ``{name: Scenario}`` or a list of scenarios (named by their names, which must differ).
    n_trials
        Simulated trials per point and scenario.
    how
        ``"cross"`` (every combination, the first parameter varying slowest) or ``"zip"`` (the i-th value of
        every parameter together; equal lengths).
    objective
        ``"p_correct"`` or ``"p_select_obd"``; default by the base design's question (MTD or OBD).
    weights
        ``{scenario: weight}`` for the average over scenarios (default equal): a non-negative weight for every
        scenario, with a positive sum.
    constraints
        Texts such as ``"p_above_mtd <= 0.2"`` (every scenario) or ``"mean(mean_dlt) <= 4"``, or
        :class:`Constraint`.
    rng
        Root seed (an integer, SeedSequence, Generator, or None: fresh entropy, recorded).
    target, obd, ladder
        As :func:`~doseesc.simulate`.
    unit_trials
        Trials per unit of work (the results do not depend on it).
    make
        ``make(**values) -> Design`` for parameters that are not fields of a design; without ``design``.
    where
        Prefix of error messages (a file and table, for grids read from scenario files).
    """

    def __init__(self, design: Design | None, params: dict, scenarios, n_trials: int = 2000, *, how: str = "cross",
                 objective: str | None = None, weights: dict | None = None, constraints=(), rng=None,
                 target: float | None = None, obd=None, ladder: DoseLadder | None = None, unit_trials: int = 2048,
                 make: Callable[..., Design] | None = None, name: str = "grid", where: str = ""):
        self.where = f"{where}: " if where else ""
        self.name = name
        self.base, self.make = design, make
        self.how = how
        self.params = self._check_params(params)
        self.scenarios = self._check_scenarios(scenarios)
        self.n_trials, self.unit_trials = self._check_counts(n_trials, unit_trials)
        self.seq = root_seed(rng)
        self.target, self.obd, self.ladder = target, obd, ladder
        self.points = self._points()
        self.designs = tuple(self._build(values) for values in self.points)
        self.runs = {(p, s): self._check_run(p, s) for p in range(len(self.designs))
                     for s in range(len(self.scenarios))}
        self.objective = self._check_objective(objective)
        self.weights = self._check_weights(weights)
        try:
            self.constraints = tuple(Constraint.parse(c) for c in (
                [constraints] if isinstance(constraints, (str, Constraint)) else constraints))
        except DoseescError as exc:
            raise DoseescError(f"{self.where}{exc}") from None

    # -- the built-in sample-size sweep ----------------------------------------------------------------
    @classmethod
    def sample_size(cls, design: Design, scenarios, max_n, n_trials: int = 2000, **options) -> Grid:
        """P(correct) and E[N] against the maximum sample size: the grid of ``design`` over ``max_n`` values."""
        return cls(design, {"max_n": max_n}, scenarios, n_trials, name=options.pop("name", "sample size"),
                   **options)

    # -- checks ------------------------------------------------------------------------------------------
    def _err(self, text: str) -> DoseescError:
        return DesignError(f"{self.where}{text}")

    def _check_params(self, params) -> dict[str, tuple]:
        if self.how not in ("cross", "zip"):
            raise self._err(f"how = {self.how!r} must be 'cross' or 'zip'")
        if (self.base is None) == (self.make is None):
            raise self._err("give a base design or a make function (one of the two)")
        if self.base is not None and not isinstance(self.base, Design):
            raise self._err(f"design = {self.base!r} is not a doseesc design")
        if not isinstance(params, dict) or not params:
            raise self._err(f"params = {params!r}: give a dict of parameter -> values to sweep")
        out = {}
        if self.base is not None:
            fields = [f.name for f in dataclasses.fields(self.base) if f.init]
        for key, values in params.items():
            if self.base is not None and key not in fields:
                raise self._err(f"params: {key!r} is not a parameter of design {self.base.label!r} "
                                f"(parameters: {', '.join(fields)})")
            if isinstance(values, np.ndarray):
                values = values.tolist() if values.ndim == 1 else values
            if not isinstance(values, (list, tuple, range)):
                raise self._err(f"params: {key} = {values!r}: give a list of values or a range")
            if len(values) == 0:
                raise self._err(f"params: {key} = {list(values)!r}: the list of values is empty")
            out[key] = tuple(tuple(v) if isinstance(v, list) else v for v in values)
        if self.how == "zip" and len({len(v) for v in out.values()}) > 1:
            lengths = ", ".join(f"{k}: {len(v)}" for k, v in out.items())
            raise self._err(f"how = 'zip' needs as many values of every parameter ({lengths})")
        return out

    def _check_scenarios(self, scenarios) -> dict[str, Scenario]:
        if isinstance(scenarios, Scenario):
            scenarios = [scenarios]
        if isinstance(scenarios, dict):
            out = dict(scenarios)
        else:
            out = {}
            for sc in scenarios:
                if not isinstance(sc, Scenario):
                    raise self._err(f"scenario {sc!r} is not a doseesc Scenario")
                if sc.name in out:
                    raise self._err(f"two scenarios are both named {sc.name!r}; pass a dict name -> scenario")
                out[sc.name] = sc
        if not out:
            raise self._err("a grid needs at least one scenario")
        for key, sc in out.items():
            if not isinstance(sc, Scenario):
                raise self._err(f"scenario {key!r} = {sc!r} is not a doseesc Scenario")
        return out

    def _check_counts(self, n_trials, unit_trials) -> tuple[int, int]:
        for key, v, low in (("n_trials", n_trials, 2), ("unit_trials", unit_trials, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise self._err(f"{key} = {v!r} must be an integer of at least {low}")
        return int(n_trials), int(unit_trials)

    def _points(self) -> list[dict]:
        keys = list(self.params)
        if self.how == "zip":
            combos = zip(*self.params.values())
        else:
            combos = itertools.product(*self.params.values())
        return [dict(zip(keys, c)) for c in combos]

    def _build(self, values: dict) -> Design:
        try:
            design = self.make(**values) if self.make is not None else dataclasses.replace(self.base, **values)
        except DoseescError as exc:
            raise self._err(f"grid point {_point_text(values)}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise self._err(f"grid point {_point_text(values)}: a value of the wrong type ({exc})") from None
        if not isinstance(design, Design):
            raise self._err(f"grid point {_point_text(values)}: make returned {design!r}, not a doseesc design")
        if design.time_to_event:
            raise self._err(f"grid point {_point_text(values)}: {design.label} is a time-to-event design; grids "
                            "run the untimed Monte Carlo engine (no calendar)")
        return design

    def _check_run(self, p: int, s: int):
        sname = list(self.scenarios)[s]
        try:
            return check_simulation(self.designs[p], self.scenarios[sname], self.n_trials, rng=self.seq,
                                    target=self.target, ladder=self.ladder, obd=self.obd,
                                    batch_size=self.unit_trials)
        except DoseescError as exc:
            raise type(exc)(f"{self.where}grid point {_point_text(self.points[p])}, scenario {sname!r}: {exc}") \
                from None

    def _check_objective(self, objective) -> str:
        if objective is None:
            objective = OBJECTIVES[(self.base if self.base is not None else self.designs[0]).question]
        if objective not in OBJECTIVES.values():
            raise self._err(f"objective = {objective!r} must be one of {', '.join(OBJECTIVES.values())}")
        for (p, s), run in self.runs.items():
            sname = list(self.scenarios)[s]
            if objective == "p_correct" and run.target is None:
                raise self._err(f"objective p_correct: scenario {sname!r} has no target DLT rate (give target=)")
            if objective == "p_select_obd" and (run.scenario.true_eff is None or run.obd is None):
                raise self._err(f"objective p_select_obd: scenario {sname!r} has no true OBD (needs true_eff and "
                                "an OBD definition)")
        return objective

    def _check_weights(self, weights) -> np.ndarray:
        if weights is None:
            return np.ones(len(self.scenarios))
        if not isinstance(weights, dict):
            raise self._err(f"weights = {weights!r}: give a dict scenario -> weight")
        for key, w in weights.items():
            if key not in self.scenarios:
                raise self._err(f"weights: {key!r} is not a scenario of the grid ({', '.join(self.scenarios)})")
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(w) or w < 0:
                raise self._err(f"weights: {key} = {w!r} must be a non-negative number")
        missing = [k for k in self.scenarios if k not in weights]
        if missing:
            raise self._err(f"weights: no weight for scenario(s) {', '.join(map(repr, missing))}")
        w = np.array([float(weights[k]) for k in self.scenarios])
        if w.sum() <= 0:
            raise self._err("weights: their sum must be positive")
        return w

    # -- description --------------------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        per = -(-self.n_trials // self.unit_trials)
        return len(self.designs) * len(self.scenarios) * per

    def units(self):
        return make_units(len(self.designs), len(self.scenarios), self.n_trials, self.unit_trials)

    def fingerprint(self) -> str:
        """A hash of everything that determines the numbers (designs, scenarios, trials, units, seed, target,
        OBD definition, doseesc version); a checkpoint directory is tied to it."""
        spec = {"designs": [d.to_dict() for d in self.designs],
                "scenarios": {k: s.to_dict() for k, s in self.scenarios.items()},
                "n_trials": self.n_trials, "unit_trials": self.unit_trials, "seed": seed_record(self.seq),
                "target": self.target, "obd": None if self.obd is None else repr(self.obd), "version": __version__}
        text = json.dumps(spec, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        base = self.base.label if self.base is not None else getattr(self.make, "__name__", "make")
        return (f"<Grid {self.name!r}: {base} over {', '.join(self.params)} ({self.how}), {len(self.designs)} "
                f"points x {len(self.scenarios)} scenarios x {self.n_trials} trials = {self.n_units} units>")

    # -- running -----------------------------------------------------------------------------------------
    def run(self, *, workers: int | None = None, scheduler: str | None = None, dask_local: int | None = None,
            checkpoint=None, retries: int = 2, progress: Callable[[int, int, float], None] | None = None) -> GridResult:
        """Simulate every unit and combine them into a :class:`GridResult`.

        ``workers=N``: N local processes; ``scheduler="tcp://host:8786"``: a Dask cluster;
        ``dask_local=N``: a Dask LocalCluster of N processes started for this run; none: in this process.
        ``checkpoint``: a directory where finished units are written as they finish; a rerun with the same
        directory skips them. ``progress(done, total, seconds)`` is called after each unit.
        """
        runner = runner_name(workers, scheduler, dask_local)
        t0 = time.perf_counter()
        units = self.units()
        total = len(units)
        combiner = _Combiner(self)
        store = Checkpoint(checkpoint, self.fingerprint()) if checkpoint is not None else None
        done_before = store.done(units) if store is not None else []
        for unit in done_before:
            combiner.add(unit, store.load(unit))
        count = [len(done_before)]

        def on_done(unit, arrays):
            if store is not None:
                store.save(unit, arrays)
            combiner.add(unit, arrays)
            count[0] += 1
            if progress is not None:
                progress(count[0], total, time.perf_counter() - t0)

        skip = set(done_before)
        todo = [u for u in units if u not in skip]
        ctx = Context(designs=self.designs, scenarios=tuple(self.scenarios.values()), seq=self.seq)
        retried = run_units(ctx, todo, on_done, workers=workers, scheduler=scheduler, dask_local=dask_local,
                            retries=retries)
        info = {"runner": runner, "units": total, "units_resumed": len(done_before), "retries": retried,
                "seconds": round(time.perf_counter() - t0, 3)}
        return combiner.result(info)


def _point_text(values: dict) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in values.items())


class _Combiner:
    """Blocks of each (point, scenario) held until all have arrived, then reduced to its metrics and its
    per-trial objective (a bool per trial); the blocks are then dropped."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.per = -(-grid.n_trials // grid.unit_trials)
        self.blocks: dict[tuple[int, int], dict[int, dict]] = {}
        self.metrics: dict[tuple[int, int], dict[str, tuple[float, float]]] = {}
        self.hits: dict[tuple[int, int], np.ndarray] = {}

    def add(self, unit, arrays: dict) -> None:
        key = (unit.point, unit.scenario)
        got = self.blocks.setdefault(key, {})
        got[unit.block] = arrays
        if len(got) == self.per:
            self.metrics[key], self.hits[key] = self._reduce(key, [got[b] for b in range(self.per)])
            del self.blocks[key]

    def _reduce(self, key, blocks):
        g = self.grid
        run = g.runs[key]
        out = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
        two = out.pop("two_dlt").astype(float)
        prov = provenance(run.design, run.scenario, method="monte carlo", n_trials=g.n_trials, seed=g.seq,
                          batch_size=g.unit_trials, seconds=0.0, target=run.target)
        oc = monte_carlo_result(run.design, run.scenario, run.ladder, run.target, run.obd, out, None, prov, {})
        table = oc.metrics()
        values = {m: (float(r["estimate"]), float(r["mcse"])) for m, r in table.iterrows()}
        # p_two_dlt_cohort from the units' per-trial flags, with the mean and MCSE of OperatingCharacteristics
        values["p_two_dlt_cohort"] = (float(two.mean()), float(two.std(ddof=1) / math.sqrt(two.size)))
        hits = oc._per_trial(g.objective).astype(bool)
        return values, hits

    def result(self, info: dict) -> GridResult:
        missing = [k for k in self.grid.runs if k not in self.metrics]
        if missing:  # pragma: no cover - every unit ran or raised
            raise DoseescError(f"grid: {len(missing)} (point, scenario) pairs are incomplete")
        return GridResult(self.grid, self.metrics, self.hits, info)


# -- results -------------------------------------------------------------------------------------------------
class GridResult:
    """The operating characteristics of every grid point under every scenario, the objective, the
    constraints, the best feasible point and the Pareto front."""

    def __init__(self, grid: Grid, metrics: dict, hits: dict, info: dict):
        self.grid = grid
        self._metrics = metrics
        self.info = info
        self._objective = [self._score(p, hits) for p in range(len(grid.designs))]

    def _score(self, p: int, hits: dict) -> tuple[float, float]:
        """Objective of point ``p``: each trial's (weighted) average over scenarios of the objective's 0/1,
        then mean and SD / sqrt(n_trials) over trials (paired: every scenario uses the same trials' seeds)."""
        g = self.grid
        x = [hits[(p, s)].astype(float) for s in range(len(g.scenarios))]
        per_trial = np.mean(x, axis=0) if np.all(g.weights == g.weights[0]) \
            else np.average(x, axis=0, weights=g.weights)
        return float(per_trial.mean()), float(per_trial.std(ddof=1) / math.sqrt(per_trial.size))

    # -- tables --------------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """One row per (point, scenario): the point's parameters, the scenario, every metric and its MCSE
        (``<metric>_mcse``; NaN where a metric does not apply)."""
        g = self.grid
        rows = []
        for p, values in enumerate(g.points):
            for s, sname in enumerate(g.scenarios):
                row = {"point": p, **_cells(values), "design": g.designs[p].label, "scenario": sname}
                m = self._metrics[(p, s)]
                for name in METRICS:
                    est, se = m.get(name, (math.nan, math.nan))
                    row[name], row[f"{name}_mcse"] = est, se
                rows.append(row)
        return pd.DataFrame(rows)

    def values(self, metric: str) -> np.ndarray:
        """``(n_points, n_scenarios)`` estimates of ``metric``."""
        if metric not in METRICS:
            raise DoseescError(f"metric {metric!r} is not a metric of a grid (known: {', '.join(METRICS)})")
        g = self.grid
        return np.array([[self._metrics[(p, s)].get(metric, (math.nan,))[0] for s in range(len(g.scenarios))]
                         for p in range(len(g.designs))])

    def _mcse(self, metric: str) -> np.ndarray:
        g = self.grid
        return np.array([[self._metrics[(p, s)].get(metric, (math.nan, math.nan))[1]
                          for s in range(len(g.scenarios))] for p in range(len(g.designs))])

    def points(self) -> pd.DataFrame:
        """One row per point: its parameters, ``objective`` (weighted mean over scenarios of the objective
        metric) with its paired ``objective_mcse``, ``feasible`` and ``violated`` (the constraints it fails),
        the objective metric in each scenario (``<objective>[<scenario>]``), each constraint's value (worst
        scenario, or mean), and each metric's weighted mean over scenarios (``<metric>``) with
        ``<metric>_mcse`` = the weighted mean of the scenarios' MCSEs (an upper bound whatever the correlation
        between scenarios, which share their seeds)."""
        g = self.grid
        w = g.weights
        names = list(g.scenarios)
        obj_values = self.values(g.objective)
        table = {name: self.values(name) for name in METRICS}
        mcse = {name: self._mcse(name) for name in METRICS}
        rows = []
        for p, values in enumerate(g.points):
            est, se = self._objective[p]
            checks = [(c, *c.check(table[c.metric][p], w)) for c in g.constraints]
            row = {"point": p, **_cells(values), "design": g.designs[p].label, "objective": est,
                   "objective_mcse": se, "feasible": all(ok for _, ok, _ in checks),
                   "violated": "; ".join(c.text for c, ok, _ in checks if not ok)}
            for s, sname in enumerate(names):
                row[f"{g.objective}[{sname}]"] = obj_values[p, s]
            for c, _, got in checks:
                row[f"[{c.text}]"] = got
            for name in METRICS:
                v, e = table[name][p], mcse[name][p]
                ok = ~np.isnan(v)
                row[name] = float((w[ok] * v[ok]).sum() / w[ok].sum()) if ok.any() and w[ok].sum() > 0 else math.nan
                row[f"{name}_mcse"] = float((w[ok] * e[ok]).sum() / w[ok].sum()) \
                    if ok.any() and w[ok].sum() > 0 else math.nan
            rows.append(row)
        return pd.DataFrame(rows).set_index("point")

    def best(self) -> pd.Series | None:
        """The feasible point with the highest objective (the first such on ties), or None if none is feasible."""
        df = self.points()
        ok = df[df["feasible"]]
        if ok.empty:
            return None
        return ok.loc[ok["objective"].idxmax()]

    def pareto(self, x: str = "objective", y: str = "mean_dlt", *, maximize: tuple[bool, bool] | None = None,
               feasible_only: bool = False) -> pd.DataFrame:
        """The points not dominated on the columns ``x`` and ``y`` of :meth:`points` (by default more is
        better for the objective and P(correct)-like metrics, less for the others), sorted by ``x``. A point
        is dominated when another is at least as good on both and better on one."""
        df = self.points()
        for col in (x, y):
            if col not in df.columns or col in ("design", "violated"):
                raise DoseescError(f"pareto: {col!r} is not a metric column of the grid's points "
                                   f"(objective or one of: {', '.join(METRICS)})")
        if maximize is None:
            maximize = (x in HIGHER_IS_BETTER, y in HIGHER_IS_BETTER)
        if feasible_only:
            df = df[df["feasible"]]
        a = df[x].to_numpy(float) * (1 if maximize[0] else -1)
        b = df[y].to_numpy(float) * (1 if maximize[1] else -1)
        keep = []
        for i in range(a.size):
            if np.isnan(a[i]) or np.isnan(b[i]):
                continue
            dominated = (a >= a[i]) & (b >= b[i]) & ((a > a[i]) | (b > b[i]))
            if not dominated.any():
                keep.append(i)
        return df.iloc[keep].sort_values(x)

    def best_dict(self) -> dict:
        """The best feasible point as JSON-ready data (``None`` values where there is none)."""
        g = self.grid
        b = self.best()
        out = {"grid": g.name, "objective": g.objective, "constraints": [c.text for c in g.constraints],
               "n_points": len(g.designs), "n_feasible": int(self.points()["feasible"].sum())}
        if b is None:
            return {**out, "best": None}
        p = int(b.name)
        return {**out, "best": {"point": p, "params": _json_cells(g.points[p]), "design": g.designs[p].to_dict(),
                                "objective": float(b["objective"]), "objective_mcse": float(b["objective_mcse"]),
                                "per_scenario": {s: float(b[f"{g.objective}[{s}]"]) for s in g.scenarios}}}

    def provenance(self) -> dict:
        g = self.grid
        return {"doseesc_version": __version__, "grid": g.name, "fingerprint": g.fingerprint(),
                "params": {k: _json_cells(dict(v=list(vs)))["v"] for k, vs in g.params.items()}, "how": g.how,
                "base_design": None if g.base is None else g.base.to_dict(), "scenarios": list(g.scenarios),
                "weights": dict(zip(g.scenarios, g.weights.tolist())), "n_trials": g.n_trials,
                "unit_trials": g.unit_trials, "seed": seed_record(g.seq), "target": g.target,
                "objective": g.objective, "constraints": [c.text for c in g.constraints], **self.info}

    def write(self, directory, x: str = "objective", y: str | None = None, provenance: dict | None = None
              ) -> dict[str, Path]:
        """Write ``grid.csv`` (:meth:`table`), ``points.csv`` (:meth:`points`), ``best.json``, ``pareto.png``
        (:func:`plot_pareto` on ``x`` and ``y``, default the first constraint's metric, else mean_dlt) and
        ``provenance.json`` (:meth:`provenance`, updated with ``provenance``, e.g. the scenario file and its
        SHA-256) into ``directory``; returns their paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        y = y or (self.grid.constraints[0].metric if self.grid.constraints else "mean_dlt")
        paths = {"grid.csv": out / "grid.csv", "points.csv": out / "points.csv", "best.json": out / "best.json",
                 "pareto.png": out / "pareto.png", "provenance.json": out / "provenance.json"}
        csv_safe(self.table()).to_csv(paths["grid.csv"], index=False)   # names starting with = + - @ as text
        csv_safe(self.points()).to_csv(paths["points.csv"])
        paths["best.json"].write_text(json.dumps(self.best_dict(), indent=2, default=str) + "\n")
        paths["provenance.json"].write_text(json.dumps({**self.provenance(), **(provenance or {})}, indent=2,
                                                       default=str) + "\n")
        ax = plot_pareto(self, x, y)
        ax.figure.savefig(paths["pareto.png"], dpi=110)
        return paths

    def __repr__(self) -> str:
        b = self.best()
        best = "no feasible point" if b is None else f"best point {int(b.name)} objective {b['objective']:.3f}"
        return f"<GridResult {self.grid.name!r}: {len(self.grid.designs)} points, {best}>"


def _cells(values: dict) -> dict:
    return {k: (str(v) if isinstance(v, (tuple, list, dict)) else v) for k, v in values.items()}


def _json_cells(values: dict) -> dict:
    def conv(v):
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v
    return {k: conv(v) for k, v in values.items()}


def progress_text(done: int, total: int, seconds: float) -> str:
    """``"units 120/2000 (6%), 12 s elapsed, about 3 min 8 s left"`` for a progress line."""
    pct = 100 * done / total if total else 100.0
    left = seconds / done * (total - done) if done else math.nan
    return f"units {done}/{total} ({pct:.0f}%), {_secs(seconds)} elapsed" + \
        ("" if math.isnan(left) else f", about {_secs(left)} left")


def _secs(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


# -- figures -------------------------------------------------------------------------------------------------
def _axes(ax, figsize):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib is loaded only to draw

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _label(result: GridResult, col: str) -> str:
    if col == "objective":
        word = "MTD" if result.grid.objective == "p_correct" else "OBD"
        return f"P(select the true {word}), mean over scenarios"
    if col.startswith("["):
        return col.strip("[]")
    return f"{metric_name(col)} (mean over scenarios)"


def plot_pareto(result: GridResult, x: str = "objective", y: str = "mean_dlt", ax=None):
    """Every grid point on ``x`` against ``y`` (columns of :meth:`GridResult.points`) with ±1.96 MCSE bars:
    feasible points filled, infeasible hollow, the Pareto front joined, the best feasible point starred and
    the front's points labelled by their parameters. Returns the Axes."""
    ax = _axes(ax, (7.5, 5.2))
    df = result.points()
    front = result.pareto(x, y)
    xe = df.get(f"{x}_mcse")
    ye = df.get(f"{y}_mcse")
    feas = df["feasible"].to_numpy(bool)
    for mask, face, lab in ((feas, "tab:blue", "feasible"), (~feas, "none", "violates a constraint")):
        if mask.any():
            ax.errorbar(df[x][mask], df[y][mask],
                        xerr=None if xe is None else 1.96 * xe[mask], yerr=None if ye is None else 1.96 * ye[mask],
                        fmt="o", mfc=face, mec="tab:blue", ecolor="0.75", elinewidth=0.8, ms=6, label=lab)
    ax.plot(front[x], front[y], "-", color="tab:orange", lw=1.5, label="Pareto front", zorder=3)
    keys = list(result.grid.params)
    for p, row in front.iterrows():
        ax.annotate(", ".join(f"{k}={row[k]}" for k in keys), (row[x], row[y]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
    b = result.best()
    if b is not None:
        ax.plot([b[x]], [b[y]], marker="*", ms=16, color="tab:red", ls="none", label="best feasible", zorder=4)
    ax.set_xlabel(_label(result, x))
    ax.set_ylabel(_label(result, y))
    ax.set_title(f"{result.grid.name}: {len(df)} points, {int(feas.sum())} feasible (bars ±1.96 MCSE)",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_sweep(result: GridResult, param: str | None = None, ax=None):
    """The objective (±1.96 paired MCSE) and E[N] (right axis) against one swept parameter (the sample-size
    sweep: P(correct) and E[N] against max N). Returns the Axes."""
    g = result.grid
    param = param or next(iter(g.params))
    if param not in g.params:
        raise DoseescError(f"plot_sweep: {param!r} is not a parameter of the grid ({', '.join(g.params)})")
    ax = _axes(ax, (7.0, 4.5))
    df = result.points().sort_values(param)
    ax.errorbar(df[param], df["objective"], yerr=1.96 * df["objective_mcse"], fmt="o-", color="tab:blue",
                capsize=3)
    ax.set_xlabel(param)
    ax.set_ylabel(_label(result, "objective"), color="tab:blue")
    right = ax.twinx()
    right.plot(df[param], df["expected_n"], "s--", color="tab:green")
    right.set_ylabel("E[N] (mean over scenarios)", color="tab:green")
    ax.set_title(f"{g.name}", fontsize=10)
    ax.grid(alpha=0.3)
    return ax


# -- the file format ---------------------------------------------------------------------------------------
_GRID_KEYS = {"name", "design", "params", "how", "sample_size", "scenarios", "weights", "objective", "constraints",
              "n_trials", "seed", "unit_trials"}


def grid_from_dict(entry: dict, designs: dict[str, Design], scenarios: dict[str, Scenario], *, where: str,
                   n_trials: int = 2000, seed=None, target: float | None = None, obd=None,
                   ladder: DoseLadder | None = None) -> Grid:
    """A :class:`Grid` from a ``[[grid]]`` table of a scenario file.

    ``designs`` and ``scenarios`` are the file's, by name; ``where`` prefixes every error (``"file: [[grid]]
    'name'"``); ``n_trials`` and ``seed`` are the file's defaults ([run]), overridden by the table's own keys.
    Parameter values are lists, or ``{start, stop, step}`` tables (stop included, :func:`span`).
    """
    if not isinstance(entry, dict):
        raise DesignError(f"{where}: a [[grid]] entry must be a table")
    unknown = sorted(set(entry) - _GRID_KEYS)
    if unknown:
        raise DesignError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_GRID_KEYS))})")
    dname = entry.get("design")
    if not isinstance(dname, str) or dname not in designs:
        raise DesignError(f"{where}: design = {dname!r} is not a [[design]] of the file "
                          f"({', '.join(map(repr, designs))})")
    has_params, has_sizes = "params" in entry, "sample_size" in entry
    if has_params == has_sizes:
        raise DesignError(f"{where}: give either params (a table of parameter = values) or sample_size "
                          "(a list of max_n values)")
    if has_sizes:
        params = {"max_n": _values(entry["sample_size"], "sample_size", where)}
    else:
        raw = entry["params"]
        if not isinstance(raw, dict) or not raw:
            raise DesignError(f"{where}: params = {raw!r} must be a table of parameter = values")
        params = {k: _values(v, f"params.{k}", where) for k, v in raw.items()}
    names = entry.get("scenarios", list(scenarios))
    if not isinstance(names, list) or not names:
        raise DesignError(f"{where}: scenarios = {names!r} must be a non-empty list of scenario names")
    for s in names:
        if s not in scenarios:
            raise DesignError(f"{where}: scenarios: {s!r} is not a [[scenario]] of the file "
                              f"({', '.join(map(repr, scenarios))})")
    constraints = entry.get("constraints", [])
    if not isinstance(constraints, list):
        raise DesignError(f"{where}: constraints = {constraints!r} must be a list such as ['p_above_mtd <= 0.2']")
    name = entry.get("name", "grid")
    grid = Grid(designs[dname], params, {s: scenarios[s] for s in names}, entry.get("n_trials", n_trials),
                how=entry.get("how", "cross"), objective=entry.get("objective"), weights=entry.get("weights"),
                constraints=constraints, rng=entry.get("seed", seed), target=target, obd=obd, ladder=ladder,
                unit_trials=entry.get("unit_trials", 2048), name=name, where=where)
    if entry.get("seed", seed) is None:
        raise DesignError(f"{where}: no seed: give the grid a seed (seed = ...) or the file one ([run] seed), so "
                          "that the calibration, and a report that shows it, can be reproduced")
    return grid


def _values(v, key: str, where: str) -> list:
    if isinstance(v, dict):
        extra = sorted(set(v) - {"start", "stop", "step"})
        if extra or len(v) != 3:
            raise DesignError(f"{where}: {key} = {v!r}: a range is a table with start, stop and step")
        try:
            return span(v["start"], v["stop"], v["step"])
        except DoseescError as exc:
            raise DesignError(f"{where}: {key}: {exc}") from None
    if not isinstance(v, list):
        raise DesignError(f"{where}: {key} = {v!r}: give a list of values or a table {{start, stop, step}}")
    if not v:
        raise DesignError(f"{where}: {key} = []: the list of values is empty")
    return v
