"""The export's chunked passes read a chunk inside the clip in place (no zeroed window, every phase in one
copy): the same values, bit for bit, as the edge path that reads through a zero-padded window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio import far_grid, farfield, truepeak
from musicstore.audio.truepeak import sample_envelope, span_bounds


def _clip(samples: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(1e-3, 1.5)
    return (rng.standard_normal((channels, samples)) * scale).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    samples=st.integers(1, 700),
    channels=st.integers(1, 3),
    chunk=st.sampled_from([8, 16, 64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_span_bounds_read_in_place_equal_the_windowed_reading(
    samples: int, channels: int, chunk: int, seed: int
) -> None:
    audio = _clip(samples, channels, seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(truepeak, "_CHUNK", 1 << 20)  # one chunk: the windowed (edge) path alone
        whole_envelope = sample_envelope(audio)
        whole = span_bounds(audio)
        patch.setattr(truepeak, "_CHUNK", chunk)  # many chunks, most of them inside the clip
        envelope = sample_envelope(audio)
        chunked = span_bounds(audio)
    assert np.array_equal(envelope, whole_envelope)
    assert chunked.shape == whole.shape
    assert np.array_equal(chunked.view(np.uint32), whole.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(
    samples=st.integers(1, 3000),
    chunk=st.sampled_from([1, 5, 16, 64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_low_band_read_in_place_equals_the_per_phase_reading(samples: int, chunk: int, seed: int) -> None:
    x = _clip(samples, 1, seed)[0]
    count = -(-samples // 4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(far_grid, "_LOW_BAND_CHUNK", 1 << 20)  # one chunk, from before the clip: per phase
        whole = farfield._decimated_low_band(x, count, 4)
        patch.setattr(far_grid, "_LOW_BAND_CHUNK", chunk)
        chunked = farfield._decimated_low_band(x, count, 4)
    assert np.array_equal(chunked.view(np.uint32), whole.view(np.uint32))


@settings(max_examples=100, deadline=None)
@given(
    spans=st.integers(1, 200),
    with_start=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_span_maxima_are_each_spans_largest_value(spans: int, with_start: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.abs(rng.standard_normal(8 * spans)).astype(np.float32)
    values[rng.random(values.shape[0]) < 0.2] = 0.0  # ties and zeros
    start = np.abs(rng.standard_normal(spans)).astype(np.float32) if with_start else None
    expected = values.reshape(spans, 8).max(axis=1)
    if start is not None:
        expected = np.maximum(expected, start)
    got = truepeak._span_max(values, start)
    assert got.shape == (spans,)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
