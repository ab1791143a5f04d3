"""The outcome grammar of trial logs: ``"1NNN 2NTN"``.

A log is a sequence of cohorts separated by white space. Each cohort is the
tier number (1-based, as people count) followed by one letter per patient:

====== ==========================================
letter meaning
====== ==========================================
``N``  neither a DLT nor a response
``T``  DLT (toxicity) only
``E``  response (efficacy) only
``B``  both a DLT and a response
====== ==========================================

Designs that use toxicity only read ``T``/``B`` as a DLT and ``N``/``E`` as no
DLT. Letters are case-insensitive; the empty string is a trial that has not
started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import comb, factorial

import numpy as np

from .errors import OutcomeError
from .limits import MAX_TIER_DIGITS as _MAX_TIER_DIGITS

_LETTERS = {"N": (False, False), "T": (True, False), "E": (False, True), "B": (True, True)}
_COHORT = re.compile(r"^([0-9]+)([A-Za-z]*)$", re.ASCII)
#: Longest trial log read, in characters.
MAX_LOG = 100_000


@dataclass(frozen=True)
class Cohort:
    """One cohort of a trial log: 0-based ``tier`` and per-patient outcomes."""

    tier: int
    tox: tuple[bool, ...]
    eff: tuple[bool, ...]

    @property
    def size(self) -> int:
        return len(self.tox)

    def __str__(self) -> str:
        return format_cohort(self.tier, self.tox, self.eff)


def parse_outcomes(text: str, n_tiers: int | None = None) -> list[Cohort]:
    """Parse a trial log such as ``"1NNN 2NTN"`` into cohorts.

    Raises :class:`OutcomeError` naming the offending cohort and character
    when the string cannot be read, or when a tier number is outside
    ``1..n_tiers``.
    """
    if not isinstance(text, str):
        raise OutcomeError(f"outcomes = {text!r}: expected a string such as '1NNN 2NTN'")
    if len(text) > MAX_LOG:
        raise OutcomeError(f"outcomes: {len(text):,} characters; the limit is {MAX_LOG:,}")
    cohorts: list[Cohort] = []
    for i, token in enumerate(text.split()):
        m = _COHORT.match(token)
        if m is None and token[:1] == "-" and token[1:2].isdigit():
            raise OutcomeError(f"outcomes {text[:60]!r}: cohort {i + 1} {token[:20]!r}: tiers are numbered from 1 "
                               "(no negative tier numbers)")
        if m is None and any(c.isdigit() and not c.isascii() for c in token):
            raise OutcomeError(f"outcomes {text[:60]!r}: cohort {i + 1} {token[:20]!r}: the tier number must be "
                               "written with the digits 0-9")
        if m is not None and len(m.group(1).lstrip("0")) > _MAX_TIER_DIGITS:
            raise OutcomeError(f"outcomes {text[:60]!r}: cohort {i + 1}: tier number of {len(m.group(1))} digits "
                               f"does not exist (at most {_MAX_TIER_DIGITS} digits; the ladders have at most 20 tiers)")
        if m is None:
            raise OutcomeError(
                f"outcomes {text!r}: cohort {i + 1} {token!r} must be a tier number followed "
                "by one letter per patient (N, T, E or B), e.g. '2NTN'")
        tier = int(m.group(1))
        letters = m.group(2).upper()
        if not letters:
            raise OutcomeError(f"outcomes {text!r}: cohort {i + 1} {token!r} has no patients")
        if tier < 1:
            raise OutcomeError(f"outcomes {text!r}: cohort {i + 1} {token!r}: tiers are numbered from 1")
        if n_tiers is not None and tier > n_tiers:
            raise OutcomeError(
                f"outcomes {text!r}: cohort {i + 1} {token!r}: tier {tier} does not exist "
                f"(the ladder has {n_tiers} tiers)")
        tox, eff = [], []
        for j, ch in enumerate(letters):
            if ch not in _LETTERS:
                raise OutcomeError(
                    f"outcomes {text!r}: cohort {i + 1} {token!r}: unknown outcome letter {ch!r} "
                    f"for patient {j + 1} (use N no DLT, T DLT, E response, B DLT and response)")
            t, e = _LETTERS[ch]
            tox.append(t)
            eff.append(e)
        cohorts.append(Cohort(tier - 1, tuple(tox), tuple(eff)))
    return cohorts


def format_cohort(tier: int, tox, eff=None) -> str:
    """Format one cohort; ``tier`` is 0-based."""
    tox = [bool(t) for t in tox]
    eff = [False] * len(tox) if eff is None else [bool(e) for e in eff]
    letters = "".join("B" if t and e else "T" if t else "E" if e else "N" for t, e in zip(tox, eff))
    return f"{tier + 1}{letters}"


def format_outcomes(cohorts) -> str:
    """Inverse of :func:`parse_outcomes`."""
    return " ".join(str(c) if isinstance(c, Cohort) else format_cohort(*c) for c in cohorts)


def counts(cohorts: list[Cohort], n_tiers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patients, DLTs and responses per tier, each of shape ``(n_tiers,)``."""
    n = np.zeros(n_tiers, dtype=np.int64)
    y = np.zeros(n_tiers, dtype=np.int64)
    e = np.zeros(n_tiers, dtype=np.int64)
    for c in cohorts:
        n[c.tier] += c.size
        y[c.tier] += sum(c.tox)
        e[c.tier] += sum(c.eff)
    return n, y, e


def patient_log(tiers: np.ndarray, tox: np.ndarray, eff: np.ndarray | None = None,
                cohort_breaks: np.ndarray | None = None) -> str:
    """Log string of one simulated trial from its per-patient arrays.

    ``tiers`` holds each enrolled patient's tier (``-1`` past the end of the
    trial). Consecutive patients at the same tier form one cohort unless
    ``cohort_breaks`` (a boolean per patient, True where a new cohort starts)
    says otherwise.
    """
    keep = tiers >= 0
    tiers = tiers[keep]
    tox = tox[keep]
    eff = np.zeros_like(tox) if eff is None else eff[keep]
    if cohort_breaks is None:
        starts = np.flatnonzero(np.r_[True, tiers[1:] != tiers[:-1]]) if tiers.size else np.array([], int)
    else:
        starts = np.flatnonzero(cohort_breaks[keep])
    bounds = list(starts) + [tiers.size]
    return " ".join(format_cohort(int(tiers[a]), tox[a:b], eff[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))


def compositions(c: int) -> np.ndarray:
    """Every split of a cohort of ``c`` patients into the cells (neither, DLT only, response only, both),
    shape ``(n_splits, 4)``; patient order within a cohort does not matter."""
    rows = [(n00, n10, n01, c - n00 - n10 - n01) for n00 in range(c + 1) for n10 in range(c + 1 - n00)
            for n01 in range(c + 1 - n00 - n10)]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def cohort_outcomes(c: int, probs: np.ndarray | None = None, joint: bool = False):
    """The distinct outcomes of a cohort of ``c`` patients, and their probabilities at each tier.

    Patient order within a cohort does not matter to a design, so a cohort has
    ``c + 1`` outcomes on toxicity alone (0..c DLTs) and, with ``joint``, one per
    split into (neither, DLT only, response only, both) in :func:`compositions`
    order. Returns ``(dlts, responses, both, prob)``: int arrays over the
    outcomes (``responses`` and ``both`` are 0 without ``joint``) and ``prob``
    of shape ``(n_tiers, n_outcomes)`` (None without ``probs``). ``probs`` is
    P(DLT) per tier, shape ``(n_tiers,)``, or with ``joint`` the joint
    probabilities of the four cells per tier, shape ``(n_tiers, 4)``
    (:meth:`~doseesc.scenario.Scenario.joint`). Each row of ``prob`` is a
    binomial (a multinomial with ``joint``) distribution and sums to 1.
    """
    if not joint:
        dlts = np.arange(c + 1)
        zero = np.zeros(c + 1, dtype=np.int32)
        prob = None
        if probs is not None:
            p = np.asarray(probs, dtype=float)[:, None]
            coef = np.array([comb(c, int(j)) for j in dlts], dtype=float)
            prob = coef[None, :] * p ** dlts[None, :] * (1 - p) ** (c - dlts)[None, :]
        return dlts.astype(np.int32), zero, zero, prob
    cells = compositions(c)
    prob = None
    if probs is not None:
        coef = np.array([factorial(c) / np.prod([factorial(int(v)) for v in row]) for row in cells])
        prob = coef[None, :] * np.prod(np.asarray(probs, dtype=float)[:, None, :] ** cells[None, :, :], axis=2)
    dlts = (cells[:, 1] + cells[:, 3]).astype(np.int32)
    responses = (cells[:, 2] + cells[:, 3]).astype(np.int32)
    return dlts, responses, cells[:, 3].astype(np.int32), prob
