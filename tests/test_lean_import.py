"""`import doseesc` loads neither scipy, pandas nor matplotlib: they load on first use (doseesc._lazy), so that the
package and the command line start quickly (issue 20 item 7; times are in bench/, not in tests).

The package's own names load on first use too (PEP 562 ``__getattr__`` over ``doseesc._EXPORTS``), and the command
line reaches the library through lazy proxies, so neither ``import doseesc`` nor ``doseesc --help`` loads numpy."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("scipy", "pandas", "matplotlib")


def _loaded(code: str, heavy=HEAVY) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(m for m in sys.modules "
                          f"if m.split('.')[0] in {tuple(heavy)!r})))"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_doseesc_loads_neither_numpy_nor_the_library():
    loaded = _loaded("import doseesc", heavy=("numpy", "doseesc"))
    assert loaded == ["doseesc", "doseesc._version"]


def test_help_loads_neither_numpy_nor_the_library():
    """What `doseesc --help` and `doseesc simulate --help` import: click, the command line, errors and limits."""
    code = ("from click.testing import CliRunner\nfrom doseesc.cli import main\n"
            "for args in (['--help'], ['simulate', '--help'], ['paths', '--help']):\n"
            "    assert CliRunner().invoke(main, args).exit_code == 0\n")
    loaded = _loaded(code, heavy=("numpy", "doseesc"))
    assert "numpy" not in loaded
    assert set(loaded) <= {"doseesc", "doseesc._version", "doseesc._lazy", "doseesc.cli", "doseesc.errors",
                           "doseesc.limits"}, loaded


def test_every_exported_name_resolves_to_its_module():
    import importlib
    import doseesc
    for name, module in doseesc._EXPORTS.items():
        assert getattr(doseesc, name) is getattr(importlib.import_module(module, "doseesc"), name), name
    assert set(doseesc.__all__) == {"__version__", *doseesc._EXPORTS}
    assert set(doseesc.__all__) <= set(dir(doseesc))
    from doseesc import BOIN, simulate   # from-imports go through __getattr__ too
    assert BOIN is doseesc.designs.boin.BOIN and simulate is doseesc.engines.montecarlo.simulate
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        doseesc.no_such_name


def test_a_submodule_import_does_not_hide_the_function_of_the_same_name():
    """``doseesc.compare`` is the function, whether or not the module doseesc.compare was imported first."""
    out = subprocess.run([sys.executable, "-c", "import doseesc.compare, doseesc.cli, doseesc\n"
                          "print(callable(doseesc.compare), type(doseesc.compare).__name__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "function"]


def test_import_doseesc_loads_no_heavy_module():
    assert _loaded("import doseesc") == []


def test_first_use_loads_what_it_needs_and_gives_the_same_numbers():
    code = ("import doseesc\nd = doseesc.BOIN(target=0.3, n_tiers=3, max_n=12, cohort_size=3)\n"
            "r = doseesc.exact(d, doseesc.Scenario([0.1, 0.3, 0.5]))\nprint(repr(float(r.p_select[1])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    import doseesc
    d = doseesc.BOIN(target=0.3, n_tiers=3, max_n=12, cohort_size=3)
    assert float(out) == float(doseesc.exact(d, doseesc.Scenario([0.1, 0.3, 0.5])).p_select[1])


def test_lazy_module_behaves_like_the_module():
    from doseesc._lazy import lazy
    import scipy.special
    special = lazy("scipy.special")
    assert "not loaded" in repr(lazy("scipy.special"))
    assert special.betainc is scipy.special.betainc
    assert special.gammaln(5.0) == scipy.special.gammaln(5.0)
    assert "loaded" in repr(special)


def test_command_line_module_loads_no_heavy_module():
    """`doseesc --help` imports doseesc.cli (and through it the report): still no scipy, pandas or matplotlib."""
    assert _loaded("import doseesc.cli") == []


def test_a_proxy_without_snapshot_reads_the_module_each_time(monkeypatch):
    """The command line's proxies of doseesc's own modules read through to the module, so a later change to it
    (a test's monkeypatch) shows; a snapshot proxy (scipy's, in the hot kernels) keeps what it copied."""
    import doseesc.tables
    from doseesc._lazy import lazy
    through, copied = lazy("doseesc.tables", snapshot=False), lazy("doseesc.tables")
    original = doseesc.tables.decision_table
    assert through.decision_table is original and copied.decision_table is original
    monkeypatch.setattr(doseesc.tables, "decision_table", "patched")
    assert through.decision_table == "patched"
    assert copied.decision_table is original
