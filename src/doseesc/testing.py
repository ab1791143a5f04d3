"""The contract every registered design must pass: :func:`check_design`.

Like scikit-learn's ``check_estimator``, one public function runs the checks
that make a design a good citizen of every engine::

    >>> import doseesc
    >>> from doseesc.testing import check_design
    >>> report = check_design(doseesc.ThreePlusThree(n_tiers=3), n_trials=500)
    >>> report["exact"]
    'passed'

A failing check raises :class:`AssertionError` whose message starts with
``check_design(<label>) [<check>]`` and gives the numbers. The checks, in the
order they run (the deterministic checks first, so that a broken kernel is named where it is
easiest to see; an engine refusing the design with a :class:`~doseesc.DoseescError` fails the
check it happened in):

``describe``
    ``describe()`` returns non-empty text and ``label`` is a string.
``round trip``
    ``design_from_dict(design.to_dict()) == design``, and the same design read
    back by :func:`doseesc.load_protocol` from a scenario file written to a
    temporary directory.
``kernel``
    ``Design.step`` on the states after a first cohort (every number of DLTs)
    returns arrays of shape ``(n_trials,)``, next tiers in range, ``-1``
    exactly where the trial stops, a reason for every stop, and a cohort size
    of at least 1 and at most ``max_size``. (Not for time-to-event designs,
    whose states carry per-patient follow-up.)
``paths``
    Every node of ``paths(design, 2)`` agrees with ``recommend(design, log)``
    on the node's log: stop or not, next tier, stop reason, selected tier; and
    no node's cohort is larger than ``max_size`` (skipped for time-to-event
    designs, which have no dose paths).
``reproducible``
    Two simulations with the same seed give identical numbers.
``batch invariance``
    The same seed with a different ``batch_size`` gives identical selections,
    counts and stop reasons.
``trial bounds``
    In every simulated trial: at most ``max_n`` patients, ``0 <= y <= n``, a
    stop reason, and a selected tier in ``-1 .. n_tiers - 1``.
``exact``
    Monte Carlo within 4 standard errors of exact enumeration for P(select)
    of every tier and of no dose, and for the mean sample size (skipped for
    time-to-event designs and when exact needs too many states).

:func:`example_design` gives a design of each registered type with sensible
parameters (from the class's own ``example()`` where it has one), so a test
can run :func:`check_design` over the whole registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from . import DoseescError, Scenario, TrialState, exact, load_protocol, paths, recommend, simulate
from .designs import REGISTRY, Design, crm_skeleton, design_from_dict
from .engines.run import trial_by_trial

__all__ = ["check_design", "default_scenario", "example_design", "CHECKS"]

#: The checks :func:`check_design` runs, in order (the keys of its report).
CHECKS = ("describe", "round trip", "kernel", "paths", "reproducible", "batch invariance", "trial bounds", "exact")

#: Standard errors Monte Carlo may lie from exact.
N_SE = 4.0

#: Per-trial arrays that must be identical between runs of the same seed (and ``e`` where recorded).
_SIM_KEYS = ("n", "y", "selected", "reason")


def _examples() -> dict:
    """Example designs as scenario-file tables, by type, for classes that give no ``example()``.

    Written as file-format dicts (built with :func:`~doseesc.design_from_dict`) so that this module
    imports no design class: four tiers, target 0.25, ``max_n`` small enough for exact enumeration.
    """
    sk = [round(float(p), 6) for p in crm_skeleton(0.25, 0.05, 2, 4)]
    interval = {"target": 0.25, "n_tiers": 4, "max_n": 18}
    return {
        "3+3": {"n_tiers": 4},
        "BOIN": interval, "Keyboard": interval, "mTPI": interval, "mTPI-2": interval, "TPI": interval,
        "i3+3": interval,
        "CRM": {"skeleton": sk, "target": 0.25, "max_n": 12},
        "BOIN12": {"n_tiers": 4, "max_n": 12},
        "BOIN-ET": {"n_tiers": 4, "phi": 0.25, "max_n": 12},
        # three tiers: with four, exact enumeration of the joint outcomes takes about 10 s
        "obd-pick": {"base": {"type": "3+3", "n_tiers": 3}, "expansion": 1},
        "TITE-CRM": {"skeleton": sk, "target": 0.25, "max_n": 12},
        "TITE-BOIN": {"target": 0.25, "n_tiers": 4, "max_n": 12},
        "TITE-BOIN12": {"n_tiers": 4, "max_n": 12},
    }


def example_design(kind: str) -> Design:
    """A design of the registered type ``kind`` with sensible default parameters.

    The class's own ``example()`` classmethod is used where it has one that
    returns an instance of that class; else the table in this module. Raises
    :class:`LookupError` saying where to add one when there is neither.
    """
    if kind not in REGISTRY:
        raise LookupError(f"{kind!r} is not a registered design type (known: {', '.join(sorted(REGISTRY))})")
    cls = REGISTRY[kind]
    try:
        design = cls.example()  # Design.example() raises NotImplementedError where a class gives none
    except NotImplementedError:
        design = None
    if type(design) is cls:  # an inherited example() that names its own class builds the parent's type
        return design
    examples = _examples()
    if kind in examples:
        return design_from_dict({"type": kind, **examples[kind]})
    raise LookupError(f"add an example for {kind!r} to {cls.__module__}.{cls.__qualname__}.example() "
                      "(a classmethod returning a small design of this type) or to "
                      "doseesc.testing._examples (src/doseesc/testing.py)")


def default_scenario(design: Design) -> Scenario:
    """A truth for ``design``'s tiers: P(DLT) rising linearly through its target (0.25 when it has none),
    target x 2i / (k + 1) at tier i = 1..k; P(response) from 0.2 to 0.6 for designs that use response."""
    k = design.n_tiers
    target = 0.25 if design.target is None else float(design.target)  # 3+3 and A+B have none
    tox = tuple(round(min(0.9, max(0.02, target * 2 * (i + 1) / (k + 1))), 6) for i in range(k))
    eff = None
    if design.uses_efficacy:
        eff = tuple(round(0.2 + 0.4 * i / max(k - 1, 1), 6) for i in range(k))
    return Scenario(true_tox=tox, true_eff=eff, name="check_design", target=target)


def _fail(design: Design, check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_design({design.label}) [{check}]: {detail}")


@contextlib.contextmanager
def _engine_errors(design: Design, check: str):
    """An error raised while a check runs (an engine refusing the design, ``Design.step`` finding a kernel
    that broke the contract, a crash in the kernel) fails that check; the error is chained."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as exc:
        raise _fail(design, check, f"raised {type(exc).__name__}: {exc}") from exc


# -- the checks --------------------------------------------------------------------------------
def check_design(design: Design, scenario: Scenario | None = None, *, n_trials: int = 2000,
                 seed: int = 20261203, max_states: int = 200_000) -> dict[str, str]:
    """Run the contract on ``design`` (see the module doc); raise :class:`AssertionError` on the first failure.

    ``scenario`` defaults to :func:`default_scenario`; ``n_trials`` and ``seed`` are those of the
    simulations; the exact check is skipped where enumeration needs more than ``max_states`` live
    states. Returns ``{check: "passed" or "skipped: why"}``.
    """
    if not isinstance(design, Design):
        raise TypeError(f"design = {design!r} is not a doseesc design")
    scenario = default_scenario(design) if scenario is None else scenario
    report = {}
    for check, run in (("describe", lambda: _check_describe(design)),
                       ("round trip", lambda: _check_round_trip(design, scenario)),
                       ("kernel", lambda: _check_kernel(design)),
                       ("paths", lambda: _check_paths(design))):
        with _engine_errors(design, check):
            report[check] = run()
    batch = max(1, n_trials // 3 + 1)  # not a divisor of n_trials: batches end at different trials
    # The kernel is asked about every trial here (the engine otherwise decides once per distinct state,
    # which would hide a kernel that depends on more than the state, e.g. on its row in the batch).
    with _engine_errors(design, "reproducible"), trial_by_trial():
        first = simulate(design, scenario, n_trials, rng=seed)
        again = simulate(design, scenario, n_trials, rng=seed)
    report["reproducible"] = _same_runs(design, "reproducible", first, again, "a second run with the same seed")
    with _engine_errors(design, "batch invariance"), trial_by_trial():
        other = simulate(design, scenario, n_trials, rng=seed, batch_size=batch)
    report["batch invariance"] = _same_runs(design, "batch invariance", first, other,
                                            f"batch_size = {batch} (default batches before)")
    report["trial bounds"] = _check_bounds(design, first)
    with _engine_errors(design, "exact"):
        report["exact"] = _check_exact(design, scenario, first, max_states)
    return report


def _check_describe(design: Design) -> str:
    if not isinstance(design.label, str) or not design.label.strip():
        raise _fail(design, "describe", f"label = {design.label!r} is not a non-empty string")
    text = design.describe()
    if not isinstance(text, str) or not text.strip():
        raise _fail(design, "describe", f"describe() returned {text!r}, not non-empty text")
    return "passed"


def _check_round_trip(design: Design, scenario: Scenario) -> str:
    d = design.to_dict()
    if d.get("type") != design.kind:
        raise _fail(design, "round trip", f"to_dict()['type'] = {d.get('type')!r}, the class's kind is {design.kind!r}")
    again = design_from_dict(d)
    if again != design:
        raise _fail(design, "round trip", f"design_from_dict(to_dict()) differs: {_diff(design, again)}")
    text = _protocol_toml(d, scenario, timed=design.time_to_event)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check_design.toml"
        path.write_text(text, encoding="utf-8")
        loaded = load_protocol(path).design("checked")
    if loaded != design:
        raise _fail(design, "round trip", f"read back from a scenario file it differs: {_diff(design, loaded)}\n"
                                          f"file:\n{text}")
    return "passed"


def _diff(a: Design, b: Design) -> str:
    if type(a) is not type(b):
        return f"type {type(a).__name__} became {type(b).__name__}"
    keys = [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
    return "; ".join(f"{k} = {getattr(a, k)!r} became {getattr(b, k)!r}" for k in keys) or "(no field differs)"


def _toml_value(v) -> str | None:
    """A TOML value for a to_dict() value (None: leave the key out; TOML has no null)."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "nan"
        return repr(float(v)) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = [(k, _toml_value(x)) for k, x in v.items()]
        return "{ " + ", ".join(f"{json.dumps(k)} = {x}" for k, x in items if x is not None) + " }"
    raise TypeError(f"to_dict() value {v!r} of type {type(v).__name__} has no TOML form")


def _protocol_toml(d: dict, scenario: Scenario, timed: bool = False) -> str:
    """A scenario file holding the design ``d`` (as ``checked``) and the truth; ``timed``: with the calendar
    a time-to-event design needs in a file (a 28-day DLT and response window)."""
    k = len(scenario.true_tox)
    lines = ["[tiers]", f"doses = {_toml_value([float(i + 1) for i in range(k)])}", "",
             "[[design]]", 'name = "checked"']
    lines += [f"{json.dumps(key)} = {val}" for key, val in ((key, _toml_value(v)) for key, v in d.items())
              if val is not None]
    lines += ["", "[[scenario]]", 'name = "truth"', f"true_tox = {_toml_value(list(scenario.true_tox))}"]
    if scenario.true_eff is not None:
        lines.append(f"true_eff = {_toml_value(list(scenario.true_eff))}")
    if timed:
        lines += ["", "[calendar]", "accrual_rate = 1.0", "dlt_window_days = 28", "eff_window_days = 28"]
    return "\n".join(lines) + "\n"


def _first_cohort_states(design: Design) -> TrialState:
    """One state per number of DLTs (0 .. first cohort size) after the first cohort at the start tier."""
    k, c, start = design.n_tiers, design.first_size, design.start
    y_first = np.arange(c + 1)
    n = np.zeros((c + 1, k), dtype=np.int32)
    y = np.zeros((c + 1, k), dtype=np.int32)
    n[:, start] = c
    y[:, start] = y_first
    return TrialState.from_counts(n, y, np.full(c + 1, start), last_n=np.full(c + 1, c), last_y=y_first)


def _check_kernel(design: Design) -> str:
    if design.time_to_event and not design.complete_data:
        return "skipped: time-to-event designs decide on per-patient follow-up"
    state = _first_cohort_states(design)
    t, k = state.n_trials, design.n_tiers
    dec = design.step(state)  # an error here fails "kernel" (check_design runs this under _engine_errors)
    for name in ("next", "stop", "reason", "size"):
        a = getattr(dec, name)
        if a is not None and np.shape(a) != (t,):
            raise _fail(design, "kernel", f"Decision.{name} has shape {np.shape(a)}, expected ({t},)")
    nxt, stop, reason = np.asarray(dec.next), np.asarray(dec.stop, bool), np.asarray(dec.reason)
    rows = [f"{int(v)}/{design.first_size} DLTs" for v in state.y[:, design.start]]
    bad = np.flatnonzero(stop != (nxt < 0))
    if bad.size:
        raise _fail(design, "kernel", f"after {rows[bad[0]]}: stop = {bool(stop[bad[0]])} but next = {int(nxt[bad[0]])}"
                                      " (next must be -1 exactly where the trial stops)")
    bad = np.flatnonzero((nxt < -1) | (nxt >= k) | (stop & (reason == 0)))
    if bad.size:
        raise _fail(design, "kernel", f"after {rows[bad[0]]}: next = {int(nxt[bad[0]])}, reason = "
                                      f"{int(reason[bad[0]])} (next in -1..{k - 1}, a reason for every stop)")
    if dec.size is not None:
        size = np.asarray(dec.size)
        bad = np.flatnonzero(~stop & ((size < 1) | (size > design.max_size)))
        if bad.size:
            raise _fail(design, "kernel", f"after {rows[bad[0]]}: next cohort size {int(size[bad[0]])} is not in "
                                          f"1..max_size = {design.max_size}")
    return "passed"


def _same_runs(design: Design, check: str, a, b, what: str) -> str:
    for key in _SIM_KEYS + ("e",):
        x, z = getattr(a, key), getattr(b, key)
        if x is None and z is None:
            continue
        if x is None or z is None or np.shape(x) != np.shape(z):
            raise _fail(design, check, f"{key} has shape {np.shape(x) if x is not None else None} in the first run, "
                                       f"{np.shape(z) if z is not None else None} with {what}")
        rows = np.flatnonzero((np.asarray(x) != np.asarray(z)).reshape(len(x), -1).any(axis=1))
        if rows.size:
            i = int(rows[0])
            raise _fail(design, check, f"{key} differs with {what} in {rows.size} of {len(x)} trials; first, "
                                       f"trial {i}: {np.asarray(x)[i].tolist()} vs {np.asarray(z)[i].tolist()}")
    return "passed"


def _check_bounds(design: Design, r) -> str:
    k, max_n = design.n_tiers, design.max_n
    n, y, total, sel = r.n, r.y, r.n.sum(axis=1), r.selected
    checks = [
        (total > max_n, lambda i: f"{int(total[i])} patients > max_n = {max_n}"),
        ((y < 0).any(axis=1) | (y > n).any(axis=1),
         lambda i: f"DLTs {y[i].tolist()} not within 0..n = {n[i].tolist()}"),
        ((sel < -1) | (sel >= k), lambda i: f"selected tier {int(sel[i])} not in -1..{k - 1}"),
        (r.reason == 0, lambda i: "the trial ended without a stop reason"),
    ]
    for bad, text in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            raise _fail(design, "trial bounds", f"{rows.size} of {len(sel)} trials; first, trial {int(rows[0])}: "
                                                f"{text(int(rows[0]))}")
    return "passed"


def _check_exact(design: Design, scenario: Scenario, mc, max_states: int) -> str:
    if design.time_to_event and not design.complete_data:
        return "skipped: exact enumeration does not apply to time-to-event designs"
    try:
        ex = exact(design, scenario, max_states=max_states)
    except DoseescError as exc:
        if "max_states" in str(exc):
            return f"skipped: {exc}"
        raise
    t = mc.n_trials
    p_ex = np.clip(ex.p_select, 0.0, 1.0)
    # the larger of the run's MCSE and the exact binomial SE (a run that never selects a rare tier
    # has MCSE 0 there), plus one trial's worth (continuity: one trial is never a discrepancy)
    se = np.maximum(mc.p_select_mcse, np.sqrt(p_ex * (1 - p_ex) / t))
    off = np.abs(mc.p_select - p_ex) > N_SE * se + 1.0 / t + 1e-12
    if off.any():
        names = ["no dose"] + [f"tier {i + 1}" for i in range(design.n_tiers)]
        rows = "; ".join(f"{names[i]}: MC {mc.p_select[i]:.4f} exact {p_ex[i]:.4f} (SE {se[i]:.4f}, "
                         f"{abs(mc.p_select[i] - p_ex[i]) / max(se[i], 1e-300):.1f} SE)" for i in np.flatnonzero(off))
        raise _fail(design, "exact", f"P(select) off by more than {N_SE:g} SE ({t} trials): {rows}")
    se_n = max(mc.expected_n_mcse, ex.sd_n / math.sqrt(t))
    if abs(mc.expected_n - ex.expected_n) > N_SE * se_n + 1e-9:
        raise _fail(design, "exact", f"mean N: MC {mc.expected_n:.4f}, exact {ex.expected_n:.4f}, SE {se_n:.4f} "
                                     f"({abs(mc.expected_n - ex.expected_n) / max(se_n, 1e-300):.1f} SE)")
    return "passed"


def _check_paths(design: Design) -> str:
    if design.time_to_event and not design.complete_data:
        return "skipped: dose paths do not apply to time-to-event designs"
    frame = paths(design, 2).nodes()
    for row in frame.itertuples(index=False):
        if row.size > design.max_size:
            raise _fail(design, "paths", f"node {row.path!r}: cohort of {row.size} > max_size = {design.max_size}")
        rec = recommend(design, row.path, warn=False)
        got = (rec.stop, None if rec.stop else rec.next_tier + 1, rec.reason.name.lower(),
               rec.ladder.label(rec.selected) if rec.stop else None)
        want = (bool(row.stop), None if row.stop else int(row.next_tier), row.reason,
                row.selected if row.stop else None)
        if got != want:
            raise _fail(design, "paths", f"log {row.path!r}: paths says (stop, next tier, reason, selected) = "
                                         f"{want}, recommend says {got}")
    return "passed"
