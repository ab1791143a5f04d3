"""Figure layout: path-tree nodes at their tiers, integer ticks on patient axes, labels that do not overlap."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import doseesc
from doseesc.engines.paths import paths
from doseesc.report import plots
from doseesc.study import run_protocol

FILE = Path(__file__).resolve().parents[1] / "scenarios" / "ecar01.toml"


@pytest.fixture(scope="module")
def proto():
    return doseesc.load_protocol(FILE)


@pytest.fixture(scope="module")
def study(proto):
    # every ECAR01 design (MTD and OBD designs, calendar on) under two scenarios, a small run
    return run_protocol(proto, scenarios=["mtd-middle", "lowest-too-toxic"], n_trials=200, seed=3)


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


# -- path trees -------------------------------------------------------------------------------------

def test_three_plus_three_tree_by_hand():
    # 3+3 on 3 tiers, two cohorts. Cohort 1 at tier 1 (0-based 0): 0 DLTs -> tier 2 (y = 1); 1 DLT -> stay,
    # tier 1 (y = 0); 2 or 3 DLTs -> stop, MTD = tier below tier 1 = No dose (y = -1), the cross STOP_DX left
    # of column 2.
    dp = paths(doseesc.ThreePlusThree(3), 2)
    pos = plots.path_tree_positions(dp).set_index("node")
    assert (pos.loc[-1, "x"], pos.loc[-1, "y"]) == (1.0, 0.0)
    first = dp.frame[dp.frame["cohort"] == 1].set_index("dlts")["node"]
    assert (pos.loc[first[0], "x"], pos.loc[first[0], "y"]) == (2.0, 1.0)
    assert (pos.loc[first[1], "x"], pos.loc[first[1], "y"]) == (2.0, 0.0)
    for d in (2, 3):
        assert pos.loc[first[d], "stop"]
        assert pos.loc[first[d], "x"] == pytest.approx(2 - plots.STOP_DX) and pos.loc[first[d], "y"] == -1.0


@pytest.mark.parametrize("design, k, scenario", [("3+3", 3, None), ("3+3 de-escalation", 4, None),
                                                 ("BOIN", 3, "mtd-middle"), ("BOIN", 5, "mtd-middle")])
def test_every_node_is_drawn_at_its_tier(proto, design, k, scenario):
    sc = proto.scenarios[scenario] if scenario else None
    dp = paths(proto.designs[design], k, ladder=proto.tiers, scenario=sc)
    pos = plots.path_tree_positions(dp)
    index = {proto.tiers.label(t): t for t in range(-1, proto.tiers.n_tiers)}
    f = dp.frame.set_index("node")
    for row in pos[pos["node"] >= 0].itertuples():
        node = f.loc[row.node]
        tier = index[node["selected"]] if node["stop"] else int(node["next_tier"]) - 1
        assert row.y == tier and row.tier == tier   # exactly at the tier: no spread within a band
    ax = dp.plot()
    # what is drawn: every dot and cross at an integer tier, every edge starting and ending at one
    for coll in ax.collections:
        ys = np.asarray(coll.get_offsets())[:, 1]
        assert np.all(ys == np.round(ys)) and ys.min() >= -1 and ys.max() <= proto.tiers.n_tiers - 1
    for line in ax.lines:
        y = line.get_ydata()
        if len(y) > 2:   # the edges (tier gridlines have two points)
            assert y[0] == round(y[0]) and y[-1] == round(y[-1])
    ticks = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]))
    if (pos["tier"] < 0).any():
        assert ticks[-1] == "No dose"     # No dose below the lowest tier
    if scenario:
        labels = [t.get_text() for t in ax.texts]
        assert any(t.endswith("%") and ":" in t for t in labels)   # probabilities on the edges


def test_path_edge_labels_do_not_overlap(proto):
    dp = paths(proto.designs["BOIN"], 3, ladder=proto.tiers, scenario=proto.scenarios["mtd-middle"])
    ax = dp.plot()
    r = _renderer(ax.figure)
    boxes = [t.get_window_extent(r) for t in ax.texts if t.get_text().split(":")[0].isdigit()]
    assert len(boxes) > 20
    clashes = sum(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    assert clashes <= 2   # placed clear of each other where a free spot exists along the edge


def test_compact_layout_thins_edge_labels(proto):
    dp = paths(proto.designs["BOIN"], 5, ladder=proto.tiers, scenario=proto.scenarios["mtd-middle"])
    ax = plots.plot_paths(dp, label_min=0.05)
    probs = [t.get_text().split(": ")[1] for t in ax.texts if ": " in t.get_text() and t.get_text()[0].isdigit()]
    assert probs and all(float(p.rstrip("%")) >= 5 for p in probs)
    assert "568 paths" in ax.get_title()


# -- integer ticks ----------------------------------------------------------------------------------

def _visible_ticks(ax, axis):
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
    return [t for t in ticks if lo <= t <= hi]


def test_sample_size_and_allocation_ticks_are_integers(study):
    res = {study.name_of(r): r for r in study.results
           if r.scenario.name == "lowest-too-toxic" and study.name_of(r) in ("3+3", "3+3 de-escalation")}
    ax = plots.plot_sample_size(res)
    _renderer(ax.figure)
    ticks = _visible_ticks(ax, "x")
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks)
    ax = plots.plot_allocation(res)
    _renderer(ax.figure)
    assert all(float(t).is_integer() for t in _visible_ticks(ax, "y"))


# -- duration against correct selection -------------------------------------------------------------

def test_duration_figure_one_metric_per_axis_and_no_overlapping_labels(study):
    ax = plots.plot_duration_vs_correct(study, scenario="mtd-middle")
    fig = ax.figure
    r = _renderer(fig)
    axes = [a for a in fig.axes if a.get_ylabel()]
    assert [a.get_ylabel() for a in axes] == ["P(select the true MTD), %", "P(select the true OBD), %"]
    texts = [t for a in axes for t in a.texts]
    names = {t.get_text() for t in texts}
    assert names == set(study.protocol.designs)   # every design labelled once
    boxes = [t.get_window_extent(r) for t in texts]
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert not a.overlaps(b), (texts[i].get_text(), texts[j].get_text())
    for a in axes:   # each label inside its own panel
        frame = a.get_window_extent(r)
        for t in a.texts:
            bb = t.get_window_extent(r)
            assert frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 and bb.y1 <= frame.y1


def test_duration_figure_of_one_question_has_one_axes(study):
    mtd = {study.name_of(r): r for r in study.results
           if r.scenario.name == "mtd-middle" and r.design.question == "MTD"}
    ax = plots.plot_duration_vs_correct(mtd)
    assert len([a for a in ax.figure.axes if a.get_ylabel()]) == 1
    assert ax.get_ylabel() == "P(select the true MTD), %"
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="give 2 Axes"):
        plots.plot_duration_vs_correct(study, ax=Figure().add_subplot(), scenario="mtd-middle")


def test_true_mtd_label_is_clear_of_the_value_labels(proto):
    # all-safe: P(DLT) 0.03, 0.06, 0.10, the true MTD the top tier; its value label 0.10 sits low on the axes,
    # where the "true MTD" label used to be drawn
    ax = plots.plot_dose_response(proto.scenarios["all-safe"], proto.tiers, 0.25, proto.obd)
    r = _renderer(ax.figure)
    mtd = [t for t in ax.texts if t.get_text() == "true MTD"]
    assert len(mtd) == 1
    box = mtd[0].get_window_extent(r)
    values = [t.get_window_extent(r) for t in ax.texts if t.get_text().startswith("0.")]
    assert len(values) == 6 and not any(box.overlaps(v) for v in values)
    assert box.y0 >= ax.get_window_extent(r).y1 - 1   # above the plotting area


# -- months, never days -----------------------------------------------------------------------------

def test_durations_print_in_months():
    from doseesc.report.labels import metric_cells, metric_label, metric_scale, metric_text, months_text

    # a month is 365.25 / 12 = 30.4375 days: 494.83 days = 16.257 months; an MCSE of 3.1 days = 0.102 months
    assert metric_cells("duration_days", 494.83, 3.1) == ("trial duration, months", "16.3", "0.10")
    assert metric_text("duration_days", 494.83) == "16.3 months" == months_text(494.83)
    assert metric_label("time_to_decision_days") == "time to final decision, months"
    assert metric_scale("duration_days") == pytest.approx(1 / 30.4375)
    # the other metrics keep their units: percentages (MCSE 2 decimals), counts (MCSE 3 decimals), n/a for NaN
    assert metric_cells("p_correct", 0.623, 0.0101) == ("P(true MTD), %", "62.3", "1.01")
    assert metric_cells("expected_n", 10.7, 0.05) == ("mean N", "10.70", "0.050")
    assert metric_cells("expected_n", 10.7, float("nan"))[2] == "n/a" and metric_cells("expected_n", 10.7)[2] == ""
