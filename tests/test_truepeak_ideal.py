"""Exported files stay under the ceiling on an ideal (FFT) reconstruction, and report what it reads.

The corpus is built here: snare-like noise bursts, near-Nyquist sines and chirps, dynamic beds with
transients, square and sawtooth waves, clipped noise, at every common rate. The meter is the independent
one of ``tests/reference_meter.py`` (16x FFT upsampling of the decoded file, zero-padded and periodic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from musicstore.audio import ExportOptions, export_audio
from musicstore.audio.truepeak import to_db
from tests.reference_meter import reference_true_peak

RATES = (8_000, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000)
KINDS = ("bursts", "nyquist_sine", "chirp", "bed", "square", "saw", "clipped")
SLACK_DB = 0.2  # the property: the ideal reconstruction reads at most ceiling + 0.2 dB
REPORT_DB = 0.05  # the reported true peak is at most this under the reference...
REPORT_OVER_DB = 0.1  # ...and at most this over it (short clips' looped ends: one neighbouring copy counted)


def corpus(kind: str, rate: int, seconds: float, seed: int) -> NDArray[np.float32]:
    """One stereo test signal of ``kind`` (its level is set by the export's gain)."""
    rng = np.random.default_rng(seed)
    n = max(round(seconds * rate), 64)
    t = np.arange(n) / rate
    if kind == "bursts":  # snare-like: decaying white-noise bursts on a quiet bed
        x = rng.standard_normal((2, n)) * 0.01
        length = max(n // 8, 32)
        for start in rng.integers(0, n - length, 4):
            envelope = np.exp(-np.arange(length) / (0.012 * rate))
            x[:, start : start + length] += rng.standard_normal((2, length)) * envelope
    elif kind == "nyquist_sine":  # within 5 % of Nyquist, full length, hard edges
        f = rate / 2 * rng.uniform(0.95, 0.999)
        x = np.tile(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)), (2, 1))
    elif kind == "chirp":  # up to Nyquist
        f0 = rate * rng.uniform(0.05, 0.3)
        x = np.tile(np.sin(2 * np.pi * (f0 * t + (rate / 2 - f0) * t * t / (2 * t[-1]))), (2, 1))
    elif kind == "bed":  # quiet pad with loud broadband transients
        x = np.tile(0.05 * np.sin(2 * np.pi * 220.0 * t), (2, 1)) + rng.standard_normal((2, n)) * 0.003
        for start in rng.integers(0, n - 16, 6):
            x[:, start : start + 16] += rng.standard_normal((2, 16)) * rng.uniform(0.3, 1.0)
    elif kind == "square":
        x = np.tile(np.sign(np.sin(2 * np.pi * rng.uniform(50, rate / 4) * t + 0.3)), (2, 1))
    elif kind == "saw":
        x = np.tile((t * rng.uniform(50, rate / 4)) % 1.0 * 2 - 1, (2, 1))
    else:  # clipped: loud noise clipped hard
        x = np.clip(rng.standard_normal((2, n)), -0.5, 0.5)
    return x.astype(np.float32)


def decoded(path: Path) -> NDArray[np.float32]:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def check_export(audio: NDArray[np.float32], rate: int, path: Path, options: ExportOptions) -> None:
    """The file's true peak on both reconstructions is under the ceiling (+ 0.2 dB), and the reported
    figure is the ideal reconstruction's: at most 0.05 dB under it, at most 0.1 dB over the higher reading."""
    result = export_audio(audio, rate, path, options)
    written = decoded(path)
    ideal = to_db(reference_true_peak(written))
    looped = to_db(reference_true_peak(written, periodic=True))
    assert max(ideal, looped) <= options.ceiling_dbtp + SLACK_DB, (result.status, ideal, looped)
    assert ideal - REPORT_DB <= result.true_peak_after <= max(ideal, looped) + REPORT_OVER_DB, (
        result.true_peak_after,
        ideal,
        looped,
    )


@pytest.mark.parametrize(
    ("kind", "rate"), [(kind, RATES[(i + k) % len(RATES)]) for i, kind in enumerate(KINDS) for k in (0, 3)]
)
def test_corpus_stays_under_the_ceiling(kind: str, rate: int, tmp_path: Path) -> None:
    """Every kind at two rates (every rate twice), limited hard (-9 LUFS under -1 dBTP), as PCM_16 WAV."""
    audio = corpus(kind, rate, 0.4, seed=rate)
    options = ExportOptions(target_lufs=-9.0, ceiling_dbtp=-1.0, max_limiting_db=12.0, dither_seed=1)
    check_export(audio, rate, tmp_path / "x.wav", options)


@pytest.mark.parametrize(
    ("ext", "subtype"),
    [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("flac", "PCM_24")],
)
def test_every_subtype_and_format(ext: str, subtype: str, tmp_path: Path) -> None:
    audio = corpus("bursts", 44_100, 1.0, seed=7)
    options = ExportOptions(target_lufs=-10.0, ceiling_dbtp=-1.0, subtype=subtype, max_limiting_db=12.0)
    check_export(audio, 44_100, tmp_path / f"x.{ext}", options)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    rate=st.sampled_from(RATES),
    seconds=st.floats(0.05, 0.5),
    target=st.floats(-24.0, -6.0),
    ceiling=st.floats(-6.0, -0.1),
    limiter=st.booleans(),
    form=st.sampled_from([("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16")]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_input_stays_under_the_ceiling(  # noqa: PLR0917 (hypothesis passes each drawn value)
    kind: str,
    rate: int,
    seconds: float,
    target: float,
    ceiling: float,
    limiter: bool,
    form: tuple[str, str],
    seed: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ext, subtype = form
    options = ExportOptions(
        target_lufs=target, ceiling_dbtp=ceiling, limiter=limiter, subtype=subtype, max_limiting_db=12.0
    )
    path = tmp_path_factory.mktemp("ideal") / f"x.{ext}"
    check_export(corpus(kind, rate, seconds, seed), rate, path, options)
