"""Dose-escalation designs. Each is a frozen dataclass with a vectorised kernel."""

from .base import REGISTRY, Design, design_from_dict
from .three_plus_three import ThreePlusThree

__all__ = ["Design", "REGISTRY", "design_from_dict", "ThreePlusThree"]
