"""Metadata from files and tensors, and the tempo estimate on click tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicstore.audio import (
    ExportOptions,
    analyze_audio,
    analyze_file,
    click_track,
    estimate_tempo,
    export_audio,
    synthesize_music,
)
from musicstore.errors import InvalidAudio, StorageError

RATE = 32_000


@pytest.mark.parametrize("bpm", [60, 67.5, 80, 92, 100, 117, 120, 133, 150, 165, 180])
@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_tempo_of_click_tracks(bpm: float, rate: int) -> None:
    estimate = estimate_tempo(click_track(bpm, 15.0, rate), rate)
    assert estimate is not None and abs(estimate - bpm) <= 2.0


def test_no_tempo_in_silence_or_steady_tone() -> None:
    assert estimate_tempo(np.zeros((1, RATE * 5), dtype=np.float32), RATE) is None
    tone = np.sin(np.arange(RATE * 5) * 0.1).astype(np.float32)
    assert estimate_tempo(tone, RATE) is None


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("samples", [1, 80, 159])  # under two 2.5 ms hops at 32 kHz
def test_no_tempo_and_no_warning_in_a_few_samples(samples: int) -> None:
    clip = np.random.default_rng(1).standard_normal((2, samples)).astype(np.float32) * np.float32(0.1)
    assert estimate_tempo(clip, RATE) is None
    assert analyze_audio(clip, RATE, tempo=True).bpm is None


def test_full_scale_sine_figures() -> None:
    t = np.arange(RATE * 4) / RATE
    sine = np.tile(np.sin(2 * np.pi * 1000 * t), (2, 1)).astype(np.float32) * np.float32(0.5)
    info = analyze_audio(sine, RATE)
    assert info.sample_peak == pytest.approx(-6.02, abs=0.01)
    assert info.rms == pytest.approx(-6.02 - 3.01, abs=0.01)
    assert info.crest_factor == pytest.approx(3.01, abs=0.01)
    assert info.true_peak == pytest.approx(-6.02, abs=0.1)
    assert info.integrated_loudness == pytest.approx(-6.02, abs=0.05)  # stereo 1 kHz sine
    assert info.loudness_range == pytest.approx(0.0, abs=0.1)
    assert (info.frames, info.channels, info.duration, info.subtype) == (RATE * 4, 2, 4.0, None)
    assert info.bpm is None


def test_analyze_exported_file(tmp_path: Path) -> None:
    music = synthesize_music(8.0, RATE, bpm=120.0)
    result = export_audio(music, RATE, tmp_path / "m.flac", ExportOptions(subtype="PCM_24"))
    info = analyze_file(result.path, tempo=True)
    assert info.subtype == "PCM_24" and info.frames == music.shape[1] and info.sample_rate == RATE
    assert info.integrated_loudness == pytest.approx(result.loudness_after, abs=0.01)
    assert info.true_peak == pytest.approx(result.true_peak_after, abs=0.01)
    assert info.loudness_range is not None and info.loudness_range >= 0
    assert info.bpm is not None and abs(info.bpm - 120.0) <= 2.0


def test_analyze_file_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        analyze_file(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(InvalidAudio):
        analyze_file(junk)


def test_synth_is_deterministic() -> None:
    a = synthesize_music(2.0, RATE, seed=5)
    assert np.array_equal(a, synthesize_music(2.0, RATE, seed=5))
    assert not np.array_equal(a, synthesize_music(2.0, RATE, seed=6))
    assert a.shape == (2, RATE * 2) and a.dtype == np.float32
    assert float(np.abs(a).max()) == pytest.approx(0.5)


@pytest.mark.parametrize("exponent", [49, 80, 100, 127])
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_analysis_of_a_clip_scaled_by_a_power_of_two_reads_the_same_shifted(exponent: int) -> None:
    """A finite clip far beyond full scale (a model's runaway output): its float32 loudness power overflowed
    beyond 2**64 (the loudness range read NaN) and the tempo's onset RMS beyond 2**64 (inf). Its levels are
    the clip's at scale 1 raised by 20 log10 2**k; the range and the tempo do not move."""
    audio = synthesize_music(12.0, RATE, seed=3, bpm=120)
    audio[:, : 4 * RATE] *= 0.1  # a quiet first part: a loudness range of some LU
    audio = (audio / np.abs(audio).max() * 0.75).astype(np.float32)
    shift = 20 * np.log10(2.0**exponent)
    plain = analyze_audio(audio, RATE, tempo=True)
    big = analyze_audio(np.ldexp(audio, exponent).astype(np.float32), RATE, tempo=True)
    assert plain.loudness_range is not None and plain.loudness_range > 1.0 and plain.bpm is not None
    assert big.loudness_range == pytest.approx(plain.loudness_range, abs=1e-9)
    assert big.bpm == plain.bpm
    for name in ("integrated_loudness", "true_peak", "sample_peak", "rms"):
        assert getattr(big, name) == pytest.approx(getattr(plain, name) + shift, abs=1e-9), name
    assert big.crest_factor == pytest.approx(plain.crest_factor, abs=1e-9)
