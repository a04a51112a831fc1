"""Export benchmark: musicstore.audio.export_audio beside a floor measured in the same run.

    .venv/bin/python benchmarks/bench_export.py            # 30 s stereo 32 kHz clips, 7 repeats
    .venv/bin/python benchmarks/bench_export.py --limited-only 15   # the limited clip alone (A/B of trees)
    .venv/bin/python benchmarks/bench_export.py --quick    # a fast smoke run (shorter clips, fewer repeats)
    python benchmarks/bench_export.py --device cuda --dtype bfloat16   # clips handed over as GPU tensors
    .venv/bin/python benchmarks/bench_export.py --switch-interval 0.001   # the GIL handed over sooner

Floor: pyloudnorm's integrated loudness plus a soundfile PCM_16 write of the same clip (no true peak,
no gain, no fsync). Cases: a clip that needs no limiting, one that needs limiting, and a batch of 16
through export_batch (two threads), also compared with the same 16 clips through export_audio one at a
time (batch, floor and singles in turn). The library and the floor run in turn, one round each at a
time; the table gives medians and minima, and beside the wall-clock ratios the median CPU time of the
process (all threads) over the floor's: steadier than wall-clock on a machine shared with other jobs,
blind to waits (the export's fsyncs). Each export's stages (measure, limit, quantize, write) come from
its ExportResult. Peak memory is traced with tracemalloc for one export and compared with the clip's
float32 size. The batch needs both cores where the single exports need one, so each batch round also
reads how much of the cores other processes kept busy (``/proc/stat``, Linux) and the ratio is given
over the quiet rounds too (under 5 %), beside the cores the batch kept busy (its CPU time over its
wall-clock).

With ``--device``, every clip and the batch are torch tensors on that device, as a model hands them
over. The floor then includes a bare ``.float().cpu()`` copy; "to host" is that copy alone, and
"as_audio" is musicstore's checked hand-off of the same tensor.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyloudnorm
import soundfile as sf
from numpy.typing import NDArray

from musicstore.audio import (
    ExportResult,
    as_audio,
    as_audio_batch,
    export_audio,
    export_batch,
    synthesize_music,
)

if TYPE_CHECKING:
    import torch  # imported at run time only with --device

RATE = 32_000
Clip: TypeAlias = "NDArray[np.float32] | torch.Tensor"
"""Audio as the benchmark hands it over: float32 numpy, or with ``--device`` a torch tensor."""
TARGETS_MS = {"no limiting": 100.0, "limiting": 250.0, "batch of 16": 1200.0}


@dataclass
class Row:
    case: str
    results: list[ExportResult]
    totals: list[float]  # ms, one per round, alternated with the floor's
    floors: list[float]
    memory_ratio: float
    cpu_ratio: float = float("nan")  # median CPU time (all threads) over the floor's
    host_ms: float = float("nan")
    convert_ms: float = float("nan")
    singles: list[float] | None = None  # batch rows: the same clips through export_audio one at a time
    others: list[float] | None = None  # batch rows: other processes' share of the cores, per round
    cores: float = float("nan")  # batch rows: median CPU time over median wall-clock (cores kept busy)
    waits: tuple[float, float] | None = None  # batch rows: median waits per round, batch and singles
    cpu_ms: tuple[float, float] | None = None  # batch rows: median CPU ms (all threads), batch and singles


def median_ms(run: Callable[[], object], repeats: int) -> float:
    return statistics.median(times_ms(run, repeats))


CPU_MS: dict[Callable[[], object], list[float]] = {}  # CPU ms of each timed call, by the run (kept alive)


def times_ms(run: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock ms of each call (and its CPU ms, all threads, kept in ``CPU_MS``)."""
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - start) * 1e3)
        CPU_MS.setdefault(run, []).append((time.process_time() - cpu) * 1e3)
    return times


def alternated_ms(
    run: Callable[[], object], floor: Callable[[], object], repeats: int
) -> tuple[list[float], list[float]]:
    """Library and floor timed in turn (one of each per round), so that load changes hit both alike."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeats):
        ours += times_ms(run, 1)
        theirs += times_ms(floor, 1)
    return ours, theirs


def cpu_ratio(run: Callable[[], object], floor: Callable[[], object]) -> float:
    """Median CPU time of ``run``'s timed calls over the floor's (steadier than wall-clock under load)."""
    return statistics.median(CPU_MS[run]) / statistics.median(CPU_MS[floor])


def to_host(audio: Any) -> NDArray[np.float32]:
    """The bare device-to-host copy a caller would write (the floor's share of a tensor hand-off)."""
    if isinstance(audio, np.ndarray):
        return audio
    return np.asarray(audio.float().cpu().numpy())


def floor_once(audio: Any, path: Path) -> None:
    frames = to_host(audio).T
    pyloudnorm.Meter(RATE).integrated_loudness(frames)
    sf.write(path, frames, RATE, subtype="PCM_16", format="WAV")


def peak_memory_ratio(clip: Any, path: Path) -> float:
    tracemalloc.start()  # numpy's allocations only: torch's own host buffers are not traced
    export_audio(clip, RATE, path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / to_host(clip).nbytes


def host_ms(audio: Any, repeats: int) -> tuple[float, float]:
    """The bare copy beside musicstore's own hand-off (checks and a pinned buffer for CUDA included)."""
    if isinstance(audio, np.ndarray):
        return float("nan"), float("nan")
    convert = as_audio_batch if audio.ndim == 3 else as_audio
    return median_ms(lambda: to_host(audio), repeats), median_ms(lambda: convert(audio), repeats)


def single_case(name: str, clip: Any, root: Path, repeats: int) -> Row:
    path = root / f"{name.replace(' ', '_')}.wav"
    export_audio(clip, RATE, path)  # warm-up: caches, page cache
    floor_once(clip, root / "floor.wav")
    results: list[ExportResult] = []

    def run() -> None:
        results.append(export_audio(clip, RATE, path))

    def floor() -> None:
        floor_once(clip, root / "floor.wav")

    totals, floors = alternated_ms(run, floor, repeats)
    row = Row(name, results, totals, floors, peak_memory_ratio(clip, path), *host_ms(clip, repeats))
    row.cpu_ratio = cpu_ratio(run, floor)
    return row


def batch_case(clips: Any, root: Path, repeats: int) -> Row:
    paths = [root / f"batch_{i}.wav" for i in range(clips.shape[0])]
    export_batch(clips, RATE, paths)
    results: list[ExportResult] = []

    def floor_all() -> None:
        for i, clip in enumerate(to_host(clips)):
            floor_once(clip, root / f"floor_{i}.wav")

    def singles_all() -> None:
        for clip, path in zip(clips, paths, strict=True):
            export_audio(clip, RATE, path)

    def batch() -> None:
        results.extend(export_batch(clips, RATE, paths))

    totals, floors, singles, others = [], [], [], []
    batch_waits, single_waits = [], []
    for _ in range(repeats):  # batch, floor and sixteen single exports in turn
        before, waited = busy_seconds(), waits()
        totals += times_ms(batch, 1)
        middle = busy_seconds()
        batch_waits.append(waits() - waited)
        floors += times_ms(floor_all, 1)
        after_floor, waited = busy_seconds(), waits()
        singles += times_ms(singles_all, 1)
        single_waits.append(waits() - waited)
        shares = (
            others_share(before, middle, totals[-1], CPU_MS[batch][-1]),
            others_share(after_floor, busy_seconds(), singles[-1], CPU_MS[singles_all][-1]),
        )
        others.append(max(shares))
    row = Row(f"batch of {clips.shape[0]}", results, totals, floors, float("nan"), *host_ms(clips, repeats))
    row.singles, row.cpu_ratio, row.others = singles, cpu_ratio(batch, floor_all), others
    row.cores = statistics.median(CPU_MS[batch]) / statistics.median(totals)
    row.waits = statistics.median(batch_waits), statistics.median(single_waits)
    row.cpu_ms = statistics.median(CPU_MS[batch]), statistics.median(CPU_MS[singles_all])
    return row


def waits() -> int:
    """The process's voluntary context switches so far: each a wait of one of its threads, for the disk (an
    fsync) or for the GIL held by another (a contended hand-off: the batch's threads between numpy calls)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def busy_seconds() -> float:
    """Seconds all CPUs of the machine have been busy (Linux ``/proc/stat``; NaN elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def others_share(start: float, end: float, wall_ms: float, cpu_ms: float) -> float:
    """The share of the machine's cores that other processes kept busy while this one ran ``wall_ms``."""
    return max(end - start - cpu_ms / 1e3, 0.0) / ((os.cpu_count() or 1) * wall_ms / 1e3)


def stage_medians(results: list[ExportResult]) -> dict[str, float]:
    return {
        stage: statistics.median(getattr(r.timings, stage) for r in results) * 1e3
        for stage in ("measure", "limit", "quantize", "write")
    }


def ratio_cells(totals: list[float], floors: list[float], pick: Callable[[list[float]], float]) -> list[str]:
    total, floor = pick(totals), pick(floors)
    return [f"{total:.1f}", f"{floor:.1f}", f"{total / floor:.2f}"]


def report(rows: list[Row], seconds: float, source: str) -> None:
    print(f"\nexport of {seconds:g} s stereo {RATE // 1000} kHz {source} clips, PCM_16 WAV (ms)\n")
    columns = [
        "case",
        "to host",
        "as_audio",
        "measure",
        "limit",
        "quantize",
        "write",
        "total (median)",
        "floor (median)",
        "total/floor (median)",
        "total (min)",
        "floor (min)",
        "total/floor (min)",
        "target",
        "status",
        "memory/clip",
        "CPU/floor CPU (median)",
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
            "-" if np.isnan(row.host_ms) else f"{row.host_ms:.1f}",
            "-" if np.isnan(row.convert_ms) else f"{row.convert_ms:.1f}",
            *(f"{stages[s]:.1f}" for s in ("measure", "limit", "quantize", "write")),
            *ratio_cells(row.totals, row.floors, statistics.median),
            *ratio_cells(row.totals, row.floors, min),
            f"≤ {target:g}" if target else "-",
            "/".join(statuses),
            memory,
            f"{row.cpu_ratio:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        if row.singles:
            median = statistics.median(row.totals) / statistics.median(row.singles)
            low = min(row.totals) / min(row.singles)
            print(f"\n{row.case} over the same clips exported one at a time: {median:.2f} (median), "
                  f"{low:.2f} (min); singles {statistics.median(row.singles):.0f} ms median, "
                  f"{min(row.singles):.0f} ms min; target ≤ 0.6; "
                  f"the batch kept {row.cores:.2f} cores busy")  # fmt: skip
            print(quiet_rounds(row))
            print(reachable(row))
            if row.waits is not None:
                print(f"waits (voluntary context switches: the GIL, fsync) per round, median: batch "
                      f"{row.waits[0]:.0f}, singles {row.waits[1]:.0f}")  # fmt: skip
    loud = [r for row in rows for r in row.results if r.target_reached]
    print(f"\n{len(loud)} of {sum(len(r.results) for r in rows)} exports reached −16 LUFS; max true peak "
          f"{max(r.true_peak_after for row in rows for r in row.results):.2f} dBTP")  # fmt: skip


def reachable(row: Row) -> str:
    """The best ratio the batch could read with the CPU time it spends: all of it spread over every core
    with none idle, against the singles' wall time (which use a second core for each clip's loudness)."""
    assert row.singles is not None and row.cpu_ms is not None
    batch_cpu, singles_cpu = row.cpu_ms
    cores = os.cpu_count() or 1
    best = batch_cpu / cores / statistics.median(row.singles)
    return (f"CPU, median: batch {batch_cpu:.0f} ms, singles {singles_cpu:.0f} ms (the singles kept "
            f"{singles_cpu / statistics.median(row.singles):.2f} cores busy); the batch's CPU spread over "
            f"{cores} cores with none idle would read {best:.2f}")  # fmt: skip


def quiet_rounds(row: Row) -> str:
    """The batch's ratio over the rounds in which other processes kept under 5 % of the cores busy (the
    batch needs both cores; the single exports, one)."""
    assert row.singles is not None and row.others is not None
    shares = ", ".join(f"{share:.0%}" for share in row.others)
    quiet = [t / s for t, s, o in zip(row.totals, row.singles, row.others, strict=True) if o < 0.05]
    if not quiet:
        return f"other processes' share of the cores, per round: {shares}; no quiet round"
    return (f"other processes' share of the cores, per round: {shares}; in the {len(quiet)} quiet "
            f"rounds (under 5 %) the batch read {statistics.median(quiet):.2f} (median), "
            f"{min(quiet):.2f} (min)")  # fmt: skip


def limited_only(exports: int) -> None:
    """The benchmark's limited clip exported ``exports`` times after 3 warm-up exports: wall-clock and
    process CPU ms per export (min, median). Steadier than the floor ratios for an A/B of two trees run in
    turn (``PYTHONPATH``) on a shared machine: the CPU time leaves out what other processes take."""
    clip = synthesize_music(30.0, RATE, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "limited.wav"
        for _ in range(3):
            export_audio(clip, RATE, path)
        walls = times_ms(lambda: export_audio(clip, RATE, path), exports)
    cpus = next(iter(CPU_MS.values()))
    print(f"wall min {min(walls):.1f} median {statistics.median(walls):.1f} "
          f"cpu min {min(cpus):.1f} median {statistics.median(cpus):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s clips, batch of 4, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", help="hand clips over as torch tensors on this device (cpu, cuda)")
    parser.add_argument("--dtype", default="float32", help="tensor dtype with --device")
    parser.add_argument("--no-batch", action="store_true", help="single clips only")
    parser.add_argument(
        "--limited-only",
        type=int,
        metavar="N",
        help="only N limited exports in a row, no floor: wall and CPU ms (min, median), for A/B runs",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="S",
        help="sys.setswitchinterval(S) for the whole run, as a worker process may set it (Python's default: "
        "0.005 s): how long a thread that wants the GIL waits for another to hand it over",
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.limited_only:
        limited_only(args.limited_only)
        return
    seconds = 5.0 if args.quick else 30.0
    repeats = args.repeats or (2 if args.quick else 7)
    batch_size = 4 if args.quick else 16
    calm: Clip = synthesize_music(seconds, RATE, drums=0.0, seed=1)  # pads and bass: gain only
    drums: Clip = synthesize_music(seconds, RATE, seed=2)  # drum transients: needs the limiter
    batch: Clip = np.stack(
        [synthesize_music(seconds, RATE, seed=10 + i, drums=(i % 4) / 2) for i in range(batch_size)]
    )
    source = "float32 numpy"
    if args.device:
        import torch

        dtype = getattr(torch, args.dtype)
        calm, drums, batch = (torch.from_numpy(a).to(args.device, dtype) for a in (calm, drums, batch))
        source = f"{args.dtype} tensor ({args.device})"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [
            single_case("no limiting", calm, root, repeats),
            single_case("limiting", drums, root, repeats),
        ]
        if not args.no_batch:
            rows.append(batch_case(batch, root, repeats))
    report(rows, seconds, source)


if __name__ == "__main__":
    main()
