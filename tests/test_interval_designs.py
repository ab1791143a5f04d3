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


# -- issue 16: final-selection ties (mtd_ties) and the Beta(alpha, beta) prior ----------------------------

def _select(design, n, y):
    return int(design.select(doseesc.TrialState.from_counts(n, y, 0))[0])


def test_mtpi_mtd_ties_hand_worked():
    # Beta(1, 1) posterior means (y + 1)/(n + 2): 0/3 -> 1/5 = 0.2, 0/3 -> 0.2, 2/8 -> 3/10 = 0.3; already
    # non-decreasing, so the isotonic estimates are these. Target 0.25: all three are 0.05 away, a three-way tie.
    # "below": the highest tied tier below the target -> tier 2 (index 1).
    # "mean": mean of the tied estimates (0.2 + 0.2 + 0.3)/3 = 0.233 < 0.25 -> the highest tied tier -> tier 3.
    n, y = [3, 3, 8], [0, 0, 2]
    assert _select(doseesc.MTPI(0.25, 3, max_n=30, mtd_ties="below"), n, y) == 1
    assert _select(doseesc.MTPI(0.25, 3, max_n=30, mtd_ties="mean"), n, y) == 2
    assert doseesc.MTPI(0.25, 3, max_n=30).mtd_ties == "below"  # default: R escalation's reading of Ji 2010
    assert _select(doseesc.MTPI(0.25, 3, max_n=30), n, y) == 1
    # two tiers tied across the target, 0.2 and 0.3: the mean is the target itself -> the lowest; both rules: tier 1
    for rule in ("below", "mean"):
        assert _select(doseesc.MTPI(0.25, 3, max_n=30, mtd_ties=rule), [3, 8, 0], [0, 2, 0]) == 0
    # 0.2, 0.2, 0.3, 0.3: mean 0.25 = target -> "mean" takes the lowest tied tier (tier 1); "below" tier 2
    n4, y4 = [3, 3, 8, 8], [0, 0, 2, 2]
    assert _select(doseesc.MTPI(0.25, 4, max_n=30, mtd_ties="mean"), n4, y4) == 0
    assert _select(doseesc.MTPI(0.25, 4, max_n=30, mtd_ties="below"), n4, y4) == 1


def test_mtpi2_mtd_ties_hand_worked():
    # mTPI-2 selects with R BOIN's estimate (y + 0.05)/(n + 0.1): 0/3 -> 0.05/3.1 = 0.016129 (twice),
    # 1/3 -> 1.05/3.1 = 0.338710. Target 1.1/6.2 = 0.177419 is their midpoint: a three-way tie at 0.161290.
    # "below" -> tier 2; "mean": (2 x 0.016129 + 0.338710)/3 = 0.123656 < target -> the highest tied, tier 3.
    t = 1.1 / 6.2
    n, y = [3, 3, 3], [0, 0, 1]
    assert _select(doseesc.MTPI2(t, 3, max_n=30, mtd_ties="below"), n, y) == 1
    assert _select(doseesc.MTPI2(t, 3, max_n=30, mtd_ties="mean"), n, y) == 2
    assert doseesc.MTPI2(t, 3, max_n=30).mtd_ties == "mean"  # default: the rule R escalation cites from Guo 2017
    assert _select(doseesc.MTPI2(t, 3, max_n=30), n, y) == 2
    # Keyboard keeps R BOIN's select.mtd ("below") and has no such option
    assert _select(doseesc.Keyboard(t, 3, max_n=30), n, y) == 1
    with pytest.raises(TypeError):
        doseesc.Keyboard(t, 3, max_n=30, mtd_ties="mean")


def test_tpi_mtd_ties_hand_worked():
    # TPI estimates (y + 0.005)/(n + 0.01): 0/3 -> 0.005/3.01 = 0.001661 (twice), 1/3 -> 1.005/3.01 = 0.333887.
    # Target 1.01/6.02 = 0.167774 is their midpoint: a three-way tie at 0.166113.
    # "below" (default: the TPI paper's rule is not pinned) -> tier 2; "mean": mean 0.112403 < target -> tier 3.
    t = 1.01 / 6.02
    n, y = [3, 3, 3], [0, 0, 1]
    assert _select(doseesc.TPI(t, 3, max_n=30, mtd_ties="below"), n, y) == 1
    assert _select(doseesc.TPI(t, 3, max_n=30, mtd_ties="mean"), n, y) == 2
    assert _select(doseesc.TPI(t, 3, max_n=30), n, y) == 1


@pytest.mark.parametrize("cls", [doseesc.MTPI2, doseesc.TPI])
def test_tie_rules_agree_unless_a_tie_straddles_the_target(cls):
    # The rules differ only when tied tiers lie on both sides of the target; with mTPI-2's (0.05) and TPI's
    # (0.005) estimates that needs a contrived target (above). A pooled block below the target gives its
    # highest tier and one above its lowest under both rules, so ordinary states agree:
    rng = np.random.default_rng(3)
    n = rng.integers(0, 13, size=(4000, 4))
    y = np.minimum(rng.integers(0, 6, size=(4000, 4)), n)
    st = doseesc.TrialState.from_counts(n, y, np.zeros(4000, dtype=int))
    below = cls(0.3, 4, max_n=60, mtd_ties="below").select(st)
    mean = cls(0.3, 4, max_n=60, mtd_ties="mean").select(st)
    np.testing.assert_array_equal(below, mean)


def test_default_prior_is_todays_behaviour():
    # Beta(1, 1) for mTPI and mTPI-2, Beta(0.005, 0.005) for TPI: the same tables as stated explicitly
    for cls, a in ((doseesc.MTPI, 1.0), (doseesc.MTPI2, 1.0), (doseesc.TPI, 0.005)):
        d = cls(0.3, 3, max_n=30)
        assert (d.alpha, d.beta) == (a, a)
        e = cls(0.3, 3, max_n=30, alpha=a, beta=a)
        np.testing.assert_array_equal(d.grid, e.grid)
        np.testing.assert_array_equal(d.elim, e.elim)
    # and the published cells still hold (mTPI (3,1) S, (3,3) DU; TPI (9,5) not eliminated)
    assert "ESD"[doseesc.MTPI(0.3, 3, max_n=12).grid[3, 1]] == "S"
    assert not doseesc.TPI(0.3, 3, max_n=12).elim[9, 5]


@pytest.mark.parametrize("cls", [doseesc.MTPI, doseesc.MTPI2, doseesc.TPI])
def test_non_default_prior_changes_a_decision(cls):
    # One patient without a DLT at tier 1, target 0.3 (cohorts of 1).
    # Default prior: mTPI/mTPI-2 posterior Beta(1, 2), F(x) = 1 - (1 - x)^2: mTPI UPM_E = F(0.25)/0.25 =
    #   0.4375/0.25 = 1.75 > UPM_S = (0.5775 - 0.4375)/0.1 = 1.4 > UPM_D = 0.4225/0.65 = 0.65 -> E; mTPI-2's
    #   strongest interval is [0, 0.05): 0.0975/0.05 = 1.95 -> E. TPI: Beta(0.005, 1.005), sd 0.0495, nearly
    #   all mass below 0.3 - 1.5 sd = 0.226 -> E.
    # Beta(3, 1) prior: posterior Beta(3, 2), F(x) = 4x^3 - 3x^4: F(0.25) = 0.050781, F(0.35) = 0.126481,
    #   F(0.65) = 0.562981, F(0.75) = 0.738281. mTPI: UPM_E = 0.203, UPM_S = 0.757, UPM_D = 0.873519/0.65 =
    #   1.344 -> D. mTPI-2: (0.65, 0.75] has UPM 0.175300/0.1 = 1.753 > S's 0.757 -> D. TPI: sd = sqrt(6/150) =
    #   0.2, E-region p < 0 is empty, S = [0, 0.5] has F(0.5) = 0.3125 < D's 0.6875 -> D.
    default = cls(0.3, 3, max_n=12, cohort_size=1)
    skewed = cls(0.3, 3, max_n=12, cohort_size=1, alpha=3, beta=1)
    assert "ESD"[default.grid[1, 0]] == "E" and "ESD"[skewed.grid[1, 0]] == "D"
    assert doseesc.recommend(default, "1N").next_tier == 1   # escalate to tier 2
    assert doseesc.recommend(skewed, "1N").next_tier == 0    # de-escalate: stays at the lowest tier
    if cls is not doseesc.TPI:
        assert stats.beta.cdf(0.35, 3, 2) == pytest.approx(0.12648125)


def test_prior_changes_elimination_and_mtpi_selection():
    # Elimination uses the same posterior: 2 DLTs of 3 at target 0.3: Beta(1, 1) -> Beta(3, 2),
    # P(p > 0.3) = 1 - F(0.3) = 1 - (4 * 0.027 - 3 * 0.0081) = 0.9163 <= 0.95: not eliminated;
    # Beta(3, 1) -> Beta(5, 2), P(p > 0.3) = 1 - I_0.3(5, 2) = 1 - (6 * 0.3^5 * 0.7 + 0.3^6) = 0.98906 > 0.95.
    assert not doseesc.MTPI(0.3, 3, max_n=12).elim[3, 2]
    assert doseesc.MTPI(0.3, 3, max_n=12, alpha=3, beta=1).elim[3, 2]
    assert doseesc.MTPI2(0.3, 3, max_n=12, alpha=3, beta=1).elim[3, 2]
    # mTPI's selection estimate uses the prior too: 0/3 at tier 1, 1/3 at tier 2, target 0.3.
    # Beta(1, 1): 1/5 = 0.2 and 2/5 = 0.4, equally far: tie -> tier 1 ("below").
    # Beta(1, 3): 1/7 = 0.143 and 2/7 = 0.286 -> tier 2.
    assert _select(doseesc.MTPI(0.3, 3, max_n=12), [3, 3, 0], [0, 1, 0]) == 0
    assert _select(doseesc.MTPI(0.3, 3, max_n=12, beta=3), [3, 3, 0], [0, 1, 0]) == 1


@pytest.mark.parametrize("cls", [doseesc.MTPI, doseesc.MTPI2, doseesc.TPI])
@pytest.mark.parametrize("key,value", [("alpha", 0), ("alpha", -1.5), ("beta", float("nan")), ("beta", "1"),
                                       ("alpha", True), ("beta", float("inf"))])
def test_prior_parameter_errors(cls, key, value):
    with pytest.raises(doseesc.DesignError, match=f"{key} = {value!r} must be a positive number"):
        cls(0.3, 3, max_n=12, **{key: value})


@pytest.mark.parametrize("cls", [doseesc.MTPI, doseesc.MTPI2, doseesc.TPI])
def test_mtd_ties_errors(cls):
    with pytest.raises(doseesc.DesignError, match="mtd_ties = 'higher' must be one of: 'below', 'mean'"):
        cls(0.3, 3, max_n=12, mtd_ties="higher")


@pytest.mark.parametrize("cls", [doseesc.MTPI, doseesc.MTPI2, doseesc.TPI])
def test_prior_and_ties_round_trip_and_describe(cls):
    d = cls(0.3, 3, max_n=12, alpha=2, beta=3.5, mtd_ties="mean" if cls is not doseesc.MTPI2 else "below")
    again = doseesc.design_from_dict(d.to_dict())
    assert again == d and again.alpha == 2 and again.beta == 3.5
    # as a scenario file's [[design]] table would give it
    table = {"type": cls.kind, "target": 0.3, "n_tiers": 3, "max_n": 12, "alpha": 2, "beta": 3.5,
             "mtd_ties": d.mtd_ties}
    assert doseesc.design_from_dict(table) == d
    text = d.describe()
    assert "Beta(2, 3.5) prior on the DLT rate" in text
    assert f"MTD ties: {d.mtd_ties!r} rule" in text
    plain = cls(0.3, 3, max_n=12).describe()
    assert "prior" not in plain and "MTD ties" not in plain
