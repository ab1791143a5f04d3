"""The committee report: every design under every truth scenario of a scenario file, for readers
without a statistician at their side, with every number reproducible.

>>> from doseesc.study import committee_report                                     # doctest: +SKIP
>>> rep = committee_report(load_protocol("scenarios/ecar01.toml"), n_trials=2000)   # doctest: +SKIP
>>> rep.write("report/")                       # report/ecar01-report.html and .pdf  # doctest: +SKIP

:func:`build_report` turns a :class:`~doseesc.study.Study` into a list of document blocks
(:mod:`doseesc.report.document`), rendered as one self-contained HTML page (figures embedded as
PNG, no external assets) and as a PDF drawn with matplotlib, with the same content.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import os
import platform
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._lazy import lazy
from .._version import __version__
from ..compare import conduct_notes, paired_difference
from ..engines.backfill import backfill_summary
from ..engines.live import recommend
from ..engines.paths import paths
from ..errors import DoseescError
from ..grid import plot_pareto
from ..protocol_text import markdown_blocks, protocol_text
from ..tables import decision_table, pending_table
from ..tiers import DAYS_PER_MONTH
from .document import Heading, PageBreak, Paragraph, Row, Table, figure_block, render_html, render_pdf
from .labels import (MONTH_METRICS, design_colours, dose_text, metric_cells, metric_name, months_text, tier_label,
                     tier_labels)
from .summary_text import month_definition, near_tie_warning, scenario_summary

pd = lazy("pandas")

#: Escalation paths are drawn for this many cohorts from the start of the trial.
PATH_COHORTS = 2
#: Paths tables longer than this are summarised (the figure shows them all).
MAX_PATH_ROWS = 40


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def scenario_results(study, scenario: str) -> dict:
    """``{design name: result}`` of one scenario, in the protocol's design order."""
    out = {study.name_of(r): r for r in study.results if r.scenario.name == scenario}
    if not out:
        raise DoseescError(f"no results for scenario {scenario!r} "
                           f"(scenarios: {', '.join(dict.fromkeys(r.scenario.name for r in study.results))})")
    return out


def preferred_results(study, res: dict) -> dict:
    """``res`` (design -> Monte Carlo result) with the exact run in place of each result that has one (a study
    run with method ``"auto"``, :attr:`doseesc.study.Study.exact_results`); ``res`` itself otherwise."""
    exact_of = getattr(study, "exact_of", None)
    if exact_of is None or not getattr(study, "exact_results", None):
        return res
    return {name: exact_of(r) or r for name, r in res.items()}


def _scenario_names(study) -> list[str]:
    return list(dict.fromkeys(r.scenario.name for r in study.results))


def _est_se(r, name: str, pct_scale: bool) -> str:
    """Estimate (MCSE) of a metric; exact results show no MCSE."""
    est, se = r.metric(name)
    if not math.isfinite(est):
        return "n/a"
    f = 100 if pct_scale else 1
    dec = 1
    if r.is_exact:
        return f"{f * est:.{dec}f}"
    return f"{f * est:.{dec}f} ({f * se:.{dec}f})"


#: The metric answering each question (a design's headline P(correct)) and its column head.
QUESTION_COLUMNS = {"MTD": ("p_correct", "P(true MTD)"), "OBD": ("p_select_obd", "P(true OBD)")}


def conduct_markers(notes: dict) -> dict[str, str]:
    """Footnote markers ``[a]``, ``[b]``, ... for designs with conduct notes (one marker per distinct note)."""
    texts = list(dict.fromkeys("; ".join(n) for n in notes.values() if n))
    return {d: f"[{chr(ord('a') + texts.index('; '.join(n)) % 26)}]" for d, n in notes.items() if n}


def conduct_footnote(notes: dict) -> str | None:
    """The conduct notes as one sentence for under a table (None when the designs do not differ)."""
    marks = conduct_markers(notes)
    if not marks:
        return None
    parts = []
    for m in dict.fromkeys(marks.values()):
        ds = [d for d in notes if marks.get(d) == m]
        parts.append(f"{m} {', '.join(ds)}: {'; '.join(notes[ds[0]])}")
    return ("The designs differ in how they conduct the trial; read their numbers with this in mind: "
            + ". ".join(parts) + ".")


def key_metrics_table(results: dict, caption: str = "", attrs: dict | None = None, both_questions: bool = False,
                      notes: dict | None = None, timing: dict | None = None) -> Table:
    """One row per design: P(correct) on the design's own question, mean N, its 10-90% range, share above the
    MTD, mean DLTs, P(no dose), each with its MCSE in brackets (none for exact results).

    Each design is shown on the question it answers (:attr:`~doseesc.designs.base.Design.question`): MTD
    designs on P(true MTD), OBD designs on P(true OBD). When all designs answer one question the column is
    headed by it ("P(true MTD), %"); when they mix, a "question" column names each design's question and the
    column is "P(correct), %". ``both_questions`` adds P(true MTD) and P(true OBD) for every design.
    ``notes`` (design -> conduct notes, :func:`doseesc.compare.conduct_notes`) mark the design names.
    ``timing`` (design -> Monte Carlo result with a calendar) supplies the duration column where ``results``
    holds exact runs (which have no calendar).
    """
    timing = timing or results
    questions = {name: r.design.question for name, r in results.items()}
    asked = list(dict.fromkeys(questions.values()))
    mixed = len(asked) > 1
    any_obd = any(r.true_obd is not None and math.isfinite(r.metric("p_select_obd")[0]) for r in results.values())
    exact = all(r.is_exact for r in results.values())
    some_exact = any(r.is_exact for r in results.values()) and not exact
    se = "" if exact else " (MCSE)"
    cols = ["Design"] + (["question"] if mixed else [])
    cols.append(f"P(correct), %{se}" if mixed else f"{QUESTION_COLUMNS[asked[0]][1]}, %{se}")
    extra = []
    if both_questions:
        extra = [q for q in ("MTD", "OBD") if mixed or q != asked[0]]
        extra = [q for q in extra if q == "MTD" or any_obd]
        cols += [f"{QUESTION_COLUMNS[q][1]}, %{se}" for q in extra]
    cols += [f"mean N{se}", "N, 10%-90%", f"above MTD, %{se}", f"mean DLTs{se}", f"P(no dose), %{se}"]
    timed = all("duration_days" in timing[name].extra for name in results)
    if timed:
        cols.append("duration, months: median (10%-90%)")
    marks = conduct_markers(notes or {})
    rows = []
    for name, r in results.items():
        q = questions[name]
        # beside Monte Carlo rows, an exact row says so once, after the design's name (its cells have no MCSE)
        row = [name + (f" {marks[name]}" if name in marks else "") + (" (exact)" if some_exact and r.is_exact
                                                                       else "")] + ([q] if mixed else [])
        row.append(_est_se(r, QUESTION_COLUMNS[q][0], True))
        row += [_est_se(r, QUESTION_COLUMNS[x][0], True) for x in extra]
        row += [_est_se(r, "expected_n", False), f"{r.quantile_n(0.1):g}-{r.quantile_n(0.9):g}",
                _est_se(r, "share_above_mtd", True), _est_se(r, "mean_dlt", False),
                _est_se(r, "p_no_dose", True)]
        if timed:
            q = np.quantile(timing[name].extra["duration_days"][0], [0.1, 0.5, 0.9]) / DAYS_PER_MONTH
            row.append(f"{q[1]:.1f} ({q[0]:.1f}-{q[2]:.1f})")
        rows.append(row)
    # the design names (and the duration column) wrap where the table is wider than the page
    return Table(columns=cols, rows=rows, caption=caption, attrs=dict(attrs or {}), row_keys=list(results),
                 align=["l"] * (1 + mixed) + ["r"] * (len(cols) - 1 - mixed),
                 wrap=(0, len(cols) - 1) if timed else (0,))


#: The columns of the averages over scenarios beside P(correct): (metric, heading, percent).
AVERAGE_COLUMNS = (("p_above_mtd", "P(above MTD)", True), ("p_overdose_60", ">60% above", True),
                   ("p_overdose_80", ">80% above", True), ("p_poor_allocation", "poor alloc.", True),
                   ("p_two_dlt_cohort", "2+ DLT cohort", True), ("mean_dlt", "DLTs", False),
                   ("expected_n", "mean N", False), ("expected_screened", "screened", False))


def averages_table(study, caption: str = "", notes: dict | None = None, kind: str = "averages") -> Table:
    """Each design averaged over the study's scenarios (:meth:`~doseesc.study.Study.averages`, exact values
    where the study holds them): P(correct) on the design's own question, then the standard safety metrics
    (:data:`AVERAGE_COLUMNS`), each as "average (worst scenario)". ``notes`` (design -> conduct notes) mark the
    design names as in the key tables."""
    av = study.averages()
    marks = conduct_markers(notes or {})
    names = list(dict.fromkeys(av["design"]))
    cols = ["Design", "P(correct), %"] + [h + (", %" if pct else "") for _, h, pct in AVERAGE_COLUMNS]
    rows = []
    for d in names:
        mine = av[av["design"] == d].set_index("metric")
        r = next(x for x in study.results if study.name_of(x) == d)
        own = QUESTION_COLUMNS[r.design.question][0]
        row = [d + (f" {marks[d]}" if d in marks else "")]
        for m, pct in [(own, True)] + [(m, pct) for m, _, pct in AVERAGE_COLUMNS]:
            if m not in mine.index or not math.isfinite(mine.at[m, "estimate"]):
                row.append("n/a")
                continue
            f = 100 if pct else 1
            est, worst = mine.at[m, "estimate"], mine.at[m, "worst"]
            row.append(f"{f * est:.1f}" + (f" ({f * worst:.1f})" if math.isfinite(worst) else ""))
        rows.append(row)
    return Table(columns=cols, rows=rows, caption=caption, attrs={"kind": kind}, row_keys=names,
                 wrap=(0,))


def selection_table(r, caption: str = "", attrs: dict | None = None) -> Table:
    """Per-tier table of one result: true probabilities, P(select) with MCSE, mean patients and DLTs."""
    summ = r.summary()
    has_eff = "true_eff" in summ
    cols = ["Dose", "truth", "true P(DLT)"] + (["true P(resp)"] if has_eff else []) + ["P(select), %"]
    if not r.is_exact:
        cols.append("MCSE")
    cols += ["mean patients", "mean DLTs"] + (["mean resp"] if has_eff else [])
    labels = ["No dose"] + tier_labels(r.ladder)
    rows, keys, hl = [], [], []
    mtd, obd = r.true_mtd, r.true_obd

    def num(v, fmt):
        return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)

    for i, (_, row) in enumerate(summ.iterrows()):
        tier = i - 1
        mark = []
        if mtd is not None and tier == mtd:
            mark.append("MTD")
        if obd is not None and tier == obd:
            mark.append("OBD")
        cells = [labels[i], ", ".join(mark), num(row["true_tox"], ".2f")]
        if has_eff:
            cells.append(num(row["true_eff"], ".2f"))
        cells.append(f"{100 * row['p_select']:.1f}")
        if not r.is_exact:
            cells.append(f"{100 * row['p_select_mcse']:.2f}")
        cells += [num(row["mean_n"], ".2f"), num(row["mean_dlt"], ".2f")]
        if has_eff:
            cells.append(num(row["mean_eff"], ".2f"))
        rows.append(cells)
        keys.append("no-dose" if tier < 0 else f"tier-{tier + 1}")
        hl.append(bool(mark))
    return Table(columns=cols, rows=rows, caption=caption, attrs=dict(attrs or {}), row_keys=keys, highlight=hl,
                 align=["l", "l"] + ["r"] * (len(cols) - 2), font=6.6)


def metrics_table(r, caption: str = "", attrs: dict | None = None) -> Table:
    """Every scalar metric of ``r.metrics()`` (realism metrics in ``r.extra`` included) with its MCSE."""
    m = r.metrics()
    cols = ["Metric", "Estimate"] + ([] if r.is_exact else ["MCSE"])
    rows, keys = [], []
    for name, row in m.iterrows():
        # durations in months, probabilities in percent (:func:`~doseesc.report.labels.metric_cells`)
        label, value, se = metric_cells(name, row["estimate"], None if r.is_exact else (
            float("nan") if row["mcse"] is None else row["mcse"]))
        rows.append([label, value] + ([] if r.is_exact else [se]))
        keys.append(name)
    return Table(columns=cols, rows=rows, caption=caption, attrs=dict(attrs or {}), row_keys=keys, font=6.6)


def _split_rules(d) -> tuple[str, str]:
    """A design's description split into its decision rule and its stopping rules and constraints."""
    desc = d.describe()
    rules = d.rules_text()
    if rules and rules in desc:
        head, _, tail = desc.partition(rules)
        head = head.rstrip("; ").rstrip()
        tail = tail.lstrip("; ").strip()
        return head, rules + (f"; {tail}" if tail else "")
    return desc, ""


def _describe_model(obj, ladder=None) -> str:
    """A realism model (actual dose, calendar) in plain words, via its ``describe([ladder])``."""
    if hasattr(obj, "describe"):
        takes_ladder = "ladder" in inspect.signature(obj.describe).parameters
        text = obj.describe(ladder) if takes_ladder else obj.describe()
    else:
        text = str(obj)
    if isinstance(text, (list, tuple)):
        text = "; ".join(str(t) for t in text)
    return str(text)


@dataclass
class CommitteeReport:
    """A built committee report: the document blocks, the study behind them and their provenance."""

    study: object
    blocks: list
    title: str
    provenance: dict
    figures: list = field(default_factory=list)

    def html(self) -> str:
        """The report as one self-contained HTML page."""
        meta = {"generator": f"doseesc {self.provenance['doseesc version']}",
                "doseesc-file-sha256": self.provenance.get("scenario file SHA-256", ""),
                "doseesc-seed-entropy": self.provenance.get("seed entropy", ""),
                "doseesc-n-trials": self.provenance.get("simulated trials per design and scenario", "")}
        return render_html(self.blocks, self.title, meta)

    def _repr_html_(self) -> str:
        return self.html()

    def write_html(self, path) -> str:
        Path(path).write_text(self.html(), encoding="utf-8")
        return str(path)

    def write_pdf(self, path) -> int:
        """Write the PDF; returns its number of pages."""
        footer = f"{self.study.protocol.name} committee report"
        meta = {"Title": self.title, "Creator": f"doseesc {self.provenance['doseesc version']}",
                "Subject": f"seed entropy {self.provenance.get('seed entropy', '')}; "
                           f"file sha256 {self.provenance.get('scenario file SHA-256', '')}"}
        return render_pdf(self.blocks, path, footer=footer, metadata=meta)

    def default_stem(self) -> str:
        path = self.study.protocol.path
        base = Path(path).stem if path else _slug(self.study.protocol.name)
        return f"{base}-report"

    def write(self, out_dir=".", stem: str | None = None) -> dict:
        """Write ``STEM.html`` and ``STEM.pdf`` into ``out_dir`` (created if its parent exists).

        Both files are written under temporary names first, so a failure leaves no half-written
        report. Returns ``{"html": path, "pdf": path, "pages": n}``.
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise DoseescError(f"{out_dir}: exists and is not a folder")
        parent = out.resolve().parent
        if not parent.is_dir():
            raise DoseescError(f"{out_dir}: folder {parent} does not exist")
        out.mkdir(exist_ok=True)
        stem = stem or self.default_stem()
        final = {"html": out / f"{stem}.html", "pdf": out / f"{stem}.pdf"}
        tmp = {}
        try:
            for kind in ("html", "pdf"):
                fd, name = tempfile.mkstemp(prefix=f".{stem}-", suffix=f".{kind}", dir=out)
                os.close(fd)
                tmp[kind] = Path(name)
            self.write_html(tmp["html"])
            pages = self.write_pdf(tmp["pdf"])
            umask = os.umask(0)
            os.umask(umask)
            for kind in ("html", "pdf"):
                os.chmod(tmp[kind], 0o666 & ~umask)  # mkstemp makes private files; a report is to be shared
                os.replace(tmp[kind], final[kind])
        finally:
            for p in tmp.values():
                if p.exists():
                    p.unlink()
        return {"html": str(final["html"]), "pdf": str(final["pdf"]), "pages": pages}


def _method_text(study) -> str:
    """How the numbers were computed: exact, Monte Carlo, or Monte Carlo with exact values where they apply."""
    if study.method == "exact":
        return "exact enumeration"
    exact = getattr(study, "exact_results", None) or {}
    if not exact:
        return "Monte Carlo"
    names = sorted({name for (_, name) in exact}, key=list(study.protocol.designs).index) \
        if all(name in study.protocol.designs for (_, name) in exact) else sorted({n for (_, n) in exact})
    return ("Monte Carlo, with exact enumeration (no MCSE) in the key tables and by-tier tables where it applies: "
            + ", ".join(names) + "; durations and waiting are always simulated")


def _provenance(study, created: str) -> dict:
    import matplotlib

    proto = study.protocol
    seed = study.seed or {}
    n = None if study.method == "exact" else study.results[0].n_trials
    command = study.command
    if not command:
        path = proto.path or "FILE"
        command = f"doseesc report {path}" + ("" if n is None else f" --n-trials {n}") + \
                  (f" --seed {seed['entropy']}" if seed.get("entropy") is not None else "")
    prov = {
        "doseesc version": __version__,
        "created (UTC)": created,
        "scenario file": proto.path or "(built in Python)",
        "scenario file SHA-256": proto.sha256 or "(no file)",
        "method": _method_text(study),
        "simulated trials per design and scenario": "" if n is None else str(n),
        "seed entropy": "" if seed.get("entropy") is None else str(seed["entropy"]),
        "seed spawn key": "" if not seed else str(list(seed.get("spawn_key", []))),
        "command": command,
        "python / numpy / pandas / matplotlib": f"{platform.python_version()} / {np.__version__} / "
                                                f"{pd.__version__} / {matplotlib.__version__}",
    }
    return prov


@dataclass
class _Builder:
    """The state shared by the steps of :func:`build_report`: the study, what the steps read from it,
    and the document blocks and figure keys written so far."""

    study: object
    created: str
    path_cohorts: int
    dpi: int
    both_questions: bool = False
    #: ``"summary"`` or ``"full"`` (:data:`DETAILS`): whether the appendix follows the summary.
    detail: str = "full"
    blocks: list = field(default_factory=list)
    figs: list = field(default_factory=list)

    def __post_init__(self):
        study = self.study
        self.proto = study.protocol
        self.prov = _provenance(study, self.created)
        self.colours = design_colours(self.proto.designs)
        for r in study.results:  # designs outside the protocol (none from run_protocol) get the next colours
            name = study.name_of(r)
            self.colours.setdefault(name, design_colours(list(self.colours) + [name])[name])
        self.snames = _scenario_names(study)
        self.dnames = list(dict.fromkeys(study.name_of(r) for r in study.results))
        self.exact = study.method == "exact"
        self.n_trials = None if self.exact else study.results[0].n_trials
        self.runs = ("exact enumeration of every trial" if self.exact
                     else f"{self.n_trials:,} simulated trials")
        self.title = f"{self.proto.name}: operating characteristics of the candidate dose-escalation designs"
        self.notes = with_indication_notes(conduct_notes({name: self.design(name) for name in self.dnames}), study)

    def add(self, block) -> None:
        self.blocks.append(block)

    def fig(self, figure, caption: str, alt: str, key: str, **kwargs) -> None:
        """Add a figure block (rendered at the report's dpi) and record its key."""
        block = figure_block(figure, caption, alt, key, self.dpi, **kwargs)
        self.figs.append(block.key)
        self.blocks.append(block)

    def design(self, name: str):
        return self.proto.designs.get(name) or next(r.design for r in self.study.results
                                                    if self.study.name_of(r) == name)


#: What a report holds: ``"summary"`` (the two-page summary for the committee and the provenance) or
#: ``"full"`` (the summary, then every section as an appendix).
DETAILS = ("summary", "full")


def build_report(study, *, created: str | None = None, path_cohorts: int = PATH_COHORTS,
                 dpi: int = 150, both_questions: bool = False, grids: dict | None = None,
                 detail: str = "full") -> CommitteeReport:
    """Build the committee report of ``study`` (a :class:`~doseesc.study.Study`).

    Sections: a summary for the committee (the protocol in five lines, every design under every scenario on
    its own question with the average and the worst scenario, the standard safety figures and a paragraph
    naming the design that does best on average and where it does worse); then, with ``detail="full"``
    (default), as appendices: how to read it; the protocol at a glance; per scenario a plain-language summary,
    the dose-response curves, the key results by design, selection / allocation / sample-size
    figures and a table per design; the decision table and first escalation paths of each
    design; provenance.

    Each design is reported on the question it answers (MTD designs on the true MTD, OBD designs on the
    true OBD); ``both_questions`` adds both P(true MTD) and P(true OBD) for every design to the key tables.
    Designs that differ in maximum N, safety stopping or expansion carry a marker and a note. ``grids``
    (name -> :class:`~doseesc.grid.GridResult`, e.g. of the file's ``[[grid]]`` tables) adds a section
    "Calibration" with each grid's points, best point and Pareto figure.
    """
    if not study.results:
        raise DoseescError("the study has no results to report")
    if detail not in DETAILS:
        raise DoseescError(f"detail = {detail!r} must be one of {', '.join(DETAILS)}")
    created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    b = _Builder(study, created, path_cohorts, dpi, both_questions, detail=detail)
    _title_section(b)
    _executive_summary(b)
    if detail == "summary":
        _provenance_section(b)
        return CommitteeReport(study=study, blocks=b.blocks, title=b.title, provenance=b.prov, figures=b.figs)
    b.add(PageBreak())
    b.add(Heading(1, "Appendix", "appendix"))
    b.add(Paragraph("The sections below give the detail behind the summary: how to read the numbers, the protocol "
                    "at a glance, every scenario with its figures and every design's tables, the decision rules "
                    "and escalation paths, and the provenance."))
    _how_to_read_section(b)
    _protocol_section(b)
    if len(b.snames) > 1:
        _averages_section(b)
    for s in b.snames:
        _scenario_section(b, s)
    _indications_section(b)
    _phase2_section(b)
    _backfill_section(b)
    if grids:
        _grid_section(b, grids)
    _rules_section(b)
    b.add(PageBreak())
    b.add(Heading(1, "Statistical methods (protocol text)", "protocol-text"))
    b.add(Paragraph("The section below is the text doseesc protocol-text writes for the protocol's statistical "
                    "methods (Markdown and Word), from the same runs as this report.", "small"))
    for block in markdown_blocks(protocol_text(b.proto, b.study, title=False)):
        b.add(block)
    _provenance_section(b)
    return CommitteeReport(study=study, blocks=b.blocks, title=b.title, provenance=b.prov, figures=b.figs)


def _title_section(b: _Builder) -> None:
    proto, prov = b.proto, b.prov
    b.add(Heading(0, b.title))
    if proto.title or proto.registry:
        b.add(Paragraph(" ".join(x for x in [proto.title, f"({proto.registry})" if proto.registry else ""] if x),
                        "lead"))
    b.add(Paragraph(f"Committee report generated by doseesc {prov['doseesc version']} on {b.created} from "
                    f"{prov['scenario file']}: {len(b.dnames)} designs under {len(b.snames)} truth scenarios, "
                    f"{b.runs} for each design and scenario"
                    + ("" if b.exact else f", seed entropy {prov['seed entropy']}") +
                    ". The Provenance section gives the command that reproduces every number.", "small"))


def _executive_summary(b: _Builder) -> None:
    """At most two pages: the protocol in five lines, every design under every scenario on its own question
    (average and worst scenario), the safety figures averaged over scenarios, and a paragraph from the
    numbers."""
    proto = b.proto
    b.add(Heading(1, "Summary for the committee", "summary"))
    for line in protocol_lines(b):
        b.add(Paragraph(line, "bullet"))
    b.add(cross_scenario_table(b.study, notes=b.notes,
                               caption="P(correct) of each design under each scenario, on the question it answers "
                                       "(P(select the true MTD) for MTD designs, P(select the true OBD) for OBD "
                                       "designs), %, with its average and worst scenario."))
    for sentence in verdict_sentences(b.study):
        b.add(Paragraph(sentence))
    if len(b.snames) > 1:
        b.add(averages_table(b.study, notes=b.notes, kind="summary-averages",
                             caption="Safety and size, averaged over the scenarios (worst "
                             "scenario in brackets): P(select a tier above the true MTD), P(more than 60% / 80% of "
                             "patients treated above it), P(poor allocation), P(a cohort with 2 or more DLTs), and "
                             "mean DLTs, patients treated and patients screened per trial."))
    foot = conduct_footnote(b.notes)
    if foot is not None:
        b.add(Paragraph(foot, "small"))
    for sentence in _summary_extras(b):
        b.add(Paragraph(sentence))
    if proto.obd is not None:
        ties = [t for s in b.snames if (t := near_tie_warning(scenario_results(b.study, s),
                                                               tier_labels(proto.tiers))) is not None]
        if ties:
            b.add(Paragraph(f"Near-ties of the true OBD in {len(ties)} scenario(s): read P(true OBD) there with "
                            "the expected utility and P(within 5 points) of the appendix.", "small"))


def protocol_lines(b: _Builder) -> list[str]:
    """The protocol in five lines: population, product and tiers, DLT, response, sample size."""
    proto, lad = b.proto, b.proto.tiers
    who = proto.title or proto.name
    lines = [f"Protocol: {who}" + (f" ({proto.registry})." if proto.registry else ".")]
    band = f", release band ±{100 * lad.tolerance:g}%" if lad.tolerance else ""
    lines.append(f"Tiers: {', '.join(tier_labels(lad))}{band}.")
    dlt = getattr(proto, "dlt_definition", "") or "not stated in the file"
    win = getattr(proto, "dlt_window_days", None)
    win = win if win is not None else (proto.calendar.dlt_window_days if proto.calendar is not None else None)
    dlt = dlt.rstrip(". ")
    lines.append(f"DLT: {dlt}" + ("" if win is None else f"; window {win / DAYS_PER_MONTH:.1f} months "
                                  f"({win:g} days)") + (f"; target DLT rate {proto.target:g}." if proto.target
                                                        is not None else "."))
    resp = (getattr(proto, "response_definition", "") or "").rstrip(". ")
    rwin = getattr(proto, "response_window_days", None)
    if resp or rwin is not None:
        lines.append(f"Response: {resp or 'not defined in the file'}"
                     + ("" if rwin is None else f"; judged at {rwin / DAYS_PER_MONTH:.1f} months ({rwin:g} days)")
                     + ".")
    else:
        lines.append("Response: not modelled (no response window in the file).")
    maxn = sorted({d.largest_n() for d in proto.designs.values()})
    lines.append("Sample size: " + (f"at most {maxn[0]} patients" if len(maxn) == 1 else
                                    f"at most {maxn[0]} to {maxn[-1]} patients, by design") + "; "
                 + b.runs + " per design and scenario.")
    return lines


def _own(r) -> str:
    return QUESTION_COLUMNS[r.design.question][0]


def cross_scenario_table(study, caption: str = "", notes: dict | None = None) -> Table:
    """Designs as rows; per scenario each design's P(correct) on its own question (exact where the study holds
    the exact run), then the average over scenarios and the worst scenario."""
    snames = _scenario_names(study)
    marks = conduct_markers(notes or {})
    per = {s: preferred_results(study, scenario_results(study, s)) for s in snames}
    names = list(per[snames[0]])
    cols = ["Design", "Q"] + [f"S{i + 1}" for i in range(len(snames))] + ["average", "worst"]
    rows, ses = [], []
    for d in names:
        cells = [d + (f" {marks[d]}" if d in marks else ""), per[snames[0]][d].design.question]
        vals = []
        for s in snames:
            r = per[s][d]
            est, se = r.metric(_own(r))
            vals.append(est)
            if math.isfinite(se) and not r.is_exact:
                ses.append(se)
            cells.append("n/a" if not math.isfinite(est) else f"{100 * est:.1f}" + ("*" if r.is_exact and not
                                                                                      _all_exact(per) else ""))
        ok = [v for v in vals if math.isfinite(v)]
        cells += [f"{100 * sum(ok) / len(ok):.1f}" if ok else "n/a", f"{100 * min(ok):.1f}" if ok else "n/a"]
        rows.append(cells)
    legend = "; ".join(f"S{i + 1} {s}" for i, s in enumerate(snames))
    tail = f" Scenarios: {legend}."
    if ses:
        tail += f" Monte Carlo values have an MCSE of at most {100 * max(ses):.1f} points"
        tail += "; * exact." if any(r.is_exact for s in snames for r in per[s].values()) and not _all_exact(per) \
            else "."
    return Table(columns=cols, rows=rows, caption=caption + tail, attrs={"kind": "cross"}, row_keys=names,
                 align=["l", "l"] + ["r"] * (len(cols) - 2), wrap=(0,))


def _all_exact(per: dict) -> bool:
    """Whether every result of a cross-scenario table is exact (then no result needs marking)."""
    return all(r.is_exact for res in per.values() for r in res.values())


def verdict_sentences(study) -> list[str]:
    """From the numbers: per question, the design with the best average P(correct) over the scenarios, the
    scenarios where another design of that question does clearly better (by more than 2 MCSE of the paired
    difference), and its safety against the others."""
    snames = _scenario_names(study)
    per = {s: preferred_results(study, scenario_results(study, s)) for s in snames}
    names = list(per[snames[0]])
    out = []
    for q in ("MTD", "OBD"):
        mine = [d for d in names if per[snames[0]][d].design.question == q]
        if not mine:
            continue
        avg = {}
        for d in mine:
            v = [per[s][d].metric(_own(per[s][d]))[0] for s in snames]
            v = [x for x in v if math.isfinite(x)]
            avg[d] = sum(v) / len(v) if v else -1.0
        best = max(mine, key=lambda d: avg[d])
        what = "selects the true MTD" if q == "MTD" else "selects the true OBD"
        over = f"the {len(snames)} scenarios" if len(snames) > 1 else "the one scenario"
        text = (f"{q} question: {best} {what} most often on average over {over} "
                f"({100 * avg[best]:.1f}%")
        others = sorted((d for d in mine if d != best), key=lambda d: -avg[d])
        text += (f"; next {others[0]}, {100 * avg[others[0]]:.1f}%)." if others else ").")
        worse = []
        for s in snames:
            rb = per[s][best]
            for d in others:
                diff, se = paired_difference(per[s][d], rb, _own(rb))
                if math.isfinite(diff) and diff > 0.005 and (se == 0 or diff > 2 * se):
                    worse.append((s, d, diff))
        if worse:
            by_s = {}
            for s, d, diff in worse:
                if s not in by_s or diff > by_s[s][1]:
                    by_s[s] = (d, diff)
            text += " It does worse in " + "; ".join(f"'{s}' ({d} {100 * diff:+.1f} points)"
                                                     for s, (d, diff) in by_s.items()) + "."
        else:
            text += " No other design answering this question does clearly better in any scenario."
        above = {d: [per[s][d].metric("p_above_mtd")[0] for s in snames] for d in mine}
        above = {d: sum(v) / len(v) for d, v in above.items() if all(math.isfinite(x) for x in v)}
        if best in above and len(above) > 1:
            shown = {d: f"{100 * v:.1f}" for d, v in above.items()}   # ties as printed share a rank
            rank = 1 + sum(1 for d in above if above[d] < above[best] and shown[d] != shown[best])
            tied = sum(1 for d in above if shown[d] == shown[best]) - 1
            place = (f"{_ordinal(rank)} lowest of {len(above)}" if not tied else
                     f"as low as any of the {len(above)}" if rank == 1 and tied == len(above) - 1 else
                     f"{_ordinal(rank)} lowest of {len(above)}, tied with {tied} other{'s' if tied > 1 else ''}")
            text += (f" It selects a tier above the true MTD in {100 * above[best]:.1f}% of trials on average "
                     f"({place}).")
        out.append(text)
    return out


def _ordinal(n: int) -> str:
    """``the`` for 1 (as in "the lowest"), else 2nd, 3rd, 4th..."""
    return {1: "the", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _averages_section(b: _Builder) -> None:
    """Every design over all the scenarios: the average and the worst scenario of each key figure."""
    b.add(Heading(1, "All scenarios together", "averages"))
    k = len(b.snames)
    some = any(getattr(b.study, "exact_results", None) or {})
    b.add(averages_table(b.study, caption=f"Each design averaged over the {k} scenarios (equal weights), in brackets "
                         "the worst scenario: P(correct) on the design's own question (the true MTD or OBD), the "
                         "probability of selecting a tier above the true MTD, of treating more than 60% or 80% of "
                         "patients above it, of poor allocation (fewer patients at the true MTD than at another "
                         "tier), of a cohort with two or more DLTs, and mean DLTs, patients treated and patients "
                         "screened per trial" + ("; exact values where computed" if some else "") + ".",
                         notes=b.notes))
    foot = conduct_footnote(b.notes)
    if foot is not None:
        b.add(Paragraph(foot, "small"))


def _how_to_read_section(b: _Builder) -> None:
    exact, n_trials, tgt = b.exact, b.n_trials, b.proto.target
    b.add(Heading(1, "How to read this report", "how-to-read"))
    b.add(Paragraph(
        "A truth scenario is an assumption about the true probability of a dose-limiting toxicity (DLT), and "
        "where given of a response, at each dose tier. Under each scenario every candidate design was run on "
        + ("every possible trial (exact enumeration)" if exact else
           f"the same {n_trials:,} simulated trials: the same virtual patients with the same outcomes, so "
           "differences between designs are paired comparisons and are more precise than separate runs") + "."))
    b.add(Paragraph(
        "The true MTD is the highest tier whose true P(DLT) is at most the target DLT rate"
        + (f" ({tgt:g})" if tgt is not None else "") + "; when even the lowest tier exceeds it, the correct "
        "decision is to stop with no dose. P(select) of a tier is the share of trials that end by recommending it. "
        + ("" if exact else "Numbers in brackets and after ± are one Monte Carlo standard error (MCSE), the "
           "uncertainty due to simulating a finite number of trials; error bars in the figures are ±1.96 MCSE. ")
        + "Percentages are of trials, except the shares of patients, which are of a trial's patients."))
    glossary = {}
    for r in b.study.results:
        for name, row in r.metrics().iterrows():
            glossary.setdefault(name, row["definition"])
    b.add(Table(columns=["Metric", "Definition"],
                rows=[[MONTH_METRICS.get(k, metric_name(k)), month_definition(k, v)] for k, v in glossary.items()],
                row_keys=list(glossary),
                caption="Metrics reported for every design and scenario", attrs={"kind": "glossary"},
                align=["l", "l"], wrap=(1,)))


def _protocol_section(b: _Builder) -> None:
    """The protocol at a glance: tiers, settings, candidate designs, truth scenarios."""
    proto = b.proto
    b.add(PageBreak())
    b.add(Heading(1, "The protocol at a glance", "protocol"))
    if proto.source:
        b.add(Paragraph(proto.source))
    note = (proto.extra or {}).get("design_note")
    if note:
        b.add(Paragraph(note))
    b.add(_tiers_table(proto.tiers))
    b.add(_settings_table(b))
    drows = []
    for name in b.dnames:
        d = b.design(name)
        rule, stops = _split_rules(d)
        drows.append([name, d.kind, str(d.max_n), rule, stops])
    b.add(Table(columns=["Design", "Type", "Max N", "Decision rule in plain words",
                         "Stopping rules and constraints"], rows=drows,
                caption="Candidate designs", attrs={"kind": "designs"}, align=["l", "l", "r", "l", "l"],
                wrap=(3, 4), row_keys=b.dnames))
    b.add(_scenarios_table(b))


def _tiers_table(lad) -> Table:
    tcols = ["No.", "Dose"]
    trows = []
    band = lad.band() if lad.tolerance else None
    if lad.labels is not None:
        tcols.append("Nominal dose")
    if band is not None:
        tcols.append(f"Release band (±{100 * lad.tolerance:g}%)")
    for t in range(lad.n_tiers):
        row = [str(t + 1), tier_label(lad, t)]
        if lad.labels is not None:
            row.append(dose_text(lad.doses[t], lad.unit))
        if band is not None:
            lo, hi = band[t]
            row.append(f"{dose_text(lo, '')} to {dose_text(hi, lad.unit)}")
        trows.append(row)
    return Table(columns=tcols, rows=trows, caption="Dose tiers (No. is the tier number used in trial logs "
                 "such as \"1NNN 2NTN\")", attrs={"kind": "tiers"}, align=["r"] + ["l"] * (len(tcols) - 1))


def _settings_table(b: _Builder) -> Table:
    proto, lad, tgt = b.proto, b.proto.tiers, b.proto.target
    settings = []
    if tgt is not None:
        settings.append(("Target DLT rate", f"{tgt:g}"))
    sizes = sorted({d.cohort_size for d in proto.designs.values()} - {None})
    if sizes:
        settings.append(("Cohort size", ", ".join(str(s) for s in sizes)))
    maxn = {n: d.max_n for n, d in proto.designs.items()}
    vals = set(maxn.values()) - {None}
    if len(vals) == 1:
        settings.append(("Maximum number of patients", f"{vals.pop()} (every design)"))
    elif vals:
        settings.append(("Maximum number of patients", "; ".join(f"{n}: {v}" for n, v in maxn.items()
                                                                 if v is not None)))
    foot = conduct_footnote(b.notes)
    if foot is not None:
        settings.append(("Differences in conduct", foot.split(": ", 1)[1]))
    if proto.obd is not None:
        settings.append(("True OBD", proto.obd.text()))
    if proto.dose_model is not None:
        settings.append(("Actual dose and manufacturing", _describe_model(proto.dose_model, lad)))
    if proto.calendar is not None:
        settings.append(("Calendar", _describe_model(proto.calendar, lad)))
    settings.append(("Truth scenarios", ", ".join(b.snames)))
    settings.append(("Evaluation", b.runs + ("" if b.exact else f" per design and scenario; seed entropy "
                                                                f"{b.prov['seed entropy']}")))
    return Table(columns=["Setting", "Value"], rows=[list(s) for s in settings], caption="Settings",
                 attrs={"kind": "settings"}, align=["l", "l"], wrap=(1,), row_keys=[s[0] for s in settings])


def _scenarios_table(b: _Builder) -> Table:
    results, lad = b.study.results, b.proto.tiers
    srows = []
    for s in b.snames:
        r = next(x for x in results if x.scenario.name == s)
        sc = r.scenario
        mtd = r.true_mtd
        obd = next((x.true_obd for x in results if x.scenario.name == s and x.true_obd is not None), None)
        srows.append([s, ", ".join(f"{p:.2f}" for p in sc.true_tox),
                      "" if sc.true_eff is None else ", ".join(f"{p:.2f}" for p in sc.true_eff),
                      "" if mtd is None else tier_label(lad, mtd), "" if obd is None else tier_label(lad, obd),
                      sc.description])
    return Table(columns=["Scenario", "true P(DLT) by tier", "true P(response) by tier", "true MTD", "true OBD",
                          "Description"], rows=srows, caption="Truth scenarios", attrs={"kind": "scenarios"},
                 align=["l"] * 6, wrap=(5,), row_keys=b.snames)


def _scenario_section(b: _Builder, s: str) -> None:
    """One scenario: summary in words, dose-response, key results, figures, actual doses, details by design."""
    res = scenario_results(b.study, s)
    sc = next(iter(res.values())).scenario
    b.add(PageBreak())
    b.add(Heading(1, f"Scenario '{s}'", f"scenario-{_slug(s)}"))
    if sc.description:
        b.add(Paragraph(sc.description))
    b.add(Heading(2, "In brief"))
    tie = near_tie_warning(res, tier_labels(b.proto.tiers))
    if tie is not None:
        b.add(Paragraph("Warning: " + tie + ".", "lead"))
    for sentence in scenario_summary(preferred_results(b.study, res), both_questions=b.both_questions, timing=res):
        b.add(Paragraph(sentence, "bullet"))
    _scenario_figures(b, s, res)
    dosed = next((r for r in res.values() if r.dose_model is not None and r.patients is not None
                  and "dose" in r.patients), None)
    if dosed is not None:
        _actual_doses(b, s, res, dosed)
    b.add(Heading(2, "Details by design"))
    pref = preferred_results(b.study, res)
    for name, r in res.items():
        b.add(Heading(3, f"{name}, scenario '{s}'"))
        by_tier = "By tier (truth: the true MTD and OBD)" + (
            "; exact" if pref[name].is_exact and not r.is_exact else "")
        b.add(Row([selection_table(pref[name], caption=by_tier,
                                   attrs={"kind": "select", "design": name, "scenario": s}),
                   metrics_table(r, caption="Operating characteristics" + (
                       " (Monte Carlo; the table beside it is exact)" if pref[name].is_exact and not r.is_exact
                       else ""),
                                 attrs={"kind": "metrics", "design": name, "scenario": s})]))


def _scenario_figures(b: _Builder, s: str, res: dict) -> None:
    """Dose-response curves, key results table, selection, allocation, sample size (and duration)."""
    from . import plots

    exact, colours = b.exact, b.colours
    first = next(iter(res.values()))
    sc = first.scenario
    obd_def = next((r.obd for r in res.values() if r.obd is not None), None)
    ax = plots.plot_dose_response(sc, b.proto.tiers, first.target, obd_def)
    b.fig(ax.figure, f"True dose-response of scenario '{s}': P(DLT) per tier (solid)"
          + (", P(response) (dashed)" if sc.true_eff is not None else "")
          + ("" if first.target is None else f", the target DLT rate {first.target:g} (dotted) and "
             "the true MTD (shaded)") + (", the true OBD (star)" if obd_def is not None
                                          and sc.true_eff is not None else "") + ".",
          f"dose-response curves of scenario {s}", f"dose-response/{s}")
    b.add(Heading(2, "Key results by design"))
    pref = preferred_results(b.study, res)
    some = any(r.is_exact for r in pref.values()) and not exact
    b.add(key_metrics_table(pref, caption=f"Key results, scenario '{s}'" + ("" if exact else
                            " (MCSE in brackets)") + _question_caption(res)
                            + ("; designs marked (exact): exact enumeration, no MCSE (durations simulated)"
                               if some else ""), attrs={"kind": "key", "scenario": s},
                            both_questions=b.both_questions, notes=b.notes, timing=res))
    foot = conduct_footnote(b.notes)
    if foot is not None:
        b.add(Paragraph(foot, "small"))
    ax = plots.plot_selection(res, colors=colours)
    b.fig(ax.figure, f"Scenario '{s}': probability that the trial ends by selecting each tier (or "
          "no dose), by design" + ("" if exact else ", with ±1.96 MCSE error bars")
          + "; the true MTD (and OBD) are shaded.", f"selection by design, scenario {s}", f"selection/{s}")
    ax = plots.plot_allocation(res, colors=colours)
    b.fig(ax.figure, f"Scenario '{s}': mean number of patients treated at each tier, by design.",
          f"patient allocation by tier, scenario {s}", f"allocation/{s}")
    ax = plots.plot_sample_size(res, colors=colours)
    b.fig(ax.figure, f"Scenario '{s}': distribution of the number of patients per trial (circle "
          "area: probability), its 10% to 90% range (line) and mean (diamond), by design.",
          f"sample size distribution, scenario {s}", f"sample-size/{s}")
    if all("duration_days" in r.extra for r in res.values()):
        ax = plots.plot_duration_vs_correct(res, colors=colours)
        asked = sorted({r.design.question for r in res.values()})
        what = (f"the true {asked[0]}" if len(asked) == 1 else
                "the dose of the design's own question (the true MTD for MTD designs, the true OBD for OBD "
                "designs, one panel per question)")
        b.fig(ax.figure, f"Scenario '{s}': median trial duration (months; thin line: 10-90% range) "
              f"against the probability of selecting {what}, by design, with ±1.96 MCSE "
              "bars.", f"duration against correct selection, scenario {s}", f"duration/{s}")


def _question_caption(res: dict) -> str:
    """What the P(correct) column of a key table shows when MTD and OBD designs mix."""
    if len({r.design.question for r in res.values()}) < 2:
        return ""
    return ("; P(correct): each design on the question it answers, P(select the true MTD) for MTD designs, "
            "P(select the true OBD) for OBD designs")


def _actual_doses(b: _Builder, s: str, res: dict, dosed) -> None:
    """The actual infused doses of one design's run of scenario ``s``: words, table, violins."""
    lad = b.proto.tiers
    sc = next(iter(res.values())).scenario
    name0 = next(n for n, r in res.items() if r is dosed)
    b.add(Heading(2, "Actual infused doses"))
    b.add(Paragraph(
        "Each patient's product is drawn from the protocol's actual-dose model ("
        + dosed.dose_model.describe(lad) + "). "
        + ("This scenario gives the risk as a curve of the actual dose: each patient's risk is evaluated "
           "at the dose received, and the true P(DLT) per tier above is the curve averaged over the actual "
           "doses of the tier's products (the true MTD and OBD are defined on it)."
           if sc.tox_curve is not None else
           "This scenario gives the risk per tier, so the actual dose changes which patients are "
           "evaluable and replaced, not their risk.")))
    ds = dosed.dose_summary()
    b.add(Table(
        columns=["Tier", "band", "patients infused per trial", "actual dose: 10% / 50% / 90%",
                 "below band"],
        rows=[[tier_label(lad, t), f"{dose_text(row['lower'], '')} to {dose_text(row['upper'], '')}",
               f"{row['mean_infused']:.2f}",
               " / ".join(dose_text(row[c], "") for c in ("dose_q10", "dose_q50", "dose_q90")),
               f"{100 * row['share_below_band']:.1f}%"] for t, (_, row) in enumerate(ds.iterrows())],
        caption=f"Actual doses ({lad.unit}), design {name0}, scenario '{s}'",
        attrs={"kind": "actual-dose", "scenario": s}))
    ax = dosed.plot_actual_doses()
    b.fig(ax.figure, f"Scenario '{s}', design {name0}: distribution of the actual infused dose "
          "of every infused patient by assigned tier (violins, log scale), the release band "
          "(shaded) and the nominal dose (dashed).", f"actual doses, scenario {s}", f"actual-dose/{s}")


def _grid_section(b: _Builder, grids: dict) -> None:
    """Each calibration grid: what was swept, every point (objective with MCSE, mean N, feasibility), the best
    feasible point and the Pareto figure."""
    b.add(PageBreak())
    b.add(Heading(1, "Calibration", "calibration"))
    b.add(Paragraph("Each grid simulates every parameter point of one design under the scenarios on the same "
                    "simulated patients (paired), and scores it by P(select the true MTD or OBD, the design's own "
                    "question) averaged over the scenarios; points that break a constraint are marked."))
    for name, res in grids.items():
        g = res.grid
        pts = res.points()
        params = [c for c in pts.columns if c in g.points[0]]
        b.add(Heading(2, name, f"grid-{_slug(name)}"))
        what = "the true MTD" if g.objective == "p_correct" else "the true OBD"
        cons = "; constraints: " + "; ".join(c.text for c in g.constraints) if g.constraints else ""
        b.add(Paragraph(f"{g.designs[0].label} over {', '.join(params)}: {len(pts)} points x {len(g.scenarios)} "
                        f"scenarios x {g.n_trials:,} trials; objective P(select {what}) averaged over the "
                        f"scenarios{cons}.", "small"))
        order = pts.sort_values("objective", ascending=False, kind="stable")
        rows = [[", ".join(f"{k} = {row[k]}" for k in params), f"{100 * row['objective']:.1f} "
                 f"({100 * row['objective_mcse']:.1f})", f"{row['expected_n']:.1f}",
                 "yes" if row["feasible"] else f"no: {row['violated']}"] for _, row in order.iterrows()]
        b.add(Table(columns=["Point", "P(correct), % (MCSE)", "mean N", "meets the constraints"], rows=rows,
                    caption=f"{name}: every point, best first", attrs={"kind": "grid", "grid": name},
                    row_keys=[str(p) for p in order.index], align=["l", "r", "r", "l"], wrap=(0, 3)))
        best = res.best()
        b.add(Paragraph("Best point meeting the constraints: " + (
            "none" if best is None else ", ".join(f"{k} = {best[k]}" for k in params)
            + f", P(correct) {100 * best['objective']:.1f}% ({100 * best['objective_mcse']:.1f})") + "."))
        y = g.constraints[0].metric if g.constraints else "mean_dlt"
        ax = plot_pareto(res, "objective", y)
        b.fig(ax.figure, f"{name}: each point's objective against {metric_name(y)} (mean over scenarios), "
              "±1.96 MCSE bars; the Pareto front joined, the best feasible point starred.",
              f"calibration grid {name}", f"grid/{name}", max_height=4.5)


def _rules_section(b: _Builder) -> None:
    """Per design: its rules in words, its decision table (where it has one) and its first paths."""
    b.add(PageBreak())
    b.add(Heading(1, "Decision rules and escalation paths", "rules"))
    b.add(Paragraph(
        "For each design: its decision table where it has one (interval designs and the 3+3 decide from the "
        "number of patients and DLTs at the current tier alone), and every path of the first "
        f"{b.path_cohorts} cohorts from the start of the trial, as decided by the same code that ran the "
        "simulations."))
    for name in b.dnames:
        d = b.design(name)
        b.add(Heading(2, name, f"rules-{_slug(name)}"))
        b.add(Paragraph(d.describe()))
        _decision_table_blocks(b, name, d)
        _paths_blocks(b, name, d)
        _worked_example_blocks(b, name, d)


def _decision_table_blocks(b: _Builder, name: str, d) -> None:
    """The design's decision table and its colour grid, in the design's own words; or why it has none."""
    from . import plots

    if d.decision_grid() is None and d.pending_grid() is not None:
        _pending_table_block(b, name, d)
        return
    try:
        dt = decision_table(d)
    except DoseescError:
        try:   # the paths are drawn below only where the path engine applies (not to time-to-event designs)
            paths(d, 1, ladder=b.proto.tiers)
            shown = "the paths below show what it does"
        except DoseescError:
            shown = "its simulated results show what it does (its escalation paths cannot be enumerated)"
        b.add(Paragraph(f"{name} has no decision table: its decisions depend on more than the patients and "
                        f"DLTs at the current tier (a model fitted to every tier, or responses); {shown}.", "small"))
        return
    words = d.decision_words()
    cols = ["n", "escalate if y <=", "stay if y =", f"{_clause(words.get('D', 'de-escalate'))} if y >="]
    keys = ["escalate_if_le", "stay", "deescalate_if_ge"]
    if "DU" in words:
        cols.append("eliminate if y >=")
        keys.append("eliminate_if_ge")
    rows = [[str(n)] + ["" if _isna(row[c]) else str(row[c]) for c in keys] for n, row in dt.iterrows()]
    b.add(Table(columns=cols, rows=rows, caption=f"{name}: decision table (n patients at the current "
                "tier, y of them with a DLT; eliminate: de-escalate and never return to this tier or "
                "those above)",
                attrs={"kind": "decision", "design": name}, align=["r"] * len(cols),
                row_keys=[str(n) for n in dt.index]))
    ax = plots.plot_decision_table(d)
    b.fig(ax.figure, f"{name}: decision for every number of patients (rows) and DLTs (columns) "
          "at the current tier.", f"decision table of {name}", f"decision/{name}", max_height=5.2)


def _pending_table_block(b: _Builder, name: str, d) -> None:
    """The table of a design that decides with patients still in follow-up (rolling six)."""
    pt = pending_table(d)
    cols = ["n enrolled", "pending"] + [f"y = {y}" for y in pt.columns]
    rows = [[str(n), str(m)] + [str(v) for v in row] for (n, m), row in pt.iterrows()]
    b.add(Table(columns=cols, rows=rows, caption=f"{name}: decision for the next patient, from the patients "
                "enrolled at the current tier, those still in follow-up (pending) and the DLTs seen (y): E escalate, "
                "S stay (enrol here), D de-escalate, W suspend accrual",
                attrs={"kind": "decision", "design": name}, align=["r"] * len(cols),
                row_keys=[f"{n}-{m}" for n, m in pt.index]))


def _paths_blocks(b: _Builder, name: str, d) -> None:
    """Every path of the design's first cohorts: the figure, and the table where it is short."""
    k, proto = b.path_cohorts, b.proto
    try:
        dp = paths(d, k, ladder=proto.tiers)
    except DoseescError as exc:
        b.add(Paragraph(f"Escalation paths of {name} not shown: {exc}", "small"))
        return
    ax = dp.plot()
    form = (" Complete data: each patient followed to the end of the window before the next decision (the "
            "slow-accrual limit; with patients pending it can suspend accrual, see the table above)."
            if d.time_to_event else "")
    b.fig(ax.figure, f"{name}: every path of the first {k} cohorts from the start of the "
          f"trial (edge colour and label: DLTs in the cohort; cross: the trial stops).{form}",
          f"escalation paths of {name}", f"paths/{name}", max_height=5.2)
    table = dp.table()
    if len(table) <= MAX_PATH_ROWS:
        cols = [str(c) for c in table.columns]
        b.add(Table(columns=cols, rows=[[("" if _isna(v) else str(v)) for v in row]
                                        for row in table.itertuples(index=False)],
                    caption=f"{name}: paths of the first {k} cohorts",
                    attrs={"kind": "paths", "design": name}, align=["l"] * len(cols),
                    wrap=(len(cols) - 1,)))
    else:
        b.add(Paragraph(f"{len(table):,} distinct paths (too many to list here; the figure summarises "
                        f"them). List them with: doseesc paths {proto.path or 'FILE'} --design '{name}' "
                        f"--cohorts {k}", "small"))


def _worked_example_blocks(b: _Builder, name: str, d) -> None:
    """A worked example: the first simulated trial of the first scenario, read by ``doseesc recommend`` as a
    finished trial, with the end-of-trial estimates per tier (isotonic P(DLT) and its 95% credible interval;
    observed response rate and utility for designs that use response). Not for time-to-event designs, whose
    answer depends on each patient's follow-up."""
    if d.time_to_event:
        return
    r = next((x for x in b.study.results if b.study.name_of(x) == name and not x.is_exact), None)
    if r is None or r.patients is None:
        return
    log = str(r.trials()["log"].iloc[0])
    if not d.uses_efficacy:      # a toxicity-only design reads DLTs only: responses (E, B) as N, T
        log = log.replace("E", "N").replace("B", "T")
    try:
        rec = recommend(d, log, ladder=b.proto.tiers, warn=False)
    except DoseescError:     # a log the replay cannot read (e.g. an expansion the design adds): no example
        return
    b.add(Paragraph(f"Worked example: the first simulated trial of scenario '{r.scenario.name}' treated "
                    f"{log} (tier number, then N no DLT, T DLT" + (", E response, B both" if rec.responses
                                                                  is not None else "")
                    + f"). doseesc recommend, given this log, says: {rec.message}.", "small"))
    est = rec.estimates()
    cols = ["Dose", "n", "DLT", "P(DLT), isotonic (95% CrI)"]
    has_eff = "utility" in est.columns
    if has_eff:
        cols += ["response rate", "utility"]
    rows = []
    for row in est.itertuples(index=False):
        if not row.n:
            rows.append([row.dose, "0", "", "not tried"] + (["", ""] if has_eff else []))
            continue
        cells = [row.dose, str(row.n), str(row.dlt),
                 f"{row.p_dlt_isotonic:.2f} ({row.ci_low:.2f}-{row.ci_high:.2f})"]
        if has_eff:
            cells += [f"{row.responses}/{row.n} = {row.response_rate:.2f}", f"{row.utility:.1f}"]
        rows.append(cells)
    b.add(Table(columns=cols, rows=rows, caption=f"{name}: end-of-trial estimates of the worked example",
                attrs={"kind": "estimates", "design": name}, align=["l"] + ["r"] * (len(cols) - 1),
                row_keys=[str(t) for t in est["tier"]]))


def _provenance_section(b: _Builder) -> None:
    proto, prov = b.proto, b.prov
    b.add(PageBreak())
    b.add(Heading(1, "Provenance", "provenance"))
    b.add(Paragraph("Run this command with the same doseesc version to reproduce every number in this report "
                    "(the simulations depend only on the scenario file, the number of trials and the seed):"))
    b.add(Paragraph(prov["command"], "lead"))
    if not b.exact:
        b.add(Paragraph(f"The same numbers, as CSV and JSON files: doseesc simulate {proto.path or 'FILE'} "
                        f"--n-trials {b.n_trials} --seed {prov['seed entropy']} --out DIR", "small"))
    b.add(Table(columns=["Item", "Value"], rows=[[k, v] for k, v in prov.items()], caption="Provenance",
                attrs={"kind": "provenance"}, align=["l", "l"], wrap=(1,), row_keys=list(prov)))


def _clause(words: str) -> str:
    """A decision's words as the head of a table column: "stop: MTD = tier below" -> "stop, MTD = tier below,"."""
    return words.replace(": ", ", ") + "," if ": " in words else words


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


# -- indications, phase 2, backfill --------------------------------------------------------------------------

def indication_conduct_notes(study) -> dict[str, str]:
    """Design name -> a short note where its conduct is not pooled: its own results (the cross-scenario and
    per-scenario tables) are one indication's or stratum's escalation, judged against that one's truth (read
    from ``study.indication_notes``)."""
    out = {}
    for (_, d), note in (getattr(study, "indication_notes", None) or {}).items():
        m = re.match(r"conduct '(\w+)': the design's own results are the (.+?) (stratum|indication)'s escalation",
                     note)
        if d not in out and m is not None:
            out[d] = f"the {m.group(2)} {m.group(3)} only, judged on its truth ({m.group(1)})"
    return out


def with_indication_notes(notes: dict, study) -> dict:
    """``notes`` (design -> conduct notes, :func:`doseesc.compare.conduct_notes`) with each design whose own
    results are one indication's or stratum's escalation noted (:func:`indication_conduct_notes`), so that its
    rows carry a marker and the footnote says which truth they are judged on."""
    out = {d: list(n) for d, n in notes.items()}
    for d, note in indication_conduct_notes(study).items():
        if d in out:
            out[d].append(note)
    return out


def _summary_extras(b: _Builder) -> list[str]:
    """Sentences of the summary on what the file adds: indications, a phase 2 stage, backfill cohorts."""
    out = []
    study, proto = b.study, b.proto
    # the summary alone (--detail summary) has no appendix: say where the sections are
    where = "the appendix section" if b.detail == "full" else "the full report's (--detail full) section"
    if getattr(study, "indication_results", None):
        names = proto.indications.names
        out.append(f"The file declares {len(names)} indications ({', '.join(names)}); each design's results per "
                   "indication (P(select) of each indication's true MTD, patients and DLTs) are in "
                   f"{where} 'Indications'.")
    if getattr(proto, "phase2", None) is not None and not b.exact:
        df = study.phase2()
        if not df.empty:
            avg = df.groupby("design", sort=False)["p_promising"].mean()
            lo, hi = avg.idxmin(), avg.idxmax()
            out.append(f"Phase 2 stage after the escalation: P(the selected tier is declared promising), averaged "
                       f"over the scenarios, ranges from {100 * avg[lo]:.1f}% ({lo}) to {100 * avg[hi]:.1f}% ({hi}); "
                       f"{where} 'Phase 2 stage' gives the rule and every scenario.")
    names = [n for n in getattr(proto, "backfills", None) or {} if n in b.dnames]
    if names:
        out.append(f"{'Design' if len(names) == 1 else 'Designs'} {', '.join(names)} "
                   f"{'enrols' if len(names) == 1 else 'enrol'} backfill patients at tiers already cleared; "
                   f"{where} 'Backfill' gives their numbers, DLTs and responses per trial.")
    return out


def _frame_table(df: pd.DataFrame, cols: list[tuple], caption: str, kind: str, keys: list[str]) -> Table:
    """A table of the rows of ``df``: ``cols`` are (column head, function row -> text)."""
    rows = [[f(row) for _, f in cols] for _, row in df.iterrows()]
    return Table(columns=[h for h, _ in cols], rows=rows, caption=caption, attrs={"kind": kind}, row_keys=keys,
                 align=["l", "l"] + ["r"] * (len(cols) - 2), wrap=(0,), font=6.6)


def _p_se(row, name: str) -> str:
    v, se = row.get(name), row.get(f"{name}_mcse")
    if v is None or _isna(v):
        return "n/a"
    return f"{100 * v:.1f}" + ("" if se is None or _isna(se) else f" ({100 * se:.1f})")


def _indications_section(b: _Builder) -> None:
    """Per indication: who, its share of accrual, each design's P(correct) against the indication's truth, its
    patients and DLTs, and P(select) per tier; the notes on runs that leave something out."""
    sections = b.study.indication_sections() if getattr(b.study, "indication_results", None) else []
    if not sections:
        return
    b.add(PageBreak())
    b.add(Heading(1, "Indications", "indications"))
    b.add(Paragraph("The file declares several indications (or strata) that share the escalation or run their own "
                    "(each design's conduct). Each indication is judged against its own truth: P(correct) is "
                    "P(select the indication's true MTD) for MTD designs and its true OBD for OBD designs. The "
                    "tables come from the same simulated trials as the rest of the report."))
    notes = indication_conduct_notes(b.study)
    mark = conduct_markers(b.notes)   # the markers of the other tables
    question = {b.study.name_of(r): r.design.question for r in b.study.results}
    for sec in sections:
        ind = sec["indication"]
        b.add(Heading(2, ind, f"indication-{_slug(ind)}"))
        b.add(Paragraph(sec["text"]))
        m = sec["metrics"]
        keys = [f"{row['design']}|{row['scenario']}" for _, row in m.iterrows()]
        cols = [("Design", lambda r: r["design"] + (f" {mark[r['design']]}" if r["design"] in notes else "")),
                ("Scenario", lambda r: str(r["scenario"])),
                ("true MTD", lambda r: "" if _isna(r.get("true_mtd")) else str(r["true_mtd"])),
                ("P(correct), % (MCSE)", lambda r: _p_se(r, "p_select_obd" if question.get(r["design"]) == "OBD"
                                                         else "p_correct")),
                ("above MTD, %", lambda r: _p_se(r, "p_above_mtd")),
                ("no dose, %", lambda r: _p_se(r, "p_no_dose")),
                ("mean N", lambda r: "n/a" if _isna(r.get("expected_n")) else f"{r['expected_n']:.1f}"),
                ("mean DLTs", lambda r: "n/a" if _isna(r.get("mean_dlt")) else f"{r['mean_dlt']:.2f}")]
        b.add(_frame_table(m, cols, f"{ind}: each design under each scenario, against this indication's truth "
                           "(MCSE in brackets)", "indication-metrics", keys))
        sel = sec["selection"]
        tiers = [c for c in sel.columns if c not in ("design", "scenario", "conduct", "indication")]
        cols = [("Design", lambda r: str(r["design"])), ("Scenario", lambda r: str(r["scenario"]))] + [
            (t, (lambda t: lambda r: "n/a" if _isna(r[t]) else f"{100 * r[t]:.1f}")(t)) for t in tiers]
        b.add(_frame_table(sel, cols, f"{ind}: P(select) of each tier (or no dose), %",
                           "indication-selection", [f"{r['design']}|{r['scenario']}" for _, r in sel.iterrows()]))
    for d, note in notes.items():
        b.add(Paragraph(f"{mark.get(d, '')} {d}: {note}.".lstrip(), "small"))
    grouped: dict = {}
    for (s, d), note in (b.study.indication_notes or {}).items():
        grouped.setdefault(note, []).append((s, d))
    if grouped:
        b.add(Heading(2, "Notes on the per-indication runs"))
        for note, keys in grouped.items():
            ds = list(dict.fromkeys(d for _, d in keys))
            ss = list(dict.fromkeys(s for s, _ in keys))
            where = ("every scenario" if len(ss) == len(b.snames) else ", ".join(f"'{x}'" for x in ss))
            b.add(Paragraph(f"{', '.join(ds)} ({where}): {note}.", "small"))


def phase2_table(study) -> Table | None:
    """Designs x scenarios: P(declare the selected tier promising) % (MCSE) of the protocol's [phase2] stage,
    with the mean patients (escalation + phase 2) and the mean time to the phase 2 decision; None without one."""
    if getattr(study.protocol, "phase2", None) is None or study.method == "exact":
        return None
    df = study.phase2()
    if df.empty:
        return None
    keys = [f"{row['design']}|{row['scenario']}" for _, row in df.iterrows()]
    cols = [("Design", lambda r: str(r["design"])), ("Scenario", lambda r: str(r["scenario"])),
            ("P(promising), % (MCSE)", lambda r: _p_se(r, "p_promising")),
            ("exact, %", lambda r: "n/a" if _isna(r.get("p_promising_exact")) else
             f"{100 * r['p_promising_exact']:.1f}"),
            ("given true MTD, %", lambda r: _p_se(r, "p_promising_given_mtd")),
            ("phase 2 N", lambda r: "n/a" if _isna(r.get("expected_n_phase2")) else f"{r['expected_n_phase2']:.1f}"),
            ("total N", lambda r: "n/a" if _isna(r.get("expected_n_total")) else f"{r['expected_n_total']:.1f}")]
    if "time_to_phase2_decision_days" in df.columns:
        cols.append(("to decision", lambda r: months_text(r["time_to_phase2_decision_days"])))
    return _frame_table(df, cols, "Phase 2 stage after each design's escalation: P(the trial selects a tier and the "
                        "stage declares it promising), % (MCSE), its exact value (exact selections x the stage's "
                        "exact operating characteristics), P(promising) given the escalation selected the true "
                        "MTD, mean phase 2 and total patients per trial and the mean time to the phase 2 decision",
                        "phase2", keys)


def _phase2_section(b: _Builder) -> None:
    t = phase2_table(b.study)
    if t is None:
        return
    b.add(PageBreak())
    b.add(Heading(1, "Phase 2 stage", "phase2"))
    b.add(Paragraph(b.proto.phase2.describe()))
    b.add(t)


def backfill_lines(study) -> list[tuple[str, str, str]]:
    """(design, scenario, sentence) per backfilled design x scenario: backfill patients per trial and their DLTs
    and responses (:func:`doseesc.engines.backfill.backfill_summary`)."""
    out = []
    names = set(getattr(study.protocol, "backfills", None) or {})
    for r in study.results:
        d = study.name_of(r)
        if d not in names or r.is_exact or r.patients is None or "backfill" not in r.patients:
            continue
        bs = backfill_summary(r)
        n, y, e = (float(bs[c].sum()) for c in ("mean_backfilled", "mean_backfill_dlts", "mean_backfill_responses"))
        share = n / float(bs["mean_n"].sum()) if float(bs["mean_n"].sum()) > 0 else math.nan
        out.append((d, r.scenario.name, f"{n:.1f} backfilled per trial ({100 * share:.0f}% of patients), "
                                        f"{y:.2f} DLTs, {e:.2f} responses"))
    return out


def _backfill_section(b: _Builder) -> None:
    lines = backfill_lines(b.study)
    if not lines:
        return
    b.add(Heading(1, "Backfill", "backfill"))
    for name, bf in b.proto.backfills.items():
        b.add(Paragraph(f"{name}: {bf.describe()}", "small"))
    b.add(Table(columns=["Design", "Scenario", "Backfill patients per trial"], rows=[list(x) for x in lines],
                caption="Backfill cohorts: patients per trial, their DLTs and responses (Monte Carlo means)",
                attrs={"kind": "backfill"}, row_keys=[f"{d}|{s}" for d, s, _ in lines], align=["l", "l", "l"],
                wrap=(2,)))
