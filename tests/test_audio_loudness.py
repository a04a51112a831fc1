"""Loudness per BS.1770-4 / EBU Tech 3341 and loudness range per EBU Tech 3342, on synthesised signals."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from musicstore.audio.loudness import (
    BlockPower,
    changed_block_means,
    gated_loudness,
    integrated_loudness,
    loudness_range,
)

RATE = 48_000


def tone(segments: list[tuple[float, float]], channels: int = 2, rate: int = RATE) -> NDArray[np.float32]:
    """1 kHz sine in consecutive (dBFS peak, seconds) segments, on every channel."""
    parts = []
    for level_db, seconds in segments:
        t = np.arange(round(seconds * rate)) / rate
        parts.append(10 ** (level_db / 20) * np.sin(2 * np.pi * 1000.0 * t))
    mono = np.concatenate(parts)
    return np.tile(mono, (channels, 1)).astype(np.float32)


TECH_3341 = {
    "case 1": ([(-23.0, 20.0)], -23.0),
    "case 2": ([(-33.0, 20.0)], -33.0),
    "case 3": ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
    "case 4": ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),
    "case 5": ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
}


@pytest.mark.parametrize("case", sorted(TECH_3341))
def test_tech_3341_integrated_loudness(case: str) -> None:
    segments, expected = TECH_3341[case]
    assert integrated_loudness(tone(segments), RATE).lufs == pytest.approx(expected, abs=0.1)


def test_tech_3341_case_6_five_channels() -> None:
    # L, R at -28 dBFS, C at -24, Ls, Rs at -30 (channel order L, R, C, Ls, Rs)
    levels = (-28.0, -28.0, -24.0, -30.0, -30.0)
    audio = np.concatenate([tone([(level, 20.0)], channels=1) for level in levels])
    assert integrated_loudness(audio, RATE).lufs == pytest.approx(-23.0, abs=0.1)


TECH_3342 = {
    "case 1": ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),
    "case 2": ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),
    "case 3": ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),
    "case 4": ([(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
}


@pytest.mark.parametrize("case", sorted(TECH_3342))
def test_tech_3342_loudness_range(case: str) -> None:
    segments, expected = TECH_3342[case]
    blocks = BlockPower.measure(tone(segments), RATE)
    measured = loudness_range(blocks)
    assert measured is not None
    assert measured == pytest.approx(expected, abs=1.0)


@pytest.mark.parametrize("rate", [8_000, 44_100, 96_000])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_matches_pyloudnorm(rate: int, channels: int) -> None:
    rng = np.random.default_rng(rate + channels)
    audio = (rng.standard_normal((channels, rate * 3)) * 0.1).astype(np.float32)
    audio[:, : rate // 2] *= 0.001  # a quiet start exercises both gates
    expected = pyloudnorm.Meter(rate).integrated_loudness(audio.T.astype(np.float64))
    assert integrated_loudness(audio, rate).lufs == pytest.approx(expected, abs=1e-6)


def test_mono_is_measured_as_one_channel() -> None:
    mono = tone([(-20.0, 5.0)], channels=1)
    stereo = tone([(-20.0, 5.0)], channels=2)
    difference = integrated_loudness(stereo, RATE).lufs - integrated_loudness(mono, RATE).lufs
    assert difference == pytest.approx(10 * np.log10(2), abs=0.01)


def test_short_clip_is_measured_whole_and_flagged() -> None:
    clip = tone([(-20.0, 0.25)])
    result = integrated_loudness(clip, RATE)
    assert result.short
    # a 1 kHz sine at -20 dBFS on two channels is -20 LUFS; one block over the whole clip
    assert result.lufs == pytest.approx(-20.0, abs=0.1)
    assert not integrated_loudness(tone([(-20.0, 0.5)]), RATE).short


def test_eight_channels_are_weighted_equally() -> None:
    one = tone([(-30.0, 5.0)], channels=1)
    eight = np.repeat(one, 8, axis=0)
    gain = integrated_loudness(eight, RATE).lufs - integrated_loudness(one, RATE).lufs
    assert gain == pytest.approx(10 * np.log10(8), abs=0.01)


def test_silence_is_minus_infinity_and_has_no_range() -> None:
    silence = np.zeros((2, RATE * 4), dtype=np.float32)
    assert integrated_loudness(silence, RATE).lufs == float("-inf")
    assert loudness_range(BlockPower.measure(silence, RATE)) is None


def test_range_needs_three_seconds() -> None:
    blocks = BlockPower.measure(tone([(-20.0, 2.0)]), RATE)
    assert loudness_range(blocks) is None


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([8_000, 32_000, 44_100, 96_000]),
    channels=st.integers(1, 3),
    seconds=st.floats(2.5, 5.0),
    gain=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**16),
    # short enough that three spans and their settling stay under half the clip at every rate (at 8 kHz,
    # 2 s and spans of 3,000 samples they covered most of it: measured whole, rightly)
    spans=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 1_000)), min_size=1, max_size=3),
)
def test_changed_block_means_equal_a_full_measurement(  # noqa: PLR0917 (hypothesis)
    rate: int, channels: int, seconds: float, gain: float, seed: int, spans: list[tuple[float, int]]
) -> None:
    """The output's loudness re-measured only around the changed spans equals measuring it whole."""
    rng = np.random.default_rng(seed)
    samples = max(1, round(seconds * rate))
    x = (rng.standard_normal((channels, samples)) * 0.2).astype(np.float32)
    out = x * np.float32(gain)
    ranges = sorted({(min(int(at * samples), samples - 1), length) for at, length in spans})
    merged: list[list[int]] = []
    for start, length in ranges:
        stop = min(samples, start + length)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    for start, stop in merged:  # a limiter-like dip, different on each channel
        out[:, start:stop] *= rng.uniform(0.3, 1.0, (channels, 1)).astype(np.float32)
    blocks = BlockPower.measure(x, rate)
    means = changed_block_means(blocks, gain, x, out, np.asarray(merged, dtype=np.int64))
    whole = BlockPower.measure(out, rate).block_means()
    assert means is not None  # a few short spans in seconds of audio: re-measured around them only
    np.testing.assert_allclose(means, whole, rtol=1e-6, atol=1e-12)
    assert gated_loudness(means) == pytest.approx(integrated_loudness(out, rate).lufs, abs=1e-5)
    wide = np.asarray([[0, samples]], dtype=np.int64)  # most of the clip changed: measured whole instead
    assert changed_block_means(blocks, gain, x, out, wide) is None


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(1, 5_000),
    channels=st.integers(1, 3),
    chunk=st.sampled_from([7, 64, 1_000, 1 << 16]),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_the_power_made_again_from_the_filters_states_is_the_held_power(
    samples: int, channels: int, chunk: int, share: float, seed: int
) -> None:
    """Property: a clip measured without its per-sample power (memory) has the same block means, and its
    power at any sorted positions, filtered again from the chunks' saved states up to the last position
    in each, is the held power bit for bit."""
    from musicstore.audio import loudness

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((channels, samples)) * rng.uniform(0.01, 1.0, (channels, 1))).astype(np.float32)
    positions = np.flatnonzero(rng.random(samples) < share).astype(np.int32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loudness, "_CHUNK", chunk)
        held = BlockPower.measure(x, 16_000)
        light = BlockPower.measure(x, 16_000, keep_power=False)
    assert held.power is not None and light.power is None
    assert np.array_equal(light.block_means(), held.block_means())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loudness, "_CHUNK", chunk)
        again = light.power_at(x, positions)
    assert again.dtype == np.float32
    assert np.array_equal(again, held.power[positions])
    assert np.array_equal(held.power_at(x, positions), held.power[positions])
