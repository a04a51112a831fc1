"""How far lossy encoders push the true peak over the ceiling, before the renditions' headroom loop.

    .venv/bin/python -m benchmarks.rendition_overshoot [--seconds 3]

For each signal (synthesised music at two drum levels, a click track, and the true-peak test corpus: noise
bursts, hard-edged near-Nyquist sines, chirps to Nyquist, a dynamic bed, square and sawtooth waves, clipped
noise) at 44.1 kHz (Opus: resampled to 48 kHz), levelled to −14 LUFS under −1 dBTP exactly as a rendition's
first attempt with no headroom, each codec encodes it; the decoded file's true peak minus the ceiling and
its loudness minus the levelled input's are printed, then each codec's largest overshoot and loudness change.
Not a timing benchmark: the figures are the codecs', and docs/renditions.md quotes them.

With ``--loop``, each cell is a whole ``render_audio`` at the ``streaming`` profile with the default options
instead: encodes used, the decoded true peak minus the ceiling, the loudness minus the target, and the status.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from musicstore.audio import click_track, synthesize_music
from musicstore.audio.codecs import encode, resample
from musicstore.audio.limiter import LimiterSettings, level
from musicstore.audio.loudness import BlockPower
from musicstore.audio.renditions import RenditionSpec, _measure, render_audio
from musicstore.audio.truepeak import to_db
from musicstore.errors import RenditionFailed
from tests.test_truepeak_ideal import KINDS, corpus

CODECS = {
    "mp3 CBR 128": RenditionSpec("mp3", 128),
    "mp3 CBR 320": RenditionSpec("mp3", 320),
    "mp3 VBR V2": RenditionSpec("mp3", bitrate_mode="variable", quality=2),
    "opus 64": RenditionSpec("opus", 64),
    "opus 128": RenditionSpec("opus", 128),
    "vorbis q3": RenditionSpec("vorbis", quality=3),
    "vorbis q6": RenditionSpec("vorbis", quality=6),
    "flac 16": RenditionSpec("flac"),
}


def signals(seconds: float, rate: int) -> dict[str, np.ndarray]:
    out = {
        "music": synthesize_music(seconds, rate, seed=1),
        "music, loud drums": synthesize_music(seconds, rate, seed=2, drums=2.0),
        "click track": np.repeat(click_track(150.0, seconds, rate), 2, axis=0),
    }
    for kind in KINDS:
        out[kind] = corpus(kind, rate, seconds, seed=7) * np.float32(0.5)
    return out


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--loop", action="store_true", help="whole renditions, with the headroom loop")
    args = parser.parse_args()
    if args.loop:
        loop(args.seconds)
        return
    rate, target, ceiling = 44_100, -14.0, -1.0
    worst: dict[str, list[float]] = {name: [] for name in CODECS}
    misses: dict[str, list[float]] = {name: [] for name in CODECS}
    print("| signal | " + " | ".join(CODECS) + " |")
    print("|---|" + "---:|" * len(CODECS))
    rng = np.random.default_rng(0)
    for name, audio in signals(args.seconds, rate).items():
        cells = []
        for codec_name, spec in CODECS.items():
            codec = spec.settings(rate, audio.shape[0])
            x = resample(audio, rate, codec.sample_rate, lossy=True)
            leveled = level(
                x, BlockPower.measure(x, codec.sample_rate), target_lufs=target, ceiling_dbtp=ceiling,
                limiter=True, settings=LimiterSettings(),
            )  # fmt: skip
            loudness, peak, _ = _measure(encode(leveled.audio, codec, rng))
            over, miss = to_db(peak) - ceiling, loudness - leveled.loudness
            worst[codec_name].append(over)
            misses[codec_name].append(miss)
            cells.append(f"{over:+.2f} / {miss:+.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\ncodec: largest true-peak overshoot (dB), loudness change range (LU)")
    for codec_name in CODECS:
        low, high = min(misses[codec_name]), max(misses[codec_name])
        print(f"- {codec_name}: {max(worst[codec_name]):+.2f} dB; {low:+.2f} to {high:+.2f} LU")


def loop(seconds: float) -> None:
    rate, target, ceiling = 44_100, -14.0, -1.0
    print("| signal | " + " | ".join(CODECS) + " |")
    print("|---|" + "---:|" * len(CODECS))
    worst, attempts = -99.0, [0] * 11
    statuses: dict[str, int] = {}
    root = Path(tempfile.mkdtemp())
    for name, audio in signals(seconds, rate).items():
        cells = []
        for spec in CODECS.values():
            ext = {"mp3": "mp3", "opus": "opus", "vorbis": "ogg", "flac": "flac"}[spec.format]
            try:
                r = render_audio(audio, rate, root / f"x.{ext}", spec, "streaming")
            except RenditionFailed:
                cells.append("RenditionFailed")
                statuses["failed"] = statuses.get("failed", 0) + 1
                continue
            over = r.true_peak - ceiling
            worst = max(worst, over)
            attempts[len(r.attempts)] += 1
            statuses[r.status] = statuses.get(r.status, 0) + 1
            cells.append(f"{len(r.attempts)}: {over:+.2f} / {r.loudness - target:+.2f} {r.status}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nlargest final true peak minus the ceiling: {worst:+.2f} dB")
    print("encodes used:", {n: c for n, c in enumerate(attempts) if c}, "statuses:", statuses)


if __name__ == "__main__":
    main()
