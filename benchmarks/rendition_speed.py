"""Time to make a rendition against its floor: a bare soundfile encode of the same format plus one decode.

    .venv/bin/python -m benchmarks.rendition_speed [--seconds 30] [--repeats 5] [--formats mp3,opus]

A stereo 44.1 kHz master (synthesised music exported at −16 LUFS) is rendered at ``streaming`` by
``render_audio`` (levelling, encodes, decodes, measurement, tags, atomic write; Opus resampled to 48 kHz)
and, alternately, encoded once to memory with ``soundfile.write`` and decoded once with ``soundfile.read``
at the same settings (the floor). Prints each side's median and minimum in seconds, their ratio, and how
many encodes the rendition used. The issue's target: at most 1.3x the floor.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from musicstore.audio import export_audio, synthesize_music
from musicstore.audio.renditions import RenditionSpec, render_audio

SPECS = {
    "mp3": (RenditionSpec("mp3", 192), "mp3"),
    "opus": (RenditionSpec("opus", 128), "opus"),
    "vorbis": (RenditionSpec("vorbis", quality=6), "ogg"),
    "flac": (RenditionSpec("flac"), "flac"),
}


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", default=",".join(SPECS))
    args = parser.parse_args()
    rate = 44_100
    root = Path(tempfile.mkdtemp())
    master = export_audio(synthesize_music(args.seconds, rate, seed=1), rate, root / "master.wav")
    samples, _ = sf.read(master.path, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(samples.T)
    print("| format | rendition median (min) s | floor median (min) s | ratio median (min) | encodes |")
    print("|---|---:|---:|---:|---:|")
    for name in args.formats.split(","):
        spec, ext = SPECS[name]
        codec = spec.settings(rate, audio.shape[0])
        floor_audio = audio
        if codec.sample_rate != rate:
            import soxr  # type: ignore[import-untyped]

            floor_audio = np.ascontiguousarray(soxr.resample(audio.T, rate, codec.sample_rate, "HQ").T)
        library: list[float] = []
        floor: list[float] = []
        encodes = 0
        for repeat in range(args.repeats):
            for side in ("library", "floor") if repeat % 2 == 0 else ("floor", "library"):
                start = time.perf_counter()
                if side == "library":
                    result = render_audio(audio, rate, root / f"r.{ext}", spec, "streaming")
                    library.append(time.perf_counter() - start)
                    encodes = len(result.attempts)
                else:
                    buffer = io.BytesIO()
                    sf.write(
                        buffer, np.ascontiguousarray(floor_audio.T), codec.sample_rate,
                        format=codec.sf_format, subtype=codec.sf_subtype,
                        compression_level=codec.compression_level, bitrate_mode=codec.bitrate_mode,
                    )  # fmt: skip
                    sf.read(io.BytesIO(buffer.getvalue()), dtype="float32")
                    floor.append(time.perf_counter() - start)
        med, low = statistics.median(library), min(library)
        fmed, flow = statistics.median(floor), min(floor)
        print(
            f"| {name} | {med:.2f} ({low:.2f}) | {fmed:.2f} ({flow:.2f}) "
            f"| {med / fmed:.2f} ({low / flow:.2f}) | {encodes} |"
        )


if __name__ == "__main__":
    main()
