"""The command line, through click's CliRunner."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main

from test_validation import GOOD


@pytest.fixture
def proto(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(GOOD + '\n[[design]]\nname = "3+3 de-esc"\ntype = "3+3"\ndeescalation = true\n')
    return f


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_wide(*args):
    """As :func:`run` on a terminal wide enough that no line is wrapped (the per-design blocks' long lines whole)."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "1000"})


def test_simulate_table(proto):
    r = run_wide("simulate", proto, "--n-trials", 400, "--seed", 3, "--no-exact", "--detail", "full")
    assert r.exit_code == 0, r.output
    assert "3+3 under scenario 'mid' [Monte Carlo, 400 trials" in r.stdout
    assert "3+3 (with de-escalation)" in r.stdout
    assert "3e5 cells/kg" in r.stdout and "No dose" in r.stdout
    assert "seed entropy 3" in r.stdout
    assert "[exact]" not in r.stdout


def test_simulate_prefers_exact_values_and_says_so(proto):
    """By default each result the exact engine can compute is shown exactly (no MCSE), marked [exact], with the
    exact engine's numbers; the paired comparison marks its method."""
    r = run_wide("simulate", proto, "--n-trials", 400, "--seed", 3, "--detail", "full")
    assert r.exit_code == 0, r.output
    assert "3+3 under scenario 'mid' [exact]" in r.stdout and "[Monte Carlo" not in r.stdout
    p = doseesc.load_protocol(proto)
    ex = doseesc.exact(p.designs["3+3"], p.scenarios["mid"], ladder=p.tiers)
    assert f"P(select true MTD) {100 * ex.p_correct:.1f}%;" in r.stdout
    assert "exact" in r.stdout.split("Paired comparison")[1]


def test_simulate_matches_library_and_is_reproducible(proto):
    r1 = run("simulate", proto, "-d", "3+3", "--format", "json", "--seed", 5)
    r2 = run("simulate", proto, "-d", "3+3", "--format", "json", "--seed", 5)
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    for x, y in zip(a["results"], b["results"]):
        assert x["summary"] == y["summary"] and x["metrics"] == y["metrics"]
    data = json.loads(r1.stdout)
    p = doseesc.load_protocol(proto)
    lib = doseesc.simulate(p.designs["3+3"], p.scenarios["mid"], 500, rng=5, ladder=p.tiers)
    got = [row["p_select"] for row in data["results"][0]["summary"]]
    assert got == pytest.approx(list(lib.p_select), abs=1e-15)
    assert data["provenance"]["file_sha256"] == p.sha256
    assert data["results"][0]["provenance"]["seed"]["entropy"] == 5


def test_exact_csv_has_provenance_and_rows(proto):
    r = run("exact", proto, "--format", "csv", "-d", "3+3")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("# doseesc_version")
    from io import StringIO
    df = pd.read_csv(StringIO(r.stdout), comment="#")
    assert list(df["dose"]) == ["No dose", "1e5 cells/kg", "3e5 cells/kg", "6e5 cells/kg"]
    assert df["p_select"].sum() == pytest.approx(1, abs=1e-12)
    assert (df["p_select_mcse"] == 0).all()


def test_out_folder(proto, tmp_path):
    out = tmp_path / "res"
    r = run("simulate", proto, "-n", 300, "--seed", 1, "--out", out)
    assert r.exit_code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["metrics.csv", "provenance.json", "results.json", "stop_report.csv", "summary.csv",
                     "trials.csv"]
    trials = pd.read_csv(out / "trials.csv", comment="#")
    assert len(trials) == 2 * 300 and set(trials["design"]) == {"3+3", "3+3 de-esc"}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"]["entropy"] == 1 and prov["n_trials"] == 300
    assert "doseesc simulate" in prov["command"]


def test_check(proto):
    r = run("check", proto)
    assert r.exit_code == 0
    assert "OK" in r.stdout and "tolerance ±20%" in r.stdout and "true MTD 3e5 cells/kg" in r.stdout


def test_recommend(proto):
    r = run("recommend", proto, "--design", "3+3", "1NNN 2NTN")
    assert r.exit_code == 0
    assert "treat the next cohort at 3e5 cells/kg" in r.stdout
    r = run("recommend", proto, "--design", "3+3 de-esc", "1NNN 2NTN 2NNT", "--format", "json")
    data = json.loads(r.stdout)
    assert data["next_tier"] == 1 and data["next_dose"] == "1e5 cells/kg" and not data["stop"]


def test_python_dash_m(proto):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "doseesc", "check", str(proto)], capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout


@pytest.mark.parametrize("mutate,args,match", [
    (("0.35]", "1.35]"), ("simulate",), r"true_tox\[2\] = 1.35 is not a probability"),
    (("doses = [1e5, 3e5, 6e5]", "doses = [1e5, 6e5, 3e5]"), ("exact",), r"\[tiers\] doses\[2\]"),
    (('type = "3+3"', 'type = "3+4"'), ("check",), r"type = '3\+4' is not a known design"),
    (("[tiers]", "[tiers"), ("check",), "not valid TOML"),
    (None, ("simulate", "--design", "BOIN"), "no design named 'BOIN'"),
    (None, ("simulate", "--scenario", "nope"), "no scenario named 'nope'"),
    (None, ("recommend", "--design", "3+3", "1NNN 2NQN"), "unknown outcome letter 'Q'"),
    (None, ("recommend", "--design", "3+3", "5NNN"), "tier 5 does not exist"),
])
def test_bad_input_one_line_exit_2_no_output(tmp_path, mutate, args, match):
    text = GOOD if mutate is None else GOOD.replace(*mutate, 1)
    f = tmp_path / "bad.toml"
    f.write_text(text)
    out = tmp_path / "out"
    extra = ["--out", out] if args[0] in ("simulate", "exact") else []
    r = run(args[0], f, *args[1:], *extra)
    assert r.exit_code == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in r.output
    assert not out.exists()
    if mutate is not None:
        assert str(f) in lines[0]


def test_missing_file_and_unknown_option(tmp_path):
    r = run("simulate", tmp_path / "none.toml")
    assert r.exit_code == 2 and "none.toml: no such file" in r.stderr
    r = run("simulate", tmp_path / "none.toml", "--bogus")
    assert r.exit_code == 2 and "No such option" in r.stderr


def test_debug_shows_traceback(tmp_path):
    r = CliRunner().invoke(main, ["--debug", "check", str(tmp_path / "none.toml")])
    assert r.exit_code != 0 and isinstance(r.exception, doseesc.DoseescError)


def test_progress_line(proto, monkeypatch):
    import doseesc.cli as cli
    t = iter(range(0, 10 ** 6, 5))
    monkeypatch.setattr(cli.time, "perf_counter", lambda: float(next(t)))
    r = run("simulate", proto, "-n", 200, "--progress")
    assert "simulating: " in r.stderr and "trials (100%)" in r.stderr


def test_unwritable_outputs_are_one_line_errors(tmp_path):
    from conftest import SCENARIO_FILES
    f = [p for p in SCENARIO_FILES if p.stem == "ecar01"][0]
    bad = tmp_path / "nope" / "x"
    for args in (["paths", f, "-d", "BOIN", "-k", "2", "--out", bad], ["paths", f, "-d", "BOIN", "-k", "2", "--plot",
                 str(bad) + ".png"], ["table", f, "-d", "BOIN", "--plot", str(bad) + ".png"],
                 ["table", f, "-d", "BOIN", "--max-n", "100000"]):
        r = run(*args)
        assert r.exit_code == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


MIXED = """
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
max_n = 24
[[design]]
name = "CRM"
type = "CRM"
skeleton = [0.12, 0.25, 0.38]
max_n = 24
[[design]]
name = "BOIN12"
type = "BOIN12"
max_n = 24
[[scenario]]
name = "mid"
true_tox = [0.05, 0.1, 0.2]
true_eff = [0.3, 0.5, 0.52]
[run]
n_trials = 200
seed = 1
"""


@pytest.fixture
def mixed(tmp_path):
    f = tmp_path / "mixed.toml"
    f.write_text(MIXED)
    return f


def _rows(text: str, header: str) -> dict:
    """The comparison's rows after the line starting with ``header``: design name -> rest of the line."""
    lines = text.splitlines()
    i = next(j for j, line in enumerate(lines) if line.strip().startswith(header))
    out = {}
    for line in lines[i + 1:]:
        if not line.startswith("    ") or line.startswith("     "):
            break
        name, _, rest = line.strip().partition("  ")
        out[name.strip()] = rest.strip()
    return out


def test_simulate_compares_each_design_on_its_question(mixed):
    r = run_wide("simulate", mixed, "-n", 200, "--seed", 1, "--no-exact", "--detail", "full")
    assert r.exit_code == 0, r.output
    from doseesc.study import run_protocol
    study = run_protocol(doseesc.load_protocol(mixed), n_trials=200, seed=1)
    res = {study.name_of(x): x for x in study.results}
    rows = _rows(r.stdout, "design   Q")
    # MTD designs on P(true MTD), OBD designs on P(true OBD); BOIN12 is the OBD reference (no difference)
    assert rows["BOIN12"].split()[:2] == ["OBD", f"{100 * res['BOIN12'].p_select_obd:.1f}%"]
    assert rows["BOIN"].split()[:2] == ["MTD", f"{100 * res['BOIN'].p_correct:.1f}%"]
    assert rows["3+3 [a]"].split()[:2] == ["MTD", f"{100 * res['3+3'].p_correct:.1f}%"]
    header = next(line for line in r.stdout.splitlines() if line.strip().startswith("design   Q"))
    assert "P(correct)" in header and "P(true OBD)" not in header and "P(true MTD)" not in header
    # conduct differences next to the numbers: 3+3 at most 18 patients (3 tiers x 6), CRM without a safety stop
    assert "[a] 3+3: max N 18 (others 24)" in r.stdout and "[b] CRM: no safety stop" in r.stdout
    # the near-tie warning once, under its scenario in the comparison
    proto = doseesc.load_protocol(mixed)
    tie = doseesc.OBDDefinition().near_tie_text(proto.scenarios["mid"], proto.tiers.tier_labels)
    assert tie and r.stdout.count(tie) == 1
    both = run_wide("simulate", mixed, "-n", 200, "--seed", 1, "--both-questions", "--no-exact", "--detail", "full")
    header = next(line for line in both.stdout.splitlines() if line.strip().startswith("design   Q"))
    assert "P(true MTD)" in header and "P(true OBD)" in header and "P(correct)" in header


def test_single_design_run_warns_near_ties_and_check_too(mixed):
    proto = doseesc.load_protocol(mixed)
    tie = doseesc.OBDDefinition().near_tie_text(proto.scenarios["mid"], proto.tiers.tier_labels)
    r = run_wide("simulate", mixed, "-n", 50, "-d", "BOIN12")
    assert r.exit_code == 0 and f"warning: {tie}" in r.stdout and "Paired" not in r.stdout
    r = run_wide("simulate", mixed, "-n", 50, "-d", "BOIN12", "--detail", "full")
    assert r.exit_code == 0 and f"warning: {tie}" in r.stdout and "Paired" not in r.stdout
    r = run_wide("check", mixed)
    assert r.exit_code == 0 and f"warning: {tie}" in r.stdout


def test_no_near_tie_no_warning(proto):
    assert "warning:" not in run("check", proto).stdout


def test_simulate_averages_over_scenarios(tmp_path):
    """With several scenarios, simulate ends with each design averaged over them (worst scenario in brackets),
    the numbers of Study.averages() on the same seed (exact values where the exact engine applies)."""
    f = tmp_path / "two.toml"
    f.write_text(GOOD + '\n[[scenario]]\nname = "low"\ntrue_tox = [0.3, 0.4, 0.5]\n'
                 '\n[[design]]\nname = "BOIN"\ntype = "BOIN"\nmax_n = 18\n')
    r = run_wide("simulate", f, "-n", 300, "--seed", 4, "--detail", "full")
    assert r.exit_code == 0, r.output
    text = r.stdout.split("Averaged over the 2 scenarios")[1]
    from doseesc.study import PREFER_EXACT_STATES, run_protocol
    study = run_protocol(doseesc.load_protocol(f), method="auto", n_trials=300, seed=4,
                         max_states=PREFER_EXACT_STATES)
    av = study.averages().set_index(["design", "metric"])
    row = next(line for line in text.splitlines() if line.strip().startswith("BOIN "))
    est, worst = av.loc[("BOIN", "p_above_mtd"), "estimate"], av.loc[("BOIN", "p_above_mtd"), "worst"]
    assert f"{100 * est:.1f}% ({100 * worst:.1f}%)" in row
    est = av.loc[("BOIN", "p_correct"), "estimate"]
    assert row.split()[1] == f"{100 * est:.1f}%"


def test_simulate_workers_and_precision(proto, tmp_path):
    """--workers 2 gives the numbers of one process; --precision stops at a multiple of 1,024 trials with every
    P(select) MCSE at or below the target, as simulate(precision=) does."""
    one = run("simulate", proto, "-n", 600, "--seed", 2, "--format", "json", "--no-exact")
    two = run("simulate", proto, "-n", 600, "--seed", 2, "--format", "json", "--no-exact", "--workers", 2)
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert [x["summary"] for x in a["results"]] == [x["summary"] for x in b["results"]]
    r = run("simulate", proto, "-d", "3+3", "--seed", 2, "--format", "json", "--no-exact", "--precision", 0.02)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"][0]
    p = doseesc.load_protocol(proto)
    lib = doseesc.simulate(p.designs["3+3"], p.scenarios["mid"], None, rng=2, ladder=p.tiers, precision=0.02)
    got = [row["p_select"] for row in res["summary"]]
    assert got == pytest.approx(list(lib.p_select), abs=1e-15)
    assert lib.n_trials % 1024 == 0 and max(row["p_select_mcse"] for row in res["summary"]) <= 0.02
