"""BOIN12: the published rank table, the worked example and app decisions, exact vs simulation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import doseesc

# Rank-based desirability scores, target phi_T 0.35, phi_E 0.25, utility (100, 40, 60, 0), c_T 0.95, c_E 0.90:
# Lin et al. 2020 (JCO Precis Oncol 4:1393) Table 3 as encoded in the tests of R package escalation 0.2.3
# (checked there against the authors' BOIN12 app; secondary source). Rows: DLTs 0..n; columns: responses 0..n.
RDS = {
    0: [["60"]],
    3: [
        ["35", "55", "76", "91"],
        ["24", "44", "63", "80"],
        ["13", "31", "48", "69"],
        ["E", "E", "E", "E"],
    ],
    6: [
        ["22.5", "38.5", "51.5", "67.5", "81.5", "93", "100"],
        ["15.5", "27.5", "42.5", "56.5", "72.5", "87", "96"],
        ["8", "19", "34", "47", "64", "77", "90"],
        ["4", "12", "22.5", "38.5", "51.5", "67.5", "81.5"],
        ["1", "6", "15.5", "27.5", "42.5", "56.5", "72.5"],
        ["E", "E", "E", "E", "E", "E", "E"],
        ["E", "E", "E", "E", "E", "E", "E"],
    ],
    9: [
        ["E", "25.5", "36.5", "49.5", "61.5", "74.5", "85.5", "94.5", "99", "102"],
        ["E", "17.5", "29.5", "40.5", "53.5", "65.5", "78.5", "88.5", "97", "101"],
        ["E", "10.5", "20.5", "32.5", "45.5", "58.5", "70.5", "83.5", "92", "98"],
        ["E", "7", "14", "25.5", "36.5", "49.5", "61.5", "74.5", "85.5", "94.5"],
        ["E", "3", "9", "17.5", "29.5", "40.5", "53.5", "65.5", "78.5", "88.5"],
        ["E", "2", "5", "10.5", "20.5", "32.5", "45.5", "58.5", "70.5", "83.5"],
        ["E", "E", "E", "E", "E", "E", "E", "E", "E", "E"],
        ["E", "E", "E", "E", "E", "E", "E", "E", "E", "E"],
        ["E", "E", "E", "E", "E", "E", "E", "E", "E", "E"],
        ["E", "E", "E", "E", "E", "E", "E", "E", "E", "E"],
    ],
}

# Decisions after a trial log (1-based tier of the next cohort; the last entry of the worked example stops
# with that tier selected): the paper's worked example and two parameterisations of the authors' app,
# as encoded in the tests of R package escalation 0.2.3.
CASES = [
    (1, "1NNN 2ENT 3ETT 2EEN", 2),
    (1, "1NNN", 2),
    (1, "1NNN 2NNB", 3),
    (1, "1NNN 2NNB 3NEE", 3),
    (1, "1NNN 2NNB 3NEE 3NTN", 4),
    (1, "1NNN 2NNB 3NEE 3NTN 4ETE", 4),
    (1, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE", 4),
    (1, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN", 5),
    (1, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN", 5),
    (1, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT", 4),
    (1, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT 4NEN", 4),
    (1, "1EBB", 1),
    (1, "1EEB", 1),
    (1, "1EEE", 1),
    (1, "1EET", 1),
    (1, "1ETB", 1),
    (1, "1ETT", 1),
    (1, "1NBB", 1),
    (1, "1NEB", 1),
    (1, "1NEE", 1),
    (1, "1NET", 2),
    (1, "1NNB", 2),
    (1, "1NNE", 2),
    (1, "1NNN", 2),
    (1, "1NNT", 2),
    (1, "1NTB", 1),
    (1, "1NTT", 1),
    (1, "2BBB", 1),
    (1, "2EBB", 1),
    (1, "2EEB", 2),
    (1, "2EEE", 2),
    (1, "2EET", 2),
    (1, "2ETB", 1),
    (1, "2ETT", 1),
    (1, "2NBB", 1),
    (1, "2NEB", 2),
    (1, "2NEE", 2),
    (1, "2NET", 3),
    (1, "2NNB", 3),
    (1, "2NNE", 3),
    (1, "2NNN", 3),
    (1, "2NNT", 3),
    (1, "2NTB", 1),
    (1, "2NTT", 1),
    (1, "2TBB", 1),
    (1, "2TTB", 1),
    (1, "2TTT", 1),
    (1, "5BBB", 4),
    (1, "5EBB", 4),
    (1, "5EEB", 5),
    (1, "5EEE", 5),
    (1, "5EET", 5),
    (1, "5ETB", 4),
    (1, "5ETT", 4),
    (1, "5NBB", 4),
    (1, "5NEB", 5),
    (1, "5NEE", 5),
    (1, "5NET", 4),
    (1, "5NNB", 4),
    (1, "5NNE", 4),
    (1, "5NNN", 4),
    (1, "5NNT", 4),
    (1, "5NTB", 4),
    (1, "5NTT", 4),
    (1, "5TBB", 4),
    (1, "5TTB", 4),
    (1, "5TTT", 4),
    (2, "1EBB", 1),
    (2, "1EEB", 1),
    (2, "1EEE", 1),
    (2, "1EET", 1),
    (2, "1ETB", 1),
    (2, "1ETT", 1),
    (2, "1NBB", 1),
    (2, "1NEB", 1),
    (2, "1NEE", 1),
    (2, "1NET", 1),
    (2, "1NNB", 1),
    (2, "1NNE", 2),
    (2, "1NNN", 2),
    (2, "1NTB", 1),
    (2, "2BBB", 1),
    (2, "2EBB", 1),
    (2, "2EEB", 1),
    (2, "2EEE", 2),
    (2, "2EET", 1),
    (2, "2ETB", 1),
    (2, "2ETT", 1),
    (2, "2NBB", 1),
    (2, "2NEB", 1),
    (2, "2NEE", 2),
    (2, "2NET", 1),
    (2, "2NNB", 1),
    (2, "2NNN", 3),
    (2, "2NNT", 1),
    (2, "2NTB", 1),
    (2, "2NTT", 1),
    (2, "2TBB", 1),
    (2, "2TTB", 1),
    (2, "2TTT", 1),
    (2, "5BBB", 4),
    (2, "5EBB", 4),
    (2, "5EEB", 4),
    (2, "5EEE", 5),
    (2, "5EET", 4),
    (2, "5ETB", 4),
    (2, "5ETT", 4),
    (2, "5NBB", 4),
    (2, "5NEB", 4),
    (2, "5NEE", 5),
    (2, "5NET", 4),
    (2, "5NNB", 4),
    (2, "5NNE", 4),
    (2, "5NNN", 4),
    (2, "5NNT", 4),
    (2, "5NTB", 4),
    (2, "5NTT", 4),
    (2, "5TBB", 4),
    (2, "5TTB", 4),
    (2, "5TTT", 4),
]

P1 = doseesc.BOIN12(5, max_n=36, variant="app")
P2 = doseesc.BOIN12(5, max_n=36, phi_t=0.15, phi_e=0.4, utility=(50, 0, 100, 30), c_t=0.9, c_e=0.8, variant="app")


def test_benchmark_and_boundaries():
    assert P1.benchmark == pytest.approx(70.5, abs=1e-12)
    lam_e, lam_d = P1.boundaries
    assert lam_e == pytest.approx(0.2763343, abs=1e-7) and lam_d == pytest.approx(0.4189075, abs=1e-7)


def test_rank_based_desirability_table():
    cells, scores = [], []
    for n in (0, 3, 6, 9):
        for t in range(n + 1):
            for r in range(n + 1):
                st = doseesc.TrialState.from_counts([[n]], [[t]], [0], e=[[r]], ye=[[0]])
                # the default utility has u(neither) + u(both) = u(DLT only) + u(response only): x depends on totals
                ok = bool(P1.admissible(st)[0, 0])
                cells.append((n, t, r, ok))
                scores.append(P1.desirability(st)[0, 0] if ok else np.nan)
    scores = np.array(scores)
    good = ~np.isnan(scores)
    ranks = np.full(scores.size, np.nan)
    ranks[good] = stats.rankdata(scores[good])  # ties get the average rank, as R's rank()
    for (n, t, r, ok), rank in zip(cells, ranks):
        want = RDS[n][t][r]
        if want == "E":
            assert not ok, (n, t, r)
        else:
            assert ok and rank == float(want), (n, t, r, rank, want)
    assert good.sum() == 102


@pytest.mark.parametrize("param,log,want", CASES)
def test_published_and_app_decisions(param, log, want):
    design = P1 if param == 1 else P2
    rec = doseesc.recommend(design, log, warn=False)
    got = rec.selected + 1 if rec.stop else rec.next_tier + 1
    assert got == want


def test_authors_rules_agree_with_the_app_on_its_published_cases():
    """None of the 120 logs reaches an elimination that the two rule sets treat differently: the authors'
    rules (the default) give the same 120 decisions."""
    for param, log, want in CASES:
        design = dataclasses.replace(P1 if param == 1 else P2, variant="authors")
        rec = doseesc.recommend(design, log, warn=False)
        assert (rec.selected + 1 if rec.stop else rec.next_tier + 1) == want, log


def test_worked_example_stops_at_the_cap():
    rec = doseesc.recommend(P1, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT 4NEN")
    assert rec.stop and rec.reason == doseesc.StopReason.N_AT_TIER and rec.selected == 3


@pytest.mark.parametrize("scenario", [
    doseesc.Scenario(true_tox=[0.05, 0.15, 0.40], true_eff=[0.2, 0.6, 0.65], name="plateau"),
    doseesc.Scenario(true_tox=[0.02, 0.05, 0.10], true_eff=[0.1, 0.3, 0.6], name="rising", association=2.0),
    doseesc.Scenario(true_tox=[0.45, 0.6, 0.7], true_eff=[0.3, 0.4, 0.5], name="toxic"),
], ids=lambda s: s.name)
def test_exact_and_simulation_agree(scenario):
    d = doseesc.BOIN12(3, max_n=18)
    ex = doseesc.exact(d, scenario)
    mc = doseesc.simulate(d, scenario, 20000, rng=12)
    ps = np.clip(ex.p_select, 0, 1)
    assert np.all(np.abs(mc.p_select - ps) <= 4 * np.sqrt(ps * (1 - ps) / 20000) + 1e-15)
    assert abs(mc.p_select_obd - ex.p_select_obd) <= 4 * np.sqrt(ex.p_select_obd * (1 - ex.p_select_obd) / 20000)
    a, b = ex.summary(), mc.summary()
    z = ((b["mean_eff"] - a["mean_eff"]) / b["mean_eff_mcse"]).to_numpy()[1:]
    assert np.all(np.abs(np.nan_to_num(z)) < 4)
    assert ex.obd.phi_t == 0.35 and "0.35" in ex.obd.text()


def test_unimodal_fit_equals_constrained_least_squares():
    from scipy.optimize import minimize

    from doseesc.designs.selection import unimodal
    rng = np.random.default_rng(1)
    est, w = rng.random((40, 5)), rng.random((40, 5)) + 0.2
    for m in range(5):
        fit = unimodal(est, w, m)
        for i in range(0, 40, 4):
            cons = [{"type": "ineq", "fun": (lambda f, j=j: f[j + 1] - f[j])} for j in range(m)] + \
                   [{"type": "ineq", "fun": (lambda f, j=j: f[j] - f[j + 1])} for j in range(m, 4)]
            r = minimize(lambda f: np.sum(w[i] * (est[i] - f) ** 2), est[i], constraints=cons, method="SLSQP",
                         options={"ftol": 1e-14, "maxiter": 500})
            np.testing.assert_allclose(fit[i], r.x, atol=1e-6)


def test_final_selection_by_hand():
    """Worked example's final data: MTD 4 and OBD 4 (the authors' code gives the same)."""
    st = doseesc.TrialState.from_counts([[3, 3, 6, 12, 6]], [[0, 1, 1, 3, 3]], [3], e=[[0, 1, 2, 6, 3]],
                                        ye=[[0, 0, 0, 1, 1]])
    pt, pe, util = P1.estimates(st)
    np.testing.assert_allclose(pt[0], [.0171, .2303, .2313, .2561, .5050], atol=6e-4)
    np.testing.assert_allclose(pe[0], [.0413, .3807, .4162, .5160, .5260], atol=6e-4)
    assert P1.select(st)[0] == 3


def test_boin12_errors():
    with pytest.raises(doseesc.DesignError, match="utility"):
        doseesc.BOIN12(3, max_n=18, utility=(40, 0, 100))
    with pytest.raises(doseesc.DesignError, match="phi_t = 0.8"):
        doseesc.BOIN12(3, max_n=18, phi_t=0.8)
