"""The statistical-methods section: Markdown from a bundled file and its results, Word, report blocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import doseesc
from doseesc.errors import DoseescError
from doseesc.protocol_text import markdown_blocks, parse_markdown, protocol_text, write_docx, write_protocol_text
from doseesc.study import run_protocol

FILE = Path(__file__).resolve().parents[1] / "scenarios" / "ecar01.toml"
DESIGNS = ["3+3", "BOIN", "CRM", "BOIN12"]
SEED = 11


@pytest.fixture(scope="module")
def proto():
    return doseesc.load_protocol(FILE)


@pytest.fixture(scope="module")
def study(proto):
    return run_protocol(proto, designs=DESIGNS, scenarios=["mtd-middle", "all-safe"], n_trials=200, seed=SEED)


@pytest.fixture(scope="module")
def md(proto, study):
    return protocol_text(proto, study)


def test_sections_in_order(md):
    heads = [b[2] for b in parse_markdown(md) if b[0] == "heading"]
    top = [h for h in heads if not h.startswith("Scenario") and h not in DESIGNS]
    assert top == ["Statistical methods: ECAR01", "Design", "Decision rules", "Operating characteristics",
                   "Simulation settings"]
    assert [h for h in heads if h in DESIGNS] == DESIGNS            # the designs the study ran, file order
    assert "BOIN-ET" not in heads                                    # ... and only those


def test_decision_tables_by_hand(md):
    # 3+3: 0/3 escalate, 1/3 stay (add 3), >=2/3 stop with the tier below as MTD; 6 patients: <=1 escalate, >=2 stop
    assert "| n | escalate if y <= | stay if y = | stop: MTD = tier below if y >= |" in md
    assert "| 3 | 0 | 1 | 2 |" in md and "| 6 | 1 |  | 2 |" in md
    # BOIN, target 0.25: lambda_e = 0.197, lambda_d = 0.298. n = 3: 0/3 = 0 <= 0.197 escalates; 1/3 = 0.333 > 0.298
    # de-escalates (no count stays); eliminate when P(p > 0.25 | Beta(1 + y, 1 + 3 - y)) > 0.95:
    # y = 3: 1 - 0.25^4 = 0.996 > 0.95; y = 2: 1 - (4 * 0.25^3 * 0.75 + 0.25^4) = 0.949 < 0.95 -> eliminate if y >= 3
    assert "| 3 | 0 |  | 1 | 3 |" in md
    # n = 6: 1/6 = 0.167 <= 0.197 escalates; 2/6 = 0.333 > 0.298 de-escalates; eliminate: y = 4, Beta(5, 3):
    # P(p <= 0.25) = 21 * 0.25^5 * 0.75^2 + 7 * 0.25^6 * 0.75 + 0.25^7 = 0.0129, so 0.987 > 0.95; y = 3, Beta(4, 4):
    # P(p <= 0.25) = 35 * 0.25^4 * 0.75^3 + 0.0129 = 0.0706, so 0.929 < 0.95 -> eliminate if y >= 4
    assert "| 6 | 1 |  | 2 | 4 |" in md
    assert "CRM has no decision table" in md


def test_rules_in_the_designs_own_words(proto, md):
    for name in DESIGNS:
        assert f"Stopping rules and constraints of {name}:" in md
        for item in proto.designs[name].rules_text().split("; "):
            assert f"- {item}" in md
    assert "- safety stop if P(DLT rate at the lowest tier > 0.25) > 0.95 with >= 3 patients there" in md
    assert "escalate if the DLT rate at the current tier is <= 0.197, de-escalate if > 0.298" in md


def test_operating_characteristics_table_equals_the_results(study, md):
    blocks = parse_markdown(md)
    tables = [b for b in blocks if b[0] == "table" and b[1][0] == "design"]
    assert len(tables) == 2
    for r in study.results:
        i = ["mtd-middle", "all-safe"].index(r.scenario.name)
        cols, rows = tables[i][1], tables[i][2]
        row = next(x for x in rows if x[0] == study.name_of(r))
        s = r.summary()
        assert row[1] == f"{100 * s['p_select'].iloc[0]:.1f}"
        for t in range(1, len(s)):
            assert row[1 + t] == f"{100 * s['p_select'].iloc[t]:.1f} ({s['mean_n'].iloc[t]:.1f})"
        assert row[cols.index("mean N")] == f"{r.expected_n:.1f}"
        q = "p_select_obd" if r.design.question == "OBD" else "p_correct"
        assert row[cols.index("P(correct), %")] == f"{100 * r.metric(q)[0]:.1f} ({r.design.question})"
        assert row[cols.index("median duration")].endswith(" months")     # months, never days
    assert tables[0][2][0][:5] == ["true P(DLT)", "", "0.05", "0.15", "0.40"]


def test_settings_name_the_seed_and_the_trials(md):
    assert f"- Seed: {SEED}." in md
    assert "- Simulated trials per design and scenario: 200." in md
    assert "Calendar (accrual, manufacturing, follow-up): Poisson arrivals" in md


def test_without_a_study(proto):
    text = protocol_text(proto)
    assert "## Operating characteristics\n\nNot computed here" in text
    assert f"- Seed: {proto.seed}." in text and "BOIN-ET" in text


def test_docx_round_trip(md, tmp_path):
    docx = pytest.importorskip("docx")
    path = write_docx(md, tmp_path / "methods.docx")
    doc = docx.Document(str(path))
    heads = [p.text for p in doc.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    assert heads[:3] == ["Statistical methods: ECAR01", "Design", "Decision rules"]
    texts = "\n".join(p.text for p in doc.paragraphs)
    assert f"Seed: {SEED}." in texts
    md_tables = [b for b in parse_markdown(md) if b[0] == "table"]
    assert len(doc.tables) == len(md_tables)
    first = doc.tables[0]   # 3+3's decision table
    assert [c.text for c in first.rows[1].cells] == ["3", "0", "1", "2"]


def test_docx_missing_says_how_to_install(proto, md, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "docx", None)   # import docx now fails
    with pytest.raises(DoseescError, match=r"pip install 'doseesc\[docx\]'"):
        write_docx(md, tmp_path / "x.docx")
    with pytest.raises(DoseescError, match="python-docx"):
        write_protocol_text(proto, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()          # refused before writing anything
    written = write_protocol_text(proto, None, tmp_path / "out", docx=False)
    assert list(written) == ["md"] and written["md"].name == "ecar01-methods.md"
    assert written["md"].read_text(encoding="utf-8") == protocol_text(proto)


def test_report_blocks_render(md):
    from doseesc.report.document import Heading, Table, render_html

    blocks = markdown_blocks(md)
    assert any(isinstance(b, Table) for b in blocks)
    assert any(isinstance(b, Heading) and b.text == "Operating characteristics" for b in blocks)
    html = render_html(blocks, "methods")
    assert "escalate if y &lt;=" in html
