"""doseesc: simulate and exactly evaluate dose-escalation designs for early-phase trials.

Library first: the command line and reports are thin clients of this API.

>>> import doseesc
>>> design = doseesc.ThreePlusThree(n_tiers=3)
>>> truth = doseesc.Scenario(true_tox=[0.05, 0.15, 0.35], target=0.25)
>>> oc = doseesc.exact(design, truth)
>>> print(round(oc.p_select.sum(), 12))
1.0

Names are loaded on first use (PEP 562, as in Scientific Python's SPEC 1): ``import doseesc`` reads no design,
engine or numpy module, and ``doseesc.BOIN`` imports the designs when it is first read. ``from doseesc import X``,
``dir(doseesc)`` and tab completion behave as for eager imports.
"""

from __future__ import annotations

import importlib
import sys
import types

from ._version import __version__

#: public name -> the module (relative to the package) that defines it; read by tests/test_imports.py as
#: edges of the import graph
_EXPORTS = {
    "Calendar": ".calendar",
    "Comparison": ".compare", "calibrate_halfwidth": ".compare", "compare": ".compare",
    "BOIN": ".designs", "BOIN12": ".designs", "BOINET": ".designs", "CRM": ".designs",
    "boinet_boundaries": ".designs", "MTPI": ".designs", "MTPI2": ".designs", "TPI": ".designs", "Design": ".designs",
    "OBDPick": ".designs", "crm_skeleton": ".designs", "I3Plus3": ".designs", "Keyboard": ".designs",
    "ThreePlusThree": ".designs", "boin_boundaries": ".designs", "design_from_dict": ".designs", "AplusB": ".designs",
    "DecisionTable": ".designs", "RollingSix": ".designs",
    "BLRM": ".designs.blrm",
    "EffTox": ".designs.efftox",
    "Expansion": ".designs.expansion",
    "TITEBOIN": ".designs.tite", "TITEBOIN12": ".designs.tite", "TITECRM": ".designs.tite",
    "Coherence": ".engines", "DosePaths": ".engines", "Recommendation": ".engines", "coherence": ".engines",
    "exact": ".engines", "paths": ".engines", "recommend": ".engines", "simulate": ".engines",
    "Backfill": ".engines.backfill", "backfill_summary": ".engines.backfill", "compare_backfill": ".engines.backfill",
    "simulate_backfill": ".engines.backfill", "with_backfill": ".engines.backfill",
    "DesignError": ".errors", "DoseescError": ".errors", "DoseescWarning": ".errors", "OutcomeError": ".errors",
    "ScenarioError": ".errors",
    "Grid": ".grid", "GridResult": ".grid", "span": ".grid",
    "OBDDefinition": ".obd",
    "format_outcomes": ".outcomes", "parse_outcomes": ".outcomes",
    "BOP2": ".phase2", "Phase2Stage": ".phase2", "SimonTwoStage": ".phase2",
    "Protocol": ".protocol", "load_protocol": ".protocol",
    "OperatingCharacteristics": ".results",
    "Scenario": ".scenario",
    "Decision": ".state", "Rule": ".state", "StopReason": ".state", "TrialState": ".state",
    "decision_grid": ".tables", "decision_table": ".tables",
    "DoseLadder": ".tiers",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("__"):   # a probe for a special name (inspect, copy, IPython): never a submodule
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # a submodule not imported yet (``doseesc.engines`` after a bare ``import doseesc``)
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value   # later reads are plain module attributes
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package's module type. Importing a submodule sets it as an attribute of the package; where the
    submodule shares its name with an exported function (``doseesc.compare``), the function keeps the name,
    as it did when the package imported everything eagerly."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == f".{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
