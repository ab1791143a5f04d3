"""The import graph of src/doseesc: no cycle, designs and models import no engine, lazy imports only for plotting.

Two declared kinds of deferred import are edges too: the package's ``_EXPORTS`` table (name -> module, loaded on
first use) and a module-level ``name = lazy("doseesc.x")`` proxy (the command line's way to answer ``--help``
without loading the library). Both are read from the source, like the import statements.

The graph is read from the source with ``ast`` (every ``import`` and ``from ... import``, at module level
and inside functions), so it does not depend on import order at run time. An edge ``a -> b`` means module
``a`` names module ``b`` (``from .b import x``; ``from . import b`` names ``b`` when it is a module,
the package itself otherwise). The implicit import of a parent package is not an edge (as in
import-linter): the layers are the modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "doseesc"

#: Modules that may be imported inside a function: they load matplotlib (heavy, optional at import time).
LAZY_OK = {"doseesc.report.plots"}
#: Layers that must never import an engine: data and kernels.
NO_ENGINE = ("doseesc.designs", "doseesc.calendar", "doseesc.actual_dose", "doseesc.state", "doseesc.scenario",
             "doseesc.tiers", "doseesc.outcomes", "doseesc.rng", "doseesc.errors", "doseesc.obd")


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ("doseesc",) + path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _declared_lazy(module: str, is_package: bool, node: ast.AST) -> str | None:
    """The module named by a deferred import: ``lazy("doseesc.x")`` at module level, or a value of the
    package's ``_EXPORTS`` table (``".x"``, relative to the package)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lazy"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(".")
            and is_package and getattr(node, "_export", False)):
        base = module.split(".")
        return ".".join(base) + node.value
    return None


def _mark_exports(tree: ast.Module) -> dict[str, str]:
    """Flag the values of a module-level ``_EXPORTS = {...}`` table; returns the table."""
    for node in tree.body:
        if (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "_EXPORTS"
                        for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))):
            for v in node.value.values:
                v._export = True
            return ast.literal_eval(node.value)
    return {}


def _imports(module: str, path: Path, known: set[str]):
    """(target, lazy, line) for every doseesc module that ``module`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    _mark_exports(tree)
    lazy_lines = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy_lines.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    seen = set()
    for node in ast.walk(tree):
        targets = []
        declared = _declared_lazy(module, is_package, node)
        if declared:
            targets = [declared]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.append(sub if sub in known else base)
        for t in targets:
            if t.split(".")[0] == "doseesc":
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t != module and (t, node.lineno) not in seen:
                    seen.add((t, node.lineno))
                    yield t, id(node) in lazy_lines, node.lineno


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    known = set(mods)
    return {m: list(_imports(m, p, known)) for m, p in mods.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read(graph):
    # a sanity check on the reader itself: known arrows are found
    assert any(t == "doseesc.designs.base" for t, _, _ in graph["doseesc.designs.boin"])
    # the declared deferred imports: the package's _EXPORTS table and the command line's lazy proxies
    assert any(t == "doseesc.designs.blrm" for t, _, _ in graph["doseesc"])
    assert any(t == "doseesc.engines.backfill" for t, _, _ in graph["doseesc"])
    assert any(t == "doseesc.study" for t, _, _ in graph["doseesc.cli"])
    assert any(t == "doseesc.report.committee" for t, _, _ in graph["doseesc.cli"])
    assert any(t == "doseesc.engines.montecarlo" for t, _, _ in graph["doseesc.engines"])
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle(graph):
    edges = {m: {t for t, _, _ in ts} for m, ts in graph.items()}
    cycles = _cycles(edges)
    detail = []
    for comp in cycles:
        members = set(comp)
        detail.append(" | ".join(f"{m} -> {t} (line {line})" for m in comp for t, _, line in graph[m]
                                 if t in members))
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_designs_and_models_import_no_engine(graph):
    bad = [f"{m} -> {t} (line {line})" for m, ts in graph.items() if m.startswith(NO_ENGINE)
           for t, _, line in ts if t.startswith("doseesc.engines") or t in ("doseesc.study", "doseesc.compare",
                                                                           "doseesc.cli", "doseesc")]
    assert not bad, "designs and models must not import engines:\n" + "\n".join(bad)


def test_lazy_imports_only_for_plotting(graph):
    bad = [f"{m} -> {t} (line {line})" for m, ts in graph.items() for t, lazy, line in ts
           if lazy and t not in LAZY_OK]
    assert not bad, "imports inside functions (allowed only for the plotting module):\n" + "\n".join(bad)
