"""The pieces of this session wired into the command line and the committee report: indications (CSV files,
compact table, report section, notes on staggered rows), durations in months, protocol text (command and report
section), the phase 2 stage (table, phase2.csv, report) and backfill cohorts (full output, report)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main
from doseesc.protocol_text import DOCX_MISSING, docx_available
from doseesc.report.committee import build_report, metrics_table
from doseesc.report.document import Heading, Paragraph, Table
from doseesc.report.summary_text import _duration_sentences
from doseesc.study import run_protocol

BASE = """
[protocol]
name = "W"
target = 0.3
[tiers]
doses = [1, 2, 3]
unit = "mg"
[[design]]
name = "3+3"
type = "3+3"
"""

#: Two indications, a pooled and a staggered 3+3; the second indication is more toxic.
IND = BASE + """
[[indication]]
name = "adults"
share = 0.5
[[indication]]
name = "kids"
share = 0.5
[[design]]
name = "3+3 staggered"
type = "3+3"
conduct = { policy = "staggered", first = "adults", offset = 1, opens_after = 2 }
[[scenario]]
name = "s"
true_tox = [0.05, 0.15, 0.30]
[scenario.indication.kids]
true_tox = [0.10, 0.35, 0.55]
[run]
n_trials = 200
seed = 3
"""

PHASE2 = BASE + """
[[design]]
name = "BOIN"
type = "BOIN"
max_n = 12
[[scenario]]
name = "a"
true_tox = [0.05, 0.10, 0.40]
true_eff = [0.2, 0.4, 0.5]
[[scenario]]
name = "b"
true_tox = [0.05, 0.35, 0.50]
true_eff = [0.2, 0.3, 0.5]
[phase2]
design = "Simon"
p0 = 0.2
p1 = 0.4
alpha = 0.1
beta = 0.2
[run]
n_trials = 200
seed = 5
"""

BACKFILL = """
[protocol]
name = "B"
target = 0.3
dlt_window_days = 28
[tiers]
doses = [1, 2, 3]
[[design]]
name = "BOIN bf"
type = "BOIN"
max_n = 12
backfill = { cap = 3 }
[[design]]
name = "BOIN"
type = "BOIN"
max_n = 12
[[scenario]]
name = "a"
true_tox = [0.05, 0.10, 0.40]
true_eff = [0.2, 0.4, 0.5]
[calendar]
accrual_rate = 6.0
[run]
n_trials = 200
seed = 2
"""


def write(tmp_path, text, name="f.toml"):
    f = tmp_path / name
    f.write_text(text)
    return f


def run(*args, width=100):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": str(width)})


def read_csv(path):
    return pd.read_csv(path, comment="#")


@pytest.fixture(scope="module")
def ind_study(tmp_path_factory):
    f = write(tmp_path_factory.mktemp("ind"), IND)
    proto = doseesc.load_protocol(f)
    return f, run_protocol(proto, n_trials=200, seed=3)


# -- 1. indications -----------------------------------------------------------------------------------------

def test_out_folder_has_the_indication_files_and_a_reused_folder_loses_them(ind_study, tmp_path):
    f, study = ind_study
    out = tmp_path / "o"
    r = run("simulate", f, "--no-progress", "--no-exact", "-o", out)
    assert r.exit_code == 0, r.output
    got = read_csv(out / "indication_metrics.csv")
    want = study.indication_metrics()
    assert list(got.columns) == list(want.columns)
    assert got["p_correct"].tolist() == pytest.approx(want["p_correct"].tolist())
    assert len(read_csv(out / "by_indication.csv")) == len(study.by_indication())
    # the same folder reused for a file without indications: doseesc's own per-indication files go
    plain = write(tmp_path, BASE + '[[scenario]]\nname = "s"\ntrue_tox = [0.05, 0.15, 0.30]\n', "plain.toml")
    r = run("simulate", plain, "--no-progress", "-n", 50, "--seed", 1, "-o", out)
    assert r.exit_code == 0, r.output
    assert not (out / "indication_metrics.csv").exists() and not (out / "by_indication.csv").exists()
    assert (out / "summary.csv").exists()


def test_compact_output_has_a_table_per_indication_and_notes_the_staggered_design(ind_study):
    f, study = ind_study
    r = run("simulate", f, "--no-progress", "--no-exact")
    assert r.exit_code == 0, r.output
    lines = r.stdout.split("\n")
    i = next(j for j, x in enumerate(lines) if x.startswith("Per indication, P(correct) %"))
    assert lines[i + 1].split() == ["design", "adults", "(50%)", "kids", "(50%)"]
    m = study.indication_metrics()
    for d in ("3+3", "3+3 staggered"):
        row = next(x for x in lines[i + 2:] if x.startswith(f"  {d}  "))
        cells = row[len(d) + 2:].split()
        for ind, cell in zip(("adults", "kids"), cells):
            v = m[(m["design"] == d) & (m["indication"] == ind)]["p_correct"].iloc[0]
            assert cell == f"{100 * v:.1f}", (d, ind)
    # the staggered design's own rows are the adults' escalation: one note says so; the pooled one has none
    notes = [x for x in lines if "judged on its truth" in x]
    assert notes == ["  [a] 3+3 staggered: the 'adults' stratum only, judged on its truth (staggered)"]
    assert any(x.startswith("  3+3 staggered [a]  ") for x in lines)
    # a file without indications prints none of this
    assert "Per indication" not in run("simulate", write(f.parent, PHASE2.split("[phase2]")[0] + "[run]\nseed = 1\n",
                                                           "noind.toml"), "-n", 30, "--no-progress").stdout


def test_report_has_a_section_per_indication_and_one_summary_sentence(ind_study):
    _, study = ind_study
    rep = build_report(study, detail="full", dpi=40)
    heads = [b.text for b in rep.blocks if isinstance(b, Heading)]
    assert "Indications" in heads and "adults" in heads and "kids" in heads
    assert heads.index("Indications") < heads.index("adults") < heads.index("kids")
    tabs = [b for b in rep.blocks if isinstance(b, Table) and b.attrs.get("kind") == "indication-metrics"]
    # one per indication, then the pooled designs' rows over every indication together
    assert len(tabs) == 3 and tabs[2].row_keys == ["3+3|s"]
    m = study.indication_metrics()
    for t, ind in zip(tabs, ("adults", "kids")):
        k = t.row_keys.index("3+3 staggered|s")
        row = m[(m["design"] == "3+3 staggered") & (m["indication"] == ind)].iloc[0]
        assert t.rows[k][0] == "3+3 staggered [a]"   # footnoted: judged on the adults' truth
        assert t.rows[k][3] == f"{100 * row['p_correct']:.1f} ({100 * row['p_correct_mcse']:.1f})"
    sel = [b for b in rep.blocks if isinstance(b, Table) and b.attrs.get("kind") == "indication-selection"]
    assert len(sel) == 3 and len(sel[0].columns) == 2 + 4     # design, scenario, no dose and 3 tiers
    texts = [b.text for b in rep.blocks if isinstance(b, Paragraph)]
    assert "[a] 3+3 staggered: the 'adults' stratum only, judged on its truth (staggered)." in texts
    # the summary's tables carry the same marker and footnote
    key = [b for b in rep.blocks if isinstance(b, Table) and b.attrs.get("kind") == "key"][0]
    assert key.rows[key.row_keys.index("3+3 staggered")][0] == "3+3 staggered [a]"
    assert any("[a] 3+3 staggered: the 'adults' stratum only, judged on its truth (staggered)" in t for t in texts
               if t.startswith("The designs differ in how they conduct the trial"))
    summary = build_report(study, detail="summary", dpi=40)
    said = [b.text for b in summary.blocks if isinstance(b, Paragraph) and "declares 2 indications" in b.text]
    # the summary alone has no appendix: the sentence names the full report's section
    assert len(said) == 1 and said[0].endswith("are in the full report's (--detail full) section 'Indications'.")
    assert any("are in the appendix section 'Indications'." in b.text for b in rep.blocks
               if isinstance(b, Paragraph))
    assert not any(isinstance(b, Heading) and b.text == "Indications" for b in summary.blocks)


# -- 2. months -----------------------------------------------------------------------------------------------

def test_metrics_table_and_duration_sentence_in_months():
    # 487 days / (365.25 / 12 = 30.4375 days per month) = 16.0 months; MCSE 6.0875 / 30.4375 = 0.20
    m = pd.DataFrame({"estimate": [487.0, 0.5], "mcse": [6.0875, 0.01], "definition": ["d", "p"]},
                     index=["duration_days", "p_correct"])
    r = SimpleNamespace(metrics=lambda: m, is_exact=False)
    t = metrics_table(r)
    assert t.rows[0] == ["trial duration, months", "16.0", "0.20"]
    assert t.rows[1][1:] == ["50.0", "1.00"]
    # 365.25 days = 12.0 months, 730.5 days = 24.0 months
    # the definition, shown beside months, no longer says "in days"
    res = {n: SimpleNamespace(extra={"duration_days": (None, "mean trial duration in days: first to last")},
                              metric=(lambda v: lambda name: (v, 0.0))(v)) for n, v in (("A", 365.25), ("B", 730.5))}
    (s,) = _duration_sentences(res, ["A", "B"], "A")
    assert s == "Trial duration (mean trial duration: first to last): from 12.0 months (A) to 24.0 months (B)."


# -- 3. protocol text ------------------------------------------------------------------------------------------

def test_protocol_text_command_writes_the_methods(tmp_path):
    f = write(tmp_path, PHASE2.split("[phase2]")[0] + "[run]\nseed = 9\n", "trial.toml")
    out = tmp_path / "methods"
    r = run("protocol-text", f, "-o", out, "-n", 40, "--no-docx", "--no-progress")
    assert r.exit_code == 0, r.output
    md = (out / "trial-methods.md").read_text()
    assert r.stdout.strip() == f"wrote {out / 'trial-methods.md'}"
    assert md.startswith("# Statistical methods: W") and "BOIN" in md and "9" in md
    r = CliRunner().invoke(main, ["protocol-text", str(f), "-o", str(tmp_path / "d"), "-n", "40", "--docx",
                                  "--no-progress"])
    if docx_available():
        assert r.exit_code == 0 and (tmp_path / "d" / "trial-methods.docx").exists()
    else:   # refused before anything runs or is written
        assert r.exit_code == 2 and DOCX_MISSING in r.output and not (tmp_path / "d").exists()


def test_report_has_the_protocol_text_after_the_rules(ind_study):
    _, study = ind_study
    rep = build_report(study, detail="full", dpi=40)
    heads = [b.text for b in rep.blocks if isinstance(b, Heading) and b.level == 1]
    i = heads.index("Statistical methods (protocol text)")
    assert heads[i - 1] == "Decision rules and escalation paths" and heads[i + 1] == "Provenance"


# -- 4. phase 2 ---------------------------------------------------------------------------------------------------

def test_phase2_table_csv_and_report(tmp_path):
    f = write(tmp_path, PHASE2)
    out = tmp_path / "o"
    r = run("simulate", f, "--no-progress", "--no-exact", "-o", out)
    assert r.exit_code == 0, r.output
    study = run_protocol(doseesc.load_protocol(f), n_trials=200, seed=5)
    want = study.phase2()
    got = read_csv(out / "phase2.csv")
    assert got["p_promising"].tolist() == pytest.approx(want["p_promising"].tolist())
    lines = r.stdout.split("\n")
    i = next(j for j, x in enumerate(lines) if x.startswith("Phase 2 stage, P(declare promising) % by scenario"))
    assert lines[i + 1].split() == ["design", "S1", "S2"]
    for d in ("3+3", "BOIN"):
        cells = next(x for x in lines[i + 2:] if x.startswith(f"  {d}  ")).split()[-2:]
        vals = [want[(want["design"] == d) & (want["scenario"] == s)]["p_promising"].iloc[0] for s in ("a", "b")]
        assert cells == [f"{100 * v:.1f}" for v in vals], d
    rep = build_report(study, detail="full", dpi=40)
    heads = [b.text for b in rep.blocks if isinstance(b, Heading)]
    assert "Phase 2 stage" in heads
    (t,) = [b for b in rep.blocks if isinstance(b, Table) and b.attrs.get("kind") == "phase2"]
    k = t.row_keys.index("BOIN|b")
    row = want[(want["design"] == "BOIN") & (want["scenario"] == "b")].iloc[0]
    assert t.rows[k][2] == f"{100 * row['p_promising']:.1f} ({100 * row['p_promising_mcse']:.1f})"
    i = [j for j, b in enumerate(rep.blocks) if isinstance(b, Heading) and b.text == "Phase 2 stage"][0]
    assert rep.blocks[i + 1].text == study.protocol.phase2.describe()
    assert any(isinstance(b, Paragraph) and b.text.startswith("Phase 2 stage after the escalation")
               for b in build_report(study, detail="summary", dpi=40).blocks)


# -- 5. backfill ---------------------------------------------------------------------------------------------------

def test_backfill_lines_in_full_output_and_report(tmp_path):
    from doseesc.engines.backfill import backfill_summary

    f = write(tmp_path, BACKFILL)
    r = run("simulate", f, "--no-progress", "--detail", "full", width=120)
    assert r.exit_code == 0, r.output
    study = run_protocol(doseesc.load_protocol(f), n_trials=200, seed=2)
    res = next(x for x in study.results if study.name_of(x) == "BOIN bf")
    bs = backfill_summary(res)
    n = bs["mean_backfilled"].sum()
    assert n > 0
    line = next(x for x in r.stdout.split("\n") if x.startswith("  BOIN bf under 'a': "))
    # the means per trial over the tiers, e.g. 2.4 backfilled per trial, 0.50 DLTs, 0.46 responses
    assert line.startswith(f"  BOIN bf under 'a': {n:.1f} backfilled per trial")
    assert line.endswith(f"{bs['mean_backfill_dlts'].sum():.2f} DLTs, {bs['mean_backfill_responses'].sum():.2f} "
                         "responses")
    assert not any(x.startswith("  BOIN under 'a': ") for x in r.stdout.split("\n"))
    rep = build_report(study, detail="full", dpi=40)
    (t,) = [b for b in rep.blocks if isinstance(b, Table) and b.attrs.get("kind") == "backfill"]
    assert t.row_keys == ["BOIN bf|a"] and t.rows[0][2] == line.split(": ", 1)[1]
    said = [b.text for b in build_report(study, detail="summary", dpi=40).blocks
            if isinstance(b, Paragraph) and "backfill patients" in b.text]
    assert said == ["Design BOIN bf enrols backfill patients at tiers already cleared; the full report's (--detail "
                    "full) section 'Backfill' gives their numbers, DLTs and responses per trial."]
