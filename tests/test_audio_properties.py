"""Property tests over random signals, gains, lengths and targets."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.signal import sosfilt

from musicstore.audio import ExportOptions, export_audio, integrated_loudness
from musicstore.audio.truepeak import annex2_true_peak, to_db, true_peak
from tests.reference_meter import reference_true_peak

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def signal(kind: str, channels: int, samples: int, seed: int, gain_db: float) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    if kind == "white":
        audio = rng.standard_normal((channels, samples))
    elif kind == "dull":  # low-passed noise
        sos = np.array([[0.02, 0.04, 0.02, 1.0, -1.56, 0.64]])
        audio = sosfilt(sos, rng.standard_normal((channels, samples)), axis=-1) * 8
    elif kind == "bursts":  # quiet noise with loud random bursts
        audio = rng.standard_normal((channels, samples)) * 0.05
        for start in rng.integers(0, max(samples - 64, 1), size=8):
            audio[:, start : start + 64] *= 30
    else:  # a few sines, some near Nyquist
        t = np.arange(samples)
        freqs = rng.uniform(0.001, 0.49, size=4)
        audio = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in freqs) * np.ones((channels, 1))
    audio = audio / max(float(np.abs(audio).max()), 1e-9)
    return (audio * 10 ** (gain_db / 20)).astype(np.float32)


@SETTINGS
@given(
    kind=st.sampled_from(["white", "dull", "bursts", "sines"]),
    channels=st.integers(1, 3),
    rate=st.sampled_from([8_000, 22_050, 32_000, 48_000]),
    seconds=st.floats(0.05, 2.5),
    gain_db=st.floats(-45.0, 6.0),
    target=st.floats(-30.0, -9.0),
    ceiling=st.floats(-6.0, -0.1),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT"]),
    ext=st.sampled_from(["wav", "flac"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_export_properties(
    *,
    kind: str,
    channels: int,
    rate: int,
    seconds: float,
    gain_db: float,
    target: float,
    ceiling: float,
    subtype: str,
    ext: str,
    seed: int,
) -> None:
    if ext == "flac" and subtype == "FLOAT":
        subtype = "PCM_24"
    audio = signal(kind, channels, max(1, round(seconds * rate)), seed, gain_db)
    options = ExportOptions(target_lufs=target, ceiling_dbtp=ceiling, subtype=subtype, max_limiting_db=12.0)
    with tempfile.TemporaryDirectory() as root:
        result = export_audio(audio, rate, Path(root) / f"x.{ext}", options)
        data, file_rate = sf.read(result.path, dtype="float32", always_2d=True)
    written = np.ascontiguousarray(data.T)
    assert file_rate == rate and written.shape == audio.shape == (result.channels, result.frames)
    if result.target_reached:
        assert abs(integrated_loudness(written, rate).lufs - target) <= 0.1
    if result.status in ("normalized", "limited", "target_missed"):
        assert to_db(annex2_true_peak(written)) <= ceiling
        assert to_db(true_peak(written)) <= ceiling + 0.01
        assert to_db(reference_true_peak(written)) <= ceiling + 0.2
        assert to_db(reference_true_peak(written, periodic=True)) <= ceiling + 0.2
    else:
        assert result.gain_db == 0.0  # silent / too quiet: written unchanged


@SETTINGS
@given(
    channels=st.integers(1, 2),
    seconds=st.floats(0.5, 3.0),
    gain_db=st.floats(-30.0, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_signals_reach_the_target(channels: int, seconds: float, gain_db: float, seed: int) -> None:
    """Noise that limiting within the default cap can bring to -16 LUFS at -1 dBTP."""
    audio = signal("dull", channels, round(seconds * 32_000), seed, gain_db)
    with tempfile.TemporaryDirectory() as root:
        result = export_audio(audio, 32_000, Path(root) / "x.wav", ExportOptions(subtype="FLOAT"))
        data, _ = sf.read(result.path, dtype="float32", always_2d=True)
    written = np.ascontiguousarray(data.T)
    assert result.target_reached, result
    assert abs(integrated_loudness(written, 32_000).lufs + 16.0) <= 0.1
    assert to_db(true_peak(written)) <= -1.0
