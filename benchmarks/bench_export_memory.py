"""Peak memory of one export over the clip's size, one fresh process per clip length.

    .venv/bin/python benchmarks/bench_export_memory.py                 # 0.5, 2.5, 5 and 10 min, 48 kHz stereo
    .venv/bin/python benchmarks/bench_export_memory.py --minutes 1 10
    .venv/bin/python benchmarks/bench_export_memory.py --channels 1   # mono: the piece's left channel

Each child process loads the clip (float32, written by the parent), exports a short clip first so that
libraries and caches are in place, reads its resident memory, exports the clip (PCM_16 WAV, the
default options: the synthesised drums need the limiter) and reads its peak resident memory (the
kernel's high-water mark ``VmHWM``, reset just before the export through ``/proc/self/clear_refs``;
not ``ru_maxrss``, which a child started by ``subprocess`` inherits from its parent's peak: the figures
of short clips were the parent's). The figure is (peak - resident before the export) / the clip's float32
size: what the export itself adds on top of the caller's copy of the clip. Beside it: what is still
resident after the export (caches kept for the next clip of that length, and freed memory the allocator
holds on to), and the peak of numpy's own allocations traced by ``tracemalloc`` in a second fresh process
(not traced: pocketfft's plans and buffers, libsndfile, the allocator's holdings, and the arrays made in
mappings of their own, ``arrays.mapped_empty``: the far part's spectra, its filter's response and low-band
buffer, the limited far part's expansion buffers). Last, the peak of a second export of the same clip in the
first process (a worker's next clip of that length), over what is
resident before it, and in brackets over what was resident before the first (the memory the allocator
kept from the first counts there), and the same of a third. An export holds no far spectrum nor pocketfft
plan of its length at its peak: the second clip of a length makes them again after its write and keeps
them (up to 8 MiB each: clips up to about 87 s at 48 kHz), so the third finds them resident before it
(``farfield.keep_spectrum``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RATE = 48_000


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def reset_peak() -> None:
    """Set this process's resident high-water mark to what is resident now (Linux 4.0 on)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_bytes() -> int:
    """This process's resident high-water mark since the last :func:`reset_peak`."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def child(clip_path: str, out_dir: str, traced: bool) -> None:
    import tracemalloc

    from musicstore.audio import export_audio, synthesize_music

    export_audio(synthesize_music(2.0, RATE, seed=1), RATE, Path(out_dir) / "warm.wav")
    clip = np.load(clip_path)
    if traced:
        tracemalloc.start()
    reset_peak()
    before, since = resident_bytes(), tracemalloc.get_traced_memory()[0]
    result = export_audio(clip, RATE, Path(out_dir) / "clip.wav")
    peak = peak_bytes()
    after, traced_peak = resident_bytes(), tracemalloc.get_traced_memory()[1] - since
    reset_peak()  # the next clip of that length
    again_before = resident_bytes()
    export_audio(clip, RATE, Path(out_dir) / "again.wav")
    again = peak_bytes()
    reset_peak()  # and the one after it, which finds the far spectrum the second kept
    third_before = resident_bytes()
    export_audio(clip, RATE, Path(out_dir) / "third.wav")
    third = peak_bytes()
    print(json.dumps({"before": before, "peak": peak, "after": after, "traced": traced_peak,
                      "again_before": again_before, "again": again, "third_before": third_before,
                      "third": third, "clip": clip.nbytes, "status": result.status}))  # fmt: skip


def run_child(clip_path: Path, tmp: str, mode: str) -> dict[str, Any]:
    """One export of the saved clip in a fresh process; ``mode`` "traced" runs it under tracemalloc."""
    run = subprocess.run(
        [sys.executable, __file__, "--child", str(clip_path), tmp, mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    measured: dict[str, Any] = json.loads(run.stdout)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[0.5, 2.5, 5.0, 10.0])
    parser.add_argument("--channels", type=int, choices=(1, 2), default=2, help="1: the piece's left channel")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] == "traced")
        return
    from musicstore.audio import synthesize_music

    piece = synthesize_music(30.0, RATE, seed=2)[: args.channels]  # drums, bass, pads; tiled to each length
    print("| clip | clip size (MB) | export's peak (MB) | peak / clip | resident after / clip "
          "| traced peak / clip | next clip: peak / clip (over the first's start) | third clip: the same "
          "| status |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            frames = round(minutes * 60 * RATE)
            clip = np.ascontiguousarray(np.tile(piece, (1, -(-frames // piece.shape[1])))[:, :frames])
            clip_path = Path(tmp) / "clip.npy"
            np.save(clip_path, clip)
            del clip
            m, t = (run_child(clip_path, tmp, mode) for mode in ("resident", "traced"))
            added = m["peak"] - m["before"]
            ratio, left = added / m["clip"], (m["after"] - m["before"]) / m["clip"]
            traced = t["traced"] / m["clip"]
            clip_mb, added_mb = m["clip"] / 1e6, added / 1e6
            cells = [f"{minutes:g} min", f"{clip_mb:.0f}", f"{added_mb:.0f}", f"{ratio:.2f}x", f"{left:.2f}x"]
            later = [
                f"{(m[k] - m[k + '_before']) / m['clip']:.2f}x ({(m[k] - m['before']) / m['clip']:.2f}x)"
                for k in ("again", "third")
            ]
            print("| " + " | ".join([*cells, f"{traced:.2f}x", *later, m["status"]]) + " |")


if __name__ == "__main__":
    main()
