"""Regressions found hunting musicstore.audio's analysis, peaks and array hand-off (one test per bug)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstore.audio.peaks import compute_peaks


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1.5, 1.5, width=32), min_size=1, max_size=300),
    digits=st.integers(0, 6),
)
def test_normalized_peaks_are_rounded_to_the_digits_asked(values: list[float], digits: int) -> None:
    """``normalized(digits)`` rounded the float32 extremes in float32 and handed out their float64 reading:
    0.3845 came out as 0.38449999690055847 (the web API's computed waveform, twice the JSON of the recorded
    one, which rounds in float64). Each value is now the float64 extreme, clipped, rounded to ``digits``."""
    x = np.asarray(values, dtype=np.float32)
    peaks = compute_peaks(x, 16_000, 7)
    expected = [
        float(np.round(min(max(float(v), -1.0), 1.0), digits))
        for bucket in peaks.extremes[:, 0, :]
        for v in bucket
    ]
    (got,) = peaks.normalized(digits)
    assert got == expected
    assert all(v == round(v, digits) for v in got)
    assert json.loads(json.dumps(got)) == expected
