"""Scenario files: one TOML file per protocol, with its tiers, designs and truths.

See the README section "Scenario file format" for the full description. Every
error names the file, the table and key, and the offending value, e.g.::

    scenarios/ecar01.toml: [[scenario]] 'steep': true_tox[2] = 1.3 is not a probability (must lie in [0, 1])
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .actual_dose import curve_from_dict, dose_model_from_toml, scenario_from_curves
from .calendar import calendar_from_toml
from .designs.base import REGISTRY, Design, design_from_dict
from .engines.run import check_simulation
from .errors import DesignError, DoseescError, ScenarioError
from .grid import grid_from_dict
from .indications import (Conduct, IndicationScenario, Indications, conduct_from_toml, indications_from_toml,
                          scenario_from_toml, split_scenario_entry)
from .limits import (ACCRUAL_RANGE, DAYS_RANGE, MAX_COHORT, MAX_DESIGN_INT, MAX_FILE_BYTES, MAX_ITEMS, MAX_N,
                     MAX_TIERS, MAX_TRIALS, check_count, check_name, check_range, check_text, kind, long_number, short, walk)
from .backfill import backfill_from_toml, check_backfill
from .obd import OBDDefinition
from .phase2 import phase2_from_file
from .scenario import Scenario, check_target
from .tiers import DoseLadder

#: [protocol] keys that are defaults for the [[design]] tables.
_DESIGN_DEFAULTS = ("max_n", "cohort_size", "target")
#: [protocol] keys stating the observation windows (days, > 0) and what is observed in them (text).
_WINDOW_KEYS = ("dlt_window_days", "response_window_days")
_DEFINITION_KEYS = ("dlt_definition", "response_definition")
_PROTOCOL_KEYS = {"name", "title", "registry", "source", "design_note", "target", "max_n", "cohort_size",
                  *_WINDOW_KEYS, *_DEFINITION_KEYS}
_TIER_KEYS = {"doses", "unit", "labels", "tolerance"}
_RUN_KEYS = {"n_trials", "seed"}
_OBD_KEYS = {"utility", "phi_t", "phi_e", "rule"}
_TOP_KEYS = {"protocol", "tiers", "design", "scenario", "run", "obd", "actual_dose", "calendar", "grid", "indication", "phase2"}


@dataclass(frozen=True)
class Protocol:
    """A protocol read from a scenario file."""

    name: str
    tiers: DoseLadder
    designs: dict[str, Design]
    scenarios: dict[str, Scenario]
    target: float | None = None
    title: str = ""
    registry: str = ""
    source: str = ""
    n_trials: int = 10_000
    seed: int | None = None
    obd: object | None = None
    path: str | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict)
    #: Actual infused dose and manufacturing model ([actual_dose] table), or None.
    dose_model: object | None = None
    #: Calendar model ([calendar] table), or None.
    calendar: object | None = None
    #: Seamless phase 2 stage ([phase2] table, :class:`doseesc.phase2.Phase2Stage`), or None.
    phase2: object | None = None
    #: Backfill cohorts per design name (:class:`doseesc.backfill.Backfill`), where a [[design]] table has a
    #: ``backfill`` key; run_protocol simulates those designs with :func:`doseesc.engines.backfill.simulate_backfill`.
    backfills: dict = field(default_factory=dict)
    #: Calibration grids ([[grid]] tables), by name (:class:`doseesc.grid.Grid`).
    grids: dict = field(default_factory=dict)
    #: Days after the infusion in which a DLT counts ([protocol] ``dlt_window_days``), or None if unstated.
    dlt_window_days: float | None = None
    #: Days after the infusion at which response is judged ([protocol] ``response_window_days``), or None.
    response_window_days: float | None = None
    #: What counts as a DLT, in the file's words ([protocol] ``dlt_definition``).
    dlt_definition: str = ""
    #: What counts as a response, in the file's words ([protocol] ``response_definition``).
    response_definition: str = ""
    #: The declared indications or strata ([[indication]] tables), or None (one population, as before).
    indications: Indications | None = None
    #: Per scenario name, its truth in every indication (:class:`~doseesc.indications.IndicationScenario`);
    #: empty without [[indication]]. ``scenarios[name]`` is its pooled truth (the share-weighted mixture, or the
    #: common truth where every indication has the same).
    indication_scenarios: dict = field(default_factory=dict)
    #: Per design name, its ``conduct`` (:class:`~doseesc.indications.Conduct`) where the [[design]] table gives
    #: one; designs without one run pooled in a file with [[indication]] tables.
    conducts: dict = field(default_factory=dict)

    def conduct(self, name: str) -> Conduct | None:
        """The conduct of design ``name``: its own, ``pooled`` where the file declares indications, else None."""
        if name in self.conducts:
            return self.conducts[name]
        return Conduct("pooled") if self.indications is not None else None

    def indication_scenario(self, name: str) -> IndicationScenario | None:
        """The per-indication truth of scenario ``name`` (None without [[indication]] tables)."""
        if self.indications is None:
            return None
        self.scenario(name)
        return self.indication_scenarios[name]

    def design(self, name: str) -> Design:
        if name not in self.designs:
            raise DoseescError(f"{self.path or self.name}: no design named {name!r} "
                               f"(designs: {', '.join(self.designs)})")
        return self.designs[name]

    def scenario(self, name: str) -> Scenario:
        if name not in self.scenarios:
            raise DoseescError(f"{self.path or self.name}: no scenario named {name!r} "
                               f"(scenarios: {', '.join(self.scenarios)})")
        return self.scenarios[name]


def _unknown(where: str, table: dict, known: set) -> None:
    for key in table:
        if key not in known:
            raise ScenarioError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")


def _fill_defaults(entry: dict, proto: dict, k: int, at: str) -> None:
    """Give a design table the protocol's n_tiers, max_n, cohort_size and target where it takes them."""
    kind = entry.get("type")
    if kind not in REGISTRY:
        return
    fields = {f.name for f in dataclasses.fields(REGISTRY[kind]) if f.init}
    if "n_tiers" in entry and entry["n_tiers"] != k:
        raise ScenarioError(f"{at}: n_tiers = {entry['n_tiers']!r} but [tiers] has {k} doses")
    if "n_tiers" in fields:
        entry.setdefault("n_tiers", k)
    for key in _DESIGN_DEFAULTS:
        if key in fields and key in proto and key not in entry:
            entry[key] = proto[key]


def _check_defaults_apply(design: Design, entry: dict, proto: dict, at: str) -> None:
    """Refuse a [protocol] ``max_n`` or ``cohort_size`` that a design does not take and does not follow.

    The [protocol] values are defaults for the designs that take them as parameters. A design that fixes its
    own value by its rules (3+3 enrols cohorts of 3, A+B cohorts of A, rolling six one patient at a time) is
    fine when its value agrees; when it differs, a statistician reading the file would believe every design
    runs with the protocol's value, so the file is refused, naming the design and the key. A design that wraps
    another (``base``) passes the defaults to it. ``target`` is never refused: the protocol's target also
    defines every scenario's true MTD, designs without a target included."""
    if "base" in entry:
        return
    fields = {f.name for f in dataclasses.fields(type(design)) if f.init}
    for key in _DESIGN_DEFAULTS:
        if key == "target" or key not in proto or key in fields:
            continue
        own = getattr(design, key)
        if own != proto[key]:
            raise DesignError(
                f"{at}: [protocol] {key} = {proto[key]!r} does not apply to this {design.kind} design, whose "
                f"{key} is {own!r} by its rules; give {key} in the [[design]] tables of the designs that take "
                "it instead of in [protocol]")


def load_protocol(path) -> Protocol:
    """Read and validate a scenario file. Raises :class:`DoseescError` with file and key on error.

    This is the one validation layer: every key's type, range and size is checked here (limits in
    :mod:`doseesc.limits`), so a file that loads (``doseesc check``) runs without a validation error later.
    Only regular files of at most :data:`~doseesc.limits.MAX_FILE_BYTES` are read (not a device or a pipe).
    """
    p = Path(path)
    where = str(path)
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise DoseescError(f"{where}: no such file") from None
    except OSError as exc:
        raise DoseescError(f"{where}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DoseescError(f"{where}: is a directory, not a scenario file")
    if not stat.S_ISREG(info.st_mode):
        raise DoseescError(f"{where}: is not a regular file (a device, pipe or socket); give a scenario file")
    if info.st_size > MAX_FILE_BYTES:
        raise DoseescError(f"{where}: {info.st_size:,} bytes; the limit is {MAX_FILE_BYTES:,} (MAX_FILE_BYTES)")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise DoseescError(f"{where}: is a directory, not a scenario file") from None
    except OSError as exc:
        raise DoseescError(f"{where}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DoseescError(f"{where}: more than {MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DoseescError(f"{where}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DoseescError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:
        raise DoseescError(f"{where}: arrays or inline tables nested too deeply to read "
                           "(the limit is 12 levels, MAX_DEPTH)") from None
    except ValueError as exc:   # e.g. an integer of more than 4,300 digits
        place = long_number(raw)
        if place is not None:
            raise DoseescError(f"{where}: {place}: an integer of more than 4,000 digits (integers are limited to "
                               "2^63 in absolute value)") from None
        raise DoseescError(f"{where}: not valid TOML: {exc}") from None
    return _build(data, where, hashlib.sha256(raw).hexdigest())


def _build(data: dict, where: str, sha: str | None = None) -> Protocol:
    """The :class:`Protocol` of a parsed scenario file, table by table.

    Sizes first (:func:`doseesc.limits.walk`: integers, texts, arrays, nesting), then each table's keys by
    type and range before its objects are built, then the checks across tables (:func:`_cross_checks`).
    Any error a constructor raises on a value that slipped past these checks (TypeError, OverflowError,
    ...) is still turned into a :class:`ScenarioError` naming the file and the table."""
    walk(data, where)
    _unknown(where, data, _TOP_KEYS)
    proto, target = _net(where, "[protocol]", _protocol_table, data, where)
    ladder = _net(where, "[tiers]", _tiers_table, data, where)
    indications = _net(where, "[[indication]]", _indication_tables, data, where)
    raw_conducts: dict = {}
    backfills: dict = {}
    designs = _net(where, "[[design]]", _design_tables, data, proto, ladder.n_tiers, where, raw_conducts,
                   backfills)
    conducts = _net(where, "[[design]] conduct", _conducts, raw_conducts, indications, designs, ladder.n_tiers,
                    where)
    dose_model = _net(where, "[actual_dose]", _actual_dose_table, data, ladder, designs, where)
    ind_scenarios: dict = {}
    scenarios = _net(where, "[[scenario]]", _scenario_tables, data, ladder, target, dose_model, where, indications,
                     ind_scenarios)
    obd_def = _net(where, "[obd]", _obd_table, data, where)
    phase2 = _net(where, "[phase2]", phase2_from_file, data, scenarios, where)
    windows = _window_keys(proto, where)
    calendar = _net(where, "[calendar]", _calendar_table, data, windows, designs, where)
    n_trials, seed = _run_table(data, where)
    _cross_checks(designs, calendar, where)
    _net(where, "[[design]] backfill", _backfill_checks, backfills, designs, calendar, scenarios, dose_model,
         indications, where)
    _net(where, "[[design]] x [[scenario]]", _pair_checks, designs, scenarios, ladder, obd_def, dose_model,
         calendar, seed, where)
    _grid_limits(data, where)
    grids = _net(where, "[[grid]]", _grid_tables, data, designs, scenarios, n_trials, seed, target, obd_def,
                 ladder, where)
    _grid_designs(data, backfills, conducts, where)
    return Protocol(grids=grids, dose_model=dose_model, name=str(proto.get("name", Path(where).stem)), tiers=ladder,
                    designs=designs, scenarios=scenarios, target=target,
                    title=str(proto.get("title", "")), registry=str(proto.get("registry", "")),
                    source=str(proto.get("source", "")), n_trials=n_trials, seed=seed, path=where, obd=obd_def,
                    sha256=sha, extra={"design_note": proto.get("design_note", "")}, calendar=calendar,
                    indications=indications, indication_scenarios=ind_scenarios, conducts=conducts, phase2=phase2, backfills=backfills,
                    **windows)


def _net(where: str, table: str, build, *args):
    """``build(*args)``, with a non-domain error from a constructor turned into a :class:`ScenarioError`
    naming the file and the table (the checks before should leave none; this is the last guard)."""
    try:
        return build(*args)
    except DoseescError:
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError, KeyError, IndexError, AttributeError,
            RecursionError, MemoryError) as exc:
        raise ScenarioError(f"{where}: {table}: a value is of the wrong kind or size "
                            f"({type(exc).__name__}: {short(str(exc), 160)})") from None


def _backfill_checks(backfills: dict, designs: dict, calendar, scenarios: dict, dose_model, indications,
                     where: str) -> None:
    """A design's ``backfill`` needs the [calendar], a design the backfill engine runs, no actual-dose model, and
    (for now) a file without [[indication]] tables; each refusal names the file and the design."""
    for name, b in backfills.items():
        at = f"{where}: [[design]] {name!r}"
        if indications is not None:
            raise DesignError(f"{at}: backfill = {{ cap = {b.cap} }} in a file with [[indication]] tables: not "
                              "supported yet (backfill runs one pooled escalation); remove one of them")
        check_backfill(b, designs[name], calendar, at, scenarios.values(), dose_model)


def _cross_checks(designs: dict[str, Design], calendar, where: str) -> None:
    """Checks across keys and tables: each design's max_n and cohort size within the limits and the cohort
    within max_n; a time-to-event design that decides on partial follow-up needs a [calendar]."""
    for dname, d in designs.items():
        at = f"{where}: [[design]] {dname!r}"
        for part, sub in ((at, d), (at + " base", getattr(d, "base", None))):
            if not isinstance(sub, Design):
                continue
            max_n = getattr(sub, "max_n", None)
            cohort = getattr(sub, "cohort_size", None)
            if isinstance(max_n, int) and not isinstance(max_n, bool):
                check_count(max_n, part, "max_n", low=1, high=MAX_N, limit="MAX_N", what="patients per trial")
            if isinstance(cohort, int) and not isinstance(cohort, bool):
                check_count(cohort, part, "cohort_size", low=1, high=MAX_COHORT, limit="MAX_COHORT",
                            what="patients per cohort")
                if isinstance(max_n, int) and cohort > max_n:
                    raise DesignError(f"{part}: cohort_size = {cohort} is larger than max_n = {max_n}: the whole "
                                      "trial would be one cohort at the first tier; give a cohort_size of at most "
                                      "max_n")
        if d.time_to_event and not d.complete_data and calendar is None:
            raise DesignError(f"{at}: a {d.kind} design decides on partial follow-up and needs a [calendar] "
                              "table (accrual_rate, dlt_window_days, ...); without it the run would be a design "
                              "that waits for complete data under the name of a time-to-event design")


def _pair_checks(designs, scenarios, ladder, obd_def, dose_model, calendar, seed, where: str) -> None:
    """Every design under every scenario passes the simulation's own argument checks (a design that uses
    response needs true_eff in each scenario, the calendar and actual-dose models must suit the design, ...),
    so that a file that loads never fails them in ``simulate``."""
    for dname, d in designs.items():
        for sname, sc in scenarios.items():
            try:
                check_simulation(d, sc, 2, rng=seed, ladder=ladder, obd=obd_def, dose_model=dose_model,
                                 calendar=calendar)
            except DoseescError as exc:
                raise ScenarioError(f"{where}: [[design]] {dname!r} under [[scenario]] {sname!r}: {exc}") from None


def _grid_limits(data: dict, where: str) -> None:
    """Sizes in [[grid]] tables: trials per point, number of values of a range, sample sizes."""
    entries = data.get("grid", [])
    if not isinstance(entries, list):
        return
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name", f"grid {i + 1}")
        at = f"{where}: [[grid]] {short(name)}" if isinstance(name, str) else f"{where}: [[grid]] {i + 1}"
        for key in ("n_trials", "unit_trials"):
            if key in entry:
                check_count(entry[key], at, key, low=1, high=MAX_TRIALS, limit="MAX_TRIALS",
                            what="trials per design and scenario")
        values = {"sample_size": entry.get("sample_size")}
        params = entry.get("params")
        if isinstance(params, dict):
            values.update({f"params.{k}": v for k, v in params.items()})
        for key, v in values.items():
            if isinstance(v, dict):
                lo, hi, step = v.get("start"), v.get("stop"), v.get("step")
                if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi, step)) and step:
                    count = (hi - lo) / step
                    if not math.isfinite(count) or count > MAX_ITEMS:
                        raise ScenarioError(f"{at}: {key} = {short(v)} gives more than {MAX_ITEMS:,} values "
                                            "(MAX_ITEMS)")
                    v = [lo, hi]
            if not isinstance(v, list):
                continue
            limit = {"sample_size": (MAX_N, "MAX_N", "patients per trial"),
                     "params.max_n": (MAX_N, "MAX_N", "patients per trial"),
                     "params.cohort_size": (MAX_COHORT, "MAX_COHORT", "patients per cohort")}.get(key)
            for j, x in enumerate(v):
                if isinstance(x, int) and not isinstance(x, bool):
                    high = limit[0] if limit else MAX_DESIGN_INT
                    if abs(x) > high:
                        raise ScenarioError(f"{at}: {key}[{j}] = {short(x)} is above the limit of {high:,}"
                                            + (f" {limit[2]} ({limit[1]})" if limit else " (MAX_DESIGN_INT)"))


def _grid_tables(data: dict, designs, scenarios, n_trials, seed, target, obd_def, ladder, where: str) -> dict:
    """The [[grid]] tables by name (``grid 1``, ``grid 2``... where a table has no name)."""
    entries = data.get("grid", [])
    if not isinstance(entries, list):
        raise ScenarioError(f"{where}: [[grid]] must be an array of tables (write [[grid]], not [grid])")
    grids = {}
    for i, entry in enumerate(entries):
        name = entry.get("name", f"grid {i + 1}") if isinstance(entry, dict) else f"grid {i + 1}"
        check_name(name, f"{where}: [[grid]] {i + 1}")
        if name in grids:
            raise ScenarioError(f"{where}: two [[grid]] tables are named {name!r}")
        grids[name] = grid_from_dict(entry, designs, scenarios, where=f"{where}: [[grid]] {name!r}",
                                     n_trials=n_trials, seed=seed, target=target, obd=obd_def, ladder=ladder)
    return grids


def _grid_designs(data: dict, backfills: dict, conducts: dict, where: str) -> None:
    """A [[grid]] calibrates a design's own parameters with plain runs: a design with backfill cohorts or a
    parallel or staggered conduct would be calibrated as another design, so it is refused, naming the grid."""
    for i, entry in enumerate(data.get("grid", [])):
        name = entry.get("design")
        conduct = conducts.get(name)
        what = ("backfill cohorts" if name in backfills else
                f"conduct {conduct.policy!r}" if conduct is not None and conduct.policy != "pooled" else None)
        if what is not None:
            grid = entry.get("name", f"grid {i + 1}")
            raise DesignError(f"{where}: [[grid]] {grid!r}: design = {name!r} has {what}, which the calibration "
                              "grid does not run (its points would be plain runs of the design); calibrate the "
                              "design without it")


def _window_keys(proto: dict, where: str) -> dict:
    """[protocol] ``dlt_window_days`` and ``response_window_days`` (positive numbers of days, or None) and
    ``dlt_definition`` and ``response_definition`` (text, "" when not given), checked."""
    out: dict = {}
    for key in _WINDOW_KEYS:
        value = proto.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ScenarioError(f"{where}: [protocol] {key} = {short(value)} must be a positive number of days")
        check_range(value, f"{where}: [protocol]", key, DAYS_RANGE, "days", open_low=True, none=True)
        out[key] = None if value is None else float(value)
    for key in _DEFINITION_KEYS:
        value = proto.get(key, "")
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: [protocol] {key} = {short(value)} must be text (a quoted string)")
        check_text(value, f"{where}: [protocol]", key)
        out[key] = value.strip()
    return out


def _calendar_table(data: dict, windows: dict, designs: dict[str, Design], where: str):
    """The [calendar] model, made consistent with the windows [protocol] states; None without the table.

    The [calendar] takes [protocol] ``dlt_window_days`` and ``response_window_days`` where it does not set
    its own ``dlt_window_days`` and ``eff_window_days``; where both tables set a window they must agree. A
    file with a design that uses response (``uses_efficacy``) must state the response window in one of them:
    :class:`~doseesc.calendar.Calendar` reads an unset response window as the DLT window (response known at
    the end of the DLT window), which a file whose response is judged months later must not get by default.
    """
    if "calendar" not in data:
        return None
    table = data["calendar"]
    _calendar_ranges(table, where)
    calendar = calendar_from_toml(table, where)
    pairs = (("dlt_window_days", "dlt_window_days"), ("response_window_days", "eff_window_days"))
    for pkey, ckey in pairs:
        stated = windows[pkey]
        if stated is None:
            continue
        if ckey in table:
            own = float(table[ckey])
            if own != stated:
                raise ScenarioError(f"{where}: [calendar] {ckey} = {table[ckey]!r} disagrees with [protocol] "
                                    f"{pkey} = {stated:g}: give the window once (in [protocol]) or the same "
                                    "number in both tables")
        else:
            calendar = dataclasses.replace(calendar, **{ckey: stated})
    if calendar.eff_window_days is None:
        users = [name for name, d in designs.items() if d.uses_efficacy]
        if users:
            raise ScenarioError(
                f"{where}: no response window: design {users[0]!r} uses response, and neither [calendar] "
                "eff_window_days nor [protocol] response_window_days is given; state the days after the infusion "
                "at which response is judged (write the DLT window's number if response is judged at its end)")
    return calendar


#: [calendar] keys in days (checked against :data:`~doseesc.limits.DAYS_RANGE`); windows must be positive.
_CALENDAR_DAYS = ("vein_to_vein_days", "vein_to_vein_sd", "dlt_window_days", "eff_window_days", "sentinel_days",
                  "min_gap_days", "review_days", "max_wait_days", "follow_up_days")
_POSITIVE_DAYS = ("dlt_window_days", "eff_window_days", "follow_up_days")


def _calendar_ranges(table, where: str) -> None:
    """[calendar] values within plausible ranges (named in the message): accrual in patients per month,
    durations in days; text keys as text."""
    if not isinstance(table, dict):
        return
    at = f"{where}: [calendar]"
    if "accrual_rate" in table:
        check_range(table["accrual_rate"], at, "accrual_rate", ACCRUAL_RANGE, "patients per month")
    for key in _CALENDAR_DAYS:
        if key in table:
            check_range(table[key], at, key, DAYS_RANGE, "days", open_low=key in _POSITIVE_DAYS)
    for key in ("accrual", "tox_time", "eff_time"):
        if key in table and not isinstance(table[key], str):
            raise ScenarioError(f"{at}: {key} = {short(table[key])} must be text, not {kind(table[key])}")


def _protocol_table(data: dict, where: str) -> tuple[dict, float | None]:
    """The [protocol] table and its checked target."""
    proto = data.get("protocol", {})
    if not isinstance(proto, dict):
        raise ScenarioError(f"{where}: 'protocol' must be a table [protocol]")
    _unknown(f"{where}: [protocol]", proto, _PROTOCOL_KEYS)
    if "name" in proto:
        check_name(proto["name"], f"{where}: [protocol]")
    for key in ("title", "registry", "source", "design_note"):
        if key in proto:
            check_text(proto[key], f"{where}: [protocol]", key)
    for key in ("max_n", "cohort_size"):
        if key in proto:
            high, limit, what = ((MAX_N, "MAX_N", "patients per trial") if key == "max_n"
                                 else (MAX_COHORT, "MAX_COHORT", "patients per cohort"))
            check_count(proto[key], f"{where}: [protocol]", key, low=1, high=high, limit=limit, what=what)
    target = proto.get("target")
    if target is not None:
        try:
            target = check_target(target)
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: [protocol] {exc}") from None
    return proto, target


def _tiers_table(data: dict, where: str) -> DoseLadder:
    tiers = data.get("tiers")
    if not isinstance(tiers, dict):
        raise ScenarioError(f"{where}: missing table [tiers] (doses, unit, tolerance)")
    _unknown(f"{where}: [tiers]", tiers, _TIER_KEYS)
    if "doses" not in tiers:
        raise ScenarioError(f"{where}: [tiers] missing key 'doses'")
    doses = tiers["doses"]
    if not isinstance(doses, list):
        raise ScenarioError(f"{where}: [tiers] doses = {short(doses)} must be a list of numbers, not {kind(doses)}")
    if len(doses) > MAX_TIERS:
        raise ScenarioError(f"{where}: [tiers] doses has {len(doses)} tiers; the limit is {MAX_TIERS} (MAX_TIERS)")
    for i, d in enumerate(doses):
        if isinstance(d, bool) or not isinstance(d, (int, float)):
            raise ScenarioError(f"{where}: [tiers] doses[{i}] = {short(d)} must be a number, not {kind(d)}")
    if "unit" in tiers:
        check_text(tiers["unit"], f"{where}: [tiers]", "unit")
    labels = tiers.get("labels")
    if labels is not None:
        if not isinstance(labels, list):
            raise ScenarioError(f"{where}: [tiers] labels = {short(labels)} must be a list of names")
        for i, lab in enumerate(labels):
            check_name(lab, f"{where}: [tiers]", f"labels[{i}]")
    tol = tiers.get("tolerance")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))):
        raise ScenarioError(f"{where}: [tiers] tolerance = {short(tol)} must be a number, not {kind(tol)}")
    try:
        return DoseLadder(doses=tiers["doses"], unit=tiers.get("unit", ""), labels=tiers.get("labels"),
                          tolerance=tiers.get("tolerance"))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: [tiers] {exc}") from None


def _named_entries(data: dict, table: str, where: str):
    """``(at, entry)`` for each ``[[table]]`` entry, ``at`` naming the file, the table and the entry."""
    entries = data.get(table, [])
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{where}: at least one [[{table}]] table is needed")
    if len(entries) > 100:
        raise ScenarioError(f"{where}: {len(entries)} [[{table}]] tables; the limit is 100")
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        if not isinstance(label, str) or len(label) > 100:
            label = f"#{i + 1}"
        at = f"{where}: [[{table}]] {label!r}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{at}: must be a table")
        yield at, entry


def _indication_tables(data: dict, where: str) -> Indications | None:
    """The [[indication]] tables (None without them); names checked like every name of a file."""
    entries = data.get("indication")
    if isinstance(entries, list):
        if len(entries) > 100:
            raise ScenarioError(f"{where}: {len(entries)} [[indication]] tables; the limit is 100")
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and "name" in entry:
                check_name(entry["name"], f"{where}: [[indication]] #{i + 1}")
            if isinstance(entry, dict) and "eligibility" in entry:
                check_text(entry["eligibility"], f"{where}: [[indication]] #{i + 1}", "eligibility")
    return indications_from_toml(data, where)


def _conducts(raw: dict, indications: Indications | None, designs: dict[str, Design], k: int,
              where: str) -> dict[str, Conduct]:
    """Each [[design]]'s ``conduct`` (:func:`~doseesc.indications.conduct_from_toml`), with the combinations the
    conduct engine does not run refused: a time-to-event design (its own or an indication's) under any conduct
    (the engine has no calendar time yet)."""
    out = {}
    for dname, value in raw.items():
        at = f"{where}: [[design]] {dname!r}"
        c = conduct_from_toml(value, indications, designs, k, at)
        for name in (indications.names if indications is not None else ()):
            d, _ = c.design_for(name, designs[dname])
            if d.time_to_event:
                raise DesignError(f"{at}: conduct = {c.policy!r} with the time-to-event design {d.label} (indication "
                                  f"{name!r}): a conduct runs without calendar time, which a time-to-event design "
                                  "needs; leave conduct out (the design then runs pooled as the file states, "
                                  "with no per-indication tables) or choose a design that waits for complete "
                                  "cohorts")
        out[dname] = c
    return out


def _design_tables(data: dict, proto: dict, k: int, where: str, conducts: dict | None = None,
                   backfills: dict | None = None) -> dict[str, Design]:
    designs: dict[str, Design] = {}
    for at, entry in _named_entries(data, "design", where):
        entry = dict(entry)
        if "name" not in entry:
            raise ScenarioError(f"{at}: missing key 'name'")
        dname = check_name(entry.pop("name"), at)
        if dname in designs:
            raise ScenarioError(f"{at}: name {dname!r} is used twice")
        if "conduct" in entry:
            value = entry.pop("conduct")
            if conducts is None:
                raise DesignError(f"{at}: conduct = {short(value)} is not a design option here")
            conducts[dname] = value
        if "backfill" in entry:
            value = entry.pop("backfill")
            if backfills is None:
                raise DesignError(f"{at}: backfill = {short(value)} is not a design option here")
            backfills[dname] = backfill_from_toml(value, at)
        _design_keys(entry, at, types=False)
        _fill_defaults(entry, proto, k, at)
        if isinstance(entry.get("table_file"), str) and not Path(entry["table_file"]).is_absolute():
            entry["table_file"] = str(Path(where).parent / entry["table_file"])   # beside the protocol file
        if isinstance(entry.get("base"), dict):
            entry["base"] = dict(entry["base"])
            _fill_defaults(entry["base"], proto, k, at + " base")
        try:
            designs[dname] = design_from_dict(entry)
        except DoseescError as exc:
            raise type(exc)(f"{at}: {exc}") from None
        except (TypeError, ValueError, OverflowError, ArithmeticError, KeyError, IndexError, AttributeError):
            _design_keys(entry, at)   # names the key of the wrong kind
            raise
        _design_keys(entry, at)
        _check_defaults_apply(designs[dname], entry, proto, at)
        if isinstance(entry.get("base"), dict) and isinstance(getattr(designs[dname], "base", None), Design):
            _check_defaults_apply(designs[dname].base, entry["base"], proto, at + " base")
    return designs


#: Design option types (the dataclass annotations) -> the TOML kinds they accept.
_NUMBER = (int, float)


def _design_keys(entry: dict, at: str, types: bool = True) -> None:
    """Each key of a [[design]] table (and of its ``base`` table) by the type its design declares: text,
    integer, number, true/false or list of numbers; integers within :data:`~doseesc.limits.MAX_DESIGN_INT`
    (``max_n`` within MAX_N, ``cohort_size`` within MAX_COHORT). Keys the design does not declare are left
    to :func:`~doseesc.designs.base.design_from_dict`, which names them. With ``types`` False only the
    sizes are checked (before the design is built; the design's own message on a wrong kind is often the
    more helpful one, so the kinds are checked after it, or where it fails with a non-domain error)."""
    kind_ = entry.get("type")
    if "type" not in entry:
        return
    if not isinstance(kind_, str):
        raise DesignError(f"{at}: type = {short(kind_)} must be text naming a design "
                          f"(one of: {', '.join(sorted(REGISTRY))}), not {kind(kind_)}")
    if kind_ not in REGISTRY:
        return
    declared = {f.name: str(f.type) for f in dataclasses.fields(REGISTRY[kind_]) if f.init}
    for key, value in entry.items():
        if key == "type" or key not in declared:
            continue
        t = declared[key].replace(" | None", "")
        if t == "Design":
            if not isinstance(value, dict):
                raise DesignError(f"{at}: {key} = {short(value)} must be a table such as {{ type = \"3+3\" }}")
            _design_keys(value, f"{at} {key}", types)
            continue
        bad = None
        if t == "str":
            if not isinstance(value, str):
                bad = "text (a quoted string)"
            else:
                check_text(value, at, key)
        elif t == "bool":
            if not isinstance(value, bool):
                bad = "true or false"
        elif t == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                bad = "an integer"
            else:
                high, limit, what = {"max_n": (MAX_N, "MAX_N", "patients per trial"),
                                     "cohort_size": (MAX_COHORT, "MAX_COHORT", "patients per cohort")}.get(
                    key, (MAX_DESIGN_INT, "MAX_DESIGN_INT", ""))
                if abs(value) > high:
                    raise DesignError(f"{at}: {key} = {short(value)} is above the limit of {high:,}"
                                      + (f" {what}" if what else "") + f" ({limit})")
        elif t == "float":
            if isinstance(value, bool) or not isinstance(value, _NUMBER):
                bad = "a number"
        elif t.startswith("tuple[") and t != "tuple":
            if not isinstance(value, list):
                bad = "a list"
            else:
                want_int = t.startswith("tuple[int")
                for i, v in enumerate(value):
                    if isinstance(v, bool) or not isinstance(v, int if want_int else _NUMBER):
                        raise DesignError(f"{at}: {key}[{i}] = {short(v)} must be "
                                          f"{'an integer' if want_int else 'a number'}, not {kind(v)}")
                    if want_int and abs(v) > MAX_DESIGN_INT:
                        raise DesignError(f"{at}: {key}[{i}] = {short(v)} is above the limit of "
                                          f"{MAX_DESIGN_INT:,} (MAX_DESIGN_INT)")
        if bad is not None and types:
            raise DesignError(f"{at}: {key} = {short(value)} must be {bad}, not {kind(value)}")


def _actual_dose_table(data: dict, ladder: DoseLadder, designs: dict, where: str):
    """The [actual_dose] model, checked against the ladder and every design; None without the table."""
    if "actual_dose" not in data:
        return None
    dose_model = dose_model_from_toml(data["actual_dose"], where)
    try:
        dose_model.check(ladder)
    except DoseescError as exc:
        raise ScenarioError(f"{where}: [actual_dose] {exc}") from None
    for dname, d in designs.items():
        try:
            dose_model.check(ladder, d)
        except DoseescError as exc:
            raise ScenarioError(f"{where}: [actual_dose] with [[design]] {dname!r}: {exc}") from None
    return dose_model


def _scenario_tables(data: dict, ladder: DoseLadder, target, dose_model, where: str,
                     indications: Indications | None = None, by_indication: dict | None = None) -> dict[str, Scenario]:
    """The [[scenario]] tables by name. With [[indication]] tables, each scenario's truth in every indication
    goes into ``by_indication`` (name -> :class:`~doseesc.indications.IndicationScenario`) and the returned
    scenario is its pooled truth: the table's own scenario where every indication has the same truth (so the
    pooled runs are today's, bit for bit), else the share-weighted mixture."""
    scenarios: dict[str, Scenario] = {}
    for at, entry in _named_entries(data, "scenario", where):
        if "name" not in entry:
            raise ScenarioError(f"{at}: missing key 'name'")
        check_name(entry["name"], at)
        if "description" in entry:
            check_text(entry["description"], at, "description")
        for key in ("tox_curve", "eff_curve"):
            curve = entry.get(key)
            if isinstance(curve, dict) and "model" in curve and not isinstance(curve["model"], str):
                raise ScenarioError(f"{at}: {key}.model = {short(curve['model'])} must be text naming a curve "
                                    f"(e.g. \"logistic\"), not {kind(curve['model'])}")
        for key in ("true_tox", "true_eff"):
            if key in entry and not isinstance(entry[key], list):
                raise ScenarioError(f"{at}: {key} = {short(entry[key])} must be a list of probabilities, one per "
                                    f"tier, not {kind(entry[key])}")
        if entry["name"] in scenarios:
            raise ScenarioError(f"{at}: name {entry['name']!r} is used twice")
        own = entry.get("indication")
        if own is not None and indications is None:
            raise ScenarioError(f"{at}: indication = {short(own)}, but the file declares no [[indication]] tables")
        curves = "tox_curve" in entry or "eff_curve" in entry
        if own is not None and curves:
            raise ScenarioError(f"{at}: indication = {short(own)}: per-indication truths are given per tier "
                                "(true_tox, true_eff), not with curves of the actual dose (tox_curve, eff_curve)")
        entry = split_scenario_entry(entry)
        if target is not None:
            entry.setdefault("target", target)
        try:
            if curves:
                sc = _curve_scenario(entry, ladder, dose_model)
            else:
                sc = Scenario.from_dict(entry)
        except ScenarioError as exc:
            raise ScenarioError(f"{at}: {exc}") from None
        except TypeError as exc:
            raise ScenarioError(f"{at}: {exc}") from None
        if sc.n_tiers != ladder.n_tiers:
            raise ScenarioError(f"{at}: true_tox has {sc.n_tiers} values but [tiers] has {ladder.n_tiers} doses")
        if indications is not None:
            isc = None
            if own is not None:
                isc = scenario_from_toml({**entry, "indication": own}, indications, at, target)
                for name, t in zip(indications.names, isc.truths):
                    if t.n_tiers != ladder.n_tiers:
                        raise ScenarioError(f"{at}: indication.{name}.true_tox has {t.n_tiers} values but [tiers] "
                                            f"has {ladder.n_tiers} doses")
            if isc is None or isc.identical:
                isc = IndicationScenario.same(sc, indications)
            else:
                sc = isc.pooled
            by_indication[sc.name] = isc
        scenarios[sc.name] = sc
    return scenarios


def _obd_table(data: dict, where: str) -> OBDDefinition | None:
    if "obd" not in data:
        return None
    table = data["obd"]
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: 'obd' must be a table [obd]")
    _unknown(f"{where}: [obd]", table, _OBD_KEYS)
    try:
        return OBDDefinition(**table)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: [obd] {exc}") from None


def _run_table(data: dict, where: str) -> tuple[int, int | None]:
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise ScenarioError(f"{where}: 'run' must be a table [run]")
    _unknown(f"{where}: [run]", run, _RUN_KEYS)
    n_trials = run.get("n_trials", 10_000)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 2:
        raise ScenarioError(f"{where}: [run] n_trials = {short(n_trials)} must be an integer of at least 2")
    check_count(n_trials, f"{where}: [run]", "n_trials", low=2, high=MAX_TRIALS, limit="MAX_TRIALS",
                what="trials per design and scenario")
    seed = run.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError(f"{where}: [run] seed = {short(seed)} must be a non-negative integer")
    return n_trials, seed


def _curve_scenario(entry: dict, ladder: DoseLadder, dose_model) -> Scenario:
    """A [[scenario]] whose truth is given as curves of the actual dose (tox_curve, eff_curve)."""
    if "true_tox" in entry or "true_eff" in entry:
        raise ScenarioError("give the truth either per tier (true_tox, true_eff) or as curves of the actual dose "
                            "(tox_curve, eff_curve), not both: with curves the per-tier truth is computed")
    if "tox_curve" not in entry:
        raise ScenarioError("eff_curve needs tox_curve: give both truths on the actual dose")
    known = {"name", "description", "target", "association", "tox_curve", "eff_curve"}
    extra = sorted(set(entry) - known)
    if extra:
        raise ScenarioError(f"unknown key {extra[0]!r} (known: {', '.join(sorted(known))})")
    tox = curve_from_dict(entry["tox_curve"], "tox_curve")
    eff = curve_from_dict(entry["eff_curve"], "eff_curve") if "eff_curve" in entry else None
    kw = {k: entry[k] for k in ("description", "target", "association") if k in entry}
    return scenario_from_curves(entry["name"], ladder, tox, eff, dose_model, **kw)
