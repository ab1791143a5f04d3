"""[protocol] max_n / cohort_size / target are defaults for the designs that take them; a design that fixes its own
value by its rules must agree with them, else the file is refused naming the file, the design and the key."""

from __future__ import annotations

import pytest

import doseesc
from doseesc.errors import DesignError

SCENARIO = '[[scenario]]\nname = "s"\ntrue_tox = [0.05, 0.15, 0.3, 0.5]\n'


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
