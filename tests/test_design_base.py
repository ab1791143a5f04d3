"""The Design contract on the base class: declared members and tags, the registry, the cohort-size check,
the decision grid derived from the kernel."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import doseesc
from doseesc.designs.base import REGISTRY, Design, KernelContractError, register
from doseesc.errors import DesignError
from doseesc.state import TrialState

TAGS = ("uses_efficacy", "uses_last_cohort", "fixed_cohorts", "time_to_event", "steps_by_one")


def test_tags_have_documented_defaults_on_the_base():
    for tag in TAGS:
        assert getattr(Design, tag) is False, tag
    # every registered class has every tag, as a bool or (for a design wrapping another) a property
    for kind, cls in REGISTRY.items():
        for tag in TAGS:
            assert isinstance(getattr(cls, tag), (bool, property)), (kind, tag)
    obd = doseesc.designs.OBDPick(base=doseesc.CRM([0.1, 0.2, 0.3], target=0.25, max_n=12))
    assert obd.uses_efficacy is True and obd.uses_last_cohort is True  # forwarded from its CRM base
    assert doseesc.BOIN12(4, max_n=30, phi_t=0.35, phi_e=0.25).uses_efficacy is True
    assert doseesc.CRM([0.1, 0.2, 0.3], target=0.25, max_n=12).uses_last_cohort is True
    assert doseesc.ThreePlusThree(3).fixed_cohorts is True


def test_common_members_are_declared():
    # 3+3 has no target: the base declares target with None as its value
    d = doseesc.ThreePlusThree(4)
    assert d.target is None and d.n_tiers == 4 and d.cohort_size == 3 and d.max_n == 24
    assert doseesc.BOIN(0.3, 5, max_n=30).target == 0.3
    # a declaration is no dataclass default: BOIN's fields keep their order and their required-ness
    with pytest.raises(TypeError):
        doseesc.BOIN(0.3)  # n_tiers is still required


def test_register_refuses_a_duplicate_type():
    @dataclasses.dataclass(frozen=True)
    class Impostor(doseesc.ThreePlusThree):
        kind = "3+3"

    with pytest.raises(DesignError, match=r"'3\+3'.*ThreePlusThree.*Impostor"):
        register(Impostor)
    assert REGISTRY["3+3"] is doseesc.ThreePlusThree
    # registering the same class again is harmless
    assert register(doseesc.ThreePlusThree) is doseesc.ThreePlusThree


def test_register_refuses_a_class_without_the_common_members():
    @dataclasses.dataclass(frozen=True)
    class NoTiers(Design):
        kind = "no-tiers (test)"
        max_n: int = 12

        @property
        def cohort_size(self) -> int:
            return 3

    with pytest.raises(DesignError, match="n_tiers"):
        register(NoTiers)
    assert "no-tiers (test)" not in REGISTRY


@dataclasses.dataclass(frozen=True)
class _Greedy(doseesc.BOIN):
    """BOIN whose kernel asks for one patient more than its max_size (the bug step must catch)."""

    def decide(self, state):
        d = super().decide(state)
        return dataclasses.replace(d, size=np.full(state.n_trials, self.cohort_size + 1, dtype=np.int32))


def test_step_refuses_a_cohort_above_max_size():
    d = _Greedy(0.3, 3, max_n=12)
    assert d.max_size == 3
    # 3 patients, 0 DLTs at tier 1: BOIN escalates, with a cohort of 4 > max_size 3
    state = TrialState.from_counts([[3, 0, 0]], [[0, 0, 0]], [0])
    with pytest.raises(KernelContractError, match=r"_Greedy.*cohort of 4.*max_size = 3"):
        d.step(state)


def test_derived_grid_equals_boins_compiled_table():
    from doseesc.designs.base import derived_grid

    d = doseesc.BOIN(0.3, 5, max_n=30)
    grid = derived_grid(d)  # the kernel, run on one-tier states
    assert sorted(grid) == list(range(1, 31))
    for n in range(1, 31):
        # the compiled arrays the kernel indexes: codes 0 E, 1 S, 2 D; elimination flags
        expected = tuple("DU" if d.elim[n, y] else "ESD"[d.grid[n, y]] for y in range(n + 1))
        assert grid[n] == expected, n
    # hand-checked cells (BOIN 0.3: lambda_e = 0.236, lambda_d = 0.358; eliminate if P(p > 0.3) > 0.95):
    # n = 3: 0/3 escalate; 1/3 = 0.33 stay; 2/3 de-escalate; 3/3: P(p > 0.3 | Beta(4, 1)) = 1 - 0.3^4 = 0.99 > 0.95
    assert grid[3] == ("E", "S", "D", "DU")
    # n = 6: 1/6 = 0.17 <= 0.236 escalate; 2/6 = 0.33 stay; 3/6 de-escalate;
    # 4/6: P(p > 0.3 | Beta(5, 3)) = 0.971 > 0.95 eliminate
    assert grid[6][:5] == ("E", "E", "S", "D", "DU")
    assert d.decision_grid() == grid


def test_derived_grid_equals_the_published_3_plus_3_grid():
    from doseesc.designs.base import derived_grid

    published = {3: ("E", "S", "D", "D"), 6: ("E", "E", "D", "D", "D", "D", "D")}
    for deesc in (False, True):
        d = doseesc.ThreePlusThree(4, deescalation=deesc)
        assert derived_grid(d) == published
        assert d.decision_grid() == published
    assert doseesc.ThreePlusThree(4).decision_words()["D"] == "stop: MTD = tier below"
    assert doseesc.ThreePlusThree(4, deescalation=True).decision_words()["D"] == "de-escalate"


def test_designs_that_decide_on_more_than_n_and_y_have_no_grid():
    assert doseesc.CRM([0.1, 0.2, 0.3], target=0.25, max_n=12).decision_grid() is None  # model-based
    assert doseesc.BOIN12(4, max_n=30, phi_t=0.35, phi_e=0.25).decision_grid() is None  # efficacy
    assert doseesc.TITECRM([0.1, 0.2, 0.3], target=0.25, max_n=12).decision_grid() is None  # time to event
    with pytest.raises(DesignError, match="no decision table"):
        doseesc.decision_grid(doseesc.CRM([0.1, 0.2, 0.3], target=0.25, max_n=12))


def test_boins_grid_is_its_main_rule():
    # accelerated titration settles at 1/1 (stays) while every tier has <= 1 patient, and n_earlystop stops
    # instead of staying: the grid shows the rule after titration, without the early stop (BOIN 0.3, n = 1:
    # 1/1 = 1 > lambda_d = 0.358, de-escalate)
    plain = doseesc.BOIN(0.3, 5, max_n=24).decision_grid()
    assert doseesc.BOIN(0.3, 5, max_n=24, titration=True, n_earlystop=9).decision_grid() == plain
    assert plain[1] == ("E", "D")
    # TITE-BOIN: BOIN's grid once every patient's follow-up is complete
    assert doseesc.TITEBOIN(0.3, 5, max_n=24).decision_grid() == plain


def test_grid_has_no_slot_effects_and_grows_beyond_max_n():
    d = doseesc.BOIN(0.3, 4, max_n=12)
    assert d.stop_when_n_at_tier(6).cap_per_tier(9).decision_grid() == d.decision_grid()
    wide = d.decision_grid(20)
    assert sorted(wide) == list(range(1, 21)) and wide[12] == d.decision_grid()[12]
