"""patient_uniforms(..., scratch=True): the same numbers as a fresh draw, in buffers the thread reuses (issue 20:
a batch does not fault fresh memory in), and no buffer shared between threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from doseesc.rng import Stream, patient_uniforms


@pytest.mark.parametrize("start,stop,patients", [(0, 10_000, 30), (1000, 5000, 18), (2048, 3072, 7), (5, 6, 3),
                                                 (0, 16_384, 36)])
def test_scratch_draws_equal_fresh_draws(start, stop, patients):
    seq = np.random.SeedSequence(11)
    fresh = patient_uniforms(seq, start, stop, patients, Stream.TOX, patient_major=True)
    plain = patient_uniforms(seq, start, stop, patients, Stream.TOX)
    kept = patient_uniforms(seq, start, stop, patients, Stream.TOX, patient_major=True, scratch=True)
    assert kept.shape == fresh.shape == (stop - start, patients)
    np.testing.assert_array_equal(kept, fresh)
    np.testing.assert_array_equal(kept, plain)


def test_scratch_buffers_are_reused_per_stream():
    seq = np.random.SeedSequence(3)
    a = patient_uniforms(seq, 0, 4096, 30, Stream.TOX, patient_major=True, scratch=True)
    first = a.copy()
    e = patient_uniforms(seq, 0, 4096, 30, Stream.EFF, patient_major=True, scratch=True)
    assert not np.shares_memory(a, e)                # another stream: another buffer
    np.testing.assert_array_equal(a, first)
    b = patient_uniforms(seq, 4096, 8192, 30, Stream.TOX, patient_major=True, scratch=True)
    assert np.shares_memory(a, b)                    # the next call of the stream reuses it (a is now stale)
    np.testing.assert_array_equal(b, patient_uniforms(seq, 4096, 8192, 30, Stream.TOX, patient_major=True))


def test_threads_do_not_share_scratch_buffers():
    seq = np.random.SeedSequence(8)
    got = {}

    def draw(name, lo):
        got[name] = patient_uniforms(seq, lo, lo + 2048, 12, Stream.TOX, patient_major=True, scratch=True)

    threads = [threading.Thread(target=draw, args=(i, 2048 * i)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        np.testing.assert_array_equal(got[i], patient_uniforms(seq, 2048 * i, 2048 * i + 2048, 12, Stream.TOX))
    assert not np.shares_memory(got[0], got[1]) and not np.shares_memory(got[1], got[2])
