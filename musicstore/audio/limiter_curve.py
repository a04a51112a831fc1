"""The limiter's gain curve (:mod:`musicstore.audio.limiter`): its shape from the settings (hold and ramp) and
the minimum and box filters that make it, a chunk at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import minimum_filter1d

if TYPE_CHECKING:
    from musicstore.audio.limiter_region import LimiterSettings


class _Shape:
    def __init__(self, settings: LimiterSettings, sample_rate: int) -> None:
        self.ramp = max(1, round(settings.ramp_ms * 1e-3 * sample_rate)) | 1  # odd box length
        self.half = round(settings.hold_ms * 1e-3 * sample_rate / 2) + self.ramp - 1
        self.reach = self.half + self.ramp + 16  # + interpolation reach, so region edges stay at 1

    def curve(
        self,
        need: NDArray[np.float32],
        gain: float,
        ceiling: float,
        out: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
    ) -> NDArray[np.float32]:
        """The gain curve over ``need``'s samples, made in two arrays of its length: ``out`` where given (a
        search's, made once: no new blocks each time, which left the allocator's heap larger: memory)."""
        required, curve = (np.empty_like(need), np.empty_like(need)) if out is None else out
        with np.errstate(divide="ignore"):
            np.divide(np.float32(ceiling / gain), need, out=required)
        np.minimum(required, np.float32(1.0), out=required)
        _minimum_filter(required, 2 * self.half + 1, curve)
        for _ in range(2):
            _box_filter(curve, self.ramp)
        np.minimum(curve, required, out=curve)  # guards the smoothing's float rounding
        return curve


_FILTER_CHUNK = 1 << 16  # samples at a time of the curve's filters (no float64 line of the region's length)


def _minimum_filter(values: NDArray[np.float32], size: int, out: NDArray[np.float32]) -> None:
    """``minimum_filter1d(values, size, mode="nearest", output=out)`` (scipy's), a chunk at a time: scipy
    filters a line in two float64 buffers of its length (0.3x a mono clip for a region of 7 % of it)."""
    half, count = size // 2, values.shape[0]
    for a in range(0, count, _FILTER_CHUNK):
        b = min(a + _FILTER_CHUNK, count)
        lo, hi = max(0, a - half), min(count, b + half)  # within reach; the line's ends as scipy extends them
        out[a:b] = minimum_filter1d(values[lo:hi], size, mode="nearest")[a - lo : b - lo]


def _box_filter(values: NDArray[np.float32], size: int) -> None:
    """``uniform_filter1d(values, size, mode="nearest")`` (scipy's) in place, bit for bit: a running sum in
    float64 over the line extended by its end values (the first window summed a value at a time, then each
    step adds the value entering and less the one leaving, as one difference), each output that sum over
    ``size``; a chunk at a time (scipy's two float64 buffers of the line's length: memory). A chunk's outputs
    are written once the next chunk, which reads the values behind it, is summed."""
    half, count = size // 2, values.shape[0]
    if count == 0:
        return

    def taken(lo: int, hi: int) -> NDArray[np.float32]:  # values[lo:hi], positions beyond the ends clipped
        if lo >= 0 and hi <= count:
            return values[lo:hi]
        picked: NDArray[np.float32] = values[np.clip(np.arange(lo, hi), 0, count - 1)]
        return picked

    running = np.cumsum(taken(-half, size - half), dtype=np.float64)[
        -1
    ]  # the first window, a value at a time
    pending: tuple[int, NDArray[np.float32]] | None = None
    chunk = max(_FILTER_CHUNK, size)  # a chunk reads values at most ``size`` behind it: the pending chunk's
    for a in range(0, count, chunk):
        b = min(a + chunk, count)
        first = max(a, 1)  # output ll adds value ll + half less value ll - 1 - half (each as a float64)
        sums = np.empty(b - first + 1)
        sums[0] = running
        np.subtract(
            taken(first + half, b + half),
            taken(first - 1 - half, b - 1 - half),
            out=sums[1:],
            dtype=np.float64,
        )
        np.cumsum(sums, out=sums)
        running = float(sums[-1])
        made = (sums if a == 0 else sums[1:]) / size
        if pending is not None:
            values[pending[0] : pending[0] + pending[1].shape[0]] = pending[1]
        pending = (a, made.astype(np.float32))
    if pending is not None:
        values[pending[0] : pending[0] + pending[1].shape[0]] = pending[1]
