"""True peak per BS.1770-4 Annex 2 (EBU Tech 3341 cases 15–19), the accurate meter, and the shortcuts."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.signal import upfirdn

from musicstore.audio import farfield, synthesize_music
from musicstore.audio.farfield import BLOCK, FarField, _decimated_low_band, _lowpass
from musicstore.audio.interpolation import _ANNEX2_PHASES, annex2, near_sinc
from musicstore.audio.limited_far import LimitedFarField
from musicstore.audio.truepeak import (
    Reuse,
    annex2_true_peak,
    candidate_rows,
    detect,
    peak_map,
    sample_envelope,
    scaled_span_bounds,
    span_bounds,
    to_db,
    true_peak,
)
from tests.reference_meter import reference_true_peak

RATE = 48_000


def sine(freq: float, amplitude: float, phase_deg: float, seconds: float = 3.0) -> NDArray[np.float32]:
    """A stereo sine with 20 ms raised-cosine fades (an abrupt full-level start is itself an overshoot)."""
    t = np.arange(round(seconds * RATE)) / RATE
    signal = amplitude * np.sin(2 * np.pi * freq * t + np.deg2rad(phase_deg))
    fade = round(0.02 * RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    signal[:fade] *= ramp
    signal[-fade:] *= ramp[::-1]
    return np.tile(signal, (2, 1)).astype(np.float32)


@pytest.mark.parametrize(
    ("case", "freq", "amplitude", "phase", "expected"),
    [
        (15, RATE / 4, 0.50, 0.0, -6.0),
        (16, RATE / 4, 0.50, 45.0, -6.0),
        (17, RATE / 6, 0.50, 60.0, -6.0),
        (18, RATE / 8, 0.50, 67.5, -6.0),
        (19, RATE / 4, 1.41, 45.0, 3.0),
    ],
)
@pytest.mark.parametrize("meter", [true_peak, annex2_true_peak])
def test_tech_3341_true_peak(  # noqa: PLR0917 (parametrized)
    case: int, freq: float, amplitude: float, phase: float, expected: float, meter: Callable[..., float]
) -> None:
    measured = to_db(meter(sine(freq, amplitude, phase)))
    assert expected - 0.4 <= measured <= expected + 0.2, f"case {case}: {measured:.3f} dBTP"


def test_matches_full_upfirdn() -> None:
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal((2, 20_000)) * 0.2).astype(np.float32)
    h = np.asarray(_ANNEX2_PHASES).T.ravel()  # the 48-tap prototype
    full = float(np.abs(upfirdn(h, audio.astype(np.float64), 4, axis=-1)).max())
    assert annex2_true_peak(audio) == pytest.approx(max(full, float(np.abs(audio).max())), rel=1e-5)


def test_shortcut_skips_rows_safely() -> None:
    rng = np.random.default_rng(4)
    audio = (rng.standard_normal((1, 50_000)) * 0.01).astype(np.float32)
    audio[0, 25_000] = 0.9  # one loud sample: only its neighbourhood can hold the true peak
    rows = candidate_rows(sample_envelope(audio), 0.9, annex2().bound)
    assert 0 < rows.size < 200
    everything = annex2().peaks(audio, np.arange(audio.shape[1] + 1)).max()
    assert annex2_true_peak(audio) == pytest.approx(max(float(everything), 0.9), rel=1e-6)


def test_peak_map_below_floor_is_bounded() -> None:
    rng = np.random.default_rng(5)
    audio = (rng.standard_normal((2, 30_000)) * 0.1).astype(np.float32)
    floor = 0.2
    mapped = peak_map(audio, floor)
    all_rows = np.arange(audio.shape[1] + 1)
    values, _ = detect(audio, all_rows, mapped.far)
    outside = np.setdiff1d(all_rows, mapped.rows)
    assert values[outside].max(initial=0.0) <= floor
    np.testing.assert_allclose(mapped.values, values[mapped.rows], rtol=1e-6)


def test_accurate_meter_reads_the_ideal_reconstruction() -> None:
    rng = np.random.default_rng(6)
    audio = (rng.standard_normal((2, 8_000)) * 0.2).astype(np.float32)  # white: content up to Nyquist
    assert abs(to_db(true_peak(audio)) - to_db(reference_true_peak(audio))) < 0.05


@pytest.mark.parametrize("where", ["start", "end", "both"])
def test_peaks_at_the_clip_edges(where: str) -> None:
    """Interpolated values beyond the first and last samples are measured with zero padding."""
    audio = np.zeros((2, 400), dtype=np.float32)
    if where in ("start", "both"):
        audio[:, :3] = [[0.9, -0.9, 0.9], [0.5, 0.5, 0.5]]
    if where in ("end", "both"):
        audio[1, -3:] = [-0.8, 0.8, -0.8]
    h = np.asarray(_ANNEX2_PHASES).T.ravel()
    full = float(np.abs(upfirdn(h, audio.astype(np.float64), 4, axis=-1)).max())
    assert annex2_true_peak(audio) == pytest.approx(max(full, 0.9 if where != "end" else 0.8), rel=1e-5)
    rows = np.arange(0, audio.shape[1] + 1, 7)  # scattered rows, some at the edges
    every = annex2().peaks(audio, np.arange(audio.shape[1] + 1))
    np.testing.assert_allclose(annex2().peaks(audio, rows), every[rows], rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["noise", "sparse", "sine", "square"]),
    frequency=st.floats(0.001, 0.5),
    samples=st.integers(200, 40_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_span_bounds_hold_every_near_and_annex2_value(
    kind: str, frequency: float, samples: int, seed: int
) -> None:
    """The screen's bound per span of 8 rows is at least every near-part and Annex 2 value in the span
    (away from the ends, which are always measured)."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    if kind == "noise":
        x = rng.standard_normal((2, samples))
    elif kind == "sparse":
        x = rng.standard_normal((2, samples)) * (rng.random(samples) < 0.01)
    elif kind == "sine":
        x = np.stack([np.sin(2 * np.pi * frequency * t + p) for p in rng.uniform(0, 6.3, 2)])
    else:
        x = np.tile(np.sign(np.sin(2 * np.pi * frequency * t / 8 + 0.1)), (2, 1))
    audio = x.astype(np.float32)
    rows = np.arange(samples + 1)
    values = np.maximum(near_sinc().peaks(audio, rows)[:, 0], annex2().peaks(audio, rows)[:, 0])
    bound = np.repeat(span_bounds(audio), 8)[: samples + 1]
    inner = slice(64, samples - 63)
    assert np.all(values[inner] <= bound[inner])


@settings(max_examples=30, deadline=None)
@given(samples=st.integers(1, 5_000), channels=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_far_part_low_band_and_block_bound(samples: int, channels: int, seed: int) -> None:
    """The far part's decimated low band equals its definition summed directly, and its block bound holds
    the far part at every grid position of every row of the block."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * rng.uniform(0.01, 1.0, (channels, 1))).astype(
        np.float32
    )
    taps = _lowpass(4)
    half = taps.shape[0] // 2
    count = -(-samples // 4)
    signs = np.where(np.arange(samples) % 2, -1.0, 1.0)
    for x in audio:
        z = np.concatenate([np.zeros(taps.shape[0]), x * signs, np.zeros(taps.shape[0] + 4)])
        direct = [
            float(taps @ z[4 * j + half + taps.shape[0] : 4 * j - half - 1 + taps.shape[0] : -1])
            for j in range(count)
        ]
        np.testing.assert_allclose(_decimated_low_band(x, count, 4), direct, atol=1e-5)
    far = FarField.measure(audio)
    blocks = -(-(samples + 1) // BLOCK)
    bound = far.block_bound(blocks)
    rows = np.arange(samples + 1)
    fractions = np.arange(1, 8) / 8
    for c in range(channels):
        values = np.abs(far.at(c, rows - 1, fractions)).max(axis=1)
        assert (values <= bound[rows // BLOCK] * (1 + 1e-5) + 1e-7).all()


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(300, 60_000) | st.integers(250_000, 320_000),  # short: every lag kept; long: moments
    channels=st.integers(1, 3),
    spans=st.integers(0, 12),
    width=st.integers(1, 3_000),
    gain=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**16),
)
def test_limited_far_part_is_the_outputs(  # noqa: PLR0917 (hypothesis passes each drawn value)
    samples: int, channels: int, spans: int, width: int, gain: float, seed: int
) -> None:
    """The far part of a limiter's output derived from the clip's (gain times it, less the difference's,
    summed from the difference's sources) reads what measuring the output reads, at every grid position
    of every row, and its block bound holds those values (the looped readings at the ends included)."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * rng.uniform(0.01, 1.0, (channels, 1))).astype(
        np.float32
    )
    if rng.random() < 0.5:  # near-Nyquist content, whose reconstruction reaches far
        audio += np.float32(0.5) * np.cos(np.pi * 0.98 * np.arange(samples)).astype(np.float32)
    starts = np.unique(rng.integers(0, samples, spans))
    stops = np.minimum(np.append(starts[1:], samples), starts + width)
    runs = np.stack([starts, stops], axis=1).astype(np.int64)
    index = np.concatenate([np.arange(a, b) for a, b in runs] or [np.zeros(0, dtype=np.int64)])
    out = audio * np.float32(gain)
    scaled = out[:, index]
    curve = np.asarray(0.2 + 0.8 * rng.random(len(index)), dtype=np.float32)
    out[:, index] = scaled * curve
    derived = LimitedFarField.of(FarField.measure(audio), gain, scaled - out[:, index], runs, samples)
    measured = FarField.measure(out)
    rows = np.arange(samples + 1)
    read = (
        rows if samples <= 60_000 else np.unique(np.append(rng.integers(0, samples + 1, 3_000), index[:500]))
    )
    fractions = np.arange(1, 8) / 8
    bound = derived.block_bound(-(-(samples + 1) // BLOCK))
    scale = float(np.abs(measured.grid).max()) + 1e-3
    for c in range(channels):
        exact = measured.at(c, rows - 1, fractions)
        got = derived.at(c, read - 1, fractions)
        np.testing.assert_allclose(got, exact[read], atol=2e-6 * scale, rtol=0)
        values = np.abs(exact).max(axis=1)
        assert (values <= bound[rows // BLOCK] * (1 + 1e-5) + 1e-7).all()
        edge = rows[(rows < 24) | (rows > samples - 24)]  # the rows read looped (their windows pass an end)
        copy = np.where(edge < samples // 2, samples, -samples)  # where the neighbouring copy's far part is
        looped = np.abs(exact[edge] + measured.at(c, edge - 1 + copy, fractions)).max(axis=1)
        assert (looped <= bound[edge // BLOCK] * (1 + 1e-5) + 1e-7).all()


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(100, 30_000),
    channels=st.integers(1, 3),
    spans=st.integers(0, 10),
    width=st.integers(1, 2_000),
    gain=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**16),
)
def test_scaled_span_bounds_hold_the_outputs_values(  # noqa: PLR0917 (hypothesis passes each drawn value)
    samples: int, channels: int, spans: int, width: int, gain: float, seed: int
) -> None:
    """A limiter's output's span bounds derived from the clip's (scaled, re-computed around the changed
    ranges) hold every near-part and Annex 2 value of the output, and are the output's own within the
    rounding allowance."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * rng.uniform(0.01, 1.0, (channels, 1))).astype(
        np.float32
    )
    starts = np.unique(rng.integers(0, samples, spans))
    stops = np.minimum(np.append(starts[1:], samples), starts + width)
    runs = np.stack([starts, stops], axis=1).astype(np.int64)
    out = audio * np.float32(gain)
    for a, b in runs:
        out[:, a:b] *= rng.uniform(0.0, 1.0, (channels, b - a)).astype(np.float32)
    derived = scaled_span_bounds(out, span_bounds(audio), gain, runs)
    own = span_bounds(out)
    rows = np.arange(samples + 1)
    values = np.maximum(near_sinc().peaks(out, rows)[:, 0], annex2().peaks(out, rows)[:, 0])
    inner = slice(64, samples - 63)
    assert np.all(values[inner] <= np.repeat(derived, 8)[: samples + 1][inner])
    # the output's own bound, give or take the rounding allowance (1e-5 of the clip's largest sample and
    # curvature: the scaled spans keep the clip's, larger where the limiter turned the loudest samples down)
    allowance = 1e-4 * gain * float(np.abs(audio).max())
    assert np.all(derived >= own * (1 - 2e-5) - allowance)
    assert np.all(derived <= own * (1 + 2e-5) + allowance)


@settings(max_examples=30, deadline=None)
@given(
    samples=st.integers(1, 6_000),
    channels=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    floor_share=st.floats(0.2, 1.0),
    sparse=st.booleans(),
)
def test_the_peak_need_read_from_the_clip_and_its_map_is_the_dense_need(
    samples: int, channels: int, seed: int, floor_share: float, sparse: bool
) -> None:
    """No full-length envelope nor need is made (memory): a map given the span bounds reads what one that
    makes them reads, and the limiter's need, read at any samples or tested a chunk at a time, equals the
    dense formula (zero rows, the values at their rows, the larger of each row pair and the envelope)."""
    from musicstore.audio import limiter
    from musicstore.audio.truepeak import largest_sample

    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((channels, samples)).astype(np.float32)
    if sparse:
        audio *= rng.random(samples) < 0.02
    envelope = sample_envelope(audio)
    assert largest_sample(audio) == float(envelope.max())
    far = FarField.measure(audio)
    floor = floor_share * float(envelope.max())
    full = peak_map(audio, floor, far)
    given_spans = peak_map(audio, floor, far, span_bounds(audio))
    assert np.array_equal(given_spans.rows, full.rows)
    assert np.array_equal(given_spans.values, full.values)
    assert np.array_equal(given_spans.ideal, full.ideal)
    assert given_spans.floor == full.floor
    assert full.sample_peak == float(envelope.max())
    dense = np.zeros(samples + 1, dtype=np.float32)
    dense[full.rows] = full.values
    expected = np.maximum(np.maximum(dense[:-1], dense[1:]), envelope)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limiter, "_HOT_CHUNK", int(rng.integers(1, samples + 2)))
        need = limiter._Need.of(audio, full)
        assert need.largest == float(expected.max())
        assert np.array_equal(need.at(np.arange(samples, dtype=np.int32)), expected)
        some = np.flatnonzero(rng.random(samples) < 0.3).astype(np.int32)
        assert np.array_equal(need.at(some), expected[some])
        gain = float(rng.uniform(0.5, 2.0))
        assert np.array_equal(need.hot(gain, floor), np.flatnonzero(expected * gain > floor))


ROUNDING = 1e-6
"""Relative difference of two float32 sums of the same terms grouped otherwise (a few last-place units)."""


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(1, 20_000),
    channels=st.integers(1, 3),
    spans=st.integers(0, 10),
    width=st.integers(1, 2_000),
    gain=st.floats(0.1, 4.0),
    level_share=st.floats(0.3, 1.0),
    clip_share=st.floats(0.3, 1.3),
    seed=st.integers(0, 2**32 - 1),
    sparse=st.booleans(),
)
def test_the_outputs_check_reusing_the_clips_screen_reads_the_same(  # noqa: PLR0917 (hypothesis)
    samples: int,
    channels: int,
    spans: int,
    width: int,
    gain: float,
    level_share: float,
    clip_share: float,
    seed: int,
    sparse: bool,
) -> None:
    """A limiter's output mapped with its clip's second screen reused (``peak_map(..., reuse=...)``): every
    row its own screen passes on is passed on, with the same values (to float32 rounding: the rows are
    interpolated in other groupings, so a sum may round differently in its last bit); the rows passed on
    besides are under the level; so the same rows are over the level, with the same values."""
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((channels, samples)) * rng.uniform(0.01, 1.0, (channels, 1))).astype(
        np.float32
    )
    if sparse:
        audio *= rng.random(samples) < 0.02
    if rng.random() < 0.3:  # near-Nyquist content
        audio += np.float32(0.5) * np.cos(np.pi * 0.98 * np.arange(samples)).astype(np.float32)
    starts = np.unique(rng.integers(0, samples, spans))
    stops = np.minimum(np.append(starts[1:], samples), starts + width)
    runs = np.stack([starts, stops], axis=1).astype(np.int64)
    out = audio * np.float32(gain)
    for a, b in runs:
        out[:, a:b] *= rng.uniform(0.0, 1.0, (channels, b - a)).astype(np.float32)
    level = level_share * float(np.abs(out).max())
    if level <= 0.0:
        return
    clip_spans = span_bounds(audio)
    clip = peak_map(audio, clip_share * level / gain, FarField.measure(audio), clip_spans, keep_screen=True)
    assert clip.screened is not None
    far = FarField.measure(out)
    bounds = span_bounds(out)
    own = peak_map(out, level, far, bounds)
    reused = peak_map(out, level, far, bounds, reuse=Reuse(clip.screened, gain, runs))
    assert reused.floor == own.floor and reused.sample_peak == own.sample_peak
    assert np.isin(own.rows, reused.rows).all()
    common = np.isin(reused.rows, own.rows)
    np.testing.assert_allclose(reused.values[common], own.values, rtol=ROUNDING, atol=0)
    np.testing.assert_allclose(reused.ideal[common], own.ideal, rtol=ROUNDING, atol=0)
    assert (reused.values[~common] <= level).all()
    margin = level * ROUNDING  # a value this near the level may round to either side of it
    clearly_over = reused.rows[reused.values > level + margin]
    assert np.isin(clearly_over, own.rows[own.values > level]).all()
    assert np.isin(own.rows[own.values > level + margin], reused.rows[reused.values > level]).all()


@settings(max_examples=60, deadline=None)
@given(
    puts=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 120)), max_size=30),
    entries=st.integers(1, 4),
    limit=st.integers(0, 100),
)
def test_the_far_parts_caches_are_bounded_in_bytes(
    puts: list[tuple[int, int]], entries: int, limit: int
) -> None:
    cache = farfield._BoundedCache(entries, limit)
    for key, nbytes in puts:
        cache.put((key,), key, nbytes)
        assert cache.held() <= limit
        assert len(cache.values) <= entries
        assert (cache.get((key,)) == key) == (nbytes <= limit)  # the newest stays, unless too large


def test_a_long_clips_spectrum_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """With caches too small for this clip's spectrum, measuring it keeps no full-length spectrum (traced:
    what stays besides the grid is the kernel's few taps), and its far part and kernel are the same."""
    audio = synthesize_music(20.0, 48_000, seed=3)
    samples = audio.shape[1]
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()
    kept = FarField.measure(audio)
    count = -(-samples // kept.step)
    key = (kept.start - count + 1, kept.start + kept.grid.shape[1] - 1, kept.step)
    size = farfield._transform_size(key[1] - key[0] + 1)
    spectrum_bytes = (size // 2 + 1) * 8
    kernel = farfield._far_kernel(*key, size)
    small = 1 << 19
    assert spectrum_bytes > 3 * small
    monkeypatch.setattr(farfield, "_SPECTRA", farfield._BoundedCache(4, small))
    monkeypatch.setattr(farfield, "_KERNELS", farfield._BoundedCache(4, small))
    tracemalloc.start()
    try:
        far = FarField.measure(audio)
        left = tracemalloc.get_traced_memory()[0] - far.grid.nbytes
    finally:
        tracemalloc.stop()
    assert left < small  # the spectrum (2 MB) went
    assert farfield._SPECTRA.held() == 0
    np.testing.assert_array_equal(far.grid, kept.grid)
    again = farfield._KERNELS.get((*key, size))  # made while the spectrum was at hand
    assert again is not None
    np.testing.assert_array_equal(again.taps, kernel.taps)
    np.testing.assert_array_equal(again.beyond, kernel.beyond)
    assert (again.window, again.deviation, again.error, again.near) == (
        kernel.window, kernel.deviation, kernel.error, kernel.near,
    )  # fmt: skip


def test_a_checks_map_makes_no_index_arrays_over_the_spans() -> None:
    """The map of a limiter's output (far part and span bounds given, no envelope): numpy's traced peak
    stays under an eighth of the audio's size (the far bound was added through three int64 index arrays
    over the spans, together three eighths of a stereo clip)."""
    samples = 1 << 21
    t = np.arange(samples) / RATE
    audio = np.stack([0.1 * np.sin(2 * np.pi * 1000 * t), 0.1 * np.cos(2 * np.pi * 700 * t)]).astype(
        np.float32
    )
    audio[:, samples // 2] = 0.9
    far = FarField.measure(audio)
    spans = span_bounds(audio)
    reference = peak_map(audio, None, far, spans)
    tracemalloc.start()
    try:
        checked = peak_map(audio, None, far, spans)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < audio.nbytes // 8
    np.testing.assert_array_equal(checked.rows, reference.rows)
    np.testing.assert_array_equal(checked.values, reference.values)


def test_a_limited_clips_kernel_is_made_with_its_far_part() -> None:
    """``FarField.measure(kernel=True)`` (a limiter's first map) leaves the kernel its output's check needs
    cached, the same as made later from the cached spectrum (made later, it added 0.8x a stereo clip)."""
    audio = synthesize_music(3.0, 48_000, seed=5)
    farfield._SPECTRA.clear()
    farfield._KERNELS.clear()
    far = FarField.measure(audio)
    count = -(-audio.shape[1] // far.step)
    key = (far.start - count + 1, far.start + far.grid.shape[1] - 1, far.step)
    size = farfield._transform_size(key[1] - key[0] + 1)
    assert farfield._KERNELS.get((*key, size)) is None  # the spectrum is cached: no kernel yet
    later = farfield._far_kernel(*key, size)
    farfield._KERNELS.clear()
    again = FarField.measure(audio, kernel=True)
    np.testing.assert_array_equal(again.grid, far.grid)
    made = farfield._KERNELS.get((*key, size))
    assert made is not None
    np.testing.assert_array_equal(made.taps, later.taps)
    np.testing.assert_array_equal(made.beyond, later.beyond)
