"""mTPI, mTPI-2, Keyboard, TPI and i3+3: published tables and independent scalar references."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats

import doseesc
from doseesc.tables import decision_grid

# Published decision tables, target 0.30 (mTPI, mTPI-2: eps1 = eps2 = 0.05; TPI: K1 = 1, K2 = 1.5), rows of
# n patients at the current tier, one letter per number of DLTs y = 0..n. Sources: Ji et al. 2010 (Clin
# Trials 7:653) Fig. 2 for mTPI; Guo et al. 2017 (Contemp Clin Trials 58:23) Fig. 3 for mTPI-2; Ji, Li &
# Bekele 2007 (Clin Trials 4:235) Table 1 for TPI. Transcribed via the published-table tests of the R
# package escalation 0.2.3 (a secondary source; the rows below are the n those tests cover).
PUBLISHED = {
    "mTPI": {
        3: "E S D DU",
        6: "E E S S DU DU DU",
        9: "E E S S S DU DU DU DU DU",
        12: "E E E S S S D DU DU DU DU DU DU",
        30: "E E E E E E E S S S S S S S DU DU DU DU DU DU DU DU DU DU DU DU DU DU DU DU DU",
    },
    "mTPI-2": {
        3: "E S D DU",
        6: "E E S D DU DU DU",
        9: "E E E S D DU DU DU DU DU",
        10: "E E E S D D DU DU DU DU DU",
    },
    "TPI": {
        3: "E S D DU",
        6: "E S S D DU DU DU",
        9: "E E S S S D DU DU DU DU",
        12: "E E E S S S D DU DU DU DU DU DU",
    },
}
CLASSES = {"mTPI": doseesc.MTPI, "mTPI-2": doseesc.MTPI2, "TPI": doseesc.TPI}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_tables_cell_by_cell(name):
    grid = decision_grid(CLASSES[name](0.30, 5, max_n=30))
    for n, row in PUBLISHED[name].items():
        assert [grid.loc[n, y] for y in range(n + 1)] == row.split(), f"{name} n = {n}"


def _upm_letter_mtpi(n, y, pt=0.30, e1=0.05, e2=0.05):
    """Scalar mTPI rule from the paper: largest UPM, by numerical integration of the Beta density."""
    pdf = lambda p: stats.beta.pdf(p, 1 + y, 1 + n - y)  # noqa: E731
    lo, hi = pt - e1, pt + e2
    upm = np.array([integrate.quad(pdf, 0, lo)[0] / lo, integrate.quad(pdf, lo, hi)[0] / (hi - lo),
                    integrate.quad(pdf, hi, 1)[0] / (1 - hi)])
    return "ESD"[int(np.flatnonzero(upm >= upm.max() * (1 - 1e-9))[0])]  # exact ties: E, then S


def _letter_mtpi2(n, y, pt, e1=0.05, e2=0.05):
    """Scalar mTPI-2 from the paper: equal-width intervals outward from the equivalence interval."""
    w = e1 + e2
    cuts = []
    x = pt - e1
    while x > 1e-9:
        cuts.append(x)
        x -= w
    x = pt + e2
    while x < 1 - 1e-9:
        cuts.append(x)
        x += w
    edges = sorted(set([0.0, 1.0] + [round(c, 10) for c in cuts]))
    best, where = -1.0, None
    for a, b in zip(edges[:-1], edges[1:]):
        upm = integrate.quad(lambda p: stats.beta.pdf(p, 1 + y, 1 + n - y), a, b)[0] / (b - a)
        if upm > best * (1 + 1e-9):  # exact ties: the lower interval
            best, where = upm, (a, b)
    if where[1] <= pt - e1 + 1e-9:
        return "E"
    if where[0] >= pt + e2 - 1e-9:
        return "D"
    return "S"


def _letter_i3(n, y, pt, e=0.05):
    lo, hi = Fraction(str(pt)) - Fraction(str(e)), Fraction(str(pt)) + Fraction(str(e))
    if y * 1 < lo * n:
        return "E"
    if y <= hi * n:
        return "S"
    return "S" if (y - 1) < lo * n else "D"


@pytest.mark.parametrize("target", [0.20, 0.25, 0.30, 0.35])
def test_letters_equal_scalar_references(target):
    checks = [(doseesc.MTPI, lambda n, y: _upm_letter_mtpi(n, y, target)),
              (doseesc.MTPI2, lambda n, y: _letter_mtpi2(n, y, target)),
              (doseesc.I3Plus3, lambda n, y: _letter_i3(n, y, target))]
    for cls, ref in checks:
        d = cls(target, 4, max_n=15)
        for n in range(1, 16):
            for y in range(n + 1):
                if d.elim[n, y]:
                    continue
                assert "ESD"[d.grid[n, y]] == ref(n, y), (cls.__name__, target, n, y)


def test_keyboard_equals_mtpi2_with_equal_width_keys():
    """Yan et al. 2017: with equal-width keys the strongest key and the largest UPM agree."""
    for target in (0.2, 0.25, 0.3, 0.35):
        kb = doseesc.Keyboard(target, 4, max_n=30)
        m2 = doseesc.MTPI2(target, 4, max_n=30)
        np.testing.assert_array_equal(kb.grid, m2.grid)
        np.testing.assert_array_equal(kb.elim, m2.elim)


def test_elimination_rules():
    # Beta(1, 1): P(p > 0.3 | 3 of 3) = 1 - 0.3^4 = 0.9919 > 0.95: eliminate; 2 of 3: 1 - (4 .3^3 .7 + .3^4)
    d = doseesc.MTPI(0.30, 3, max_n=12)
    assert d.elim[3, 3] and not d.elim[3, 2] and not d.elim[2, 2]  # n >= 3 needed
    # TPI uses its Beta(0.005, 0.005) prior for elimination: published n = 9, y = 5 is D, not DU
    tpi = doseesc.TPI(0.30, 3, max_n=12)
    assert not tpi.elim[9, 5] and tpi.elim[9, 6]
    assert stats.beta.sf(0.3, 5.005, 4.005) < 0.95 < stats.beta.sf(0.3, 6, 5)


@pytest.mark.parametrize("cls", [doseesc.MTPI, doseesc.MTPI2, doseesc.Keyboard, doseesc.I3Plus3])
def test_equivalence_interval_errors(cls):
    with pytest.raises(doseesc.DesignError, match="eps1 = 0"):
        cls(0.3, 3, max_n=12, eps1=0)
    with pytest.raises(doseesc.DesignError, match="equivalence interval"):
        cls(0.03, 3, max_n=12)


def test_tpi_parameter_errors():
    with pytest.raises(doseesc.DesignError, match="k1 = -1"):
        doseesc.TPI(0.3, 3, max_n=12, k1=-1)
