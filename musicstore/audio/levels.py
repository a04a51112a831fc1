"""Levels: a clip's largest |sample|, dB and back, and the exact power-of-two scaling that brings a clip far
out of audio's range into it before it is measured (re-exported by :mod:`musicstore.audio.truepeak`)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


def largest_sample(audio: NDArray[np.float32]) -> float:
    """Largest |sample| (the envelope's largest value, with no full-length temporary)."""
    if audio.size == 0:
        return 0.0
    return max(float(audio.max()), -float(audio.min()))


# a clip whose largest |sample| lies outside these is measured on a copy scaled by a power of two (exact): far
# out of audio's range the float32 arithmetic overflows (the far part's transforms sum the clip, the loudness
# power squares it: float32 holds 2**128) or loses bits to denormals (products with the filters' small taps)
_LARGEST = 2.0**48


_SMALLEST = 2.0**-48


def range_exponent(peak: float) -> int:
    """0 for a clip of largest |sample| ``peak`` in ``[2**-48, 2**48]`` (or silent), measured as it is;
    else the ``k`` for which ``2**-k`` times the clip (:func:`scaled_down`) has its largest |sample| in
    ``[0.5, 1)``: its linear figures times ``2**k`` are the clip's (dB levels plus ``20 log10(2**k)``)."""
    if _SMALLEST <= peak <= _LARGEST or peak == 0.0:
        return 0
    return math.frexp(peak)[1]


def scaled_down(audio: NDArray[np.float32], exponent: int) -> NDArray[np.float32]:
    """``audio`` times ``2**-exponent``, exactly (the exponents change, not the significands; ``audio``
    itself for 0)."""
    if exponent == 0:
        return audio
    scaled: NDArray[np.float32] = np.ldexp(audio, -exponent).astype(np.float32, copy=False)
    return scaled


def to_db(linear: float) -> float:
    """Amplitude ratio in dB (``-inf`` for 0)."""
    return 20.0 * math.log10(linear) if linear > 0 else float("-inf")


def from_db(db: float) -> float:
    """dB to amplitude ratio."""
    return float(10.0 ** (db / 20.0))


def target_reached(status: str, loudness: float, target_lufs: float, tolerance_lu: float) -> bool:
    """Whether an export or a rendition reached its loudness target: normalized or limited, or any clip but a
    silent one whose loudness is within the tolerance (one written unchanged that was already that close)."""
    return status in ("normalized", "limited") or (
        status != "silent" and abs(loudness - target_lufs) <= tolerance_lu
    )
