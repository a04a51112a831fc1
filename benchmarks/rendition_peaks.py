"""What the waveform peaks cost at export: ``export_generation`` with its default ``peaks=True`` against
``peaks=False``, on the same clip.

    .venv/bin/python -m benchmarks.rendition_peaks [--seconds 30] [--repeats 7] [--rate 44100]

A stereo clip (synthesised music) is exported for a claimed generation of a SQLite store in a temp folder,
as a PCM_16 WAV master (loudness, limiter, dither, tags, atomic write, completion), alternately with the
peaks (256 samples per pixel, 8 bits, mixed: computed from the frames as they are written, put beside the
master with their normalised [−1, 1] file, both recorded in the row) and without. The job is created and
claimed outside the timed part. Prints each side's median and minimum in ms of wall time and of this
process's CPU time (steadier on a shared machine; the wall time also counts the peaks files' fsyncs), the
differences and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from musicstore import Store
from musicstore.audio import synthesize_music
from musicstore.recording import export_generation


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rate", type=int, default=44_100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    size = (0, 0, 0)
    audio = synthesize_music(args.seconds, args.rate, seed=1)
    times: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    with Store(f"sqlite:///{root}/bench.db", migrate=True) as store:
        for repeat in range(args.repeats + 1):  # the first round warms up (imports, caches)
            for peaks in (True, False) if repeat % 2 == 0 else (False, True):
                store.create_generation(
                    "bench", model_name="m", duration_seconds=args.seconds, sample_rate=args.rate, channels=2
                )
                job = store.claim_next("bench")
                assert job is not None
                start, used = time.perf_counter(), time.process_time()
                done = export_generation(store, job, audio, root=root / "audio", peaks=peaks)
                elapsed, spent = time.perf_counter() - start, time.process_time() - used
                assert (done.peaks is not None) == peaks
                if done.peaks is not None:
                    normalized = int(done.generation.metadata["peaks"]["normalized"]["bytes"])
                    size = (done.peaks.bytes, normalized, done.result.bytes)
                if repeat:
                    times[peaks].append(elapsed)
                    cpu[peaks].append(spent)
    print("| export of a master | wall: median (min) ms | CPU: median (min) ms |")
    print("|---|---:|---:|")
    cells: dict[object, list[str]] = {key: [] for key in (False, True, "diff", "ratio")}
    for figures in (times, cpu):
        on = statistics.median(figures[True]) * 1e3, min(figures[True]) * 1e3
        off = statistics.median(figures[False]) * 1e3, min(figures[False]) * 1e3
        cells[False].append(f"{off[0]:.1f} ({off[1]:.1f})")
        cells[True].append(f"{on[0]:.1f} ({on[1]:.1f})")
        cells["diff"].append(f"{on[0] - off[0]:+.1f} ({on[1] - off[1]:+.1f})")
        cells["ratio"].append(f"{on[0] / off[0]:.3f} ({on[1] / off[1]:.3f})")
    names = {False: "peaks=False", True: "peaks=True (the default)", "diff": "difference", "ratio": "ratio"}
    for key, name in names.items():
        print(f"| {name} | {' | '.join(cells[key])} |")
    print(f"\npeaks file {size[0]:,} bytes, normalised file {size[1]:,} bytes, master {size[2]:,} bytes")


if __name__ == "__main__":
    main()
