"""Random streams that make results independent of batch size and workers.

Simulated trials are grouped in fixed *blocks* of :data:`BLOCK_SIZE` trials.
Block ``b`` draws every random number it needs from its own stream, derived
from the root seed by ``SeedSequence(entropy, spawn_key=(b, quantity))``. A
compute batch is any run of consecutive trials; it regenerates the blocks it
overlaps and slices them. Trial ``i`` therefore sees the same latent uniforms
whatever the batch size, the number of workers or the design being simulated:
comparisons of designs on a scenario are paired (common random numbers).

Quantities have fixed stream numbers, so adding a new source of randomness in
a later version never changes the numbers of the existing ones.
"""

from __future__ import annotations

import threading
from enum import IntEnum

import numpy as np

from .errors import DoseescError

#: Number of trials that share one random stream. Part of the reproducibility
#: contract: changing it changes every simulated number.
BLOCK_SIZE = 1024


class Stream(IntEnum):
    """Stream number of each per-patient random quantity."""

    TOX = 0
    EFF = 1
    #: Actual-dose model (doseesc.actual_dose): the product (failure, shortfall or conforming, and its
    #: release factor; see DoseModel.product); body weight.
    PRODUCT = 3
    WEIGHT = 5
    #: Calendar model (doseesc.calendar): accrual, vein-to-vein time, event times, drop-out, screening.
    ARRIVAL = 6
    MANUFACTURE = 7
    TOX_TIME = 8
    EFF_TIME = 9
    DROPOUT = 10
    SCREEN = 11
    #: Several indications (doseesc.indications): each patient's indication, drawn by the shares of accrual.
    INDICATION = 12
    #: Backfill cohorts (issue 19): which of the eligible lower tiers a backfilled patient is given, where a
    #: policy draws one.
    BACKFILL = 13
    #: A seamless phase 2 stage after the escalation (issue 22): its patients' toxicity and response.
    PHASE2_TOX = 14
    PHASE2_EFF = 15


def root_seed(rng=None) -> np.random.SeedSequence:
    """Normalise ``rng`` into a root :class:`numpy.random.SeedSequence`.

    Accepts ``None`` (fresh OS entropy, recorded in the results), an integer
    seed, a :class:`~numpy.random.SeedSequence` or a
    :class:`~numpy.random.Generator` (whose bit generator's seed sequence is
    used, so the generator's own state is not consumed).
    """
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        seq = rng.bit_generator.seed_seq
        if not isinstance(seq, np.random.SeedSequence):  # pragma: no cover - exotic generators
            raise DoseescError("rng: this Generator has no SeedSequence; pass an integer seed")
        return seq
    if isinstance(rng, (bool, np.bool_)):
        raise DoseescError(f"rng = {rng!r}: give an integer seed, a SeedSequence or a Generator")
    if isinstance(rng, (int, np.integer)):
        if rng < 0:
            raise DoseescError(f"rng = {rng}: a seed must be a non-negative integer")
        return np.random.SeedSequence(int(rng))
    raise DoseescError(f"rng = {rng!r}: give an integer seed, a SeedSequence or a Generator")


def seed_record(seq: np.random.SeedSequence) -> dict:
    """What to store in the results to recreate ``seq``."""
    return {"entropy": int(seq.entropy) if isinstance(seq.entropy, int) else seq.entropy,
            "spawn_key": list(seq.spawn_key)}


def block_generator(seq: np.random.SeedSequence, block: int, stream: Stream) -> np.random.Generator:
    child = np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (int(block), int(stream)))
    return np.random.Generator(np.random.PCG64(child))


def patient_uniforms(seq: np.random.SeedSequence, start: int, stop: int, n_patients: int,
                     stream: Stream = Stream.TOX, patient_major: bool = False, scratch: bool = False) -> np.ndarray:
    """Latent uniforms of trials ``start..stop-1``, shape ``(stop - start, n_patients)``.

    Column ``k`` belongs to the ``k``-th patient enrolled in each trial. The
    uniforms of a block are drawn patient by patient (patient-major), so the
    first ``k`` columns do not depend on ``n_patients``: designs with different
    maximum sample sizes still see the same patients. ``patient_major``: the
    same array, laid out patient by patient in memory (a view of the draws).

    ``scratch`` (with ``patient_major``): the same numbers, drawn into buffers this thread keeps for the stream
    and reuses at its next such call, so that a run does not fault fresh memory in for every batch (a few MB,
    which costs milliseconds on a virtual machine). The array is then valid only until that next call: for a
    caller that reads it and keeps nothing of it.
    """
    first, last = start // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE
    offset = first * BLOCK_SIZE
    if patient_major and scratch:
        u = _scratch(("all", int(stream)), (n_patients, (last - first + 1) * BLOCK_SIZE))
        part = _scratch(("block", int(stream)), (n_patients, BLOCK_SIZE))
        for b in range(first, last + 1):
            block_generator(seq, b, stream).random(out=part)
            u[:, (b - first) * BLOCK_SIZE:(b - first + 1) * BLOCK_SIZE] = part
        return u[:, start - offset: stop - offset].T
    parts = []
    for b in range(first, last + 1):
        parts.append(block_generator(seq, b, stream).random((n_patients, BLOCK_SIZE)))
    if patient_major:   # the same numbers, patient-major in memory (a transposed view; no copy to transpose)
        u = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        return u[:, start - offset: stop - offset].T
    u = np.concatenate([part.T for part in parts], axis=0) if len(parts) > 1 else parts[0].T
    return u[start - offset: stop - offset]


_BUFFERS = threading.local()


def _scratch(key, shape: tuple[int, int]) -> np.ndarray:
    """A C-contiguous float64 array of ``shape`` from this thread's buffer ``key`` (grown when too small; the
    contents are whatever the last user left)."""
    bufs = _BUFFERS.__dict__.setdefault("bufs", {})
    size = shape[0] * shape[1]
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size)
    return buf[:size].reshape(shape)
