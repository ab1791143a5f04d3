"""Modules loaded on first use, so that ``import doseesc`` and ``doseesc --help`` stay quick.

``special = lazy("scipy.special")`` at the top of a module behaves like ``from scipy import special``, except
that scipy is imported when an attribute is first read. The first read copies the module's namespace into the
proxy, so later reads cost what a module attribute costs (hot kernels call ``special.betainc`` and the like).
``lazy(name, snapshot=False)`` reads every attribute from the module instead (a little slower), so that a later
change to the module's namespace (a test's monkeypatch) shows through: the command line reaches doseesc's own
modules this way.
scipy.special, scipy.stats and pandas together are about 1 s of the import time on a small machine.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """A stand-in for a module, imported when an attribute is first read."""

    def __init__(self, name: str, snapshot: bool = True):
        self.__dict__["_lazy_name"] = name
        self.__dict__["_lazy_snapshot"] = snapshot

    def _load(self):
        module = importlib.import_module(self.__dict__["_lazy_name"])
        if self.__dict__["_lazy_snapshot"]:
            self.__dict__.update(vars(module))
        self.__dict__["_lazy_module"] = module
        return module

    def __getattr__(self, attr: str):
        # only called for names not yet in the proxy's namespace
        if "_lazy_module" in self.__dict__:
            return getattr(self.__dict__["_lazy_module"], attr)
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "loaded" if "_lazy_module" in self.__dict__ else "not loaded yet"
        return f"<lazy module {self.__dict__['_lazy_name']!r} ({state})>"


def lazy(name: str, snapshot: bool = True) -> LazyModule:
    """A module proxy that imports ``name`` on first attribute access (``snapshot``: see the module's doc)."""
    return LazyModule(name, snapshot)
