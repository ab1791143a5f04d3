"""Outcome grammar and live recommendations."""

from __future__ import annotations

import warnings

import pytest

import doseesc
from doseesc.errors import DeviationWarning, OutcomeError
from doseesc.outcomes import counts, format_outcomes, parse_outcomes


@pytest.mark.parametrize("text", ["1NNN 2NTN", "1NEN 2TEB", "12TTB", "", "3N"])
def test_round_trip(text):
    assert format_outcomes(parse_outcomes(text)) == text


def test_parse_values_and_counts():
    cohorts = parse_outcomes(" 1nnn\t2NTB  ")
    assert [c.tier for c in cohorts] == [0, 1]
    assert cohorts[1].tox == (False, True, True) and cohorts[1].eff == (False, False, True)
    n, y, e = counts(cohorts, 3)
    assert list(n) == [3, 3, 0] and list(y) == [0, 2, 0] and list(e) == [0, 1, 0]


@pytest.mark.parametrize("text,match", [
    ("1NXN", "unknown outcome letter 'X' for patient 2"),
    ("0NNN", "numbered from 1"),
    ("4NNN", "tier 4 does not exist"),
    ("NNN", "must be a tier number"),
    ("2", "has no patients"),
    ("1N-N", "must be a tier number"),
])
def test_bad_outcome_strings(text, match):
    with pytest.raises(OutcomeError, match=match):
        parse_outcomes(text, n_tiers=3)


D = doseesc.ThreePlusThree(3)
DD = doseesc.ThreePlusThree(3, deescalation=True)


@pytest.mark.parametrize("design,log,next_tier,stop,selected", [
    (D, "", 0, False, None),
    (D, "1NNN", 1, False, None),
    (D, "1NNN 2NTN", 1, False, None),
    (D, "1NNN 2NTN 2NNN", 2, False, None),
    (D, "1NNN 2NTN 2NNT", -1, True, 0),
    (D, "1TTN", -1, True, -1),
    (DD, "1NNN 2NTN 2NNT", 0, False, None),
    (DD, "1NNN 2NTN 2NNT 1NNT", -1, True, 0),
    (DD, "1NNN 2NNN 3NNN", -1, True, 2),
])
def test_recommend(design, log, next_tier, stop, selected):
    rec = doseesc.recommend(design, log)
    assert rec.next_tier == next_tier and rec.stop == stop and rec.selected == selected
    assert rec.outcomes == log


def test_recommend_incomplete_cohort():
    rec = doseesc.recommend(D, "1NNN 2N")
    assert rec.incomplete == 2 and rec.next_tier == 1 and not rec.stop
    assert "complete the cohort" in rec.message


def test_recommend_reports_deviations():
    with pytest.warns(DeviationWarning, match="the design recommended Tier 2"):
        rec = doseesc.recommend(D, "1NNN 3NNN")
    assert len(rec.deviations) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = doseesc.recommend(D, "1TTN 1NNN", warn=False)
    assert "after the design had stopped" in rec.deviations[0]


@pytest.mark.parametrize("log,match", [
    ("1NNNN", "a cohort of 3"),
    ("1NN 2NNN", "a cohort of 3"),
    ("4NNN", "does not exist"),
    ("1NNN 1NNN 1NNN", "3 or 6 patients"),
])
def test_recommend_impossible_logs(log, match):
    with pytest.raises(doseesc.DoseescError, match=match):
        doseesc.recommend(D, log, warn=False)


def test_recommend_uses_ladder_labels():
    ladder = doseesc.DoseLadder(doses=[1e5, 3e5, 6e5], unit="cells/kg", tolerance=0.2)
    rec = doseesc.recommend(D, "1NNN", ladder=ladder)
    assert "3e5 cells/kg" in rec.message
