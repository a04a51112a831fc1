"""Audio metadata from a file or a tensor: levels, loudness, loudness range and an optional tempo."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from musicstore.audio.arrays import as_audio, check_sample_rate
from musicstore.audio.loudness import BlockPower, gated_loudness, loudness_range
from musicstore.audio.truepeak import to_db, true_peak
from musicstore.errors import InvalidAudio, StorageError

TEMPO_RANGE = (50.0, 200.0)
_HOP_SECONDS = 0.0025
_MIN_ONSET = 0.05  # smoothed rise of log10 energy per hop (0.5 dB): below it there is no beat


@dataclass(frozen=True)
class AudioInfo:
    """Figures of one clip, over all its channels. Levels in LUFS, LU, dBTP, dBFS, dB."""

    duration: float
    sample_rate: int
    channels: int
    frames: int
    subtype: str | None  # None for in-memory audio
    integrated_loudness: float
    loudness_range: float | None  # None under 3 s or when too quiet to gate
    true_peak: float
    sample_peak: float
    rms: float  # dBFS, plain RMS (a full-scale sine is −3.01 dBFS)
    crest_factor: float  # sample peak − RMS, dB
    short_clip: bool
    bpm: float | None = None


def analyze_audio(
    audio: Any,
    sample_rate: int,
    *,
    tempo: bool = False,
    scale: float | None = None,
    subtype: str | None = None,
) -> AudioInfo:
    """Measure a tensor or array, ``(S,)`` or ``(C, S)``."""
    rate = check_sample_rate(sample_rate)
    x = as_audio(audio, scale=scale)
    blocks = BlockPower.measure(x, rate)
    peak = float(np.abs(x).max())
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
    return AudioInfo(
        duration=x.shape[1] / rate,
        sample_rate=rate,
        channels=x.shape[0],
        frames=x.shape[1],
        subtype=subtype,
        integrated_loudness=gated_loudness(blocks.block_means()),
        loudness_range=loudness_range(blocks),
        true_peak=to_db(true_peak(x)),
        sample_peak=to_db(peak),
        rms=to_db(rms),
        crest_factor=to_db(peak / rms) if rms > 0 else 0.0,
        short_clip=blocks.short,
        bpm=estimate_tempo(x, rate) if tempo else None,
    )


def analyze_file(path: str | Path, *, tempo: bool = False) -> AudioInfo:
    """Read a WAV/FLAC file and measure it."""
    if not Path(path).is_file():
        raise StorageError(f"{path}: no such file")
    try:
        with sf.SoundFile(path) as f:
            data = f.read(dtype="float32", always_2d=True)
            rate, subtype = f.samplerate, f.subtype
    except sf.SoundFileError as exc:
        raise InvalidAudio(f"{path}: not a readable audio file ({exc})") from exc
    return analyze_audio(np.ascontiguousarray(data.T), rate, tempo=tempo, subtype=subtype)


def _onset_envelope(x: NDArray[np.float32], rate: int) -> tuple[NDArray[np.float64], float]:
    hop = max(1, round(_HOP_SECONDS * rate))
    mono = x.mean(axis=0, dtype=np.float64)
    frames = mono.shape[0] // hop
    if frames < 2:  # no energy flux at all: an empty envelope (estimate_tempo returns None)
        return np.zeros(0), hop / rate
    energy = np.square(mono[: frames * hop]).reshape(frames, hop).sum(axis=1)
    flux = gaussian_filter1d(
        np.maximum(np.diff(np.log10(energy + 1e-10)), 0.0), 2.0
    )  # onsets off the hop grid
    return flux - flux.mean(), hop / rate


def _refined_lag(acf: NDArray[np.float64], lag: int) -> float:
    """Peak position with parabolic interpolation around integer ``lag``."""
    if 0 < lag < acf.shape[0] - 1:
        a, b, c = acf[lag - 1], acf[lag], acf[lag + 1]
        denom = a - 2 * b + c
        if denom < 0:
            return float(lag + 0.5 * (a - c) / denom)
    return float(lag)


def estimate_tempo(
    audio: Any, sample_rate: int, *, bpm_range: tuple[float, float] = TEMPO_RANGE
) -> float | None:
    """Tempo (BPM) from the autocorrelation of an energy-flux onset envelope; None when no beat.

    Takes the strongest periodicity in ``bpm_range``, prefers a shorter period (a faster tempo) of
    comparable strength, and refines it on the furthest of its multiples that fits the clip.
    """
    rate = check_sample_rate(sample_rate)
    x = as_audio(audio)
    onset, step = _onset_envelope(x, rate)
    if onset.shape[0] < 8 or np.ptp(onset) < _MIN_ONSET:
        return None
    size = 1 << (2 * onset.shape[0] - 1).bit_length()
    spectrum = np.fft.rfft(onset, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: onset.shape[0]]
    low = max(1, math.floor(60.0 / bpm_range[1] / step))
    high = min(acf.shape[0] - 2, math.ceil(60.0 / bpm_range[0] / step))
    if high <= low or acf[0] <= 0:
        return None
    peaks, _ = find_peaks(acf[: high + 1])
    peaks = peaks[peaks >= low]
    if peaks.size == 0 or acf[peaks].max() <= 0.02 * acf[0]:
        return None
    strongest = acf[peaks].max()
    lag = int(peaks[np.argmax(acf[peaks] >= 0.8 * strongest)])  # shortest strong period
    period = _refined_lag(acf, lag)
    multiple = max(1, int((acf.shape[0] // 2) / period))
    for k in range(min(multiple, 16), 1, -1):
        near = round(k * period)
        window = acf[max(near - 3, 1) : near + 4]
        if window.size:
            best = max(near - 3, 1) + int(np.argmax(window))
            period = _refined_lag(acf, best) / k
            break
    return float(60.0 / (period * step))
