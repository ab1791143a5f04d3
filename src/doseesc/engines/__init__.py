"""Every way of running a design: Monte Carlo (plain, actual dose, timed), exact enumeration, dose paths and
live recommendations. Designs and models import nothing from here."""

from .coherence import Coherence, coherence
from .exact import exact
from .live import Recommendation, recommend
from .montecarlo import simulate
from .paths import DosePaths, paths

__all__ = ["simulate", "exact", "paths", "DosePaths", "recommend", "Recommendation", "coherence", "Coherence"]
