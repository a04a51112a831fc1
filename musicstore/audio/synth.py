"""Deterministic music-like test signals: chords, bass and drums at a tempo; click tracks."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from musicstore import validate
from musicstore.audio.arrays import MAX_CHANNELS, check_sample_rate
from musicstore.errors import InvalidInput, shown

# I–V–vi–IV in C: chord tones (Hz) and bass roots.
_CHORDS = (
    (261.63, 329.63, 392.00),
    (196.00, 246.94, 293.66),
    (220.00, 261.63, 329.63),
    (174.61, 220.00, 261.63),
)
_ROOTS = (65.41, 49.00, 55.00, 43.65)


def _decay(length: int, sample_rate: int, seconds: float) -> NDArray[np.float64]:
    return np.exp(-np.arange(length) / (seconds * sample_rate))


def _add(track: NDArray[np.float64], start: int, sound: NDArray[np.float64]) -> None:
    stop = min(track.shape[0], start + sound.shape[0])
    if start < stop:
        track[start:stop] += sound[: stop - start]


_MAX_SECONDS = 3_600.0
MAX_FRAMES = 172_800_000
"""The longest clip ``synthesize_music`` and ``click_track`` make, in samples per channel: an hour at 48 kHz
(7.5 minutes at 384 kHz). The synthesis holds about 100 bytes per sample (float64 layers) plus the float32
output, so this bounds its memory (about 18 GB at most, stereo) whatever the rate; seconds alone did not (an
hour at 384 kHz needed about 140 GB)."""
_MAX_BPM = 1_000.0
_MAX_LEVEL = 100.0


def _check(
    value: object, name: str, low: float, high: float | None, *, whole: bool = False, above: bool = False
) -> None:
    """``value`` a real number (whole if ``whole``; numpy's too, not a bool) in ``[low, high]`` (over ``low``
    if ``above``); InvalidInput otherwise."""
    given = validate.whole_number(value) if whole else value
    number = None if given is None else validate.real_number(given, fractions=True)  # ±inf beyond a float
    if given is None or number is None:
        raise InvalidInput(f"{name} must be {'an integer' if whole else 'a number'}, got {shown(value)}")
    if whole and high is None and given >= low:  # type: ignore[operator]  # a seed: compared as an int
        return
    too_low = number <= low if above else number < low
    if not math.isfinite(number) or too_low or (high is not None and number > high):
        upper = "" if high is None else f", at most {high:g}"
        raise InvalidInput(
            f"{name} must be {'over' if above else 'at least'} {low:g}{upper}, got {shown(value)}"
        )


def _samples(seconds: object, rate: int) -> int:
    """The clip's length in samples, after checking ``seconds`` (InvalidInput: not a number, out of range,
    under one sample or over ``MAX_FRAMES`` samples at ``rate``)."""
    _check(seconds, "seconds", 0, _MAX_SECONDS, above=True)
    total = round(float(seconds) * rate)  # type: ignore[arg-type]
    if total < 1:
        raise InvalidInput(f"seconds={shown(seconds)} is under one sample at {rate} Hz")
    if total > MAX_FRAMES:
        raise InvalidInput(
            f"seconds={shown(seconds)} at {rate} Hz is {total:,} samples per channel; at most "
            f"{MAX_FRAMES:,} samples are made (an hour at 48 kHz: {MAX_FRAMES / rate:g} s at {rate} Hz), "
            "which bounds the memory used"
        )
    return total


def synthesize_music(
    seconds: float = 10.0,
    sample_rate: int = 32_000,
    *,
    bpm: float = 120.0,
    channels: int = 2,
    seed: int = 0,
    drums: float = 1.0,
) -> NDArray[np.float32]:
    """A ``(channels, S)`` float32 clip: pad chords (one per bar), bass on beats, kick/snare/hats.

    ``seconds`` at most 3,600 and ``MAX_FRAMES`` samples at ``sample_rate`` (an hour at 48 kHz, 7.5 minutes
    at 384 kHz: InvalidInput beyond, before anything is made; the synthesis holds about 100 bytes a sample).
    ``drums`` scales the drum level (0 for none; larger values make a more dynamic signal).
    The same arguments give the same samples. Peak level is about −6 dBFS.
    """
    rate = check_sample_rate(sample_rate)
    total = _samples(seconds, rate)
    _check(bpm, "bpm", 0, _MAX_BPM, above=True)
    _check(channels, "channels", 1, MAX_CHANNELS, whole=True)
    _check(seed, "seed", 0, None, whole=True)
    _check(drums, "drums", 0, _MAX_LEVEL)
    rng = np.random.default_rng(seed)
    t = np.arange(total) / rate
    beat = 60.0 / bpm
    if not math.isfinite(4 * beat):  # a bpm so near 0 that a bar lasts beyond any float (NaN beats)
        raise InvalidInput(f"bpm must be over 0 and give a bar of finite length, got {shown(bpm)}")
    drums = float(drums)  # a Fraction's product with an array is an array of objects
    bar = 4 * beat
    chord_index = (t // bar).astype(int) % len(_CHORDS)
    pad = np.zeros(total)
    for voice in range(3):
        freqs = np.asarray([c[voice] for c in _CHORDS])[chord_index]
        phase = 2 * np.pi * np.cumsum(freqs) / rate
        pad += 0.12 * np.sin(phase) + 0.03 * np.sin(2 * phase + voice)
    pad *= 0.6 + 0.4 * np.sin(np.pi * (t % bar) / bar)  # swell within each bar
    bass, kick, snare, hats = (np.zeros(total) for _ in range(4))
    hit = np.arange(round(0.4 * rate))
    for n in range(int(seconds / beat) + 1):
        start = round(n * beat * rate)
        root = _ROOTS[int((n * beat) // bar) % len(_ROOTS)]
        _add(bass, start, 0.25 * np.sin(2 * np.pi * root * hit / rate) * _decay(hit.size, rate, 0.25))
        if n % 2 == 0:
            sweep = 2 * np.pi * np.cumsum(50 + 90 * _decay(hit.size, rate, 0.03)) / rate
            _add(kick, start, 0.7 * np.sin(sweep) * _decay(hit.size, rate, 0.12))
        else:
            noise = rng.standard_normal(hit.size)
            _add(snare, start, 0.35 * noise * _decay(hit.size, rate, 0.06))
        for half in (0, 1):
            tick = np.diff(rng.standard_normal(hit.size + 1))  # differenced noise: bright
            _add(hats, start + round(half * beat * rate / 2), 0.08 * tick * _decay(hit.size, rate, 0.015))
    pans = np.linspace(-0.5, 0.5, channels) if channels > 1 else np.zeros(1)
    out = np.empty((channels, total), dtype=np.float32)
    for c, pan in enumerate(pans):
        left_right = 1.0 + 0.3 * pan
        out[c] = (
            pad * left_right + bass + drums * (kick + snare * (1.0 - 0.2 * pan) + hats * (1.0 + 0.4 * pan))
        )
    peak = float(np.abs(out).max())
    return out * np.float32(0.5 / peak) if peak > 0 else out


def click_track(
    bpm: float, seconds: float, sample_rate: int, *, amplitude: float = 0.5
) -> NDArray[np.float32]:
    """A mono ``(1, S)`` click track: 5 ms 1 kHz bursts on every beat; at most ``MAX_FRAMES`` samples long."""
    rate = check_sample_rate(sample_rate)
    _check(bpm, "bpm", 0, _MAX_BPM, above=True)
    _check(amplitude, "amplitude", 0, _MAX_LEVEL)
    amplitude = float(amplitude)  # a Fraction's product with an array is an array of objects numpy cannot add
    out = np.zeros(_samples(seconds, rate))
    click = np.arange(round(0.005 * rate))
    burst = amplitude * np.sin(2 * np.pi * 1000.0 * click / rate) * np.hanning(click.size)
    for n in range(int(seconds * bpm / 60.0) + 1):
        _add(out, round(n * 60.0 / bpm * rate), burst)
    return out[np.newaxis, :].astype(np.float32)
