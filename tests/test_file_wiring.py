"""Backfill cohorts, a seamless phase 2 stage, BLRM, EffTox and the expansion design in protocol files: loading,
run_protocol, the exact engine's refusals and bad input (issues 19 and 22, the file side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import doseesc
from doseesc.engines.backfill import simulate_backfill
from doseesc.engines.phase2 import run_phase2
from doseesc.errors import DoseescError
from doseesc.study import exact_refusal, run_protocol

ROOT = Path(__file__).resolve().parents[1]

HEAD = """
[protocol]
name = "toy"
target = 0.25
max_n = 12
cohort_size = 3
dlt_window_days = 28
response_window_days = 28

[tiers]
doses = [1, 2, 3]
"""

DESIGNS = """
[[design]]
name = "BOIN"
type = "BOIN"

[[design]]
name = "BOIN + backfill"
type = "BOIN"
backfill = { cap = 3 }
"""

CALENDAR = """
[calendar]
accrual = "fixed"
accrual_rate = 8
"""

SCENARIOS = """
[[scenario]]
name = "middle"
true_tox = [0.05, 0.25, 0.5]
true_eff = [0.2, 0.4, 0.5]
"""

PHASE2 = """
[phase2]
design = "Simon"
p0 = 0.20
p1 = 0.40
alpha = 0.05
beta = 0.20
"""


def _file(tmp_path, *parts) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text("\n".join(parts))
    return path


def test_backfill_key_runs_the_backfill_engine_with_the_same_seed(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, CALENDAR, SCENARIOS))
    assert set(p.backfills) == {"BOIN + backfill"} and p.backfills["BOIN + backfill"].cap == 3
    st = run_protocol(p, n_trials=400, seed=5)
    res = [r for r in st.results if "n_backfilled" in r.extra]
    assert len(res) == 1, "only the design with a backfill key runs with backfill"
    direct = simulate_backfill(p.designs["BOIN + backfill"], p.scenarios["middle"], 400,
                               backfill=p.backfills["BOIN + backfill"], calendar=p.calendar,
                               rng=doseesc.rng.root_seed(5), ladder=p.tiers, obd=p.obd)
    assert np.array_equal(res[0].selected, direct.selected)
    assert np.array_equal(res[0].n, direct.n)
    assert res[0].patients["backfill"].any(), "backfill patients were treated"
    assert res[0].n.sum(axis=1).max() <= 12, "within max_n" 


def test_backfill_designs_are_monte_carlo_only(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, CALENDAR, SCENARIOS))
    why = exact_refusal(p, p.designs["BOIN + backfill"], "BOIN + backfill")
    assert why is not None and "backfill" in why
    assert exact_refusal(p, p.designs["BOIN"], "BOIN") is None
    st = run_protocol(p, method="exact")
    assert [r.design.label for r in st.results] == [p.designs["BOIN"].label]
    auto = run_protocol(p, method="auto", n_trials=200, seed=1)
    assert any("backfill" in why for why in auto.exact_skipped.values())


def test_backfill_with_a_precision_target_is_refused(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, CALENDAR, SCENARIOS))
    with pytest.raises(DoseescError, match="precision"):
        run_protocol(p, n_trials=2048, seed=1, precision=0.05, designs=["BOIN + backfill"])


@pytest.mark.parametrize("parts,match", [
    ((HEAD, DESIGNS, SCENARIOS), r"toy\.toml.*BOIN \+ backfill.*calendar"),
    ((HEAD, DESIGNS.replace("cap = 3", "cap = -1"), CALENDAR, SCENARIOS), r"toy\.toml.*cap"),
    ((HEAD, DESIGNS.replace("cap = 3", "cap = 3, colour = 1"), CALENDAR, SCENARIOS), r"toy\.toml.*colour"),
    ((HEAD, DESIGNS.replace('type = "BOIN"\nbackfill', 'type = "3+3"\nbackfill'), CALENDAR, SCENARIOS),
     r"toy\.toml.*3\+3"),
])
def test_bad_backfill_in_a_file_names_file_design_and_key(tmp_path, parts, match):
    with pytest.raises(DoseescError, match=match):
        doseesc.load_protocol(_file(tmp_path, *parts))


def test_backfill_with_indications_is_refused(tmp_path):
    ind = '\n[[indication]]\nname = "a"\nshare = 0.5\n\n[[indication]]\nname = "b"\nshare = 0.5\n'
    with pytest.raises(DoseescError, match=r"toy\.toml.*backfill.*indication"):
        doseesc.load_protocol(_file(tmp_path, HEAD, ind, DESIGNS, CALENDAR, SCENARIOS))


def test_phase2_table_gives_the_stage_and_study_rows(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS.split("[[design]]\nname = \"BOIN + backfill\"")[0],
                                    SCENARIOS, PHASE2))
    stage = p.phase2
    assert stage is not None
    st = run_protocol(p, n_trials=500, seed=3)
    rows = st.phase2()
    assert list(rows["design"]) == ["BOIN"] and list(rows["scenario"]) == ["middle"]
    # the study's row is the engine's run on the same result
    direct = run_phase2(st.results[0], stage)
    assert rows["p_promising"].iloc[0] == direct.metrics["p_promising"] == direct.promising.mean()
    # P(promising) = sum over tiers of P(select) x P(promising | tier): exact column within 4 MCSE of MC
    assert abs(rows["p_promising"].iloc[0] - rows["p_promising_exact"].iloc[0]) <= 4 * rows["p_promising_mcse"].iloc[0]


def test_no_phase2_table_means_an_empty_frame(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS.split("[[design]]\nname = \"BOIN + backfill\"")[0],
                                    SCENARIOS))
    assert p.phase2 is None
    assert run_protocol(p, n_trials=100, seed=3).phase2().empty


def test_bad_phase2_table_names_file_and_key(tmp_path):
    with pytest.raises(DoseescError, match=r"toy\.toml.*phase2.*p1"):
        doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS.split("[[design]]\nname = \"BOIN + backfill\"")[0],
                                    SCENARIOS, PHASE2.replace("p1 = 0.40", "p1 = 0.10")))


def test_bundled_files_carry_the_new_designs():
    dcar = doseesc.load_protocol(ROOT / "scenarios" / "dcar_sle.toml")
    assert dcar.backfills["BOIN12 + backfill"].cap == 6 and dcar.designs["EffTox"].kind == "EffTox"
    assert dcar.designs["BOIN12 + backfill"] == dcar.designs["BOIN12"], "the same BOIN12, with and without backfill"
    gd2 = doseesc.load_protocol(ROOT / "scenarios" / "gd2_b7h3.toml")
    assert gd2.designs["BLRM"].kind == "BLRM" and gd2.phase2 is not None
    assert doseesc.load_protocol(ROOT / "scenarios" / "ecar01.toml").designs["BLRM"].kind == "BLRM"
    kn = doseesc.load_protocol(ROOT / "scenarios" / "kn3601.toml")
    assert kn.designs["3+3 + expansion to 36"].to_n == 36


def test_a_grid_over_a_backfill_design_is_refused(tmp_path):
    grid = '\n[[grid]]\nname = "g"\ndesign = "BOIN + backfill"\nn_trials = 200\n[grid.params]\ncutoff_eli = [0.9, 0.95]\n'
    with pytest.raises(DoseescError, match=r"toy\.toml: \[\[grid\]\] 'g': design = 'BOIN \+ backfill' has backfill"):
        doseesc.load_protocol(_file(tmp_path, HEAD, DESIGNS, CALENDAR, SCENARIOS, "[run]\nseed = 1\n", grid))
