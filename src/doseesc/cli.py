"""Command line: ``doseesc simulate|exact|check|recommend|table|paths|grid|report|protocol-text FILE``.

Each command loads the scenario file, calls one library function and writes.
Errors caused by the input (:class:`~doseesc.errors.DoseescError`) print one
line and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._lazy import lazy
from ._version import __version__
from .errors import DoseescError
from .limits import DAYS_RANGE, MAX_PATH_NODES, MAX_STATES, MAX_TRIALS, PREFER_EXACT_STATES

if TYPE_CHECKING:
    from .study import Study

# The library loads when a command first needs it, so that `doseesc --help` and a bad option answer at once
# (issue 20 item 7). Each proxy behaves as the module (doseesc._lazy); tests/test_imports.py reads them as edges.
np = lazy("numpy")
_committee = lazy("doseesc.report.committee", snapshot=False)
_compare = lazy("doseesc.compare", snapshot=False)
_exact = lazy("doseesc.engines.exact", snapshot=False)
_grid = lazy("doseesc.grid", snapshot=False)
_labels = lazy("doseesc.report.labels", snapshot=False)
_live = lazy("doseesc.engines.live", snapshot=False)
_obd = lazy("doseesc.obd", snapshot=False)
_paths = lazy("doseesc.engines.paths", snapshot=False)
_protocol = lazy("doseesc.protocol", snapshot=False)
_protocol_text = lazy("doseesc.protocol_text", snapshot=False)
_study = lazy("doseesc.study", snapshot=False)
_summary = lazy("doseesc.report.summary_text", snapshot=False)
_tables = lazy("doseesc.tables", snapshot=False)
_tiers = lazy("doseesc.tiers", snapshot=False)

FORMATS = click.Choice(["table", "csv", "json"])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an exception so that every ``finally`` runs (temporary folders are removed, the
    checkpoint is kept) before the command ends."""


def _on_sigterm(signum, frame):
    raise Terminated()


class _Group(click.Group):
    def invoke(self, ctx):
        previous = None
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:   # not the main thread: leave signals alone
            pass
        try:
            return super().invoke(ctx)
        except DoseescError as exc:
            if ctx.params.get("debug") or ctx.meta.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt as exc:
            if ctx.meta.get("debug"):
                raise
            click.echo(str(ctx.meta.get("interrupted") or "interrupted: nothing was written"), err=True)
            ctx.exit(143 if isinstance(exc, Terminated) else 130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="doseesc")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx, debug):
    """Simulate and exactly evaluate dose-escalation designs for early-phase trials.

    FILE is a scenario file (TOML) describing the protocol's tiers, candidate
    designs and truth scenarios; see scenarios/ for the bundled ones.
    """
    ctx.meta["debug"] = debug


class _Progress:
    """Progress line on stderr, drawn only once a run has taken more than a second: trials done, the design and
    scenario being simulated, and an estimate of the time left.

    ``units`` lists the (scenario, design) runs in the order they are made (scenario-major, as
    :func:`~doseesc.study.run_protocol` makes them), each of ``total / len(units)`` trials, so that the count of
    finished trials tells which one is running."""

    def __init__(self, total: int, enabled: bool, units: list | None = None, what: str = "simulating"):
        self.total, self.done, self.enabled = total, 0, enabled
        self.units, self.what = list(units or []), what
        self.t0 = time.perf_counter()
        self.drawn = False
        self.width = 0
        #: said once every trial is done (what the run does next, e.g. the exact runs)
        self.after = ""

    def _write(self, text: str) -> None:
        pad = max(0, self.width - len(text))
        sys.stderr.write("\r" + text + " " * pad)
        sys.stderr.flush()
        self.width = len(text)
        self.drawn = True

    def __call__(self, n: int):
        self.done += n
        now = time.perf_counter()
        if not self.enabled or now - self.t0 < 1.0:
            return
        pct = 100 * self.done / self.total if self.total else 100.0
        text = f"{self.what}: {self.done:,} / {self.total:,} trials ({pct:.0f}%)"
        if self.units and self.done < self.total:
            per = self.total / len(self.units)
            s, d = self.units[min(int(self.done // per), len(self.units) - 1)]
            text += f", {d} under {s}"
        if 0 < self.done < self.total:
            text += f", about {_secs(now - self.t0, self.done, self.total)} left"
        elif self.after and self.done >= self.total:
            text += f"; {self.after}"
        self._write(text)

    def unit(self, k: int, n: int, scenario: str, design: str) -> None:
        """Progress of runs counted by design x scenario (the exact engine): run ``k`` of ``n`` starts."""
        now = time.perf_counter()
        if not self.enabled or (now - self.t0 < 1.0 and k > 0):
            return
        text = f"{self.what}: {design} under {scenario} ({k + 1} of {n})"
        if k:
            text += f", about {_secs(now - self.t0, k, n)} left"
        self._write(text)

    def close(self):
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _secs(elapsed: float, done: float, total: float) -> str:
    """The time left at the pace so far, as "12 s", "3 min 8 s" or "1 h 5 min"."""
    left = int(round(elapsed / done * (total - done)))
    if left < 60:
        return f"{left} s"
    m, sec = divmod(left, 60)
    if m < 60:
        return f"{m} min {sec} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


def _csv_header(study: Study) -> str:
    prov = study.provenance()
    return "".join(f"# {k}: {json.dumps(v)}\n" for k, v in prov.items())


#: The files doseesc writes into an --out folder. A reused folder loses those of an earlier run that this
#: run does not write (a trials.csv of ``simulate`` beside the files of ``exact``); other files stay.
OWN_FILES = ("summary.csv", "metrics.csv", "stop_report.csv", "trials.csv", "results.json", "provenance.json",
             "paths.csv", "path_nodes.csv", "by_indication.csv", "indication_metrics.csv", "phase2.csv")
_TMP_PREFIX = ".doseesc-"


def _remove_stale(parent: Path) -> None:
    """Remove temporary folders ``.doseesc-<pid>-*`` left in ``parent`` by a doseesc process that no longer
    runs (one killed with SIGKILL, which no handler sees)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = re.fullmatch(re.escape(_TMP_PREFIX) + r"(\d+)-.*", entry.name)
        if m is None or not entry.is_dir():
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (PermissionError, OverflowError, OSError):
            pass


def _probe(folder: Path, what: str) -> None:
    """Refuse, before any work, a folder this process cannot write in."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise DoseescError(f"{what}: cannot write in {folder} ({exc.strerror})") from None


def _prepare_folder(out: str, option: str = "--out") -> Path:
    """The --out folder, created (its parent must exist) and tested for writing before the work starts."""
    target = Path(out)
    what = f"{option} {out}"
    if target.exists() and not target.is_dir():
        raise DoseescError(f"{what}: exists and is not a folder")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise DoseescError(f"{what}: folder {parent} does not exist")
    try:
        target.mkdir(exist_ok=True)
    except OSError as exc:
        raise DoseescError(f"{what}: cannot be created ({exc.strerror})") from None
    _probe(target, what)
    _remove_stale(parent)
    return target


def _prepare_file(path: str, option: str) -> None:
    """An output file's folder exists and can be written in; the file is not a folder."""
    p = Path(path)
    if p.is_dir():
        raise DoseescError(f"{option} {path}: is a folder; give a file name")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise DoseescError(f"{option} {path}: folder {parent} does not exist")
    _probe(parent, f"{option} {path}")


def _write_folder(target: Path, files: dict) -> list[str]:
    """Write ``files`` (name -> function writing that file's path) into a temporary folder beside
    ``target``, then move each into ``target`` (one rename each, so a reader never sees half a file), and
    remove doseesc's own files of an earlier run that this one did not write (:data:`OWN_FILES`). The
    temporary folder is removed on any exit (SIGTERM included: it is raised as an exception)."""
    parent = target.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=parent))
    try:
        for name, write in files.items():
            write(tmp / name)
        target.mkdir(exist_ok=True)
        written = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, target / f.name)
            written.append(str(target / f.name))
        for name in OWN_FILES:
            if name not in files and (target / name).is_file():
                (target / name).unlink()
        return written
    except OSError as exc:
        raise DoseescError(f"--out {target}: cannot write ({exc.strerror})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _csv_writer(df, header: str = "", index: bool = False):
    def write(path):
        with open(path, "w", newline="") as fh:
            fh.write(header)
            _labels.csv_safe(df).to_csv(fh, index=index)
    return write


def _text_writer(text: str):
    def write(path):
        Path(path).write_text(text)
    return write


def _write_outputs(study: Study, out: str, include_trials: bool) -> list[str]:
    """Write every output file into a temporary folder, then move them into ``out``."""
    target = _prepare_folder(out)
    header = _csv_header(study)
    auto = study.method == "auto"   # exact values where computed, as on the terminal, with a method column
    frames = {"summary.csv": lambda: study.summary(prefer_exact=auto),
              "metrics.csv": lambda: study.metrics(prefer_exact=auto), "stop_report.csv": study.stop_report}
    if include_trials:
        frames["trials.csv"] = study.trials
    files = {name: _csv_writer(get(), header) for name, get in frames.items()}
    files.update({name: _csv_writer(df, header) for name, df in study.indication_files().items()})
    if getattr(study.protocol, "phase2", None) is not None and study.method in ("simulate", "auto"):
        files["phase2.csv"] = _csv_writer(study.phase2(), header)
    files["results.json"] = _text_writer(study.to_json() + "\n")
    files["provenance.json"] = _text_writer(json.dumps(study.provenance(), indent=2) + "\n")
    return _write_folder(target, files)


def _emit(study: Study, fmt: str, out: str | None, include_trials: bool, both_questions: bool = False,
          detail: str = "summary", notes: list[str] | None = None) -> None:
    """Write the study on the terminal (``fmt``) and, with ``out``, its files. ``detail`` (table format only):
    ``"summary"`` the compact tables (:func:`_compact_text`), ``"full"`` every result's block, the paired
    comparison, the averages and the actual-dose model's effect. ``notes`` (e.g. designs the exact engine
    skipped) follow the tables. JSON and CSV do not depend on ``detail``."""
    if fmt == "json":
        text = study.to_json()
    elif fmt == "csv":
        text = _csv_header(study) + _labels.csv_safe(study.summary(prefer_exact=study.method == "auto")).to_csv(index=False)
    else:
        width = _width()
        text = _full_text(study, both_questions) if detail == "full" else _summary_text(study, width)
        extra = [f"note: {n}" for n in notes or ()]
        if extra:
            text = text.rstrip("\n") + "\n\n" + "\n".join(extra)
        if study.seed is not None and detail == "full":
            text = text.rstrip("\n") + f"\n\nseed entropy {study.seed['entropy']} (rerun with --seed " \
                f"{study.seed['entropy']})"
        text = _wrap(text, width)
    written = _write_outputs(study, out, include_trials) if out else []
    click.echo(text.rstrip("\n"))
    for w in written:
        click.echo(f"wrote {w}", err=True)


def _indication_hook(study: Study, detail: str, width: int = 80) -> str:
    """The per-indication part of the output for a file with [[indication]] tables ("" otherwise): with
    ``detail == "full"`` every per-indication table (``Study.indication_text()``); by default a small table
    (:func:`_indication_compact`) and a note on each design whose results are one indication's or stratum's."""
    if not getattr(study, "indication_results", None):
        return ""
    if detail == "full":
        return study.indication_text() or ""
    return _indication_compact(study, width)


def _indication_compact(study: Study, width: int = 80) -> str:
    """Designs x indications: P(correct) % on the design's own question (the indication's true MTD, or OBD for
    OBD designs), averaged over the scenarios; then one note per design whose own results are one indication's or
    stratum's escalation."""
    m = study.indication_metrics()
    m = m[m["indication"] != "pooled"]
    inds = list(dict.fromkeys(m["indication"]))
    dnames = list(dict.fromkeys(m["design"]))
    question = {study.name_of(r): r.design.question for r in study.results}
    shares = dict(zip(study.protocol.indications.names, study.protocol.indications.shares))
    cols = []
    for ind in inds:
        cells = []
        for d in dnames:
            col = "p_select_obd" if question.get(d) == "OBD" else "p_correct"
            v = m[(m["design"] == d) & (m["indication"] == ind)][col].astype(float)
            v = v[np.isfinite(v)]
            cells.append(_pct(float(v.mean())) if len(v) else "n/a")
        head = f"{ind} ({100 * shares[ind]:.0f}%)" if ind in shares else ind
        cols.append(("", [(head, cells)]))
    n_s = len(set(m["scenario"]))
    lines = ["Per indication, P(correct) % against its own truth"
             + (f" (mean of {n_s} scenarios; --detail full)" if n_s > 1 else " (--detail full)") + ":"]
    lines += _panels([[d] for d in dnames], ["design"], cols, width, sep="  ")
    return "\n".join(lines)


#: The most lines the default output aims at (the per-indication table is left to --detail full beyond it).
COMPACT_LINES = 80


def _phase2_text(study: Study, width: int) -> str:
    """Designs x scenarios of P(declare the selected tier promising) % of the file's [phase2] stage ("" without
    one, or for exact-only studies)."""
    if getattr(study.protocol, "phase2", None) is None or study.method == "exact":
        return ""
    df = study.phase2()
    if df.empty:
        return ""
    snames = list(dict.fromkeys(df["scenario"]))
    dnames = list(dict.fromkeys(df["design"]))
    cols = []
    for i, s in enumerate(snames):
        cells = []
        for d in dnames:
            v = df[(df["design"] == d) & (df["scenario"] == s)]["p_promising"]
            cells.append(_pct(float(v.iloc[0])) if len(v) else "n/a")
        cols.append(("", [(f"S{i + 1}" if len(snames) > 1 else s, cells)]))
    se = df["p_promising_mcse"].astype(float)
    se = se[np.isfinite(se)]
    lines = ["Phase 2 stage, P(declare promising) %" + (" by scenario" if len(snames) > 1 else "")
             + (f" (MCSE at most {100 * se.max():.1f} points)" if len(se) else "") + ":"]
    lines += _panels([[d] for d in dnames], ["design"], cols, width, sep="  ")
    return "\n".join(lines)


def _summary_text(study: Study, width: int) -> str:
    """The default output: :func:`_compact_text`, the near-tie warnings, the per-indication tables where the file
    has them, and one line on the actual-dose model."""
    proto = study.protocol
    parts = [_compact_text(study, width)]
    scen = list(dict.fromkeys(r.scenario.name for r in study.results))
    warns = {s: w for s in scen if (w := _summary.near_tie_warning(_committee.scenario_results(study, s)))}
    if len(warns) == 1 or (warns and len(scen) == 1):
        parts.append("\n".join(f"warning: {w}" for w in warns.values()))
    elif warns:
        parts.append("warning: near-ties of the true OBD in " + ", ".join(f"S{scen.index(s) + 1} {s}" for s in warns)
                     + " (another tier's utility within the margin; --detail full).")
    ind = _indication_hook(study, "summary", width)
    if ind:
        used = sum(len(_wrap(x, width).split("\n")) for x in parts) + (proto.dose_model is not None) * 2
        if used + len(_wrap(ind, width).split("\n")) > COMPACT_LINES:   # the small table does not fit: a pointer and the notes
            ind = f"Per-indication results ({len(proto.indications.names)} indications): --detail full."
        parts.append(ind.rstrip("\n"))
    ph = _phase2_text(study, width)
    if ph:
        used = sum(len(_wrap(x, width).split("\n")) for x in parts) + (proto.dose_model is not None) * 2
        if used + len(_wrap(ph, width).split("\n")) > COMPACT_LINES:
            ph = "Phase 2 stage: P(declare promising) by design and scenario with --detail full (and phase2.csv)."
        parts.append(ph)
    if proto.dose_model is not None:
        parts.append("Actual-dose model on: " + (
            "the results include it (what it is and its paired effect on each design: --detail full)."
            if study.method in ("simulate", "auto") else
            "exact results use the tier-averaged truth (the model is simulated only: doseesc simulate)."))
    return "\n".join(parts)


def _full_text(study: Study, both_questions: bool = False) -> str:
    """The output of ``--detail full``: each result's block, then (several designs) the paired comparison and
    (several scenarios) the averages, the per-indication tables, the actual-dose model's effect."""
    proto = study.protocol
    parts = [f"{proto.name}" + (f" ({proto.registry})" if proto.registry else "") +
             (f": {proto.title}" if proto.title else "")]
    compared = study.method in ("simulate", "auto") and len({study.name_of(r) for r in study.results}) > 1
    warnings = {s: _summary.near_tie_warning(_committee.scenario_results(study, s))
                for s in dict.fromkeys(r.scenario.name for r in study.results)}
    for i, r in enumerate(study.results):
        parts.append("")
        parts.append(_result_text(study, r, both_questions))
        s = r.scenario.name
        last = i + 1 == len(study.results) or study.results[i + 1].scenario.name != s
        if last and not compared and warnings[s]:
            parts.append(f"warning: {warnings[s]}")
    if compared:
        parts.append("")
        parts.append(_comparison_text(study.comparison(prefer_exact=True), both_questions, warnings))
        if len(warnings) > 1:
            parts.append("")
            parts.append(_averages_text(study))
    ind = _indication_hook(study, "full")
    if ind:
        parts.append("")
        parts.append(ind.rstrip("\n"))
    ph = _phase2_text(study, DEFAULT_WIDTH)
    if ph:
        parts.append("")
        parts.append(ph)
        parts.append("  " + study.protocol.phase2.describe())
    bf = _committee.backfill_lines(study)
    if bf:
        parts.append("")
        parts.append("Backfill cohorts (Monte Carlo means per trial):")
        parts += [f"  {d} under '{s}': {text}" for d, s, text in bf]
    if study.method in ("simulate", "auto") and proto.dose_model is not None:
        parts.append("")
        parts.append(_impact_text(study))
    elif study.method == "exact" and proto.dose_model is not None:
        parts.append("")
        parts.append("note: exact results use the tier-averaged truth; the [actual_dose] policies, failures and "
                     "replacements are simulated only (doseesc simulate)")
    return "\n".join(parts)


# -- terminal layout ---------------------------------------------------------------------------------------
#: Width used when the output is not a terminal (and COLUMNS is unset): shutil's fallback.
DEFAULT_WIDTH = 80


def _width() -> int:
    """The width to lay the output out to: ``COLUMNS`` where set, else the terminal's width
    (:func:`shutil.get_terminal_size`) when the output is a terminal, else :data:`DEFAULT_WIDTH`; at least 40."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return max(40, int(cols))
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return max(40, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns if tty else DEFAULT_WIDTH)


def _wrap(text: str, width: int) -> str:
    """``text`` with each line longer than ``width`` wrapped at spaces, continuation lines indented two spaces
    deeper than the line. Table rows (a gap of two or more spaces after the indentation) are left whole: the
    tables are laid out to the width where they are built (:func:`_panels`)."""
    out = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        lead = line[:len(line) - len(body)]
        if len(line) <= width or "  " in body.rstrip():
            out.append(line)
            continue
        out += _wrap_line(body, lead, width)
    return "\n".join(out)


def _wrap_line(body: str, lead: str, width: int) -> list[str]:
    """One long line as several: whole clauses (split after "; ") packed greedily, a clause longer than the
    width wrapped at spaces; continuation lines indented two spaces deeper."""
    more = lead + "  "
    clauses = [c + ";" for c in body.split("; ")]
    clauses[-1] = clauses[-1][:-1]
    out, cur = [], ""
    for c in clauses:
        start = lead if not out and not cur else more
        if cur and len(cur) + 1 + len(c) <= width:
            cur += " " + c
            continue
        if cur:
            out.append(cur)
        if len(start) + len(c) <= width:
            cur = start + c
        else:
            parts = textwrap.wrap(c, width=width, initial_indent=start, subsequent_indent=more,
                                  break_long_words=False, break_on_hyphens=False) or [start + c]
            out += parts[:-1]
            cur = parts[-1]
    if cur:
        out.append(cur)
    return out


def _panels(labels: list[list[str]], label_heads: list[str], groups: list[tuple[str, list[tuple[str, list[str]]]]],
            width: int, indent: str = "  ", sep: str = "   ", gap: str = "  ") -> list[str]:
    """A table laid out to ``width``: label columns (left-aligned, ``labels[row][j]`` under ``label_heads[j]``),
    then ``groups`` of right-aligned columns, ``(title, [(head, cells), ...])``. Groups stand side by side, as
    many as fit the width; the others follow in further panels that repeat the label columns (a wide table
    printed in parts). A group title ("" for none) stands above its columns. Long first labels (design names)
    are wrapped onto a second line where that gives fewer lines in all (more groups side by side). ``sep``
    stands between groups, ``gap`` between the columns of a group."""
    labels = [list(r) for r in labels]
    titled = any(t for t, _ in groups)

    def col_w(head, cells):
        return max([len(head)] + [len(c) for c in cells])

    gws = []
    for title, cols in groups:
        w = sum(col_w(h, c) for h, c in cols) + len(gap) * (len(cols) - 1)
        gws.append(max(w, len(title)))
    lw = [max([len(h)] + [len(r[j]) for r in labels]) for j, h in enumerate(label_heads)]
    rest = sum(lw[1:]) + 2 * (len(lw) - 1)

    def layout(cap):
        # a marker "[a]" stays with the word before it (a no-break space while wrapping)
        wrapped = [[x.replace("\u00a0", " ") for x in textwrap.wrap(r[0].replace(" [", "\u00a0["), width=cap,
                                                                      subsequent_indent="  ",
                                                                      break_long_words=False,
                                                                      break_on_hyphens=False)] or [""]
                   for r in labels]
        first = max([len(label_heads[0])] + [len(x) for w in wrapped for x in w])
        lab_w = len(indent) + first + rest
        panels, cur, used = [], [], lab_w
        for i, gw in enumerate(gws):
            if cur and used + len(sep) + gw > width:
                panels.append(cur)
                cur, used = [], lab_w
            cur.append(i)
            used += len(sep) + gw
        if cur:
            panels.append(cur)
        rows = sum(len(w) for w in wrapped) + (1000 if any(len(w) > 3 for w in wrapped) else 0)
        n_lines = len(panels) * (rows + 1 + titled) + (len(panels) - 1) * (not titled)
        return n_lines, -cap, wrapped, first, panels

    caps = {lw[0]} | {c for c in range(max(16, len(label_heads[0])), lw[0])}
    _, _, wrapped, lw[0], panels = min(layout(c) for c in caps)

    def row(label_cells, group_cells):
        left = "  ".join(c.ljust(w) for c, w in zip(label_cells, lw))
        return (indent + left + "".join(sep + g for g in group_cells)).rstrip()

    lines = []
    for p in panels:
        if lines and not titled:
            lines.append("")
        if titled:
            lines.append(row([""] * len(lw), [groups[i][0].ljust(gws[i]) for i in p]))
        heads, body = [], [[] for _ in labels]
        for i in p:
            cols = groups[i][1]
            ws = [col_w(h, c) for h, c in cols]
            ws[0] += gws[i] - (sum(ws) + len(gap) * (len(ws) - 1))   # a title wider than the columns widens the first
            heads.append(gap.join(h.rjust(w) for (h, _), w in zip(cols, ws)))
            for k in range(len(labels)):
                body[k].append(gap.join(c[k].rjust(w) for (_, c), w in zip(cols, ws)))
        lines.append(row(label_heads, heads))
        for k in range(len(labels)):
            lines.append(row([wrapped[k][0]] + labels[k][1:], body[k]))
            lines += [row([x] + [""] * (len(lw) - 1), []) for x in wrapped[k][1:]]
    return lines


def _short_tier(lad, tier: int | None) -> str:
    """A tier's label without the unit ("6e5" for "6e5 CAR-T cells/kg"); "none" for no tier."""
    if tier is None:
        return "n/a"
    if tier < 0:
        return "none"
    text = lad.label(tier)
    unit = getattr(lad, "unit", "") or ""
    return text[:-len(unit)].rstrip() if unit and text.endswith(unit) and len(text) > len(unit) else text


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}"


def _compact_text(study: Study, width: int) -> str:
    """The default terminal output of ``simulate`` and ``exact``: the run in a line, the cross-scenario table
    (each design's P(correct) on its own question under every scenario, its average and worst scenario, the
    scenarios' true MTD and OBD above the designs, and a footnote naming the exact designs and the largest MCSE of
    the others), then per scenario one compact table of designs (P(select above the true MTD), mean N, mean DLTs,
    mean months where the file has a calendar), scenarios side by side as the width allows (three at 100
    columns). With one scenario there is no cross-scenario table and its table leads with P(correct) ± MCSE and
    the truths in its title. The per-design blocks are ``--detail full``."""
    proto = study.protocol
    snames = list(dict.fromkeys(r.scenario.name for r in study.results))
    dnames = list(dict.fromkeys(study.name_of(r) for r in study.results))
    res = {(r.scenario.name, study.name_of(r)): r for r in study.results}
    shown = {k: (study.exact_of(r) if study.method == "auto" else None) or r for k, r in res.items()}
    mc = study.method in ("simulate", "auto")
    lines = [f"{proto.name}" + (f" ({proto.registry})" if proto.registry else "")
             + (f": {proto.title}" if proto.title else "")]
    if mc:
        lengths = sorted({r.n_trials for r in study.results})
        n_text = (f"{lengths[0]:,} trials" if len(lengths) == 1 else
                  f"{lengths[0]:,} to {lengths[-1]:,} trials (run to a precision target, not paired)")
        n_exact = sum(1 for k in res if shown[k].is_exact)
        lines.append(f"{n_text} per design and scenario" + (", paired" if len(lengths) == 1 and len(dnames) > 1
                                                            else "")
                     + ("" if not n_exact else "; exact values for all" if n_exact == len(res) else
                        f"; exact where possible ({n_exact} of {len(res)})")
                     + (f"; seed {study.seed['entropy']}" if study.seed is not None else "") + ".")
    else:
        lines.append("Exact enumeration of every reachable trial (no Monte Carlo error).")
    first = {d: res[(snames[0], d)].design for d in dnames}
    notes = _committee.with_indication_notes(_compare.conduct_notes(first), study)   # a staggered design: which truth it is judged on
    marks = _committee.conduct_markers(notes)
    label = {d: d + (f" {marks[d]}" if d in marks else "") for d in dnames}
    questions = {d: first[d].question for d in dnames}
    lad = proto.tiers
    mtds, obds = {}, {}
    for s in snames:
        mtds[s] = shown[(s, dnames[0])].true_mtd
        obds[s] = next((shown[(s, d)].true_obd for d in dnames if shown[(s, d)].true_obd is not None), None)
    any_mtd = any(v is not None for v in mtds.values())
    any_obd = any(v is not None for v in obds.values())
    truth = {s: ", ".join(_short_tier(lad, v) for v, on in ((mtds[s], any_mtd), (obds[s], any_obd)) if on)
             for s in snames}
    unit = getattr(lad, "unit", "") or ""
    what = " and ".join(w for w, on in (("MTD", any_mtd), ("OBD", any_obd)) if on)
    several = len(snames) > 1
    if several:
        lines.append("P(correct) %: each design on the question it answers (Q), by scenario (S1...), mean and worst:")
        per = {s: {d: shown[(s, d)] for d in dnames} for s in snames}
        # the truth each scenario sets, above the designs' rows (the mean and worst columns have none)
        truths = [(f"true {w}", [_short_tier(lad, v[s]) for s in snames])
                  for w, v, on in (("MTD", mtds, any_mtd), ("OBD", obds, any_obd)) if on]
        cols = []
        for i, s in enumerate(snames):
            cells = [t[1][i] for t in truths]
            for d in dnames:
                r = per[s][d]
                v = r.metric(_compare.question_metric(r))[0]
                cells.append(_pct(v))
            cols.append((f"S{i + 1}", cells))
        avg, worst = [""] * len(truths), [""] * len(truths)
        for d in dnames:
            vals = [per[s][d].metric(_compare.question_metric(per[s][d]))[0] for s in snames]
            ok = [v for v in vals if math.isfinite(v)]
            avg.append(_pct(sum(ok) / len(ok)) if ok else "n/a")
            worst.append(_pct(min(ok)) if ok else "n/a")
        groups = [("", [c]) for c in cols] + [("", [("mean", avg)]), ("", [("worst", worst)])]
        lines += _panels([[t[0], ""] for t in truths] + [[label[d], questions[d]] for d in dnames], ["design", "Q"],
                         groups, width, sep="  ")
        lines.append(_cross_footnote(snames, dnames, per, what, unit if truths else "", mc))
    for m in dict.fromkeys(marks.values()):
        ds = [d for d in dnames if marks.get(d) == m]
        lines.append(f"  {m} {', '.join(ds)}: " + "; ".join(notes[ds[0]]))
    timed = mc and all("duration_days" in res[k].extra for k in res)
    lines.append("")
    if several:      # P(correct) is the table above: here the figures without a Monte Carlo error shown
        lines.append("Per scenario: >MTD = P(select above the true MTD) %; N, DLTs = means per trial"
                     + ("; mo = mean months" if timed else "") + ":")
    else:
        lines.append("Per scenario" + (f" (true {what}{', ' + unit if unit else ''})" if what else "")
                     + (": correct = P(correct) %" if not mc else ": correct = P(correct) % ± MCSE"
                        + (" (exact: no ±)" if any(x.is_exact for x in shown.values()) else ""))
                     + "; >MTD = P(select above the true MTD) %; N, DLTs = means per trial"
                     + ("; mo = mean months" if timed else "") + ":")
    groups = []
    for i, s in enumerate(snames):
        c_ok, c_above, c_n, c_dlt, c_mon = [], [], [], [], []
        for d in dnames:
            r = shown[(s, d)]
            est, se = r.metric(_compare.question_metric(r))
            c_ok.append("n/a" if not math.isfinite(est) else
                        _pct(est) if r.is_exact or not math.isfinite(se) else f"{_pct(est)}±{100 * se:.1f}")
            c_above.append(_pct(r.metric("p_above_mtd")[0]))
            n = r.metric("expected_n")[0]
            c_n.append("n/a" if not math.isfinite(n) else f"{n:.1f}")
            k = r.metric("mean_dlt")[0]
            c_dlt.append("n/a" if not math.isfinite(k) else f"{k:.1f}")
            if timed:
                days = res[(s, d)].metric("duration_days")[0]
                c_mon.append("n/a" if not math.isfinite(days) else f"{days / _tiers.DAYS_PER_MONTH:.1f}")
        cols = ([] if several else [("correct", c_ok)]) + [(">MTD", c_above), ("N", c_n), ("DLTs", c_dlt)] + \
            ([("mo", c_mon)] if timed else [])
        title = (f"S{i + 1} {s}" if several else s + (f" ({truth[s]})" if truth[s] else ""))
        groups.append((title, cols))
    # with several scenarios the markers of conduct and the truths are in the table above; the columns of a
    # scenario stand one space apart (its title spans them), so that three scenarios fit side by side at 100
    lines += _panels([[d if several else label[d]] for d in dnames], ["design"], groups, width,
                     gap=" " if several else "  ")
    return "\n".join(lines)


def _cross_footnote(snames: list, dnames: list, per: dict, what: str, unit: str, mc: bool) -> str:
    """The line under the cross-scenario table: what S1... are, the truths' unit, which designs' values are exact
    and the largest Monte Carlo standard error of the others' (in percentage points)."""
    parts = [f"S1 to S{len(snames)}: the scenarios below, in the file's order"]
    if unit:
        parts.append(f"true {what} in {unit}")
    if mc:
        exact = [d for d in dnames if all(per[s][d].is_exact for s in snames)]
        some = [d for d in dnames if d not in exact and any(per[s][d].is_exact for s in snames)]
        ses = [per[s][d].metric(_compare.question_metric(per[s][d]))[1] for s in snames for d in dnames
               if not per[s][d].is_exact]
        ses = [x for x in ses if math.isfinite(x)]
        if len(exact) == len(dnames):
            parts.append("every value exact (no Monte Carlo error)")
        else:
            if exact:
                parts.append("exact (no MCSE): " + ", ".join(exact))
            if some:
                parts.append("exact in some scenarios: " + ", ".join(some))
            if ses:
                parts.append(("the others' MCSE" if exact or some else "Monte Carlo MCSE") +
                             f" at most {100 * max(ses):.1f} points")
    return "  " + "; ".join(parts) + "."


def _result_text(study: Study, r, both_questions: bool = False) -> str:
    """One result's block: the exact run where the study holds one (its calendar lines, which only the
    simulation gives, added from the Monte Carlo run), else the Monte Carlo run."""
    e = study.exact_of(r) if study.method == "auto" else None
    if e is None or e is r:
        return r.text(both_questions)
    lines = e.text(both_questions).splitlines()
    timed = [ln for ln in r.headline().splitlines() if ln.startswith("  per trial: ")]
    if timed:
        at = 1 + next((i for i, ln in enumerate(lines) if ln.startswith(("  target ", "  no target "))), 2)
        lines.insert(at, timed[0].replace("  per trial: ", f"  per trial (Monte Carlo, {r.n_trials:,} trials, "
                                                             "± = 1 MCSE): ", 1))
    return "\n".join(lines)


def _check_output_file(path: str, option: str) -> None:
    _prepare_file(path, option)


#: Short column heads of the paired comparison: metric -> (head, shown as a percentage).
_COMPARISON_COLUMNS = {"p_correct_question": ("P(correct)", True), "p_correct": ("P(true MTD)", True),
                       "p_select_obd": ("P(true OBD)", True), "expected_n": ("mean N", False),
                       "p_no_dose": ("P(no dose)", True), "share_above_mtd": ("above MTD", True),
                       "mean_dlt": ("DLTs", False)}


def _cell(row, own: bool, pct: bool) -> str:
    """One number of the comparison: estimate, then (difference ± MCSE) unless the row is its own reference;
    exact differences carry no ± (their MCSE is 0)."""
    if row["estimate"] != row["estimate"]:
        return "n/a"
    f, unit, dec = (100, "%", 1) if pct else (1, "", 2)
    est = f"{f * row['estimate']:.{dec}f}{unit}"
    if own or row["diff"] != row["diff"]:
        return est
    if row["method"] == "exact" and row["diff_mcse"] == 0:
        return est + " ({:+.{p}f})".format(f * row["diff"], p=dec)
    return est + " ({:+.{p}f} ± {:.{p}f})".format(f * row["diff"], f * row["diff_mcse"], p=dec)


def _comparison_text(comp, both_questions: bool = False, warnings: dict | None = None) -> str:
    """Compact paired comparison: each design's key numbers and its difference from the reference.

    P(correct) shows each design on the question it answers (MTD designs: P(true MTD); OBD designs:
    P(true OBD)), compared with the first design answering the same question; ``both_questions`` adds
    both P(true MTD) and P(true OBD) for every design. Designs whose conduct differs (maximum N, safety
    stop, expansion) carry a marker and a note; ``warnings`` (scenario -> text) go under their scenario.
    """
    t = comp.table()
    questions = comp.questions()
    asked = list(dict.fromkeys(questions.values()))
    mixed = len(asked) > 1
    refs = {q: comp.question_reference(q) for q in asked}
    lengths = {r.n_trials for r in comp.results.values() if not r.is_exact}
    head = ("Paired comparison (same simulated patients for every design" if len(lengths) <= 1 else
            "Comparison (runs of different lengths under --precision: differences are of the estimates, with "
            "their combined MCSE, not paired")
    lines = [f"{head}; in brackets the difference from "
             f"{comp.reference!r} ± its MCSE" + (")" if not mixed else
                                                  "; P(correct) is each design's own question, MTD or OBD, "
                                                  "compared with " + " and ".join(f"{refs[q]!r} ({q})"
                                                                                 for q in asked) + ")") + ":"]
    if not mixed:
        first = "p_correct" if asked[0] == "MTD" else "p_select_obd"
        metrics = [first] + (["p_select_obd" if first == "p_correct" else "p_correct"] if both_questions else [])
    else:
        metrics = ["p_correct_question"] + (["p_correct", "p_select_obd"] if both_questions else [])
    metrics += ["expected_n", "p_no_dose", "share_above_mtd", "mean_dlt"]
    notes = comp.conduct_notes()
    marks = _committee.conduct_markers(notes)
    names = {d: d + (f" {marks[d]}" if d in marks else "") for d in comp.designs}
    show_method = (t["method"] == "exact").any()
    for s in comp.scenarios:
        sub = t[t["scenario"] == s]
        r0 = comp.results[(s, comp.reference)]
        truth = []
        if r0.true_mtd is not None:
            truth.append(f"true MTD {r0.ladder.label(r0.true_mtd)}")
        obd = next((comp.results[(s, d)].true_obd for d in comp.designs
                    if comp.results[(s, d)].true_obd is not None), None)
        if obd is not None:
            truth.append(f"true OBD {r0.ladder.label(obd)}")
        lines.append(f"  scenario {s!r}" + (f" ({'; '.join(truth)})" if truth else ""))
        if warnings and warnings.get(s):
            lines.append(f"    warning: {warnings[s]}")
        cols = [m for m in metrics if (sub["metric"] == m).any()]
        head = ["design"] + (["Q"] if mixed else []) + (["method"] if show_method else []) \
            + [_COMPARISON_COLUMNS[m][0] for m in cols]
        body = []
        for d in comp.designs:
            mine = sub[sub["design"] == d]
            cells = [names[d]] + ([questions[d]] if mixed else []) \
                + ([mine["method"].iloc[0].replace("monte carlo", "MC")] if show_method else [])
            for m in cols:
                row = mine[mine["metric"] == m]
                if row.empty:
                    cells.append("n/a")
                    continue
                row = row.iloc[0]
                cells.append(_cell(row, own=row["versus"] == d, pct=_COMPARISON_COLUMNS[m][1]))
            body.append(cells)
        width = [max(len(r[j]) for r in [head] + body) for j in range(len(head))]
        n_left = 1 + mixed + show_method
        for r in [head] + body:
            lines.append("    " + "  ".join(c.ljust(w) if j < n_left else c.rjust(w)
                                           for j, (c, w) in enumerate(zip(r, width))).rstrip())
    if marks:
        lines.append("  The designs differ in conduct (read their numbers with this in mind):")
        for m in dict.fromkeys(marks.values()):
            ds = [d for d in comp.designs if marks.get(d) == m]
            lines.append(f"    {m} {', '.join(ds)}: " + "; ".join(notes[ds[0]]))
    return "\n".join(lines)


def _averages_text(study: Study) -> str:
    """Each design averaged over the scenarios (:func:`~doseesc.report.committee.averages_table`) as text."""
    t = _committee.averages_table(study)
    head = [c.replace(", %", "") for c in t.columns]
    pct = [", %" in c for c in t.columns]
    body = [[c if j == 0 or not pct[j] or c == "n/a" else
             " ".join(v + "%" if not v.startswith("(") else v[:-1] + "%)" for v in c.split(" "))
             for j, c in enumerate(r)] for r in t.rows]
    width = [max(len(r[j]) for r in [head] + body) for j in range(len(head))]
    exact = bool(getattr(study, "exact_results", None))
    lines = [f"Averaged over the {len({r.scenario.name for r in study.results})} scenarios (in brackets the worst "
             f"scenario; P(correct) on each design's own question{'; exact values where computed' if exact else ''}):"]
    for r in [head] + body:
        lines.append("    " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                                       for j, (c, w) in enumerate(zip(r, width))).rstrip())
    return "\n".join(lines)


def _impact_text(study) -> str:
    """The actual-dose model's paired effect on each design's key numbers (P(correct) on the design's own
    question)."""
    t = study.dose_impact()
    lines = ["Actual-dose model: " + study.protocol.dose_model.describe(study.protocol.tiers),
             "Its effect (same trials rerun at the nominal doses, no failures; difference ± MCSE):"]
    labels = {"p_correct": ("P(true MTD)", True), "p_select_obd": ("P(true OBD)", True),
              "expected_n": ("mean N", False), "share_above_mtd": ("above MTD", True), "mean_dlt": ("DLTs", False)}
    questions = {study.name_of(r): r.design.question for r in study.results}
    other = {"MTD": "p_select_obd", "OBD": "p_correct"}
    for s in dict.fromkeys(t["scenario"]):
        lines.append(f"  scenario {s!r}")
        sub = t[t["scenario"] == s]
        for d in dict.fromkeys(sub["design"]):
            cells = []
            for _, row in sub[sub["design"] == d].iterrows():
                if row["metric"] == other[questions[d]]:
                    continue
                label, pct = labels[row["metric"]]
                f, unit, dec = (100, "%", 1) if pct else (1, "", 2)
                cells.append(f"{label} {f * row['without']:.{dec}f}{unit} -> {f * row['with']:.{dec}f}{unit} "
                             f"({f * row['difference']:+.{dec}f} ± {f * row['mcse']:.{dec}f})")
            lines.append(f"    {d}: " + "; ".join(cells))
    return "\n".join(lines)


def _command_line(cmd: str, file: str, designs, scenarios, **opts) -> str:
    """The command that reproduces this run (resolved seed and trial count included)."""
    parts = ["doseesc", cmd, shlex.quote(str(file))]
    parts += [f"--design {shlex.quote(d)}" for d in designs]
    parts += [f"--scenario {shlex.quote(s)}" for s in scenarios]
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in opts.items() if v is not None]
    return " ".join(parts)


_design_opt = click.option("--design", "-d", "designs", multiple=True, metavar="NAME",
                           help="Design name from the file (repeatable; default: all).")
_scenario_opt = click.option("--scenario", "-s", "scenarios", multiple=True, metavar="NAME",
                             help="Scenario name from the file (repeatable; default: all).")
_format_opt = click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
                           help="Output on the terminal.")
_detail_opt = click.option(
    "--detail", type=click.Choice(["summary", "full"]), default="summary", show_default=True,
    help="summary: the comparison across scenarios and one compact table per scenario (designs as rows); full: "
         "also every design's block under every scenario (selection by tier, the per-trial metrics), the paired "
         "comparison with its differences and MCSEs, the averages and the actual-dose model's effect. Table "
         "output only (JSON and CSV hold everything).")
_out_opt = click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
                        help="Folder for CSV/JSON outputs with provenance; created (its parent must exist) and "
                             "tested for writing before the run starts. Results are moved in whole once written. "
                             "A reused folder: doseesc's own files of an earlier run (summary.csv, metrics.csv, "
                             "stop_report.csv, trials.csv, results.json, provenance.json, paths.csv, "
                             "path_nodes.csv, by_indication.csv and indication_metrics.csv for files with "
                             "[[indication]] tables, phase2.csv for files with [phase2]) are replaced, or removed "
                             "where this run does not write them; "
                             "other files are left alone.")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_design_opt
@_scenario_opt
@click.option("--n-trials", "-n", type=click.IntRange(min=2, max=MAX_TRIALS), default=None,
              help=f"Simulated trials per design and scenario (default: the file's [run] n_trials; at most "
                   f"{MAX_TRIALS:,}).")
@click.option("--seed", type=click.IntRange(min=0, max=2 ** 128 - 1), default=None,
              help="Random seed (default: the file's [run] seed, else fresh entropy, printed).")
@_out_opt
@click.option("--resume", is_flag=True, default=False,
              help="Continue an interrupted run from its checkpoint OUT.partial (each finished design x scenario "
                   "is kept there as the run goes; the folder is removed once the results are written). Give the "
                   "same FILE and options; the result is identical to an uninterrupted run.")
@_format_opt
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr (default: on a terminal).")
@click.option("--both-questions", is_flag=True, default=False,
              help="Show P(true MTD) and P(true OBD) for every design, in each result and the paired comparison (default: each "
                   "design on the question it answers, MTD or OBD).")
@click.option("--exact/--no-exact", "prefer_exact", default=True, show_default=True,
              help="Show exact values (exact enumeration, no MCSE) in place of the Monte Carlo estimates wherever "
                   "the exact engine applies (no actual-dose model, at most 100,000 live states); the simulations "
                   "still give durations, waiting and the paired comparison's MCSEs.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Worker processes to split the trials across (the results are identical for any number).")
@click.option("--precision", type=click.FloatRange(min=0.0005, max=0.5, max_open=True), default=None, metavar="SE",
              help="Simulate each design x scenario until the largest Monte Carlo standard error of P(select) is at "
                   "most SE (e.g. 0.005), in steps of 1,024 trials; -n is then the most trials per run (default "
                   "10,000,000). The same seed and SE give the same trials.")
@_detail_opt
def simulate(file, designs, scenarios, n_trials, seed, out, fmt, progress, both_questions, prefer_exact, resume,
             workers, precision, detail):
    """Monte Carlo operating characteristics of every design under every scenario.

    All designs see the same simulated patients in a scenario (paired comparison). Each design is
    compared on the question it answers: MTD designs on P(select the true MTD), OBD designs (those that
    select on response) on P(select the true OBD).
    """
    proto = _protocol.load_protocol(file)
    designs, scenarios = _check_names(proto, designs, scenarios)
    n = proto.n_trials if n_trials is None else n_trials
    if precision is not None and n_trials is None:
        n = MAX_TRIALS      # the most trials per run; each stops once its MCSE meets the target
    ckpt = None
    if out:
        _prepare_folder(out)
        ckpt = _partial(out)
        seed = _resume_seed(ckpt, resume, seed, "--out", out)
    elif resume:
        raise DoseescError("--resume needs --out (the checkpoint is kept beside the --out folder)")
    if seed is None:
        seed = proto.seed if proto.seed is not None else int(np.random.SeedSequence().entropy)
    units = [(s, d) for s in (scenarios or proto.scenarios) for d in (designs or proto.designs)]
    n_units = len(units)
    bar = _Progress(n * n_units, sys.stderr.isatty() if progress is None else progress, units)
    command = _command_line("simulate", file, designs, scenarios, n_trials=n, seed=seed, precision=precision)
    if precision is not None:
        bar.enabled = False   # the number of trials is not known in advance
    if prefer_exact:
        bar.after = "now the exact runs where the exact engine applies"
    if ckpt is not None:
        ctx = click.get_current_context()
        ctx.meta["interrupted"] = _Interrupted(ckpt, n_units, f"{command} --out {shlex.quote(out)}"
                                               + ("" if prefer_exact else " --no-exact") + " --resume")
    try:
        # per-patient records only where they are written (trials.csv of --out): without them memory grows by
        # tens of bytes per trial, not per patient, and every table printed is the same
        study = _study.run_protocol(proto, method="auto" if prefer_exact else "simulate", designs=designs,
                                    scenarios=scenarios, n_trials=n,
                                    max_states=PREFER_EXACT_STATES if prefer_exact else None,
                                    seed=seed, progress=bar, command=command, checkpoint=ckpt, workers=workers,
                                    precision=precision, keep_records=bool(out))
    finally:
        bar.close()
    _emit(study, fmt, out, include_trials=True, both_questions=both_questions, detail=detail)
    if ckpt is not None:
        click.get_current_context().meta.pop("interrupted", None)
        shutil.rmtree(ckpt, ignore_errors=True)


def _resume_seed(ckpt: Path, resume: bool, seed, option: str, out: str):
    """The seed of a run with the checkpoint ``ckpt``: with ``--resume``, the interrupted run's seed where none
    is given (refused when there is no checkpoint); without it, a left-over checkpoint is refused."""
    if resume:
        if not ckpt.is_dir():
            raise DoseescError(f"--resume: no checkpoint {ckpt} to resume (it is kept beside {option} when a run "
                               "is interrupted)")
        if seed is None:   # the interrupted run's seed, fresh entropy included
            seed = (_study.RunCheckpoint.read_manifest(ckpt).get("seed") or {}).get("entropy")
    elif ckpt.exists():
        raise DoseescError(f"{option} {out}: {ckpt} holds an interrupted run; add --resume to continue it, or "
                           "delete that folder to start again")
    return seed


def _partial(out: str) -> Path:
    """The checkpoint folder beside ``--out``: ``OUT.partial``."""
    target = Path(out).resolve()
    return target.parent / (target.name + ".partial")


class _Interrupted:
    """The one line said when a run with a checkpoint is stopped (SIGINT or SIGTERM)."""

    def __init__(self, ckpt: Path, n_units: int, command: str):
        self.ckpt, self.n_units, self.command = ckpt, n_units, command

    def __str__(self) -> str:
        kept = sum(1 for _ in self.ckpt.glob("mc-*.pkl")) if self.ckpt.is_dir() else 0
        return (f"interrupted: kept {kept} of {self.n_units} design x scenario results in {self.ckpt}; "
                f"continue with: {self.command}")


def _resolve(proto, kind: str, given: str) -> str:
    """The name in the file of design or scenario (``kind``) ``given``: the name itself, else the one name that
    equals it ignoring case; an unknown name, or one that matches several names ignoring case, is an error
    that lists the names."""
    names = list(proto.designs if kind == "design" else proto.scenarios)
    if given in names:
        return given
    same = [n for n in names if n.casefold() == given.casefold()]
    if len(same) == 1:
        return same[0]
    where = proto.path or proto.name
    if same:
        raise DoseescError(f"{where}: {kind} name {given!r} matches {len(same)} {kind}s when case is ignored ("
                           + ", ".join(repr(n) for n in same) + "); give it exactly as in the file")
    raise DoseescError(f"{where}: no {kind} named {given!r} ({kind}s: {', '.join(names)})")


def _check_names(proto, designs=(), scenarios=()) -> tuple[tuple, tuple]:
    """The design and scenario names as the file writes them (:func:`_resolve`; each once, in the order given),
    before any output is prepared."""
    return (tuple(dict.fromkeys(_resolve(proto, "design", d) for d in designs)),
            tuple(dict.fromkeys(_resolve(proto, "scenario", s) for s in scenarios)))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_design_opt
@_scenario_opt
@_out_opt
@_format_opt
@click.option("--max-states", "max_states", type=click.IntRange(min=1, max=MAX_STATES), default=None,
              help=f"Most live trial states the exact engine may hold at once (default and most: {MAX_STATES:,}); a "
                   "design that needs more is skipped with a note.")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr (default: on a terminal).")
@_detail_opt
def exact(file, designs, scenarios, out, fmt, max_states, progress, detail):
    """Exact operating characteristics (every reachable trial state, no Monte Carlo error).

    A design the exact engine cannot evaluate (time-to-event designs, a conduct per indication, more live
    states than --max-states) is skipped with a note; the others are shown.
    """
    proto = _protocol.load_protocol(file)
    designs, scenarios = _check_names(proto, designs, scenarios)
    if out:
        _prepare_folder(out)
    command = _command_line("exact", file, designs, scenarios, max_states=max_states)
    bar = _Progress(0, sys.stderr.isatty() if progress is None else progress, what="exact")
    try:
        study, notes = _run_exact(proto, designs, scenarios, max_states, bar, command)
    finally:
        bar.close()
    _emit(study, fmt, out, include_trials=False, detail=detail, notes=notes)


def _run_exact(proto, designs, scenarios, max_states, bar, command: str):
    """The exact run of each design x scenario (scenario-major, as :func:`~doseesc.study.run_protocol` with
    method ``"exact"``, whose results it equals), skipping with a note each design the exact engine refuses:
    ``(study, notes)``. A design refused under one scenario (its states hardly depend on the truth) is not
    tried under the others."""
    dnames = list(designs) or list(proto.designs)
    snames = list(scenarios) or list(proto.scenarios)
    refused = {}
    for name in dnames:
        conduct = proto.conducts.get(name)
        if conduct is not None and conduct.policy != "pooled":
            refused[name] = _study.exact_refusal(proto, proto.designs[name], name)
    limit = {} if max_states is None else {"max_states": max_states}
    results = []
    units = [(s, d) for s in snames for d in dnames]
    for k, (s, name) in enumerate(units):
        if name in refused:
            continue
        bar.unit(k, len(units), s, name)
        try:
            results.append(_exact.exact(proto.designs[name], proto.scenarios[s], ladder=proto.tiers,
                                         obd=proto.obd, **limit))
        except DoseescError as err:
            refused[name] = f"{err} (scenario {s!r})"
    notes = [f"{name}: skipped, not evaluated exactly: {why}" for name, why in refused.items()]
    if not results:
        raise DoseescError(f"{proto.path or proto.name}: no design could be evaluated exactly ("
                           + "; ".join(notes) + ")")
    # results of a design refused after its first scenarios are dropped: a design is shown under every scenario
    results = [r for r in results if _design_name(proto, r) not in refused]
    if not results:
        raise DoseescError(f"{proto.path or proto.name}: no design could be evaluated exactly ("
                           + "; ".join(notes) + ")")
    return _study.Study(protocol=proto, method="exact", results=tuple(results), command=command), notes


def _design_name(proto, r) -> str:
    """The file's name of the design of result ``r``."""
    return next((n for n, d in proto.designs.items() if d is r.design), r.design.label)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--design", "-d", "design", required=True, metavar="NAME", help="Design name from the file.")
@click.option("--max-n", type=click.IntRange(min=1), default=None,
              help="Largest number of patients at a tier shown (default: the design's max_n).")
@click.option("--grid", is_flag=True, help="Show every (n, DLTs) cell as a letter instead of the count form.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Also draw the table to FILE.png/.pdf.")
def table(file, design, max_n, grid, fmt, plot):
    """Decision table of a design: the DLT counts that mean escalate, stay, de-escalate, eliminate."""
    proto = _protocol.load_protocol(file)
    design = _resolve(proto, "design", design)
    d = proto.design(design)
    if plot is not None and Path(plot).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise DoseescError(f"--plot {plot}: use a .png, .pdf or .svg file name")
    if plot is not None:
        _check_output_file(plot, "--plot")
    if max_n is not None and max_n > 500:
        raise DoseescError(f"--max-n {max_n}: at most 500 patients per tier in a decision table")
    pending = d.decision_grid(max_n) is None and d.pending_grid() is not None
    if pending and plot is not None:
        raise DoseescError(f"--plot: {design} decides with pending patients; its table has no plot (print it)")
    df = _tables.pending_table(d) if pending else _tables.decision_grid(d, max_n) if grid else _tables.decision_table(d, max_n)
    if fmt == "json":
        click.echo(json.dumps({"design": design, "description": d.describe(),
                               "table": json.loads(df.reset_index().to_json(orient="records"))}, indent=2))
    elif fmt == "csv":
        click.echo(f"# {design}: {d.describe()}\n" + _labels.csv_safe(df).to_csv().rstrip("\n"))
    else:
        click.echo(f"{design}: {d.describe()}")
        if pending:
            click.echo("at the current tier, n enrolled, of them 'pending' still in follow-up, y DLTs seen: "
                       "E escalate, S stay (enrol here), D de-escalate, W suspend accrual")
        elif not grid:
            words = d.decision_words()
            stop = words.get("D", "de-escalate")
            if stop != "de-escalate":   # 3+3 without de-escalation: two DLTs stop the escalation
                df = df.rename(columns={"deescalate_if_ge": "stop_if_ge"})
            click.echo(f"escalate if DLTs <= escalate_if_le; {stop} if >= "
                       + ("deescalate_if_ge" if stop == "de-escalate" else "stop_if_ge")
                       + ("; de-escalate and eliminate this tier and those above if >= eliminate_if_ge"
                          if "DU" in words or df["eliminate_if_ge"].notna().any() else ""))
        click.echo(df.astype(object).where(df.notna(), "").to_string())
    if plot is not None:
        from .report.plots import plot_decision_table

        ax = plot_decision_table(d, max_n)
        ax.figure.savefig(plot, dpi=150)
        click.echo(f"wrote {plot}", err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--design", "-d", "design", required=True, metavar="NAME", help="Design name from the file.")
@click.option("--cohorts", "-k", type=click.IntRange(min=1), required=True, help="Number of cohorts ahead.")
@click.option("--start", default="", help='Observed trial log to start from, e.g. "1NNN 2NTN" (default: trial start).')
@click.option("--scenario", "-s", "scenario", default=None, metavar="NAME", help="Truth scenario for path probabilities.")
@click.option("--max-nodes", type=click.IntRange(min=1), default=None, help="Refuse trees larger than this.")
@_out_opt
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw the paths to FILE.png/.pdf.")
def paths(file, design, cohorts, start, scenario, max_nodes, out, fmt, plot):
    """Every DLT-driven path of the next cohorts: the dose-transition pathway table."""
    proto = _protocol.load_protocol(file)
    design = _resolve(proto, "design", design)
    scenario = _resolve(proto, "scenario", scenario) if scenario else None
    d = proto.design(design)
    sc = proto.scenario(scenario) if scenario else None
    if plot is not None and Path(plot).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise DoseescError(f"--plot {plot}: use a .png, .pdf or .svg file name")
    if plot is not None:
        _check_output_file(plot, "--plot")
    if out:
        _prepare_folder(out)
    limit = MAX_PATH_NODES if max_nodes is None else max_nodes
    counts = _paths.count_nodes(d, cohorts, start, limit=limit)
    more = "more than " if sum(counts) > limit else ""
    click.echo(f"{design}: {more}{sum(counts):,} nodes in the next {cohorts} cohorts (limit {limit:,})", err=True)
    dp = _paths.paths(d, cohorts, start=start, scenario=sc, ladder=proto.tiers, max_nodes=limit)
    table = dp.table()
    if fmt == "json":
        click.echo(json.dumps({"design": design, "start": start, "cohorts": cohorts,
                               "scenario": scenario, "nodes": json.loads(dp.nodes().to_json(orient="records")),
                               "paths": json.loads(table.to_json(orient="records"))}, indent=2))
    elif fmt == "csv":
        click.echo(_labels.csv_safe(table).to_csv(index=False).rstrip("\n"))
    else:
        click.echo(f"{design}: {dp.n_nodes} nodes, {len(table)} complete paths of the next {cohorts} cohorts"
                   + (f" after {start}" if start else " from the start")
                   + (f"; probabilities under scenario {scenario!r}" if sc else ""))
        click.echo(table.to_string(index=False))
    if out:
        target = Path(out)
        _write_folder(target, {"paths.csv": _csv_writer(table), "path_nodes.csv": _csv_writer(dp.nodes())})
        click.echo(f"wrote {target / 'paths.csv'} and {target / 'path_nodes.csv'}", err=True)
    if plot is not None:
        ax = dp.plot()
        ax.figure.savefig(plot, dpi=150)
        click.echo(f"wrote {plot}", err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def check(file):
    """Validate a scenario file and show everything it sets: the protocol, tiers, DLT and response definitions,
    calendar, actual-dose model, OBD definition, each design (with its maximum N), each scenario's truths with
    its true MTD and OBD, and the run settings."""
    proto = _protocol.load_protocol(file)
    click.echo(_wrap("\n".join(_check_lines(file, proto)), _width()))


def _check_lines(file, proto) -> list[str]:
    t = proto.tiers
    out = [f"{file}: OK", f"protocol {proto.name}" + (f" ({proto.registry})" if proto.registry else "")
           + (f": {proto.title}" if proto.title else "")]
    tol = f", tolerance ±{100 * t.tolerance:g}%" if t.tolerance else ""
    out.append(f"tiers ({t.n_tiers}{tol}): " + ", ".join(t.tier_labels))
    if proto.target is not None:
        out.append(f"target DLT rate: {proto.target:g}")
    dlt_win = proto.dlt_window_days if proto.dlt_window_days is not None else \
        (proto.calendar.dlt_window_days if proto.calendar is not None else None)
    if proto.dlt_definition or dlt_win is not None:
        out.append("DLT: " + (proto.dlt_definition.rstrip(". ") or "definition not stated")
                   + ("" if dlt_win is None else f"; window {dlt_win:g} days"))
    if proto.response_definition or proto.response_window_days is not None:
        out.append("response: " + (proto.response_definition.rstrip(". ") or "definition not stated")
                   + ("" if proto.response_window_days is None else
                      f"; judged at {proto.response_window_days:g} days"))
    inds = getattr(proto, "indications", None)
    if inds is not None:
        out.append("indications: " + "; ".join(f"{e.text()} ({100 * sh:.1f}% of accrual)"
                                                for e, sh in zip(inds.entries, inds.shares)))
    out.append("calendar: " + (proto.calendar.describe() if proto.calendar is not None else
                               "none (no durations; time-to-event designs need one)"))
    out.append("actual dose: " + (proto.dose_model.describe(t) if proto.dose_model is not None else
                                  "none (every patient receives the nominal dose of the assigned tier)"))
    effs = [sc for sc in proto.scenarios.values() if sc.true_eff is not None]
    if proto.obd is not None:
        out.append(f"OBD definition: {_obd_text(proto.obd)}")
    elif effs:
        defs = dict.fromkeys(_obd_text(o) for d in proto.designs.values()
                             if (o := _obd.resolve_obd(None, d, effs[0])) is not None)
        out.append("OBD definition (none in the file; each design's own, else BOIN12's defaults): "
                   + "; ".join(defs))
    out.append("designs:")
    for name, d in proto.designs.items():
        conduct = proto.conducts.get(name) if getattr(proto, "conducts", None) else None
        extra = f"; conduct {conduct.text()}" if conduct is not None and hasattr(conduct, "text") else ""
        out.append(f"  {name} (max N {d.largest_n()}, answers the {d.question} question{extra}): {d.describe()}")
    out.append("scenarios:")
    for name, sc in proto.scenarios.items():
        truth = []
        if sc.target is not None:
            truth.append(f"true MTD {t.label(sc.mtd(sc.target))}")
        obd = _obd.resolve_obd(proto.obd, next(iter(proto.designs.values())), sc) if sc.true_eff is not None else None
        if obd is not None:
            o = obd.true_obd(sc)
            truth.append(f"true OBD {'none' if o < 0 else t.label(o)}")
        tail = ("; " + "; ".join(truth)) if truth else ""
        if sc.tox_curve is not None:
            tox = (f"P(DLT) {sc.tox_curve.text(t.unit)}; tier-averaged " + ", ".join(f"{p:.3f}" for p in sc.true_tox)
                   + " (at nominal " + ", ".join(f"{p:.3f}" for p in sc.nominal_tox) + ")")
        else:
            tox = "P(DLT) " + ", ".join(f"{p:g}" for p in sc.true_tox)
        eff = "" if sc.true_eff is None else "; P(response) " + ", ".join(f"{p:.3g}" for p in sc.true_eff)
        out.append(f"  {name}: {tox}{eff}{tail}")
    for sc in proto.scenarios.values():
        defs = dict.fromkeys(_obd.resolve_obd(proto.obd, d, sc) for d in proto.designs.values())
        for text in dict.fromkeys(o.near_tie_text(sc, t.tier_labels) for o in defs if o is not None):
            if text:
                out.append(f"warning: {text}")
    out.append(f"run: {proto.n_trials:,} trials, seed {proto.seed}")
    if proto.grids:
        out.append(f"calibration grids: {', '.join(proto.grids)}")
    return out


def _obd_text(obd) -> str:
    """An OBD definition in words (:meth:`~doseesc.obd.OBDDefinition.text`)."""
    text = getattr(obd, "text", None)
    return text() if callable(text) else str(obd)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("outcomes", default="")
@click.option("--design", "-d", "design", required=True, metavar="NAME", help="Design name from the file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--follow-up", "follow_up", default=None, metavar="DAYS",
              help="Time-to-event designs: days each patient of OUTCOMES has been followed (the DLT day for a T), "
                   "comma-separated in log order, e.g. 28,28,28,12,5.")
@click.option("--window", type=float, default=None,
              help="DLT window in days for --follow-up (default: the file's [calendar] dlt_window_days).")
@click.option("--eff-follow-up", "eff_follow_up", default=None, metavar="DAYS",
              help="Time-to-event designs that use response (TITE-BOIN12): days each patient has been followed for "
                   "response (the response day for an E or B), comma-separated in log order.")
@click.option("--eff-window", "eff_window", type=float, default=None,
              help="Response window in days for --eff-follow-up (default: the file's [calendar] response window, "
                   "else --window).")
@click.option("--estimates", is_flag=True, default=False,
              help="Also print the end-of-trial estimates per tier: isotonic P(DLT) with a 95% credible interval "
                   "(as R BOIN's select.mtd) and, for designs that use response, the observed response rate and "
                   "utility (mean outcome score of the tier's patients). "
                   "JSON output always has them.")
def recommend(file, outcomes, design, fmt, follow_up, window, eff_follow_up, eff_window, estimates):
    """What the design does next after OUTCOMES, e.g. "1NNN 2NTN".

    OUTCOMES lists cohorts: the tier number (1 = lowest) then one letter per
    patient, N (no DLT) or T (DLT); designs that use response also read E
    (response) and B (DLT and response). For TITE designs, --follow-up gives each
    patient's days of follow-up; an N followed for less than the window is pending.
    TITE-BOIN12 also needs --eff-follow-up (days followed for response).
    """
    proto = _protocol.load_protocol(file)

    def parse_days(text, option):
        try:
            days = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
        except ValueError:
            raise DoseescError(f"{option} {text[:60]!r}: give numbers of days separated by commas") from None
        for i, v in enumerate(days):
            if not math.isfinite(v) or not DAYS_RANGE[0] <= v <= DAYS_RANGE[1]:
                raise DoseescError(f"{option}: value {i + 1} = {v:g} must be a finite number of days from "
                                   f"{DAYS_RANGE[0]:g} to {DAYS_RANGE[1]:g}")
        return days

    for option, value in (("--window", window), ("--eff-window", eff_window)):
        if value is not None and (not math.isfinite(value) or not DAYS_RANGE[0] < value <= DAYS_RANGE[1]):
            raise DoseescError(f"{option} {value:g}: must be a finite number of days above {DAYS_RANGE[0]:g} and at "
                               f"most {DAYS_RANGE[1]:g}")

    days = eff_days = None
    if follow_up is not None:
        days = parse_days(follow_up, "--follow-up")
        if window is None and proto.calendar is not None:
            window = proto.calendar.dlt_window_days
        if window is None:
            raise DoseescError("--follow-up needs --window (the DLT window in days) or a [calendar] in the file")
    if eff_follow_up is not None:
        if follow_up is None:
            raise DoseescError("--eff-follow-up needs --follow-up as well")
        eff_days = parse_days(eff_follow_up, "--eff-follow-up")
        if eff_window is None and proto.calendar is not None:
            eff_window = proto.calendar.eff_window
    design = _resolve(proto, "design", design)
    rec = _live.recommend(proto.design(design), outcomes, ladder=proto.tiers, warn=False, follow_up=days, window=window,
                     eff_follow_up=eff_days, eff_window=eff_window)
    if fmt == "json":
        click.echo(json.dumps(_recommend_json(rec, design, proto.tiers.label), indent=2))
    else:
        click.echo(str(rec))
        if estimates:
            click.echo(_estimates_text(rec.estimates()))


def _recommend_json(rec, design: str, lab) -> dict:
    """The JSON answer of ``doseesc recommend``, with the per-tier estimates."""
    est = rec.estimates()
    rows = [{k: (None if isinstance(v, float) and v != v else v.item() if hasattr(v, "item") else v)
             for k, v in row.items()} for row in est.to_dict(orient="records")]
    return {
        "design": design, "outcomes": rec.outcomes, "stop": rec.stop,
        "next_tier": None if rec.stop else rec.next_tier + 1,
        "next_dose": None if rec.stop else lab(rec.next_tier),
        "reason": rec.reason.name.lower(),
        "selected_tier": None if rec.selected is None else rec.selected + 1,
        "selected_dose": None if rec.selected is None else lab(rec.selected),
        "complete_cohort": rec.incomplete, "message": rec.message,
        "suspend_accrual": rec.wait, "pending": rec.pending,
        "deviations": list(rec.deviations), "estimates": rows}


def _estimates_text(est) -> str:
    """The estimates per tier as indented lines: isotonic P(DLT) (95% CrI), and the response rate and the
    observed utility for designs that use response."""
    lines = ["  estimates (isotonic P(DLT), 95% credible interval as R BOIN select.mtd):"]
    for row in est.itertuples(index=False):
        if not row.n:
            lines.append(f"    {row.dose}: not tried")
            continue
        text = f"    {row.dose}: P(DLT) {row.p_dlt_isotonic:.2f} ({row.ci_low:.2f}, {row.ci_high:.2f})"
        if "response_rate" in est.columns:
            text += f"; response {row.responses}/{row.n} = {row.response_rate:.2f}; utility {row.utility:.1f}"
        lines.append(text)
    return "\n".join(lines)


@main.command("grid")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for grid.csv, points.csv, best.json, pareto.png and provenance.json (one sub-folder per "
                   "grid when the file has several); its parent must exist.")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="Grid name from the file's [[grid]] tables (repeatable; default: all).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Run the units on N local processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the units on a Dask cluster, e.g. tcp://host:8786 (needs pip install 'doseesc[dask]').")
@click.option("--dask-local", "dask_local", type=click.IntRange(min=1), default=None,
              help="Start a Dask LocalCluster of N processes for this run (needs pip install 'doseesc[dask]').")
@click.option("--checkpoint", type=click.Path(file_okay=False), default=None,
              help="Folder for finished units (default: OUT/checkpoint, removed when the grid has been written); "
                   "a rerun with it resumes a killed run and gives the same result.")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr (default: on a terminal).")
def grid(file, out, names, workers, scheduler, dask_local, checkpoint, progress):
    """Calibration grids: every parameter point of a [[grid]] table under the file's scenarios.

    Every point of a scenario sees the same simulated patients, so differences between points are paired.
    The result names the best point that meets the constraints and the points on the Pareto front; the
    numbers are identical whichever runner (in-process, --workers, --dask-local, --scheduler) is used.
    """
    proto = _protocol.load_protocol(file)
    if not proto.grids:
        raise DoseescError(f"{file}: no [[grid]] table (see the README, 'Calibration grids')")
    for n in names:
        if n not in proto.grids:
            raise DoseescError(f"{file}: no [[grid]] named {n!r} (grids: {', '.join(proto.grids)})")
    chosen = list(names) or list(proto.grids)
    target = _prepare_folder(out)
    show = sys.stderr.isatty() if progress is None else progress
    for n in chosen:
        sub = target / _safe_name(n) if len(chosen) > 1 else target
        ckpt = Path(checkpoint) / _safe_name(n) if checkpoint and len(chosen) > 1 else \
            Path(checkpoint) if checkpoint else sub / "checkpoint"
        bar = (lambda d, t, sec: sys.stderr.write(f"\r{n}: {_grid.progress_text(d, t, sec)}")) if show else None
        try:
            result = proto.grids[n].run(workers=workers, scheduler=scheduler, dask_local=dask_local,
                                        checkpoint=ckpt, progress=bar)
        finally:
            if show:
                sys.stderr.write("\n")
        paths = result.write(sub, provenance={"file": str(file), "sha256": proto.sha256,
                                              "command": _command_line("grid", file, (), (), name=shlex.quote(n))})
        if not checkpoint:   # the default checkpoint only serves to resume this run: gone once it is written
            shutil.rmtree(ckpt, ignore_errors=True)
        click.echo(_grid_text(n, result))
        click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


def _restricted(proto, designs, scenarios):
    """``proto`` with only the chosen designs and scenarios (all where none is chosen), in the file's order.
    Every design x scenario keeps its numbers: each run draws from the same seed whatever else is run."""
    if not designs and not scenarios:
        return proto
    keep_d = [n for n in proto.designs if not designs or n in designs]
    keep_s = [n for n in proto.scenarios if not scenarios or n in scenarios]
    changes = {"designs": {n: proto.designs[n] for n in keep_d},
               "scenarios": {n: proto.scenarios[n] for n in keep_s}}
    if getattr(proto, "conducts", None):
        changes["conducts"] = {n: c for n, c in proto.conducts.items() if n in keep_d}
    if getattr(proto, "indication_scenarios", None):
        changes["indication_scenarios"] = {n: v for n, v in proto.indication_scenarios.items() if n in keep_s}
    return dataclasses.replace(proto, **changes)


def _safe_name(name: str) -> str:
    """A grid name as a folder name (letters, digits, '-', '_' and '.'; others become '_')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "grid"


def _grid_text(name: str, result) -> str:
    """The grid's points, best first: parameters, objective with MCSE, feasibility; and the best point."""
    g = result.grid
    df = result.points()
    params = [c for c in df.columns if c in g.points[0]]
    lines = [f"grid {name!r}: {len(df)} points x {len(g.scenarios)} scenarios, {g.n_trials:,} trials each "
             f"(paired); objective: mean {g.objective} over scenarios"]
    for c in g.constraints:
        lines.append(f"  constraint: {c.text}")
    order = df.sort_values("objective", ascending=False, kind="stable")
    for p, row in order.iterrows():
        vals = ", ".join(f"{k} = {row[k]}" for k in params)
        flag = "" if row["feasible"] else f"  (fails {row['violated']})"
        lines.append(f"  {vals}: {100 * row['objective']:.1f}% ± {100 * row['objective_mcse']:.1f}, "
                     f"mean N {row['expected_n']:.1f}{flag}")
    best = result.best()
    lines.append("best point: " + ("none meets the constraints" if best is None else
                                   ", ".join(f"{k} = {best[k]}" for k in params)
                                   + f" ({100 * best['objective']:.1f}% ± {100 * best['objective_mcse']:.1f})"))
    return "\n".join(lines)


@main.command("protocol-text")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for FILE-methods.md (and FILE-methods.docx); created if missing (its parent must exist).")
@click.option("--n-trials", "-n", type=click.IntRange(min=2, max=MAX_TRIALS), default=None,
              help=f"Simulated trials per design and scenario for the operating characteristics (default: the "
                   f"file's [run] n_trials; at most {MAX_TRIALS:,}).")
@click.option("--seed", type=click.IntRange(min=0, max=2 ** 128 - 1), default=None,
              help="Random seed (default: the file's [run] seed, else fresh entropy, written in the text).")
@click.option("--docx/--no-docx", default=True, show_default=True,
              help="Also write a Word file (needs pip install 'doseesc[docx]').")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr (default: on a terminal).")
def protocol_text_cmd(file, out, n_trials, seed, docx, progress):
    """Statistical-methods text for the protocol: designs, decision rules and tables, stopping rules, operating
    characteristics and simulation settings, as Markdown (and Word)."""
    proto = _protocol.load_protocol(file)
    if docx and not _protocol_text.docx_available():
        raise DoseescError(_protocol_text.DOCX_MISSING)
    _prepare_folder(out, "--out")
    n = proto.n_trials if n_trials is None else n_trials
    if seed is None:
        seed = proto.seed if proto.seed is not None else int(np.random.SeedSequence().entropy)
    units = [(s, d) for s in proto.scenarios for d in proto.designs]
    bar = _Progress(n * len(units), sys.stderr.isatty() if progress is None else progress, units)
    command = _command_line("protocol-text", file, (), (), n_trials=n, seed=seed) + f" -o {shlex.quote(out)}"
    try:
        study = _study.run_protocol(proto, n_trials=n, seed=seed, progress=bar, command=command, keep_records=False)
    finally:
        bar.close()
    for path in _protocol_text.write_protocol_text(proto, study, out, docx=docx).values():
        click.echo(f"wrote {path}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder for the report (FILE-report.html and FILE-report.pdf); created if missing.")
@click.option("--n-trials", "-n", type=click.IntRange(min=2, max=MAX_TRIALS), default=None,
              help=f"Simulated trials per design and scenario (default: the file's [run] n_trials; at most "
                   f"{MAX_TRIALS:,}).")
@click.option("--seed", type=click.IntRange(min=0, max=2 ** 128 - 1), default=None,
              help="Random seed (default: the file's [run] seed, else fresh entropy, recorded in the report).")
@click.option("--progress/--no-progress", default=None, help="Progress line on stderr (default: on a terminal).")
@click.option("--detail", type=click.Choice(["summary", "full"]), default="full", show_default=True,
              help="summary: the summary for the committee (at most two pages) and the provenance; full: the "
                   "summary, then every section as an appendix.")
@click.option("--resume", is_flag=True, default=False,
              help="Continue an interrupted report from its checkpoint (OUT/.FILE-report.partial, kept when a run "
                   "is stopped); the result is identical to an uninterrupted run.")
@_design_opt
@_scenario_opt
def report(file, out, n_trials, seed, progress, detail, resume, designs, scenarios):
    """Committee report: every design under every scenario, as self-contained HTML and as PDF.

    It opens with a summary for the committee (the protocol in five lines, every design under every
    scenario on the question it answers, the safety figures, and which design does best on average and
    where it does worse); the appendix summarises each scenario in plain words, shows the figures and
    tables (exact values where the exact engine applies, else Monte Carlo standard errors), the
    calibration grids of the file, the decision tables, first escalation paths and a worked example per
    design, and the command that reproduces it.
    """
    proto = _protocol.load_protocol(file)
    designs, scenarios = _check_names(proto, designs, scenarios)
    proto = _restricted(proto, designs, scenarios)
    _prepare_folder(out, "--out")
    n = proto.n_trials if n_trials is None else n_trials
    ckpt = Path(out).resolve() / f".{Path(file).stem}-report.partial"
    seed = _resume_seed(ckpt, resume, seed, "--out", out)
    if seed is None:
        seed = proto.seed if proto.seed is not None else int(np.random.SeedSequence().entropy)
    units = [(s, d) for s in proto.scenarios for d in proto.designs]
    n_units = len(units)
    bar = _Progress(n * n_units, sys.stderr.isatty() if progress is None else progress, units)
    command = _command_line("report", file, designs, scenarios, n_trials=n, seed=seed) + f" -o {shlex.quote(out)}" \
        + ("" if detail == "full" else f" --detail {detail}")
    click.get_current_context().meta["interrupted"] = _Interrupted(ckpt, n_units, command + " --resume")
    try:
        rep = _study.committee_report(proto, n_trials=n, seed=seed, command=command, progress=bar, detail=detail,
                                      grids=detail == "full", checkpoint=ckpt)
    finally:
        bar.close()
    written = rep.write(out)
    click.get_current_context().meta.pop("interrupted", None)
    shutil.rmtree(ckpt, ignore_errors=True)
    click.echo(f"wrote {written['html']}")
    click.echo(f"wrote {written['pdf']} ({written['pages']} pages)")
