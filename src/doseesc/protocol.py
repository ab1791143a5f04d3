"""Scenario files: one TOML file per protocol, with its tiers, designs and truths.

See the README section "Scenario file format" for the full description. Every
error names the file, the table and key, and the offending value, e.g.::

    scenarios/ecar01.toml: [[scenario]] 'steep': true_tox[2] = 1.3 is not a probability (must lie in [0, 1])
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .actual_dose import curve_from_dict, dose_model_from_toml, scenario_from_curves
from .calendar import calendar_from_toml
from .designs.base import REGISTRY, Design, design_from_dict
from .errors import DesignError, DoseescError, ScenarioError
from .grid import grid_from_dict
from .obd import OBDDefinition
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
_TOP_KEYS = {"protocol", "tiers", "design", "scenario", "run", "obd", "actual_dose", "calendar", "grid"}


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
    """Read and validate a scenario file. Raises :class:`DoseescError` with file and key on error."""
    p = Path(path)
    where = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DoseescError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise DoseescError(f"{where}: is a directory, not a scenario file") from None
    except OSError as exc:
        raise DoseescError(f"{where}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DoseescError(f"{where}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DoseescError(f"{where}: not valid TOML: {exc}") from None
    return _build(data, where, hashlib.sha256(raw).hexdigest())


def _build(data: dict, where: str, sha: str | None = None) -> Protocol:
    """The :class:`Protocol` of a parsed scenario file, table by table."""
    _unknown(where, data, _TOP_KEYS)
    proto, target = _protocol_table(data, where)
    ladder = _tiers_table(data, where)
    designs = _design_tables(data, proto, ladder.n_tiers, where)
    dose_model = _actual_dose_table(data, ladder, designs, where)
    scenarios = _scenario_tables(data, ladder, target, dose_model, where)
    obd_def = _obd_table(data, where)
    windows = _window_keys(proto, where)
    calendar = _calendar_table(data, windows, designs, where)
    n_trials, seed = _run_table(data, where)
    grids = _grid_tables(data, designs, scenarios, n_trials, seed, target, obd_def, ladder, where)
    return Protocol(grids=grids, dose_model=dose_model, name=str(proto.get("name", Path(where).stem)), tiers=ladder,
                    designs=designs, scenarios=scenarios, target=target,
                    title=str(proto.get("title", "")), registry=str(proto.get("registry", "")),
                    source=str(proto.get("source", "")), n_trials=n_trials, seed=seed, path=where, obd=obd_def,
                    sha256=sha, extra={"design_note": proto.get("design_note", "")}, calendar=calendar, **windows)


def _grid_tables(data: dict, designs, scenarios, n_trials, seed, target, obd_def, ladder, where: str) -> dict:
    """The [[grid]] tables by name (``grid 1``, ``grid 2``... where a table has no name)."""
    entries = data.get("grid", [])
    if not isinstance(entries, list):
        raise ScenarioError(f"{where}: [[grid]] must be an array of tables (write [[grid]], not [grid])")
    grids = {}
    for i, entry in enumerate(entries):
        name = entry.get("name", f"grid {i + 1}") if isinstance(entry, dict) else f"grid {i + 1}"
        if not isinstance(name, str) or not name.strip():
            raise ScenarioError(f"{where}: [[grid]] {i + 1}: name = {name!r} must be a non-empty text")
        if name in grids:
            raise ScenarioError(f"{where}: two [[grid]] tables are named {name!r}")
        grids[name] = grid_from_dict(entry, designs, scenarios, where=f"{where}: [[grid]] {name!r}",
                                     n_trials=n_trials, seed=seed, target=target, obd=obd_def, ladder=ladder)
    return grids


def _window_keys(proto: dict, where: str) -> dict:
    """[protocol] ``dlt_window_days`` and ``response_window_days`` (positive numbers of days, or None) and
    ``dlt_definition`` and ``response_definition`` (text, "" when not given), checked."""
    out: dict = {}
    for key in _WINDOW_KEYS:
        value = proto.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ScenarioError(f"{where}: [protocol] {key} = {value!r} must be a positive number of days")
        out[key] = None if value is None else float(value)
    for key in _DEFINITION_KEYS:
        value = proto.get(key, "")
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: [protocol] {key} = {value!r} must be text (a quoted string)")
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


def _protocol_table(data: dict, where: str) -> tuple[dict, float | None]:
    """The [protocol] table and its checked target."""
    proto = data.get("protocol", {})
    if not isinstance(proto, dict):
        raise ScenarioError(f"{where}: 'protocol' must be a table [protocol]")
    _unknown(f"{where}: [protocol]", proto, _PROTOCOL_KEYS)
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
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        at = f"{where}: [[{table}]] {label!r}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{at}: must be a table")
        yield at, entry


def _design_tables(data: dict, proto: dict, k: int, where: str) -> dict[str, Design]:
    designs: dict[str, Design] = {}
    for at, entry in _named_entries(data, "design", where):
        entry = dict(entry)
        dname = entry.pop("name", None)
        if not isinstance(dname, str) or not dname:
            raise ScenarioError(f"{at}: missing key 'name'")
        if dname in designs:
            raise ScenarioError(f"{at}: name {dname!r} is used twice")
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
        except TypeError as exc:
            raise ScenarioError(f"{at}: {exc}") from None
        _check_defaults_apply(designs[dname], entry, proto, at)
        if isinstance(entry.get("base"), dict) and isinstance(getattr(designs[dname], "base", None), Design):
            _check_defaults_apply(designs[dname].base, entry["base"], proto, at + " base")
    return designs


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


def _scenario_tables(data: dict, ladder: DoseLadder, target, dose_model, where: str) -> dict[str, Scenario]:
    scenarios: dict[str, Scenario] = {}
    for at, entry in _named_entries(data, "scenario", where):
        if "name" not in entry:
            raise ScenarioError(f"{at}: missing key 'name'")
        if entry["name"] in scenarios:
            raise ScenarioError(f"{at}: name {entry['name']!r} is used twice")
        entry = dict(entry)
        if target is not None:
            entry.setdefault("target", target)
        try:
            if "tox_curve" in entry or "eff_curve" in entry:
                sc = _curve_scenario(entry, ladder, dose_model)
            else:
                sc = Scenario.from_dict(entry)
        except ScenarioError as exc:
            raise ScenarioError(f"{at}: {exc}") from None
        except TypeError as exc:
            raise ScenarioError(f"{at}: {exc}") from None
        if sc.n_tiers != ladder.n_tiers:
            raise ScenarioError(f"{at}: true_tox has {sc.n_tiers} values but [tiers] has {ladder.n_tiers} doses")
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
        raise ScenarioError(f"{where}: [run] n_trials = {n_trials!r} must be an integer of at least 2")
    seed = run.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError(f"{where}: [run] seed = {seed!r} must be a non-negative integer")
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
