"""Bad input gives a clear error naming the parameter (and file and key) and value."""

from __future__ import annotations

import pytest

import doseesc
from doseesc import DesignError, DoseescError, ScenarioError


@pytest.mark.parametrize("kwargs,match", [
    ({"true_tox": [0.1, 1.3]}, r"true_tox\[1\] = 1.3 is not a probability"),
    ({"true_tox": [-0.1, 0.3]}, r"true_tox\[0\] = -0.1 is not a probability"),
    ({"true_tox": [0.1, float("nan")]}, r"true_tox\[1\] = nan"),
    ({"true_tox": [0.1, "high"]}, r"true_tox\[1\] = 'high' is not a number"),
    ({"true_tox": 0.3}, "expected a list"),
    ({"true_tox": []}, "at least one tier"),
    ({"true_tox": [0.1, 0.2], "true_eff": [0.3]}, "true_eff has 1 tiers"),
    ({"true_tox": [0.1, 0.2], "target": 1.5}, "target = 1.5"),
])
def test_scenario_errors(kwargs, match):
    with pytest.raises(ScenarioError, match=match):
        doseesc.Scenario(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"doses": [1e5, 1e5, 6e5]}, r"doses\[1\] = 100000 is not above doses\[0\]"),
    ({"doses": [3e5, 1e5]}, "strictly increasing"),
    ({"doses": [0, 1]}, r"doses\[0\] = 0 must be a positive number"),
    ({"doses": [1, 2], "tolerance": 1.2}, "tolerance = 1.2"),
    ({"doses": [1, 2], "labels": ["a"]}, "labels has 1 entries"),
    ({"doses": [1, 2], "labels": ["a", "a"]}, "must be distinct"),
])
def test_ladder_errors(kwargs, match):
    with pytest.raises(ScenarioError, match=match):
        doseesc.DoseLadder(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_tiers": 0}, "n_tiers = 0 must be at least 1"),
    ({"n_tiers": 2.5}, "n_tiers = 2.5 must be an integer"),
    ({"n_tiers": 3, "deescalation": "yes"}, "deescalation = 'yes'"),
    ({"n_tiers": 3, "max_n": 2}, "max_n = 2 must be at least 3"),
])
def test_design_errors(kwargs, match):
    with pytest.raises(DesignError, match=match):
        doseesc.ThreePlusThree(**kwargs)


def test_unknown_design_type_and_option():
    with pytest.raises(DesignError, match="type = 'BOINN' is not a known design"):
        doseesc.design_from_dict({"type": "BOINN", "n_tiers": 3})
    with pytest.raises(DesignError, match="unknown option 'cohort' for design type '3\\+3'"):
        doseesc.design_from_dict({"type": "3+3", "n_tiers": 3, "cohort": 3})


GOOD = """
[protocol]
name = "T"
target = 0.25
[tiers]
doses = [1e5, 3e5, 6e5]
unit = "cells/kg"
tolerance = 0.2
[[design]]
name = "3+3"
type = "3+3"
[[scenario]]
name = "mid"
true_tox = [0.05, 0.15, 0.35]
[run]
n_trials = 500
seed = 1
"""


def _write(tmp_path, text, name="p.toml"):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_good_file_loads(tmp_path):
    p = doseesc.load_protocol(_write(tmp_path, GOOD))
    assert p.tiers.tier_labels == ("1e5 cells/kg", "3e5 cells/kg", "6e5 cells/kg")
    assert p.scenarios["mid"].target == 0.25
    assert p.designs["3+3"] == doseesc.ThreePlusThree(3)
    assert len(p.sha256) == 64


@pytest.mark.parametrize("old,new,match", [
    ("true_tox = [0.05, 0.15, 0.35]", "true_tox = [0.05, 0.15, 1.35]",
     r"p.toml: \[\[scenario\]\] 'mid': true_tox\[2\] = 1.35 is not a probability"),
    ("true_tox = [0.05, 0.15, 0.35]", "true_tox = [0.05, 0.15]", "true_tox has 2 values but \\[tiers\\] has 3"),
    ("doses = [1e5, 3e5, 6e5]", "doses = [1e5, 6e5, 3e5]", r"p.toml: \[tiers\] doses\[2\] = 300000 is not above"),
    ('type = "3+3"', 'type = "BOINX"', r"p.toml: \[\[design\]\] '3\+3': type = 'BOINX' is not a known design"),
    ('type = "3+3"', 'type = "3+3"\nstep = 2', r"\[\[design\]\] '3\+3': unknown option 'step'"),
    ("target = 0.25", "target = 2", r"p.toml: \[protocol\] target = 2"),
    ("target = 0.25", "target = 0.25\ncolour = 1", r"p.toml: \[protocol\]: unknown key 'colour'"),
    ("n_trials = 500", "n_trials = -5", r"\[run\] n_trials = -5"),
    ("seed = 1", "seed = 'x'", r"\[run\] seed = 'x'"),
    ('name = "mid"', 'name = "mid"\ntrue_toxx = 1', r"'mid': unknown key 'true_toxx'"),
    ("[tiers]", "[tier]", "unknown key 'tier'"),
    ('doses = [1e5, 3e5, 6e5]', 'doses = [1e5, 3e5, 6e5', "not valid TOML"),
])
def test_malformed_files(tmp_path, old, new, match):
    assert old in GOOD
    with pytest.raises(DoseescError, match=match):
        doseesc.load_protocol(_write(tmp_path, GOOD.replace(old, new, 1)))


def test_missing_file_and_missing_tables(tmp_path):
    with pytest.raises(DoseescError, match="nope.toml: no such file"):
        doseesc.load_protocol(tmp_path / "nope.toml")
    with pytest.raises(DoseescError, match="missing table \\[tiers\\]"):
        doseesc.load_protocol(_write(tmp_path, "[protocol]\nname='x'\n"))
    no_design = GOOD[: GOOD.index("[[design]]")] + GOOD[GOOD.index("[[scenario]]"):]
    with pytest.raises(DoseescError, match="at least one \\[\\[design\\]\\]"):
        doseesc.load_protocol(_write(tmp_path, no_design))
    dup = GOOD + '\n[[scenario]]\nname = "mid"\ntrue_tox = [0.1, 0.2, 0.3]\n'
    with pytest.raises(DoseescError, match="'mid' is used twice"):
        doseesc.load_protocol(_write(tmp_path, dup.replace("[run]\nn_trials = 500\nseed = 1\n", "")))


def test_a_bad_option_inside_an_obd_pick_base_names_the_base(tmp_path):
    f = tmp_path / "b.toml"
    f.write_text('[protocol]\ntarget = 0.25\nmax_n = 18\n[tiers]\ndoses = [1, 2, 3]\n[[design]]\nname = "pick"\n'
                 'type = "obd-pick"\nbase = { type = "BOIN", foo = 1 }\n[[scenario]]\nname = "s"\n'
                 'true_tox = [0.1, 0.2, 0.3]\ntrue_eff = [0.1, 0.2, 0.3]\n')
    with pytest.raises(doseesc.DoseescError, match=r"\[\[design\]\] 'pick': base: unknown option 'foo'"):
        doseesc.load_protocol(f)


@pytest.mark.parametrize("kwargs, message", [
    ({"doses": [True, 2, 3]}, "expected a list of numbers"),
    ({"doses": "123"}, "expected a list of numbers"),
    ({"doses": [1, 2, 3], "labels": "abc"}, "expected a list of names"),
    ({"doses": [1, 2, 3], "labels": [1, 2, 3]}, "expected a list of names"),
])
def test_ladder_refuses_booleans_strings_and_non_string_labels(kwargs, message):
    with pytest.raises(ScenarioError, match=message):
        doseesc.DoseLadder(**kwargs)
