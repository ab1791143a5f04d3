"""doseesc.testing.check_design: every registered design passes the contract, and the contract catches
broken designs, naming the check that failed.

The toy design FirstDLT below is the worked example of docs/contributing.md (keep the two the same).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import doseesc
from doseesc import Decision, StopReason, TrialState
from doseesc.designs import REGISTRY
from doseesc.designs.base import Design, check_int
from doseesc.testing import CHECKS, check_design, default_scenario, example_design


# -- the worked example of docs/contributing.md ------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FirstDLT(Design):
    """Escalate one tier after every cohort without a DLT; stop at the first DLT.

    The MTD is the tier below the one where the first DLT occurred (no dose if it
    occurred at the lowest tier), or the highest tier when every tier was tolerated.
    """

    kind: ClassVar[str] = "first-dlt"
    steps_by_one: ClassVar[bool] = True  # it never moves up by more than one tier

    n_tiers: int
    cohort_size: int = 1
    max_n: int | None = None

    def __post_init__(self):
        check_int(self.n_tiers, "n_tiers")
        check_int(self.cohort_size, "cohort_size")
        if self.max_n is None:
            object.__setattr__(self, "max_n", self.n_tiers * self.cohort_size)
        check_int(self.max_n, "max_n")
        self._check_slots()

    def describe(self) -> str:
        return (f"escalate one tier after each DLT-free cohort of {self.cohort_size}; stop at the first DLT; "
                "MTD = the tier below it; " + self.rules_text())

    def decide(self, state: TrialState) -> Decision:
        dlt = state.y.sum(axis=1) > 0                        # (n_trials,): the first DLT has occurred
        top = state.current == state.n_tiers - 1
        stop = dlt | top
        reason = np.select([dlt & (state.current == 0), dlt, top],
                           [StopReason.LOWEST_TIER_TOXIC, StopReason.MTD_IDENTIFIED,
                            StopReason.TOP_TIER_TOLERATED], StopReason.NOT_STOPPED).astype(np.int8)
        nxt = np.where(stop, -1, state.current + 1).astype(np.int32)
        return Decision(next=nxt, stop=stop, reason=reason)

    def select(self, state: TrialState) -> np.ndarray:
        tiers = np.arange(state.n_tiers)[None, :]
        highest = np.where(state.n > 0, tiers, -1).max(axis=1)   # the highest tier treated
        dlt = state.y.sum(axis=1) > 0
        return np.where(dlt, highest - 1, highest).astype(np.int32)


@pytest.fixture
def registered(monkeypatch):
    """Register design classes for one test only (the registry is global)."""
    def add(*classes):
        for cls in classes:
            monkeypatch.setitem(REGISTRY, cls.kind, cls)
    return add


# -- every registered type ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_registered_type_passes_check_design(kind):
    try:
        design = example_design(kind)
    except LookupError as exc:
        pytest.fail(str(exc), pytrace=False)
    report = check_design(design)
    assert list(report) == list(CHECKS)
    if design.time_to_event and not design.complete_data:
        assert report["exact"].startswith("skipped") and report["paths"].startswith("skipped")
    else:  # the example must be small enough for exact enumeration
        assert report["paths"] == report["exact"] == "passed", report


def test_a_type_without_an_example_fails_saying_where_to_add_one(registered):
    @dataclasses.dataclass(frozen=True)
    class NoExample(FirstDLT):
        kind: ClassVar[str] = "no-example"

    registered(NoExample)
    with pytest.raises(LookupError, match=r"add an example for 'no-example' to .*NoExample\.example\(\).*"
                                          r"src/doseesc/testing\.py"):
        example_design("no-example")


def test_a_class_example_is_used_but_not_one_of_another_type(registered):
    @dataclasses.dataclass(frozen=True)
    class WithExample(FirstDLT):
        kind: ClassVar[str] = "with-example"

        @classmethod
        def example(cls):
            return WithExample(n_tiers=3, cohort_size=2)  # names its own class: wrong for a subclass

    @dataclasses.dataclass(frozen=True)
    class Child(WithExample):
        kind: ClassVar[str] = "child"

    @dataclasses.dataclass(frozen=True)
    class Grandchild(FirstDLT):
        kind: ClassVar[str] = "grandchild"

        @classmethod
        def example(cls):
            return cls(n_tiers=2)  # built with cls: right for every subclass

    registered(WithExample, Child, Grandchild)
    assert example_design("with-example") == WithExample(3, 2)
    assert example_design("grandchild") == Grandchild(2)
    with pytest.raises(LookupError, match="add an example for 'child'"):
        example_design("child")  # the inherited example() builds a WithExample, not a Child


def test_default_scenario_is_linear_through_the_target():
    # BOIN, target 0.25, k = 4: 0.25 x 2i / 5 for i = 1..4 = 0.1, 0.2, 0.3, 0.4
    s = default_scenario(doseesc.BOIN(0.25, 4, max_n=18))
    assert s.true_tox == pytest.approx((0.1, 0.2, 0.3, 0.4)) and s.true_eff is None and s.target == 0.25
    # 3+3 has no target: 0.25; three tiers: 0.25 x 2i / 4 = 0.125, 0.25, 0.375
    assert default_scenario(doseesc.ThreePlusThree(3)).true_tox == pytest.approx((0.125, 0.25, 0.375))
    # a design that uses response gets P(response) 0.2 .. 0.6
    # a design that uses response gets P(response) 0.2 + 0.4 (i - 1) / 3 = 0.2, 0.3333, 0.4667, 0.6
    assert default_scenario(doseesc.BOIN12(4, max_n=12)).true_eff == pytest.approx((0.2, 1 / 3, 1.4 / 3, 0.6))


# -- the worked example, by hand -------------------------------------------------------------------
@pytest.mark.parametrize("log, stop, next_tier, reason, selected", [
    ("", False, 0, StopReason.NOT_STOPPED, None),
    ("1N", False, 1, StopReason.NOT_STOPPED, None),          # no DLT at tier 1: up one tier
    ("1N 2N", False, 2, StopReason.NOT_STOPPED, None),
    ("1N 2T", True, -1, StopReason.MTD_IDENTIFIED, 0),        # first DLT at tier 2: MTD = tier 1
    ("1T", True, -1, StopReason.LOWEST_TIER_TOXIC, -1),       # first DLT at tier 1: no dose
    ("1N 2N 3N", True, -1, StopReason.TOP_TIER_TOLERATED, 2),  # all three tolerated: MTD = tier 3
])
def test_first_dlt_by_hand(log, stop, next_tier, reason, selected):
    rec = doseesc.recommend(FirstDLT(3), log)
    assert (rec.stop, rec.next_tier, rec.reason, rec.selected) == (stop, next_tier, reason, selected)


def test_first_dlt_exact_equals_closed_form():
    """Cohorts of 2, P(DLT) 0.1, 0.2, 0.4. A cohort at tier i has no DLT with q_i = (1 - p_i)^2:
    q = 0.81, 0.64, 0.36. P(no dose) = 1 - q1 = 0.19; P(tier 1) = q1 (1 - q2) = 0.81 x 0.36 = 0.2916;
    P(tier 2) = q1 q2 (1 - q3) = 0.5184 x 0.64 = 0.331776; P(tier 3) = q1 q2 q3 = 0.186624.
    Mean N = 2 (1 + q1 + q1 q2) = 2 (1 + 0.81 + 0.5184) = 4.6568."""
    oc = doseesc.exact(FirstDLT(3, cohort_size=2), doseesc.Scenario(true_tox=[0.1, 0.2, 0.4], target=0.25))
    np.testing.assert_allclose(oc.p_select, [0.19, 0.2916, 0.331776, 0.186624], atol=1e-12)
    assert oc.expected_n == pytest.approx(4.6568, abs=1e-12)


def test_contributing_doc_shows_this_first_dlt(root):
    """docs/contributing.md walks through FirstDLT: its code block must be this file's class (plus @register)."""
    doc = (root / "docs" / "contributing.md").read_text(encoding="utf-8")
    block = doc[doc.index("@register\n@dataclasses.dataclass(frozen=True)\nclass FirstDLT"):]
    block = block[len("@register\n"):block.index("```")].strip()
    here = Path(__file__).read_text(encoding="utf-8")
    ours = here[here.index("@dataclasses.dataclass(frozen=True)\nclass FirstDLT"):here.index("@pytest.fixture")]
    assert block == ours.strip()


def test_first_dlt_passes_check_design(registered):
    registered(FirstDLT)
    report = check_design(FirstDLT(4, cohort_size=2))
    assert report == {check: "passed" for check in CHECKS}


def test_check_design_skips_what_does_not_apply_to_time_to_event_designs():
    report = check_design(doseesc.TITEBOIN(0.25, 3, max_n=9), n_trials=300)
    assert report["exact"].startswith("skipped: exact enumeration does not apply")
    assert report["paths"].startswith("skipped: dose paths do not apply")
    assert report["batch invariance"] == report["reproducible"] == report["round trip"] == "passed"


def test_check_design_skips_exact_beyond_max_states():
    report = check_design(doseesc.BOIN(0.25, 4, max_n=18), n_trials=300, max_states=20)
    assert report["exact"].startswith("skipped: exact evaluation of BOIN needs more than max_states = 20 ")
    assert report["paths"] == "passed"


def test_check_design_refuses_what_is_not_a_design():
    with pytest.raises(TypeError, match="not a doseesc design"):
        check_design({"type": "3+3", "n_tiers": 3})


# -- broken designs: check_design names the check that fails ---------------------------------------
@dataclasses.dataclass(frozen=True)
class NoDescription(FirstDLT):
    kind: ClassVar[str] = "broken-describe"

    def describe(self) -> str:
        return "  "


@dataclasses.dataclass(frozen=True)
class ForgetsCohortSize(FirstDLT):
    """to_dict leaves out cohort_size, so the file gives back a design with cohorts of 1."""

    kind: ClassVar[str] = "broken-round-trip"

    def to_dict(self) -> dict:
        d = super().to_dict()
        del d["cohort_size"]
        return d


@dataclasses.dataclass(frozen=True)
class OversizedCohort(FirstDLT):
    """Asks for a cohort one larger than max_size (which is cohort_size) from the first decision."""

    kind: ClassVar[str] = "broken-oversized"

    def decide(self, state):
        d = super().decide(state)
        return dataclasses.replace(d, size=np.full(state.n_trials, self.max_size + 1, dtype=np.int32))


@dataclasses.dataclass(frozen=True)
class LateOversizedCohort(FirstDLT):
    """Asks for cohorts of 2 from tier 3 on, though max_size is 1: the Monte Carlo engine silently
    truncates them (issue 17), the first-cohort kernel probe does not see it, dose paths do."""

    kind: ClassVar[str] = "broken-late-oversized"

    def decide(self, state):
        d = super().decide(state)
        size = np.where(d.next >= 2, 2, 1).astype(np.int32)
        return dataclasses.replace(d, size=size)


@dataclasses.dataclass(frozen=True)
class AloneDiffers(FirstDLT):
    """Decides differently when asked about a single trial after the first cohort (as recommend asks)."""

    kind: ClassVar[str] = "broken-alone"

    def decide(self, state):
        d = super().decide(state)
        if state.n_trials == 1 and state.total_n[0] == self.cohort_size and not d.stop[0]:
            d.next[0] = state.current[0]  # stay instead of escalating
        return d


@dataclasses.dataclass(frozen=True)
class Unseeded(FirstDLT):
    """Stops at random from a stream nobody seeded, in large batches only (dose paths and recommend, with
    a few states at a time, would name it first otherwise)."""

    kind: ClassVar[str] = "broken-unseeded"

    def decide(self, state):
        d = super().decide(state)
        coin = np.random.default_rng().random(state.n_trials) < 0.2
        coin &= ~d.stop & (state.n_trials > 100)
        d.stop[coin], d.next[coin], d.reason[coin] = True, -1, StopReason.MTD_IDENTIFIED
        return d


@dataclasses.dataclass(frozen=True)
class BatchDependent(FirstDLT):
    """The first trial of every batch stops after its second cohort: it depends on the batch boundaries."""

    kind: ClassVar[str] = "broken-batch"

    def decide(self, state):
        d = super().decide(state)
        lead = (np.arange(state.n_trials) == 0) & (state.total_n == 2 * self.cohort_size) & ~d.stop
        d.stop[lead], d.next[lead], d.reason[lead] = True, -1, StopReason.MTD_IDENTIFIED
        return d


@dataclasses.dataclass(frozen=True)
class SelectsAboveTheTop(FirstDLT):
    """Off by one: names the tier above the highest tolerated one (n_tiers when every tier passed)."""

    kind: ClassVar[str] = "broken-select"

    def select(self, state):
        return super().select(state) + 1


@dataclasses.dataclass(frozen=True)
class ForgetfulMerge(FirstDLT):
    """Selects the tolerated tier with the most responses, but its merge_key leaves the responses out, so
    the exact engine merges states whose final choices differ (Monte Carlo, which never merges, is right)."""

    kind: ClassVar[str] = "broken-merge"
    uses_efficacy: ClassVar[bool] = True

    def merge_key(self, state):
        return np.column_stack([state.n, state.y])

    def select(self, state):
        tolerated = np.arange(state.n_tiers)[None, :] <= super().select(state)[:, None]
        score = np.where(tolerated, state.e, -1.0)
        return np.where(tolerated.any(axis=1), score.argmax(axis=1), -1).astype(np.int32)


@pytest.mark.parametrize("cls, check, detail", [
    (NoDescription, "describe", r"describe\(\) returned '  '"),
    (ForgetsCohortSize, "round trip", r"cohort_size = 2 became 1"),
    # (Design.step itself refuses a cohort above max_size since issue 17; check_design names either)
    (OversizedCohort, "kernel", r"(next cohort size 3 is not in 1..max_size = 2|cohort of 3 patients, above its "
                                r"max_size = 2)"),
    (LateOversizedCohort, "paths", r"(cohort of 2 > max_size = 1|cohort of 2 patients, above its max_size = 1)"),
    (AloneDiffers, "paths", r"log '1NN': paths says .* = \(False, 2, 'not_stopped', None\), "
                            r"recommend says \(False, 1, 'not_stopped', None\)"),
    (Unseeded, "reproducible", r"differs with a second run with the same seed in \d+ of 2000 trials"),
    (BatchDependent, "batch invariance", r"differs with batch_size = 667"),
    (SelectsAboveTheTop, "trial bounds", r"selected tier 4 not in -1..3"),
    (ForgetfulMerge, "exact", r"P\(select\) off by more than 4 SE"),
])
def test_check_design_names_the_broken_check(registered, cls, check, detail):
    registered(cls)
    # cohorts of 2 (of 1 for the late-oversized one, whose max_size must stay below its cohorts of 2)
    design = cls(4, cohort_size=1 if cls is LateOversizedCohort else 2)
    with pytest.raises(AssertionError, match=rf"^check_design\({design.label}\) \[{check}\]: .*{detail}"):
        check_design(design)
