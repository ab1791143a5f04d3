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
