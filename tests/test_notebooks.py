"""The worked analyses in notebooks/ run top to bottom (few trials), are stored without outputs, and interpret
every result they show in prose."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

# one notebook per task a statistician has (issue 23 item 5)
EXPECTED = ["01_ecar01_designs.ipynb",      # compare designs for a protocol
            "02_lupus_obd.ipynb",           # find the OBD under a late response window
            "03_live_trial.ipynb",          # run a live trial with recommend and paths
            "04_build_in_python.ipynb"]     # build a design and a scenario in Python without a file


def test_there_are_worked_analyses():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: stored with outputs"


def shows_result(source: str) -> bool:
    """A code cell shows a result when its last statement is an expression (Jupyter displays it) or it calls
    display() or print()."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    tree = ast.parse(code)
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1].value
        if not (isinstance(last, ast.Call) and isinstance(last.func, ast.Name) and last.func.id in ("display", "print")):
            return True
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("display", "print")
               for n in ast.walk(tree))


def sentences(text: str) -> int:
    """Sentences in a markdown cell: runs of words ended by '.', '!' or '?' before a space or the end (code
    spans and fenced blocks removed)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "x", text)
    return len(re.findall(r"\w[^.!?]*[.!?](?=\s|$)", text))


def test_shows_result_and_sentences_helpers():
    # the checks below rest on these two helpers: hand-worked cases
    assert shows_result("x = 1\nx")                     # last line an expression: displayed
    assert shows_result("%matplotlib inline\nprint(1)")  # a print anywhere
    assert shows_result("for s in a:\n    display(s)")
    assert not shows_result("x = 1\ny = x + 1")          # assignments only: nothing shown
    assert not shows_result("import os")
    assert sentences("One. Two, with `a.b` inside! Three?") == 3
    assert sentences("Only one sentence, e.g 3 points") == 0
    assert sentences("# Heading\nA first one. And a second.") == 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_result_is_interpreted(path):
    """Each code cell that shows a result is followed at once by a markdown cell of at least two sentences."""
    cells = nbformat.read(path, as_version=4).cells
    shown = 0
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or not shows_result(cell.source):
            continue
        shown += 1
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        assert nxt is not None and nxt.cell_type == "markdown", \
            f"{path.name}: code cell {i} shows a result but is not followed by a markdown cell"
        assert sentences(nxt.source) >= 2, \
            f"{path.name}: the markdown after code cell {i} has fewer than 2 sentences: {nxt.source[:80]!r}"
    assert shown >= 4, f"{path.name}: only {shown} cells show results"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_shows_tables_whole(path):
    """Notebooks that show DataFrames set pandas to show every column (no '6 rows x 24 columns' collapse)."""
    src = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert 'pd.set_option("display.max_columns", None)' in src and 'pd.set_option("display.width"' in src


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.setenv("DOSEESC_NOTEBOOK_TRIALS", "300")  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    for c in code:
        for out in c.outputs:
            assert out.output_type != "error"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Warning" not in out.text, f"{path.name}: {out.text}"
            for text in (out.get("text", ""), out.get("data", {}).get("text/plain", "")):
                assert "rows x" not in text and "columns]" not in text, f"{path.name}: a table shown collapsed"
    # the analyses show figures and tables, not only text
    kinds = {k for c in code for out in c.outputs for k in out.get("data", {})}
    assert "image/png" in kinds and "text/html" in kinds
    # every code cell that shows a result did show something
    for c in code:
        if shows_result(c.source):
            assert c.outputs, f"{path.name}: a cell meant to show a result showed nothing: {c.source[:80]!r}"
