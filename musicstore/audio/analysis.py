"""Audio metadata from a file or a tensor: levels, loudness, loudness range and an optional tempo."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import soundfile as sf
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d, uniform_filter1d
from scipy.signal import butter, sosfilt

from musicstore import validate
from musicstore.audio.arrays import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    as_audio,
    check_finite_frames,
    check_sample_rate,
)
from musicstore.audio.file_checks import check_not_truncated, not_a_file, short_read, sndfile_name
from musicstore.audio.files import as_path
from musicstore.audio.loudness import BlockPower, loudness_range
from musicstore.audio.truepeak import largest_sample, range_exponent, scaled_down, to_db, true_peak
from musicstore.errors import InvalidAudio, InvalidInput, StorageError, shown

TEMPO_RANGE = (60.0, 180.0)
_FRAME_RATE = 100.0  # onset-envelope frames per second
_COMPRESSION = 100.0  # log(1 + C·|X|/RMS)
_LOWEST_HZ, _HIGHEST_HZ, _BANDS = 40.0, 3_600.0, 24  # analysed at 8–16 kHz
_SMOOTH_SECONDS = 0.015  # onsets a few ms apart still line up
_MIN_SECONDS = 6.0
_MIN_FLUX = 0.002  # mean onset strength below which there are no onsets (a steady tone)
_MIN_SALIENCE = 0.4  # periodicity (autocorrelation, 1 at lag 0) below which there is no beat
_BEAT_LEVEL, _OTHER_LEVEL = 0.65, 0.4  # of the strongest level: the beat; too close to call
_FIRST_FOUR = (1, 2, 3, 4)
_ODD = (1, 5, 7)  # odd multiples of a beat period, past 3 (a bar of 3)


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
    """Measure a tensor or array, ``(S,)`` or ``(C, S)``. ``subtype`` is a label the result carries."""
    rate = check_sample_rate(sample_rate)
    validate.flag(tempo, "tempo")
    if subtype is not None:
        validate.text(subtype, "subtype", max_chars=validate.MAX_NAME_CHARS, blank=False)
    x = as_audio(audio, scale=scale)
    # a clip far out of audio's range (see range_exponent) is measured as 2**-exponent times itself, exactly,
    # and its levels raised back: its float32 loudness power overflowed beyond 2**64 (the range read NaN)
    exponent = range_exponent(largest_sample(x))
    blocks = BlockPower.measure(scaled_down(x, exponent), rate)
    peak = float(np.abs(x).max())
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
    return AudioInfo(
        duration=x.shape[1] / rate,
        sample_rate=rate,
        channels=x.shape[0],
        frames=x.shape[1],
        subtype=subtype,
        integrated_loudness=blocks.loudness(exponent),
        loudness_range=loudness_range(blocks, offset_db=to_db(2.0**exponent)),
        true_peak=to_db(true_peak(x)),
        sample_peak=to_db(peak),
        rms=to_db(rms),
        crest_factor=to_db(peak / rms) if rms > 0 else 0.0,
        short_clip=blocks.short,
        bpm=estimate_tempo(x, rate) if tempo else None,
    )


def analyze_file(path: str | Path, *, tempo: bool = False) -> AudioInfo:
    """Read a WAV/FLAC file and measure it. ``StorageError`` when there is no such file (or it is a folder);
    ``InvalidAudio`` when
    it is not audio musicstore measures, or is truncated (its header declares more audio than it holds: a
    file cut short by a crash or a copy is refused, never measured as a shorter clip)."""
    source = as_path(path)
    why = not_a_file(source)
    validate.flag(tempo, "tempo")
    if why is not None:
        raise StorageError(f"{path}: {why}")
    try:
        with sf.SoundFile(sndfile_name(source)) as f:
            rate, subtype = f.samplerate, f.subtype
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise InvalidAudio(
                    f"{path}: {rate} Hz, outside the {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz "
                    "musicstore measures"
                )
            if f.channels > MAX_CHANNELS:
                raise InvalidAudio(
                    f"{path}: {f.channels} channels, more than the {MAX_CHANNELS} musicstore measures"
                )
            with open(path, "rb") as raw:  # the header's sizes against the file's: before any sample is read
                check_not_truncated(raw, os.fstat(raw.fileno()).st_size, path)
            data = f.read(dtype="float32", always_2d=True)
            if 0 < data.shape[0] < f.frames:
                raise short_read(path, data.shape[0], f.frames)
    except sf.SoundFileError as exc:
        raise InvalidAudio(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise InvalidAudio(f"{path}: holds no audio frames")
    check_finite_frames(data, path)  # a FLOAT file: named here, not as a model's output would be
    return analyze_audio(np.ascontiguousarray(data.T), rate, tempo=tempo, subtype=subtype)


def _onset_envelope(x: NDArray[np.float32], rate: int) -> tuple[NDArray[np.float64], float]:
    """Onset strength, ``_FRAME_RATE`` frames a second, and the frame step in seconds.

    Spectral flux: the rise of log-compressed magnitudes in log-spaced bands, averaged over the bands, so that
    a kick (a few low bins) weighs like a snare (many bins); the compression is relative to the clip's RMS,
    so the result does not depend on the level and quiet onsets (hi-hats) weigh less than loud ones.
    """
    mono, fs = _downsampled(x.mean(axis=0, dtype=np.float32), rate)
    size = 1 << math.ceil(math.log2(0.04 * fs))
    hop = fs / _FRAME_RATE
    frames = int((mono.shape[0] - size) / hop) + 1 if mono.shape[0] >= size else 0
    rms = math.sqrt(float(np.mean(np.square(mono)))) if frames >= 8 else 0.0
    if rms <= 0:
        return np.zeros(0), 1.0 / _FRAME_RATE
    edges = np.geomspace(_LOWEST_HZ, _HIGHEST_HZ, _BANDS + 1) * size / fs
    bins = np.unique(np.round(edges).astype(np.int64))
    width = np.diff(bins).astype(np.float32)
    window = np.hanning(size).astype(np.float32)
    signal = mono.astype(np.float32)
    starts = (np.arange(frames) * hop).astype(np.int64)
    bands = np.empty((frames, bins.size - 1), dtype=np.float32)
    for first in range(0, frames, 256):  # bounded memory on long clips
        chunk = signal[starts[first : first + 256, None] + np.arange(size)] * window
        power = np.square(np.abs(scipy.fft.rfft(chunk, axis=1)[:, bins[0] : bins[-1]]))
        bands[first : first + 256] = np.add.reduceat(power, bins[:-1] - bins[0], axis=1) / width
    bands = np.log1p(np.sqrt(bands) * np.float32(_COMPRESSION / (rms * size)))
    flux = np.maximum(np.diff(bands, axis=0), 0.0).mean(axis=1, dtype=np.float64)
    return flux, hop / fs


def _downsampled(mono: NDArray[np.float32], rate: int) -> tuple[NDArray[np.float32], float]:
    """``mono`` at 8–16 kHz: block means down to ≤ 48 kHz, then a 6th-order low-pass and decimation."""
    coarse = max(1, rate // 48_000)
    if coarse > 1:
        usable = mono.shape[0] // coarse * coarse
        mono = sum((mono[i:usable:coarse] for i in range(1, coarse)), mono[:usable:coarse])
        mono = mono / np.float32(coarse)
    fs = rate / coarse
    down = max(1, int(fs // 8_000))
    if down > 1:
        mono = sosfilt(butter(6, _HIGHEST_HZ * 1.05, fs=fs, output="sos"), mono)[::down]
        fs /= down
    return np.ascontiguousarray(mono, dtype=np.float32), fs


def _autocorrelation(x: NDArray[np.float32], rate: int) -> tuple[NDArray[np.float64], float] | None:
    """Unbiased autocorrelation of the smoothed, detrended onset envelope (1 at lag 0) and the frame step;
    None without onsets (silence, a steady tone)."""
    onset, step = _onset_envelope(x, rate)
    if onset.shape[0] < 8 or float(onset.mean()) < _MIN_FLUX:
        return None
    onset = gaussian_filter1d(onset, _SMOOTH_SECONDS / step)
    onset = onset - uniform_filter1d(onset, round(1.0 / step))
    n = onset.shape[0]
    spectrum = np.fft.rfft(onset, 1 << (2 * n - 1).bit_length())
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if acf[0] <= 0:
        return None
    return acf / acf[0] * n / (n - np.arange(n)), step


def _comb(acf: NDArray[np.float64], lags: NDArray[np.float64], multiples: Any) -> NDArray[np.float64]:
    """Mean autocorrelation at the given multiples of each lag (linear interpolation; 0 past the end)."""
    points = lags[:, None] * np.asarray(multiples, dtype=np.float64)
    return np.asarray(np.interp(points, np.arange(acf.shape[0]), acf, right=0.0).mean(axis=1))


def _peak_near(acf: NDArray[np.float64], lag: float, spread: float, multiples: Any) -> float:
    """The lag within ``lag · (1 ± spread)`` of the highest comb salience."""
    fine = np.linspace(lag * (1 - spread), lag * (1 + spread), 241)
    return float(fine[np.argmax(_comb(acf, fine, multiples))])


def estimate_tempo(
    audio: Any,
    sample_rate: int,
    *,
    bpm_range: tuple[float, float] = TEMPO_RANGE,
    scale: float | None = None,
) -> float | None:
    """Tempo of the beat in BPM, or None where the clip has no clear beat in ``bpm_range``.

    The beat is the pulse of the strong onsets (kick, snare, bass notes; a click): quieter subdivisions such
    as hi-hats between them do not make it faster, and a half-time feel (snare on 3) reads at half its
    notated tempo. Method: spectral-flux onset envelope, its autocorrelation, the strongest periodicity in
    the range (a comb over its first four multiples), then the metrical level among its multiples and
    fractions in the range — the fastest whose odd multiples line up strong onsets — and a fine comb over
    the whole clip for the period. None for clips under 6 s, without onsets, without a periodicity (noise,
    pads, random hits), or when two levels are about as likely (see docs/export.md for the measured
    accuracy: within ±2 BPM or None on the test corpus). Integer audio needs ``scale=``, as in ``as_audio``.
    """
    rate = check_sample_rate(sample_rate)
    low_bpm, high_bpm = _check_bpm_range(bpm_range)
    x = as_audio(audio, scale=scale)
    if x.shape[1] < _MIN_SECONDS * rate:
        return None
    x = scaled_down(x, range_exponent(largest_sample(x)))  # level-free: far out of range, read scaled (exact)
    found = _autocorrelation(x, rate)
    if found is None:
        return None
    acf, step = found
    n = acf.shape[0]
    low, high = 60.0 / high_bpm / step * 0.98, 60.0 / low_bpm / step * 1.02
    lags = np.arange(low, high, 0.25)
    salience = _comb(acf, lags, _FIRST_FOUR)
    if float(salience.max()) < _MIN_SALIENCE:
        return None
    best = float(lags[np.argmax(salience)])
    levels = []
    for ratio in (1 / 4, 1 / 3, 1 / 2, 1, 2, 3, 4):
        if low <= best * ratio <= high:
            lag = _peak_near(acf, best * ratio, 0.03, _FIRST_FOUR)
            odd = [m for m in _ODD if m * lag < 0.9 * n] or [1]
            levels.append((lag, float(_comb(acf, np.array([lag]), odd)[0])))
    strongest = max(strength for _, strength in levels)
    if strongest <= 0:
        return None
    for lag, strength in sorted(levels):  # fastest first
        if strength >= _BEAT_LEVEL * strongest:
            period = _peak_near(acf, lag, 0.015, np.arange(1, max(2, int((n - 2) / (lag * 1.015)))))
            return 60.0 / (period * step)
        if strength >= _OTHER_LEVEL * strongest:
            return None  # a faster level almost as strong: ambiguous
    return None


def _check_bpm_range(bpm_range: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in bpm_range)
    except (TypeError, ValueError):
        raise InvalidInput(f"bpm_range must be two numbers (low, high), got {shown(bpm_range)}") from None
    if not 20.0 <= low < high <= 400.0:
        raise InvalidInput(f"bpm_range must satisfy 20 <= low < high <= 400, got {shown(bpm_range)}")
    return low, high
