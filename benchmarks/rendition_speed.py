"""Time to make a rendition against its floor: a bare soundfile encode of the same format plus one decode.

    .venv/bin/python -m benchmarks.rendition_speed [--seconds 30] [--repeats 5] [--formats mp3,opus]
        [--bounds] [--cpu]

A stereo 44.1 kHz master (synthesised music exported at −16 LUFS) is rendered at ``streaming`` by
``render_audio`` (levelling, encodes, decodes, measurement, tags, atomic write; Opus resampled to 48 kHz)
and, alternately, encoded once to memory with ``soundfile.write`` and decoded once with ``soundfile.read``
at the same settings (the floor). Prints each side's median and minimum in seconds, their ratio, and how
many encodes the rendition used. The issue's target: at most 1.3x the floor. ``--cpu`` times this process's
CPU time instead of the wall clock (steadier on a shared machine; it leaves out the rendition's fsyncs).

``--steps`` prints, per format, the CPU time of each step of a rendition timed alone (median of 5): the
input's block loudness, the limiter's levelling (as ``render_audio`` calls it: without the limiter's own
output check for a lossy codec), the encode, the decode, the decoded audio's loudness and true
peak, the tags and the SHA-256.

``--bounds`` adds two sides that show how close any verified rendition can come to the target: the floor
plus the verification alone (the integrated loudness and the accurate true peak of the decoded audio, as
``render_audio`` measures them), and that plus the least a levelling limiter must measure of its input (the
block loudness and one accurate peak map down to the sample peak). Each is printed as a ratio to the floor.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore.audio import export_audio, synthesize_music
from musicstore.audio.codecs import LOSSLESS_SUBTYPES, Codec, decode, encode, resample
from musicstore.audio.limiter import LimiterSettings, level
from musicstore.audio.loudness import BlockPower, integrated_loudness
from musicstore.audio.renditions import DEFAULT_HEADROOM_DB, RenditionSpec, render_audio
from musicstore.audio.tags import LoudnessTags, Provenance, embed
from musicstore.audio.truepeak import peak_map, true_peak

SPECS = {
    "mp3": (RenditionSpec("mp3", 192), "mp3"),
    "opus": (RenditionSpec("opus", 128), "opus"),
    "vorbis": (RenditionSpec("vorbis", quality=6), "ogg"),
    "flac": (RenditionSpec("flac"), "flac"),
}


def _floor(audio: NDArray[np.float32], codec: Codec) -> NDArray[np.float32]:
    """One bare encode to memory and one decode; the decoded samples ``(C, S)``."""
    buffer = io.BytesIO()
    sf.write(
        buffer, np.ascontiguousarray(audio.T), codec.sample_rate,
        format=codec.sf_format, subtype=codec.sf_subtype,
        compression_level=codec.compression_level, bitrate_mode=codec.bitrate_mode,
    )  # fmt: skip
    decoded, _ = sf.read(io.BytesIO(buffer.getvalue()), dtype="float32")
    return np.ascontiguousarray(decoded.T)


def _verified(audio: NDArray[np.float32], codec: Codec) -> None:
    """The floor plus the verification of what it decoded."""
    decoded = _floor(audio, codec)
    integrated_loudness(decoded, codec.sample_rate)
    true_peak(decoded)


def _least(audio: NDArray[np.float32], master: NDArray[np.float32], rate: int, codec: Codec) -> None:
    """The floor, the verification, and the least a limiter must measure of its input."""
    BlockPower.measure(master, rate)
    peak_map(master)
    _verified(audio, codec)


def _steps(audio: NDArray[np.float32], rate: int, name: str) -> list[tuple[str, float]]:
    """Each step of one rendition at ``streaming`` (Opus's input resampled to 48 kHz first, as
    ``render_audio`` does), timed alone: median CPU ms of 5."""
    spec, _ = SPECS[name]
    codec = spec.settings(rate, audio.shape[0])
    x = audio if codec.sample_rate == rate else resample(audio, rate, codec.sample_rate, lossy=True)
    blocks = BlockPower.measure(x, codec.sample_rate)
    settings = LimiterSettings()
    ceiling = -1.0 - DEFAULT_HEADROOM_DB[name]
    verify = codec.format in LOSSLESS_SUBTYPES  # as render_audio levels: lossy without the limiter's check
    leveled = level(
        x, blocks, target_lufs=-14.0, ceiling_dbtp=ceiling, limiter=True, settings=settings, verify=verify
    )
    rng = np.random.default_rng(0)
    data = encode(leveled.audio, codec, rng)
    decoded, _ = decode(data)
    who = Provenance("a prompt", model_name="m", seed=1, generation_id="g")
    steps: dict[str, Callable[[], object]] = {
        "resample": partial(resample, audio, rate, codec.sample_rate, lossy=True),
        "input block loudness": partial(BlockPower.measure, x, codec.sample_rate),
        "limiter.level": partial(
            level,
            x,
            blocks,
            target_lufs=-14.0,
            ceiling_dbtp=ceiling,
            limiter=True,
            settings=settings,
            verify=verify,
        ),
        "encode": partial(encode, leveled.audio, codec, rng),
        "decode": partial(decode, data),
        "decoded loudness": partial(integrated_loudness, decoded, codec.sample_rate),
        "decoded true peak": partial(true_peak, decoded),
        "tags": partial(embed, data, name, who, LoudnessTags(-14.0, 0.8)),
        "sha256": partial(lambda b: hashlib.sha256(b).hexdigest(), data),
    }
    out = []
    for step, run in steps.items():
        spent = []
        for _ in range(5):
            start = time.process_time()
            run()
            spent.append(time.process_time() - start)
        out.append((step, statistics.median(spent) * 1e3))
    return out


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", default=",".join(SPECS))
    parser.add_argument("--bounds", action="store_true", help="also time the floor plus the verification")
    parser.add_argument("--cpu", action="store_true", help="CPU time of this process, not wall time")
    parser.add_argument("--steps", action="store_true", help="CPU time of each step, timed alone")
    args = parser.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    rate = 44_100
    root = Path(tempfile.mkdtemp())
    master = export_audio(synthesize_music(args.seconds, rate, seed=1), rate, root / "master.wav")
    samples, _ = sf.read(master.path, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(samples.T)
    header = "| format | rendition median (min) s | floor median (min) s | ratio median (min) | encodes |"
    rule = "|---|---:|---:|---:|---:|"
    if args.bounds:
        header += " floor + verification: ratio median (min) | + the limiter's input measures |"
        rule += "---:|---:|"
    if args.steps:
        for name in args.formats.split(","):
            print(f"{name}: " + ", ".join(f"{step} {ms:.1f} ms" for step, ms in _steps(audio, rate, name)))
        return
    print(header)
    print(rule)
    for name in args.formats.split(","):
        spec, ext = SPECS[name]
        codec = spec.settings(rate, audio.shape[0])
        floor_audio = audio
        if codec.sample_rate != rate:
            import soxr  # type: ignore[import-untyped]

            floor_audio = np.ascontiguousarray(soxr.resample(audio.T, rate, codec.sample_rate, "HQ").T)
        sides: dict[str, Callable[[], object]] = {
            "library": partial(render_audio, audio, rate, root / f"r.{ext}", spec, "streaming"),
            "floor": partial(_floor, floor_audio, codec),
        }
        if args.bounds:
            sides["verified"] = partial(_verified, floor_audio, codec)
            sides["least"] = partial(_least, floor_audio, audio, rate, codec)
        times: dict[str, list[float]] = {side: [] for side in sides}
        encodes = 0
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for side in order:
                start = clock()
                made = sides[side]()
                times[side].append(clock() - start)
                if side == "library":
                    encodes = len(made.attempts)  # type: ignore[attr-defined]
        med, low = statistics.median(times["library"]), min(times["library"])
        fmed, flow = statistics.median(times["floor"]), min(times["floor"])
        line = (
            f"| {name} | {med:.2f} ({low:.2f}) | {fmed:.2f} ({flow:.2f}) "
            f"| {med / fmed:.2f} ({low / flow:.2f}) | {encodes} |"
        )
        for side in ("verified", "least") if args.bounds else ():
            smed, slow = statistics.median(times[side]), min(times[side])
            line += f" {smed / fmed:.2f} ({slow / flow:.2f}) |"
        print(line)


if __name__ == "__main__":
    main()
