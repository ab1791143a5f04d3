"""Every bundled scenario file loads, covers the required truths, and MC agrees with exact."""

from __future__ import annotations

import re

import numpy as np
import pytest

import doseesc
from conftest import SCENARIO_FILES

CASES = [(f, d, s) for f in SCENARIO_FILES for p in [doseesc.load_protocol(f)]
         for d in p.designs for s in p.scenarios]


def test_five_seed_trials_are_bundled():
    names = {f.stem for f in SCENARIO_FILES}
    assert names == {"ecar01", "dcar_sle", "kn3601", "gd2_b7h3", "ucmsc_sle"}


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_file_cites_registry_and_covers_required_truths(path):
    text = path.read_text()
    p = doseesc.load_protocol(path)
    assert p.registry and (re.search(r"NCT\d{8}", text) or p.registry == "DCAR-SLE")
    assert p.target is not None and p.source
    kinds = {s.mtd(p.target) for s in p.scenarios.values()}
    k = p.tiers.n_tiers
    assert k - 1 in kinds, "needs a scenario where every tier is safe"
    assert -1 in kinds, "needs a scenario where the lowest tier is too toxic"
    assert any(0 <= m < k - 1 for m in kinds), "needs a scenario with the MTD below the top"
    steep = [s for s in p.scenarios.values() if np.max(np.diff(s.true_tox)) >= 0.25]
    assert steep, "needs a steep dose-toxicity curve"
    assert {d.kind for d in p.designs.values()} >= {"3+3", "BOIN"}
    assert len({d.kind for d in p.designs.values()} - {"3+3", "BOIN"}) >= 1, "BOIN and another interval design"
    variants = {getattr(d, "deescalation", None) for d in p.designs.values() if d.kind == "3+3"}
    assert variants == {False, True}


@pytest.mark.parametrize("path,design,scenario", CASES,
                         ids=[f"{f.stem}-{d}-{s}" for f, d, s in CASES])
def test_monte_carlo_within_4_se_of_exact(path, design, scenario):
    p = doseesc.load_protocol(path)
    d, s = p.designs[design], p.scenarios[scenario]
    n_trials = 10_000
    if getattr(d, "time_to_event", False):
        pytest.skip("exact enumeration does not apply to time-to-event designs (decisions depend on follow-up "
                    "times); TITE designs are checked in tests/test_tite.py")
    if d.uses_patient_doses and p.dose_model is not None:
        pytest.skip("a design fitted on each patient's infused dose (BLRM) decides differently from its nominal-dose "
                    "exact enumeration under the actual-dose model (tests/test_blrm_actual.py); exact vs Monte Carlo "
                    "without the model: tests/test_blrm.py")
    if getattr(d, "uses_efficacy", False) and (d.n_tiers > 3 or d.max_n > 24):
        pytest.skip("exact enumeration of OBD designs is checked where the state space allows "
                    "(3 tiers, N <= 24; tests/test_obd.py, test_boin12.py, test_boinet.py)")
    try:
        ex = doseesc.exact(d, s, ladder=p.tiers, obd=p.obd, max_states=400_000)
    except doseesc.DoseescError as exc:
        pytest.skip(f"exact enumeration too large here ({exc}); simulation only")
    # with the file's actual-dose model (every bundled file counts short products at their nominal tier and
    # replaces failed ones), each tier's outcomes are Bernoulli with the tier-averaged truth that exact uses
    mc = doseesc.simulate(d, s, n_trials, rng=p.seed, ladder=p.tiers, obd=p.obd, dose_model=p.dose_model)
    ps = np.clip(ex.p_select, 0, 1)
    se = np.sqrt(ps * (1 - ps) / n_trials)  # binomial SE under the exact value
    assert np.all(np.abs(mc.p_select - ps) <= 4 * se + 1e-15), np.c_[mc.p_select, ps, se]
    assert abs(mc.expected_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(n_trials) + 1e-9  # + summation rounding
    assert list(mc.summary().index) == ["No dose", *p.tiers.tier_labels]
    if ex.e is not None:  # expected responses per tier, where the scenario gives true_eff
        a, b = ex.summary(), mc.summary()
        z = ((b["mean_eff"] - a["mean_eff"]) / b["mean_eff_mcse"].where(b["mean_eff_mcse"] > 0)).to_numpy()[1:]
        assert np.all(np.abs(np.nan_to_num(z)) < 4)


INTERVAL = [doseesc.Keyboard, doseesc.MTPI2, doseesc.MTPI, doseesc.TPI]
FILE_SCENARIOS = [(f, s) for f in SCENARIO_FILES for s in doseesc.load_protocol(f).scenarios]


@pytest.mark.parametrize("path,scenario", FILE_SCENARIOS, ids=[f"{f.stem}-{s}" for f, s in FILE_SCENARIOS])
def test_every_interval_design_on_every_bundled_scenario(path, scenario):
    """Keyboard, mTPI-2, mTPI and TPI with each protocol's target, tiers and N: MC within 4 SE of exact."""
    p = doseesc.load_protocol(path)
    s = p.scenarios[scenario]
    n_max = p.designs["BOIN"].max_n
    for cls in INTERVAL:
        d = cls(p.target, p.tiers.n_tiers, max_n=n_max)
        ex = doseesc.exact(d, s)
        mc = doseesc.simulate(d, s, 4000, rng=p.seed)
        ps = np.clip(ex.p_select, 0, 1)
        assert np.all(np.abs(mc.p_select - ps) <= 4 * np.sqrt(ps * (1 - ps) / 4000) + 1e-15), cls.__name__
        assert abs(mc.expected_n - ex.expected_n) <= 4 * ex.sd_n / np.sqrt(4000) + 1e-9, cls.__name__


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_bundled_crm_designs_have_a_safety_stop_that_acts(path):
    """Every CRM-type design of a bundled file states its safety stop, and in the file's lowest-too-toxic
    scenario it stops with no dose in a real share of trials (before: 0%); 1,000 trials, so P(no dose) > 0.1
    is far above its MCSE."""
    proto = doseesc.load_protocol(path)
    crms = [d for d in proto.designs.values() if d.kind in ("CRM", "TITE-CRM")]
    assert crms and all(d.safety_cutoff is not None for d in crms)
    crm = next(d for d in crms if d.kind == "CRM")
    mc = doseesc.simulate(crm, proto.scenarios["lowest-too-toxic"], 1000, rng=3)
    assert mc.p_no_dose > 0.1


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_file_states_both_windows_in_protocol_and_header(path):
    """Issue 18: every bundled file states its DLT and response windows in [protocol] with their definitions,
    lists them in its header comment (with the registry sentence or the assumption), and its [calendar] uses
    exactly those windows."""
    p = doseesc.load_protocol(path)
    assert p.dlt_window_days and p.response_window_days
    assert p.dlt_definition and p.response_definition
    header = path.read_text().split("\n[protocol]\n")[0]
    assert re.search(r"DLT window \d", header) and re.search(r"response window \d", header)
    assert "registry" in header.lower() and ("assumption" in header or "from the registry" in header)
    if p.calendar is not None:
        assert p.calendar.dlt_window_days == p.dlt_window_days
        assert p.calendar.eff_window_days == p.response_window_days


_WORDS = {"lowest": 0, "low": 0, "second": 1, "third": 2}
_REF = (r"(the (?:highest|lowest|high|medium|middle|low|second|third) dose(?:, [0-9.]+x10\^\d+/kg,)?|"
        r"[0-9.]+x10\^\d+/kg)")


def _tier(ref: str, doses) -> int:
    """The 0-based tier a description names: a dose like 2x10^6/kg, or the highest / lowest / medium dose."""
    m = re.search(r"([0-9.]+)x10\^(\d+)/kg", ref)
    if m:
        hits = np.flatnonzero(np.isclose(doses, float(m.group(1)) * 10 ** int(m.group(2))))
        assert hits.size == 1, ref
        return int(hits[0])
    word = ref.split()[1]
    k = len(doses)
    if word == "highest" or (word == "high" and k == 3):
        return k - 1
    if word in ("medium", "middle"):
        assert k == 3, ref
        return 1
    return _WORDS[word]


def _claims(text: str, doses) -> dict[str, int]:
    """The true MTD and OBD a scenario description claims ({"MTD": tier, "OBD": tier}; -1 for no dose)."""
    out: dict[str, int] = {}
    for m in re.finditer(_REF + r" is the true MTD( and the OBD)?", text):
        out["MTD"] = _tier(m.group(1), doses)
        if m.group(2):
            out["OBD"] = out["MTD"]
    for m in re.finditer(r"but " + _REF + r" is the OBD", text):
        out["OBD"] = _tier(m.group(1), doses)
    if "stop without recommending any dose" in text or "no dose is acceptable" in text:
        out["MTD"] = out["OBD"] = -1
    if "there is no OBD" in text:
        out["OBD"] = -1
    return out


@pytest.mark.parametrize("path,scenario", FILE_SCENARIOS, ids=[f"{f.stem}-{s}" for f, s in FILE_SCENARIOS])
def test_scenario_text_names_its_true_mtd_and_obd(path, scenario):
    """A description that names the true MTD or OBD names the tier the truth gives; where it names the OBD,
    the OBD stands clear of every other admissible tier by more than UTILITY_MARGIN (5 utility points),
    so the claim does not rest on a near-tie. Every description of a tolerated-MTD scenario names its MTD."""
    p = doseesc.load_protocol(path)
    s = p.scenarios[scenario]
    claims = _claims(s.description, np.asarray(p.tiers.doses, float))
    mtd = s.mtd(p.target)
    if "tox_curve" not in path.read_text().split(f'name = "{scenario}"')[1].split("[[scenario]]")[0]:
        assert "MTD" in claims, f"{scenario}: the description names no true MTD: {s.description}"
    if "MTD" in claims:
        assert claims["MTD"] == mtd, (claims, mtd)
    if "OBD" in claims and s.true_eff is not None:
        obd = p.obd or doseesc.OBDDefinition()
        assert claims["OBD"] == obd.true_obd(s), (claims, obd.true_obd(s))
        assert not obd.near_ties(s), obd.near_tie_text(s, p.tiers.tier_labels)
