"""docs/examples holds the statistical-methods section `doseesc protocol-text` writes for ECAR01 and DCAR-SLE, as
Markdown and as a Word document that python-docx (a Word-compatible reader) opens (issue 23 acceptance)."""

from __future__ import annotations

from pathlib import Path

import pytest

import doseesc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.mark.parametrize("stem", ["ecar01", "dcar_sle"])
def test_example_methods_text_is_the_files_own(stem):
    proto = doseesc.load_protocol(ROOT / "scenarios" / f"{stem}.toml")
    md = (EXAMPLES / f"{stem}-methods.md").read_text(encoding="utf-8")
    for heading in ("## Design", "## Decision rules", "## Operating characteristics", "## Simulation settings"):
        assert heading in md, f"{stem}: {heading!r} missing"
    for name in proto.designs:
        assert f"### {name}" in md, f"{stem}: design {name!r} has no rules section"
    assert str(proto.seed) in md and f"{proto.n_trials:,}" in md, "the settings name the file's seed and trials"


@pytest.mark.parametrize("stem", ["ecar01", "dcar_sle"])
def test_example_docx_opens_in_a_word_reader(stem):
    docx = pytest.importorskip("docx")
    doc = docx.Document(str(EXAMPLES / f"{stem}-methods.docx"))
    headings = [p.text for p in doc.paragraphs if p.style.name.startswith("Heading")]
    assert any("Decision rules" in h for h in headings)
    assert len(doc.tables) >= len(doseesc.load_protocol(ROOT / "scenarios" / f"{stem}.toml").scenarios)
    md = (EXAMPLES / f"{stem}-methods.md").read_text(encoding="utf-8")
    # the Word document carries the Markdown's tables: the first decision table's header cells
    first = next(line for line in md.splitlines() if line.startswith("| n |"))
    cells = [c.strip() for c in first.strip("|").split("|")]
    assert any([c.text.strip() for c in t.rows[0].cells] == cells for t in doc.tables)
