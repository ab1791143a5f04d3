"""The statistical-methods section of a trial protocol, written from a protocol file (and its results).

:func:`protocol_text` gives Markdown: the design (tiers, target, DLT and response definitions), each
design's decision rules in words and its decision table, its stopping rules, the operating
characteristics per scenario (from a :class:`~doseesc.study.Study`) and the simulation settings with the
seed. Every rule is the design's own text (``describe()``, ``rules_text()``, ``decision_words()``) and
every table comes from :func:`doseesc.tables.decision_table` and the results, so the section says what
the code that ran the simulations does. :func:`write_docx` writes the same text as a Word document
(python-docx, the optional extra ``docx``); :func:`markdown_blocks` turns it into report blocks, so the
committee report can carry it as a section.

The Markdown is a small dialect that both readers understand: ``#`` headings, paragraphs, ``- ``
bullets and pipe tables (a header, a ``---`` rule, rows).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ._version import __version__
from .errors import DoseescError
from .report.document import Heading, Paragraph, Table
from .tables import decision_table, pending_table
from .tiers import DAYS_PER_MONTH

__all__ = ["protocol_text", "write_docx", "write_protocol_text", "docx_available", "markdown_blocks",
           "parse_markdown"]

DOCX_MISSING = ("writing a .docx file needs python-docx: pip install 'doseesc[docx]' (or pip install python-docx); "
                "or write the Markdown alone")


def _pct(p: float, digits: int = 1) -> str:
    return "n/a" if p is None or not math.isfinite(p) else f"{100 * p:.{digits}f}"


def _cell(text) -> str:
    """Text safe inside a Markdown table cell (no pipe, no line break)."""
    return str(text).replace("|", "/").replace("\n", " ").strip()


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_cell(c) for c in columns) + " |",
           "| " + " | ".join("---" for _ in columns) + " |"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _months(days: float) -> str:
    return f"{days / DAYS_PER_MONTH:.1f} months"


def _split_rules(design) -> tuple[str, list[str]]:
    """The design's decision rule in words (its ``describe()`` without the rule slots) and its stopping
    rules and constraints (``rules_text()``, one item each)."""
    desc = design.describe()
    rules = design.rules_text()
    head = desc
    if rules and rules in desc:
        before, _, after = desc.partition(rules)
        head = (before.rstrip("; ").rstrip() + ("; " + after.lstrip("; ") if after.strip("; ") else "")).strip()
    items = [r.strip() for r in rules.split("; ") if r.strip()] if rules else []
    return head.rstrip(".") + ".", items


def _decision_table_lines(name: str, design) -> list[str]:
    """The design's decision table (n patients and y DLTs at the current tier), or why it has none."""
    if design.decision_grid() is None and design.pending_grid() is not None:
        pt = pending_table(design)
        cols = ["n enrolled", "pending"] + [f"y = {y}" for y in pt.columns]
        rows = [[str(n), str(m)] + [str(v) for v in row] for (n, m), row in pt.iterrows()]
        return [f"Decision table of {name}, for the next patient, from the patients enrolled at the current tier "
                "(n), those still in follow-up (pending) and the DLTs seen (y): E escalate, S stay (enrol here), "
                "D de-escalate, W suspend accrual.", ""] + _table(cols, rows)
    try:
        dt = decision_table(design)
    except DoseescError:
        return [f"{name} has no decision table: its decisions depend on more than the patients and DLTs at the "
                "current tier (a model fitted to every tier, or responses). Its escalation paths are in the "
                "committee report (`doseesc paths`)."]
    words = design.decision_words()
    cols = ["n", "escalate if y <=", "stay if y =", f"{words.get('D', 'de-escalate')} if y >="]
    keys = ["escalate_if_le", "stay", "deescalate_if_ge"]
    if "DU" in words:
        cols.append("eliminate if y >=")
        keys.append("eliminate_if_ge")
    rows = [[str(n)] + ["" if _isna(row[c]) else str(row[c]) for c in keys] for n, row in dt.iterrows()]
    lines = [f"Decision table of {name} (n: patients treated at the current tier; y: those with a DLT; "
             + "; ".join(f"{k}: {w}" for k, w in words.items()) + "; a blank cell: no count of DLTs leads there)."]
    return lines + [""] + _table(cols, rows)


def _isna(v) -> bool:
    try:
        return v is None or bool(v != v) or str(v) == "<NA>"
    except TypeError:
        return str(v) == "<NA>"


def _designs(protocol, study) -> dict:
    """The protocol's designs in file order; with a study, those it ran."""
    if study is None:
        return dict(protocol.designs)
    ran = {study.name_of(r) for r in study.results}
    return {n: d for n, d in protocol.designs.items() if n in ran}


def _design_lines(protocol, designs: dict) -> list[str]:
    tiers = protocol.tiers
    labels = list(tiers.tier_labels)
    lines = ["## Design", ""]
    first = (f"The trial evaluates {tiers.n_tiers} dose tiers: " + ", ".join(labels) + ".")
    if protocol.target is not None:
        first += f" The target DLT rate is {protocol.target:g}."
    lines.append(first)
    if protocol.dlt_definition or protocol.dlt_window_days is not None:
        lines += ["", "Dose-limiting toxicity (DLT): " + (protocol.dlt_definition or "as defined in the protocol.")
                  + ("" if protocol.dlt_window_days is None else
                     f" DLT window: {protocol.dlt_window_days:g} days after the infusion.")]
    if protocol.response_definition or protocol.response_window_days is not None:
        lines += ["", "Response: " + (protocol.response_definition or "as defined in the protocol.")
                  + ("" if protocol.response_window_days is None else
                     f" Judged at {_months(protocol.response_window_days)} "
                     f"({protocol.response_window_days:g} days) after the infusion.")]
    if getattr(protocol, "obd", None) is not None and hasattr(protocol.obd, "describe"):
        lines += ["", "Optimal biological dose (OBD): " + str(protocol.obd.describe()).rstrip(".") + "."]
    lines += ["", f"Designs evaluated ({len(designs)}, in the order of the protocol file):", ""]
    for name, d in designs.items():
        lines.append(f"- {name}: answers the {d.question} question; at most {d.max_n} patients.")
    return lines


def _rules_lines(designs: dict) -> list[str]:
    lines = ["## Decision rules", ""]
    for name, d in designs.items():
        head, stops = _split_rules(d)
        lines += [f"### {name}", "", head, ""]
        lines += _decision_table_lines(name, d) + [""]
        lines += [f"Stopping rules and constraints of {name}:", ""]
        lines += [f"- {s}" for s in stops] if stops else ["- none beyond the decision rule above"]
        lines.append("")
    return lines


def _oc_lines(protocol, study) -> list[str]:
    lines = ["## Operating characteristics", ""]
    if study is None:
        return lines + ["Not computed here: run the simulations (`doseesc protocol-text FILE` runs them with the "
                        "file's settings) to fill this section."]
    exact = all(r.is_exact for r in study.results)
    lines.append("Per scenario, the true DLT rate of each tier, then for each design the percentage of trials "
                 "that select each tier (mean number of patients treated there in brackets), the mean number of "
                 "patients and DLTs per trial, and the percentage of trials that select the correct dose (the "
                 "true MTD for MTD designs, the true OBD for OBD designs)"
                 + ("; exact values." if exact else "; Monte Carlo estimates."))
    labels = list(protocol.tiers.tier_labels)
    max_se = 0.0
    by_scen: dict[str, list] = {}
    for r in study.results:
        by_scen.setdefault(r.scenario.name, []).append(r)
    timed = any("duration_days" in r.extra for r in study.results)
    for sname, results in by_scen.items():
        sc = results[0].scenario
        lines += ["", f"### Scenario '{sname}'", ""]
        if getattr(sc, "description", ""):
            lines += [sc.description, ""]
        cols = (["design", "No dose, %"] + [f"{lab}, % (patients)" for lab in labels]
                + ["mean N", "mean DLTs", "P(correct), %"])
        if timed:
            cols.append("median duration")
        truth = ["true P(DLT)", ""] + [f"{p:.2f}" for p in sc.true_tox] + ["", "", ""] + ([""] if timed else [])
        rows = [truth]
        if sc.true_eff is not None:
            rows.append(["true P(response)", ""] + [f"{p:.2f}" for p in sc.true_eff] + ["", "", ""]
                        + ([""] if timed else []))
        for r in results:
            name = study.name_of(r)
            s = r.summary()
            q = "p_select_obd" if r.design.question == "OBD" else "p_correct"
            pc, pc_se = r.metric(q)
            dlt, _ = r.metric("mean_dlt")
            row = [name, _pct(float(s["p_select"].iloc[0]))]
            row += [f"{_pct(float(s['p_select'].iloc[i]))} ({float(s['mean_n'].iloc[i]):.1f})"
                    for i in range(1, len(s))]
            row += [f"{r.expected_n:.1f}", f"{dlt:.2f}", f"{_pct(pc)} ({r.design.question})"]
            if timed:
                row.append(_months(float(r.duration_summary().loc["duration_days", "q50"]))
                           if "duration_days" in r.extra else "")
            rows.append(row)
            if not r.is_exact:
                max_se = max(max_se, float(s["p_select_mcse"].max()), float(pc_se))
        lines += _table(cols, rows)
    if not exact:
        lines += ["", f"Monte Carlo standard errors of the percentages are at most {100 * max_se:.1f} percentage "
                      "points."]
    return lines


def _seed_text(protocol, study) -> str:
    seed = None
    if study is not None and study.seed is not None:
        seed = study.seed.get("entropy") if isinstance(study.seed, dict) else study.seed
    if seed is None:
        seed = protocol.seed
    return "not fixed (results will not reproduce)" if seed is None else str(seed)


def _settings_lines(protocol, study) -> list[str]:
    lines = ["## Simulation settings", ""]
    if study is not None:
        n = sorted({r.n_trials for r in study.results if not r.is_exact})
        method = {"simulate": "Monte Carlo simulation", "exact": "exact enumeration of every trial",
                  "auto": "Monte Carlo simulation, with exact values where the exact engine applies"}.get(
                      study.method, study.method)
        lines.append(f"- Method: {method}.")
        if n:
            lines.append("- Simulated trials per design and scenario: " + ", ".join(f"{v:,}" for v in n) + ".")
    else:
        lines.append(f"- Simulated trials per design and scenario (file setting): {protocol.n_trials:,}.")
    lines.append(f"- Seed: {_seed_text(protocol, study)}. Every design is run on the same simulated patients "
                 "(common random numbers), so differences between designs are paired.")
    if protocol.calendar is not None and hasattr(protocol.calendar, "describe"):
        lines.append(f"- Calendar (accrual, manufacturing, follow-up): {protocol.calendar.describe()}.")
    if protocol.dose_model is not None and hasattr(protocol.dose_model, "describe"):
        lines.append(f"- Actual infused dose: {_describe(protocol.dose_model, protocol.tiers)}.")
    src = protocol.path or "(built in Python)"
    lines.append(f"- Protocol file: {src}" + (f" (SHA-256 {protocol.sha256[:16]}...)" if protocol.sha256 else "")
                 + f"; software: doseesc {__version__}.")
    return lines


def _describe(obj, ladder) -> str:
    import inspect

    try:
        takes = "ladder" in inspect.signature(obj.describe).parameters
    except (TypeError, ValueError):
        takes = False
    text = obj.describe(ladder) if takes else obj.describe()
    if isinstance(text, (list, tuple)):
        text = "; ".join(str(t) for t in text)
    return str(text).rstrip(".")


def protocol_text(protocol, study=None, *, title: bool = True) -> str:
    """The statistical-methods section of ``protocol`` (a :class:`~doseesc.protocol.Protocol`) as Markdown.

    Design, decision rules in words, decision tables, stopping rules, the operating characteristics
    (when ``study``, a :class:`~doseesc.study.Study` of the protocol, is given) and the simulation
    settings with the seed. ``title``: start with a level-1 heading naming the protocol.
    """
    lines = []
    if title:
        lines += [f"# Statistical methods: {protocol.name}", ""]
        if protocol.title:
            lines += [protocol.title, ""]
    designs = _designs(protocol, study)
    for part in (_design_lines(protocol, designs), _rules_lines(designs), _oc_lines(protocol, study),
                 _settings_lines(protocol, study)):
        lines += part + [""]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# -- reading the Markdown back: blocks for Word and for the report -----------------------------------

def parse_markdown(text: str) -> list[tuple]:
    """The blocks of Markdown ``text`` in this module's dialect: ``("heading", level, text)``,
    ``("paragraph", text)``, ``("bullet", text)``, ``("table", columns, rows)``."""
    blocks: list[tuple] = []
    para: list[str] = []
    lines = text.splitlines()

    def flush():
        if para:
            blocks.append(("paragraph", " ".join(para)))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            flush()
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            blocks.append(("heading", level, line[level:].strip()))
        elif line.startswith("- "):
            flush()
            blocks.append(("bullet", line[2:].strip()))
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            blocks.append(("table", rows[0], rows[1:]))
            continue
        else:
            para.append(line.strip())
        i += 1
    flush()
    return blocks


def _strip_code(text: str) -> str:
    return text.replace("`", "")


def write_docx(markdown_or_parts, path) -> Path:
    """Write the Markdown of :func:`protocol_text` (or its :func:`parse_markdown` blocks) as a Word document.

    Needs python-docx (``pip install 'doseesc[docx]'``); raises :class:`~doseesc.errors.DoseescError`
    saying so where it is missing. Returns the path written.
    """
    try:
        import docx
        from docx.shared import Pt
    except ImportError:
        raise DoseescError(DOCX_MISSING) from None
    blocks = parse_markdown(markdown_or_parts) if isinstance(markdown_or_parts, str) else list(markdown_or_parts)
    doc = docx.Document()
    for b in blocks:
        if b[0] == "heading":
            doc.add_heading(_strip_code(b[2]), level=min(b[1], 4) if b[1] > 1 else 0)
        elif b[0] == "paragraph":
            doc.add_paragraph(_strip_code(b[1]))
        elif b[0] == "bullet":
            doc.add_paragraph(_strip_code(b[1]), style="List Bullet")
        elif b[0] == "table":
            cols, rows = b[1], b[2]
            table = doc.add_table(rows=1 + len(rows), cols=len(cols))
            table.style = "Table Grid"
            for j, c in enumerate(cols):
                cell = table.rows[0].cells[j]
                cell.text = c
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for i, row in enumerate(rows, start=1):
                for j, c in enumerate(row[:len(cols)]):
                    table.rows[i].cells[j].text = c
            size = Pt(8 if len(cols) <= 7 else 7)
            for row in table.rows:
                for cell in row.cells:
                    for p in cell.paragraphs:
                        for run in p.runs:
                            run.font.size = size
            doc.add_paragraph()
        else:
            raise ValueError(f"unknown block {b[0]!r}")
    path = Path(path)
    doc.save(str(path))
    return path


def docx_available() -> bool:
    """Whether python-docx can be imported (check before a long run that ends by writing a .docx)."""
    try:
        import docx  # noqa: F401
    except ImportError:
        return False
    return True


def write_protocol_text(protocol, study=None, folder=".", stem: str | None = None, docx: bool = True) -> dict:
    """Write :func:`protocol_text` to ``folder/STEM-methods.md`` and, with ``docx``, ``STEM-methods.docx``
    (``stem``: default the protocol file's name, else the protocol's name). Raises
    :class:`~doseesc.errors.DoseescError` before writing anything if ``docx`` and python-docx is missing.
    Returns ``{"md": path[, "docx": path]}``."""
    if docx and not docx_available():
        raise DoseescError(DOCX_MISSING)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if stem is None:
        stem = Path(protocol.path).stem if protocol.path else re.sub(r"[^A-Za-z0-9_.-]+", "_", protocol.name)
    text = protocol_text(protocol, study)
    out = {"md": folder / f"{stem}-methods.md"}
    out["md"].write_text(text, encoding="utf-8")
    if docx:
        out["docx"] = write_docx(text, folder / f"{stem}-methods.docx")
    return out


def markdown_blocks(text: str, level_offset: int = 0) -> list:
    """The Markdown of :func:`protocol_text` as committee-report blocks (:mod:`doseesc.report.document`):
    headings (``level_offset`` added to their level, at most 3), paragraphs, bullets and tables."""

    out = []
    for b in parse_markdown(text):
        if b[0] == "heading":
            level = min(b[1] + level_offset, 3)
            out.append(Heading(level, _strip_code(b[2]), "protocol-" + re.sub(r"[^a-z0-9]+", "-", b[2].lower())
                               .strip("-") if level <= 2 else None))
        elif b[0] == "paragraph":
            out.append(Paragraph(_strip_code(b[1])))
        elif b[0] == "bullet":
            out.append(Paragraph(_strip_code(b[1]), "bullet"))
        else:
            cols, rows = b[1], b[2]
            out.append(Table(columns=cols, rows=[r + [""] * (len(cols) - len(r)) for r in rows],
                             attrs={"kind": "protocol-text"}, align=["l"] + ["r"] * (len(cols) - 1)))
    return out
