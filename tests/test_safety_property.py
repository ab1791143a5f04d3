"""No design keeps treating at a tier its own data show to be too toxic.

For each design with a posterior elimination rule: on random trial states (counts per tier, any current
tier), whenever the design goes on, the tier it names for the next cohort has P(p_T > target | Beta(1 + y,
1 + n - y)) at most the design's own elimination cutoff, or fewer than 3 patients or 3 DLTs there (the
elimination rule of BOIN and of the BOIN12 authors' code counts DLTs from 3: docs/notes/boin12-boinet.md). The
app's BOIN12 rules are the counter-example the issue found ("1TTT": treat again at tier 1) and fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import doseesc
from doseesc import TrialState

DESIGNS = {
    "BOIN12": (doseesc.BOIN12(4, max_n=60, cap=60), 0.35, 0.95),
    "BOIN12 (c_t 0.9)": (doseesc.BOIN12(4, max_n=60, cap=60, phi_t=0.3, c_t=0.9), 0.3, 0.9),
    "TITE-BOIN12": (doseesc.TITEBOIN12(4, max_n=60, cap=60), 0.35, 0.95),
    "BOIN-ET": (doseesc.BOINET(4, max_n=60), 0.3, 0.95),
    "BOIN": (doseesc.BOIN(0.25, 4, max_n=60), 0.25, 0.95),
    "obd-pick(BOIN)": (doseesc.OBDPick(doseesc.BOIN(0.25, 4, max_n=60)), 0.25, 0.95),
}


def random_states(seed: int, n_states: int = 4000, k: int = 4) -> TrialState:
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 5, (n_states, k)) * 3
    cur = rng.integers(0, k, n_states)
    n[np.arange(n_states), cur] = np.maximum(n[np.arange(n_states), cur], 3)
    p_t = np.sort(rng.uniform(0, 1, (n_states, k)), axis=1)
    y = rng.binomial(n, p_t)
    e = rng.binomial(n, rng.uniform(0, 1, (n_states, k)))
    ye = rng.binomial(np.minimum(y, e), 0.5)
    return TrialState.from_counts(n, y, cur, e=e, ye=ye)


def over_cutoff(state, tier, target, cutoff):
    rows = np.arange(state.n_trials)
    t = np.clip(tier, 0, state.n_tiers - 1)
    n, y = state.n[rows, t], state.y[rows, t]
    return (n >= 3) & (y >= 3) & (stats.beta.sf(target, 1 + y, 1 + n - y) > cutoff)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_no_design_goes_on_at_a_tier_over_its_elimination_cutoff(name):
    design, target, cutoff = DESIGNS[name]
    st = random_states(7)
    dec = design.step(st)
    go = ~dec.stop
    assert go.sum() > 500 and dec.stop.sum() > 100           # both outcomes are exercised
    bad = go & over_cutoff(st, dec.next, target, cutoff)
    assert not bad.any(), [(st.n[i].tolist(), st.y[i].tolist(), int(st.current[i]), int(dec.next[i]))
                           for i in np.flatnonzero(bad)[:5]]


def test_the_app_rules_of_boin12_do_go_on_at_a_too_toxic_lowest_tier():
    design = doseesc.BOIN12(4, max_n=60, cap=60, variant="app")
    st = random_states(7)
    dec = design.step(st)
    assert (~dec.stop & over_cutoff(st, dec.next, 0.35, 0.95)).any()
