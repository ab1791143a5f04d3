"""The committee report: built through the CLI for a bundled file, its HTML parsed (figures embedded,
every design and scenario present, numbers equal to the library's), its PDF read back, and the HTML
opened in headless Chromium."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import shlex
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import doseesc
from doseesc.cli import main
from doseesc.engines.paths import paths as dose_paths
from doseesc.report.committee import build_report
from doseesc.report.document import render_html
from doseesc.report.labels import design_colours, metric_scale, tier_labels
from doseesc.study import run_protocol
from doseesc.tables import decision_table

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "scenarios" / "ecar01.toml"
N_TRIALS = 400
SEED = 20240611


# -- a small HTML model, stdlib parser only ---------------------------------------------------------

class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.images, self.figures, self.scripts, self.links = [], [], [], [], []
        self.text = []
        self.bullets = []
        self._table = self._row = self._cell = None
        self._in_li = None
        self._in_script = False
        self._part = None
        self._heading = None
        self.headings = []
        self.html_attrs = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag == "table":
            self._table = {"attrs": {k[5:]: v for k, v in a.items() if k.startswith("data-")}, "caption": "",
                           "header": [], "rows": [], "keys": []}
        elif tag in ("thead", "tbody"):
            self._part = tag
        elif tag == "tr" and self._table is not None:
            self._row = []
            if "data-key" in a:
                self._table["keys"].append(a["data-key"])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        elif tag == "figure":
            self.figures.append(a.get("data-figure"))
        elif tag == "script":
            self.scripts.append(a)
            self._in_script = True
        elif tag == "link":
            self.links.append(a)
        elif tag == "li":
            self._in_li = []
        elif tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._part == "thead":
                self._table["header"] = self._row
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.tables.append(self._table)
            self._table = None
        elif tag == "script":
            self._in_script = False
        elif tag == "li" and self._in_li is not None:
            self.bullets.append("".join(self._in_li))
            self._in_li = None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append((tag, "".join(self._heading)))
            self._heading = None

    def handle_data(self, data):
        if self._in_script:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        elif self._table is not None and self._row is None:
            self._table["caption"] += data
        if self._in_li is not None:
            self._in_li.append(data)
        if self._heading is not None:
            self._heading.append(data)


def parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    p.all_text = " ".join(p.text)
    return p


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def close(text: str, value: float, scale: float = 1.0) -> bool:
    """``text`` (as printed) equals ``scale * value`` to the printed number of decimals."""
    text = text.strip()
    dec = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - scale * value) <= 0.5 * 10 ** -dec + 1e-9


def table(page, **attrs):
    found = [t for t in page.tables if all(t["attrs"].get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, f"expected one table with {attrs}, found {len(found)}"
    return found[0]


def cell(t, key, column):
    j = t["header"].index(column)
    return t["rows"][t["keys"].index(key)][j]


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = CliRunner().invoke(main, ["report", str(FILE), "-o", str(out), "--n-trials", str(N_TRIALS),
                                    "--seed", str(SEED)])
    assert res.exit_code == 0, res.output
    html_path = out / "ecar01-report.html"
    pdf_path = out / "ecar01-report.pdf"
    assert html_path.is_file() and pdf_path.is_file()
    pages = int(re.search(r"\((\d+) pages\)", res.output).group(1))
    html = html_path.read_text(encoding="utf-8")
    proto = doseesc.load_protocol(FILE)
    study = run_protocol(proto, n_trials=N_TRIALS, seed=SEED)
    return {"out": out, "html_path": html_path, "pdf_path": pdf_path, "html": html, "page": parse(html),
            "pages": pages, "proto": proto, "study": study, "output": res.output}


# -- HTML -----------------------------------------------------------------------------------------

def test_html_is_self_contained_and_every_figure_is_an_embedded_png(built):
    page = built["page"]
    assert not page.links, "no external stylesheets or other links"
    assert all("src" not in s for s in page.scripts), "no external scripts"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", built["html"])
    assert page.images and len(page.images) == len(page.figures)
    for img in page.images:
        src = img["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        w, h = png_size(base64.b64decode(src.split(",", 1)[1], validate=True))
        assert w > 100 and h > 100
        assert img.get("alt")


def test_every_expected_figure_is_present(built):
    proto, study = built["proto"], built["study"]
    expected = set()
    for s in proto.scenarios:
        expected |= {f"dose-response/{s}", f"selection/{s}", f"allocation/{s}", f"sample-size/{s}"}
        if proto.dose_model is not None:   # the actual-dose distribution per scenario
            expected.add(f"actual-dose/{s}")
        if proto.calendar is not None:     # duration against correct selection per scenario
            expected.add(f"duration/{s}")
    for name, d in proto.designs.items():
        try:
            decision_table(d)
            expected.add(f"decision/{name}")
        except doseesc.DoseescError:
            pass
        try:
            dose_paths(d, 2, ladder=proto.tiers)
            expected.add(f"paths/{name}")
        except doseesc.DoseescError:
            pass
    expected |= {f"grid/{name}" for name in proto.grids}   # the Calibration section: one Pareto figure per grid
    got = built["page"].figures
    assert len(got) == len(set(got)), "a figure appears twice"
    assert set(got) == expected
    # interval designs and the 3+3 do have decision tables
    assert {"decision/BOIN", "decision/i3+3", "decision/3+3"} <= set(got)
    assert len(study.results) == len(proto.designs) * len(proto.scenarios)


def test_every_design_and_scenario_is_present(built):
    page, proto = built["page"], built["proto"]
    heads = [h for _, h in page.headings]
    for s in proto.scenarios:
        assert f"Scenario '{s}'" in heads
        assert table(page, kind="key", scenario=s)["keys"] == list(proto.designs)
        for d in proto.designs:
            table(page, kind="select", design=d, scenario=s)
            table(page, kind="metrics", design=d, scenario=s)
    assert table(page, kind="designs")["keys"] == list(proto.designs)
    assert table(page, kind="scenarios")["keys"] == list(proto.scenarios)
    for d in proto.designs:
        assert d in heads  # its decision rules section


def test_numbers_in_tables_equal_the_library_results(built):
    page, study = built["page"], built["study"]
    checked = 0
    for r in study.results:
        d, s = study.name_of(r), r.scenario.name
        t = table(page, kind="select", design=d, scenario=s)
        summ = r.summary()
        assert t["keys"] == ["no-dose"] + [f"tier-{i + 1}" for i in range(r.ladder.n_tiers)]
        for i, key in enumerate(t["keys"]):
            row = summ.iloc[i]
            assert close(cell(t, key, "P(select), %"), row["p_select"], 100)
            assert close(cell(t, key, "MCSE"), row["p_select_mcse"], 100)
            if i > 0:
                assert close(cell(t, key, "mean patients"), row["mean_n"])
                assert close(cell(t, key, "mean DLTs"), row["mean_dlt"])
                assert close(cell(t, key, "true P(DLT)"), row["true_tox"])
            checked += 1
        assert cell(t, f"tier-{r.true_mtd + 1}", "truth").startswith("MTD") if r.true_mtd >= 0 else True
        m = r.metrics()
        t = table(page, kind="metrics", design=d, scenario=s)
        assert t["keys"] == list(m.index)  # every metric, realism extras included
        for name, row in m.iterrows():
            scale = metric_scale(name)
            if math.isfinite(row["estimate"]):
                assert close(cell(t, name, "Estimate"), row["estimate"], scale), (d, s, name)
                assert close(cell(t, name, "MCSE"), row["mcse"], scale), (d, s, name)
            checked += 1
        k = table(page, kind="key", scenario=s)
        # each design on its own question: P(true MTD) for MTD designs, P(true OBD) for OBD designs
        est, se = r.metric("p_select_obd" if r.design.question == "OBD" else "p_correct")
        assert cell(k, d, "question") == r.design.question
        got = re.fullmatch(r"([\d.]+) \(([\d.]+)\)", cell(k, d, "P(correct), % (MCSE)"))
        assert close(got.group(1), est, 100) and close(got.group(2), se, 100)
        got = re.fullmatch(r"([\d.]+) \(([\d.]+)\)", cell(k, d, "mean N (MCSE)"))
        assert close(got.group(1), r.expected_n) and close(got.group(2), r.expected_n_mcse)
        assert cell(k, d, "N, 10%-90%") == f"{r.quantile_n(0.1):g}-{r.quantile_n(0.9):g}"
    assert checked > 300


def test_summary_sentences_come_from_the_numbers(built):
    page, study, proto = built["page"], built["study"], built["proto"]
    text = " ".join(page.bullets)
    for s in proto.scenarios:
        res = {study.name_of(r): r for r in study.results if r.scenario.name == s and r.design.question == "MTD"}
        best = max(res, key=lambda n: res[n].p_correct)
        pc = res[best].p_correct
        what = "correctly stops with no dose" if res[best].true_mtd < 0 else "picks the true MTD"
        assert re.search(re.escape(f"{best} {what}") + r"[^.]*?" + re.escape(f"{100 * pc:.1f}%"), text), (s, best)


def test_tiers_are_labelled_in_units_and_provenance_is_complete(built):
    page, proto, html = built["page"], built["proto"], built["html"]
    labels = tier_labels(proto.tiers, "html")
    assert labels[1] == "3×10<sup>5</sup> CAR-T cells/kg"
    for lab in labels:
        assert lab in html
    assert table(page, kind="tiers")["rows"][1][1] == "3×105 CAR-T cells/kg"  # text of "3×10<sup>5</sup>"
    assert "Tier 1" not in page.all_text
    prov = table(page, kind="provenance")
    assert cell(prov, "doseesc version", "Value") == doseesc.__version__
    assert cell(prov, "scenario file SHA-256", "Value") == proto.sha256
    assert cell(prov, "seed entropy", "Value") == str(SEED)
    assert cell(prov, "simulated trials per design and scenario", "Value") == str(N_TRIALS)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", cell(prov, "created (UTC)", "Value"))
    # the command reproduces the run behind every number checked above
    args = shlex.split(cell(prov, "command", "Value"))
    assert args[:3] == ["doseesc", "report", str(FILE)]
    assert args[args.index("--n-trials") + 1] == str(N_TRIALS) and args[args.index("--seed") + 1] == str(SEED)
    assert args[args.index("-o") + 1] == str(built["out"])


def test_colours_are_fixed_per_design_and_colour_blind_safe():
    from doseesc.report import plots

    names = ["3+3", "BOIN", "CRM", "BOIN12"]
    c = design_colours(names)
    assert c == design_colours(names) and len(set(c.values())) == 4
    assert c["3+3"] == "#0072B2" and c["BOIN"] == "#E69F00"  # Okabe-Ito order
    proto = doseesc.load_protocol(FILE)
    study = run_protocol(proto, designs=["3+3", "BOIN", "CRM"], scenarios=["mtd-middle", "steep"], n_trials=50,
                         seed=1)
    colours = design_colours(proto.designs)
    from matplotlib.colors import to_hex
    from matplotlib.container import BarContainer

    for s in ("mtd-middle", "steep"):
        for fn in (study.plot_selection, study.plot_allocation):
            ax = fn(s)
            bar_sets = [c for c in ax.containers if isinstance(c, BarContainer)]
            assert [b.get_label() for b in bar_sets] == ["3+3", "BOIN", "CRM"]
            for bars in bar_sets:
                assert {to_hex(b.get_facecolor()) for b in bars} == {colours[bars.get_label()].lower()}
        ax = study.plot_sample_size(s)
        assert [t.get_text() for t in ax.get_yticklabels()] == ["CRM", "BOIN", "3+3"]
    fig = study.plot_scenario("steep")
    assert len(fig.axes) == 4
    assert plots.plot_dose_response(study.results[0].scenario, proto.tiers, 0.25, proto.obd).figure is not None


def test_result_plot_accessors_return_axes_and_reuse_a_given_ax():
    from matplotlib.figure import Figure

    proto = doseesc.load_protocol(FILE)
    r = run_protocol(proto, designs=["BOIN"], scenarios=["mtd-middle"], n_trials=50, seed=1).results[0]
    for name in ("plot_selection", "plot_allocation", "plot_sample_size", "plot_dose_response"):
        ax = getattr(r, name)()
        assert ax.figure is not None and ax.get_title()
        fig = Figure()
        given = fig.add_subplot()
        assert getattr(r, name)(ax=given) is given
    sel = r.plot_selection()
    assert [t.get_text() for t in sel.get_xticklabels()][0] == "No dose"


def test_library_imports_matplotlib_lazily_and_never_pyplot():
    code = (
        "import sys, doseesc\n"
        "from doseesc.study import run_protocol\n"
        "from doseesc.report import committee, plots\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'\n"
        "p = doseesc.load_protocol(sys.argv[1])\n"
        "st = run_protocol(p, designs=['3+3', 'BOIN'], scenarios=['steep'], n_trials=50, seed=1)\n"
        "rep = st.report()\n"
        "st._repr_html_(); st.plot_scenario('steep')\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, str(FILE)], check=True, cwd=ROOT)


def test_study_renders_as_html_tables_in_jupyter():
    proto = doseesc.load_protocol(FILE)
    study = run_protocol(proto, designs=["3+3", "BOIN"], scenarios=["steep", "mtd-top"], n_trials=100, seed=3)
    page = parse(study._repr_html_())
    assert [t["attrs"]["scenario"] for t in page.tables] == ["steep", "mtd-top"]
    t = page.tables[0]
    assert t["keys"] == ["3+3", "BOIN"]
    r = study.results[1]
    got = re.fullmatch(r"([\d.]+) \(([\d.]+)\)", cell(t, "BOIN", "P(true MTD), % (MCSE)"))
    assert close(got.group(1), r.p_correct, 100)


def test_realism_metrics_and_models_appear_when_present():
    """Metrics in ``result.extra`` get a row in every design table; dose and calendar models are described."""
    proto = doseesc.load_protocol(FILE)
    study = run_protocol(proto, designs=["3+3", "BOIN"], scenarios=["mtd-middle"], n_trials=60, seed=5)
    rng = np.random.default_rng(0)
    days = rng.uniform(100, 400, 60)
    days[:3] = np.nan  # a metric that does not apply to some trials
    r0 = dataclasses.replace(study.results[0], extra={**study.results[0].extra,
                                                       "duration_days": (days, "trial duration in days")})

    class Calendar:
        def describe(self):
            return "accrual of 1.5 patients per month; DLT window 28 days"

    proto2 = dataclasses.replace(proto, calendar=Calendar())
    study2 = dataclasses.replace(study, protocol=proto2, results=(r0, study.results[1]))
    rep = build_report(study2, path_cohorts=1)
    page = parse(rep.html())
    t = table(page, kind="metrics", design="3+3", scenario="mtd-middle")
    # shown in months (days / 30.4375)
    assert close(cell(t, "duration_days", "Estimate"), float(np.nanmean(days)), metric_scale("duration_days"))
    assert close(cell(t, "duration_days", "MCSE"), float(np.nanstd(days[3:], ddof=1) / math.sqrt(57)),
                 metric_scale("duration_days"))
    settings = table(page, kind="settings")
    assert "accrual of 1.5 patients per month" in cell(settings, "Calendar", "Value")
    if proto.dose_model is not None:
        assert cell(settings, "Actual dose and manufacturing", "Value")
    # the glossary names the metric as the tables show it (in months), without "in days"
    assert cell(table(page, kind="glossary"), "duration_days", "Definition") == "trial duration"


def test_exact_study_report_has_no_mcse():
    proto = doseesc.load_protocol(FILE)
    study = run_protocol(proto, method="exact", designs=["3+3", "BOIN"], scenarios=["mtd-middle"])
    page = parse(build_report(study, path_cohorts=1).html())
    t = table(page, kind="select", design="BOIN", scenario="mtd-middle")
    assert "MCSE" not in t["header"]
    r = study.results[1]
    assert close(cell(t, "tier-2", "P(select), %"), r.p_select[2], 100)
    assert "P(true MTD), %" in table(page, kind="key", scenario="mtd-middle")["header"]


def test_cli_report_errors_are_one_line(tmp_path):
    afile = tmp_path / "not-a-folder"
    afile.write_text("x")
    res = CliRunner().invoke(main, ["report", str(FILE), "-o", str(afile), "--n-trials", "10"])
    assert res.exit_code == 2 and "is a file" in res.output  # click refuses it as a usage error
    res = CliRunner().invoke(main, ["report", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "no such file" in res.output
    res = CliRunner().invoke(main, ["report", str(FILE), "-o", str(tmp_path / "a" / "b"), "--n-trials", "10"])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "does not exist" in res.output
    assert list(tmp_path.iterdir()) == [afile]


# -- PDF -------------------------------------------------------------------------------------------

def test_pdf_pages_and_text(built):
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(built["pdf_path"])
    n = len(reader.pages)
    assert n == built["pages"]
    texts = [p.extract_text() for p in reader.pages]
    for i, t in enumerate(texts, start=1):
        assert f"page {i} of {n}" in t
    proto, study = built["proto"], built["study"]
    # every section that starts on a new page starts its page, in order
    starts = ["Summary for the committee", "Appendix", "The protocol at a glance"] \
        + [f"Scenario '{s}'" for s in proto.scenarios] + ["Calibration", "Decision rules and escalation paths",
                                                        "Provenance"]
    first_lines = [t.strip().splitlines()[0] for t in texts]
    where = []
    for s in starts[1:]:   # the summary follows the title on page 1; the appendix and its sections start pages
        assert s in first_lines, f"section {s!r} does not start a page"
        where.append(first_lines.index(s))
    assert where == sorted(where)
    assert "Summary for the committee" in texts[0] and texts[0].startswith("ECAR01")
    # the content fixes a floor: title, protocol, then per scenario its text, 4 figures and a table per design
    assert n >= 2 + 2 * len(proto.scenarios) + 2
    full = "\n".join(texts)
    for d in proto.designs:
        assert d in full
    assert proto.sha256 in full.replace("\n", "")
    assert f"--seed {SEED}" in full
    # a number from the tables, printed the same way in both files
    r = next(r for r in study.results if study.name_of(r) == "BOIN" and r.scenario.name == "mtd-middle")
    assert f"{100 * r.p_correct:.1f} ({100 * r.p_correct_mcse:.1f})" in full


# -- headless Chromium --------------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_in_chromium(path: Path, tmp_path: Path) -> tuple[list[str], str]:
    """Load ``path`` in headless Chromium; return (console messages, the DOM after load)."""
    exe = _chromium()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines()
               if ":CONSOLE" in line or "Uncaught" in line]
    return console, proc.stdout


chromium_needed = pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (.ci/run installs it)")


@chromium_needed
def test_chromium_detects_console_errors_and_broken_images(tmp_path):
    """The check below can fail: a page with a script error and a missing image is caught."""
    bad = tmp_path / "bad.html"
    good_png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    html = render_html([], "t")  # the report's own page shell, with its image check
    bad.write_text(html.replace("<main>", f'<main><img src="data:image/png;base64,{good_png}" alt="ok">'
                                          '<img src="missing.png" alt="missing figure">'
                                          "<script>undefinedFunction();</script>"))
    console, dom = open_in_chromium(bad, tmp_path)
    assert any("undefinedFunction" in c for c in console)
    assert any("missing figure" in c for c in console)
    assert 'data-images-loaded="1/2"' in dom


@chromium_needed
def test_report_opens_in_headless_chromium_without_errors(built, tmp_path):
    console, dom = open_in_chromium(built["html_path"], tmp_path)
    assert console == [], console
    n = len(built["page"].images)
    assert f'data-images-loaded="{n}/{n}"' in dom
    assert "Provenance" in dom



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
"""


def test_report_shows_each_question_conduct_notes_and_near_ties(tmp_path):
    f = tmp_path / "mixed.toml"
    f.write_text(MIXED)
    proto = doseesc.load_protocol(f)
    study = run_protocol(proto, n_trials=100, seed=2)
    res = {study.name_of(r): r for r in study.results}
    page = parse(build_report(study, path_cohorts=1).html())
    k = table(page, kind="key", scenario="mid")
    assert k["header"][:3] == ["Design", "question", "P(correct), % (MCSE)"]
    assert "P(true OBD), % (MCSE)" not in k["header"] and "P(true MTD), % (MCSE)" not in k["header"]
    assert cell(k, "BOIN12", "question") == "OBD" and cell(k, "CRM", "question") == "MTD"
    assert close(cell(k, "BOIN12", "P(correct), % (MCSE)").split()[0], res["BOIN12"].p_select_obd, 100)
    assert close(cell(k, "CRM", "P(correct), % (MCSE)").split()[0], res["CRM"].p_correct, 100)
    # conduct: 3+3 at most 18 patients (3 tiers x 6) against 24; CRM without a safety stop
    assert cell(k, "3+3", "Design") == "3+3 [a]" and cell(k, "CRM", "Design") == "CRM [b]"
    assert "[a] 3+3: max N 18 (others 24). [b] CRM: no safety stop." in page.all_text
    assert "no safety stop" in cell(table(page, kind="settings"), "Differences in conduct", "Value")
    # the near-tie warning in the scenario's section, and the summary names the OBD design only for the OBD
    tie = doseesc.OBDDefinition().near_tie_text(proto.scenarios["mid"], tier_labels(proto.tiers))
    text = re.sub(r"\s+", " ", page.all_text)          # the HTML writes 10^5 as 10<sup>5</sup>
    assert tie and re.sub(r"\^(\d+)", r" \1 ", f"Warning: {tie}.").replace("  ", " ") in text
    assert re.search(r"OBD question: the true OBD is [^;]+; BOIN12 names it", " ".join(page.bullets))
    # both questions where asked
    both = table(parse(build_report(study, path_cohorts=1, both_questions=True).html()), kind="key", scenario="mid")
    assert "P(true MTD), % (MCSE)" in both["header"] and "P(true OBD), % (MCSE)" in both["header"]
    assert close(cell(both, "3+3", "P(true OBD), % (MCSE)").split()[0], res["3+3"].p_select_obd, 100)


def test_report_prefers_exact_values_and_says_which(tmp_path):
    """A study run with method 'auto': designs the exact engine computes appear with their exact numbers (marked
    '(exact)' after the name, no MCSE) in the key and by-tier tables; the others stay Monte Carlo with MCSE; the
    Settings say which designs are exact."""
    f = tmp_path / "mixed.toml"
    f.write_text(MIXED)
    proto = doseesc.load_protocol(f)
    study = run_protocol(proto, method="auto", n_trials=100, seed=2, max_states=100_000)
    ex = {name: r for (s, name), r in study.exact_results.items() if s == "mid"}
    assert "3+3" in ex          # 3 tiers, N <= 18: a few hundred states
    page = parse(build_report(study, path_cohorts=1).html())
    k = table(page, kind="key", scenario="mid")
    head = next(h for h in k["header"] if h.startswith("P(correct)"))
    for name, r in {study.name_of(x): x for x in study.results}.items():
        shown = cell(k, name, head)
        if name in ex:
            assert cell(k, name, "Design").endswith("(exact)")
            value = ex[name].p_select_obd if r.design.question == "OBD" else ex[name].p_correct
            assert shown == f"{100 * value:.1f}"                 # no MCSE in brackets
        else:
            assert "(exact)" not in cell(k, name, "Design") and "(" in shown
    assert ex, "no design was computed exactly"
    name = next(iter(ex))
    sel = table(page, kind="select", design=name, scenario="mid")
    assert "MCSE" not in sel["header"]
    assert close(cell(sel, "tier-2", "P(select), %"), ex[name].p_select[2], 100)
    text = re.sub(r"\s+", " ", page.all_text)
    said = re.search(r"with exact enumeration \(no MCSE\) in the key tables and by-tier tables where it applies: "
                     r"([^;]+);", text)
    assert said and set(said.group(1).split(", ")) == set(ex)


def test_averages_over_scenarios_table(built):
    """'All scenarios together': each design's averages over the scenarios with the worst scenario in brackets,
    equal to Study.averages() of the same runs."""
    t = table(built["page"], kind="averages")
    av = built["study"].averages().set_index(["design", "metric"])
    for design in ("3+3", "BOIN12"):
        own = "p_correct" if design == "3+3" else "p_select_obd"
        est, worst = av.loc[(design, own), "estimate"], av.loc[(design, own), "worst"]
        assert cell(t, design, "P(correct), %") == f"{100 * est:.1f} ({100 * worst:.1f})"
        est, worst = av.loc[(design, "p_above_mtd"), "estimate"], av.loc[(design, "p_above_mtd"), "worst"]
        assert cell(t, design, "P(above MTD), %") == f"{100 * est:.1f} ({100 * worst:.1f})"


def test_worked_example_reads_a_simulated_trial_with_recommend(built):
    """Each design (not time-to-event) gets a worked example: the first simulated trial of the first scenario,
    as doseesc recommend reads it, with its isotonic estimates; OBD designs add response rate and utility."""
    page, study = built["page"], built["study"]
    for name, obd in (("3+3", False), ("BOIN12", True)):
        r = next(x for x in study.results if study.name_of(x) == name)
        log = str(r.trials()["log"].iloc[0])
        if not obd:
            log = log.replace("E", "N").replace("B", "T")
        rec = doseesc.recommend(r.design, log, ladder=built["proto"].tiers, warn=False)
        t = table(page, kind="estimates", design=name)
        est = rec.estimates()
        tried = est[est["n"] > 0].iloc[0]
        shown = cell(t, str(int(tried["tier"])), "P(DLT), isotonic (95% CrI)")
        assert shown == f"{tried['p_dlt_isotonic']:.2f} ({tried['ci_low']:.2f}-{tried['ci_high']:.2f})"
        assert ("utility" in t["header"]) == obd
        assert log in page.all_text


def test_calibration_section_shows_each_grid(tmp_path):
    """A file with a [[grid]]: committee_report runs it and the report lists every point (best first, objective
    with MCSE as GridResult.points()), the best feasible point and the Pareto figure."""
    from doseesc.study import committee_report
    f = tmp_path / "g.toml"
    f.write_text(MIXED + '\n[[grid]]\nname = "size"\ndesign = "3+3"\nn_trials = 200\nseed = 4\n'
                 'sample_size = [9, 18]\n')
    proto = doseesc.load_protocol(f)
    rep = committee_report(proto, n_trials=50, seed=3, path_cohorts=1)
    page = parse(rep.html())
    t = table(page, kind="grid", grid="size")
    pts = proto.grids["size"].run().points()
    for p, row in pts.iterrows():
        shown = f"{100 * row['objective']:.1f} ({100 * row['objective_mcse']:.1f})"
        assert cell(t, str(p), "P(correct), % (MCSE)") == shown
    assert [r[0] for r in t["rows"]][0].startswith("max_n = ")
    assert "Best point meeting the constraints: max_n = " in page.all_text
    assert "grid/size" in rep.figures


def test_summary_table_and_verdict_from_the_numbers(built):
    """The summary's cross-scenario table: each design's P(correct) on its own question per scenario (S1, S2...),
    the average and the worst; the verdict names the design with the best average of each question."""
    page, study = built["page"], built["study"]
    t = table(page, kind="cross")
    snames = list(dict.fromkeys(r.scenario.name for r in study.results))
    assert t["header"] == ["Design", "Q"] + [f"S{i + 1}" for i in range(len(snames))] + ["average", "worst"]
    avg = {}
    for name in ("3+3", "BOIN", "BOIN12", "BOIN-ET"):
        rs = [x for x in study.results if study.name_of(x) == name]
        own = "p_correct" if rs[0].design.question == "MTD" else "p_select_obd"
        vals = [x.metric(own)[0] for x in rs]
        for i, v in enumerate(vals):
            assert cell(t, name, f"S{i + 1}").rstrip("*") == f"{100 * v:.1f}"
        assert cell(t, name, "average") == f"{100 * sum(vals) / len(vals):.1f}"
        assert cell(t, name, "worst") == f"{100 * min(vals):.1f}"
        avg[name] = (rs[0].design.question, sum(vals) / len(vals))
    text = re.sub(r"\s+", " ", page.all_text)
    # the named best MTD design has the highest average among every MTD design of the table
    said = re.search(r"MTD question: (.+?) selects the true MTD most often on average", text).group(1)
    best = max((float(cell(t, r[0].split(" [")[0], "average")), r[0].split(" [")[0]) for r in t["rows"]
               if r[1] == "MTD")
    assert said == best[1]
    assert avg["3+3"][0] == "MTD" and avg["BOIN12"][0] == "OBD"


def test_summary_detail_is_at_most_two_pages_for_every_bundled_file(tmp_path):
    """detail='summary': the summary for the committee and the provenance; the summary ends by page 2 (the
    provenance starts on page 2 or 3) for every bundled file."""
    from pypdf import PdfReader
    from doseesc.study import committee_report
    for f in sorted((ROOT / "scenarios").glob("*.toml")):
        rep = committee_report(doseesc.load_protocol(f), n_trials=40, seed=1, method="simulate", grids=False,
                               detail="summary", path_cohorts=1)
        out = rep.write(tmp_path / f.stem)
        reader = PdfReader(out["pdf"])
        texts = [p.extract_text() for p in reader.pages]
        assert "Summary for the committee" in texts[0], f.name
        first_prov = next(i for i, tx in enumerate(texts) if "Run this command with the same doseesc" in tx)
        assert first_prov <= 2, f"{f.name}: summary runs to page {first_prov + 1}"
        assert len(texts) <= 3, f.name


def test_cli_report_detail_summary(tmp_path):
    f = tmp_path / "mixed.toml"
    f.write_text(MIXED)
    r = CliRunner().invoke(main, ["report", str(f), "-o", str(tmp_path / "r"), "-n", "40", "--seed", "1",
                                  "--detail", "summary", "--no-progress"])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r" / "mixed-report.html").read_text(encoding="utf-8")
    page = parse(html)
    heads = [h for _, h in page.headings]
    assert "Summary for the committee" in heads and "Provenance" in heads and "Appendix" not in heads
    assert int(re.search(r"\((\d+) pages\)", r.output).group(1)) <= 3
    assert "--detail summary" in page.all_text
