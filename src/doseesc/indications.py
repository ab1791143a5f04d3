"""Indications (or strata) in one protocol: who is enrolled, what is true in each, and how the trial is conducted.

A protocol may enrol several diseases (ECAR01: four autoimmune diseases) or age strata (GD2/B7H3: adults and
children). This module is data and parsing only (no engine):

- :class:`Indication`: a name, a share of accrual (or its own accrual rate), optional eligibility text and
  age range; :class:`Indications`: the declared set, whose shares sum to 1.
- :class:`IndicationScenario`: the truth of one scenario for every indication (P(DLT), and optionally
  P(response), per tier per indication; a single list means "the same for all"), with the pooled truth a
  randomly drawn patient has (the share-weighted mixture).
- :class:`Conduct`: the named conduct policy (:data:`POLICIES`): ``pooled``, ``parallel`` or ``staggered``,
  with per-indication design, maximum N and start tier.
- :func:`by_indication_frame` and :func:`indication_metrics_frame`: the per-indication tables, from one
  result per indication.

Parsing from a scenario file: :func:`indications_from_toml` (the ``[[indication]]`` tables),
:func:`scenario_from_toml` (a ``[[scenario]]`` with an ``indication`` sub-table) and
:func:`conduct_from_toml` (a ``conduct`` key of a ``[[design]]``). Every error names the key and the value.
The engine that runs them is :mod:`doseesc.engines.strata`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ._lazy import lazy
from .designs.base import Design
from .errors import DesignError, ScenarioError
from .rng import Stream
from .scenario import Scenario

pd = lazy("pandas")

#: Stream number of each patient's indication (pooled conduct draws it from the trial's seed):
#: :attr:`doseesc.rng.Stream.INDICATION`, a fixed number, so no other quantity's stream changes.
INDICATION_STREAM = int(Stream.INDICATION)

#: Spawn-key element of the seed streams of indications after the first in parallel and staggered conduct:
#: indication ``j >= 1`` runs on ``SeedSequence(entropy, spawn_key=root_key + (INDICATION_KEY, j))``; the first
#: indication runs on the trial's own seed (so one indication is a plain run).
INDICATION_KEY = 1019

#: The conduct policies, each documented in docs/notes/indications.md.
POLICIES = {
    "pooled": "one escalation: patients of every indication in the same cohorts, each patient's indication drawn "
              "by its share of accrual; decisions on the pooled data; results per indication and pooled",
    "parallel": "an independent escalation per indication (each with its own design, maximum N and start tier) "
                "on the same dose ladder, each on its own seed stream",
    "staggered": "strata in turn: the first stratum escalates alone; the second opens once the first has cleared "
                 "a tier and starts `offset` tiers below the first stratum's current tier (its final tier if it "
                 "has stopped), never above the highest tier the first stratum has cleared at that time",
}

#: Sum of the shares of accrual must be 1 within this tolerance.
SHARE_TOLERANCE = 1e-6

_INDICATION_KEYS = {"name", "share", "accrual_per_month", "eligibility", "age"}
_TRUTH_KEYS = {"true_tox", "true_eff", "association"}
_CONDUCT_KEYS = {"policy", "first", "offset", "opens_after", "indication"}
_OVERRIDE_KEYS = {"design", "max_n", "start"}


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ScenarioError(f"{key} = {value!r} is not a finite number")
    return float(value)


@dataclass(frozen=True)
class Indication:
    """One indication (disease) or stratum (e.g. an age group) of a protocol.

    Parameters
    ----------
    name
        Short name used in tables and in the scenarios' ``indication`` sub-tables.
    share
        Share of accrual in (0, 1] (the shares of a protocol sum to 1); or
    accrual_per_month
        the indication's own accrual rate (patients per month); shares are then the rates over their sum.
    eligibility
        Free text (e.g. "adults with refractory SLE").
    age
        Optional eligible age range ``(low, high)`` in years, for reports.
    """

    name: str
    share: float | None = None
    accrual_per_month: float | None = None
    eligibility: str = ""
    age: tuple[float, float] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(f"name = {self.name!r} must be a non-empty text")
        at = f"[[indication]] {self.name!r}"
        if (self.share is None) == (self.accrual_per_month is None):
            raise ScenarioError(f"{at}: give exactly one of share (of accrual) and accrual_per_month "
                                f"(got share = {self.share!r}, accrual_per_month = {self.accrual_per_month!r})")
        if self.share is not None:
            s = _number(self.share, f"{at}: share")
            if not 0 < s <= 1:
                raise ScenarioError(f"{at}: share = {self.share!r} must lie in (0, 1]")
            object.__setattr__(self, "share", s)
        if self.accrual_per_month is not None:
            r = _number(self.accrual_per_month, f"{at}: accrual_per_month")
            if r <= 0:
                raise ScenarioError(f"{at}: accrual_per_month = {self.accrual_per_month!r} must be positive")
            object.__setattr__(self, "accrual_per_month", r)
        if not isinstance(self.eligibility, str):
            raise ScenarioError(f"{at}: eligibility = {self.eligibility!r} must be text")
        if self.age is not None:
            a = self.age
            if isinstance(a, (str, bytes)) or not hasattr(a, "__len__") or len(a) != 2:
                raise ScenarioError(f"{at}: age = {a!r} must be [low, high] in years")
            lo, hi = (_number(v, f"{at}: age") for v in a)
            if not 0 <= lo < hi:
                raise ScenarioError(f"{at}: age = {list(a)!r} must satisfy 0 <= low < high")
            object.__setattr__(self, "age", (lo, hi))

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        if self.share is not None:
            out["share"] = self.share
        if self.accrual_per_month is not None:
            out["accrual_per_month"] = self.accrual_per_month
        if self.eligibility:
            out["eligibility"] = self.eligibility
        if self.age is not None:
            out["age"] = list(self.age)
        return out

    def text(self) -> str:
        parts = [self.name]
        if self.age is not None:
            parts.append(f"ages {self.age[0]:g}-{self.age[1]:g}")
        if self.eligibility:
            parts.append(self.eligibility)
        return ", ".join(parts)


@dataclass(frozen=True)
class Indications:
    """The indications of a protocol, in declared order. Either every entry gives a ``share`` (summing to 1)
    or every entry gives ``accrual_per_month`` (shares are the rates over their sum)."""

    entries: tuple[Indication, ...]

    def __post_init__(self):
        entries = tuple(self.entries)
        if not entries:
            raise ScenarioError("[[indication]]: at least one indication is needed")
        for e in entries:
            if not isinstance(e, Indication):
                raise ScenarioError(f"[[indication]]: {e!r} is not an Indication")
        names = [e.name for e in entries]
        for n in names:
            if names.count(n) > 1:
                raise ScenarioError(f"[[indication]]: name {n!r} is used twice")
        by_share = [e.share is not None for e in entries]
        if any(by_share) and not all(by_share):
            bad = entries[by_share.index(False)]
            raise ScenarioError(f"[[indication]] {bad.name!r}: give share like the other indications, or "
                                "accrual_per_month for every indication (not a mix)")
        if all(by_share):
            total = sum(e.share for e in entries)
            if abs(total - 1) > SHARE_TOLERANCE:
                listed = " + ".join(f"{e.share:g} ({e.name})" for e in entries)
                raise ScenarioError(f"[[indication]] share: {listed} = {total:g}; the shares of accrual must sum "
                                    "to 1")
        object.__setattr__(self, "entries", entries)

    @classmethod
    def one(cls, name: str = "all") -> "Indications":
        return cls((Indication(name, share=1.0),))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    @property
    def n_indications(self) -> int:
        return len(self.entries)

    @property
    def shares(self) -> np.ndarray:
        """Share of accrual of each indication, shape ``(n_indications,)``, summing to 1."""
        if self.entries[0].share is not None:
            s = np.array([e.share for e in self.entries], dtype=float)
        else:
            s = np.array([e.accrual_per_month for e in self.entries], dtype=float)
        return s / s.sum()

    def index(self, name: str, key: str = "indication") -> int:
        if name not in self.names:
            raise ScenarioError(f"{key} {name!r} is not declared in [[indication]] "
                                f"(declared: {', '.join(self.names)})")
        return self.names.index(name)

    def draw(self, u: np.ndarray) -> np.ndarray:
        """Indication of each patient from latent uniforms ``u`` (any shape): indication ``j`` where
        ``u`` falls in the ``j``-th interval of the cumulative shares (int8 array, same shape)."""
        cum = np.cumsum(self.shares)[:-1]
        return np.searchsorted(cum, u, side="right").astype(np.int8)

    def to_dict(self) -> list[dict]:
        return [e.to_dict() for e in self.entries]


def indications_from_toml(data: dict, where: str) -> Indications | None:
    """The ``[[indication]]`` tables of a parsed scenario file (``data``, the whole file), or None where the
    file has none. Errors name the file ``where``, the table and the key."""
    if "indication" not in data:
        return None
    entries = data["indication"]
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{where}: 'indication' must be an array of tables (write [[indication]])")
    out = []
    for i, entry in enumerate(entries):
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
        at = f"{where}: [[indication]] {label!r}"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{at}: must be a table")
        for key in entry:
            if key not in _INDICATION_KEYS:
                raise ScenarioError(f"{at}: unknown key {key!r} (known: {', '.join(sorted(_INDICATION_KEYS))})")
        if "name" not in entry:
            raise ScenarioError(f"{at}: missing key 'name'")
        try:
            out.append(Indication(**entry))
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
    try:
        return Indications(tuple(out))
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


# -- truths per indication -----------------------------------------------------------------------------------
def _identical(a: Scenario, b: Scenario) -> bool:
    return (a.true_tox == b.true_tox and a.true_eff == b.true_eff and a.association == b.association
            and a.true_joint == b.true_joint)


@dataclass(frozen=True, eq=False)
class IndicationScenario:
    """One scenario's truth in every indication.

    ``truths[j]`` is the :class:`~doseesc.scenario.Scenario` of indication ``j`` (named
    ``"<scenario> / <indication>"``); ``pooled`` is the truth of a patient whose indication is drawn by share:
    the share-weighted mixture of P(DLT), of P(response) and of the joint outcome probabilities (the scenario
    itself where every indication has the same truth, so that pooled results stay those of the plain run).
    """

    name: str
    indications: Indications
    truths: tuple[Scenario, ...]
    pooled: Scenario

    @classmethod
    def same(cls, scenario: Scenario, indications: Indications) -> "IndicationScenario":
        """Every indication with ``scenario``'s truth."""
        truths = tuple(dataclasses.replace(scenario, name=f"{scenario.name} / {n}") for n in indications.names)
        return cls(scenario.name, indications, truths, scenario)

    @classmethod
    def build(cls, name: str, indications: Indications, truths, *, description: str = "",
              target: float | None = None) -> "IndicationScenario":
        """From one :class:`Scenario` per indication (in declared order); the pooled truth is their mixture."""
        truths = tuple(truths)
        if len(truths) != indications.n_indications:
            raise ScenarioError(f"scenario {name!r}: {len(truths)} truths for {indications.n_indications} "
                                "indications")
        k = truths[0].n_tiers
        for n, t in zip(indications.names, truths):
            if t.n_tiers != k:
                raise ScenarioError(f"scenario {name!r}: indication {n!r} has true_tox for {t.n_tiers} tiers, "
                                    f"the first indication for {k}")
            if (t.true_eff is None) != (truths[0].true_eff is None):
                raise ScenarioError(f"scenario {name!r}: indication {n!r} "
                                    f"{'lacks' if t.true_eff is None else 'has'} true_eff; give response "
                                    "probabilities for every indication or for none")
        if all(_identical(truths[0], t) for t in truths[1:]):
            pooled = dataclasses.replace(truths[0], name=name, description=description or truths[0].description,
                                         target=target if target is not None else truths[0].target)
        else:
            s = indications.shares
            tox = s @ np.array([t.true_tox for t in truths])
            eff = joint = None
            if truths[0].true_eff is not None:
                eff = s @ np.array([t.true_eff for t in truths])
                joint = np.einsum("j,jkc->kc", s, np.array([t.joint() for t in truths]))
                joint = tuple(tuple(float(v) for v in row) for row in joint)
            pooled = Scenario(true_tox=tuple(float(v) for v in np.clip(tox, 0, 1)),
                              true_eff=None if eff is None else tuple(float(v) for v in np.clip(eff, 0, 1)),
                              name=name, description=description, target=target, true_joint=joint)
        return cls(name, indications, truths, pooled)

    @property
    def identical(self) -> bool:
        """True where every indication has the same truth."""
        return all(_identical(self.truths[0], t) for t in self.truths[1:])

    @property
    def n_tiers(self) -> int:
        return self.pooled.n_tiers

    def truth(self, indication: str) -> Scenario:
        return self.truths[self.indications.index(indication)]

    def tox_matrix(self) -> np.ndarray:
        """True P(DLT), shape ``(n_indications, n_tiers)``."""
        return np.array([t.true_tox for t in self.truths], dtype=float)

    def to_dict(self) -> dict:
        out = self.pooled.to_dict()
        if not self.identical:
            out["indication"] = {n: {k: v for k, v in t.to_dict().items() if k in _TRUTH_KEYS}
                                 for n, t in zip(self.indications.names, self.truths)}
        return out


def scenario_from_toml(entry: dict, indications: Indications | None, at: str,
                       target: float | None = None) -> IndicationScenario | None:
    """The per-indication truth of a ``[[scenario]]`` table ``entry`` (``at`` names the file and the table).

    The table's ``true_tox``, ``true_eff`` and ``association`` are the truth of every indication; its
    ``indication`` sub-table gives an indication its own (``[scenario.indication.SLE] true_tox = [...]``), each
    key it leaves out taken from the table. Without ``[[indication]]`` tables in the file the sub-table is an
    error; a table without ``true_tox`` must give it for every indication. Returns None where the file
    declares no indications (the plain scenario applies)."""
    own = entry.get("indication")
    if indications is None:
        if own is not None:
            raise ScenarioError(f"{at}: indication = {own!r}, but the file declares no [[indication]] tables")
        return None
    if own is None:
        own = {}
    if not isinstance(own, dict):
        raise ScenarioError(f"{at}: indication = {own!r} must be a table of truths by indication name "
                            "([scenario.indication.NAME] true_tox = [...])")
    for name, sub in own.items():
        if name not in indications.names:
            raise ScenarioError(f"{at}: indication {name!r} is not declared in [[indication]] "
                                f"(declared: {', '.join(indications.names)})")
        if not isinstance(sub, dict):
            raise ScenarioError(f"{at}: indication.{name} = {sub!r} must be a table (true_tox, true_eff, "
                                "association)")
        for key in sub:
            if key not in _TRUTH_KEYS:
                raise ScenarioError(f"{at}: indication.{name}: unknown key {key!r} "
                                    f"(known: {', '.join(sorted(_TRUTH_KEYS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{at}: missing key 'name'")
    tgt = entry.get("target", target)
    common = {k: entry[k] for k in _TRUTH_KEYS if k in entry}
    truths = []
    for ind in indications.names:
        values = {**common, **own.get(ind, {})}
        if "true_tox" not in values:
            raise ScenarioError(f"{at}: no true_tox for indication {ind!r}: give true_tox in the table (the same "
                                f"for all) or in [scenario.indication.{ind}]")
        try:
            truths.append(Scenario(name=f"{name} / {ind}", target=tgt, **values))
        except ScenarioError as exc:
            where = f"indication.{ind}." if ind in own else ""
            raise ScenarioError(f"{at}: {where}{exc}") from None
    try:
        return IndicationScenario.build(name, indications, truths, description=entry.get("description", ""),
                                        target=tgt)
    except ScenarioError as exc:
        raise ScenarioError(f"{at}: {exc}") from None


def split_scenario_entry(entry: dict) -> dict:
    """The ``[[scenario]]`` table without its ``indication`` sub-table (what :meth:`Scenario.from_dict` reads)."""
    return {k: v for k, v in entry.items() if k != "indication"}


# -- conduct -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndicationConduct:
    """What one indication changes of the protocol's design in parallel or staggered conduct: its own design,
    maximum N or start tier (0-based); None keeps the design's."""

    name: str
    design: Design | None = None
    max_n: int | None = None
    start: int | None = None


@dataclass(frozen=True)
class Conduct:
    """How several indications are conducted: a named policy (:data:`POLICIES`).

    Parameters
    ----------
    policy
        ``"pooled"``, ``"parallel"`` or ``"staggered"``.
    overrides
        Per-indication :class:`IndicationConduct` (parallel and staggered).
    first
        Staggered: the stratum that escalates first (default the first declared indication).
    offset
        Staggered: tiers below the first stratum's current tier at which the second stratum starts (>= 0).
    opens_after
        Staggered: the second stratum opens once the first has cleared this tier (0-based; 1-based in files).
    """

    policy: str = "pooled"
    overrides: tuple[IndicationConduct, ...] = ()
    first: str | None = None
    offset: int = 1
    #: Staggered: the first stratum's tier (0-based) whose clearance opens the second stratum (default the lowest).
    opens_after: int = 0

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise DesignError(f"conduct policy = {self.policy!r} must be one of {', '.join(POLICIES)}")
        o = self.offset
        if isinstance(o, bool) or not isinstance(o, (int, np.integer)) or o < 0:
            raise DesignError(f"conduct offset = {o!r} must be a whole number of tiers >= 0")
        w = self.opens_after
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise DesignError(f"conduct opens_after = {w!r} must be a tier (0-based here, 1-based in files)")
        if self.policy == "pooled" and self.overrides:
            raise DesignError("conduct policy = 'pooled' runs one escalation: per-indication design, max_n and "
                              f"start (given for {self.overrides[0].name!r}) apply to 'parallel' or 'staggered'")
        object.__setattr__(self, "overrides", tuple(self.overrides))

    def check(self, indications: Indications, n_tiers: int, where: str = "conduct") -> None:
        """Every named indication declared; start tiers and the offset within the ladder."""
        for o in self.overrides:
            indications.index(o.name, f"{where}: indication")
            if o.start is not None and not 0 <= o.start < n_tiers:
                raise DesignError(f"{where}: indication.{o.name}.start = {o.start + 1} (1-based) is not a tier "
                                  f"of the ladder (1..{n_tiers})")
        if self.policy == "staggered":
            if indications.n_indications != 2:
                raise DesignError(f"{where}: policy 'staggered' needs exactly two strata; the file declares "
                                  f"{indications.n_indications} ({', '.join(indications.names)})")
            if self.first is not None:
                indications.index(self.first, f"{where}: first")
            if self.opens_after >= n_tiers:
                raise DesignError(f"{where}: opens_after = {self.opens_after + 1} (1-based) is not a tier of the "
                                  f"ladder (1..{n_tiers})")
            if self.offset >= n_tiers:
                raise DesignError(f"{where}: offset = {self.offset} puts the second stratum below the lowest tier "
                                  f"of a {n_tiers}-tier ladder (at most {n_tiers - 1})")

    def override(self, name: str) -> IndicationConduct:
        for o in self.overrides:
            if o.name == name:
                return o
        return IndicationConduct(name)

    def design_for(self, name: str, design: Design) -> tuple[Design, int]:
        """The design and start tier (0-based) of indication ``name`` given the protocol's ``design``."""
        o = self.override(name)
        d = o.design if o.design is not None else design
        if o.max_n is not None and o.max_n != d.max_n:
            try:
                d = dataclasses.replace(d, max_n=o.max_n)
            except TypeError:
                raise DesignError(f"indication {name!r}: max_n = {o.max_n} cannot be set on {d.label}") from None
        return d, (d.start if o.start is None else int(o.start))

    def order(self, indications: Indications) -> tuple[int, int]:
        """Staggered: (first stratum, second stratum) as indices of ``indications``."""
        a = 0 if self.first is None else indications.index(self.first)
        return a, 1 - a

    def text(self) -> str:
        if self.policy == "staggered":
            return (f"staggered strata: the second opens once the first has cleared tier {self.opens_after + 1}, "
                    f"{self.offset} tier(s) below the first's current tier")
        return self.policy

    def to_dict(self) -> dict:
        out: dict = {"policy": self.policy}
        if self.policy == "staggered":
            out["offset"] = self.offset
            out["opens_after"] = self.opens_after + 1
            if self.first is not None:
                out["first"] = self.first
        if self.overrides:
            out["indication"] = {o.name: {k: v for k, v in (("design", None if o.design is None else o.design.label),
                                                            ("max_n", o.max_n),
                                                            ("start", None if o.start is None else o.start + 1))
                                          if v is not None} for o in self.overrides}
        return out


def conduct_from_toml(value, indications: Indications | None, designs: dict, n_tiers: int, at: str) -> Conduct:
    """The ``conduct`` of a ``[[design]]`` table: a policy name (``conduct = "parallel"``) or a table
    (``conduct = { policy = "staggered", first = "adults", offset = 1 }``, with
    ``[design.conduct.indication.NAME] design = "<another [[design]] name>", max_n = 12, start = 2`` where
    ``start`` is 1-based like every tier a person writes). ``designs`` are the file's designs by name."""
    if indications is None:
        raise DesignError(f"{at}: conduct = {value!r}, but the file declares no [[indication]] tables")
    table = {"policy": value} if isinstance(value, str) else value
    if not isinstance(table, dict):
        raise DesignError(f"{at}: conduct = {value!r} must be a policy name ({', '.join(POLICIES)}) or a table")
    for key in table:
        if key not in _CONDUCT_KEYS:
            raise DesignError(f"{at}: conduct: unknown key {key!r} (known: {', '.join(sorted(_CONDUCT_KEYS))})")
    overrides = []
    subs = table.get("indication", {})
    if not isinstance(subs, dict):
        raise DesignError(f"{at}: conduct.indication = {subs!r} must be a table by indication name")
    for name, sub in subs.items():
        if name not in indications.names:
            raise DesignError(f"{at}: conduct.indication {name!r} is not declared in [[indication]] "
                              f"(declared: {', '.join(indications.names)})")
        if not isinstance(sub, dict):
            raise DesignError(f"{at}: conduct.indication.{name} = {sub!r} must be a table")
        for key in sub:
            if key not in _OVERRIDE_KEYS:
                raise DesignError(f"{at}: conduct.indication.{name}: unknown key {key!r} "
                                  f"(known: {', '.join(sorted(_OVERRIDE_KEYS))})")
        d = None
        if "design" in sub:
            if sub["design"] not in designs:
                raise DesignError(f"{at}: conduct.indication.{name}.design = {sub['design']!r} is not a [[design]] "
                                  f"of the file (designs: {', '.join(designs)})")
            d = designs[sub["design"]]
        max_n = sub.get("max_n")
        if max_n is not None and (isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1):
            raise DesignError(f"{at}: conduct.indication.{name}.max_n = {max_n!r} must be a positive integer")
        start = sub.get("start")
        if start is not None and (isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= n_tiers):
            raise DesignError(f"{at}: conduct.indication.{name}.start = {start!r} must be a tier 1..{n_tiers}")
        overrides.append(IndicationConduct(name, d, max_n, None if start is None else start - 1))
    opens = table.get("opens_after", 1)
    if isinstance(opens, bool) or not isinstance(opens, int) or not 1 <= opens <= n_tiers:
        raise DesignError(f"{at}: conduct.opens_after = {opens!r} must be a tier 1..{n_tiers}")
    try:
        c = Conduct(policy=table.get("policy", "pooled"), overrides=tuple(overrides), first=table.get("first"),
                    offset=table.get("offset", 1), opens_after=opens - 1)
        c.check(indications, n_tiers, where="conduct")
    except DesignError as exc:
        raise DesignError(f"{at}: {exc}") from None
    except ScenarioError as exc:
        raise DesignError(f"{at}: {exc}") from None
    return c


# -- tables by indication ------------------------------------------------------------------------------------
def by_indication_frame(results: dict, labels, pooled=None) -> pd.DataFrame:
    """One row per indication and tier (``No dose`` first): true P(DLT) (and P(response)), P(select) with its
    MCSE, mean patients and DLTs (and responses) per trial, and flags for the indication's true MTD and OBD.

    ``results`` maps each indication name to an :class:`~doseesc.results.OperatingCharacteristics` whose
    scenario is that indication's truth and whose counts are that indication's patients (its selections are
    the pooled ones in pooled conduct); ``pooled`` (optional) adds rows ``indication == "pooled"``."""
    rows = []
    items = list(results.items()) + ([("pooled", pooled)] if pooled is not None else [])
    for name, oc in items:
        k = oc.ladder.n_tiers
        ps, pse = oc.p_select, oc.p_select_mcse
        mean_n = oc._mean(oc.n)[0]
        mean_y = oc._mean(oc.y)[0]
        mean_e = None if oc.e is None else oc._mean(np.asarray(oc.e, float))[0]
        mtd, obd = oc.true_mtd, oc.true_obd
        for t in range(-1, k):
            row = {"indication": name, "tier": "No dose" if t < 0 else labels[t],
                   "true_tox": math.nan if t < 0 else oc.scenario.true_tox[t]}
            if oc.scenario.true_eff is not None:
                row["true_eff"] = math.nan if t < 0 else oc.scenario.true_eff[t]
            row.update({"p_select": float(ps[t + 1]), "p_select_mcse": float(pse[t + 1]),
                        "mean_n": 0.0 if t < 0 else float(mean_n[t]), "mean_dlt": 0.0 if t < 0 else float(mean_y[t])})
            if mean_e is not None:
                row["mean_eff"] = 0.0 if t < 0 else float(mean_e[t])
            row["true_mtd"] = mtd is not None and mtd == t
            if obd is not None:
                row["true_obd"] = obd == t
            rows.append(row)
    return pd.DataFrame(rows)


def indication_metrics_frame(results: dict, labels, shares=None, pooled=None) -> pd.DataFrame:
    """One row per indication: its share, true MTD and P(select it), P(the selected tier is above its true MTD),
    true OBD and P(select it) where response is modelled, mean patients and DLTs, each with its MCSE."""
    rows = []
    items = list(results.items()) + ([("pooled", pooled)] if pooled is not None else [])
    for i, (name, oc) in enumerate(items):
        label = (lambda t: "No dose" if t < 0 else labels[t])
        mtd, obd = oc.true_mtd, oc.true_obd
        row = {"indication": name,
               "share": (1.0 if name == "pooled" and i == len(results) else
                         math.nan if shares is None or i >= len(shares) else float(shares[i])),
               "true_mtd": None if mtd is None else label(mtd)}
        for key in ("p_correct", "p_above_mtd", "p_no_dose", "expected_n", "mean_dlt"):
            m, se = oc.metric(key)
            row[key], row[f"{key}_mcse"] = m, se
        row["true_obd"] = None if obd is None else label(obd)
        if obd is not None:
            m, se = oc.metric("p_select_obd")
            row["p_select_obd"], row["p_select_obd_mcse"] = m, se
        rows.append(row)
    return pd.DataFrame(rows)


# -- text for the terminal and the report --------------------------------------------------------------------
def _pct(x) -> str:
    x = float(x)
    return "-" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _columns(rows: list[list[str]], right_from: int = 1) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < right_from else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            .rstrip() for r in rows]


def indication_text(result) -> str:
    """A compact per-indication table of one run with several indications (a
    :class:`~doseesc.engines.strata.StrataResult`) for the terminal: per indication its share, true MTD,
    P(select it), P(the selection is above it), P(no dose), mean patients and DLTs (and true OBD and P(select it)
    where response is modelled); then P(select) and mean patients per tier by indication. Probabilities as
    percentages with one decimal."""
    m = result.indication_metrics()
    b = result.by_indication()
    head = f"{result.conduct.policy} conduct"
    if result.conduct.policy == "staggered":
        head += f" ({result.conduct.text()})"
    labels = [str(t) for t in dict.fromkeys(b["tier"]) if t != "No dose"]
    units = {t.split(" ", 1)[1] if " " in t else None for t in labels}
    unit = units.pop() if len(units) == 1 else None
    if unit:   # the same unit on every tier: said once in the heading, tiers by their doses
        short = {t: t.split(" ", 1)[0] for t in labels}
        b = b.assign(tier=[short.get(t, t) for t in b["tier"]])
        m = m.assign(true_mtd=[short.get(t, t) for t in m["true_mtd"]],
                     **({"true_obd": [short.get(t, t) for t in m["true_obd"]]} if "true_obd" in m.columns else {}))
        head += f"; doses in {unit}"
    lines = [f"{head}; scenario {result.scenario.name!r}"]
    obd = "p_select_obd" in m.columns
    rows = [["indication", "share", "true MTD", "P(MTD)", "P(above)", "P(no dose)", "mean N", "mean DLTs"]
            + (["true OBD", "P(OBD)"] if obd else [])]
    for _, r in m.iterrows():
        row = [str(r["indication"]), _pct(r["share"]), str(r["true_mtd"] if r["true_mtd"] is not None else "none"),
               _pct(r["p_correct"]), _pct(r["p_above_mtd"]), _pct(r["p_no_dose"]), f"{r['expected_n']:.1f}",
               f"{r['mean_dlt']:.2f}"]
        if obd:
            row += [str(r["true_obd"] if r["true_obd"] is not None else "none"), _pct(r["p_select_obd"])]
        rows.append(row)
    lines += ["  " + x for x in _columns(rows)]
    tiers = list(dict.fromkeys(b["tier"]))
    for label, key, fmt in (("P(select)", "p_select", _pct), ("mean patients", "mean_n", lambda v: f"{v:.2f}")):
        rows = [[label] + [str(t) for t in tiers]]
        for name, g in b.groupby("indication", sort=False):
            vals = dict(zip(g["tier"], g[key]))
            rows.append([str(name)] + [fmt(vals[t]) if not (key == "mean_n" and t == "No dose") else ""
                                       for t in tiers])
        lines += ["  " + x for x in _columns(rows)]
    return "\n".join(lines)


def indication_sections(metrics: pd.DataFrame, by_indication: pd.DataFrame, indications: Indications) -> list[dict]:
    """The data of the committee report's section per indication, from a study's long tables
    (:meth:`doseesc.study.Study.indication_metrics` and :meth:`~doseesc.study.Study.by_indication`, with
    ``design`` and ``scenario`` columns): one dict per declared indication (``pooled`` last where present) with
    ``indication``, ``text`` (name, ages, eligibility, share), ``metrics`` (one row per design x scenario: conduct,
    true MTD, P(select it), P(above it), P(no dose), mean N and DLTs, true OBD and P(select it), with MCSEs) and
    ``selection`` (P(select) per tier, one row per design x scenario, columns the tiers with ``No dose`` first)."""
    out = []
    shares = dict(zip(indications.names, indications.shares))
    names = list(indications.names) + (["pooled"] if (metrics["indication"] == "pooled").any() else [])
    for name in names:
        mrows = metrics[metrics["indication"] == name].drop(columns=["indication"]).reset_index(drop=True)
        brows = by_indication[by_indication["indication"] == name]
        sel = brows.pivot_table(index=["design", "scenario"], columns="tier", values="p_select", sort=False)
        sel = sel[list(dict.fromkeys(brows["tier"]))].reset_index()
        sel.columns.name = None
        if name == "pooled":
            text = "pooled: every indication together (pooled conduct)"
        else:
            e = indications.entries[indications.names.index(name)]
            text = f"{e.text()}; {100 * shares[name]:.1f}% of accrual"
        out.append({"indication": name, "text": text, "metrics": mrows, "selection": sel})
    return out
