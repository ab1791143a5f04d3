"""`import doseesc` loads neither scipy, pandas nor matplotlib: they load on first use (doseesc._lazy), so that the
package and the command line start quickly (issue 20 item 7; times are in bench/, not in tests)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("scipy", "pandas", "matplotlib")


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(m for m in sys.modules "
                          f"if m.split('.')[0] in {HEAVY!r})))"], capture_output=True, text=True, check=True)
    return out.stdout.split()


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
