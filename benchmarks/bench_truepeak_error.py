"""The true-peak meters' error against an independent FFT reconstruction, on the test corpus.

    .venv/bin/python benchmarks/bench_truepeak_error.py
    .venv/bin/python benchmarks/bench_truepeak_error.py --ends 200   # and 200 short clips loud at the ends

For each kind of signal of ``tests/test_truepeak_ideal.py`` at each rate (0.5 s, stereo), prints the reading
of ``true_peak`` (the ideal-reconstruction meter) and of ``annex2_true_peak`` (BS.1770-4 Annex 2 4x) minus
a 32x zero-padded FFT upsampling (``tests/reference_meter.py``), ``true_peak`` minus the larger of that and
the periodic FFT reading (which ``true_peak`` also takes at the clip's ends), in dB, and the extremes.

``--ends N``: also N clips of 200-6000 samples with loud content at the ends (``ends_clip`` of
``tests/test_truepeak_looped.py``: near-Nyquist tones with hard edges, near-Nyquist and noise bursts at
both ends, a step at the junction; seeds 0..N-1), per kind the extremes of ``true_peak`` minus the larger
of the zero-padded reading and the periodic one within ``LOOPED_ROWS`` samples of an end (what the meter
reads looped), and minus the larger of the zero-padded and the periodic reading anywhere.
"""

from __future__ import annotations

import argparse

import numpy as np

from musicstore.audio.truepeak import annex2_true_peak, to_db, true_peak
from tests.reference_meter import reference_true_peak
from tests.test_truepeak_ideal import KINDS, RATES, corpus
from tests.test_truepeak_looped import ends_clip, readings

END_KINDS = ("tone", "bursts", "noise", "step")


def ends(count: int) -> None:
    """The extremes over ``count`` clips loud at the ends (see the module docstring)."""
    errors: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in END_KINDS}
    for seed in range(count):
        kind = END_KINDS[seed % len(END_KINDS)]
        rng = np.random.default_rng(seed)
        audio = ends_clip(kind, int(rng.integers(200, 6000)), int(rng.integers(1, 3)), seed)
        zero_padded, looped_ends, looped = readings(audio)
        measured = to_db(true_peak(audio))
        errors[kind][0].append(measured - to_db(max(zero_padded, looped_ends)))
        errors[kind][1].append(measured - to_db(max(zero_padded, looped)))
    print("\n| kind | clips | true_peak − max(FFT, periodic FFT at the ends) | − max(FFT, periodic FFT) |")
    print("|---|---:|---:|---:|")
    for kind, (at_ends, anywhere) in errors.items():
        print(
            f"| {kind} | {len(at_ends)} | {min(at_ends):+.3f} to {max(at_ends):+.3f}"
            f" | {min(anywhere):+.3f} to {max(anywhere):+.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ends", type=int, default=0, help="also this many short clips loud at the ends")
    arguments = parser.parse_args()
    errors: dict[str, list[float]] = {"true_peak": [], "annex2_true_peak": [], "true_peak vs both": []}
    print("| kind | rate | true_peak − FFT | annex2_true_peak − FFT | true_peak − max(FFT, periodic FFT) |")
    print("|---|---:|---:|---:|---:|")
    for kind in KINDS:
        for rate in RATES:
            audio = corpus(kind, rate, 0.5, seed=rate) * np.float32(0.5)
            reference = to_db(reference_true_peak(audio, up=32))
            both = max(reference, to_db(reference_true_peak(audio, up=32, periodic=True)))
            measured = to_db(true_peak(audio))
            ideal, annex2 = measured - reference, to_db(annex2_true_peak(audio)) - reference
            errors["true_peak"].append(ideal)
            errors["annex2_true_peak"].append(annex2)
            errors["true_peak vs both"].append(measured - both)
            print(f"| {kind} | {rate} | {ideal:+.3f} | {annex2:+.3f} | {measured - both:+.3f} |")
    for name, values in errors.items():
        print(f"\n{name}: from {min(values):+.3f} to {max(values):+.3f} dB")
    if arguments.ends:
        ends(arguments.ends)


if __name__ == "__main__":
    main()
