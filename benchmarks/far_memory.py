"""Where a mono clip's export memory peaks: the far part's transforms (``FarField.measure``), in fresh
processes, against the clip's float32 size.

    .venv/bin/python -m benchmarks.far_memory                    # 10 minutes, 48 kHz, mono
    .venv/bin/python -m benchmarks.far_memory --minutes 5

The far part convolves the clip's decimated low band with a kernel as long as the clip, by FFT of ``N``
points (``_transform_key``). Each child measures, from its resident high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) over what was resident before: the far part's measure of the clip; one transform
of ``N`` points alone with no plan cached (pocketfft's plan, kept, and its scratch copy, freed); and ``N``
float32 (one spectrum's buffer), each over the clip's size. The measure holds the kernel's spectrum and the
clip's through the clip's transform: two buffers, a plan and a scratch copy, ``4 N`` floats.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

RATE = 48_000


def _child(samples: int) -> None:
    import numpy as np

    from musicstore.audio.far_grid import _transform_key
    from musicstore.audio.far_spectra import _rfft_in_place
    from musicstore.audio.farfield import FarField, _forget_plan

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    def peak_since(before: int) -> int:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024 - before

    def reset() -> int:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return resident()

    rng = np.random.default_rng(1)
    clip = (rng.standard_normal((1, samples)) * 0.1).astype(np.float32)
    FarField.measure(clip[:, :96_000], keep=False)  # libraries and caches in place
    size = _transform_key(samples)[3]
    before = reset()
    far = FarField.measure(clip, keep=False)
    measure = peak_since(before)
    del far
    _forget_plan(size, always=True)
    buffer = np.empty(size // 2 + 1, dtype=np.complex64)
    buffer.fill(0)  # resident before the transform
    before = reset()
    _rfft_in_place(buffer, size)
    transform, plan = peak_since(before), resident() - before
    print(json.dumps({"clip": clip.nbytes, "size": size, "measure": measure, "transform": transform,
                      "plan": plan, "buffer": 4 * size}))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="the clip's length (default 10)")
    args = p.parse_args(argv)
    samples = int(args.minutes * 60 * RATE)
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.far_memory", "--child", str(samples)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    got = json.loads(out.splitlines()[-1])
    clip = got["clip"]
    ratio = {name: got[name] / clip for name in ("buffer", "plan", "transform", "measure")}
    print(f"{args.minutes:g} min mono at 48 kHz: clip {clip / 1e6:.0f} MB; transform N = {got['size']:,}")
    print(f"  one buffer of N float32:            {ratio['buffer']:.2f}x the clip")
    print(f"  a transform's plan (kept):          {ratio['plan']:.2f}x; its peak {ratio['transform']:.2f}x")
    print(f"  the far part's measure, its peak:   {ratio['measure']:.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]))
    else:
        main()
