"""A generated corpus for the tempo estimator: drum patterns, synthesised music, clicks, beatless clips.

Every clip is labelled with the tempo the estimator must report under the convention in ``docs/export.md``
(the beat is the pulse of the strong, kick/snare/bass-like onsets; a bright hi-hat subdivision is not the
beat; a half-time feel is reported at half its notated tempo), or ``None`` for material without a beat.
``python -m tests.tempo_corpus`` measures the estimator on a dense corpus and prints the table the docs quote.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from musicstore.audio import click_track, estimate_tempo, synthesize_music

RATES = (8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000, 192_000, 384_000)
# name -> (beats per bar, kick / snare / hat positions in beats within the bar); hats are added separately
PATTERNS: dict[str, tuple[int, tuple[float, ...], tuple[float, ...]]] = {
    "backbeat": (4, (0, 2), (1, 3)),  # kick on 1 and 3, snare on 2 and 4
    "four_floor": (4, (0, 1, 2, 3), (1, 3)),  # kick on every beat, clap on 2 and 4
    "kick_only": (4, (0, 1, 2, 3), ()),  # four on the floor, nothing else
    "rock_syncopated": (4, (0, 2, 2.5), (1, 3)),
    "funk": (4, (0, 0.75, 2, 2.5), (1, 3)),
    "halftime": (4, (0, 1.5), (2,)),  # notated at twice the beat: kick on 1 and the and of 2, snare on 3
    "waltz": (3, (0,), (1, 2)),  # 3/4: kick on 1, snare on 2 and 3
    "five": (5, (0, 2), (1, 3, 4)),  # 5/4
}
HATS = ("none", "quarters", "eighths", "sixteenths", "swing")
BEATLESS = ("silence", "white_noise", "pink_noise", "tone", "pad", "random_hits", "sweep")


@dataclass(frozen=True)
class Clip:
    """One corpus item: ``bpm`` is the expected answer (None: no beat)."""

    name: str
    audio: NDArray[np.float32]
    rate: int
    bpm: float | None


def _kick(rate: int, rng: np.random.Generator) -> NDArray[np.float64]:
    n = np.arange(round(0.35 * rate))
    start, drop = rng.uniform(45, 60), rng.uniform(60, 120)
    sweep = 2 * np.pi * np.cumsum(start + drop * np.exp(-n / (0.03 * rate))) / rate
    return np.asarray(np.sin(sweep) * np.exp(-n / (rng.uniform(0.08, 0.15) * rate)))


def _noise(size: int, rate: int, low: float, high: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """Unit-RMS noise in ``low``–``high`` Hz (as a recorded drum has, whatever the sample rate)."""
    freqs = np.fft.rfftfreq(size, 1 / rate)
    spectrum = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * (
        (freqs >= min(low, 0.25 * rate)) & (freqs <= min(high, 0.45 * rate))
    )
    noise = np.fft.irfft(spectrum, size)
    return np.asarray(noise / max(float(np.sqrt(np.mean(np.square(noise)))), 1e-12))


def _snare(rate: int, rng: np.random.Generator) -> NDArray[np.float64]:
    n = np.arange(round(0.25 * rate))
    body = 0.5 * np.sin(2 * np.pi * rng.uniform(160, 220) * n / rate) * np.exp(-n / (0.03 * rate))
    noise = _noise(n.size, rate, 150.0, 9_000.0, rng) * np.exp(-n / (rng.uniform(0.04, 0.08) * rate))
    return np.asarray(0.5 * (body + noise))


def _hat(rate: int, rng: np.random.Generator) -> NDArray[np.float64]:
    n = np.arange(round(0.08 * rate))
    return np.asarray(_noise(n.size, rate, 5_000.0, 16_000.0, rng) * np.exp(-n / (0.012 * rate)))


def _place(
    track: NDArray[np.float64], seconds: float, rate: int, sound: NDArray[np.float64], gain: float
) -> None:
    start = round(seconds * rate)
    if 0 <= start < track.shape[0]:
        stop = min(track.shape[0], start + sound.shape[0])
        track[start:stop] += gain * sound[: stop - start]


def drum_pattern(
    pattern: str,
    bpm: float,
    seconds: float,
    rate: int,
    *,
    hats: str = "eighths",
    seed: int = 0,
    channels: int = 2,
) -> NDArray[np.float32]:
    """A kick/snare pattern at ``bpm`` (its beat), hats as named, humanised timing and velocity."""
    rng = np.random.default_rng(seed)
    beats_per_bar, kicks, snares = PATTERNS[pattern]
    notated = 2.0 if pattern == "halftime" else 1.0  # positions are in notated beats
    beat = 60.0 / bpm / notated
    out = np.zeros(round(seconds * rate))
    kick, snare, hat = _kick(rate, rng), _snare(rate, rng), _hat(rate, rng)
    snare_gain, hat_gain = rng.uniform(0.5, 0.9), rng.uniform(0.08, 0.25)
    jitter = rng.uniform(0.0, 0.008)
    hat_step = {"none": 0.0, "quarters": 1.0, "eighths": 0.5, "sixteenths": 0.25, "swing": 0.5}[hats]
    bar = beats_per_bar * beat
    for b in range(int(seconds / bar) + 1):
        t0 = b * bar
        for pos in kicks:
            _place(out, t0 + pos * beat + rng.normal(0, jitter), rate, kick, rng.uniform(0.7, 1.0))
        for pos in snares:
            _place(
                out, t0 + pos * beat + rng.normal(0, jitter), rate, snare, snare_gain * rng.uniform(0.8, 1.0)
            )
        if hat_step:
            steps = round(beats_per_bar / hat_step)
            for k in range(steps):
                pos = k * hat_step
                if hats == "swing" and k % 2:
                    pos += hat_step / 3  # swung offbeat at two thirds of the beat
                accent = 1.0 if k % 2 == 0 else rng.uniform(0.6, 1.0)
                _place(out, t0 + pos * beat + rng.normal(0, jitter), rate, hat, hat_gain * accent)
    out *= 0.5 / max(float(np.abs(out).max()), 1e-9)
    return np.tile(out.astype(np.float32), (channels, 1))


def beatless(kind: str, seconds: float, rate: int, *, seed: int = 0) -> NDArray[np.float32]:
    """Material without a beat: the estimator must return None."""
    rng = np.random.default_rng(seed)
    total = round(seconds * rate)
    t = np.arange(total) / rate
    if kind == "silence":
        out = np.zeros(total)
    elif kind == "white_noise":
        out = 0.2 * _noise(total, rate, 20.0, 20_000.0, rng)
    elif kind == "pink_noise":
        spectrum = np.fft.rfft(rng.standard_normal(total))
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        out = np.fft.irfft(spectrum, total)
    elif kind == "tone":
        out = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)
    elif kind == "pad":  # sustained chords changing at irregular times, slow swells
        freqs = np.zeros(total)
        edge = 0
        while edge < total:
            span = round(rng.uniform(1.5, 5.0) * rate)
            freqs[edge : edge + span] = rng.choice([220.0, 261.63, 293.66, 329.63, 392.0])
            edge += span
        phase = 2 * np.pi * np.cumsum(freqs) / rate
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t)
        out = swell * (np.sin(phase) + 0.5 * np.sin(1.5 * phase) + 0.3 * np.sin(2 * phase))
        out += 0.01 * rng.standard_normal(total)
    elif kind == "random_hits":  # drum hits at random (Poisson) times: onsets, but no pulse
        out = np.zeros(total)
        sounds = (_kick(rate, rng), _snare(rate, rng), _hat(rate, rng))
        when = 0.0
        while when < seconds:
            _place(out, when, rate, sounds[rng.integers(3)], rng.uniform(0.3, 1.0))
            when += rng.exponential(0.4)
    elif kind == "sweep":
        out = 0.3 * np.sin(2 * np.pi * (50 * t + (5000 - 50) * t**2 / (2 * seconds)))
    else:
        raise ValueError(kind)
    peak = float(np.abs(out).max())
    out = out * (0.5 / peak) if peak > 0 else out
    return np.tile(out.astype(np.float32), (2, 1))


def corpus(
    tempos: list[float], *, seconds: float = 10.0, rates: tuple[int, ...] = RATES, seed: int = 0
) -> Iterator[Clip]:
    """Every pattern with every hat choice, synthesised music at several drum levels, click tracks, beatless
    clips; tempos, rates and seeds assigned in rotation so that each tempo meets many patterns and rates."""
    rng = np.random.default_rng(seed)
    n = 0
    for bpm in tempos:
        for pattern in PATTERNS:
            if pattern == "halftime" and bpm > 90:
                continue  # notated above 180
            for hats in HATS:
                rate = rates[n % len(rates)]
                n += 1
                yield Clip(
                    f"{pattern}/{hats}",
                    drum_pattern(pattern, bpm, seconds, rate, hats=hats, seed=n),
                    rate,
                    bpm,
                )
        for drums in (0.0, 0.5, 1.0, 3.0):
            rate = rates[n % len(rates)]
            n += 1
            music = synthesize_music(seconds, rate, bpm=bpm, seed=n, drums=drums)
            yield Clip(f"synth/drums={drums}", music, rate, bpm)
        rate = rates[n % len(rates)]
        n += 1
        yield Clip("click", click_track(bpm, seconds, rate), rate, bpm)
        noisy = drum_pattern("backbeat", bpm, seconds, rate, seed=n)
        noisy += (0.05 * _noise(noisy.shape[1], rate, 20.0, 20_000.0, rng)).astype(np.float32)  # ~20 dB down
        yield Clip("backbeat+noise", noisy, rate, bpm)
        gain = np.float32(10 ** rng.uniform(-2, 0))  # level independence
        yield Clip("synth/quiet", gain * synthesize_music(seconds, rate, bpm=bpm, seed=n), rate, bpm)


def beatless_corpus(
    *, seconds: float = 10.0, rates: tuple[int, ...] = RATES, seeds: int = 3
) -> Iterator[Clip]:
    """Every beatless kind at each rate and several seeds."""
    for kind in BEATLESS:
        for i, rate in enumerate(rates):
            for seed in range(seeds):
                yield Clip(f"beatless/{kind}", beatless(kind, seconds, rate, seed=seed * 100 + i), rate, None)


def judge(clip: Clip, estimate: float | None) -> str:
    """``right``, ``none`` (declined) or ``wrong``."""
    if estimate is None:
        return "none"
    if clip.bpm is not None and abs(estimate - clip.bpm) <= 2.0:
        return "right"
    return "wrong"


def main() -> None:
    """Measure the estimator on a dense corpus and print accuracy per kind of material."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--step", type=float, default=1.37, help="tempo step in BPM (non-integer tempos)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    tempos = [float(t) for t in np.arange(60.0, 180.0 + 1e-9, args.step)]
    tally: dict[str, dict[str, int]] = {}
    elapsed = 0.0
    clips = 0
    for clip in itertools.chain(corpus(tempos, seconds=args.seconds), beatless_corpus(seconds=args.seconds)):
        begin = time.perf_counter()
        estimate = estimate_tempo(clip.audio, clip.rate)
        elapsed += time.perf_counter() - begin
        clips += 1
        verdict = judge(clip, estimate)
        kind = clip.name.split("/")[0] if clip.name.startswith(("beatless", "synth")) else clip.name
        row = tally.setdefault(kind, {"right": 0, "none": 0, "wrong": 0})
        row[verdict] += 1
        if args.verbose and verdict == "wrong":
            print(f"WRONG {clip.name} {clip.rate} Hz: {clip.bpm} -> {estimate}", flush=True)
    print(f"{'material':28} {'clips':>6} {'right':>6} {'None':>6} {'wrong':>6}")
    for kind, row in sorted(tally.items()):
        print(f"{kind:28} {sum(row.values()):6} {row['right']:6} {row['none']:6} {row['wrong']:6}")
    total = {v: sum(r[v] for r in tally.values()) for v in ("right", "none", "wrong")}
    print(f"{'all':28} {clips:6} {total['right']:6} {total['none']:6} {total['wrong']:6}")
    print(f"{elapsed / clips * 1000:.1f} ms per {args.seconds:g} s clip on average")
    music = synthesize_music(30.0, 32_000, bpm=123.0, seed=1)
    times = []
    for _ in range(7):
        begin = time.perf_counter()
        estimate_tempo(music, 32_000)
        times.append(time.perf_counter() - begin)
    median, least = np.median(times) * 1000, min(times) * 1000
    print(f"30 s stereo 32 kHz clip: {median:.0f} ms median, {least:.0f} ms minimum")


if __name__ == "__main__":
    main()
