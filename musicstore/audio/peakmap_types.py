"""What :func:`musicstore.audio.truepeak.peak_map` returns and takes: :class:`PeakMap` (where a clip's true
peaks can be), :class:`Screened` (what its second screen read) and :class:`Reuse` (what the map of a
limiter's output reuses of its clip's). Re-exported by :mod:`musicstore.audio.truepeak`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.farfield import FarField, Rows


@dataclass(frozen=True)
class Screened:
    """What a clip's second screen read (see :func:`peak_map`), kept for the check of a limiter's output
    ``gain * x - d``, which equals ``gain`` times the clip wherever ``d`` (zero outside a few spans) is out
    of a row's reach: the spans of 8 rows it read (sorted) and, per row read, the larger of the near part at
    quarter samples, the Annex 2 values (largest |value| over channels, both without the far part) and the
    two samples beside the row (largest |sample|)."""

    spans: Rows
    reach: NDArray[np.float32]


@dataclass(frozen=True)
class Reuse:
    """What :func:`peak_map` reuses of a clip for the map of ``out``, which is ``gain`` times the clip except
    within ``changed`` (``(n, 2)`` sorted sample ranges ``[a, b)``) where it is turned down (``|out| <=
    gain |x|`` there: a limiter's curve is at most 1): the clip's :class:`Screened` and its span bounds
    (``out``'s derived from them, :func:`scaled_span_bounds`), where given."""

    screened: Screened | None
    gain: float
    changed: NDArray[np.int64]
    spans: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class PeakMap:
    """Where a clip's true peaks can be: its largest |sample| and the accurate meter's grid values (at
    least the Annex 2 4x ones) wherever they may exceed the sample peak or a lower floor (every other
    row is below both)."""

    sample_peak: float  # largest |sample| (linear)
    rows: Rows
    values: NDArray[
        np.float32
    ]  # detector value at ``rows``: the larger of the accurate grid and Annex 2 ones
    ideal: NDArray[np.float32]  # the accurate grid's value at ``rows``
    floor: float  # every detector value outside ``rows`` is at most this
    far: FarField
    spans: NDArray[np.float32] | None  # the near part's bound per span of 8 rows (:func:`span_bounds`); None
    # where derived from a clip's (``Reuse.spans``): not kept
    screened: Screened | None = None  # what the second screen read (``peak_map(..., keep_screen=True)``)

    @property
    def grid_peak(self) -> float:
        """Largest detector value (linear), at least the sample peak and ``GRID_FACTOR`` of the true peak."""
        return max(self.sample_peak, float(self.values.max(initial=0.0)))
