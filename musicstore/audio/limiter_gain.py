"""The limiter's static gain (:mod:`musicstore.audio.limiter` re-exports these names): the limited
loudness predicted from the region's K-weighted power (:func:`_predict`), the search for the gain whose
prediction meets the target (:func:`_search`), plain gain where nothing needs limiting (:func:`_static`) and
a curve's reduction (:func:`_reduction`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.arrays import mapped_empty, scaled
from musicstore.audio.limiter_region import Leveled, _Region
from musicstore.audio.loudness import BlockPower, gated_loudness
from musicstore.audio.truepeak import PeakMap, from_db, refined_peak, to_db

if TYPE_CHECKING:
    from musicstore.audio.limiter_curve import _Shape


AIM_LU = 0.005  # how close the prediction is driven to the target
_REDUCTION_EPS = from_db(-0.01)
_MAPPED_BUFFERS = 1 << 18  # bytes from which the search's curve buffers are mapped apart


def _predict(
    blocks: BlockPower, base: NDArray[np.float64], region: _Region, gain: float, g: NDArray[np.float32]
) -> float:
    # float64 products of the float32 power (each converted exactly): as of the power in float64; the int32
    # index is searched as the int64 one
    at = cast("NDArray[np.intp]", region.index)
    power = region.power
    assert power is not None  # made again after a check (_Limiter.limit)

    def lost(a: int, b: int) -> NDArray[np.float64]:  # (1 - g^2) times the power at region samples a..b-1
        part = np.square(g[a:b], dtype=np.float64)
        np.subtract(1.0, part, out=part)
        part *= power[a:b]
        return part

    return gated_loudness(gain * gain * np.maximum(base - blocks.block_sums_at(at, lost), 0.0))


def _search(
    blocks: BlockPower,
    base: NDArray[np.float64],
    region: _Region,
    shape: _Shape,
    *,
    target: float,
    start: float,
    upper: float,
    ceiling: float,
    aim_lu: float = AIM_LU,
) -> tuple[float, float]:
    """Static gain whose limited loudness is predicted closest to ``target`` (gain ≤ ``upper``; within
    ``aim_lu`` of it ends the search) and its predicted loudness (its curve is not kept: memory)."""
    gain = min(start, upper)
    best: tuple[float, float, float] | None = None
    buffers = (region_buffer(region.need.shape), region_buffer(region.need.shape))
    for _ in range(12):
        predicted = _predict(blocks, base, region, gain, shape.curve(region.need, gain, ceiling, buffers))
        error = target - predicted
        if best is None or abs(error) < best[0]:
            best = (abs(error), gain, predicted)
        if abs(error) < aim_lu:
            break
        following = min(gain * from_db(error), upper)
        if following == gain:
            break
        gain = following
    assert best is not None
    return best[1], best[2]


def region_buffer(shape: int | tuple[int, ...]) -> NDArray[np.float32]:
    """A float32 buffer of the region's size (the curve's, its difference's) for the search and the output's
    making: in a mapping of its own from 256 KiB. Made in the allocator's heap, these buffers set its extent
    (glibc's mmap threshold stands at the far part's transform size by then), and the heap keeps that extent
    resident through the output's check, under the output."""
    buffer: NDArray[np.float32] = mapped_empty(shape, np.float32, least=_MAPPED_BUFFERS)
    return buffer


def _static(
    x: NDArray[np.float32], base: NDArray[np.float64], peaks: PeakMap, gain: float, started: float
) -> Leveled:
    """Plain gain: loudness re-gated from the block powers, true peak scaled (both exact)."""
    loudness = gated_loudness(gain * gain * base)
    true_peak = gain * refined_peak(x, peaks)
    measured = time.perf_counter() - started
    return Leveled(scaled(x, gain), to_db(gain), loudness, true_peak, 0.0, 0.0, False, measured)


def _reduction(g: NDArray[np.float32], samples: int) -> tuple[float, float]:
    """A curve's deepest reduction (dB) and the share of the clip's ``samples`` it turns down (by more than
    0.01 dB)."""
    deepest = float(g.min()) if g.size else 1.0
    return -to_db(deepest), float(np.count_nonzero(g < _REDUCTION_EPS)) / samples
