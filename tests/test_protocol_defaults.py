"""[protocol] max_n / cohort_size / target are defaults for the designs that take them; a design that fixes its own
value by its rules must agree with them, else the file is refused naming the file, the design and the key."""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc.errors import DesignError

# true_eff too: a file with an OBD design is refused at load without response truths (its runs need them)
SCENARIO = '[[scenario]]\nname = "s"\ntrue_tox = [0.05, 0.15, 0.3, 0.5]\ntrue_eff = [0.2, 0.4, 0.5, 0.6]\n'


def _load(tmp_path, protocol: str, designs: str):
    f = tmp_path / "p.toml"
    f.write_text(f"[protocol]\n{protocol}\n[tiers]\ndoses = [1, 2, 4, 8]\n{designs}\n{SCENARIO}")
    return f, doseesc.load_protocol(f)


def test_protocol_cohort_size_conflicting_with_3_plus_3_is_refused_naming_file_design_and_key(tmp_path):
    # 3+3 enrols cohorts of 3 by its rules: a protocol saying cohorts of 2 cannot hold for it
    f = tmp_path / "p.toml"
    with pytest.raises(DesignError) as err:
        _load(tmp_path, "cohort_size = 2\nmax_n = 24", '[[design]]\nname = "std"\ntype = "3+3"\n')
    msg = str(err.value)
    assert str(f) in msg and "'std'" in msg and "cohort_size = 2" in msg and "is 3 by its rules" in msg


def test_protocol_cohort_size_agreeing_with_3_plus_3_applies_to_the_others(tmp_path):
    # cohorts of 3: the 3+3 agrees (3 = 3), BOIN takes cohort_size = 3 and max_n = 24 from [protocol]
    _, proto = _load(tmp_path, "cohort_size = 3\nmax_n = 24\ntarget = 0.3",
                     '[[design]]\nname = "std"\ntype = "3+3"\n[[design]]\nname = "boin"\ntype = "BOIN"\n')
    assert proto.design("boin").cohort_size == 3 and proto.design("boin").max_n == 24
    assert proto.design("boin").target == 0.3
    assert proto.design("std").cohort_size == 3


def test_protocol_cohort_size_for_a_plus_b_must_equal_a(tmp_path):
    # A+B enrols cohorts of A (and then B): A = 2 agrees with cohort_size = 2, the default A = 3 does not
    _, proto = _load(tmp_path, "cohort_size = 2",
                     '[[design]]\nname = "2+2"\ntype = "A+B"\nA = 2\nB = 2\n')
    assert proto.design("2+2").cohort_size == 2
    with pytest.raises(DesignError, match=r"\[\[design\]\] '3\+3'.*\[protocol\] cohort_size = 2"):
        _load(tmp_path, "cohort_size = 2", '[[design]]\nname = "3+3"\ntype = "A+B"\n')


def test_protocol_defaults_go_through_a_wrapper_to_its_base(tmp_path):
    # obd-pick takes neither max_n nor cohort_size: its base BOIN gets both (cohorts of 2, max_n 12); the
    # wrapper's own max_n (base 12 + 2 x expansion 3 = 18) differs from [protocol] max_n and is not refused
    _, proto = _load(tmp_path, "cohort_size = 2\nmax_n = 12\ntarget = 0.3",
                     '[[design]]\nname = "pick"\ntype = "obd-pick"\nexpansion = 3\n'
                     'base = { type = "BOIN" }\n')
    d = proto.design("pick")
    assert d.base.cohort_size == 2 and d.base.max_n == 12 and d.max_n == 18


def test_protocol_cohort_size_conflicting_with_a_wrapped_3_plus_3_is_refused(tmp_path):
    with pytest.raises(DesignError, match=r"'pick' base.*cohort_size = 2"):
        _load(tmp_path, "cohort_size = 2", '[[design]]\nname = "pick"\ntype = "obd-pick"\nexpansion = 0\n'
                                           'base = { type = "3+3" }\n')


def test_protocol_target_is_never_refused_it_defines_the_true_mtd(tmp_path):
    # 3+3 has no target, but [protocol] target = 0.3 still defines each scenario's true MTD:
    # true_tox = 0.05, 0.15, 0.3, 0.5 -> the highest tier with P(DLT) <= 0.3 is tier 2 (0-based)
    _, proto = _load(tmp_path, "target = 0.3", '[[design]]\nname = "std"\ntype = "3+3"\n')
    sc = proto.scenario("s")
    assert sc.target == 0.3 and sc.mtd(sc.target) == 2


# -- OBD pick with fill = true: the expansion treats the places the base left, up to the registered N -------------

def test_fill_expansion_by_hand():
    # 3+3 without de-escalation over 3 tiers, max_n 18 (6 x 3). "1NEN 2NEN 3TTN": 2/3 DLTs at tier 3 stop the
    # 3+3 with MTD tier 2 after 9 patients. Places left R = 18 - 9 = 9: ceil(9 / 2) = 5 at tier 2, then the
    # 18 - 14 = 4 left at tier 1, then stop (every place used).
    pick = doseesc.OBDPick(doseesc.ThreePlusThree(3), fill=True)
    assert pick.max_n == 18 and pick.label == "3+3 + OBD pick, expansion to N = 18"
    assert doseesc.recommend(pick, "1NEN 2NEN 3TTN").next_tier == 1
    with pytest.raises(doseesc.DoseescError, match="treats a cohort of 5 there"):
        doseesc.recommend(pick, "1NEN 2NEN 3TTN 2EEENEN")        # 6 patients: the expansion at tier 2 is 5
    assert doseesc.recommend(pick, "1NEN 2NEN 3TTN 2EEENE").next_tier == 0
    part = doseesc.recommend(pick, "1NEN 2NEN 3TTN 2EEENE 1NNN")   # 3 of the 4 at tier 1: one place to go
    assert not part.stop and part.next_tier == 0 and part.incomplete == 1
    rec = doseesc.recommend(pick, "1NEN 2NEN 3TTN 2EEENE 1NNNN")
    assert rec.stop and rec.reason == doseesc.StopReason.EXPANSION_DONE and sum(rec.n) == 18
    # utility (N 40, E 100): tier 1 = (40 + 100 + 40 + 4 x 40) / 7 = 340 / 7 = 48.6;
    # tier 2 = (40 + 100 + 40 + 4 x 100 + 40) / 8 = 620 / 8 = 77.5; tier 3 (2/3 DLTs) is above the MTD
    assert rec.selected == 1


def test_fill_puts_every_place_at_the_mtd_when_it_is_the_lowest_tier():
    # "1NNN 2TTN": 2/3 at tier 2 stop the 3+3 with MTD tier 1 after 6 patients; no tier below: all
    # 18 - 6 = 12 places at tier 1, then stop
    pick = doseesc.OBDPick(doseesc.ThreePlusThree(3), fill=True)
    assert doseesc.recommend(pick, "1NNN 2TTN").next_tier == 0
    rec = doseesc.recommend(pick, "1NNN 2TTN 1" + "N" * 12)
    assert rec.stop and rec.n == (15, 3, 0) and rec.selected == 0


def test_fill_leaves_a_trial_without_mtd_and_one_at_max_n_alone():
    pick = doseesc.OBDPick(doseesc.ThreePlusThree(3), fill=True)
    rec = doseesc.recommend(pick, "1TTN")        # lowest tier too toxic: no MTD, no expansion
    assert rec.stop and rec.selected == -1 and rec.reason == doseesc.StopReason.LOWEST_TIER_TOXIC
    # a 3+3 capped at 9 patients that uses all of them: nothing left to fill, the base's own stop stands
    small = doseesc.OBDPick(doseesc.ThreePlusThree(3, max_n=9), fill=True)
    rec = doseesc.recommend(small, "1NNN 2NNN 3NNN")
    # (0/3 at the top: the 3+3 stops with the top tier tolerated, 9 of 9 places used, nothing to fill)
    assert rec.stop and rec.reason == doseesc.StopReason.TOP_TIER_TOLERATED and sum(rec.n) == 9
    assert rec.selected == 0   # every tier 0 DLT, 0 response: utility 40 at each, the lowest tier on ties


def test_fill_from_a_file_reaches_the_protocol_max_n(tmp_path):
    # [protocol] max_n = 24 goes to the 3+3 base; every simulated trial that names an MTD treats exactly 24
    # patients, a trial that names none stops where the 3+3 stopped (no expansion)
    _, proto = _load(tmp_path, "max_n = 24\ntarget = 0.25",
                     '[[design]]\nname = "pick"\ntype = "obd-pick"\nfill = true\nbase = { type = "3+3" }\n')
    d = proto.design("pick")
    assert d.fill and d.max_n == 24 and d.base.max_n == 24 and d.to_dict()["fill"] is True
    assert doseesc.design_from_dict(d.to_dict()) == d
    sc = doseesc.Scenario(true_tox=[0.05, 0.15, 0.3, 0.5], true_eff=[0.2, 0.4, 0.5, 0.6], target=0.25)
    t = doseesc.simulate(d, sc, 1000, rng=4).trials()
    named = t["selected_tier"].to_numpy() >= 1   # 1-based; 0 is "No dose"
    assert named.any() and (t["n"].to_numpy()[named] == 24).all()
    assert (t["n"].to_numpy()[~named] < 24).all()


def test_fill_exact_agrees_with_simulation():
    # 3 tiers, N = 18: exact enumeration of the variable expansion cohorts; Monte Carlo within 4 SE
    d = doseesc.OBDPick(doseesc.ThreePlusThree(3), fill=True)
    sc = doseesc.Scenario(true_tox=[0.05, 0.15, 0.4], true_eff=[0.3, 0.5, 0.6], target=0.25)
    ex, mc = doseesc.exact(d, sc), doseesc.simulate(d, sc, 20000, rng=3)
    ps = np.clip(ex.p_select, 0, 1)
    assert np.all(np.abs(mc.p_select - ps) <= 4 * np.sqrt(ps * (1 - ps) / 20000) + 1e-15)
    assert abs(mc.expected_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(20000)
    # every trial names an MTD but those stopping at the lowest tier (P(no dose)): N = 18 for the rest
    assert ex.expected_n > 18 * (1 - ex.p_select[0])


@pytest.mark.parametrize("table,msg", [
    ('fill = true\nexpansion = 3', r"fill = true with expansion = 3: give one of them"),
    ('fill = "yes"', r"fill = 'yes' must be true or false"),
    ('expansion = "fill"', r'expansion = "fill": write fill = true')])
def test_fill_errors_name_the_key(tmp_path, table, msg):
    with pytest.raises(doseesc.DoseescError, match=msg):
        _load(tmp_path, "max_n = 24", f'[[design]]\nname = "pick"\ntype = "obd-pick"\n{table}\n'
                                      'base = { type = "3+3" }\n')
