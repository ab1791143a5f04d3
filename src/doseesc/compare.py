"""Paired comparison of designs: every design sees the same simulated patients."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ._lazy import lazy
from .actual_dose import DoseModel, nominal_scenario
from .designs.base import Design
from .designs.crm import CRM, crm_skeleton
from .engines.montecarlo import simulate
from .errors import DesignError, DoseescError
from .grid import Grid
from .rng import root_seed, seed_record
from .scenario import Scenario
from .tiers import DoseLadder

pd = lazy("pandas")

#: Per-trial metrics compared (name -> description).
COMPARED = {
    "p_correct": "P(select the true MTD)",
    "p_no_dose": "P(no tier selected)",
    "expected_n": "mean patients",
    "mean_dlt": "mean DLTs",
    "share_above_mtd": "share of patients above the true MTD",
    "p_select_obd": "P(select the true OBD)",
    "mean_eff": "mean responses",
}

#: The metric that answers each question (:attr:`~doseesc.designs.base.Design.question`): a design's headline
#: P(correct) is P(select the true MTD) for an MTD design and P(select the true OBD) for an OBD design.
QUESTION_METRIC = {"MTD": "p_correct", "OBD": "p_select_obd"}


def question_metric(result) -> str:
    """The metric of the question ``result``'s design answers (``p_correct`` or ``p_select_obd``)."""
    return QUESTION_METRIC[result.design.question]


def paired_difference(a, b, metric: str) -> tuple[float, float]:
    """``(mean, mcse)`` of metric(a) - metric(b).

    Monte Carlo runs of one seed share their patients trial by trial: the MCSE is that of the per-trial
    differences. Where either run is exact, or the runs differ in length, the difference is of the
    estimates and its MCSE combines theirs (0 when both are exact).
    """
    xa, xb = a._per_trial(metric), b._per_trial(metric)
    if xa is None or xb is None:
        return math.nan, math.nan
    if not a.is_exact and not b.is_exact and xa.shape == xb.shape and xa.size > 1:
        d = np.asarray(xa, float) - np.asarray(xb, float)
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    (ea, sa), (eb, sb) = a.metric(metric), b.metric(metric)
    return ea - eb, math.hypot(sa, sb)


def conduct_notes(designs: dict) -> dict[str, list[str]]:
    """Where designs compared side by side differ in how they conduct the trial, what to say next to each
    design's numbers (``{name: [note, ...]}``, empty lists where nothing differs).

    From :meth:`~doseesc.designs.base.Design.conduct`: a maximum N other than the one most designs share
    (``"max N 24 (others 36)"``; every design when no value is shared by most), no safety stop where
    others have one (``"no safety stop"``: the trial keeps treating at the lowest tier however toxic),
    an expansion stage where others have none or a different one (``"+6 per tier expansion"``).
    """
    conduct = {name: d.conduct() for name, d in designs.items()}
    notes = {name: [] for name in designs}
    if len(conduct) < 2:
        return notes
    maxn = [c.max_n for c in conduct.values()]
    if len(set(maxn)) > 1:
        counts = {v: maxn.count(v) for v in maxn}
        top = max(counts.values())
        modal = [v for v, k in counts.items() if k == top]
        for name, c in conduct.items():
            if len(modal) > 1 or c.max_n != modal[0]:
                others = sorted({o.max_n for n2, o in conduct.items() if n2 != name} - {c.max_n})
                notes[name].append(f"max N {c.max_n} (others {', '.join(map(str, others))})")
    if len({c.safety_stop for c in conduct.values()}) > 1:
        for name, c in conduct.items():
            if not c.safety_stop:
                notes[name].append("no safety stop")
    if len({c.expansion_text for c in conduct.values()}) > 1:
        for name, c in conduct.items():
            if c.expansion_text:
                notes[name].append(c.expansion_text)
    return notes


@dataclass(frozen=True)
class Comparison:
    """Results of several designs under several scenarios, simulated on common patients.

    ``results[(scenario_name, design_name)]`` is each run's
    :class:`~doseesc.results.OperatingCharacteristics`. :meth:`table` gives
    every metric with its MCSE and the paired difference from the reference
    design with the MCSE of that difference (SD of the per-trial differences
    / sqrt(n_trials)), which is smaller than the unpaired one because the
    designs share their patients.
    """

    results: dict
    designs: tuple[str, ...]
    scenarios: tuple[str, ...]
    reference: str
    n_trials: int
    seed: dict

    def questions(self) -> dict[str, str]:
        """``{design name: "MTD" or "OBD"}``: the question each design answers."""
        first = self.scenarios[0]
        return {d: self.results[(first, d)].design.question for d in self.designs}

    def question_reference(self, question: str) -> str | None:
        """The design the others answering ``question`` are compared with: the reference if it answers
        that question, else the first design that does (None if none does)."""
        q = self.questions()
        if q[self.reference] == question:
            return self.reference
        return next((d for d in self.designs if q[d] == question), None)

    def conduct_notes(self) -> dict[str, list[str]]:
        """:func:`conduct_notes` of the compared designs: where they differ in maximum N, safety stopping
        or expansion."""
        first = self.scenarios[0]
        return conduct_notes({d: self.results[(first, d)].design for d in self.designs})

    def table(self) -> pd.DataFrame:
        """Long DataFrame: scenario, design, question, method, metric, description, estimate, mcse, diff,
        diff_mcse, versus.

        ``question`` is the question the design answers (``"MTD"`` or ``"OBD"``); ``method`` the method of
        the design's result (``"monte carlo"`` or ``"exact"``: then ``mcse`` is 0). The metric
        ``p_correct_question`` is each design's headline P(correct) on its own question: P(select the
        true MTD) for an MTD design, P(select the true OBD) for an OBD design; its ``diff`` is taken
        against :meth:`question_reference` (``versus``), the first design answering the same question,
        never across questions. Every other metric's ``diff`` is against :attr:`reference`. Differences
        are paired (common patients) between Monte Carlo runs; where a result is exact the difference is
        of the estimates (:func:`paired_difference`).
        """
        rows = []
        questions = self.questions()
        for s in self.scenarios:
            ref = self.results[(s, self.reference)]
            for d in self.designs:
                r = self.results[(s, d)]
                q = questions[d]
                head = (s, d, q, r.method)
                qref_name = self.question_reference(q)
                qref = self.results[(s, qref_name)]
                qm = QUESTION_METRIC[q]
                est, se = r.metric(qm)
                diff, diff_se = paired_difference(r, qref, qm)
                rows.append(head + ("p_correct_question", f"P(correct): {COMPARED[qm]} (the design's question, "
                                    f"{q})", est, se, diff, diff_se, qref_name))
                for metric, text in COMPARED.items():
                    if metric in ("p_select_obd", "mean_eff") and r.e is None:
                        continue
                    est, se = r.metric(metric)
                    diff, diff_se = paired_difference(r, ref, metric)
                    rows.append(head + (metric, text, est, se, diff, diff_se, self.reference))
                p0, p0_se = np.asarray(ref.p_select, float), np.asarray(ref.p_select_mcse, float)
                for t, label in enumerate(["No dose", *r.ladder.tier_labels]):
                    x = (r.selected == t - 1).astype(float)
                    x0 = (ref.selected == t - 1).astype(float)
                    est, se = float(r.p_select[t]), float(r.p_select_mcse[t])
                    if not r.is_exact and not ref.is_exact and x.shape == x0.shape:
                        delta = x - x0
                        diff, diff_se = float(delta.mean()), float(delta.std(ddof=1) / math.sqrt(delta.size))
                    else:
                        diff, diff_se = est - float(p0[t]), math.hypot(se, float(p0_se[t]))
                    rows.append(head + (f"p_select[{label}]", f"P(select {label})", est, se, diff, diff_se,
                                        self.reference))
        return pd.DataFrame(rows, columns=["scenario", "design", "question", "method", "metric", "description",
                                           "estimate", "mcse", "diff", "diff_mcse", "versus"])

    def wide(self, metric: str = "p_correct") -> pd.DataFrame:
        """One metric as a scenario x design table (``"p_correct_question"``: each design on its own question)."""
        t = self.table()
        return t[t["metric"] == metric].pivot(index="scenario", columns="design", values="estimate") \
            .loc[list(self.scenarios), list(self.designs)]


def compare(designs, scenarios, n_trials: int = 10_000, *, rng=None, reference: str | None = None,
            ladder: DoseLadder | None = None, target: float | None = None, progress=None) -> Comparison:
    """Simulate every design under every scenario on common random numbers.

    ``designs`` and ``scenarios`` are dicts name -> object, or lists (named by
    their labels). All runs of a scenario use the same seed, so trial ``i``
    has the same patients (latent uniforms) under every design: differences
    between designs are paired. ``reference`` (default: the first design)
    is the design the differences are taken against.
    """
    designs = _named(designs, "design", lambda d: d.label, Design)
    scenarios = _named(scenarios, "scenario", lambda s: s.name, Scenario)
    ref = reference if reference is not None else next(iter(designs))
    if ref not in designs:
        raise DoseescError(f"reference = {ref!r} is not one of the designs ({', '.join(designs)})")
    seq = root_seed(rng)
    results = {}
    for sname, sc in scenarios.items():
        for dname, d in designs.items():
            results[(sname, dname)] = simulate(d, sc, n_trials, rng=seq, ladder=ladder, target=target,
                                               progress=progress)
    return Comparison(results=results, designs=tuple(designs), scenarios=tuple(scenarios), reference=ref,
                      n_trials=int(n_trials), seed=seed_record(seq))


def _named(items, what, name_of, cls) -> dict:
    if isinstance(items, dict):
        out = dict(items)
    else:
        if isinstance(items, cls):
            items = [items]
        out = {}
        for it in items:
            name = name_of(it)
            if name in out:
                raise DoseescError(f"two {what}s are both named {name!r}; pass a dict name -> {what}")
            out[name] = it
    if not out:
        raise DoseescError(f"no {what}s given")
    for name, it in out.items():
        if not isinstance(it, cls):
            raise DoseescError(f"{what} {name!r} = {it!r} is not a doseesc {cls.__name__}")
    return out


# -- calibration by paired comparison ----------------------------------------------------------------
def calibrate_halfwidth(target: float, prior_mtd: int, n_tiers: int, scenarios, halfwidths=None,
                        n_trials: int = 2000, rng=None, **crm_options):
    """Choose the skeleton halfwidth with the best average P(correct selection) (Lee & Cheung 2009).

    For each candidate halfwidth the skeleton ``crm_skeleton(target, halfwidth,
    prior_mtd, n_tiers)`` is simulated under every scenario (the same seed for
    all, so candidates are compared on common patients) and the probability of
    selecting the true MTD is averaged over the scenarios: one :class:`~doseesc.grid.Grid` over the
    halfwidths (its paired MCSE of the average). ``crm_options`` go
    to :class:`~doseesc.designs.crm.CRM` (``max_n`` is required). Returns a DataFrame with one row
    per halfwidth (``mean_pcs``, its MCSE and the per-scenario values) sorted
    as given, with the best row flagged in ``best``.
    """
    if halfwidths is None:
        upper = min(target, 1 - target)
        halfwidths = [round(h, 3) for h in np.arange(0.01, upper, 0.01) if h < upper]
    scenarios = list(scenarios)
    if not scenarios:
        raise DesignError("calibrate_halfwidth needs at least one scenario")

    def make(halfwidth):
        sk = crm_skeleton(target, halfwidth, prior_mtd, n_tiers, model=crm_options.get("model", "empiric"),
                          intercept=crm_options.get("intercept", 3.0))
        return CRM(tuple(sk), target, **crm_options)

    grid = Grid(None, {"halfwidth": list(halfwidths)}, scenarios, n_trials, make=make, rng=rng, target=target,
                objective="p_correct", unit_trials=max(int(n_trials), 1))
    pts = grid.run().points()
    df = pd.DataFrame({"halfwidth": pts["halfwidth"].to_numpy(), "mean_pcs": pts["objective"].to_numpy(),
                       "mean_pcs_mcse": pts["objective_mcse"].to_numpy(),
                       "skeleton": [tuple(np.round(d.skeleton, 5)) for d in grid.designs],
                       **{f"pcs[{s}]": pts[f"p_correct[{s}]"].to_numpy() for s in grid.scenarios}})
    df["best"] = df["mean_pcs"] == df["mean_pcs"].max()
    return df


# -- impact of the model on the operating characteristics -----------------------------------------
IMPACT_METRICS = ("p_correct", "p_select_obd", "expected_n", "share_above_mtd", "mean_dlt")


def impact(with_model, without_model):
    """Paired effect of the actual-dose model: the same trials (same seed) run with and without it.

    Both runs are scored against the truth of ``with_model``'s scenario (for
    curves: the tier-averaged truth, on which the true MTD/OBD are defined).
    Returns one row per metric: ``without``, ``with``, ``difference`` and the
    MCSE of the paired difference.

    It reads results only; :func:`actual_dose_impact` runs the pair.
    """
    a, b = without_model, with_model
    if a.is_exact or b.is_exact or a.n_trials != b.n_trials:
        raise DoseescError("impact() needs two Monte Carlo runs with the same number of trials and seed")
    if a.provenance.get("seed") != b.provenance.get("seed"):
        raise DoseescError("impact() needs two runs with the same seed (paired trials)")
    ref = b.scenario
    scored_a = dataclasses.replace(a, scenario=ref)
    rows = []
    for name in IMPACT_METRICS:
        xa, xb = scored_a._per_trial(name), b._per_trial(name)
        if xa is None or xb is None:
            continue
        d = xb - xa
        rows.append({"metric": name, "without": float(xa.mean()), "with": float(xb.mean()),
                     "difference": float(d.mean()), "mcse": float(d.std(ddof=1) / math.sqrt(d.size))})
    return pd.DataFrame(rows).set_index("metric")


# -- paired impact of the actual-dose model -------------------------------------------------------------
def actual_dose_impact(design, scenario, ladder: DoseLadder, dose_model: DoseModel, n_trials: int = 10_000, *,
                       rng=None, obd=None, target=None):
    """Simulate ``design`` with and without ``dose_model`` on the same trials and return :func:`impact`."""
    seq = root_seed(rng)
    with_model = simulate(design, scenario, n_trials, rng=seq, ladder=ladder, obd=obd, target=target,
                          dose_model=dose_model)
    without = simulate(design, nominal_scenario(scenario), n_trials, rng=seq, ladder=ladder, obd=obd, target=target)
    return impact(with_model, without)
