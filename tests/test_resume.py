"""Interrupt and resume (issue 24 item 3): ``simulate --out DIR`` keeps each finished design x scenario in
DIR.partial; ``--resume`` continues; the resumed outputs equal an uninterrupted run's, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import doseesc.study
from doseesc.cli import main

#: Two designs x two scenarios = 4 units; no [actual_dose], so exact runs apply beside the simulations.
FILE = """
[protocol]
name = "R"
target = 0.25
max_n = 18
cohort_size = 3
[tiers]
doses = [1, 2, 3]
[[design]]
name = "3+3"
type = "3+3"
[[design]]
name = "BOIN"
type = "BOIN"
[[scenario]]
name = "low"
true_tox = [0.05, 0.10, 0.20]
[[scenario]]
name = "high"
true_tox = [0.20, 0.35, 0.50]
[run]
n_trials = 300
seed = 11
"""

COMPARED = ("summary.csv", "metrics.csv", "stop_report.csv", "trials.csv", "results.json")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def proto(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text(FILE)
    return f


def _timeless(o):
    """A results.json without its clock readings (when each result was made, how long it took), which differ
    between any two runs."""
    if isinstance(o, dict):
        return {k: _timeless(v) for k, v in o.items() if k not in ("created", "seconds")}
    if isinstance(o, list):
        return [_timeless(v) for v in o]
    return o


def _same_outputs(a: Path, b: Path) -> None:
    for name in COMPARED:
        if name == "results.json":
            assert _timeless(json.loads((a / name).read_text())) == _timeless(json.loads((b / name).read_text()))
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("exact", ["--exact", "--no-exact"])
def test_resume_after_interrupt_equals_uninterrupted_run(proto, tmp_path, monkeypatch, exact):
    whole, part = tmp_path / "whole", tmp_path / "part"
    r = run("simulate", proto, "--out", whole, exact)
    assert r.exit_code == 0, r.output
    real = doseesc.study.simulate
    calls = []

    def stop_third(*a, **k):   # a forced stop between design x scenario units: the third unit never starts
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(doseesc.study, "simulate", stop_third)
    r = run("simulate", proto, "--out", part, exact)
    assert r.exit_code == 130
    ckpt = tmp_path / "part.partial"
    assert "interrupted: kept 2 of 4 design x scenario results in" in r.stderr and str(ckpt) in r.stderr
    assert "--resume" in r.stderr
    assert len(list(ckpt.glob("mc-*.pkl"))) == 2
    assert not any(part.iterdir())                      # nothing written into --out yet
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".doseesc-")]
    # a rerun without --resume is refused rather than starting over over the kept work
    monkeypatch.setattr(doseesc.study, "simulate", real)
    r = run("simulate", proto, "--out", part, exact)
    assert r.exit_code == 2 and "add --resume" in r.stderr
    # resume: two units read back, two run; identical to the uninterrupted run
    ran = []
    monkeypatch.setattr(doseesc.study, "simulate", lambda *a, **k: ran.append(1) or real(*a, **k))
    r = run("simulate", proto, "--out", part, exact, "--resume")
    assert r.exit_code == 0, r.output
    assert len(ran) == 2
    _same_outputs(whole, part)
    assert not ckpt.exists()                            # removed once the results are written


def test_resume_of_another_run_is_refused(proto, tmp_path, monkeypatch):
    part = tmp_path / "part"
    real = doseesc.study.simulate

    def stop_second(*a, calls=[], **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(doseesc.study, "simulate", stop_second)
    assert run("simulate", proto, "--out", part, "--no-exact").exit_code == 130
    monkeypatch.setattr(doseesc.study, "simulate", real)
    r = run("simulate", proto, "--out", part, "--no-exact", "--resume", "-n", 400)
    assert r.exit_code == 2 and "belongs to another run" in r.stderr and "n_trials" in r.stderr


def test_resume_needs_out_and_a_checkpoint(proto, tmp_path):
    r = run("simulate", proto, "--resume")
    assert r.exit_code == 2 and "--resume needs --out" in r.stderr
    r = run("simulate", proto, "--out", tmp_path / "o", "--resume")
    assert r.exit_code == 2 and "no checkpoint" in r.stderr


def test_run_protocol_checkpoint_api(proto, tmp_path):
    p = doseesc.load_protocol(proto)
    a = doseesc.study.run_protocol(p, method="auto", seed=5)
    b = doseesc.study.run_protocol(p, method="auto", seed=5, checkpoint=tmp_path / "ck")
    c = doseesc.study.run_protocol(p, method="auto", seed=5, checkpoint=tmp_path / "ck")   # all read back
    for x in (b, c):
        assert _timeless(json.loads(x.to_json())) == _timeless(json.loads(a.to_json()))
        assert x.trials().equals(a.trials())


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_keeps_units_and_resume_is_identical(proto, tmp_path):
    """A real SIGTERM to a running ``doseesc simulate``: one line, exit 143, the kept units in OUT.partial, no
    temporary folder left; --resume then gives the uninterrupted run's files."""
    big = tmp_path / "big.toml"
    big.write_text(FILE.replace("n_trials = 300", "n_trials = 60000"))
    whole, part = tmp_path / "whole", tmp_path / "part"
    cmd = [sys.executable, "-m", "doseesc", "simulate", str(big), "--no-exact", "--no-progress"]
    done = subprocess.run(cmd + ["--out", str(whole)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen(cmd + ["--out", str(part)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "part.partial"
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None and not list(ckpt.glob("mc-*.pkl")):
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be stopped")
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("interrupted: kept ")
    assert "--resume" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".doseesc-")]
    kept = len(list(ckpt.glob("mc-*.pkl")))
    assert 1 <= kept <= 4
    done = subprocess.run(cmd + ["--out", str(part), "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _same_outputs(whole, part)


def test_report_resume_after_interrupt_equals_uninterrupted_report(proto, tmp_path, monkeypatch):
    """doseesc report keeps finished design x scenario results in OUT/.FILE-report.partial; --resume finishes
    with the same numbers as an uninterrupted report (the HTML tables compared, the creation time aside)."""
    import re
    whole, part = tmp_path / "whole", tmp_path / "part"
    r = run("report", proto, "-o", whole, "-n", 100, "--seed", 5, "--detail", "summary")
    assert r.exit_code == 0, r.output
    real = doseesc.study.simulate
    calls = []

    def stop_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(doseesc.study, "simulate", stop_second)
    r = run("report", proto, "-o", part, "-n", 100, "--seed", 5, "--detail", "summary")
    assert r.exit_code == 130 and "--resume" in r.stderr
    ckpt = part / ".r-report.partial"
    assert len(list(ckpt.glob("mc-*.pkl"))) == 1
    monkeypatch.setattr(doseesc.study, "simulate", real)
    r = run("report", proto, "-o", part, "-n", 100, "--seed", 5, "--detail", "summary")
    assert r.exit_code == 2 and "add --resume" in r.stderr
    r = run("report", proto, "-o", part, "-n", 100, "--seed", 5, "--detail", "summary", "--resume")
    assert r.exit_code == 0, r.output
    assert not ckpt.exists()

    def tables(folder):
        html = (folder / "r-report.html").read_text(encoding="utf-8")
        found = re.findall(r"<table.*?</table>", html, re.S)
        return [t for t in found if 'data-kind="provenance"' not in t]   # the command names its own -o folder

    assert tables(whole) == tables(part) and len(tables(whole)) >= 2
