"""The output's check a block of spans at a time: a peak map's second screen reads ``_READ_SPANS`` spans at a
time and keeps a reading per row until the level is known (its Annex 2 values read again for the rows kept,
which the screen's row-exact products make the same), the limiter's gain search adds its block sums a chunk
at a time; the same values every way. A 1-minute 48 kHz mono clip's first export traced under 2.2x the clip
(2.83x before: the check's row-length arrays, the output's span bounds, the region's index and power)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from musicstore.audio import limited_far, limiter, limiter_curve, loudness, truepeak
from musicstore.audio.farfield import FarField
from musicstore.audio.limited_far import LimitedFarField
from musicstore.audio.loudness import BlockPower
from musicstore.audio.truepeak import Reuse, _screen, peak_map, span_bounds
from tests.test_export_spectrum_kept import first_export_peak


def _audio(channels: int, samples: int, seed: int, sparse: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.05, 1.0, (channels, 1))
    audio = (rng.standard_normal((channels, samples)) * level).astype(np.float32)
    if sparse:
        audio *= rng.random(samples) < 0.05
    return audio


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(60, 5_000),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
    picked=st.lists(st.integers(0, 10**6), min_size=1, max_size=40),
)
def test_a_rows_screen_values_do_not_depend_on_the_rows_read_with_it(
    samples: int, channels: int, seed: int, picked: list[int]
) -> None:
    """Property: the screen reads each row the same whichever rows are read with it, a lone row too (numpy's
    matrix-vector product rounds otherwise)."""
    audio = _audio(channels, samples, seed, sparse=False)
    rows = np.arange(samples + 1, dtype=np.int32)
    every = _screen().peaks(audio, rows)
    some = np.unique(np.asarray(picked) % (samples + 1)).astype(np.int32)
    assert np.array_equal(_screen().peaks(audio, some), every[some])
    for row in some[:3]:
        assert np.array_equal(_screen().peaks(audio, some[some == row]), every[[row]])


def _same(a: Any, b: Any) -> None:
    assert a.sample_peak == b.sample_peak and a.floor == b.floor
    for name in ("rows", "values", "ideal"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.screened is None) == (b.screened is None)
    if a.screened is not None:
        assert np.array_equal(a.screened.spans, b.screened.spans)
        assert np.array_equal(a.screened.reach, b.screened.reach)


@settings(max_examples=25, deadline=None)
@given(
    samples=st.integers(200, 6_000),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
    sparse=st.booleans(),
    share=st.floats(0.2, 1.0),
    gain=st.floats(0.5, 4.0),
    spans=st.sampled_from([1, 2, 3, 7, 64]),
)
def test_a_map_read_a_block_of_spans_at_a_time_is_the_map_read_at_once(  # noqa: PLR0917 (hypothesis)
    samples: int, channels: int, seed: int, sparse: bool, share: float, gain: float, spans: int
) -> None:
    """Property: a clip's map (with its screen kept) and a limited output's map (the clip's screen and span
    bounds reused) are the same, bit for bit, read ``spans`` spans of 8 rows at a time or all at once."""
    audio = _audio(channels, samples, seed, sparse)
    rng = np.random.default_rng(seed)
    floor = share * float(np.abs(audio).max())
    starts = np.unique(rng.integers(0, samples, 4))
    stops = np.minimum(np.append(starts[1:], samples), starts + 50)
    runs = np.stack([starts, stops], axis=1).astype(np.int64)
    out = audio * np.float32(gain)
    for a, b in runs:
        out[:, a:b] *= rng.uniform(0.0, 1.0, (channels, b - a)).astype(np.float32)
    far, out_far, bounds = FarField.measure(audio), FarField.measure(out), span_bounds(audio)

    def maps() -> tuple[Any, Any]:
        clip = peak_map(audio, floor, far, bounds, keep_screen=True)
        assert clip.screened is not None
        level = gain * floor
        return clip, peak_map(out, level, out_far, reuse=Reuse(clip.screened, gain, runs, bounds))

    whole = maps()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(truepeak, "_READ_SPANS", spans)
        blocks = maps()
    for a, b in zip(whole, blocks, strict=True):
        _same(a, b)


@settings(max_examples=60, deadline=None)
@given(
    samples=st.integers(1, 40_000),
    count=st.integers(0, 3_000),
    chunk=st.integers(1, 700),
    seed=st.integers(0, 2**32 - 1),
)
def test_block_sums_added_a_chunk_at_a_time_are_the_running_sums_of_the_whole(
    samples: int, count: int, chunk: int, seed: int
) -> None:
    """Property: the block sums of values at sorted positions, added a chunk at a time, are those of the
    whole values' running sums (``np.cumsum``), bit for bit."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((1, samples)).astype(np.float32)
    blocks = BlockPower.measure(audio, 8_000)
    positions = np.unique(rng.integers(0, samples, count)).astype(np.intp)
    values = rng.standard_normal(positions.shape[0]) * 10.0 ** rng.uniform(-3, 3, positions.shape[0])
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    lo, hi = np.searchsorted(positions, blocks.starts), np.searchsorted(positions, blocks.stops)
    expected = (cumulative[hi] - cumulative[lo]) / blocks.block_length
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loudness, "_CHUNK", chunk)
        summed = blocks.block_sums_at(positions, lambda a, b: values[a:b].copy())
    assert np.array_equal(summed, expected)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 3_000),
    size=st.integers(0, 200).map(lambda n: 2 * n + 1),
    chunk=st.integers(1, 500),
    flat=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_curves_filters_made_a_chunk_at_a_time_are_scipys(
    count: int, size: int, chunk: int, flat: bool, seed: int
) -> None:
    """Property: the limiter's minimum and box filters, a chunk at a time, are scipy's ``minimum_filter1d``
    and ``uniform_filter1d`` (mode "nearest"), bit for bit."""
    rng = np.random.default_rng(seed)
    values = np.minimum(1.0, 2.0 * rng.random(count) ** 3).astype(np.float32)
    if flat:
        values[rng.random(count) < 0.8] = 1.0
    minimum, box = np.empty_like(values), values.copy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limiter_curve, "_FILTER_CHUNK", chunk)  # read by the filters, in limiter_curve.py
        limiter._minimum_filter(values, size, minimum)
        limiter._box_filter(box, size)
    if count:
        assert np.array_equal(minimum, minimum_filter1d(values, size, mode="nearest"))
        assert np.array_equal(box, uniform_filter1d(values, size, mode="nearest"))


def test_a_mono_clips_first_export_traced_under_2_2x() -> None:
    """The first export of a 1-minute 48 kHz mono clip (limited), in a fresh process: numpy's allocations
    peak under 2.2x the clip (2.83x before)."""
    probe = first_export_peak(1.0, channels=1)
    assert probe["status"] == "limited"
    assert probe["peak"] < 2.2, probe


@settings(max_examples=15, deadline=None)
@given(
    samples=st.integers(20_000, 80_000),
    runs=st.integers(2, 300),
    pairs=st.integers(1, 5_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_limited_far_parts_block_bound_is_the_same_a_few_clusters_at_a_time(
    samples: int, runs: int, pairs: int, seed: int
) -> None:
    """Property: a limited output's far block bound, its clusters' mutual shares summed a few clusters at a
    time (no clusters-by-clusters arrays), is the one summed at once, bit for bit."""
    rng = np.random.default_rng(seed)
    audio = _audio(1 + seed % 2, samples, seed, sparse=False)
    far = FarField.measure(audio, kernel=True)
    starts = np.unique(rng.integers(0, samples - 200, runs))
    stops = np.minimum(np.append(starts[1:], samples), starts + 150)
    changed = np.stack([starts, stops], axis=1).astype(np.int64)
    index = np.concatenate([np.arange(a, b) for a, b in changed])
    difference = np.asarray(audio[:, index] * rng.random(index.shape[0], dtype=np.float32), dtype=np.float32)
    blocks = -(-(samples + 1) // 32)
    whole = LimitedFarField.of(far, 1.5, difference, changed, samples).block_bound(blocks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limited_far, "_PAIRS", pairs)
        some = LimitedFarField.of(far, 1.5, difference, changed, samples).block_bound(blocks)
    assert np.array_equal(whole, some)
