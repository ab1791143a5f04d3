"""The committee report's summary pages keep every drawn text, table cell and figure inside the page, for every
bundled file (issue 23 acceptance: "no table or label is clipped at the page edge"). The PDF pages are matplotlib
figures (doseesc.report.document.render_pdf); every artist's drawn extent is compared with the page box, and the
summary pages are rendered to PNG (pdftoppm, where installed) to check that nothing is drawn in the outer margin."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import doseesc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from doseesc.report import document
from doseesc.study import committee_report

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "scenarios").glob("*.toml"))


def _extents(fig):
    """(page box, drawn extents of every non-empty text and every axes) of one page figure, in pixels."""
    r = FigureCanvasAgg(fig).get_renderer()
    fig.draw(r)
    boxes = [t.get_window_extent(r) for t in fig.texts if t.get_text().strip()]
    for ax in fig.axes:
        boxes.append(ax.get_window_extent(r))
        boxes += [t.get_window_extent(r) for t in ax.texts if t.get_text().strip()]
    return fig.bbox, boxes


def _outside(page, boxes) -> list:
    return [b for b in boxes if b.x0 < page.x0 - 0.5 or b.x1 > page.x1 + 0.5 or b.y0 < page.y0 - 0.5
            or b.y1 > page.y1 + 0.5]


def test_the_check_sees_a_label_running_off_the_page():
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8.27, 11.69))
    fig.text(0.1, 0.5, "inside")
    assert _outside(*_extents(fig)) == []
    fig.text(0.9, 0.5, "a duration column cut at the right edge")
    assert len(_outside(*_extents(fig))) == 1


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    """Per bundled file: the summary report's PDF and, per page, the drawn extents (points) of its artists."""
    out = {}
    tmp = tmp_path_factory.mktemp("clip")
    for f in FILES:
        rep = committee_report(doseesc.load_protocol(f), n_trials=40, seed=1, method="simulate", grids=False,
                               detail="summary", path_cohorts=1)
        lay_pages = []

        class Spy(document.PdfLayout):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                lay_pages.append(self)

        orig = document.PdfLayout
        document.PdfLayout = Spy
        try:
            written = rep.write(tmp / f.stem)
        finally:
            document.PdfLayout = orig
        pages = [_extents(fig) for fig in lay_pages[0].pages]
        out[f.stem] = {"pdf": written["pdf"], "pages": pages}
    return out


@pytest.mark.parametrize("stem", [f.stem for f in FILES])
def test_every_artist_of_the_summary_is_inside_the_page(summaries, stem):
    pages = summaries[stem]["pages"]
    assert 1 <= len(pages) <= 3
    for i, (page, boxes) in enumerate(pages, start=1):
        assert boxes, f"page {i} draws nothing"
        assert i > 1 or len(boxes) > 20, "page 1: the summary's tables and text are drawn as separate artists"
        assert _outside(page, boxes) == [], f"{stem} page {i}: drawn outside the page"


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
@pytest.mark.parametrize("stem", [f.stem for f in FILES])
def test_rendered_summary_pages_leave_the_outer_margin_blank(summaries, stem, tmp_path):
    """Rendered at 40 dpi, the outermost 1.5% of each side of every summary page is white: a table or label
    running off the page would put ink there."""
    from matplotlib import image as mimage
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(summaries[stem]["pdf"]), str(tmp_path / "p")], check=True)
    pngs = sorted(tmp_path.glob("p*.png"))
    assert pngs
    for png in pngs:
        img = mimage.imread(png)[..., :3]
        h, w = img.shape[:2]
        mx, my = max(1, int(0.015 * w)), max(1, int(0.015 * h))
        margin = np.concatenate([img[:, :mx].reshape(-1, 3), img[:, -mx:].reshape(-1, 3),
                                 img[:my].reshape(-1, 3), img[-my:].reshape(-1, 3)])
        assert margin.min() > 0.9, f"{png.name}: ink in the outer margin"
