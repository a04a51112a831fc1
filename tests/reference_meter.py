"""An independent reference true-peak meter for the tests: FFT (band-limited) upsampling of a whole clip.

It shares no code with ``musicstore.audio.truepeak``: ``scipy.signal.resample`` on the decoded samples,
either zero-padded on both sides (the ideal reconstruction of the clip, silent outside it) or as given
(the periodic reconstruction an FFT meter computes, which joins the last sample to the first).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.signal import resample


def reference_true_peak(audio: NDArray[np.floating], up: int = 16, *, periodic: bool = False) -> float:
    """Largest |value| (linear) of ``(C, S)`` audio upsampled ``up`` times by FFT (≥ the sample peak)."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if not periodic:
        pad = max(x.shape[1], 4096)  # silence both sides, so the ends do not wrap onto each other
        x = np.pad(x, ((0, 0), (pad, pad)))
    upsampled = resample(x, x.shape[1] * up, axis=-1)
    return max(float(np.abs(upsampled).max()), float(np.abs(x).max()))


def reference_true_peak_db(audio: NDArray[np.floating], up: int = 16) -> float:
    """The larger of the zero-padded and periodic readings, in dBTP."""
    peak = max(reference_true_peak(audio, up), reference_true_peak(audio, up, periodic=True))
    return 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")
