"""Exceptions and warnings raised by doseesc.

Every error a user can cause (a bad parameter, a malformed scenario file, an
impossible outcome string) is a :class:`DoseescError`. The messages name the
parameter and the offending value, and for files also the file and the key, so
that the command line can print one clear line instead of a traceback.
"""

from __future__ import annotations


class DoseescError(Exception):
    """Base class of every error doseesc raises on bad input."""


class DesignError(DoseescError, ValueError):
    """A design was given an invalid parameter or option."""


class ScenarioError(DoseescError, ValueError):
    """A scenario, dose ladder or scenario file is invalid."""


class OutcomeError(DoseescError, ValueError):
    """A trial outcome string (for example ``"1NNN 2NTN"``) cannot be read."""


class DoseescWarning(UserWarning):
    """Base class of the warnings doseesc emits."""


class DeviationWarning(DoseescWarning):
    """A trial log departs from what the design would have recommended."""
