"""Trial state as arrays over trials, and the decisions designs make on it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag

import numpy as np


class StopReason(IntEnum):
    """Why a trial stopped. Stored as ``int8`` in arrays; never use bare ints.

    When several rules would stop a trial at once, the reported reason is the
    first in the fixed order of :class:`~doseesc.designs.base.Design` (the
    design's own rule first). New members go at the end so codes keep their values.
    """

    NOT_STOPPED = 0
    #: A rule-based design's stopping rule met: the MTD is identified.
    MTD_IDENTIFIED = 1
    #: The highest tier was tolerated; it is the MTD.
    TOP_TIER_TOLERATED = 2
    #: The lowest tier is too toxic (design's own rule or elimination); no tier is selected.
    LOWEST_TIER_TOXIC = 3
    #: The maximum number of patients was reached.
    MAX_N = 4
    #: Safety stop: P(p_lowest > target | data) exceeded the cutoff; no tier is selected.
    SAFETY = 5
    #: The tier recommended for the next cohort already has the set number of patients.
    N_AT_TIER = 6
    #: Every tier the next cohort could go to is closed by the per-tier cap.
    TIER_CAP = 7
    #: An expansion stage after dose finding is complete.
    EXPANSION_DONE = 8
    #: The enrolment cap (replacements included) was reached before a cohort was complete.
    ENROLMENT_CAP = 9
    #: ``stop_when_too_toxic``: P(DLT rate > threshold | data) reached the confidence; no tier is selected.
    TOO_TOXIC = 10
    #: ``stop_when_deescalation_impossible``: the rule said de-escalate at the lowest tier; no tier is selected.
    DEESCALATION_IMPOSSIBLE = 11
    #: ``stop_at_n``: the set number of patients in all (below ``max_n``) was reached.
    N_IN_TOTAL = 12
    #: ``stop_when_n_at_dose`` with ``"any"`` or a named tier: that tier has the set number of patients.
    N_AT_NAMED_TIER = 13
    #: ``stop_when_tox_ci_covered``: the credible interval of the DLT rate is narrow enough.
    TOX_CI_COVERED = 14

    @property
    def text(self) -> str:
        return _TEXT[self]

    @property
    def no_dose(self) -> bool:
        """True for stops that select no tier."""
        return self in _NO_DOSE


_TEXT = {
    StopReason.NOT_STOPPED: "not stopped",
    StopReason.MTD_IDENTIFIED: "MTD identified by the escalation rule",
    StopReason.TOP_TIER_TOLERATED: "highest tier tolerated",
    StopReason.LOWEST_TIER_TOXIC: "lowest tier too toxic",
    StopReason.MAX_N: "maximum sample size reached",
    StopReason.SAFETY: "safety stop: lowest tier likely above the target",
    StopReason.N_AT_TIER: "enough patients at the recommended tier",
    StopReason.TIER_CAP: "no open tier under the per-tier cap",
    StopReason.EXPANSION_DONE: "expansion cohorts complete",
    StopReason.ENROLMENT_CAP: "enrolment cap reached before a cohort was complete (replacements)",
    StopReason.TOO_TOXIC: "too toxic: P(DLT rate above the threshold) reached the confidence",
    StopReason.DEESCALATION_IMPOSSIBLE: "the rule said de-escalate at the lowest tier",
    StopReason.N_IN_TOTAL: "set number of patients in all reached",
    StopReason.N_AT_NAMED_TIER: "enough patients at the named tier (or at some tier)",
    StopReason.TOX_CI_COVERED: "credible interval of the DLT rate narrow enough",
}

_NO_DOSE = frozenset({StopReason.LOWEST_TIER_TOXIC, StopReason.SAFETY, StopReason.TOO_TOXIC,
                      StopReason.DEESCALATION_IMPOSSIBLE})


class Rule(IntFlag):
    """Rules that acted on a trial, recorded as a bit mask per trial (int16).

    A stopping rule *fires* when its condition holds at a decision (even if
    another rule's reason is reported); a constraint fires when it changes
    the design's recommendation.
    """

    DESIGN_STOP = 1
    SAFETY = 2
    MAX_N = 4
    N_AT_TIER = 8
    TIER_CAP = 16
    NO_SKIP = 32
    ELIMINATION = 64
    TOO_TOXIC = 128
    DEESCALATION_IMPOSSIBLE = 256
    N_IN_TOTAL = 512
    TOX_CI_COVERED = 1024
    DEMAND_N = 2048
    RESCUE = 4096
    NO_SKIP_DOWN = 8192

    @property
    def text(self) -> str:
        return {
            Rule.DESIGN_STOP: "design's own stopping rule",
            Rule.SAFETY: "safety stop (lowest tier)",
            Rule.MAX_N: "maximum sample size",
            Rule.N_AT_TIER: "n at recommended tier reached",
            Rule.TIER_CAP: "per-tier cap redirected or stopped",
            Rule.NO_SKIP: "no-skipping constraint held escalation back",
            Rule.ELIMINATION: "a tier was eliminated as too toxic",
            Rule.TOO_TOXIC: "too-toxic stop (own threshold and confidence)",
            Rule.DEESCALATION_IMPOSSIBLE: "de-escalation impossible at the lowest tier",
            Rule.N_IN_TOTAL: "set number of patients in all reached",
            Rule.TOX_CI_COVERED: "credible interval of the DLT rate narrow enough",
            Rule.DEMAND_N: "demand for n at a tier vetoed a sample-size stop",
            Rule.RESCUE: "rescue tier tried before stopping with no dose",
            Rule.NO_SKIP_DOWN: "no-skipping constraint held de-escalation back",
        }[self]


@dataclass
class TrialState:
    """The whole memory of a batch of trials. Leading axis: ``n_trials``.

    Attributes
    ----------
    n, y, e : int arrays, shape ``(n_trials, n_tiers)``
        Patients, DLTs and responses per tier.
    current : int array, shape ``(n_trials,)``
        Tier the last cohort was treated at (0-based).
    active : bool array, shape ``(n_trials,)``
        False once a trial has stopped.
    last_n, last_y : int arrays, shape ``(n_trials,)``
        Patients and DLTs of the last cohort (for rules such as CRM's "no
        escalation right after a toxic cohort").
    ye : int array, shape ``(n_trials, n_tiers)``
        Patients with both a DLT and a response; with ``n``, ``y`` and ``e``
        it gives the four outcome cells (N, T, E, B) per tier.
    phase, aux : int arrays, shape ``(n_trials,)``
        Stage of a multi-stage design and one integer it must remember (e.g.
        the MTD found before an expansion cohort); 0 otherwise.
    size : int array, shape ``(n_trials,)``
        Patients in each trial's next cohort, as the last decision set it
        (:meth:`advance`); the engines start it at the design's ``first_size``
        (0 where nothing set it, e.g. a state built by :meth:`from_counts`).
    fired : int16 array, shape ``(n_trials,)``
        :class:`Rule` bits of every rule that acted on the trial so far.

    An engine moves a trial on with two operations, the only places its
    memory changes: :meth:`add_cohort` (a cohort's outcomes at the current
    tier) and :meth:`advance` (a :class:`Decision`: next tier, next cohort
    size, multi-stage memory, stop).
    """

    n: np.ndarray
    y: np.ndarray
    e: np.ndarray
    current: np.ndarray
    active: np.ndarray
    last_n: np.ndarray | None = None
    last_y: np.ndarray | None = None
    ye: np.ndarray | None = None
    phase: np.ndarray | None = None
    aux: np.ndarray | None = None
    #: Per-patient arrays of time-to-event designs, shape ``(n_trials, max_patients)`` (None otherwise):
    #: tier (-1: no patient), DLT observed so far, follow-up as a fraction of the DLT window (the
    #: fraction at which the DLT occurred for a patient with a DLT; 1 once complete), and the same for
    #: response. Patients assigned but not yet infused have follow-up 0.
    pt_tier: np.ndarray | None = None
    pt_dlt: np.ndarray | None = None
    pt_follow: np.ndarray | None = None
    pt_eff: np.ndarray | None = None
    pt_eff_follow: np.ndarray | None = None
    size: np.ndarray | None = None
    fired: np.ndarray | None = None
    #: Each evaluable patient's actual (infused) dose on the ladder's scale, shape ``(n_trials, max_patients)``
    #: (NaN: no evaluable patient in that column), with their DLT in ``pt_dlt``: set by the actual-dose engine
    #: for designs with ``uses_patient_doses`` (BLRM), which then fit each patient's own dose; None otherwise.
    pt_dose: np.ndarray | None = None

    def __post_init__(self):
        t = self.n.shape[0]
        for key in ("last_n", "last_y", "phase", "aux", "size"):
            if getattr(self, key) is None:
                setattr(self, key, np.zeros(t, dtype=np.int32))
        if self.ye is None:
            self.ye = np.zeros_like(self.n)
        if self.fired is None:
            self.fired = np.zeros(t, dtype=np.int16)

    @classmethod
    def empty(cls, n_trials: int, n_tiers: int, start: int = 0, size: int = 0) -> "TrialState":
        """``n_trials`` trials with no patient yet, the first cohort of ``size`` at tier ``start``."""
        z = np.zeros((n_trials, n_tiers), dtype=np.int32)
        return cls(n=z, y=z.copy(), e=z.copy(),
                   current=np.full(n_trials, start, dtype=np.int32),
                   active=np.ones(n_trials, dtype=bool), size=np.full(n_trials, size, dtype=np.int32))

    @classmethod
    def from_counts(cls, n, y, current, e=None, last_n=None, last_y=None, ye=None, phase=None,
                    aux=None, size=None, fired=None) -> "TrialState":
        n = np.atleast_2d(np.asarray(n, dtype=np.int32))
        y = np.atleast_2d(np.asarray(y, dtype=np.int32))
        # e and ye may be float (probability-weighted means in the exact engine's merged states)
        as_counts = lambda v: np.atleast_2d(np.asarray(v) if np.asarray(v).dtype.kind == "f"  # noqa: E731
                                            else np.asarray(v, dtype=np.int32))
        e = np.zeros_like(n) if e is None else as_counts(e)
        current = np.atleast_1d(np.asarray(current, dtype=np.int32))
        ln = None if last_n is None else np.atleast_1d(np.asarray(last_n, dtype=np.int32))
        ly = None if last_y is None else np.atleast_1d(np.asarray(last_y, dtype=np.int32))
        arr = lambda v, nd: None if v is None else (np.atleast_2d if nd == 2 else np.atleast_1d)(  # noqa: E731
            np.asarray(v, dtype=np.int32))
        return cls(n=n, y=y, e=e, current=current, active=np.ones(n.shape[0], dtype=bool), last_n=ln, last_y=ly,
                   ye=None if ye is None else as_counts(ye), phase=arr(phase, 1), aux=arr(aux, 1),
                   size=arr(size, 1), fired=None if fired is None else np.atleast_1d(np.asarray(fired, np.int16)))

    @property
    def n_trials(self) -> int:
        return self.n.shape[0]

    @property
    def n_tiers(self) -> int:
        return self.n.shape[1]

    @property
    def total_n(self) -> np.ndarray:
        return self.n.sum(axis=1)

    def at_current(self, a: np.ndarray) -> np.ndarray:
        """``a[i, current[i]]`` for every trial."""
        return np.take_along_axis(a, self.current[:, None].astype(np.intp), axis=1)[:, 0]

    _PATIENT_KEYS = ("pt_tier", "pt_dlt", "pt_follow", "pt_eff", "pt_eff_follow", "pt_dose")

    def key(self) -> np.ndarray | None:
        """One int64 per trial, equal for trials whose whole memory is equal (every count, the current tier,
        the last cohort, the multi-stage memory, the next cohort's size and the rules fired), from
        :func:`pack_columns`; None where the memory does not fit in 63 bits or the state carries per-patient
        arrays (time-to-event designs: no two trials' follow-up need match)."""
        if any(getattr(self, k) is not None for k in self._PATIENT_KEYS):
            return None
        return pack_columns([self.n, self.y, self.e, self.ye, self.current, self.last_n, self.last_y,
                             self.phase, self.aux, self.size, self.fired])

    def take(self, index) -> "TrialState":
        """The trials ``index`` (a boolean mask or integer indices, repeats allowed) as a new state."""
        pts = {key: None if getattr(self, key) is None else getattr(self, key)[index] for key in self._PATIENT_KEYS}
        return TrialState(n=self.n[index], y=self.y[index], e=self.e[index],
                          current=self.current[index], active=self.active[index],
                          last_n=self.last_n[index], last_y=self.last_y[index], ye=self.ye[index],
                          phase=self.phase[index], aux=self.aux[index], size=self.size[index],
                          fired=self.fired[index], **pts)

    def copy(self) -> "TrialState":
        pts = {key: None if getattr(self, key) is None else getattr(self, key).copy() for key in self._PATIENT_KEYS}
        return replace(self, n=self.n.copy(), y=self.y.copy(), e=self.e.copy(),
                       current=self.current.copy(), active=self.active.copy(),
                       last_n=self.last_n.copy(), last_y=self.last_y.copy(), ye=self.ye.copy(),
                       phase=self.phase.copy(), aux=self.aux.copy(), size=self.size.copy(),
                       fired=self.fired.copy(), **pts)

    # -- the transition: the only two places where an engine changes a trial's memory --------------
    def add_cohort(self, size, dlts, responses=None, both=None, rows=None) -> None:
        """Add one cohort per trial at its current tier, in place.

        ``size``, ``dlts``, ``responses`` and ``both`` (patients with a DLT and
        a response) are scalars or arrays over the trials ``rows`` (all trials
        by default); ``responses`` and ``both`` only where the design uses
        efficacy. ``n``, ``y``, ``e``, ``ye`` grow at ``current``; ``last_n``
        and ``last_y`` become this cohort's patients and DLTs.
        """
        rows = np.arange(self.n_trials) if rows is None else rows
        tier = self.current[rows]
        self.n[rows, tier] += size
        self.y[rows, tier] += dlts
        if responses is not None:
            self.e[rows, tier] += responses
        if both is not None:
            self.ye[rows, tier] += both
        self.last_n[rows] = size
        self.last_y[rows] = dlts

    def advance(self, dec: "Decision", cohort_size: int, rows=None) -> None:
        """Apply ``dec``, the decisions made on the trials ``rows`` (all by default), in place.

        Every decided trial adds ``dec.fired`` to ``fired``. A trial that stops
        becomes inactive and otherwise keeps the state its final choice was
        made on. A trial that goes on moves to ``dec.next``, its next cohort
        has ``dec.size`` patients (``cohort_size``, the design's fixed size,
        where the design gives none), and its ``phase`` and ``aux`` become the
        decision's where the design gives them.
        """
        rows = np.arange(self.n_trials) if rows is None else np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        self.fired[rows] |= dec.fired.astype(np.int16)
        go = ~dec.stop
        self.active[rows[dec.stop]] = False
        moved = rows[go]
        self.current[moved] = dec.next[go]
        self.size[moved] = cohort_size if dec.size is None else dec.size[go]
        if dec.phase is not None:
            self.phase[moved] = dec.phase[go]
        if dec.aux is not None:
            self.aux[moved] = dec.aux[go]


#: Largest product of column ranges :func:`pack_columns` packs into one int64 key (63 bits).
_KEY_LIMIT = 2 ** 63 - 1


def pack_columns(columns) -> np.ndarray | None:
    """One int64 key per row of integer columns, equal for equal rows and ordered as the rows are
    lexicographically (the first column most significant), or None where they do not fit in 63 bits.

    ``columns``: 1-D arrays (one column) and 2-D arrays (a block: one column per entry of axis 1), all with the
    same number of rows. Each column is a digit of a mixed-radix number: first every column of a block takes
    the block's range as its radix (two reductions per block, however many columns); where that does not fit
    in 63 bits, each column takes its own range. Digits are offset by the minimum where some entry is
    negative. So the keys sort as ``np.unique(np.column_stack(columns), axis=0)`` sorts the rows, with one sort
    of integers instead of a sort of rows. Constant blocks cost nothing. Float columns whose values are all
    integers are packed as such; any other float column gives None.
    """
    blocks = [np.asarray(c) for c in columns]
    if any(b.dtype.kind not in "biuf" for b in blocks):
        return None
    rows = blocks[0].shape[0]
    if rows == 0:
        return np.zeros(0, dtype=np.int64)
    blocks = [b[:, None] if b.ndim == 1 else b for b in blocks]
    for b in blocks:
        if b.dtype.kind == "f" and not (np.all(np.isfinite(b)) and np.array_equal(b, np.round(b))):
            return None
    # per block: (block, offset, radix of each of its columns); constant blocks are left out
    lows = [int(b.min()) for b in blocks]
    highs = [int(b.max()) for b in blocks]
    digits = [(b, lo, [hi - lo + 1] * b.shape[1]) for b, lo, hi in zip(blocks, lows, highs) if hi > lo]
    if _radix_product(digits) > _KEY_LIMIT:
        digits = []
        for b, lo, hi in zip(blocks, lows, highs):
            if hi > lo:
                cl, ch = b.min(axis=0), b.max(axis=0)
                offset = 0 if lo >= 0 else cl
                digits.append((b, offset, [int(h) - int(o) + 1 for h, o in zip(ch, np.broadcast_to(offset, ch.shape))]))
        if _radix_product(digits) > _KEY_LIMIT:
            return None
    key = np.zeros(rows, dtype=np.int64)
    for b, offset, radices in digits:       # Horner: key = key * radix + (column - offset)
        off = np.broadcast_to(np.asarray(offset, dtype=np.int64), (b.shape[1],))
        for j, r in enumerate(radices):
            if r > 1:
                key *= r
                key += b[:, j].astype(np.int64) if b.dtype.kind == "f" else b[:, j]
                if off[j]:
                    key -= int(off[j])
    return key


def _radix_product(digits) -> int:
    total = 1
    for _, _, radices in digits:
        for r in radices:
            total *= r
    return total


@dataclass
class Decision:
    """What a design decides for each trial of a batch.

    Attributes
    ----------
    next : int array, shape ``(n_trials,)``
        Tier for the next cohort (0-based); ``-1`` when stopping.
    stop : bool array
        True where the trial stops now.
    reason : int8 array
        :class:`StopReason` code, ``NOT_STOPPED`` where the trial goes on.
    fired : int16 array
        :class:`Rule` bits of the rules that acted at this decision.
    size : int array or None
        Patients in the next cohort, where the design varies it (titration).
    """

    next: np.ndarray
    stop: np.ndarray
    reason: np.ndarray
    fired: np.ndarray | None = None
    #: Size of the next cohort (None: the design's fixed ``cohort_size``).
    size: np.ndarray | None = None
    #: New ``phase`` and ``aux`` memory of multi-stage designs (None: unchanged).
    phase: np.ndarray | None = None
    aux: np.ndarray | None = None
    #: Time-to-event designs: True where accrual is suspended (the next patient waits for more
    #: follow-up); None for other designs.
    wait: np.ndarray | None = None
    #: True where the design's own rule says de-escalate from the current tier, even at the lowest
    #: tier where it cannot (for ``stop_when_deescalation_impossible``); None: ``next < current``.
    down: np.ndarray | None = None

    def __post_init__(self):
        if self.fired is None:
            self.fired = np.zeros(self.next.shape[0], dtype=np.int16)


def group_keys(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first index of each distinct value of the non-negative int64 ``key``, in increasing key order, and
    each entry's rank among the distinct values (as ``np.unique(key, return_index=True, return_inverse=True)``):
    by a table indexed by the key where the keys span little more than their number (no sort), else by a
    sort."""
    if key.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    span = int(key.max()) + 1
    if span <= 4 * key.size + 4096:
        seen = np.zeros(span, dtype=bool)
        seen[key] = True
        rank = np.cumsum(seen, dtype=np.intp) - 1
        inverse = rank[key]
        n_distinct = int(rank[-1]) + 1
    else:
        _, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.ravel()
        n_distinct = int(inverse.max()) + 1
    first = np.empty(n_distinct, dtype=np.intp)
    first[inverse[::-1]] = np.arange(key.size - 1, -1, -1)
    return first, inverse


def distinct_rows(columns, packed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each distinct row of ``columns`` (1-D and 2-D integral arrays side by side), in the order
    ``np.unique(np.column_stack(columns), axis=0)`` gives, and each row's index among them: one pass over packed
    int64 keys (:func:`pack_columns`, :func:`group_keys`) where the rows fit in 63 bits (and ``packed``), else a
    sort of rows."""
    key = pack_columns(columns) if packed else None
    if key is not None:
        return group_keys(key)
    rows = np.column_stack(columns)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return first, inverse.ravel()
