"""Stopping rules as values, and the constraint values every design takes.

A stopping rule is a small frozen dataclass with a vectorised :meth:`StopRule.evaluate`
over a batch of trials; ``any_of``/``all_of`` (or ``|``/``&``) combine rules and report
which fired, as crmPack's stopping rules do. :meth:`Design.step` evaluates a design's
``stopping`` expression after the design's own rule and the constraints on the next tier.

Tiers are named as people number them: ``1`` is the lowest tier; or ``"lowest"``,
``"recommended"`` (the tier recommended for the next cohort, after the constraints) and
``"any"`` (any tier with patients). Posterior statements use the tier's own counts with a
Beta(1, 1) prior: P(DLT rate) | data ~ Beta(1 + y, 1 + n - y), whatever the design.

File form (``[[design]]`` key ``stopping``): a list is ``any_of``; a table is one rule,
``{rule = "n_at_tier", n = 12, tier = "recommended"}``, or a nested ``{any_of = [...]}`` /
``{all_of = [...]}``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import numpy as np

from .._lazy import lazy
from ..errors import DesignError
from ..state import Rule, StopReason, TrialState

special = lazy("scipy.special")

TIER_WORDS = ("lowest", "recommended", "any")


class Fired(NamedTuple):
    """What a stopping expression says for each trial: stop mask, first reason, rule bits (all ``(n_trials,)``)."""

    mask: np.ndarray
    reason: np.ndarray
    bits: np.ndarray


def check_tier(tier, key: str, words=TIER_WORDS):
    """A tier spec: one of ``words`` or a 1-based tier number."""
    if isinstance(tier, str) and tier in words:
        return tier
    if isinstance(tier, (int, np.integer)) and not isinstance(tier, bool) and tier >= 1:
        return int(tier)
    raise DesignError(f"{key} = {tier!r} must be {', '.join(repr(w) for w in words)} or a tier number (1 = lowest)")


def tier_columns(tier, state: TrialState, nxt: np.ndarray) -> np.ndarray:
    """Which tiers a rule looks at, shape ``(n_trials, n_tiers)``; no column where ``nxt`` is -1 for 'recommended'."""
    t, k = state.n.shape
    cols = np.arange(k)[None, :]
    if tier == "any":
        return np.ones((t, k), dtype=bool)
    if tier == "recommended":
        return cols == nxt[:, None]
    return np.broadcast_to(cols == (0 if tier == "lowest" else tier - 1), (t, k))


def tier_words(tier) -> str:
    return {"lowest": "the lowest tier", "recommended": "the recommended tier", "any": "any tier"}.get(
        tier, f"tier {tier}")


def _check_n(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DesignError(f"{key} = {value!r} must be an integer of at least 1")
    return int(value)


def _check_p(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < float(value) < 1:
        raise DesignError(f"{key} = {value!r} must be a number in (0, 1)")
    return float(value)


class StopRule:
    """Base of stopping expressions: ``a | b`` is ``any_of(a, b)``, ``a & b`` is ``all_of(a, b)``."""

    #: Rank in the fixed order (smaller first): it orders ``any_of``'s members and so the reported reason.
    rank: ClassVar[int] = 0
    #: ``"any_of"`` or ``"all_of"`` for combinations, ``""`` for single rules.
    word: ClassVar[str] = ""

    def evaluate(self, state: TrialState, nxt: np.ndarray, down: np.ndarray,
                 veto: np.ndarray | None = None) -> Fired:  # pragma: no cover - overridden
        raise NotImplementedError

    def __or__(self, other: "StopRule") -> "StopRule":
        return any_of(self, other)

    def __and__(self, other: "StopRule") -> "StopRule":
        return all_of(self, other)

    def check(self, n_tiers: int) -> None:
        """Raise :class:`DesignError` when a named tier is beyond ``n_tiers``."""
        tier = dataclasses.asdict(self).get("tier") if dataclasses.is_dataclass(self) else None
        if isinstance(tier, int) and tier > n_tiers:
            raise DesignError(f"{self.key}: tier = {tier} but the design has {n_tiers} tiers")

    def leaves(self) -> tuple:
        return (self,)


@dataclasses.dataclass(frozen=True)
class _Leaf(StopRule):
    """A single rule: ``hit`` gives the mask, the class its reason, bit and whether it is a safety stop."""

    key: ClassVar[str] = ""
    reason: ClassVar[StopReason] = StopReason.NOT_STOPPED
    flag: ClassVar[Rule] = Rule(0)
    #: Safety stops are never vetoed by ``demand_n_at_dose``.
    safety: ClassVar[bool] = False

    def hit(self, state, nxt, down) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def evaluate(self, state, nxt, down, veto=None) -> Fired:
        m = self.hit(state, nxt, down)
        if veto is not None and not self.safety:
            m = m & ~veto
        return Fired(m, np.where(m, np.int8(self.reason), np.int8(0)).astype(np.int8),
                     np.where(m, np.int16(self.flag), np.int16(0)).astype(np.int16))

    def to_dict(self) -> dict:
        return {"rule": self.key, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class StopWhenTooToxic(_Leaf):
    """Stop with no dose when P(DLT rate > threshold | Beta(1 + y, 1 + n - y)) >= confidence at ``tier``
    (with at least ``min_n`` patients there); escalation's ``stop_when_too_toxic``."""

    tier: object = "lowest"
    threshold: float = 0.35
    confidence: float = 0.9
    min_n: int = 1
    key: ClassVar[str] = "too_toxic"
    reason: ClassVar[StopReason] = StopReason.TOO_TOXIC
    flag: ClassVar[Rule] = Rule.TOO_TOXIC
    safety: ClassVar[bool] = True
    rank: ClassVar[int] = 10

    def __post_init__(self):
        object.__setattr__(self, "tier", check_tier(self.tier, "too_toxic: tier"))
        object.__setattr__(self, "threshold", _check_p(self.threshold, "too_toxic: threshold"))
        object.__setattr__(self, "confidence", _check_p(self.confidence, "too_toxic: confidence"))
        object.__setattr__(self, "min_n", _check_n(self.min_n, "too_toxic: min_n"))

    def hit(self, state, nxt, down):
        post = special.betaincc(1 + state.y, 1 + state.n - state.y, self.threshold)
        bad = (state.n >= self.min_n) & (post >= self.confidence)
        return (bad & tier_columns(self.tier, state, nxt)).any(axis=1)

    @property
    def text(self) -> str:
        return (f"stop with no dose when P(DLT rate at {tier_words(self.tier)} > {self.threshold:g}) >= "
                f"{self.confidence:g} (Beta(1, 1) prior, >= {self.min_n} patients there)")


@dataclasses.dataclass(frozen=True)
class StopWhenDeescalationImpossible(_Leaf):
    """Stop with no dose when the design's own rule says de-escalate from the lowest tier."""

    key: ClassVar[str] = "deescalation_impossible"
    reason: ClassVar[StopReason] = StopReason.DEESCALATION_IMPOSSIBLE
    flag: ClassVar[Rule] = Rule.DEESCALATION_IMPOSSIBLE
    safety: ClassVar[bool] = True
    rank: ClassVar[int] = 20

    def hit(self, state, nxt, down):
        return down & (state.current == 0)

    @property
    def text(self) -> str:
        return "stop with no dose when the rule says de-escalate at the lowest tier"


@dataclasses.dataclass(frozen=True)
class StopAtN(_Leaf):
    """Stop once ``n`` patients have been treated in all (a sample-size rule below ``max_n``)."""

    n: int
    key: ClassVar[str] = "n_in_total"
    reason: ClassVar[StopReason] = StopReason.N_IN_TOTAL
    flag: ClassVar[Rule] = Rule.N_IN_TOTAL
    rank: ClassVar[int] = 30

    def __post_init__(self):
        object.__setattr__(self, "n", _check_n(self.n, "n_in_total: n"))

    def hit(self, state, nxt, down):
        return state.total_n >= self.n

    @property
    def text(self) -> str:
        return f"stop at {self.n} patients in all"


@dataclasses.dataclass(frozen=True)
class StopWhenNAtTier(_Leaf):
    """Stop when ``tier`` (the recommended one, any, or a named one) has ``n`` patients;
    escalation's ``stop_when_n_at_dose``."""

    n: int
    tier: object = "recommended"
    key: ClassVar[str] = "n_at_tier"
    flag: ClassVar[Rule] = Rule.N_AT_TIER
    rank: ClassVar[int] = 40

    def __post_init__(self):
        object.__setattr__(self, "n", _check_n(self.n, "n_at_tier: n"))
        object.__setattr__(self, "tier", check_tier(self.tier, "n_at_tier: tier"))

    @property
    def reason(self) -> StopReason:  # type: ignore[override]
        return StopReason.N_AT_TIER if self.tier == "recommended" else StopReason.N_AT_NAMED_TIER

    def hit(self, state, nxt, down):
        return ((state.n >= self.n) & tier_columns(self.tier, state, nxt)).any(axis=1)

    @property
    def text(self) -> str:
        return f"stop when {tier_words(self.tier)} has {self.n} patients"


@dataclasses.dataclass(frozen=True)
class StopWhenToxCICovered(_Leaf):
    """Stop when the central ``level`` credible interval of the DLT rate at ``tier`` (Beta(1 + y, 1 + n - y))
    is narrower than ``width``; escalation's ``stop_when_tox_ci_covered`` with a width."""

    width: float
    tier: object = "recommended"
    level: float = 0.9
    key: ClassVar[str] = "tox_ci_covered"
    reason: ClassVar[StopReason] = StopReason.TOX_CI_COVERED
    flag: ClassVar[Rule] = Rule.TOX_CI_COVERED
    rank: ClassVar[int] = 50

    def __post_init__(self):
        object.__setattr__(self, "width", _check_p(self.width, "tox_ci_covered: width"))
        object.__setattr__(self, "tier", check_tier(self.tier, "tox_ci_covered: tier"))
        object.__setattr__(self, "level", _check_p(self.level, "tox_ci_covered: level"))

    def hit(self, state, nxt, down):
        a, b, tail = 1 + state.y, 1 + state.n - state.y, (1 - self.level) / 2
        wide = special.betainccinv(a, b, tail) - special.betaincinv(a, b, tail)
        return ((state.n > 0) & (wide < self.width) & tier_columns(self.tier, state, nxt)).any(axis=1)

    @property
    def text(self) -> str:
        return (f"stop when the {100 * self.level:g}% credible interval of the DLT rate at "
                f"{tier_words(self.tier)} is narrower than {self.width:g}")


LEAVES = {c.key: c for c in (StopWhenTooToxic, StopWhenDeescalationImpossible, StopAtN, StopWhenNAtTier,
                              StopWhenToxCICovered)}


def _sort_key(rule: StopRule):
    return (rule.rank, repr(rule))


@dataclasses.dataclass(frozen=True)
class _Combined(StopRule):
    rules: tuple
    word: ClassVar[str] = ""

    def __post_init__(self):
        flat = []
        for r in self.rules:
            if not isinstance(r, StopRule):
                raise DesignError(f"{self.word}: {r!r} is not a stopping rule")
            flat.extend(r.rules if type(r) is type(self) else (r,))
        if not flat:
            raise DesignError(f"{self.word}: at least one rule is needed")
        object.__setattr__(self, "rules", tuple(sorted(set(flat), key=_sort_key)))

    @property
    def rank(self) -> int:  # type: ignore[override]
        return self.rules[0].rank

    def check(self, n_tiers: int) -> None:
        for r in self.rules:
            r.check(n_tiers)

    def leaves(self) -> tuple:
        return tuple(leaf for r in self.rules for leaf in r.leaves())

    def to_dict(self) -> dict:
        return {self.word: [r.to_dict() for r in self.rules]}

    @property
    def text(self) -> str:
        joint = " or " if self.word == "any_of" else " and "
        inner = joint.join(r.text if isinstance(r, _Leaf) else f"({r.text})" for r in self.rules)
        return inner


@dataclasses.dataclass(frozen=True)
class AnyOf(_Combined):
    """Stops where any member stops; the reason is the first stopping member's in the fixed order."""

    word: ClassVar[str] = "any_of"

    def evaluate(self, state, nxt, down, veto=None) -> Fired:
        parts = [r.evaluate(state, nxt, down, veto) for r in self.rules]
        reason = parts[-1].reason
        for p in parts[-2::-1]:
            reason = np.where(p.mask, p.reason, reason).astype(np.int8)
        return Fired(np.logical_or.reduce([p.mask for p in parts]), reason,
                     np.bitwise_or.reduce([p.bits for p in parts]).astype(np.int16))


@dataclasses.dataclass(frozen=True)
class AllOf(_Combined):
    """Stops where every member stops; the reason is the first member's in the fixed order."""

    word: ClassVar[str] = "all_of"

    def evaluate(self, state, nxt, down, veto=None) -> Fired:
        parts = [r.evaluate(state, nxt, down, veto) for r in self.rules]
        m = np.logical_and.reduce([p.mask for p in parts])
        bits = np.bitwise_or.reduce([p.bits for p in parts])
        return Fired(m, np.where(m, parts[0].reason, 0).astype(np.int8), np.where(m, bits, 0).astype(np.int16))


def any_of(*rules: StopRule) -> StopRule:
    """Stop when any of ``rules`` says stop (crmPack's ``|``)."""
    return rules[0] if len(rules) == 1 and isinstance(rules[0], StopRule) else AnyOf(tuple(rules))


def all_of(*rules: StopRule) -> StopRule:
    """Stop when all of ``rules`` say stop (crmPack's ``&``)."""
    return rules[0] if len(rules) == 1 and isinstance(rules[0], StopRule) else AllOf(tuple(rules))


def rule_from_dict(spec, key: str = "stopping") -> StopRule:
    """A stopping expression from its file form (a list is ``any_of``); errors name the key and the value."""
    if isinstance(spec, StopRule):
        return spec
    if isinstance(spec, list):
        return any_of(*[rule_from_dict(s, f"{key}[{i}]") for i, s in enumerate(spec)])
    if not isinstance(spec, dict):
        raise DesignError(f"{key} = {spec!r} must be a table such as {{rule = \"n_at_tier\", n = 12}} or a list")
    for word, combine in (("any_of", any_of), ("all_of", all_of)):
        if word in spec:
            if set(spec) != {word} or not isinstance(spec[word], list) or not spec[word]:
                raise DesignError(f"{key} = {spec!r}: {word} takes a non-empty list and nothing else")
            return combine(*[rule_from_dict(s, f"{key}.{word}[{i}]") for i, s in enumerate(spec[word])])
    args = dict(spec)
    name = args.pop("rule", None)
    if name not in LEAVES:
        raise DesignError(f"{key}: rule = {name!r} is not a stopping rule (known: {', '.join(LEAVES)}; "
                          "or any_of / all_of)")
    cls = LEAVES[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    for a in args:
        if a not in fields:
            raise DesignError(f"{key}: unknown option {a!r} for rule {name!r} (options: {', '.join(fields) or 'none'})")
    try:
        return cls(**args)
    except DesignError as exc:
        raise DesignError(f"{key}: {exc}") from None
    except TypeError:
        raise DesignError(f"{key}: rule {name!r} needs {', '.join(fields)}; got {spec!r}") from None


# -- constraint values -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DemandNAtTier:
    """Veto the sample-size and precision stops until ``tier`` (``"recommended"``, ``"any"`` or a tier
    number) has ``n`` patients (escalation's ``demand_n_at_dose``).

    Vetoed: ``stop_n_at_tier`` and the ``stopping`` rules ``n_in_total``, ``n_at_tier`` and
    ``tox_ci_covered``. Never vetoed: the design's own stops, safety stops (``safety_cutoff``,
    ``too_toxic``, ``deescalation_impossible``), the tier cap and ``max_n``.
    """

    n: int
    tier: object = "recommended"

    def __post_init__(self):
        object.__setattr__(self, "n", _check_n(self.n, "demand: n"))
        object.__setattr__(self, "tier", check_tier(self.tier, "demand: tier", ("recommended", "any")))

    def veto(self, state: TrialState, nxt: np.ndarray) -> np.ndarray:
        """True where stopping for sample size is not yet allowed, shape ``(n_trials,)``."""
        return ~((state.n >= self.n) & tier_columns(self.tier, state, nxt)).any(axis=1)

    @property
    def text(self) -> str:
        return (f"no stop for sample size or precision until {tier_words(self.tier)} has {self.n} patients "
                "(safety stops and the maximum sample size still apply)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RescueTier:
    """Before stopping with no dose, treat cohorts at ``tier`` until it has ``n`` patients (escalation's
    ``try_rescue_dose``); meant for a tier below the first one treated."""

    tier: int
    n: int = 3

    def __post_init__(self):
        if isinstance(self.tier, bool) or not isinstance(self.tier, (int, np.integer)) or self.tier < 1:
            raise DesignError(f"rescue: tier = {self.tier!r} must be a tier number (1 = lowest)")
        object.__setattr__(self, "tier", int(self.tier))
        object.__setattr__(self, "n", _check_n(self.n, "rescue: n"))

    @property
    def text(self) -> str:
        return f"before stopping with no dose, treat tier {self.tier} until it has {self.n} patients"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def value_from_dict(cls, spec, key: str):
    """A constraint value (``DemandNAtTier``, ``RescueTier``) from a table; errors name the key."""
    if spec is None or isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise DesignError(f"{key} = {spec!r} must be a table such as {{n = 9, tier = \"recommended\"}}"
                          if cls is DemandNAtTier else f"{key} = {spec!r} must be a table such as {{tier = 1, n = 3}}")
    names = [f.name for f in dataclasses.fields(cls)]
    for a in spec:
        if a not in names:
            raise DesignError(f"{key}: unknown option {a!r} (options: {', '.join(names)})")
    try:
        return cls(**spec)
    except TypeError:
        raise DesignError(f"{key} = {spec!r} needs {names[0]}") from None
