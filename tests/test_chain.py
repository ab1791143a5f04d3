"""The Monte Carlo engine as a walk on the design's state graph (engines/chain.py, issue 20): every per-trial
and per-patient array equals the cohort-by-cohort engine's (``montecarlo.CHAIN`` off), for every registered
design type with its defaults, with and without response, for cohorts of varying size, a maximum sample size
that cuts the last cohort short, a graph reused across scenarios and runs, and a graph too large (the batch
falls back to the cohort-by-cohort engine). No timing here: speed is bench/bench_speed_vs_r.py."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import doseesc
from doseesc.designs.base import REGISTRY, design_from_dict

mc = importlib.import_module("doseesc.engines.montecarlo")
chain_mod = importlib.import_module("doseesc.engines.chain")

TOX4 = [0.05, 0.12, 0.30, 0.50]
EFF4 = [0.20, 0.40, 0.50, 0.55]
KEYS = ("n", "y", "e", "selected", "reason", "fired")


def _runs(design, scenario, n=600, seed=11, **kw):
    """(chain, cohort by cohort) results of the same trials."""
    a = doseesc.simulate(design, scenario, n, rng=seed, **kw)
    mc.CHAIN = False
    try:
        b = doseesc.simulate(design, scenario, n, rng=seed, **kw)
    finally:
        mc.CHAIN = True
    return a, b


def _same(a, b):
    for key in KEYS:
        x, y = getattr(a, key), getattr(b, key)
        if x is None:
            assert y is None
            continue
        np.testing.assert_array_equal(x, y, err_msg=key)
        assert x.dtype == y.dtype, key
    assert sorted(a.patients) == sorted(b.patients)
    for key in a.patients:
        np.testing.assert_array_equal(a.patients[key], b.patients[key], err_msg=key)
        assert a.patients[key].dtype == b.patients[key].dtype, key
    assert a.trials().equals(b.trials())
    assert a.metrics().equals(b.metrics())


_DEFAULTS = {"target": 0.3, "max_n": 18, "n_tiers": 4, "skeleton": [0.1, 0.2, 0.3, 0.45], "tox_limit": 0.35,
             "phi_t": 0.35, "eff_limit": 0.3, "phi_e": 0.3, "eff_target": 0.3,
             "base": {"type": "BOIN", "target": 0.3, "n_tiers": 4, "max_n": 18}}


def _make(kind, cls):
    """The type's example, else the type with its defaults and the generic required options above."""
    import dataclasses
    try:
        return cls.example()
    except NotImplementedError:
        pass
    params = {"type": kind}
    for f in dataclasses.fields(cls):
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            params[f.name] = _DEFAULTS[f.name]
    return design_from_dict(params)


def _registry_designs():
    out = []
    for kind, cls in sorted(REGISTRY.items()):
        d = _make(kind, cls)
        if not d.time_to_event:   # time-to-event designs run in calendar time (engines/timed.py), not here
            out.append(pytest.param(d, id=kind))
    return out


@pytest.fixture(params=[0, None], ids=["merge all new edges", "merge above DEDUPE_FROM"])
def dedupe(request, monkeypatch):
    """Both ways of adding edges: merged on their end state (forced from the first edge), and the engine's own
    threshold (:data:`~doseesc.engines.chain.DEDUPE_FROM`, above the sizes these runs reach)."""
    if request.param is not None:
        monkeypatch.setattr(chain_mod, "DEDUPE_FROM", request.param)
    chain_mod._RECENT.clear()
    yield
    chain_mod._RECENT.clear()


@pytest.mark.parametrize("design", _registry_designs())
def test_every_design_type_walks_the_graph_as_it_runs_cohort_by_cohort(design, dedupe):
    k = design.n_tiers
    tox = np.interp(np.linspace(0, 3, k), range(4), TOX4)
    eff = np.interp(np.linspace(0, 3, k), range(4), EFF4) if design.uses_efficacy else None
    sc = doseesc.Scenario(true_tox=tuple(tox), true_eff=None if eff is None else tuple(eff), target=0.3)
    a, b = _runs(design, sc)
    _same(a, b)


@pytest.mark.parametrize("design", [
    doseesc.BOIN(0.3, 4, max_n=20, titration=True),                 # cohorts of 1 then 3; 20 = 3k + 2
    doseesc.BOIN(0.3, 4, cohort_size=3, max_n=17),                  # the last cohort cut to 2 patients
    doseesc.ThreePlusThree(4),
    doseesc.BOIN12(4, max_n=22),
    doseesc.CRM(tuple(doseesc.crm_skeleton(0.3, 0.05, 2, 4)), 0.3, max_n=19),
], ids=["BOIN titration", "BOIN max_n 17", "3+3", "BOIN12 max_n 22", "CRM max_n 19"])
def test_uneven_cohorts_and_short_last_cohorts(design, dedupe):
    sc = doseesc.Scenario(true_tox=tuple(TOX4), true_eff=tuple(EFF4) if design.uses_efficacy else None, target=0.3)
    _same(*_runs(design, sc, n=1500, batch_size=400))


def test_one_graph_serves_every_scenario_batch_and_run():
    """The graph depends on the design alone: a design object run under one truth, then another, in batches of
    300, gives what fresh design objects give, and the second run adds no edge the first had."""
    design = doseesc.BOIN(0.3, 4, max_n=24)
    s1 = doseesc.Scenario(true_tox=(0.05, 0.12, 0.30, 0.50), target=0.3)
    s2 = doseesc.Scenario(true_tox=(0.30, 0.45, 0.60, 0.70), target=0.3)
    r1 = doseesc.simulate(design, s1, 2000, rng=5, batch_size=300)
    g = chain_mod.chain_for(design, False)
    nodes = g.size
    r2 = doseesc.simulate(design, s2, 2000, rng=5, batch_size=300)
    assert chain_mod.chain_for(design, False) is g and g.size >= nodes
    again = doseesc.simulate(design, s1, 2000, rng=5)
    assert g.size == chain_mod.chain_for(design, False).size   # nothing new: every edge was seen
    _same(r1, doseesc.simulate(doseesc.BOIN(0.3, 4, max_n=24), s1, 2000, rng=5))
    _same(r2, doseesc.simulate(doseesc.BOIN(0.3, 4, max_n=24), s2, 2000, rng=5))
    _same(again, r1)


def test_a_graph_too_large_falls_back_to_cohort_by_cohort(monkeypatch):
    monkeypatch.setattr(chain_mod, "MAX_NODES", 50)
    design = doseesc.BOIN(0.3, 5, max_n=30)
    sc = doseesc.Scenario(true_tox=(0.05, 0.12, 0.2, 0.3, 0.5), target=0.3)
    a = doseesc.simulate(design, sc, 1000, rng=2, batch_size=300)
    g = chain_mod.chain_for(design, False)
    assert g.size <= 50 and g.full      # the first batch found it too large; the later ones did not try
    monkeypatch.setattr(chain_mod, "MAX_NODES", 1 << 18)
    chain_mod._RECENT.clear()           # a new graph, large enough
    b = doseesc.simulate(doseesc.BOIN(0.3, 5, max_n=30), sc, 1000, rng=2)
    assert not chain_mod.chain_for(design, False).full and chain_mod.chain_for(design, False).size > 50
    _same(a, b)


def test_the_graph_of_a_hand_worked_3_plus_3():
    """3+3 with 2 tiers: from the root, 0 DLTs in 3 moves to tier 2 (node with n = (3, 0)), 1 DLT in 3 stays for
    3 more at tier 1, 2 or 3 DLTs stop with no dose; trials that took the same outcomes share nodes."""
    design = doseesc.ThreePlusThree(2)
    g = chain_mod.Chain(design, False)
    root = np.zeros(4, np.int32)
    nodes = g.follow(root, np.array([0, 1, 2, 0]))
    assert nodes[0] == nodes[3] and len(set(nodes.tolist())) == 3 and g.size == 4
    post = g._post
    assert post["n"][nodes[0]].tolist() == [3, 0] and post["current"][nodes[0]] == 1 and not post["stop"][nodes[0]]
    assert post["n"][nodes[1]].tolist() == [3, 0] and post["current"][nodes[1]] == 0 and not post["stop"][nodes[1]]
    assert post["stop"][nodes[2]] and post["selected"][nodes[2]] == chain_mod.PENDING   # chosen at the batch's end
    g._conclude(nodes)
    assert post["selected"][nodes[2]] == -1 and (post["selected"][nodes[[0, 1]]] == -1).all()


@pytest.mark.parametrize("design", _registry_designs() + [
    pytest.param(doseesc.BOIN(0.3, 4, max_n=20, titration=True), id="BOIN titration"),
    pytest.param(doseesc.BOIN(0.3, 4, cohort_size=3, max_n=17), id="BOIN max_n 17")])
def test_a_walk_without_records_flags_two_dlt_cohorts_as_the_records_do(design):
    """Without records the walk counts each cohort's DLTs itself: the per-trial flag "some cohort had 2 or more
    DLTs" equals the one the records give (results.two_dlt_cohort), and every other array is the same."""
    from doseesc.results import two_dlt_cohort
    k = design.n_tiers
    tox = np.interp(np.linspace(0, 3, k), range(4), [0.15, 0.35, 0.55, 0.7])
    eff = np.interp(np.linspace(0, 3, k), range(4), EFF4) if design.uses_efficacy else None
    sc = doseesc.Scenario(true_tox=tuple(tox), true_eff=None if eff is None else tuple(eff), target=0.3)
    seq = np.random.SeedSequence(9)
    full = mc.plain_batch(design, sc, seq, 0, 1500)
    lean = mc.plain_batch(design, sc, seq, 0, 1500, records=False)
    if "tier" in lean:     # a graph too large for the walk: the cohort-by-cohort engine keeps its records
        pytest.skip("this design's batch ran cohort by cohort")
    want = two_dlt_cohort(full["tier"], full["tox"], full["new_cohort"]).astype(bool)
    np.testing.assert_array_equal(lean[mc.TWO_DLT_KEY], want)
    assert want.any() and not want.all()
    for key in ("n", "y", "selected", "reason", "fired"):
        np.testing.assert_array_equal(lean[key], full[key], err_msg=key)
