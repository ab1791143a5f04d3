"""BOIN12's default (the authors' rules) against the authors' own simulation code.

tests/data/boin12_authors_oc.csv holds operating characteristics from R. Lin's ``get.oc.obd`` (boin12.R,
zichen-liu/ModelAssistedPhase12 @ dd8edf6), run unchanged with fixed truths, 20,000 trials each
(tools/reference/boin12_authors.R; docs/notes/boin12-boinet.md section 4). doseesc runs the same settings
(cap = N, as the code has no per-tier cap; independent outcomes). Each selection probability, P(no dose) and
mean N must agree within 4 combined standard errors, plus 0.002 for the two stated differences (ties to the
higher tier instead of at random; no OBD instead of an eliminated tier 1, at most 0.1% of trials).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import doseesc

DATA = pd.read_csv(Path(__file__).parent / "data" / "boin12_authors_oc.csv", comment="#")
N_TRIALS = 4000


@pytest.mark.parametrize("scenario", ["A", "C", "E", "F", "G"])
def test_selection_and_no_dose_agree_with_the_authors_code(scenario):
    rows = DATA[DATA.scenario == scenario]
    first = rows.iloc[0]
    p_tox = [float(v) for v in first.p_tox.split()]
    p_eff = [float(v) for v in first.p_eff.split()]
    k, n_max = int(first.n_tiers), int(first.N)
    design = doseesc.BOIN12(k, phi_t=float(first.phi_t), phi_e=float(first.phi_e), max_n=n_max, cap=n_max)
    mc = doseesc.simulate(design, doseesc.Scenario(true_tox=p_tox, true_eff=p_eff), N_TRIALS, rng=16)
    ref_n = int(first.n_trials)
    sel = rows[rows.quantity == "select"].sort_values("tier")["value"].to_numpy()
    want = np.concatenate([[rows[rows.quantity == "no_dose"]["value"].iloc[0]], sel])
    got = mc.p_select                     # No dose, then the tiers
    p = np.clip(want, 1e-3, 1 - 1e-3)
    tol = 4 * np.sqrt(p * (1 - p) * (1 / N_TRIALS + 1 / ref_n)) + 0.002
    assert np.all(np.abs(got - want) <= tol), (got.round(4), want.round(4))
    mean_n = rows[rows.quantity == "mean_n"]["value"].iloc[0]
    assert abs(mc.expected_n - mean_n) <= 4 * mc.expected_n_mcse * np.sqrt(1 + N_TRIALS / ref_n) + 0.05
