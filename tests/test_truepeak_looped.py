"""The accurate meter's looped (periodic) reading at a clip's ends, against an FFT meter's.

``true_peak`` reads the zero-padded reconstruction everywhere and, within ``LOOPED_ROWS`` (32) samples of
an end, also the looped one (the clip repeated end to end, as a periodic FFT meter reads it), keeping the
larger value. These tests hold it to the 32x FFT readings of ``tests/reference_meter.py``: at most
0.1 dB under the larger of the zero-padded reading and the periodic reading within 32 samples of an
end (``UNDER``). The export hunt found clips read up to 0.78 dB low there: the looped reading covered
only the 24 rows whose near window wraps, and added one neighbouring copy's far part, not every copy's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.signal import resample

from musicstore.audio.farfield import DIRECT_LOOP, LOOPED_ROWS, FarField, periodic_values
from musicstore.audio.interpolation import annex2, near_sinc
from musicstore.audio.limited_far import LimitedFarField
from musicstore.audio.truepeak import ideal_peaks, peak_map, to_db, true_peak

UP = 32
# dB under the larger reading within LOOPED_ROWS of an end (docs/export.md, "True peak: the measured error"):
# the corpus's 0.033 dB plus the far part's grid error near an end (its low band stops at the clip's last
# grid point); hypothesis found 0.054 dB (516-sample noise bursts, the zero-padded reading), 0.05 dB
# (bursts and tones of 1,024-4,348 samples, the looped one) and 0.074 dB (2,048 samples of stereo noise)
UNDER = 0.1
# dB over the larger of both readings: the far part's grid reads a hard-edged near-Nyquist tone up to 1.6 %
# off within 40 samples of an end (its low band stops at the clip's last grid point); 0.063 dB measured
# at first, then 0.10-0.12 dB in 6 of ~8,300 random draws of its clips (2026-12-04; the examples below)
OVER = 0.15


def readings(audio: NDArray[np.float32]) -> tuple[float, float, float]:
    """32x FFT readings (linear): zero-padded (everywhere, silence around the clip included), periodic
    within ``LOOPED_ROWS`` samples of an end, periodic anywhere."""
    x = audio.astype(np.float64)
    samples = x.shape[1]
    pad = max(samples, 4096)
    zero_padded = float(
        np.abs(resample(np.pad(x, ((0, 0), (pad, pad))), (samples + 2 * pad) * UP, axis=1)).max()
    )
    looped = np.abs(resample(x, samples * UP, axis=1)).max(axis=0)
    at = np.arange(samples * UP) / UP
    ends = (at < LOOPED_ROWS) | (at > samples - LOOPED_ROWS - 1)
    peak = float(np.abs(x).max())
    return max(zero_padded, peak), float(looped[ends].max()), float(looped.max())


def ends_clip(kind: str, samples: int, channels: int, seed: int) -> NDArray[np.float32]:
    """Loud content at the ends over a quiet body (or a tone throughout): what rings at the junction."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    audio = rng.standard_normal((channels, samples)) * 0.01
    if kind == "tone":  # a near-Nyquist tone, hard edges at both ends
        audio += np.sin(2 * np.pi * rng.uniform(0.85, 0.999) * 0.5 * t + rng.uniform(0, 2 * np.pi)) * 0.5
    elif kind == "bursts":  # near-Nyquist bursts at both ends
        for channel in audio:
            for side in (0, 1):
                width = int(rng.integers(4, 80))
                burst = np.sin(
                    2 * np.pi * rng.uniform(0.85, 0.999) * 0.5 * np.arange(width) + rng.uniform(0, 6.3)
                )
                burst *= rng.uniform(0.2, 0.8)
                if side:
                    channel[samples - width :] += burst
                else:
                    channel[:width] += burst
    elif kind == "noise":  # loud noise bursts at both ends
        for channel in audio:
            width = int(rng.integers(4, 80))
            channel[:width] += rng.standard_normal(width) * rng.uniform(0.1, 0.5)
            channel[samples - width :] += rng.standard_normal(width) * rng.uniform(0.1, 0.5)
    else:  # a hard step at the junction: the last samples high, the first low
        width = int(rng.integers(2, 60))
        audio[:, :width] -= 0.5
        audio[:, samples - width :] += 0.5
    return audio.astype(np.float32)


@settings(max_examples=40, deadline=None)
@example(kind="bursts", samples=200, channels=1, seed=23614)  # a peak 0.04 samples beside the largest sample
@example(kind="noise", samples=2048, channels=2, seed=23105)  # 0.074 dB under (over 0.07: a CI seed failed)
@example(kind="tone", samples=1024, channels=2, seed=15328)  # 0.12 dB over (over 0.1: a seed failed)
@example(kind="bursts", samples=5716, channels=2, seed=50587)  # 0.11 dB over
@given(
    kind=st.sampled_from(["tone", "bursts", "noise", "step"]),
    samples=st.one_of(st.integers(200, DIRECT_LOOP), st.integers(DIRECT_LOOP, 6000)),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_the_ends_read_as_a_periodic_meter_reads_them(
    kind: str, samples: int, channels: int, seed: int
) -> None:
    audio = ends_clip(kind, samples, channels, seed)
    zero_padded, looped_ends, looped = readings(audio)
    measured = to_db(true_peak(audio))
    assert measured >= to_db(max(zero_padded, looped_ends)) - UNDER
    assert measured <= to_db(max(zero_padded, looped)) + OVER


@pytest.mark.parametrize("seed", [10, 11])
def test_the_junctions_ringing_past_the_wrapped_windows(seed: int) -> None:
    """Near-Nyquist bursts of 30 samples at both ends of a quiet clip: the looped reconstruction peaks 29-31
    samples from an end, 0.65-0.79 dB over the zero-padded one (read 0.66-0.78 dB low before)."""
    rng = np.random.default_rng(seed)
    samples = 4001 + seed % 2
    x = rng.standard_normal(samples) * 0.01
    for side in (0, 1):
        burst = np.sin(2 * np.pi * 0.97 * 0.5 * np.arange(30) + rng.uniform(0, 6.3)) * 0.5
        if side:
            x[samples - 30 :] += burst
        else:
            x[:30] += burst
    audio = x.astype(np.float32)[None]
    zero_padded, looped_ends, _ = readings(audio)
    assert to_db(looped_ends) > to_db(zero_padded) + 0.6
    assert to_db(true_peak(audio)) == pytest.approx(to_db(looped_ends), abs=0.02)


@pytest.mark.parametrize("samples", [1024, 1025, 5000, 20_001, 40_000])
def test_the_looped_values_at_the_ends_are_the_periodic_sincs(samples: int) -> None:
    """The other copies' far share through the Chebyshev nodes is the closed-form kernel summed over every
    sample; the looped values (near part over the wrapped window plus the far parts of the clip, its
    neighbour and the other copies) are the periodic sinc summed directly, to the far grid's own error
    (that of the zero-padded values at the same rows)."""
    rng = np.random.default_rng(samples)
    x = np.clip(rng.standard_normal(samples) * 0.7, -1, 1).astype(np.float32)  # full-band, loud at the ends
    far = FarField.measure(x[None])
    interpolator = near_sinc()
    fractions = interpolator.fractions
    assert fractions is not None
    rows = np.concatenate([np.arange(LOOPED_ROWS + 1), np.arange(samples - LOOPED_ROWS, samples + 1)])
    before = rows - 1
    t = before[:, None] + fractions[None, :]
    lags = t[:, :, None] - np.arange(samples)  # (rows, F, S)
    z = np.where(np.arange(samples) % 2, -1.0, 1.0) * x
    sign = -1.0 if samples % 2 else 1.0
    neighbour = np.where(rows <= samples // 2, samples, -samples)
    every = (np.pi / samples) / (
        np.sin(np.pi * lags / samples) if samples % 2 else np.tan(np.pi * lags / samples)
    )
    others = (every - 1 / lags - sign / (lags + neighbour[:, None, None])) @ z  # the neighbour: at lag -shift
    others *= np.sin(np.pi * t) / np.pi
    copies = far.copies_at(before, fractions)[0]
    assert np.abs(copies - others).max() < 1e-6 * max(1.0, float(np.abs(others).max()))

    window = rows[:, None] - (1 - interpolator.first_offset) + np.arange(interpolator.matrix.shape[0])
    inside = (window >= 0) & (window < samples)
    own_far = far.at(0, before, fractions)
    looped = (
        x[window % samples] @ interpolator.matrix
        + own_far
        + far.at(0, before + neighbour, fractions)
        + copies
    )
    exact = periodic_values(x, before, fractions)
    fft = resample(x.astype(np.float64), samples * 8)[(before[:, None] * 8 + np.arange(1, 8)) % (samples * 8)]
    assert np.abs(exact - fft).max() < 1e-5
    zero_padded = np.where(inside, x[window % samples], np.float32(0.0)) @ interpolator.matrix + own_far
    grid_error = float(np.abs(zero_padded - np.sinc(lags) @ x).max())
    assert np.abs(looped - exact).max() <= 2 * grid_error + 1e-5


@pytest.mark.parametrize("samples", [3000, 50_000])
def test_a_limited_outputs_copies_are_the_outputs(samples: int) -> None:
    """The other copies' weights of ``gain * x - d`` (a limiter's output, ``d`` on a few spans, one at each
    end) are those of the output measured afresh (exactly up to the block sums over long clips)."""
    rng = np.random.default_rng(samples)
    x = (rng.standard_normal((2, samples)) * 0.3).astype(np.float32)
    spans = np.asarray([[0, 40], [samples // 3, samples // 3 + 500], [samples - 70, samples]], dtype=np.int64)
    lengths = spans[:, 1] - spans[:, 0]
    difference = (rng.standard_normal((2, int(lengths.sum()))) * 0.1).astype(np.float32)
    gain = 0.8
    out = x * np.float32(gain)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for (a, b), first, last in zip(spans.tolist(), offsets[:-1], offsets[1:], strict=True):
        out[:, a:b] -= difference[:, first:last]
    limited = LimitedFarField.of(FarField.measure(x), gain, difference, spans, samples)
    fresh = FarField.measure(out)
    assert limited.copies is not None and fresh.copies is not None
    scale = float(np.abs(out).sum())
    assert np.abs(limited.copies.weights - fresh.copies.weights).max() < 1e-5 * scale


def _dropped_ends(audio: NDArray[np.float32], floor: float, far: FarField) -> None:
    """Every row within ``LOOPED_ROWS`` of an end that the map left out reads at most its floor: the looped
    and zero-padded readings on the grid and on the fine grid, and the Annex 2 values."""
    samples = audio.shape[1]
    peaks = peak_map(audio, floor, far)
    ends = np.concatenate([np.arange(LOOPED_ROWS + 1), np.arange(samples - LOOPED_ROWS, samples + 1)])
    dropped = np.setdiff1d(ends, peaks.rows)
    if dropped.size:
        level = peaks.floor * (1 + 1e-6)
        assert ideal_peaks(audio, dropped, far).max() <= level
        assert ideal_peaks(audio, dropped, far, 64).max() <= level
        assert annex2().peaks(audio, dropped)[:, 0].max() <= level


@settings(max_examples=40, deadline=None)
@example(kind="step", samples=1024, channels=1, seed=0, share=0.875, gain=1.0)  # row 0 beside x[S - 1]
@given(
    kind=st.sampled_from(["tone", "bursts", "noise", "step"]),
    samples=st.integers(DIRECT_LOOP, 6000),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**16),
    share=st.floats(0.2, 1.0),
    gain=st.floats(0.3, 1.0),
)
def test_the_ends_left_out_of_a_map_read_under_its_floor(
    *, kind: str, samples: int, channels: int, seed: int, share: float, gain: float
) -> None:
    """The screen holds the rows read looped (their bound: the near part over both windows, the far parts of
    the clip, its neighbour and the other copies), so a map leaves them out only where every reading there
    is under its floor: a clip's map, and a limited output's (its far part derived, a difference at each end
    and inside)."""
    audio = ends_clip(kind, samples, channels, seed)
    far = FarField.measure(audio)
    _dropped_ends(audio, share * float(np.abs(audio).max()), far)
    rng = np.random.default_rng(seed)
    spans = np.asarray([[0, 40], [samples // 3, samples // 3 + 300], [samples - 70, samples]], dtype=np.int64)
    lengths = spans[:, 1] - spans[:, 0]
    difference = np.concatenate(
        [audio[:, a:b] * np.float32(gain) * rng.uniform(0, 0.5) for a, b in spans.tolist()], axis=1
    ).astype(np.float32)
    out = audio * np.float32(gain)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for (a, b), first, last in zip(spans.tolist(), offsets[:-1], offsets[1:], strict=True):
        out[:, a:b] -= difference[:, first:last]
    limited = LimitedFarField.of(far, gain, difference, spans, samples)
    _dropped_ends(out, share * float(np.abs(out).max()), limited)


def test_a_map_reads_no_looped_row_where_the_ends_are_quiet() -> None:
    """Quiet ends under a loud body: the screen leaves the looped rows out (they were always read: a tenth
    of a 30 s clip's map, more of a limited output's, whose far part the difference's share is summed for)."""
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal((2, 20_000)) * 0.3).astype(np.float32)
    audio[:, :200] *= np.float32(0.02)
    audio[:, -200:] *= np.float32(0.02)
    rows = peak_map(audio).rows
    assert rows.size and not ((rows <= LOOPED_ROWS) | (rows >= audio.shape[1] - LOOPED_ROWS)).any()
