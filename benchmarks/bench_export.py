"""Export benchmark: musicstore.audio.export_audio beside a floor measured in the same run.

    .venv/bin/python benchmarks/bench_export.py            # 30 s stereo 32 kHz clips, 7 repeats
    .venv/bin/python benchmarks/bench_export.py --quick    # a fast smoke run (shorter clips, fewer repeats)

Floor: pyloudnorm's integrated loudness plus a soundfile PCM_16 write of the same clip (no true peak,
no gain, no fsync). Cases: a clip that needs no limiting, one that needs limiting, and a batch of 16
through export_batch (two threads). Times are medians; each export's stages (measure, limit, quantize,
write) come from its ExportResult. Peak memory is traced with tracemalloc for one export and compared
with the clip's float32 size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
from numpy.typing import NDArray

from musicstore.audio import ExportResult, export_audio, export_batch, synthesize_music

RATE = 32_000
TARGETS_MS = {"no limiting": 100.0, "limiting": 250.0, "batch of 16": 1200.0}


@dataclass
class Row:
    case: str
    results: list[ExportResult]
    total_ms: float
    floor_ms: float
    memory_ratio: float


def median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def floor_once(clip: NDArray[np.float32], path: Path) -> None:
    frames = clip.T
    pyloudnorm.Meter(RATE).integrated_loudness(frames)
    sf.write(path, frames, RATE, subtype="PCM_16", format="WAV")


def peak_memory_ratio(clip: NDArray[np.float32], path: Path) -> float:
    tracemalloc.start()
    export_audio(clip, RATE, path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / clip.nbytes


def single_case(name: str, clip: NDArray[np.float32], root: Path, repeats: int) -> Row:
    path = root / f"{name.replace(' ', '_')}.wav"
    export_audio(clip, RATE, path)  # warm-up: caches, page cache
    results: list[ExportResult] = []
    total = median_ms(lambda: results.append(export_audio(clip, RATE, path)), repeats)
    floor = median_ms(lambda: floor_once(clip, root / "floor.wav"), repeats)
    return Row(name, results, total, floor, peak_memory_ratio(clip, path))


def batch_case(clips: NDArray[np.float32], root: Path, repeats: int) -> Row:
    paths = [root / f"batch_{i}.wav" for i in range(clips.shape[0])]
    export_batch(clips, RATE, paths)
    results: list[ExportResult] = []
    total = median_ms(lambda: results.extend(export_batch(clips, RATE, paths)), repeats)

    def floor_all() -> None:
        for i, clip in enumerate(clips):
            floor_once(clip, root / f"floor_{i}.wav")

    floor = median_ms(floor_all, repeats)
    return Row(f"batch of {clips.shape[0]}", results, total, floor, float("nan"))


def stage_medians(results: list[ExportResult]) -> dict[str, float]:
    return {
        stage: statistics.median(getattr(r.timings, stage) for r in results) * 1e3
        for stage in ("measure", "limit", "quantize", "write")
    }


def report(rows: list[Row], seconds: float) -> None:
    print(f"\nexport of {seconds:g} s stereo {RATE // 1000} kHz float32 clips, PCM_16 WAV (medians, ms)\n")
    columns = [
        "case",
        "measure",
        "limit",
        "quantize",
        "write",
        "total",
        "floor",
        "total/floor",
        "target",
        "status",
        "memory/clip",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        stages = stage_medians(row.results)
        statuses = sorted({r.status for r in row.results})
        target = TARGETS_MS.get(row.case, 0.0)
        memory = "" if np.isnan(row.memory_ratio) else f"{row.memory_ratio:.2f}x"
        cells = [
            row.case,
            *(f"{stages[s]:.1f}" for s in ("measure", "limit", "quantize", "write")),
            f"{row.total_ms:.1f}",
            f"{row.floor_ms:.1f}",
            f"{row.total_ms / row.floor_ms:.2f}",
            f"≤ {target:g}" if target else "-",
            "/".join(statuses),
            memory,
        ]
        print("| " + " | ".join(cells) + " |")
    loud = [r for row in rows for r in row.results if r.target_reached]
    print(f"\n{len(loud)} of {sum(len(r.results) for r in rows)} exports reached −16 LUFS; max true peak "
          f"{max(r.true_peak_after for row in rows for r in row.results):.2f} dBTP")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s clips, batch of 4, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 30.0
    repeats = args.repeats or (2 if args.quick else 7)
    batch_size = 4 if args.quick else 16
    calm = synthesize_music(seconds, RATE, drums=0.0, seed=1)  # pads and bass: gain only
    drums = synthesize_music(seconds, RATE, seed=2)  # drum transients: needs the limiter
    batch = np.stack(
        [synthesize_music(seconds, RATE, seed=10 + i, drums=(i % 4) / 2) for i in range(batch_size)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [
            single_case("no limiting", calm, root, repeats),
            single_case("limiting", drums, root, repeats),
            batch_case(batch, root, repeats),
        ]
    report(rows, seconds)


if __name__ == "__main__":
    main()
