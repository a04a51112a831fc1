"""What other true-peak readings make of limited exports: scipy's ``resample_poly`` against the ideal one.

    .venv/bin/python -m benchmarks.truepeak_interpolators
    .venv/bin/python -m benchmarks.truepeak_interpolators --clips 8 --targets -12 -9 -7

Exports ``synthesize_music`` clips (8 s, stereo, 48 kHz, the library's own test music: hard-edged
synthesised drums, much content near Nyquist) at loud targets, so that the limiter works, then reads each
PCM_16 file back and prints, in dBTP, the figure the export reported, a 16x zero-padded FFT upsampling of
the whole file (``tests/reference_meter.py``: the ideal reconstruction the ceiling is held under), and
``scipy.signal.resample_poly(x, 4, 1)`` and ``(x, 8, 1)``: polyphase interpolators with scipy's default
Kaiser (beta 5) filter, whose transition band straddles Nyquist and so passes part of the images of the
content near it. The last lines give the extremes of each reading over the ceiling and over the ideal one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from musicstore.audio import ExportOptions, export_audio, synthesize_music
from tests.reference_meter import reference_true_peak

RATE = 48_000
SECONDS = 8.0
CEILING = -1.0


def db(value: float) -> float:
    return 20.0 * float(np.log10(value))


def readings(path: Path) -> tuple[float, float, float]:
    """The file's 16x FFT (zero-padded), resample_poly 4x and 8x readings, in dBTP."""
    audio, _ = sf.read(path, dtype="float64", always_2d=True)
    ideal = db(reference_true_peak(audio.T, 16))
    poly4 = db(float(np.abs(resample_poly(audio, 4, 1, axis=0)).max()))
    poly8 = db(float(np.abs(resample_poly(audio, 8, 1, axis=0)).max()))
    return ideal, poly4, poly8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="clips (seeds 0..N-1)")
    parser.add_argument("--targets", type=float, nargs="+", default=[-12.0, -9.0, -7.0], help="LUFS")
    args = parser.parse_args()
    rows: list[tuple[float, float, float, float]] = []
    print("| seed | target LUFS | reported | FFT 16x | resample_poly 4x | resample_poly 8x |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.clips):
            clip = synthesize_music(SECONDS, RATE, bpm=100.0 + 7 * seed, seed=seed)
            for target in args.targets:
                path = Path(tmp) / f"{seed}_{target}.wav"
                options = ExportOptions(target_lufs=target, ceiling_dbtp=CEILING, max_limiting_db=20.0)
                reported = export_audio(clip, RATE, path, options).true_peak_after
                ideal, poly4, poly8 = readings(path)
                rows.append((reported, ideal, poly4, poly8))
                print(f"| {seed} | {target:g} | {reported:.3f} | {ideal:.3f} | {poly4:.3f} | {poly8:.3f} |")
    table = np.array(rows)
    for column, name in enumerate(["reported", "FFT 16x", "resample_poly 4x", "resample_poly 8x"]):
        over_ceiling = float(table[:, column].max()) - CEILING
        over_ideal = float((table[:, column] - table[:, 1]).max())
        print(
            f"{name}: highest {over_ceiling:+.3f} dB from the ceiling, "
            f"{over_ideal:+.3f} dB over FFT 16x at most"
        )


if __name__ == "__main__":
    main()
