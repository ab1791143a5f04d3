"""Fingerprints of a fixed set of runs, to show that a refactor leaves every output unchanged.

Usage::

    python tools/output_hashes.py record tools/output_hashes.json   # before the change
    python tools/output_hashes.py check tools/output_hashes.json    # after it: lists every difference

The set: every design of every bundled protocol under every scenario of that protocol, run

- ``plain``: Monte Carlo without the file's dose model or calendar,
- ``protocol``: Monte Carlo exactly as the file runs it (actual dose, calendar, TITE where the file has them),
- ``exact``: exact enumeration (designs that allow it, first two scenarios of each file),
- ``paths``: every outcome of the first two cohorts,
- ``recommend``: the live recommendation after each of those two-cohort paths,

plus every registered design type with its default parameters on a 4-tier ladder (plain, exact, paths).
Each fingerprint is the SHA-256 of the per-trial records (``trials()``), the summary table, the stop
report and the extra per-trial arrays (durations, actual doses), so any change in a selection, a count
or a record shows. ``--only PATTERN`` restricts the set (substring of the key) for a quick look.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

import doseesc
from doseesc.designs.base import REGISTRY, design_from_dict

ROOT = Path(__file__).resolve().parents[1]
N_TRIALS = 200
SEED = 20261203


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(str(part).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def _flat(value):
    """Arrays as themselves; tuples, lists and dicts of arrays element by element."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_digest(_flat(v))}" for k, v in sorted(value.items(), key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_digest(_flat(v)) for v in value) + "]"
    return repr(value)


def _oc_digest(oc) -> str:
    parts = [oc.trials().to_csv(), oc.summary().to_csv(), oc.stop_report().to_csv()]
    for key in sorted(getattr(oc, "extra", None) or {}):
        value = oc.extra[key]
        parts.append(key)
        parts.append(_flat(value))
    return _digest(*parts)


def _exact_digest(design, scenario, proto) -> str:
    try:
        oc = doseesc.exact(design, scenario, ladder=proto.tiers, obd=proto.obd, max_states=200_000)
    except doseesc.DoseescError as err:   # too many states: the refusal itself is the fingerprint
        return f"refused: {err}"
    return _oc_digest(oc)


def _paths_and_recommend(out: dict, key: str, design, scenario) -> None:
    pt = doseesc.paths(design, 2, scenario=scenario)
    out[f"{key}/paths"] = _digest(pt.nodes().to_csv())
    logs = [p for p in pt.nodes()["path"].tolist() if p]
    recs = [str(doseesc.recommend(design, log)) for log in logs[:12]]
    out[f"{key}/recommend"] = _digest(*recs)


def _protocol_runs(out: dict, only: str | None) -> None:
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        proto = doseesc.load_protocol(path)
        for dname in proto.designs:
            design = proto.design(dname)
            for j, sname in enumerate(proto.scenarios):
                sc = proto.scenario(sname)
                key = f"{path.stem}/{dname}/{sname}"
                if not _wanted(key, only):
                    continue
                out[f"{key}/plain"] = _oc_digest(doseesc.simulate(design, sc, N_TRIALS, rng=SEED,
                                                                  ladder=proto.tiers, obd=proto.obd))
                if proto.dose_model is not None or proto.calendar is not None:
                    out[f"{key}/protocol"] = _oc_digest(doseesc.simulate(
                        design, sc, N_TRIALS, rng=SEED, ladder=proto.tiers, obd=proto.obd,
                        dose_model=proto.dose_model, calendar=proto.calendar))
                if j < 2 and not design.time_to_event:
                    out[f"{key}/exact"] = _exact_digest(design, sc, proto)
                if j == 0 and not design.time_to_event:
                    _paths_and_recommend(out, key, design, sc)


_DEFAULTS = {"target": 0.3, "max_n": 18, "n_tiers": 4}


def _registry_design(kind: str):
    cls = REGISTRY[kind]
    import dataclasses
    params = {"type": kind}
    for f in dataclasses.fields(cls):
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if f.name in _DEFAULTS:
                params[f.name] = _DEFAULTS[f.name]
            elif f.name == "skeleton":
                params[f.name] = [0.1, 0.2, 0.3, 0.45]
            elif f.name == "base":
                params[f.name] = {"type": "BOIN", "target": 0.3, "n_tiers": 4, "max_n": 18}
            elif f.name in ("tox_limit", "phi_t"):
                params[f.name] = 0.35
            elif f.name in ("eff_limit", "phi_e", "eff_target"):
                params[f.name] = 0.3
            else:
                return None
    try:
        return design_from_dict(params)
    except doseesc.DoseescError:   # a type whose required options have no generic default (a table)
        return None


def _registry_runs(out: dict, only: str | None) -> None:
    scenario = doseesc.Scenario(true_tox=[0.05, 0.12, 0.3, 0.5], true_eff=[0.2, 0.4, 0.5, 0.55], target=0.3,
                                name="registry")
    for kind in sorted(REGISTRY):
        key = f"registry/{kind}"
        if not _wanted(key, only):
            continue
        design = _registry_design(kind)
        if design is None:
            out[f"{key}/skipped"] = "no default parameters"
            continue
        out[f"{key}/plain"] = _oc_digest(doseesc.simulate(design, scenario, N_TRIALS, rng=SEED))
        if not design.time_to_event:
            out[f"{key}/exact"] = _oc_digest(doseesc.exact(design, scenario))
            _paths_and_recommend(out, key, design, scenario)


_MODES = ("plain", "protocol", "exact", "paths", "recommend", "skipped")


def _wanted(key: str, only: str | None) -> bool:
    return not only or any(only in f"{key}/{mode}" for mode in _MODES)


def fingerprints(only: str | None = None) -> dict:
    out: dict = {}
    _protocol_runs(out, only)
    _registry_runs(out, only)
    return {k: v for k, v in out.items() if not only or only in k}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("file")
    parser.add_argument("--only", default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    now = fingerprints(args.only)
    took = time.perf_counter() - t0
    if args.mode == "record":
        Path(args.file).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(now)} fingerprints in {took:.0f} s to {args.file}")
        return 0
    before = json.loads(Path(args.file).read_text())
    if args.only:
        before = {k: v for k, v in before.items() if args.only in k}
    changed = sorted(k for k in before.keys() & now.keys() if before[k] != now[k])
    missing, new = sorted(before.keys() - now.keys()), sorted(now.keys() - before.keys())
    for label, keys in (("changed", changed), ("missing", missing), ("new", new)):
        for k in keys:
            print(f"{label}: {k}")
    same = len(before.keys() & now.keys()) - len(changed)
    print(f"{same} identical, {len(changed)} changed, {len(missing)} missing, {len(new)} new ({took:.0f} s)")
    return 1 if changed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
