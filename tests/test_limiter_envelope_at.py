"""The sample envelope read at rows and the far part's block bound, both taken a channel (column) at a
time: the same values as the whole selection's reduction."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio.farfield import _SUPPORT, BLOCK, FarField
from musicstore.audio.truepeak import _envelope_at


@settings(max_examples=100, deadline=None)
@given(
    channels=st.integers(1, 4),
    samples=st.integers(1, 400),
    count=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_envelope_at_is_the_largest_magnitude_over_channels(
    channels: int, samples: int, count: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((channels, samples)).astype(np.float32)
    index = rng.integers(-3, samples + 3, count)
    got = _envelope_at(audio, index)
    expected = np.zeros(count, dtype=np.float32)
    for i, at in enumerate(index.tolist()):
        if 0 <= at < samples:
            expected[i] = np.abs(audio[:, at]).max()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=100, deadline=None)
@given(
    channels=st.integers(1, 4),
    samples=st.integers(1, 400),
    count=st.integers(0, 300),
    shift=st.integers(-2, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_envelope_at_shifted_into_a_buffer_is_the_larger_of_both(
    channels: int, samples: int, count: int, shift: int, seed: int
) -> None:
    """The envelope at ``index + shift`` (the samples before a row), its larger with ``out`` written there
    (the screen's samples beside its rows without their index and value temporaries): the same values."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((channels, samples)).astype(np.float32)
    index = np.sort(rng.integers(-3, samples + 3, count)).astype(np.int32)
    start = rng.random(count).astype(np.float32)
    expected = np.maximum(start, _envelope_at(audio, index + shift))
    out = start.copy()
    got = _envelope_at(audio, index, shift, out=out)
    assert got is out
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(_envelope_at(audio, index, shift), _envelope_at(audio, index + shift))


@settings(max_examples=20, deadline=None)
@given(channels=st.integers(1, 3), samples=st.integers(200, 6000), seed=st.integers(0, 2**32 - 1))
def test_block_bound_covers_every_blocks_grid_points(channels: int, samples: int, seed: int) -> None:
    """Each block's bound is at least the Catmull-Rom factor times the largest |G| over the grid points
    within its support (every column of the block's groups read)."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * rng.uniform(0.01, 1.0, (channels, 1))).astype(
        np.float32
    )
    far = FarField.measure(audio)
    blocks = -(-(samples + 1) // BLOCK)
    bound = far.block_bound(blocks)
    per = BLOCK // far.step
    magnitude = np.abs(far.grid).max(axis=0)
    for b in range(blocks):
        centre = per * b + per // 2 - far.start
        lo, hi = max(0, centre - _SUPPORT), min(magnitude.shape[0], centre + _SUPPORT + 1)
        if lo < hi:
            assert bound[b] >= np.float32(1.25 / np.pi) * magnitude[lo:hi].max()
