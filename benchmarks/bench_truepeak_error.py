"""The true-peak meters' error against an independent FFT reconstruction, on the test corpus.

    .venv/bin/python benchmarks/bench_truepeak_error.py

For each kind of signal of ``tests/test_truepeak_ideal.py`` at each rate (0.5 s, stereo), prints the reading
of ``true_peak`` (the ideal-reconstruction meter) and of ``annex2_true_peak`` (BS.1770-4 Annex 2 4x) minus
a 32x zero-padded FFT upsampling (``tests/reference_meter.py``), ``true_peak`` minus the larger of that and
the periodic FFT reading (which ``true_peak`` also takes at the clip's ends), in dB, and the extremes.
"""

from __future__ import annotations

import numpy as np

from musicstore.audio.truepeak import annex2_true_peak, to_db, true_peak
from tests.reference_meter import reference_true_peak
from tests.test_truepeak_ideal import KINDS, RATES, corpus


def main() -> None:
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


if __name__ == "__main__":
    main()
