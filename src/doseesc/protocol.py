"""Scenario files: one TOML file per protocol, with its tiers, designs and truths.

See the README section "Scenario file format" for the full description. Every
error names the file, the table and key, and the offending value, e.g.::

    scenarios/ecar01.toml: [[scenario]] 'steep': true_tox[2] = 1.3 is not a probability (must lie in [0, 1])
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .designs.base import REGISTRY, Design, design_from_dict
from .errors import DoseescError, ScenarioError
from .scenario import Scenario, check_target
from .tiers import DoseLadder

_PROTOCOL_KEYS = {"name", "title", "registry", "source", "design_note", "target", "max_n", "cohort_size"}
_TIER_KEYS = {"doses", "unit", "labels", "tolerance"}
_RUN_KEYS = {"n_trials", "seed"}
_OBD_KEYS = {"utility", "phi_t", "phi_e", "rule"}
_TOP_KEYS = {"protocol", "tiers", "design", "scenario", "run", "obd", "actual_dose", "calendar"}


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
    for key in ("max_n", "cohort_size", "target"):
        if key in fields and key in proto and key not in entry:
            entry[key] = proto[key]


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
    _unknown(where, data, _TOP_KEYS)
    proto = data.get("protocol", {})
    if not isinstance(proto, dict):
        raise ScenarioError(f"{where}: 'protocol' must be a table [protocol]")
    _unknown(f"{where}: [protocol]", proto, _PROTOCOL_KEYS)
    name = proto.get("name", Path(where).stem)
    target = proto.get("target")
    if target is not None:
        try:
            target = check_target(target)
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: [protocol] {exc}") from None

    tiers = data.get("tiers")
    if not isinstance(tiers, dict):
        raise ScenarioError(f"{where}: missing table [tiers] (doses, unit, tolerance)")
    _unknown(f"{where}: [tiers]", tiers, _TIER_KEYS)
    if "doses" not in tiers:
        raise ScenarioError(f"{where}: [tiers] missing key 'doses'")
    try:
        ladder = DoseLadder(doses=tiers["doses"], unit=tiers.get("unit", ""), labels=tiers.get("labels"),
                            tolerance=tiers.get("tolerance"))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: [tiers] {exc}") from None
    k = ladder.n_tiers

    designs: dict[str, Design] = {}
    entries = data.get("design", [])
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{where}: at least one [[design]] table is needed")
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        at = f"{where}: [[design]] {label!r}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{at}: must be a table")
        entry = dict(entry)
        dname = entry.pop("name", None)
        if not isinstance(dname, str) or not dname:
            raise ScenarioError(f"{at}: missing key 'name'")
        if dname in designs:
            raise ScenarioError(f"{at}: name {dname!r} is used twice")
        _fill_defaults(entry, proto, k, at)
        if isinstance(entry.get("base"), dict):
            entry["base"] = dict(entry["base"])
            _fill_defaults(entry["base"], proto, k, at + " base")
        try:
            designs[dname] = design_from_dict(entry)
        except DoseescError as exc:
            raise type(exc)(f"{at}: {exc}") from None
        except TypeError as exc:
            raise ScenarioError(f"{at}: {exc}") from None

    dose_model = None
    if "actual_dose" in data:
        from .actual_dose import dose_model_from_toml

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

    scenarios: dict[str, Scenario] = {}
    entries = data.get("scenario", [])
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{where}: at least one [[scenario]] table is needed")
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        at = f"{where}: [[scenario]] {label!r}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{at}: must be a table")
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
        if sc.n_tiers != k:
            raise ScenarioError(f"{at}: true_tox has {sc.n_tiers} values but [tiers] has {k} doses")
        scenarios[sc.name] = sc

    obd_def = None
    if "obd" in data:
        from .obd import OBDDefinition

        table = data["obd"]
        if not isinstance(table, dict):
            raise ScenarioError(f"{where}: 'obd' must be a table [obd]")
        _unknown(f"{where}: [obd]", table, _OBD_KEYS)
        try:
            obd_def = OBDDefinition(**table)
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: [obd] {exc}") from None

    calendar = None
    if "calendar" in data:
        from .calendar import calendar_from_toml

        calendar = calendar_from_toml(data["calendar"], where)

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
    return Protocol(dose_model=dose_model, name=str(name), tiers=ladder, designs=designs, scenarios=scenarios, target=target,
                    title=str(proto.get("title", "")), registry=str(proto.get("registry", "")),
                    source=str(proto.get("source", "")), n_trials=n_trials, seed=seed, path=where, obd=obd_def,
                    sha256=sha, extra={"design_note": proto.get("design_note", "")}, calendar=calendar)


def _curve_scenario(entry: dict, ladder: DoseLadder, dose_model) -> Scenario:
    """A [[scenario]] whose truth is given as curves of the actual dose (tox_curve, eff_curve)."""
    from .actual_dose import curve_from_dict, scenario_from_curves

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
