"""Indications (or strata) in scenario files and in run_protocol: loading, bad input, per-indication results,
JSON and --out contents, and the bundled files' indications (issue 19 items 1 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main
from doseesc.errors import DoseescError
from doseesc.indications import indication_text
from doseesc.study import run_protocol

ROOT = Path(__file__).resolve().parents[1]

HEAD = """
[protocol]
name = "toy"
target = 0.25
max_n = 18
cohort_size = 3

[tiers]
doses = [1, 2, 3, 4]
"""

INDICATIONS = """
[[indication]]
name = "adults"
share = 0.6
age = [18, 50]
eligibility = "adults with the disease"

[[indication]]
name = "children"
share = 0.4
age = [1, 17]
"""

DESIGNS = """
[[design]]
name = "3+3"
type = "3+3"

[[design]]
name = "BOIN"
type = "BOIN"
"""

CONDUCTS = """
[[design]]
name = "3+3 parallel"
type = "3+3"
conduct = "parallel"

[[design]]
name = "3+3 staggered"
type = "3+3"
conduct = { policy = "staggered", first = "adults", offset = 1, opens_after = 2 }
"""

SAME = """
[[scenario]]
name = "same"
true_tox = [0.05, 0.10, 0.20, 0.35]
true_eff = [0.20, 0.30, 0.45, 0.50]
"""

DIFFERENT = """
[[scenario]]
name = "children-more-toxic"
true_tox = [0.05, 0.10, 0.20, 0.35]
true_eff = [0.20, 0.30, 0.45, 0.50]
[scenario.indication.children]
true_tox = [0.10, 0.20, 0.35, 0.50]
"""

RUN = """
[run]
n_trials = 1500
seed = 11
"""


def _file(tmp_path, *parts, name="toy.toml") -> Path:
    path = tmp_path / name
    path.write_text("".join(parts))
    return path


def _toy(tmp_path) -> Path:
    return _file(tmp_path, HEAD, INDICATIONS, DESIGNS, CONDUCTS, SAME, DIFFERENT, RUN)


def _equal(x, y) -> bool:
    x, y = np.asarray(x), np.asarray(y)
    return np.array_equal(x, y, equal_nan=x.dtype.kind == "f" and y.dtype.kind == "f")


def _same_run(a, b):
    for key in ("n", "y", "selected", "reason", "fired"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    if a.e is not None or b.e is not None:
        assert np.array_equal(a.e, b.e)
    assert a.patients.keys() == b.patients.keys()
    for key in a.patients:
        assert _equal(a.patients[key], b.patients[key]), key
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        assert _equal(a.extra[key][0], b.extra[key][0]), key


# -- loading -----------------------------------------------------------------------------------------------
def test_file_loads_indications_truths_and_conducts(tmp_path):
    p = doseesc.load_protocol(_toy(tmp_path))
    assert p.indications.names == ("adults", "children")
    assert p.indications.shares.tolist() == [0.6, 0.4]
    assert p.indications.entries[0].age == (18.0, 50.0)
    assert set(p.conducts) == {"3+3 parallel", "3+3 staggered"}
    st = p.conducts["3+3 staggered"]
    assert (st.policy, st.first, st.offset, st.opens_after) == ("staggered", "adults", 1, 1)   # 1-based 2 -> 1
    assert p.conduct("3+3").policy == "pooled"   # designs without conduct run pooled
    same = p.indication_scenarios["same"]
    assert same.identical and same.pooled is p.scenarios["same"]
    diff = p.indication_scenarios["children-more-toxic"]
    assert diff.truth("children").true_tox == (0.10, 0.20, 0.35, 0.50)
    assert diff.truth("adults").true_tox == (0.05, 0.10, 0.20, 0.35)
    assert diff.truth("children").true_eff == (0.20, 0.30, 0.45, 0.50)   # left out: the table's
    # pooled truth: 0.6 x adults + 0.4 x children, e.g. tier 3: 0.6 x 0.20 + 0.4 x 0.35 = 0.12 + 0.14 = 0.26
    np.testing.assert_allclose(p.scenarios["children-more-toxic"].true_tox, [0.07, 0.14, 0.26, 0.41])
    assert p.scenarios["children-more-toxic"].mtd(0.25) == 1      # 0.26 > 0.25: tier 2 pooled


def test_file_without_indications_is_unchanged(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, SAME, RUN))
    assert p.indications is None and p.conducts == {} and p.indication_scenarios == {}
    assert p.conduct("3+3") is None
    study = run_protocol(p, n_trials=300)
    assert study.indication_results == {} and study.indication_notes == {}
    assert "indications" not in study.to_dict()
    assert study.by_indication().empty and study.indication_files() == {} and study.indication_text() == ""
    plain = doseesc.simulate(p.design("BOIN"), p.scenario("same"), 300, rng=p.seed, ladder=p.tiers)
    _same_run(study.results[1], plain)


# -- bad input: every message names the file, the table, the key and the value -------------------------------
BAD = [
    ("shares", INDICATIONS.replace("share = 0.4", "share = 0.6"), SAME,
     r"toy.toml: \[\[indication\]\] share: 0.6 \(adults\) \+ 0.6 \(children\) = 1.2; the shares of accrual must "
     r"sum to 1"),
    ("undeclared", INDICATIONS, DIFFERENT.replace("indication.children", "indication.teens"),
     r"toy.toml: \[\[scenario\]\] 'children-more-toxic': indication 'teens' is not declared in \[\[indication\]\] "
     r"\(declared: adults, children\)"),
    ("probability", INDICATIONS, DIFFERENT.replace("0.35, 0.50]", "1.3, 0.50]"),
     r"toy.toml: \[\[scenario\]\] 'children-more-toxic': indication.children.*true_tox\[2\] = 1.3"),
    ("unknown indication key", INDICATIONS.replace("share = 0.4", "share = 0.4\nrate = 2"), SAME,
     r"toy.toml: \[\[indication\]\] 'children': unknown key 'rate'"),
    ("unknown truth key", INDICATIONS, DIFFERENT.replace("true_tox = [0.10", "tox = 1\ntrue_tox = [0.10"),
     r"toy.toml: \[\[scenario\]\] 'children-more-toxic': indication.children: unknown key 'tox'"),
    ("no indications declared", "", DIFFERENT,
     r"toy.toml: \[\[scenario\]\] 'children-more-toxic': indication = .*but the file declares no \[\[indication\]\]"),
]


@pytest.mark.parametrize("label,inds,scenario,message", BAD, ids=[b[0] for b in BAD])
def test_bad_indications_and_truths(tmp_path, label, inds, scenario, message):
    with pytest.raises(DoseescError, match=message):
        doseesc.load_protocol(_file(tmp_path, HEAD, inds, DESIGNS, scenario, RUN))


BAD_CONDUCT = [
    ("offset below the lowest tier", 'conduct = { policy = "staggered", offset = 4 }',
     r"toy.toml: \[\[design\]\] 'x': conduct: offset = 4 puts the second stratum below the lowest tier of a "
     r"4-tier ladder \(at most 3\)"),
    ("negative offset", 'conduct = { policy = "staggered", offset = -1 }',
     r"toy.toml: \[\[design\]\] 'x': conduct offset = -1 must be a whole number of tiers >= 0"),
    ("unknown key", 'conduct = { policy = "staggered", ofset = 1 }',
     r"toy.toml: \[\[design\]\] 'x': conduct: unknown key 'ofset'"),
    ("unknown policy", 'conduct = "sequential"',
     r"toy.toml: \[\[design\]\] 'x': conduct policy = 'sequential' must be one of pooled, parallel, staggered"),
    ("undeclared first", 'conduct = { policy = "staggered", first = "teens" }',
     r"toy.toml: \[\[design\]\] 'x': conduct: first 'teens' is not declared in \[\[indication\]\]"),
    ("start outside the ladder", 'conduct = { policy = "parallel", indication = { children = { start = 5 } } }',
     r"toy.toml: \[\[design\]\] 'x': conduct.indication.children.start = 5 must be a tier 1..4"),
    ("unknown design", 'conduct = { policy = "parallel", indication = { children = { design = "CRM" } } }',
     r"toy.toml: \[\[design\]\] 'x': conduct.indication.children.design = 'CRM' is not a \[\[design\]\] of the file"),
]


@pytest.mark.parametrize("label,conduct,message", BAD_CONDUCT, ids=[b[0] for b in BAD_CONDUCT])
def test_bad_conduct(tmp_path, label, conduct, message):
    design = f'\n[[design]]\nname = "x"\ntype = "3+3"\n{conduct}\n'
    with pytest.raises(DoseescError, match=message):
        doseesc.load_protocol(_file(tmp_path, HEAD, INDICATIONS, DESIGNS, design, SAME, RUN))


def test_conduct_without_indications_and_staggered_with_three(tmp_path):
    design = '\n[[design]]\nname = "x"\ntype = "3+3"\nconduct = "parallel"\n'
    with pytest.raises(DoseescError, match=r"toy.toml: \[\[design\]\] 'x': conduct = 'parallel', but the file "
                                           r"declares no \[\[indication\]\] tables"):
        doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, design, SAME, RUN))
    three = INDICATIONS.replace("share = 0.4", "share = 0.2") + '\n[[indication]]\nname = "teens"\nshare = 0.2\n'
    design = '\n[[design]]\nname = "x"\ntype = "3+3"\nconduct = "staggered"\n'
    with pytest.raises(DoseescError, match=r"'x': conduct: policy 'staggered' needs exactly two strata; the file "
                                           r"declares 3 \(adults, children, teens\)"):
        doseesc.load_protocol(_file(tmp_path, HEAD, three, DESIGNS, design, SAME, RUN))


def test_conduct_with_a_time_to_event_design_is_refused(tmp_path):
    cal = "\n[calendar]\naccrual_rate = 2\ndlt_window_days = 28\n"
    design = '\n[[design]]\nname = "TITE"\ntype = "TITE-BOIN"\nconduct = "parallel"\n'
    with pytest.raises(DoseescError, match=r"toy.toml: \[\[design\]\] 'TITE': conduct = 'parallel' with the "
                                           r"time-to-event design .* needs; leave conduct out"):
        doseesc.load_protocol(_file(tmp_path, HEAD, INDICATIONS, DESIGNS, design, SAME, cal, RUN))
    # without a conduct it loads and runs pooled as the file states, with no per-indication tables (noted)
    design = '\n[[design]]\nname = "TITE"\ntype = "TITE-BOIN"\n'
    p = doseesc.load_protocol(_file(tmp_path, HEAD, INDICATIONS, DESIGNS, design, SAME, cal, RUN))
    study = run_protocol(p, designs=["TITE"], n_trials=200)
    assert len(study.results) == 1 and study.indication_results == {}
    assert "time-to-event" in study.indication_notes[("same", "TITE")]
    assert "no per-indication results" in study.indication_text()


# -- run_protocol ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_study(tmp_path_factory):
    path = _toy(tmp_path_factory.mktemp("toy"))
    p = doseesc.load_protocol(path)
    return p, run_protocol(p)


def test_identical_truths_give_the_plain_file_run(tmp_path, toy_study):
    """Acceptance 1: with the same truth in every indication, each pooled design's results are those of the file
    without [[indication]] tables (same seed, same patients), bit for bit."""
    p, study = toy_study
    plain = run_protocol(doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, SAME, RUN)))
    for r in plain.results:
        name = plain.name_of(r)
        mine = next(x for x in study.results if study.name_of(x) == name and x.scenario.name == "same")
        _same_run(mine, r)
        assert study.indication_results[("same", name)].pooled is mine


def test_counts_add_up_to_the_pooled_counts(toy_study):
    """Every patient of a pooled run belongs to one indication: per trial and tier, the indications' patients,
    DLTs and responses add up to the pooled ones (exactly), with different truths too."""
    _, study = toy_study
    for s in ("same", "children-more-toxic"):
        for d in ("3+3", "BOIN"):
            sr = study.indication_results[(s, d)]
            parts = list(sr.results.values())
            for key in ("n", "y", "e"):
                assert np.array_equal(sum(getattr(x, key) for x in parts), getattr(sr.pooled, key)), (s, d, key)
            assert all(np.array_equal(x.selected, sr.pooled.selected) for x in parts)
    b = study.by_indication()
    g = b[(b.design == "BOIN") & (b.scenario == "children-more-toxic") & (b.tier != "No dose")]
    per = g[g.indication != "pooled"].groupby("tier", sort=False)["mean_n"].sum()
    pooled = g[g.indication == "pooled"].set_index("tier")["mean_n"]
    np.testing.assert_allclose(per.values, pooled.loc[per.index].values, rtol=0, atol=1e-12)


def test_by_indication_over_every_design_and_scenario(toy_study):
    p, study = toy_study
    b = study.by_indication()
    assert set(zip(b.design, b.scenario)) == {(d, s) for d in p.designs for s in p.scenarios}
    assert {"design", "scenario", "conduct", "indication", "tier", "true_tox", "p_select", "mean_n",
            "mean_dlt", "true_mtd"} <= set(b.columns)
    # pooled designs have pooled rows; parallel and staggered conduct one block per indication only
    assert set(b[b.design == "BOIN"].indication) == {"adults", "children", "pooled"}
    assert set(b[b.design == "3+3 staggered"].indication) == {"adults", "children"}
    # per design x scenario x indication, P(select) over No dose and the 4 tiers sums to 1
    sums = b.groupby(["design", "scenario", "indication"])["p_select"].sum()
    np.testing.assert_allclose(sums.values, 1.0, atol=1e-12)
    # each indication's own truth: children's P(DLT) at tier 3 is 0.35 under 'children-more-toxic'
    row = b[(b.design == "3+3") & (b.scenario == "children-more-toxic") & (b.indication == "children")
            & (b.tier == "3")]
    assert row.true_tox.item() == 0.35 and not row.true_mtd.item()
    m = study.indication_metrics()
    kids = m[(m.design == "3+3") & (m.scenario == "children-more-toxic") & (m.indication == "children")]
    # children's true MTD is tier 2 (0.20 <= 0.25 < 0.35); the pooled selection above it is tiers 3 and 4
    assert kids.true_mtd.item() == "2"
    sel = study.indication_results[("children-more-toxic", "3+3")].pooled.selected
    assert kids.p_above_mtd.item() == pytest.approx(np.mean(sel >= 2), abs=1e-12)


def test_parallel_and_staggered_results(toy_study):
    p, study = toy_study
    plain = next(r for r in study.results if study.name_of(r) == "3+3" and r.scenario.name == "same")
    for name in ("3+3 parallel", "3+3 staggered"):
        main = next(r for r in study.results if study.name_of(r) == name and r.scenario.name == "same")
        # the design's own results are its first indication's escalation: with the same truth, the plain run's
        _same_run(main, plain)
        assert main.provenance["indication"] == "adults"
        assert "escalation" in study.indication_notes[("same", name)]
    sr = study.indication_results[("children-more-toxic", "3+3 staggered")]
    kids = sr.results["children"]
    tier, cap = kids.patients["tier"], sr.extra["cap"]
    treated = tier >= 0
    assert treated.any() and (tier[treated] <= cap[treated]).all()   # never above the adults' cleared tier
    assert (kids.selected <= np.maximum(sr.extra["cleared"], -1)).all()


def test_study_json_and_text(toy_study):
    p, study = toy_study
    d = json.loads(study.to_json())
    ind = d["indications"]
    assert [x["name"] for x in ind["declared"]] == ["adults", "children"]
    assert ind["conduct"]["3+3 staggered"]["policy"] == "staggered"
    assert len(ind["by_indication"]) == len(study.by_indication())
    assert len(ind["indication_metrics"]) == len(study.indication_metrics())
    assert {x["design"] for x in ind["notes"]} == {"3+3 parallel", "3+3 staggered"}
    files = study.indication_files()
    assert set(files) == {"by_indication.csv", "indication_metrics.csv"}
    sr = study.indication_results[("children-more-toxic", "3+3")]
    text = indication_text(sr)
    kids = sr.indication_metrics().set_index("indication").loc["children"]
    assert f"{100 * kids.p_correct:.1f}%" in text and f"{100 * kids.p_above_mtd:.1f}%" in text
    assert "3+3 staggered under 'same'" in study.indication_text()
    sections = study.indication_sections()
    assert [s["indication"] for s in sections] == ["adults", "children", "pooled"]
    assert len(sections[1]["metrics"]) == len(p.designs) * len(p.scenarios)


def test_cli_json_and_out_folder(tmp_path):
    path = _toy(tmp_path)
    r = CliRunner().invoke(main, ["simulate", str(path), "-n", "200", "--format", "json", "--no-exact"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["indications"]["by_indication"]) > 0
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(path), "-n", "200", "--no-exact", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "results.json").read_text())
    assert {x["indication"] for x in saved["indications"]["by_indication"]} == {"adults", "children", "pooled"}


def test_exact_and_auto_methods(toy_study):
    p, _ = toy_study
    ex = run_protocol(p, method="exact", designs=None)
    assert {ex.name_of(r) for r in ex.results} == {"3+3", "BOIN"}   # parallel/staggered: Monte Carlo only
    with pytest.raises(DoseescError, match="'3\\+3 staggered': conduct 'staggered' runs an escalation per"):
        run_protocol(p, method="exact", designs=["3+3 staggered"])
    auto = run_protocol(p, method="auto", n_trials=300, designs=["3+3", "3+3 parallel"], scenarios=["same"])
    assert ("same", "3+3") in auto.exact_results
    assert "Monte Carlo only" in auto.exact_skipped[("same", "3+3 parallel")]


# -- the bundled files ---------------------------------------------------------------------------------------
BUNDLED = {"ecar01": (("SLE", "RA", "SSc", "pSS"), "ssc-more-toxic"),
           "kn3601": (("MN", "IgAN", "AAV"), "aav-more-toxic"),
           "gd2_b7h3": (("adults", "children"), "children-more-toxic")}


@pytest.mark.parametrize("stem", sorted(BUNDLED))
def test_bundled_files_declare_their_indications(stem):
    p = doseesc.load_protocol(ROOT / "scenarios" / f"{stem}.toml")
    names, special = BUNDLED[stem]
    assert p.indications.names == names
    assert abs(p.indications.shares.sum() - 1) < 1e-12
    assert not p.indication_scenarios[special].identical
    for name, isc in p.indication_scenarios.items():
        if name != special:
            assert isc.identical and isc.pooled is p.scenarios[name]


def test_bundled_pooled_designs_keep_their_results():
    """KN3601 (calendar) and ECAR01 (actual dose and calendar): a pooled design's results are today's run."""
    for stem, design, scenario in (("kn3601", "BOIN", "mtd-middle"), ("ecar01", "3+3", "mtd-top")):
        p = doseesc.load_protocol(ROOT / "scenarios" / f"{stem}.toml")
        study = run_protocol(p, designs=[design], scenarios=[scenario], n_trials=400)
        today = doseesc.simulate(p.design(design), p.scenario(scenario), 400, rng=p.seed, ladder=p.tiers,
                                 obd=p.obd, dose_model=p.dose_model, calendar=p.calendar)
        _same_run(study.results[0], today)
        sr = study.indication_results[(scenario, design)]
        assert set(sr.results) == set(p.indications.names)
        if p.dose_model is not None:
            assert "nominal doses" in study.indication_notes[(scenario, design)]


def test_checkpoint_and_precision(tmp_path, toy_study):
    p, _ = toy_study
    folder = tmp_path / "ckpt"
    first = run_protocol(p, n_trials=200, scenarios=["children-more-toxic"], checkpoint=folder)
    again = run_protocol(p, n_trials=200, scenarios=["children-more-toxic"], checkpoint=folder)   # read back
    assert first.by_indication().equals(again.by_indication())
    assert first.indication_notes == again.indication_notes
    # a precision target: pooled designs keep their pooled run only (noted); a conduct runs its n_trials
    st = run_protocol(p, precision=0.05, n_trials=2048, designs=["3+3", "3+3 staggered"], scenarios=["same"])
    assert "precision" in st.indication_notes[("same", "3+3")]
    assert ("same", "3+3") not in st.indication_results
    assert st.indication_results[("same", "3+3 staggered")].results["adults"].n_trials == 2048
