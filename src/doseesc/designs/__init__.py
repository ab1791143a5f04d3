"""Dose-escalation designs. Each is a frozen dataclass with a vectorised kernel."""

from .aplusb import AplusB
from .base import REGISTRY, Design, design_from_dict
from .blrm import BLRM
from .boin import BOIN, boin_boundaries
from .boin12 import BOIN12
from .boinet import BOINET, boinet_boundaries
from .crm import CRM, crm_skeleton
from .decision_table import DecisionTable
from .efftox import EffTox
from .expansion import Expansion
from .obd_pick import OBDPick
from .interval_designs import MTPI, MTPI2, TPI, I3Plus3, Keyboard
from .rolling_six import RollingSix
from .three_plus_three import ThreePlusThree
from .tite import TITEBOIN, TITEBOIN12, TITECRM

__all__ = ["Design", "REGISTRY", "design_from_dict", "ThreePlusThree", "BOIN", "boin_boundaries", "MTPI", "MTPI2", "TPI",
           "I3Plus3", "Keyboard", "CRM", "crm_skeleton", "OBDPick", "BOIN12", "BOINET", "boinet_boundaries",
           "TITECRM", "TITEBOIN", "TITEBOIN12", "AplusB",
           "DecisionTable", "RollingSix", "EffTox", "BLRM", "Expansion"]
