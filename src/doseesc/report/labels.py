"""People's labels for reports: tiers in the protocol's units, percentages, design colours.

No matplotlib here: these helpers are shared by the figures, the HTML and the PDF.
"""

from __future__ import annotations

import html
import math

from ..tiers import DAYS_PER_MONTH, DoseLadder

#: Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008), in the order designs get them;
#: yellow last because it is faint on white. Designs beyond eight take Paul Tol's muted colours.
DESIGN_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
                  "#332288", "#882255", "#44AA99", "#999933", "#AA4499", "#117733", "#88CCEE", "#DDCC77"]


def literal(text: str) -> str:
    """``text`` drawn as written in a matplotlib figure: a ``$`` (which would start mathtext, and crash on an
    unmatched or malformed formula) is escaped; names of designs, scenarios and tiers pass through this."""
    return str(text).replace("$", r"\$")


#: First characters that make a spreadsheet read a CSV cell as a formula (=, +, -, @, tab, carriage return).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(df):
    """A copy of DataFrame ``df`` whose text cells and column names that begin with a formula character
    (:data:`FORMULA_START`) carry a leading apostrophe, the spreadsheet convention for "this is text"
    (OWASP, CSV injection). Numbers are left alone, so a negative number stays a number."""
    def fix(v):
        return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v

    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str", "category"):
            if str(out[col].dtype) == "category":
                out[col] = out[col].astype(object)
            out[col] = out[col].map(fix)
    out.columns = [fix(c) if isinstance(c, str) else c for c in out.columns]
    if out.index.dtype == object:
        out.index = out.index.map(fix)
    return out


def design_colours(names) -> dict[str, str]:
    """A fixed colour per design name, by position in ``names`` (the protocol's design order).

    The same list of names always gives the same colours, so a design keeps its colour in every
    figure of a report.
    """
    names = list(names)
    return {n: DESIGN_PALETTE[i % len(DESIGN_PALETTE)] for i, n in enumerate(names)}


def _mantissa_exponent(value: float) -> tuple[str, int] | None:
    """``(mantissa text, exponent)`` for values written in powers of ten, else None."""
    if value == 0 or not math.isfinite(value):
        return None
    exp = int(math.floor(math.log10(abs(value))))
    if -2 <= exp <= 3:
        return None
    mant = f"{value / 10 ** exp:.3g}"
    if mant == "10":
        mant, exp = "1", exp + 1
    return mant, exp


def dose_text(value: float, unit: str = "", style: str = "text") -> str:
    """A nominal dose with its unit: ``3×10^5 cells/kg`` (text), with ``<sup>`` (html) or mathtext (mpl)."""
    me = _mantissa_exponent(value)
    if me is None:
        num = f"{value:g}"
        unit_s = html.escape(unit) if style == "html" else unit.replace("$", r"\$") if style == "mpl" else unit
        return f"{num} {unit_s}".strip()
    mant, exp = me
    if style == "html":
        num = f"{mant}×10<sup>{exp}</sup>"
        unit_s = html.escape(unit)
    elif style == "mpl":
        num = rf"${mant}\times10^{{{exp}}}$"
        unit_s = unit.replace("$", r"\$")
    else:
        num = f"{mant}×10^{exp}"
        unit_s = unit
    return f"{num} {unit_s}".strip()


def tier_labels(ladder: DoseLadder, style: str = "text") -> list[str]:
    """Label of every tier in the protocol's units (or the protocol's own tier names).

    ``style``: ``"text"`` (``3×10^5 CAR-T cells/kg``), ``"html"`` (superscript exponent, escaped) or
    ``"mpl"`` (matplotlib mathtext).
    """
    if style not in ("text", "html", "mpl"):
        raise ValueError(f"style = {style!r} must be 'text', 'html' or 'mpl'")
    if ladder.labels is not None:
        if style == "html":
            return [html.escape(x) for x in ladder.labels]
        if style == "mpl":
            return [x.replace("$", r"\$") for x in ladder.labels]
        return list(ladder.labels)
    return [dose_text(d, ladder.unit, style) for d in ladder.doses]


def tier_label(ladder: DoseLadder, tier: int, style: str = "text") -> str:
    """Label of 0-based ``tier``; ``-1`` is ``No dose``."""
    return "No dose" if tier < 0 else tier_labels(ladder, style)[tier]


def pct(p: float, digits: int = 1) -> str:
    """A probability as a percentage, ``62.3%``; ``n/a`` for NaN."""
    return "n/a" if p is None or not math.isfinite(p) else f"{100 * p:.{digits}f}%"


def is_probability_metric(name: str) -> bool:
    """Metrics shown as percentages: probabilities and shares (``p_...``, ``share_...``)."""
    return name.startswith("p_") or name.startswith("share_")


def metric_value(name: str, value: float) -> str:
    """A metric estimate as shown in reports: percentages to 1 decimal, quantiles as integers, else 2 decimals."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if is_probability_metric(name):
        return f"{100 * value:.1f}"
    if name.startswith("n_q") and float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}"


def metric_unit(name: str) -> str:
    return "%" if is_probability_metric(name) else ""


#: Short names of the standard metrics, used in every table (the report's glossary defines them);
#: other metrics (e.g. from realism models) show their own name with spaces.
METRIC_NAMES = {
    "expected_n": "mean N",
    "sd_n": "SD of N",
    "n_q10": "N, 10% quantile",
    "n_q50": "N, median",
    "n_q90": "N, 90% quantile",
    "p_no_dose": "P(no dose)",
    "p_correct": "P(true MTD)",
    "share_above_mtd": "share above MTD",
    "mean_dlt": "mean DLTs",
    "p_select_obd": "P(true OBD)",
    "share_at_obd": "share at OBD",
    "mean_eff": "mean responses",
    "n_enrolled": "patients enrolled",
    "n_evaluable": "patients evaluable",
    "n_replaced": "patients replaced",
    "n_lost": "patients never infused",
    "share_outside_band": "infused below band",
    "duration_days": "trial duration, days",
    "time_to_decision_days": "days to final decision",
    "wait_days": "patient-days waiting",
    "lost_waiting": "lost while waiting",
    "p_above_mtd": "P(select above MTD)",
    "p_overdose_60": "P(>60% treated above MTD)",
    "p_overdose_80": "P(>80% treated above MTD)",
    "p_poor_allocation": "risk of poor allocation",
    "p_two_dlt_cohort": "P(>=2 DLTs in a cohort)",
    "expected_utility": "expected utility",
    "utility_loss": "utility loss",
    "p_within_margin": "P(within margin of best utility)",
    "expected_screened": "patients screened",
}


def metric_name(name: str) -> str:
    return METRIC_NAMES.get(name, name.replace("_", " "))


#: Metrics kept in days by the results that reports show in months (a trial lasts "16.3 months", not
#: "494.83 days"): their names in reports, without the unit.
MONTH_METRICS = {"duration_days": "trial duration", "time_to_decision_days": "time to final decision"}


def months_text(days: float, digits: int = 1) -> str:
    """A duration given in days, in months: ``16.3 months``; ``n/a`` for NaN."""
    if days is None or not math.isfinite(days):
        return "n/a"
    return f"{days / DAYS_PER_MONTH:.{digits}f} months"


def metric_scale(name: str) -> float:
    """What a metric's estimate is multiplied by for display: 100 for probabilities (percent), 1 / days per
    month for :data:`MONTH_METRICS`, else 1."""
    if is_probability_metric(name):
        return 100.0
    if name in MONTH_METRICS:
        return 1.0 / DAYS_PER_MONTH
    return 1.0


def metric_label(name: str) -> str:
    """A metric's name with its display unit, as a table row label: ``P(true MTD), %``,
    ``trial duration, months``, ``mean N``."""
    if name in MONTH_METRICS:
        return f"{MONTH_METRICS[name]}, months"
    unit = metric_unit(name)
    return metric_name(name) + (f", {unit}" if unit else "")


def metric_text(name: str, value: float) -> str:
    """A metric's estimate with its unit, for sentences: ``62.3%``, ``16.3 months``, ``10.70``."""
    if name in MONTH_METRICS:
        return months_text(value)
    return metric_value(name, value) + ("" if value is None or not math.isfinite(value) else metric_unit(name))


def metric_cells(name: str, estimate: float, mcse: float | None = None) -> tuple[str, str, str]:
    """``(label, estimate, MCSE)`` of a metric as the report's metrics tables print them, in one unit:
    percentages for probabilities (estimate 1 decimal, MCSE 2), months for :data:`MONTH_METRICS`
    (estimate 1 decimal, MCSE 2), else the metric's own units (:func:`metric_value`, MCSE 3 decimals).
    ``mcse`` None gives an empty MCSE (exact runs); NaN gives ``n/a``."""
    if name in MONTH_METRICS:
        value = "n/a" if estimate is None or not math.isfinite(estimate) else f"{estimate / DAYS_PER_MONTH:.1f}"
    else:
        value = metric_value(name, estimate)
    if mcse is None:
        se = ""
    elif not math.isfinite(mcse):
        se = "n/a"
    elif is_probability_metric(name):
        se = f"{100 * mcse:.2f}"
    elif name in MONTH_METRICS:
        se = f"{mcse / DAYS_PER_MONTH:.2f}"
    else:
        se = f"{mcse:.3f}"
    return metric_label(name), value, se
