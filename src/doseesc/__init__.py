"""doseesc: simulate and exactly evaluate dose-escalation designs for early-phase trials.

Library first: the command line and reports are thin clients of this API.

>>> import doseesc
>>> design = doseesc.ThreePlusThree(n_tiers=3)
>>> truth = doseesc.Scenario(true_tox=[0.05, 0.15, 0.35], target=0.25)
>>> oc = doseesc.exact(design, truth)
>>> round(oc.p_select.sum(), 12)
1.0
"""

from ._version import __version__
from .designs import (BOIN, BOIN12, BOINET, CRM, boinet_boundaries, MTPI, MTPI2, TPI, Design, OBDPick, crm_skeleton, I3Plus3, Keyboard, ThreePlusThree, boin_boundaries,
                      design_from_dict)
from .designs import AplusB, DecisionTable, RollingSix
from .designs.efftox import EffTox
from .designs.blrm import BLRM
from .designs.tite import TITEBOIN, TITEBOIN12, TITECRM
from .designs.expansion import Expansion
from .calendar import Calendar
from .engines.backfill import Backfill, backfill_summary, compare_backfill, simulate_backfill, with_backfill
from .compare import Comparison, calibrate_halfwidth, compare
from .engines import Coherence, DosePaths, Recommendation, coherence, exact, paths, recommend, simulate
from .errors import DesignError, DoseescError, DoseescWarning, OutcomeError, ScenarioError
from .grid import Grid, GridResult, span
from .outcomes import format_outcomes, parse_outcomes
from .protocol import Protocol, load_protocol
from .results import OperatingCharacteristics
from .obd import OBDDefinition
from .phase2 import BOP2, Phase2Stage, SimonTwoStage
from .scenario import Scenario
from .state import Decision, Rule, StopReason, TrialState
from .tables import decision_grid, decision_table
from .tiers import DoseLadder

__all__ = [
    "__version__", "Design", "ThreePlusThree", "BOIN", "boin_boundaries", "CRM", "crm_skeleton", "OBDPick", "Expansion", "BOIN12", "BOINET", "boinet_boundaries", "MTPI", "MTPI2", "TPI", "I3Plus3", "Keyboard", "design_from_dict", "simulate", "exact", "recommend",
    "Recommendation", "Scenario", "OBDDefinition", "DoseLadder", "OperatingCharacteristics", "Protocol", "load_protocol",
    "TrialState", "Decision", "StopReason", "Rule", "compare", "Comparison", "coherence", "Coherence", "calibrate_halfwidth", "paths", "DosePaths", "decision_table", "decision_grid", "parse_outcomes", "format_outcomes",
    "DoseescError", "DesignError", "ScenarioError", "OutcomeError", "DoseescWarning",
    "Calendar", "TITECRM", "TITEBOIN", "TITEBOIN12", "AplusB", "DecisionTable", "RollingSix", "EffTox", "BLRM",
    "Grid", "GridResult", "span", "Phase2Stage", "SimonTwoStage", "BOP2",
    "Backfill", "with_backfill", "simulate_backfill", "compare_backfill", "backfill_summary",
]
