"""A small document model rendered twice: self-contained HTML and a matplotlib-drawn PDF.

A report is a list of blocks (headings, paragraphs, tables, figures, page breaks). The HTML
renderer embeds every figure as a base64 PNG, inlines its CSS and one small script, and loads
nothing from outside. The PDF renderer lays the same blocks out on A4 pages with matplotlib
only (:class:`~matplotlib.backends.backend_pdf.PdfPages`): text with ``Figure.text``, tables drawn
cell by cell, figures placed as images. So the two files carry the same content.

Text may write powers of ten as ``3×10^5``: HTML shows a superscript, the PDF superscript digits.
"""

from __future__ import annotations

import base64
import html as _html
import io
import re
from dataclasses import dataclass, field

_POW = re.compile(r"×10\^(-?\d+)")
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def html_text(text: str) -> str:
    """Escape ``text`` for HTML; ``×10^5`` becomes ``×10<sup>5</sup>``."""
    return _POW.sub(r"×10<sup>\1</sup>", _html.escape(str(text)))


def pdf_text(text: str) -> str:
    """``×10^5`` as ``×10⁵`` for the PDF (DejaVu Sans has the superscript digits)."""
    return _POW.sub(lambda m: "×10" + m.group(1).translate(_SUP), str(text))


@dataclass
class Heading:
    level: int          # 1 section, 2 subsection, 3 minor
    text: str
    anchor: str | None = None


@dataclass
class Paragraph:
    text: str
    style: str = "body"  # body, small, bullet, lead


@dataclass
class Table:
    """A table of strings. ``attrs`` become ``data-*`` attributes of the HTML table; ``row_keys``
    become each row's ``data-key`` (machine-readable names of the rows, e.g. metric names)."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    attrs: dict = field(default_factory=dict)
    row_keys: list[str] | None = None
    align: list[str] | None = None   # "l" or "r" per column (default: first left, others right)
    wrap: tuple = ()                 # columns that may wrap in the PDF (default: the widest)
    highlight: list[bool] | None = None  # rows to emphasise (e.g. the true MTD)
    font: float = 7.4                # font size in the PDF (points)

    def aligns(self) -> list[str]:
        return self.align or (["l"] + ["r"] * (len(self.columns) - 1))


@dataclass
class Figure:
    png: bytes
    width: float      # inches
    height: float     # inches
    caption: str
    alt: str
    key: str = ""
    max_height: float | None = None   # inches on a PDF page (scaled down to fit)


@dataclass
class Row:
    """Blocks (tables) side by side where the page is wide enough, else one after the other."""

    items: list


@dataclass
class PageBreak:
    pass


def figure_block(fig, caption: str, alt: str, key: str = "", dpi: int = 150, max_height=None) -> Figure:
    """Render a matplotlib Figure to PNG bytes (Agg, no pyplot) and wrap it as a block."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    w, h = fig.get_size_inches()
    return Figure(png=buf.getvalue(), width=float(w), height=float(h), caption=caption, alt=alt, key=key,
                  max_height=max_height)


# -- HTML ---------------------------------------------------------------------------------------

CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1a1a1a;
       margin: 0; background: #fff; line-height: 1.45; font-size: 15px; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.55em; border-bottom: 2px solid #0072B2; padding-bottom: 4px; margin-top: 1.8em; }
h1.title { font-size: 1.8em; margin-top: 0.4em; border: none; }
h2 { font-size: 1.25em; margin-top: 1.6em; color: #0b3d66; }
h3 { font-size: 1.05em; margin-top: 1.3em; }
p.lead { font-size: 1.05em; }
p.small { font-size: 0.85em; color: #444; }
ul.summary { background: #f3f8fc; border-left: 4px solid #0072B2; padding: 10px 14px 10px 30px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 0.86em; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 4px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; vertical-align: top; }
td:first-child { white-space: nowrap; }
th { background: #e8eef3; text-align: left; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
tr.hl td { background: #fff4d6; font-weight: bold; }
tbody tr:nth-child(even) td { background-color: #f7f7f7; }
tbody tr.hl:nth-child(even) td { background: #fff4d6; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; max-width: 900px; }
div.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
nav.toc { background: #f6f6f6; padding: 8px 16px; font-size: 0.9em; }
nav.toc ul { margin: 4px 0; }
code { background: #f2f2f2; padding: 1px 4px; word-break: break-all; }
@media print { div.page-break { page-break-before: always; } nav.toc { display: none; } }
"""

#: Checks, once the page has loaded, that every image decoded; a failure is a console error and a
#: ``data-images-loaded`` attribute on <html> that a headless browser's DOM dump shows.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, bad = [];
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) { bad.push(imgs[i].alt || String(i)); }
  }
  document.documentElement.setAttribute("data-images-loaded", (imgs.length - bad.length) + "/" + imgs.length);
  if (bad.length) { console.error("doseesc report: " + bad.length + " figure(s) did not load: " + bad.join("; ")); }
});
"""


def _attrs(d: dict) -> str:
    return "".join(f' data-{k}="{_html.escape(str(v), quote=True)}"' for k, v in d.items())


def _table_html(t: Table) -> str:
    al = t.aligns()
    out = [f'<table{_attrs(t.attrs)}>']
    if t.caption:
        out.append(f"<caption>{html_text(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f'<th class="{a}">{html_text(c)}</th>' for c, a in zip(t.columns, al))
               + "</tr></thead><tbody>")
    for i, row in enumerate(t.rows):
        key = f' data-key="{_html.escape(t.row_keys[i], quote=True)}"' if t.row_keys else ""
        cls = ' class="hl"' if t.highlight and t.highlight[i] else ""
        out.append(f"<tr{key}{cls}>" + "".join(f'<td class="{a}">{html_text(c)}</td>' for c, a in zip(row, al))
                   + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(blocks, title: str, meta: dict | None = None) -> str:
    """The blocks as one self-contained HTML page (no external assets)."""
    body, toc = [], []
    in_list = False
    for b in blocks:
        if in_list and not (isinstance(b, Paragraph) and b.style == "bullet"):
            body.append("</ul>")
            in_list = False
        if isinstance(b, Heading):
            anchor = f' id="{_html.escape(b.anchor, quote=True)}"' if b.anchor else ""
            cls = ' class="title"' if b.level == 0 else ""
            level = max(b.level, 1)
            body.append(f"<h{level}{anchor}{cls}>{html_text(b.text)}</h{level}>")
            if b.level == 1 and b.anchor:
                toc.append(f'<li><a href="#{_html.escape(b.anchor, quote=True)}">{html_text(b.text)}</a></li>')
        elif isinstance(b, Paragraph):
            if b.style == "bullet":
                if not in_list:
                    body.append('<ul class="summary">')
                    in_list = True
                body.append(f"<li>{html_text(b.text)}</li>")
            else:
                cls = f' class="{b.style}"' if b.style != "body" else ""
                body.append(f"<p{cls}>{html_text(b.text)}</p>")
        elif isinstance(b, Table):
            body.append(_table_html(b))
        elif isinstance(b, Row):
            body.append('<div class="row">' + "".join(_table_html(t) for t in b.items) + "</div>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            w, h = round(b.width * 96), round(b.height * 96)
            body.append(f'<figure data-figure="{_html.escape(b.key, quote=True)}">'
                        f'<img src="data:image/png;base64,{data}" alt="{_html.escape(b.alt, quote=True)}" '
                        f'width="{w}" height="{h}"><figcaption>{html_text(b.caption)}</figcaption></figure>')
        elif isinstance(b, PageBreak):
            body.append('<div class="page-break"></div>')
        else:
            raise TypeError(f"unknown block {type(b).__name__}")
    if in_list:
        body.append("</ul>")
    if toc:
        nav = '<nav class="toc"><strong>Contents</strong><ul>' + "".join(toc) + "</ul></nav>"
        # after the title block: before the first section heading
        first = next(i for i, s in enumerate(body) if s.startswith("<h1") and 'class="title"' not in s)
        body.insert(first, nav)
    metas = "".join(f'<meta name="{_html.escape(k, quote=True)}" content="{_html.escape(str(v), quote=True)}">'
                    for k, v in (meta or {}).items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"{metas}<title>{_html.escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
            + "\n".join(body) + f"\n</main><script>{SCRIPT}</script></body></html>\n")


# -- PDF ----------------------------------------------------------------------------------------

class _Measure:
    """Text widths in points from the unhinted glyph outlines, as the PDF backend lays text out."""

    def __init__(self):
        from matplotlib.textpath import TextToPath

        self.renderer = TextToPath()
        self.cache: dict = {}

    def width(self, s: str, size: float, weight: str = "normal") -> float:
        key = (s, size, weight)
        if key not in self.cache:
            from matplotlib.font_manager import FontProperties

            w, _, _ = self.renderer.get_text_width_height_descent(s, FontProperties(size=size, weight=weight),
                                                                   ismath=False)
            self.cache[key] = w
        return self.cache[key]

    def wrap(self, text: str, width: float, size: float, weight: str = "normal") -> list[str]:
        lines = []
        for para in str(text).split("\n"):
            words = para.split(" ")
            line = ""
            for w in words:
                cand = w if not line else line + " " + w
                if not line or self.width(cand, size, weight) <= width:
                    line = cand
                else:
                    lines.append(line)
                    line = w
            lines.append(line)
        return lines


class PdfLayout:
    """Flow blocks onto A4 pages (points, y downward from the top edge)."""

    W, H = 595.28, 841.89
    ML, MR, MT, MB = 46.0, 46.0, 48.0, 54.0
    SIZES = {0: 17.0, 1: 14.0, 2: 11.5, 3: 9.5}

    def __init__(self):
        self.m = _Measure()
        self.pages = []
        self._new_page()

    @property
    def width(self) -> float:
        return self.W - self.ML - self.MR

    @property
    def bottom(self) -> float:
        return self.H - self.MB

    def _new_page(self):
        from matplotlib.figure import Figure as MplFigure

        self.fig = MplFigure(figsize=(self.W / 72, self.H / 72))
        self.pages.append(self.fig)
        self.y = self.MT

    def _ensure(self, h: float):
        if self.y + h > self.bottom and self.y > self.MT + 1:
            self._new_page()

    def _text(self, x, y, s, size, weight="normal", color="black", ha="left", style="normal"):
        self.fig.text(x / self.W, 1 - y / self.H, pdf_text(s), fontsize=size, fontweight=weight, color=color,
                      ha=ha, va="top", parse_math=False, fontstyle=style)

    def _rect(self, x, y, w, h, color):
        from matplotlib.patches import Rectangle

        self.fig.add_artist(Rectangle((x / self.W, 1 - (y + h) / self.H), w / self.W, h / self.H,
                                      transform=self.fig.transFigure, facecolor=color, edgecolor="none",
                                      zorder=0))

    def _hline(self, x, y, w, color="0.6", lw=0.6):
        from matplotlib.lines import Line2D

        self.fig.add_artist(Line2D([x / self.W, (x + w) / self.W], [1 - y / self.H] * 2, color=color, lw=lw,
                                   transform=self.fig.transFigure))

    # blocks
    def _first_height(self, b) -> float:
        """Height of the start of block ``b`` that a heading must stay with."""
        if isinstance(b, Figure):
            w = min(b.width * 72, self.width)
            return min(b.height * 72 * w / (b.width * 72), self.bottom - self.MT - 60) + 20
        if isinstance(b, Row):
            geos = [self._table_geometry(t, self.width) for t in b.items]
            return min(max(g["height"] for g in geos), 300.0)
        if isinstance(b, Table):
            g = self._table_geometry(b, self.width)
            return g["cap_h"] + g["head_h"] + sum(g["row_h"][:3]) + 4
        if isinstance(b, Heading):
            return 40.0
        return 36.0

    def heading(self, b: Heading, following=None):
        size = self.SIZES.get(b.level, 9.5)
        lines = self.m.wrap(pdf_text(b.text), self.width, size, "bold")
        h = len(lines) * size * 1.3
        self._ensure(h + 14 + (self._first_height(following) if following is not None else 40.0))
        if self.y > self.MT + 1:
            self.y += size * 0.7
        for line in lines:
            self._text(self.ML, self.y, line, size, "bold", color="#0b3d66" if b.level in (1, 2) else "black")
            self.y += size * 1.3
        if b.level == 1:
            self._hline(self.ML, self.y + 1, self.width, color="#0072B2", lw=1.2)
            self.y += 6
        self.y += 3

    def paragraph(self, b: Paragraph):
        size = {"small": 7.5, "lead": 9.5}.get(b.style, 8.6)
        indent = 12.0 if b.style == "bullet" else 0.0
        lines = self.m.wrap(pdf_text(b.text), self.width - indent, size)
        lh = size * 1.38
        for i, line in enumerate(lines):
            self._ensure(lh)
            if i == 0 and b.style == "bullet":
                self._text(self.ML + 2, self.y, "•", size)
            self._text(self.ML + indent, self.y, line, size, color="0.25" if b.style == "small" else "black")
            self.y += lh
        self.y += 4

    def figure(self, b: Figure):
        import matplotlib.image as mimage

        w = min(b.width * 72, self.width)
        h = b.height * 72 * w / (b.width * 72)
        if b.max_height is not None and h > b.max_height * 72:
            w, h = w * b.max_height * 72 / h, b.max_height * 72
        cap = self.m.wrap(pdf_text(b.caption), self.width, 7.5) if b.caption else []
        cap_h = len(cap) * 7.5 * 1.35 + 4
        full = self.bottom - self.MT
        if h + cap_h > full:
            scale = (full - cap_h) / h
            w, h = w * scale, h * scale
        self._ensure(h + cap_h)
        img = mimage.imread(io.BytesIO(b.png), format="png")
        x0 = self.ML + (self.width - w) / 2
        ax = self.fig.add_axes((x0 / self.W, 1 - (self.y + h) / self.H, w / self.W, h / self.H))
        ax.imshow(img, interpolation="none", aspect="auto")
        ax.set_axis_off()
        self.y += h + 3
        for line in cap:
            self._text(self.ML, self.y, line, 7.5, color="0.3", style="italic")
            self.y += 7.5 * 1.35
        self.y += 8

    def _table_geometry(self, t: Table, avail: float, font: float | None = None):
        size = t.font if font is None else font
        pad = 3.5 if size < 7.2 else 4.0
        cols = [pdf_text(c) for c in t.columns]
        rows = [[pdf_text(c) for c in r] for r in t.rows]
        while True:
            widths = []
            for j, c in enumerate(cols):
                cell = max([self.m.width(r[j], size, "bold" if t.highlight and t.highlight[i] else "normal")
                            for i, r in enumerate(rows)] + [0.0])
                word = max([self.m.width(w, size, "bold") for w in c.split(" ")]
                           # headers wrap to at most ~3 lines (more once the font has had to shrink)
                           + [min(self.m.width(c, size, "bold"), 62.0 if size > 6.6 else 40.0)])
                widths.append(max(cell, word) + 2 * pad)
            total = sum(widths)
            wrap = tuple(t.wrap) or (max(range(len(widths)), key=lambda j: widths[j]),)
            if total > avail:
                rest = total - sum(widths[j] for j in wrap)
                room = avail - rest
                if room >= 70 * len(wrap) or size <= 6.0:
                    natural = sum(widths[j] for j in wrap)
                    for j in wrap:
                        widths[j] = max(room * widths[j] / natural, 70.0)
                    if sum(widths) <= avail + 0.5 or size <= 6.0:   # fits (or the smallest legible font)
                        break
                size -= 0.4
                continue
            break
        head = [self.m.wrap(c, widths[j] - 2 * pad, size, "bold") for j, c in enumerate(cols)]
        cells = [[self.m.wrap(c, widths[j] - 2 * pad, size) if j in wrap else [c] for j, c in enumerate(r)]
                 for r in rows]
        lh = size * 1.3
        head_h = max(len(h) for h in head) * lh + 4
        row_h = [max(len(c) for c in r) * lh + 3 for r in cells]
        cap = self.m.wrap(pdf_text(t.caption), avail, 8.0, "bold") if t.caption else []
        cap_h = len(cap) * 8.0 * 1.35 + (2 if cap else 0)
        return dict(size=size, pad=pad, widths=widths, head=head, cells=cells, lh=lh, head_h=head_h,
                    row_h=row_h, cap=cap, cap_h=cap_h, total_w=sum(widths),
                    height=cap_h + head_h + sum(row_h) + 8)

    def table(self, t: Table, x0: float | None = None, avail: float | None = None, geo=None, split=True):
        x0 = self.ML if x0 is None else x0
        avail = self.width if avail is None else avail
        g = geo or self._table_geometry(t, avail)
        al = t.aligns()
        y = self.y

        def header(y, cont=False):
            for line_i, line in enumerate(g["cap"]):
                self._text(x0, y, line + (" (continued)" if cont and line_i == len(g["cap"]) - 1 else ""), 8.0,
                           "bold")
                y += 8.0 * 1.35
            y += 2 if g["cap"] else 0
            self._rect(x0, y, g["total_w"], g["head_h"], "#E8EEF3")
            x = x0
            for j, lines in enumerate(g["head"]):
                for k, line in enumerate(lines):
                    tx = x + g["widths"][j] - g["pad"] if al[j] == "r" else x + g["pad"]
                    self._text(tx, y + 2 + k * g["lh"], line, g["size"], "bold", ha="right" if al[j] == "r" else "left")
                x += g["widths"][j]
            return y + g["head_h"]

        if split:
            self._ensure(g["cap_h"] + g["head_h"] + sum(g["row_h"][:3]) + 4)
            y = self.y
        y = header(y)
        for i, (cells, rh) in enumerate(zip(g["cells"], g["row_h"])):
            if split and y + rh > self.bottom:
                self._hline(x0, y, g["total_w"])
                self._new_page()
                y = header(self.y, cont=True)
            hl = t.highlight and t.highlight[i]
            if hl:
                self._rect(x0, y, g["total_w"], rh, "#FFF4D6")
            elif i % 2 == 1:
                self._rect(x0, y, g["total_w"], rh, "#F5F5F5")
            x = x0
            for j, lines in enumerate(cells):
                for k, line in enumerate(lines):
                    tx = x + g["widths"][j] - g["pad"] if al[j] == "r" else x + g["pad"]
                    self._text(tx, y + 1.5 + k * g["lh"], line, g["size"], "bold" if hl else "normal",
                               ha="right" if al[j] == "r" else "left")
                x += g["widths"][j]
            y += rh
        self._hline(x0, y, g["total_w"])
        if split:
            self.y = y + 10
        return y + 10

    def row(self, b: Row):
        gap = 14.0
        shrink = 0.0
        while True:  # side by side at a slightly smaller font, down to 5.8 pt, rather than one after the other
            geos = [self._table_geometry(t, self.width, t.font - shrink) for t in b.items]
            total = sum(g["total_w"] for g in geos) + gap * (len(geos) - 1)
            if total <= self.width or min(t.font for t in b.items) - shrink <= 5.8:
                break
            shrink += 0.2
        height = max(g["height"] for g in geos)
        if total > self.width or height > self.bottom - self.MT:
            for t in b.items:
                self.table(t)
            return
        self._ensure(height)
        x = self.ML
        end = self.y
        for t, g in zip(b.items, geos):
            end = max(end, self.table(t, x0=x, geo=g, split=False))
            x += g["total_w"] + gap
        self.y = end

    def add(self, b, following=None):
        if isinstance(b, Heading):
            self.heading(b, following)
        elif isinstance(b, Paragraph):
            self.paragraph(b)
        elif isinstance(b, Table):
            self.table(b)
        elif isinstance(b, Row):
            self.row(b)
        elif isinstance(b, Figure):
            self.figure(b)
        elif isinstance(b, PageBreak):
            if self.y > self.MT + 1:
                self._new_page()
        else:
            raise TypeError(f"unknown block {type(b).__name__}")


def render_pdf(blocks, path, footer: str = "", metadata: dict | None = None) -> int:
    """Lay the blocks out on A4 pages and write them to ``path``; returns the number of pages."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):
        lay = PdfLayout()
        blocks = list(blocks)
        for i, b in enumerate(blocks):
            lay.add(b, blocks[i + 1] if i + 1 < len(blocks) else None)
        n = len(lay.pages)
        for i, fig in enumerate(lay.pages, start=1):
            fig.text(0.5, 0.028, pdf_text(f"{footer} · page {i} of {n}" if footer else f"page {i} of {n}"),
                     ha="center", va="bottom", fontsize=7, color="0.4", parse_math=False)
        with PdfPages(path, metadata=metadata or {}) as pdf:
            for fig in lay.pages:
                pdf.savefig(fig)
    return n
