"""DecisionTable: a clinician's (n, y) table run as an interval design.

BOIN's own grid as a table gives BOIN's results exactly; incoherent or incomplete tables are refused
naming the cell; the inline, mapping and CSV forms load through doseesc.load_protocol.
"""

from __future__ import annotations

import numpy as np
import pytest

import doseesc
from doseesc import StopReason, TrialState
from doseesc.designs import DecisionTable, design_from_dict
from doseesc.errors import DesignError

# A small hand-made table (cohorts of 3, at most 6 patients).
ROWS = ["n=1: E D", "n=2: E S D", "n=3: E S D DU", "n=4: E S D DU DU", "n=5: E E S D DU DU",
        "n=6: E E S D DU DU DU"]
SMALL = DecisionTable(0.3, 3, max_n=6, table=ROWS)


# -- BOIN's grid gives BOIN -----------------------------------------------------------------------
def _boin_table_from_grid(boin):
    """The table through doseesc.decision_grid (the letters a protocol prints), not the design's arrays."""
    grid = doseesc.decision_grid(boin)
    rows = [f"n={n}: " + " ".join(row[y] for y in range(n + 1)) for n, row in grid.iterrows()]
    return DecisionTable(boin.target, boin.n_tiers, boin.cohort_size, max_n=boin.max_n, table=rows)


@pytest.mark.parametrize("target, cohort_size, max_n, p", [
    (0.3, 3, 24, [0.05, 0.15, 0.3, 0.45, 0.6]),
    (0.25, 1, 15, [0.1, 0.25, 0.4, 0.5]),
    (0.2, 2, 20, [0.3, 0.45, 0.6]),          # often stops at the eliminated lowest tier
    (0.33, 3, 30, [0.02, 0.05, 0.1, 0.2, 0.33, 0.5]),
])
def test_boin_grid_gives_boin_results(target, cohort_size, max_n, p):
    boin = doseesc.BOIN(target, len(p), cohort_size, max_n=max_n)
    table = _boin_table_from_grid(boin)
    assert table == DecisionTable.from_design(boin)
    np.testing.assert_array_equal(table.grid, boin.grid)
    np.testing.assert_array_equal(table.elim, boin.elim)
    sc = doseesc.Scenario(true_tox=p, target=target)
    a, b = doseesc.simulate(boin, sc, 4000, rng=11), doseesc.simulate(table, sc, 4000, rng=11)
    for key in ("selected", "n", "y", "reason", "fired"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


@pytest.mark.parametrize("p", [[0.1, 0.3, 0.5], [0.45, 0.6, 0.7], [0.05, 0.1, 0.2, 0.3]])
def test_boin_grid_gives_boin_exact(p):
    boin = doseesc.BOIN(0.3, len(p), max_n=12)
    table = DecisionTable.from_design(boin)
    sc = doseesc.Scenario(true_tox=p, target=0.3)
    a, b = doseesc.exact(boin, sc), doseesc.exact(table, sc)
    for key in ("p_select", "n", "y", "weight", "reason", "selected"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert a.expected_n == b.expected_n


def test_boin_recommend_and_rule_slots_agree():
    boin = doseesc.BOIN(0.3, 4, max_n=18).stop_when_n_at_dose(9)
    table = DecisionTable.from_design(boin, stopping=boin.stopping)
    for log in ["1NNN 2NTN 2NNN", "1NNN 2TTN 1NNN", "1TTT", "1NNN 2NNN 3NTT 2NNN 3NNN"]:
        ra, rb = doseesc.recommend(boin, log, warn=False), doseesc.recommend(table, log, warn=False)
        assert (ra.stop, ra.next_tier, ra.reason, ra.selected) == (rb.stop, rb.next_tier, rb.reason, rb.selected)


# -- hand-worked decisions on the small table --------------------------------------------------------
@pytest.mark.parametrize("log, expected", [
    # n = 3, y = 0: 'E' -> tier 2
    ("1NNN", (False, 1, StopReason.NOT_STOPPED, None)),
    # tier 2 n = 3, y = 1: 'S' -> stay at tier 2
    ("1NNN 2NTN", (False, 1, StopReason.NOT_STOPPED, None)),
    # tier 2 n = 3, y = 2: 'D' -> tier 1
    ("1NNN 2NTT", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 2 n = 3, y = 3: 'DU' -> tiers 2 and 3 closed, go to tier 1
    ("1NNN 2TTT", (False, 0, StopReason.NOT_STOPPED, None)),
    # tier 1 n = 6, y = 0: 'E', but tier 2 is eliminated: stay at tier 1; 6 + 3 = 9 patients would pass the
    # table's last row (beyond = "stop"): stop; MTD tier 1, the only tried open tier
    ("1NNN 2TTT 1NNN", (True, -1, StopReason.N_AT_TIER, 0)),
    # tier 2 n = 6, y = 1: 'E' -> tier 3
    ("1NNN 2NTN 2NNN", (False, 2, StopReason.NOT_STOPPED, None)),
    # tier 1 n = 3, y = 3: 'DU' at the lowest tier: stop, no dose
    ("1TTT", (True, -1, StopReason.LOWEST_TIER_TOXIC, -1)),
])
def test_hand_worked_logs(log, expected):
    r = doseesc.recommend(DecisionTable(0.3, 3, max_n=18, table=ROWS, beyond="stop"), log, warn=False)
    assert (r.stop, r.next_tier, r.reason, r.selected) == expected


def test_selection_rules_by_hand():
    """n = (3, 3, 0), y = (0, 1, 0), last cohort at tier 2, target 0.3.
    closest: observed rates 0/3 = 0 and 1/3 = 0.333 -> |0.333 - 0.3| < |0 - 0.3| -> tier 2;
    last: tier 2 (open). With y = (0, 3, 0) tier 2 is eliminated (n = 3, y = 3 is DU):
    closest and last both give tier 1 (the only tried open tier / the highest open tier below tier 2)."""
    st = TrialState.from_counts([[3, 3, 0], [3, 3, 0]], [[0, 1, 0], [0, 3, 0]], [1, 1])
    closest = DecisionTable(0.3, 3, max_n=6, table=ROWS, selection="closest")
    last = DecisionTable(0.3, 3, max_n=6, table=ROWS, selection="last")
    np.testing.assert_array_equal(closest.select(st), [1, 0])
    np.testing.assert_array_equal(last.select(st), [1, 0])
    # isotonic: estimates (0.05/3.1, 1.05/3.1) = (0.016, 0.339), increasing: the closer to 0.3 is tier 2
    np.testing.assert_array_equal(SMALL.select(st), [1, 0])


def test_beyond_stop():
    """Rows up to n = 6, max_n = 12, beyond = "stop". Tier 2 with n = 6, y = 2: 'S' (stay), but the next cohort
    would make n = 9 > 6: stop (N_AT_TIER). Isotonic MTD: estimates 0.05/3.1 = 0.016 and 2.05/6.1 = 0.336 ->
    tier 2 is closest to 0.3."""
    d = DecisionTable(0.3, 3, max_n=12, table=ROWS, beyond="stop")
    r = doseesc.recommend(d, "1NNN 2NTN 2NTN", warn=False)
    assert (r.stop, r.reason, r.selected) == (True, StopReason.N_AT_TIER, 1)
    # a tier with 3 patients may still take a cohort: n = 6 is in the table
    r = doseesc.recommend(d, "1NNN 2NTN", warn=False)
    assert (r.stop, r.next_tier) == (False, 1)
    oc = doseesc.exact(d, doseesc.Scenario(true_tox=[0.1, 0.3, 0.5]))
    assert oc.n.max() <= 6 and oc.p_select.sum() == pytest.approx(1, abs=1e-12)
    with pytest.raises(DesignError, match="rows go up to n = 6 but max_n = 12"):
        DecisionTable(0.3, 3, max_n=12, table=ROWS)
    with pytest.raises(DesignError, match="tier_cap = 6"):
        DecisionTable(0.3, 3, max_n=12, table=ROWS, beyond="stop", tier_cap=6)


# -- refused tables --------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows, message", [
    (ROWS[:5] + ["n=6: E S E D DU DU DU"],
     "table: n = 6, y = 2 is 'E' but y = 1 is 'S': a table must not escalate with more DLTs"),
    (ROWS[:2] + ["n=3: E D S DU"] + ROWS[3:],
     "table: n = 3, y = 2 is 'S' but y = 1 is 'D': a table must not stay with more DLTs"),
    (ROWS[:3] + ["n=4: E S DU D DU"] + ROWS[4:],
     "table: n = 4, y = 3 is 'D' but y = 2 is 'DU': a table must not de-escalate without eliminating"),
    (ROWS[:2] + ROWS[3:], "table: no row for n = 3"),
    (ROWS[:3] + ["n=4: E S D DU"] + ROWS[4:], "table: n = 4 has 4 letters but needs 5"),
    (ROWS[:3] + ["n=4: E S X DU DU"] + ROWS[4:], "table: n = 4, y = 2 is 'X'"),
    (ROWS + ["n=3: E S D DU"], "table: n = 3 is given twice"),
    (["3 E S D DU"], "must read like 'n=3: E S D DU'"),
])
def test_bad_tables_are_refused_naming_the_cell(rows, message):
    with pytest.raises(DesignError, match=message.replace("(", "\\(").replace(")", "\\)")):
        DecisionTable(0.3, 3, max_n=6, table=rows)


def test_other_bad_options():
    with pytest.raises(DesignError, match="exactly one of 'table'"):
        DecisionTable(0.3, 3, max_n=6)
    with pytest.raises(DesignError, match="selection = 'best'"):
        DecisionTable(0.3, 3, max_n=6, table=ROWS, selection="best")
    with pytest.raises(DesignError, match="cutoff_eli and elim_min_n do not apply"):
        DecisionTable(0.3, 3, max_n=6, table=ROWS, cutoff_eli=0.9)
    with pytest.raises(DesignError, match="no such file"):
        DecisionTable(0.3, 3, max_n=6, table_file="/nonexistent/table.csv")


# -- forms and files ----------------------------------------------------------------------------------------
def test_mapping_and_lowercase_forms_are_the_same_design():
    mapping = {str(n): r.split(": ")[1].lower() for n, r in enumerate(ROWS, start=1)}
    assert DecisionTable(0.3, 3, max_n=6, table=mapping) == SMALL
    assert DecisionTable(0.3, 3, max_n=6, table=["1: E, D"] + ROWS[1:]) == SMALL


def test_round_trip():
    d = DecisionTable(0.3, 3, max_n=12, table=ROWS, beyond="stop", selection="closest").stop_when_n_at_dose(9)
    out = d.to_dict()
    assert out["type"] == "table" and out["table"] == ROWS
    assert "table_file" not in out and "cutoff_eli" not in out
    assert design_from_dict(out) == d
    assert design_from_dict(SMALL.to_dict()) == SMALL


def test_csv_file_written_by_decision_grid(tmp_path):
    boin = doseesc.BOIN(0.3, 4, max_n=12)
    f = tmp_path / "boin_table.csv"
    f.write_text("# BOIN target 0.3\n" + doseesc.decision_grid(boin).to_csv())
    d = DecisionTable(0.3, 4, max_n=12, table_file=str(f))
    assert d == DecisionTable.from_design(boin)
    assert d.table_file is None and d.to_dict()["table"][2] == "n=3: E S D DU"


def test_load_protocol(tmp_path, monkeypatch):
    (tmp_path / "grid.csv").write_text("n,0,1,2,3,4,5,6\n" + "\n".join(
        f"{n}," + ",".join(r.split(": ")[1].split()) + "," * (6 - n) for n, r in enumerate(ROWS, start=1)))
    f = tmp_path / "proto.toml"
    f.write_text("""
[protocol]
name = "tables"
target = 0.3
max_n = 6
[tiers]
doses = [1, 2, 4]
[[design]]
name = "inline"
type = "table"
table = ["n=1: E D", "n=2: E S D", "n=3: E S D DU", "n=4: E S D DU DU", "n=5: E E S D DU DU",
         "n=6: E E S D DU DU DU"]
[[design]]
name = "mapping"
type = "table"
selection = "last"
table = {1 = "E D", 2 = "E S D", 3 = "E S D DU", 4 = "E S D DU DU", 5 = "E E S D DU DU", 6 = "E E S D DU DU DU"}
[[design]]
name = "file"
type = "table"
table_file = "grid.csv"
[[design]]
name = "bad"
type = "table"
table = ["n=1: E D", "n=2: E S D", "n=3: E S D DU", "n=4: E S D DU DU", "n=5: E E S D DU DU",
         "n=6: E E S D DU DU DU"]
[[scenario]]
name = "s"
true_tox = [0.1, 0.3, 0.5]
""".replace('name = "bad"\ntype = "table"\ntable = ["n=1: E D"', 'name = "bad"\ntype = "table"\ntable = ["n=1: D E"'))
    monkeypatch.chdir(tmp_path.parent)  # table_file is read beside the protocol file, not from the cwd
    with pytest.raises(doseesc.DoseescError, match="'bad'.*n = 1, y = 1 is 'E' but y = 0 is 'D'"):
        doseesc.load_protocol(f)
    f.write_text(f.read_text().split('[[design]]\nname = "bad"')[0] + '[[scenario]]\nname = "s"\n'
                 'true_tox = [0.1, 0.3, 0.5]\n')
    proto = doseesc.load_protocol(f)
    assert proto.design("inline") == SMALL
    assert proto.design("file") == SMALL
    assert proto.design("mapping") == DecisionTable(0.3, 3, max_n=6, table=ROWS, selection="last")
    oc = doseesc.exact(proto.design("inline"), proto.scenario("s"))
    assert oc.p_select.sum() == pytest.approx(1, abs=1e-12)


@pytest.mark.parametrize("design", [
    DecisionTable.example(),
    DecisionTable(0.3, 3, max_n=12, table=ROWS, beyond="stop", selection="closest"),
    DecisionTable(0.3, 3, max_n=6, table=ROWS, selection="last"),
], ids=["boin", "beyond-stop", "last"])
def test_check_design(design):
    testing = pytest.importorskip("doseesc.testing")
    report = testing.check_design(design)  # raises AssertionError naming the check on a failure
    assert report["exact"] == "passed" and report["round trip"] == "passed"
