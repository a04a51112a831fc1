"""Regressions found hunting musicstore.audio's analysis, peaks and array hand-off (one test per bug)."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio.analysis import analyze_file, estimate_tempo
from musicstore.audio.arrays import as_audio
from musicstore.audio.peaks import compute_peaks, file_peaks, frames_peaks
from musicstore.audio.synth import click_track
from musicstore.errors import InvalidAudio, InvalidInput


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1.5, 1.5, width=32), min_size=1, max_size=300),
    digits=st.integers(0, 6),
)
def test_normalized_peaks_are_rounded_to_the_digits_asked(values: list[float], digits: int) -> None:
    """``normalized(digits)`` rounded the float32 extremes in float32 and handed out their float64 reading:
    0.3845 came out as 0.38449999690055847 (the web API's computed waveform, twice the JSON of the recorded
    one, which rounds in float64). Each value is now the float64 extreme, clipped, rounded to ``digits``."""
    x = np.asarray(values, dtype=np.float32)
    peaks = compute_peaks(x, 16_000, 7)
    expected = [
        float(np.round(min(max(float(v), -1.0), 1.0), digits))
        for bucket in peaks.extremes[:, 0, :]
        for v in bucket
    ]
    (got,) = peaks.normalized(digits)
    assert got == expected
    assert all(v == round(v, digits) for v in got)
    assert json.loads(json.dumps(got)) == expected


@pytest.mark.parametrize("digits", ["4", None, 1.5, True, -1, 18, 10**6])
def test_normalized_peaks_take_0_to_17_digits(digits: Any) -> None:
    """A str, None or 1.5 was a bare TypeError, -1 rounded every value to 0.0, 10**6 made every value NaN
    (numpy's rounding overflowed), True rounded to 1 digit."""
    peaks = compute_peaks(np.linspace(-0.5, 0.5, 4000, dtype=np.float32), 16_000, 256)
    with pytest.raises(InvalidInput, match="digits must be"):
        peaks.normalized(digits)
    exact = np.clip(peaks.extremes[:, 0, :], -1, 1).astype(np.float64).ravel()
    assert np.abs(np.asarray(peaks.normalized(17)[0]) - exact).max() < 1e-16


@pytest.mark.parametrize(
    "kwargs",
    [
        {"block_frames": 1000.5},
        {"block_frames": "4096"},
        {"block_frames": None},
        {"block_frames": True},
        {"block_frames": 0},
        {"block_frames": -256},
        {"split_channels": "no"},
        {"split_channels": 1},
        {"split_channels": None},
    ],
)
def test_peaks_settings_are_checked(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    """compute_peaks, frames_peaks and file_peaks raised TypeError on a block_frames that is not an int
    (1000.5, "4096", None), took 0 or a negative one as one bucket, and read split_channels="no" as True
    (PeaksSpec refused it). Each is now InvalidInput, as samples_per_pixel and bits are."""
    audio = np.zeros((2, 1000), dtype=np.float32)
    path = tmp_path / "clip.wav"
    sf.write(path, audio.T, 16_000)
    calls: list[Callable[[], object]] = [
        lambda: compute_peaks(audio, 16_000, 64, **kwargs),
        lambda: frames_peaks(np.zeros((1000, 2), dtype=np.int16), 16_000, 64, **kwargs),
        lambda: file_peaks(path, 64, **kwargs),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()


@pytest.mark.parametrize(
    "scale",
    [Fraction(1, 3), 10**400, -(10**400), Fraction(10**400, 3)],
    ids=["fraction", "huge int", "huge negative int", "huge fraction"],
)
def test_an_integer_clips_scale_is_checked_whatever_number_it_is(scale: Any) -> None:
    """A scale= numpy could not take (a Fraction, an int past float's range) raised TypeError from
    np.isfinite, not InvalidInput; a Fraction in range is a number like any other."""
    pcm = np.array([[1, -2, 3]], dtype=np.int16)
    exact = isinstance(scale, Fraction) and abs(scale) < 10
    if exact:  # in range: as its float
        np.testing.assert_array_equal(as_audio(pcm, scale=scale), as_audio(pcm, scale=float(scale)))
        return
    with pytest.raises(InvalidInput, match="scale must be a positive finite number"):
        as_audio(pcm, scale=scale)


@pytest.mark.parametrize("path", [None, 5, b"clip.wav", "clip\x00.wav"], ids=["None", "int", "bytes", "NUL"])
def test_a_peaks_path_that_is_not_a_path_is_invalid_input(path: Any) -> None:
    """file_peaks and WaveformPeaks.write took any object to Path(): None, an int or bytes raised TypeError
    (analyze_file, export_audio say InvalidInput), a NUL was quoted into the message as it was."""
    with pytest.raises(InvalidInput, match="must be a str or a Path without NUL"):
        file_peaks(path)
    peaks = compute_peaks(np.zeros(10, dtype=np.float32), 16_000)
    json_path = {"clip.wav": "clip.json", b"clip.wav": b"clip.json", "clip\x00.wav": "clip\x00.json"}.get(
        path, path
    )
    with pytest.raises(InvalidInput, match="must be a str or a Path without NUL"):
        peaks.write(json_path)


def _wide(values: list[float]) -> list[Any]:
    """``values`` as float64 and long double arrays, and a float64 tensor where torch is installed."""
    arrays: list[Any] = [np.array(values, dtype=np.float64), np.array(values, dtype=np.longdouble)]
    try:
        import torch
    except ImportError:
        return arrays
    return [*arrays, torch.tensor(values, dtype=torch.float64)]


def test_finite_values_beyond_float32_are_not_called_infinite() -> None:
    """A float64 clip holding 1e39 (finite) was refused as "1 non-finite values (0 NaN, 1 Inf)", after
    numpy's "overflow encountered in cast" RuntimeWarning (an exception under -W error). It is now
    InvalidAudio naming the values beyond float32's range; a real infinity still reads as one."""
    for audio in _wide([0.0, 0.5, -1e39, 2e300]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(InvalidAudio, match="2 values beyond float32's range") as caught:
                as_audio(audio)
        assert "the first at channel 0, sample 2" in str(caught.value) and "Inf" not in str(caught.value)
    for audio in _wide([0.0, math.inf, 1e39]):
        with pytest.raises(InvalidAudio, match=r"1 non-finite values \(0 NaN, 1 Inf\)"):
            as_audio(audio)
    for audio in _wide([0.0, 3e38, -3e38]):  # within float32's range: accepted as before
        assert as_audio(audio).dtype == np.float32


@pytest.mark.parametrize(
    ("frames", "rate", "match"),
    [
        (np.zeros((800, 2)), 4_000, "4000 Hz, outside the 8000–384000 Hz"),
        (np.zeros((100, 10)), 16_000, "10 channels, more than the 8"),
        (np.zeros((0, 2)), 16_000, "holds no audio frames"),
    ],
    ids=["4 kHz", "10 channels", "no frames"],
)
def test_a_file_musicstore_cannot_measure_says_so_about_the_file(
    tmp_path: Path, frames: np.ndarray[Any, Any], rate: int, match: str
) -> None:
    """analyze_file of a valid 4 kHz WAV raised InvalidInput "sample_rate 4000 Hz ...; pass the real rate",
    of a 10-channel one "pass (C, S), not (S, C)", of an empty one "audio is empty (shape (2, 0))": about a
    caller's array, not the file. It is now
    InvalidAudio naming the file and what it holds, raised from its header before its samples are read."""
    path = tmp_path / "clip.wav"
    sf.write(path, frames, rate)
    with pytest.raises(InvalidAudio, match=match) as caught:
        analyze_file(path)
    assert str(path) in str(caught.value) and "pass" not in str(caught.value)


def test_estimate_tempo_takes_integer_audio_with_its_scale() -> None:
    """estimate_tempo refused int16 audio with "integer audio (int16) needs scale=", but took no scale=
    (TypeError when the advice was followed); analyze_audio(..., scale=, tempo=True) had to be used. It
    takes scale= now, as analyze_audio and export_audio do, and reads the same tempo as from floats."""
    clicks = click_track(96.0, 10.0, 16_000)
    pcm = np.round(clicks * 32_767).astype(np.int16)
    with pytest.raises(InvalidAudio, match="needs scale="):
        estimate_tempo(pcm, 16_000)
    found = estimate_tempo(pcm, 16_000, scale=32_768)
    assert found is not None and found == estimate_tempo(pcm.astype(np.float32) / 32_768, 16_000)
    assert round(found) == 96


def test_compute_peaks_takes_integer_audio_with_its_scale() -> None:
    """compute_peaks refused int16 audio with "integer audio (int16) needs scale=" but took no scale= (a
    TypeError when the advice was followed). It takes scale= now, and gives the peaks of the floats."""
    pcm = np.array([[0, 16_384, -32_768, 32_767, -1, 5]], dtype=np.int16)
    with pytest.raises(InvalidAudio, match="needs scale="):
        compute_peaks(pcm, 16_000, 4)
    got = compute_peaks(pcm, 16_000, 4, scale=32_768)
    floats = compute_peaks(pcm.astype(np.float32) / 32_768, 16_000, 4)
    np.testing.assert_array_equal(got.extremes, floats.extremes)
    assert got.as_json_dict() == floats.as_json_dict() and got.as_json_dict()["data"] == [-128, 127, 0, 0]


# --- a truncated file (its header declares more audio than it holds) is refused, not measured -------------


def _clip(
    tmp_path: Path, name: str, subtype: str, frames: int = 8_000, channels: int = 2, **kw: Any
) -> bytes:
    x = (np.random.default_rng(0).standard_normal((frames, channels)) * 0.1).astype(np.float32)
    path = tmp_path / name
    sf.write(path, x, 16_000, subtype=subtype, **kw)
    return path.read_bytes()


WAVS = [("PCM_16", {}), ("PCM_24", {}), ("FLOAT", {}), ("PCM_16", {"format": "RF64"})]


@pytest.mark.parametrize(("subtype", "kw"), WAVS, ids=["PCM_16", "PCM_24", "FLOAT", "RF64"])
@pytest.mark.parametrize("kept", [0.5, -1], ids=["half", "one byte short"])
def test_a_truncated_wav_is_invalid_audio_for_analysis_peaks_and_renditions(
    tmp_path: Path, subtype: str, kw: dict[str, Any], kept: float
) -> None:
    """A WAV cut short (a crash or a copy mid-write: its data chunk declares more bytes than the file holds)
    was measured as if whole: libsndfile reads the frames present, so analyze_file gave a 0.5 s clip's
    figures for a 1 s one, file_peaks a shorter waveform, read_master (renditions, render_peaks of a master
    recorded without a checksum) a shorter master. Each now raises InvalidAudio saying it is truncated."""
    from musicstore.audio.renditions import read_master

    raw = _clip(tmp_path, "whole.wav", subtype, **kw)
    cut = raw[: int(len(raw) * kept)] if kept > 0 else raw[:-1]
    path = tmp_path / "cut.wav"
    path.write_bytes(cut)
    with pytest.raises(InvalidAudio, match="truncated") as caught:
        analyze_file(path)
    assert str(path) in str(caught.value)
    with pytest.raises(InvalidAudio, match="truncated"):
        file_peaks(path)
    with pytest.raises(InvalidAudio, match="truncated"):
        read_master(cut, "cut.wav")


@pytest.mark.parametrize(("subtype", "kw"), WAVS, ids=["PCM_16", "PCM_24", "FLOAT", "RF64"])
def test_a_whole_wav_is_measured_as_before(tmp_path: Path, subtype: str, kw: dict[str, Any]) -> None:
    """No false alarm: a whole file, one with a padded odd-sized data chunk (mono 24-bit, odd frames), and one
    with chunks after its data (as tagging writes them) are read whole."""
    from musicstore.audio.renditions import read_master

    for name, frames, channels in (("a.wav", 8_000, 2), ("odd.wav", 7_999, 1)):
        raw = _clip(tmp_path, name, subtype, frames=frames, channels=channels, **kw)
        assert analyze_file(tmp_path / name).frames == frames
        assert file_peaks(tmp_path / name).frames == frames
        assert read_master(raw, name)[0].shape == (channels, frames)
    raw = (tmp_path / "a.wav").read_bytes()
    trailer = b"LIST" + (12).to_bytes(4, "little") + b"INFOINAM" + (4).to_bytes(4, "little")
    (tmp_path / "tagged.wav").write_bytes(raw + trailer + b"abc\x00")
    assert analyze_file(tmp_path / "tagged.wav").frames == 8_000


@settings(max_examples=40, deadline=None)
@given(share=st.floats(0.0, 1.0, exclude_max=True), ext=st.sampled_from(["wav", "flac"]))
def test_any_cut_of_an_audio_file_is_refused(
    tmp_path_factory: pytest.TempPathFactory, share: float, ext: str
) -> None:
    """Whatever the cut (in the header, in the samples, the last byte), an audio file without its end is
    InvalidAudio, never a clip measured short. (A FLAC cut short was refused already: its decoder loses
    sync.)"""
    folder = tmp_path_factory.mktemp("cut")
    raw = _clip(folder, f"whole.{ext}", "PCM_16", frames=4_000)
    path = folder / f"cut.{ext}"
    path.write_bytes(raw[: int(len(raw) * share)])
    with pytest.raises(InvalidAudio):
        analyze_file(path)
    with pytest.raises(InvalidAudio):
        file_peaks(path)


# --- synthesize_music and click_track bound their length in samples, not only in seconds ------------------


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(8_000, 384_000),
    seconds=st.floats(0.001, 3_600.0),
    channels=st.integers(1, 8),
)
def test_a_synthesised_clip_over_its_sample_bound_is_refused_before_anything_is_made(
    rate: int, seconds: float, channels: int
) -> None:
    """The limit was 3,600 seconds whatever the rate: an hour at 384 kHz is 1.38 billion samples, about 140
    GB of working memory (MemoryError, or the machine swapping), where the hour at 32–48 kHz it was meant
    for is 8 times less. The bound is now an hour at 48 kHz in samples per channel (172,800,000): a longer
    clip is InvalidInput saying so, before any array is made; within it the clip is made as before."""
    from musicstore.audio import synth

    frames = round(seconds * rate)
    if frames > synth.MAX_FRAMES:
        makers: list[Callable[[], object]] = [
            lambda: synth.synthesize_music(seconds, rate, channels=channels),
            lambda: synth.click_track(120.0, seconds, rate),
        ]
        for make in makers:
            with pytest.raises(InvalidInput, match=r"at most 172,800,000 samples") as caught:
                make()
            assert f"{frames:,} samples" in str(caught.value) and f"{rate} Hz" in str(caught.value)
    else:
        assert synth._samples(seconds, rate) == frames  # made only when small: see below


def test_a_synthesised_clip_within_its_sample_bound_is_made_as_before() -> None:
    from musicstore.audio import synth

    assert synth._samples(3_600.0, 48_000) == synth.MAX_FRAMES == 172_800_000  # an hour at 48 kHz, the bound
    assert synth._samples(3_600.0, 32_000) == 115_200_000  # an hour at 32 kHz: still accepted
    with pytest.raises(InvalidInput, match="at most 172,800,000 samples"):
        synth._samples(450.0 + 1 / 384_000, 384_000)  # 7.5 minutes is the most at 384 kHz
    assert synth.synthesize_music(0.25, 384_000).shape == (2, 96_000)
