"""The command line's compact default output (issue 23 item 4): the cross-scenario table and one compact table
per scenario, laid out to the terminal width; --detail full; progress; exact with skips; check; names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import doseesc
from doseesc import cli
from doseesc.cli import main
from doseesc.compare import question_metric
from doseesc.study import run_protocol

ROOT = Path(__file__).resolve().parents[1]

TWO = """
[protocol]
name = "T"
target = 0.25
[tiers]
doses = [1e5, 3e5, 6e5]
unit = "cells/kg"
[[design]]
name = "3+3"
type = "3+3"
[[design]]
name = "BOIN"
type = "BOIN"
max_n = 18
[[design]]
name = "BOIN12"
type = "BOIN12"
max_n = 18
cohort_size = 1
[[scenario]]
name = "mid"
true_tox = [0.05, 0.15, 0.35]
true_eff = [0.2, 0.5, 0.55]
[[scenario]]
name = "Toxic"
true_tox = [0.3, 0.45, 0.6]
true_eff = [0.2, 0.5, 0.55]
[run]
n_trials = 300
seed = 7
"""


@pytest.fixture
def two(tmp_path):
    f = tmp_path / "two.toml"
    f.write_text(TWO)
    return f


def run(*args, width: int | None = None):
    env = None if width is None else {"COLUMNS": str(width)}
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


BUNDLED = sorted(p.name for p in (ROOT / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_file_prints_at_most_80_lines_at_100_columns(name):
    """Acceptance (issue 23): each bundled file (the largest, DCAR-SLE, has 14 designs x 8 scenarios) prints at
    most 80 lines by default at 100 columns, none wider, with every design a row of the cross-scenario table and
    every scenario in a per-scenario table; the per-design blocks are not in it."""
    r = run("simulate", ROOT / "scenarios" / name, "-n", 30, "--no-progress", width=100)
    assert r.exit_code == 0, r.output
    lines = r.stdout.rstrip("\n").split("\n")
    assert len(lines) <= 80, len(lines)
    assert max(len(x) for x in lines) <= 100
    assert "  per trial: " not in r.stdout and "under scenario" not in r.stdout
    assert "Paired comparison" not in r.stdout
    proto = doseesc.load_protocol(ROOT / "scenarios" / name)
    for d in proto.designs:        # every design is a row of the cross-scenario table and of the scenarios' tables
        assert sum(bool(re.match(rf"  {re.escape(d)}( \[[a-z]\])?  ", x)) for x in lines) >= 2, d
    titles = " ".join(x for x in lines if x.startswith("      ") and x.strip().startswith("S"))
    assert titles.split()[::2] == [f"S{i + 1}" for i in range(len(proto.scenarios))]
    assert titles.split()[1::2] == list(proto.scenarios)


def _row(text: str, start: str, name: str) -> list[str]:
    """The cells of design ``name`` in the first table after the line starting with ``start``."""
    lines = text.split("\n")
    i = next(j for j, x in enumerate(lines) if x.startswith(start))
    line = next(x for x in lines[i:] if x.startswith(f"  {name}  "))
    return line[len(name) + 2:].split()


def test_compact_numbers_are_the_studys(two):
    """Each cell of the compact tables is the study's number, rounded as shown. Cross-scenario table: P(correct) on
    the design's own question (P(true MTD) for BOIN, P(true OBD) for BOIN12) per scenario, their mean and worst,
    the truths above the designs and the largest MCSE in its footnote. Per-scenario tables (several scenarios):
    P(select above the MTD), mean N, mean DLTs, no P(correct) (it is the table above)."""
    r = run("simulate", two, "--no-exact", width=120)
    assert r.exit_code == 0, r.output
    study = run_protocol(doseesc.load_protocol(two), n_trials=300, seed=7)
    res = {(x.scenario.name, study.name_of(x)): x for x in study.results}
    boin, b12, tox = res[("mid", "BOIN")], res[("mid", "BOIN12")], res[("Toxic", "BOIN")]
    cells = _row(r.stdout, "Per scenario", "BOIN")        # S1 mid then S2 Toxic, side by side at 120 columns
    assert cells == [f"{100 * boin.metric('p_above_mtd')[0]:.1f}", f"{boin.expected_n:.1f}",
                     f"{boin.metric('mean_dlt')[0]:.1f}", f"{100 * tox.metric('p_above_mtd')[0]:.1f}",
                     f"{tox.expected_n:.1f}", f"{tox.metric('mean_dlt')[0]:.1f}"]
    head = next(x for x in r.stdout.split("\n") if x.startswith("  design   >MTD"))
    assert head.split() == ["design", ">MTD", "N", "DLTs", ">MTD", "N", "DLTs"]     # no P(correct) column
    cross = _row(r.stdout, "P(correct)", "BOIN")
    a, b = boin.p_correct, tox.p_correct
    # cells: Q, S1, S2, mean, worst; e.g. 0.62 and 0.40 -> mean 51.0, worst 40.0
    assert cross == ["MTD", f"{100 * a:.1f}", f"{100 * b:.1f}", f"{100 * (a + b) / 2:.1f}", f"{100 * min(a, b):.1f}"]
    o1, o2 = b12.metric("p_select_obd")[0], res[("Toxic", "BOIN12")].metric("p_select_obd")[0]
    assert _row(r.stdout, "P(correct)", "BOIN12") == ["OBD", f"{100 * o1:.1f}", f"{100 * o2:.1f}",
                                                     f"{100 * (o1 + o2) / 2:.1f}", f"{100 * min(o1, o2):.1f}"]
    # target 0.25: mid has P(DLT) 0.15 at 3e5 and 0.35 at 6e5, so its true MTD is 3e5; Toxic's lowest tier
    # already has 0.3 > 0.25, so none
    assert _row(r.stdout, "P(correct)", "true MTD") == ["3e5", "none"]
    assert (boin.true_mtd, tox.true_mtd) == (1, -1)
    ses = [x.metric(question_metric(x))[1] for x in study.results]
    assert f"; Monte Carlo MCSE at most {100 * max(ses):.1f} points." in r.stdout and "±" not in r.stdout
    assert "seed 7" in r.stdout.split("\n")[1]


def test_compact_footnote_names_the_exact_designs(two):
    """Where exact values stand in the cross-scenario table (3+3 and BOIN here; BOIN12 in cohorts of 1 passes the
    100,000 live states the command line allows exact before it simulates, so it is simulated), the footnote
    names those designs and gives the largest MCSE of the others (BOIN12's); one scenario alone keeps P(correct)
    ± MCSE in its per-scenario table (exact: no ±), as there is no cross-scenario table then."""
    r = run("simulate", two, "-n", 300, width=1000)
    study = run_protocol(doseesc.load_protocol(two), n_trials=300, seed=7, method="auto")
    mc = [x for x in study.results if study.name_of(x) == "BOIN12"]
    se = max(x.metric("p_select_obd")[1] for x in mc)
    assert f"; exact (no MCSE): 3+3, BOIN; the others' MCSE at most {100 * se:.1f} points." in r.stdout
    one = run("simulate", two, "-n", 300, "-s", "mid", width=120).stdout
    assert "P(correct) %: each design" not in one and "Per scenario (true MTD and OBD, cells/kg)" in one
    b12 = next(x for x in mc if x.scenario.name == "mid")
    est, se = b12.metric("p_select_obd")
    assert _row(one, "Per scenario", "BOIN12")[0] == f"{100 * est:.1f}±{100 * se:.1f}"
    ex = study.exact_of(next(x for x in study.results if x.scenario.name == "mid" and study.name_of(x) == "BOIN"))
    assert ex.is_exact and _row(one, "Per scenario", "BOIN")[0] == f"{100 * ex.p_correct:.1f}"


def test_detail_full_is_todays_output_and_files_do_not_change(two, tmp_path):
    """--detail full adds the per-design blocks and the paired comparison; JSON, CSV and the --out files are the
    same whatever --detail says."""
    short = run("simulate", two, "-n", 200, width=1000)
    full = run("simulate", two, "-n", 200, "--detail", "full", width=1000)
    assert "BOIN under scenario 'mid' [exact]" in full.stdout and "Paired comparison" in full.stdout
    assert "Averaged over the 2 scenarios" in full.stdout and "seed entropy 7" in full.stdout
    assert "under scenario" not in short.stdout and len(short.stdout.split("\n")) < len(full.stdout.split("\n"))
    for fmt in ("json", "csv"):
        a = run("simulate", two, "-n", 100, "--format", fmt, "--no-exact").stdout
        b = run("simulate", two, "-n", 100, "--format", fmt, "--no-exact", "--detail", "full").stdout
        assert _timeless(a) == _timeless(b) and len(a) > 1000
    run("simulate", two, "-n", 100, "--no-exact", "--out", tmp_path / "a")
    run("simulate", two, "-n", 100, "--no-exact", "--out", tmp_path / "b", "--detail", "full")
    for name in ("summary.csv", "metrics.csv", "results.json"):
        assert _timeless((tmp_path / "a" / name).read_text()) == _timeless((tmp_path / "b" / name).read_text())


def _timeless(text: str) -> str:
    """``text`` without the run's clock times (the provenance's "created" and "seconds")."""
    return re.sub(r'"(created|seconds)": [^,}\n]*', "", text)


def test_panels_fit_the_width_and_wrap_long_names():
    groups = [(f"S{i}", [("correct", ["12.5±1.0", "100.0"]), ("N", ["9.1", "18.0"])]) for i in range(1, 4)]
    labels = [["3+3"], ["a design with a rather long name"]]
    # each group is 14 wide ("correct" 8 + 2 + "N" 4); the label 32; indent 2; separators 3
    wide = cli._panels(labels, ["design"], groups, width=2 + 32 + 3 * 17)
    assert len(wide) == 4 and wide[0].split() == ["S1", "S2", "S3"]   # one panel: title, head, two rows
    narrow = cli._panels(labels, ["design"], groups, width=60)
    assert all(len(x) <= 60 for x in narrow)
    assert [x.split()[0] for x in narrow if x.lstrip().startswith("S")] == ["S1", "S3"]
    # 2 + 32 + 2 x 17 = 68 > 60: the name is wrapped (two lines) so that S1 and S2 stand side by side
    assert "  a design with a rather" in "\n".join(narrow) and any(x.strip() == "long name" for x in narrow)
    row = next(x for x in narrow if x.startswith("  3+3"))
    assert row.split()[1:] == ["12.5±1.0", "9.1", "12.5±1.0", "9.1"]
    # gap " ": each group is 13 wide ("correct" 8 + 1 + "N" 4), so 2 + 32 + 3 x 16 = 82 columns hold all three
    tight = cli._panels(labels, ["design"], groups, width=82, gap=" ")
    assert len(tight) == 4 and max(len(x) for x in tight) == 82
    assert tight[1].endswith("  design" + " " * 26 + ("    correct" + "    N") * 3)   # 8 wide, gap 1, 4 wide


def test_wrap_keeps_clauses_and_table_rows():
    line = "  per trial: " + "; ".join(f"metric number {i} 1.23 (±0.04)" for i in range(12))
    row = "  3+3        86.5   0.0   " + "10.4   " * 20
    out = cli._wrap(line + "\n" + row, 60).split("\n")
    assert out[-1] == row                                  # a table row is never wrapped
    body = out[:-1]
    assert len(body) > 1 and all(len(x) <= 60 for x in body)
    assert all(x.startswith("    ") for x in body[1:])       # continuation two spaces deeper
    assert " ".join(x.strip() for x in body) == line.strip()
    assert all(x.rstrip().endswith(";") for x in body[:-1])  # broken after whole clauses


def test_progress_names_design_and_scenario_and_time_left(two, monkeypatch):
    t = iter(range(0, 10 ** 6, 5))
    monkeypatch.setattr(cli.time, "perf_counter", lambda: float(next(t)))
    r = run("simulate", two, "-n", 300, "--progress", "--no-exact")
    assert r.exit_code == 0
    err = r.stderr
    assert "simulating: " in err and "BOIN12 under mid" in err and "BOIN under Toxic" in err
    assert re.search(r"about \d+ (s|min)", err) and "1,800 / 1,800 trials (100%)" in err
    assert "now the exact runs" not in err       # --no-exact: nothing follows the simulations
    r = run("simulate", two, "-n", 100, "--progress", "-d", "3+3")
    assert "200 / 200 trials (100%); now the exact runs where the exact engine applies" in r.stderr
    r = run("exact", two, "--progress")
    assert r.exit_code == 0 and "exact: BOIN under Toxic (5 of 6)" in r.stderr


def test_exact_skips_what_it_cannot_evaluate(two):
    """--max-states 1000: 3+3 (at most 20 live states here) and BOIN (at most 500) fit, BOIN12 (joint outcomes, more
    than 100,000) does not: BOIN12 is skipped with a note, the others are exact and equal run_protocol's results."""
    r = run("exact", two, "--max-states", 1000, "--format", "json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert [x["design_name"] for x in got["results"]] == ["3+3", "BOIN", "3+3", "BOIN"]
    lib = run_protocol(doseesc.load_protocol(two), method="exact", designs=["3+3", "BOIN"])
    assert [x["summary"] for x in got["results"]] == [x["summary"] for x in json.loads(lib.to_json())["results"]]
    text = run("exact", two, "--max-states", 1000, width=1000).stdout
    assert "note: BOIN12: skipped, not evaluated exactly: exact evaluation of BOIN12 needs more than max_states = " \
        "1000" in text
    assert "Exact enumeration" in text and "  3+3  " in text
    r = run("exact", two, "--max-states", 1, "-d", "boin12")
    assert r.exit_code == 2 and "no design could be evaluated exactly" in r.stderr


def test_names_match_case_insensitively_when_unambiguous(two, tmp_path):
    r = run("simulate", two, "-d", "boin", "-s", "TOXIC", "-n", 50, "--format", "json", "--no-exact")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert len(res) == 1 and res[0]["design_name"] == "BOIN" and res[0]["provenance"]["scenario"]["name"] == "Toxic"
    assert run("table", two, "-d", "boin").exit_code == 0
    assert "probability" in run("paths", two, "-d", "Boin", "-k", 1, "-s", "MID").stdout
    f = tmp_path / "amb.toml"
    f.write_text(TWO.replace('[[scenario]]', '[[design]]\nname = "Boin"\ntype = "BOIN"\nmax_n = 12\n\n[[scenario]]', 1))
    r = CliRunner().invoke(main, ["simulate", str(f), "-d", "boin", "-n", "10"])
    assert r.exit_code == 2 and "matches 2 designs when case is ignored ('BOIN', 'Boin')" in r.stderr
    assert run("simulate", f, "-d", "Boin", "-n", 10, "--no-exact").exit_code == 0   # exact name wins
    r = CliRunner().invoke(main, ["simulate", str(two), "-s", "nope"])
    assert r.exit_code == 2 and "no scenario named 'nope' (scenarios: mid, Toxic)" in r.stderr


def test_check_shows_everything_the_file_sets():
    r = run("check", ROOT / "scenarios" / "ecar01.toml", width=1000)
    assert r.exit_code == 0
    out = r.stdout
    proto = doseesc.load_protocol(ROOT / "scenarios" / "ecar01.toml")
    assert f"calendar: {proto.calendar.describe()}" in out
    assert f"actual dose: {proto.dose_model.describe(proto.tiers)}" in out
    assert "OBD definition (none in the file" in out or "OBD definition: " in out
    assert "DLT: Grade >= 3 CRS" in out and "window 28 days" in out and "judged at 90 days" in out
    # all-safe: P(DLT) 0.03, 0.06, 0.1 all <= 0.25, so the true MTD is the top tier, 6e5
    assert re.search(r"all-safe: P\(DLT\) 0.03, 0.06, 0.1; P\(response\) [^\n]*; true MTD 6e5 CAR-T cells/kg; "
                     r"true OBD 6e5 CAR-T cells/kg", out)
    assert "lowest-too-toxic: P(DLT) 0.35, 0.5, 0.65" in out and "true MTD No dose; true OBD none" in out
    assert "  3+3 (max N 18, answers the MTD question)" in out
    assert "answers the OBD question" in out


def test_report_takes_design_and_scenario(two, tmp_path):
    r = run("report", two, "-o", tmp_path / "r", "-n", 20, "--seed", 1, "-d", "boin", "-s", "toxic",
            "--detail", "summary", "--no-progress")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r" / "two-report.html").read_text()
    assert "--design BOIN --scenario Toxic" in html
    assert "BOIN12" not in html and "S2" not in html
    assert "Toxic" in html


def test_sample_size_sentence_names_every_design_at_the_ends():
    """Four designs reach 18.0 patients: all are named, not only the first (issue 23 item 6)."""
    from doseesc.report.summary_text import _sample_size_sentence
    en = {"3+3": 10.24, "BOIN": 18.0, "i3+3": 18.0, "CRM": 17.96, "BOIN12": 17.5}
    res = {k: SimpleNamespace(expected_n=v) for k, v in en.items()}
    # 17.96 prints as 18.0, so CRM is at the top as printed
    assert _sample_size_sentence(res, list(en)) == \
        "Mean sample size ranges from 10.2 patients (3+3) to 18.0 (BOIN, i3+3 and CRM)."
    same = {k: SimpleNamespace(expected_n=18.0) for k in ("A", "B")}
    assert _sample_size_sentence(same, ["A", "B"]) == "Every design treats 18.0 patients on average."


def test_three_plus_three_table_labels_its_stop_column(two):
    """3+3 without de-escalation: two DLTs of 3 or of 6 stop the escalation (MTD = tier below), so the column is
    not called de-escalate on the terminal; CSV keeps the data's column name."""
    out = run("table", two, "-d", "3+3").stdout
    assert "stop: MTD = tier below if >= stop_if_ge" in out and "de-escalate" not in out
    assert "stop_if_ge" in out.split("\n")[2]
    assert "deescalate_if_ge" in run("table", two, "-d", "3+3", "--format", "csv").stdout
    assert "de-escalate if >= deescalate_if_ge" in run("table", two, "-d", "BOIN").stdout


def test_verdict_ranks_ties_as_printed(tmp_path):
    """Every tier safe (P(DLT) at most 0.1 < 0.25): no design can select above the true MTD, so 3+3 and BOIN both
    have 0.0% and the best of them is "as low as any", not "2nd lowest of 2" (issue 23 item 6)."""
    from doseesc.report.committee import verdict_sentences
    f = tmp_path / "safe.toml"
    f.write_text(TWO.replace("true_tox = [0.05, 0.15, 0.35]", "true_tox = [0.02, 0.05, 0.1]")
                 .replace("true_tox = [0.3, 0.45, 0.6]", "true_tox = [0.03, 0.06, 0.1]"))
    study = run_protocol(doseesc.load_protocol(f), method="exact", designs=["3+3", "BOIN"])
    text = verdict_sentences(study)[0]
    assert "above the true MTD in 0.0% of trials on average (as low as any of the 2)" in text, text
