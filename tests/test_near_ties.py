"""Near-ties of the true utility (issue 18 item 3): which tiers the warning names, hand-worked."""

from __future__ import annotations

import doseesc
from doseesc.obd import UTILITY_MARGIN, OBDDefinition


def _scenario(tox, eff):
    return doseesc.Scenario(true_tox=tox, true_eff=eff, name="s")


def test_margin_is_five_points():
    assert UTILITY_MARGIN == 5.0


def test_near_ties_hand_worked():
    # BOIN12 utility N 40, T 0, E 100, B 60, independent outcomes:
    # u = 40 + 60 e - 40 t (E: e(1-t)100 + B: 60 e t + N: 40 (1-e)(1-t) + T: 0).
    # tox (0.1, 0.1, 0.1), eff (0.2, 0.5, 0.45): u = 48, 66, 63 -> OBD tier 2 (66); tier 3 (63) is
    # within 5 points, tier 1 (48) is not.
    obd = OBDDefinition(phi_t=0.3, phi_e=0.1)
    sc = _scenario([0.1, 0.1, 0.1], [0.2, 0.5, 0.45])
    assert obd.true_utility(sc).round(6).tolist() == [48.0, 66.0, 63.0]
    ties = obd.near_ties(sc)
    assert [t for t, _ in ties] == [2]
    assert abs(ties[0][1] - 63.0) < 1e-9
    text = obd.near_tie_text(sc, ["low", "mid", "high"])
    assert "true OBD mid (utility 66.0)" in text and "high (63.0)" in text and "low" not in text


def test_an_exact_tie_and_the_margin_boundary():
    # eff (0.5, 0.5): both u = 66 -> exact tie, the lower tier is the OBD, the upper is named.
    obd = OBDDefinition(phi_t=0.3, phi_e=0.1)
    assert obd.near_ties(_scenario([0.1, 0.1], [0.5, 0.5])) == [(1, 66.0)]
    # A 5-point gap counts (<= margin); a 6-point gap does not: u = 60 + 60 e' with e' = 0.4 -> 60.
    assert [t for t, _ in obd.near_ties(_scenario([0.1, 0.1], [0.5, 0.4]), margin=6.0)] == [1]
    assert obd.near_ties(_scenario([0.1, 0.1], [0.5, 0.4]), margin=5.9) == []


def test_inadmissible_tiers_and_no_obd_give_no_warning():
    obd = OBDDefinition(phi_t=0.3, phi_e=0.1)
    # tier 2 is as good but too toxic (0.4 > phi_t): not admissible, so no tie is reported.
    assert obd.near_ties(_scenario([0.1, 0.4], [0.5, 0.9])) == []
    # No admissible tier (all too toxic): no OBD, no warning.
    sc = _scenario([0.5, 0.6], [0.5, 0.5])
    assert obd.true_obd(sc) == -1 and obd.near_ties(sc) == [] and obd.near_tie_text(sc) is None
