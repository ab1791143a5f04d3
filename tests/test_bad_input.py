"""A catalogue of bad inputs (issue 24 item 6): each is refused with exit code 2, a message naming the key,
and no file written; none ends in a traceback."""

from __future__ import annotations

import os
import re
import sys

import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main

BASE = """
[protocol]
name = "Bad"
target = 0.25
max_n = 18
cohort_size = 3
dlt_window_days = 28
[tiers]
doses = [1e5, 3e5, 6e5]
unit = "cells/kg"
tolerance = 0.2
[[design]]
name = "3+3"
type = "3+3"
[[design]]
name = "BOIN"
type = "BOIN"
[[design]]
name = "CRM"
type = "CRM"
skeleton = [0.14, 0.25, 0.38]
[[design]]
name = "BOIN-ET"
type = "BOIN-ET"
phi = 0.25
delta = 0.60
[[scenario]]
name = "mid"
true_tox = [0.05, 0.15, 0.35]
true_eff = [0.2, 0.4, 0.5]
[[scenario]]
name = "curve"
tox_curve = { model = "logistic", ref_dose = 3e5, p_ref = 0.15, slope = 1.5 }
eff_curve = { model = "emax", e0 = 0.10, emax = 0.70, ed50 = 2e5, hill = 1.5 }
[actual_dose]
release = "uniform"
shortfall = 0.05
shortfall_min = 0.5
[calendar]
accrual_rate = 1.0
vein_to_vein_days = 21
follow_up_days = 90
eff_window_days = 60
[obd]
rule = "admissible"
phi_t = 0.25
phi_e = 0.25
[run]
n_trials = 200
seed = 1
"""

BIG = "1" + "0" * 400          # an integer beyond any float (1e400 written as an integer)

#: (case, text replaced, replacement, what the message must name)
FILE_CASES = [
    ("huge-true-tox", "true_tox = [0.05,", f"true_tox = [{BIG},", "true_tox[0]"),
    ("huge-doses", "doses = [1e5,", f"doses = [{BIG},", "[tiers] doses[0]"),
    ("huge-design-target", 'name = "BOIN"\ntype = "BOIN"', f'name = "BOIN"\ntype = "BOIN"\ntarget = {BIG}', "target"),
    ("huge-crm-skeleton", "skeleton = [0.14,", f"skeleton = [{BIG},", "skeleton[0]"),
    ("huge-boinet-delta", "delta = 0.60", f"delta = {BIG}", "delta"),
    ("huge-shortfall-min", "shortfall_min = 0.5", f"shortfall_min = {BIG}", "shortfall_min"),
    ("huge-accrual-rate", "accrual_rate = 1.0", f"accrual_rate = {BIG}", "accrual_rate"),
    ("huge-seed", "seed = 1", f"seed = {BIG}", "seed"),
    ("5000-digit-seed", "seed = 1", "seed = 1" + "0" * 5000, "seed"),
    ("type-list", 'type = "BOIN"', 'type = ["BOIN"]', "type"),
    ("type-table", 'type = "BOIN"', "type = {a = 1}", "type"),
    ("scenario-name-list", 'name = "mid"', 'name = ["mid"]', "name"),
    ("scenario-name-table", 'name = "mid"', "name = {a = 1}", "name"),
    ("design-name-int", 'name = "BOIN"\n', "name = 5\n", "name = 5 must be text"),
    ("design-name-empty", 'name = "BOIN"\n', 'name = ""\n', "name"),
    ("design-name-control", 'name = "BOIN"\n', 'name = "BO\\u0007IN"\n', "control character"),
    ("design-name-long", 'name = "BOIN"\n', f'name = "{"B" * 101}"\n', "MAX_NAME"),
    ("design-name-blank-end", 'name = "BOIN"\n', 'name = "BOIN "\n', "white space"),
    ("design-name-twice", 'name = "BOIN"\n', 'name = "3+3"\n', "used twice"),
    ("tox-curve-model-list", 'model = "logistic"', "model = []", "tox_curve.model"),
    ("tox-curve-model-int", 'model = "logistic"', "model = 3", "tox_curve.model"),
    ("max-n-1e6", "max_n = 18", "max_n = 1000000", "max_n"),
    ("max-n-1e9", "max_n = 18", "max_n = 1000000000", "max_n"),
    ("design-max-n-1e6", 'type = "BOIN"\n', 'type = "BOIN"\nmax_n = 1000000\n', "max_n"),
    ("max-n-text", "max_n = 18", 'max_n = "18"', "max_n"),
    ("max-n-zero", "max_n = 18", "max_n = 0", "max_n"),
    ("cohort-above-max-n", 'type = "BOIN"\n', 'type = "BOIN"\ncohort_size = 40\nmax_n = 30\n', "cohort_size = 40"),
    ("cohort-huge", "cohort_size = 3", "cohort_size = 100000", "cohort_size"),
    ("tiers-21", "doses = [1e5, 3e5, 6e5]", "doses = [" + ", ".join(str(i) for i in range(1, 22)) + "]", "MAX_TIERS"),
    ("doses-text", "doses = [1e5, 3e5, 6e5]", 'doses = "1e5"', "doses"),
    ("doses-bool", "doses = [1e5, 3e5, 6e5]", "doses = [true, 3e5, 6e5]", "doses[0]"),
    ("doses-nan", "doses = [1e5, 3e5, 6e5]", "doses = [nan, 3e5, 6e5]", "doses[0]"),
    ("doses-inf", "doses = [1e5, 3e5, 6e5]", "doses = [1e5, 3e5, inf]", "doses[2]"),
    ("labels-not-text", 'unit = "cells/kg"', 'unit = "cells/kg"\nlabels = [1, 2, 3]', "labels[0]"),
    ("unit-list", 'unit = "cells/kg"', 'unit = ["cells/kg"]', "unit"),
    ("tolerance-text", "tolerance = 0.2", 'tolerance = "20%"', "tolerance"),
    ("n-trials-1e12", "n_trials = 200", "n_trials = 1000000000000", "n_trials"),
    ("n-trials-text", "n_trials = 200", 'n_trials = "200"', "n_trials"),
    ("seed-negative", "seed = 1", "seed = -1", "seed"),
    ("accrual-tiny", "accrual_rate = 1.0", "accrual_rate = 1e-300", "accrual_rate"),
    ("accrual-huge", "accrual_rate = 1.0", "accrual_rate = 1e9", "accrual_rate"),
    ("accrual-text", "accrual_rate = 1.0", 'accrual_rate = "fast"', "accrual_rate"),
    ("follow-up-inf", "follow_up_days = 90", "follow_up_days = inf", "follow_up_days"),
    ("follow-up-negative", "follow_up_days = 90", "follow_up_days = -5", "follow_up_days"),
    ("follow-up-centuries", "follow_up_days = 90", "follow_up_days = 100000", "follow_up_days"),
    ("vein-to-vein-negative", "vein_to_vein_days = 21", "vein_to_vein_days = -1", "vein_to_vein_days"),
    ("eff-window-zero", "eff_window_days = 60", "eff_window_days = 0", "eff_window_days"),
    ("dlt-window-1e6", "dlt_window_days = 28", "dlt_window_days = 1000000", "dlt_window_days"),
    ("dlt-window-text", "dlt_window_days = 28", 'dlt_window_days = "28"', "dlt_window_days"),
    ("tox-time-list", "follow_up_days = 90", 'follow_up_days = 90\ntox_time = ["weibull"]', "tox_time"),
    ("title-table", 'name = "Bad"', 'name = "Bad"\ntitle = {a = 1}', "title"),
    ("protocol-name-int", 'name = "Bad"', "name = 7", "name"),
    ("true-tox-text", "true_tox = [0.05, 0.15, 0.35]", 'true_tox = "0.05"', "true_tox"),
    ("true-tox-table", "true_tox = [0.05, 0.15, 0.35]", "true_tox = {a = 1}", "true_tox"),
    ("true-tox-nan", "true_tox = [0.05, 0.15, 0.35]", "true_tox = [0.05, nan, 0.35]", "true_tox[1]"),
    ("true-tox-above-1", "true_tox = [0.05, 0.15, 0.35]", "true_tox = [0.05, 0.15, 1.35]", "true_tox[2]"),
    ("description-list", 'name = "mid"', 'name = "mid"\ndescription = ["x"]', "description"),
    ("deescalation-text", 'name = "3+3"\ntype = "3+3"', 'name = "3+3"\ntype = "3+3"\ndeescalation = "no"',
     "deescalation"),
    ("crm-grid-points-huge", "skeleton = [0.14, 0.25, 0.38]", "skeleton = [0.14, 0.25, 0.38]\ngrid_points = 10000000",
     "grid_points"),
    ("crm-skeleton-text", "skeleton = [0.14, 0.25, 0.38]", 'skeleton = ["a", 0.25, 0.38]', "skeleton[0]"),
    ("boin-cutoff-list", 'type = "BOIN"\n', 'type = "BOIN"\ncutoff_eli = [0.95]\n', "cutoff_eli"),
    ("nested-arrays", "[run]", "deep = " + "[" * 5000 + "]" * 5000 + "\n[run]", "nested"),
    ("nested-tables", "[run]", "deep = " + "{a = " * 30 + "1" + "}" * 30 + "\n[run]", "nested"),
    ("long-text", 'name = "Bad"', 'name = "Bad"\nsource = "' + "x" * 20001 + '"', "source"),
    ("long-list", "seed = 1", "seed = 1\n[obd2]\nx = [" + "0," * 10001 + "]", "obd2"),
    ("unknown-top-table", "[run]", "[runs]\nx = 1\n[run]", "runs"),
    ("unknown-calendar-key", "accrual_rate = 1.0", "accrual_rate = 1.0\naccrual_rates = 2", "accrual_rates"),
    ("tite-without-calendar", 'name = "3+3"\ntype = "3+3"', 'name = "3+3"\ntype = "TITE-BOIN"', "[calendar]"),
    ("grid-huge-range", "[run]", '[[grid]]\nname = "g"\ndesign = "BOIN"\nparams = { cutoff_eli = { start = 0, stop = 1, '
     'step = 1e-9 } }\n[run]', "params.cutoff_eli"),
    ("grid-huge-sample-size", "[run]", '[[grid]]\nname = "g"\ndesign = "BOIN"\nsample_size = [18, 1000000]\n[run]',
     "sample_size[1]"),
    ("grid-n-trials-huge", "[run]", '[[grid]]\nname = "g"\ndesign = "BOIN"\nsample_size = [18]\n'
     "n_trials = 1000000000000\n[run]", "n_trials"),
    ("obd-design-without-true-eff", "true_eff = [0.2, 0.4, 0.5]\n", "", "needs true_eff"),
    ("grid-name-list", "[run]", '[[grid]]\nname = ["g"]\ndesign = "BOIN"\nsample_size = [18]\n[run]', "name"),
]


def _no_traceback(r):
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.output


@pytest.fixture
def base(tmp_path):
    return tmp_path


def _drop_calendar(text: str) -> str:
    return re.sub(r"\[calendar\][^\[]*", "", text).replace("eff_window_days = 60\n", "")


@pytest.mark.parametrize("case,old,new,key", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_file(tmp_path, case, old, new, key):
    assert old in BASE, case
    text = BASE.replace(old, new, 1)
    if case == "tite-without-calendar":
        text = _drop_calendar(text)
    f = tmp_path / "bad.toml"
    f.write_text(text)
    before = sorted(os.listdir(tmp_path))
    for args in (["check", f], ["simulate", f, "-n", 10, "--out", tmp_path / "out"]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 2, (case, r.output, r.exception)
        assert r.stderr.startswith("error: ") and key in r.stderr, (case, r.stderr)
        assert "Traceback" not in r.output
        assert len(r.stderr) < 2000                       # a huge value is shown short
        assert sorted(os.listdir(tmp_path)) == before     # no file written, no folder created
    with pytest.raises(doseesc.DoseescError):
        doseesc.load_protocol(f)


def test_base_file_is_good(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(BASE)
    r = CliRunner().invoke(main, ["simulate", str(f), "-n", "10", "--no-exact"])
    assert r.exit_code == 0, r.output


def _good(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(BASE)
    return f


#: (case, arguments after the file, what the message must name)
CLI_CASES = [
    ("n-trials-1e12", ["simulate", "{f}", "-n", "1000000000000"], "--n-trials"),
    ("n-trials-1", ["simulate", "{f}", "-n", "1"], "--n-trials"),
    ("report-n-trials-1e12", ["report", "{f}", "-n", "1000000000000", "-o", "{t}/rep"], "--n-trials"),
    ("seed-2^129", ["simulate", "{f}", "--seed", str(2 ** 129)], "--seed"),
    ("out-parent-missing", ["simulate", "{f}", "-n", "10", "--out", "{t}/no/such/out"], "--out"),
    ("out-is-a-file", ["simulate", "{f}", "-n", "10", "--out", "{f}"], "--out"),
    ("exact-out-parent-missing", ["exact", "{f}", "-d", "3+3", "--out", "{t}/no/such/out"], "--out"),
    ("paths-out-parent-missing", ["paths", "{f}", "-d", "3+3", "-k", "1", "--out", "{t}/no/such"], "--out"),
    ("paths-plot-parent-missing", ["paths", "{f}", "-d", "3+3", "-k", "1", "--plot", "{t}/no/x.png"], "--plot"),
    ("table-plot-parent-missing", ["table", "{f}", "-d", "BOIN", "--plot", "{t}/no/x.png"], "--plot"),
    ("table-plot-is-folder", ["table", "{f}", "-d", "BOIN", "--plot", "{t}"], "--plot"),
    ("report-out-parent-missing", ["report", "{f}", "-n", "10", "-o", "{t}/no/such/rep"], "--out"),
    ("grid-out-parent-missing", ["grid", "{f}", "--out", "{t}/no/such/g"], "[[grid]]"),
    ("unknown-design", ["simulate", "{f}", "-n", "10", "-d", "NOPE", "--out", "{t}/o"], "NOPE"),
    ("recommend-fullwidth-digit", ["recommend", "{f}", "１NNN", "-d", "BOIN"], "digits 0-9"),
    ("recommend-arabic-digit", ["recommend", "{f}", "١NNN", "-d", "BOIN"], "digits 0-9"),
    ("recommend-5000-digits", ["recommend", "{f}", "1" * 5000 + "NNN", "-d", "BOIN"], "tier number"),
    ("recommend-minus-one", ["recommend", "{f}", "-1NNN", "-d", "BOIN"], "numbered from 1"),
    ("recommend-tier-zero", ["recommend", "{f}", "0NNN", "-d", "BOIN"], "numbered from 1"),
    ("recommend-tier-4", ["recommend", "{f}", "4NNN", "-d", "BOIN"], "tier 4"),
    ("recommend-letter", ["recommend", "{f}", "1NXN", "-d", "BOIN"], "'X'"),
    ("recommend-follow-up-inf", ["recommend", "{f}", "1NNN", "-d", "BOIN", "--follow-up", "inf,28,28"],
     "--follow-up"),
    ("recommend-follow-up-nan", ["recommend", "{f}", "1NNN", "-d", "BOIN", "--follow-up", "nan,28,28"],
     "--follow-up"),
    ("recommend-follow-up-negative", ["recommend", "{f}", "1NNN", "-d", "BOIN", "--follow-up", "-3,28,28"],
     "--follow-up"),
    ("recommend-window-inf", ["recommend", "{f}", "1NNN", "-d", "BOIN", "--follow-up", "28,28,28", "--window", "inf"],
     "--window"),
    ("check-dev-zero", ["check", "/dev/zero"], "/dev/zero"),
    ("check-folder", ["check", "{t}"], "directory"),
    ("check-missing", ["check", "{t}/nope.toml"], "no such file"),
]


@pytest.mark.parametrize("case,args,key", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(tmp_path, case, args, key):
    if case == "check-dev-zero" and not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    f = _good(tmp_path)
    before = sorted(os.listdir(tmp_path))
    argv = [a.replace("{f}", str(f)).replace("{t}", str(tmp_path)) for a in args]
    r = CliRunner().invoke(main, argv)
    assert r.exit_code == 2, (case, r.output, r.exception)
    assert key in r.output, (case, r.output)
    assert "Traceback" not in r.output
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "mkfifo"), reason="FIFOs")
def test_check_fifo_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    r = CliRunner().invoke(main, ["check", str(fifo)])   # would block forever if it opened the pipe
    assert r.exit_code == 2 and "not a regular file" in r.stderr


def test_file_too_large(tmp_path):
    f = tmp_path / "big.toml"
    f.write_text(BASE + "\n# " + "x" * 1_000_001 + "\n")
    r = CliRunner().invoke(main, ["check", str(f)])
    assert r.exit_code == 2 and "MAX_FILE_BYTES" in r.stderr


def test_check_passes_means_simulate_passes(tmp_path):
    """cohort_size = max_n is the largest accepted; it runs (the check and the run agree)."""
    f = tmp_path / "edge.toml"
    f.write_text(BASE.replace('type = "BOIN"\n', 'type = "BOIN"\ncohort_size = 18\n', 1))
    assert CliRunner().invoke(main, ["check", str(f)]).exit_code == 0
    r = CliRunner().invoke(main, ["simulate", str(f), "-n", "10", "-d", "BOIN", "--no-exact"])
    assert r.exit_code == 0, r.output


# -- spreadsheet-safe CSV and literal names in figures ------------------------------------------------------
def test_formula_names_are_written_safely(tmp_path):
    text = (BASE.replace('name = "3+3"\n', 'name = "=HYPERLINK(1)"\n', 1)
            .replace('name = "mid"', 'name = "@SUM(A1)"', 1).replace('name = "BOIN"\n', 'name = "+BOIN"\n', 1))
    f = tmp_path / "f.toml"
    f.write_text(text)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(f), "-n", "10", "--no-exact", "-d", "=HYPERLINK(1)", "-d", "+BOIN",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("summary.csv", "metrics.csv", "stop_report.csv", "trials.csv"):
        body = [ln for ln in (out / name).read_text().splitlines() if not ln.startswith("#")]
        for line in body:
            for cell in line.split(","):
                cell = cell.strip('"')
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, line)
        assert any("'=HYPERLINK(1)" in ln for ln in body) and any("'+BOIN" in ln for ln in body), name
    # the summary's numbers are still numbers (negative values are not touched: only text cells are)
    r = CliRunner().invoke(main, ["simulate", str(f), "-n", "10", "--no-exact", "-d", "+BOIN", "--format", "csv"])
    assert "'+BOIN" in r.stdout


def test_reused_out_loses_earlier_own_files(tmp_path):
    f = _good(tmp_path)
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["simulate", str(f), "-n", "10", "-d", "3+3", "--no-exact", "--out",
                                     str(out)]).exit_code == 0
    (out / "mine.txt").write_text("keep")
    assert (out / "trials.csv").exists()
    r = CliRunner().invoke(main, ["exact", str(f), "-d", "3+3", "-s", "mid", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert not (out / "trials.csv").exists()          # simulate's file is gone beside exact's
    assert (out / "summary.csv").exists() and (out / "mine.txt").read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".doseesc-")]


def test_dollar_names_are_drawn_literally(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from doseesc.report.plots import plot_selection

    text = BASE.replace('name = "BOIN"\n', 'name = "$x^{"\n', 1).replace('name = "mid"', 'name = "a$b$"', 1)
    f = tmp_path / "d.toml"
    f.write_text(text)
    proto = doseesc.load_protocol(f)
    study = doseesc.study.run_protocol(proto, designs=["$x^{", "3+3"], scenarios=["a$b$"], n_trials=20, seed=1)
    ax = plot_selection({study.name_of(r): r for r in study.results})
    ax.figure.savefig(tmp_path / "sel.png")            # mathtext would raise on '$x^{'
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert r"\$x^{" in labels
    r = CliRunner().invoke(main, ["table", str(f), "-d", "$x^{", "--plot", str(tmp_path / "t.png")])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("build, key", [
    (lambda: doseesc.BOIN(0.3, 3, max_n=10 ** 6), "max_n = 1000000 is above the limit of 1,000"),
    (lambda: doseesc.BOIN(0.3, 3, max_n=30, cohort_size=101), "cohort_size = 101 is above the limit of 100"),
    (lambda: doseesc.ThreePlusThree(21), "n_tiers = 21 is above the limit of 20"),
    (lambda: doseesc.BOIN(10 ** 400, 3, max_n=18), "target = "),
    (lambda: doseesc.CRM([0.1, 0.2, 10 ** 400], 0.25, max_n=18), "skeleton = "),
    (lambda: doseesc.simulate(doseesc.BOIN(0.3, 3, max_n=18), doseesc.Scenario([0.1, 0.2, 0.3]), 10 ** 8),
     "n_trials = 100000000 is above the limit of 10,000,000"),
])
def test_python_constructors_enforce_the_same_limits(build, key):
    """The API refuses what the file boundary refuses, with a DoseescError naming the key (no OverflowError,
    no memory error)."""
    with pytest.raises(doseesc.DoseescError) as err:
        build()
    assert key in str(err.value)
