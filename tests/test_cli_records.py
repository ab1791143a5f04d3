"""The command line keeps per-patient records only where it writes them (issue 20 item 3): `doseesc simulate`
without --out and `doseesc protocol-text` run without them, so that their memory grows by tens of bytes per trial,
not per patient; every table is the same either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import doseesc
import doseesc.study as study_mod
from doseesc.cli import main

FILE = "scenarios/ucmsc_sle.toml"


@pytest.fixture(scope="module")
def studies():
    proto = doseesc.load_protocol(FILE)
    kw = dict(designs=["BOIN", "3+3"], scenarios=list(proto.scenarios)[:2], n_trials=600, seed=4)
    return (study_mod.run_protocol(proto, keep_records=True, **kw),
            study_mod.run_protocol(proto, keep_records=False, **kw))


def test_a_study_without_records_gives_the_same_tables_and_trials_without_logs(studies):
    kept, lean = studies
    assert all(r.patients is not None for r in kept.results)
    assert all(r.patients is None for r in lean.results)
    pd.testing.assert_frame_equal(kept.summary(), lean.summary())
    for a, b in zip(kept.results, lean.results):
        pd.testing.assert_frame_equal(a.metrics(), b.metrics())
        pd.testing.assert_frame_equal(a.stop_report(), b.stop_report())
        np.testing.assert_array_equal(a.selected, b.selected)
    # the trials table loses only the per-patient log
    full, short = kept.results[0].trials(), lean.results[0].trials()
    assert "log" in full and "log" not in short
    pd.testing.assert_frame_equal(full.drop(columns="log"), short)


def _capture(monkeypatch):
    seen = {}
    real = study_mod.run_protocol

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(study_mod, "run_protocol", spy)
    return seen


def test_simulate_keeps_records_only_with_out(monkeypatch, tmp_path):
    seen = _capture(monkeypatch)
    args = ["simulate", FILE, "-n", "300", "--design", "BOIN", "--no-exact", "--seed", "2"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert seen["keep_records"] is False
    res = CliRunner().invoke(main, args + ["--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert seen["keep_records"] is True
    trials = pd.read_csv(tmp_path / "o" / "trials.csv", comment="#")
    assert len(trials) == 300 * len(doseesc.load_protocol(FILE).scenarios)
    assert trials["log"].str.len().gt(0).all()
