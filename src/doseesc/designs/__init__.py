"""Dose-escalation designs. Each is a frozen dataclass with a vectorised kernel."""

from .base import REGISTRY, Design, design_from_dict
from .boin import BOIN, boin_boundaries
from .three_plus_three import ThreePlusThree

__all__ = ["Design", "REGISTRY", "design_from_dict", "ThreePlusThree", "BOIN", "boin_boundaries"]
