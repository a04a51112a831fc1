"""What the limiter (:mod:`musicstore.audio.limiter`, which re-exports these names) is set with and returns
(:class:`LimiterSettings`, :class:`Leveled`), the region it works on (:class:`_Region`: the samples within
reach of a hot sample, :func:`_region`) and where rows of the peak map sit in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.farfield import Rows
from musicstore.audio.loudness import BlockPower

if TYPE_CHECKING:
    from musicstore.audio.limiter import _Need


@dataclass(frozen=True)
class LimiterSettings:
    """Look-ahead limiter shape: depth cap, hold and ramp lengths."""

    max_depth_db: float = 6.0
    hold_ms: float = 4.0
    ramp_ms: float = 2.0


@dataclass(frozen=True)
class Leveled:
    """Audio after gain and limiting, with what was done and measured."""

    audio: NDArray[np.float32]
    gain_db: float
    loudness: float
    true_peak: float  # linear, by the accurate meter (ideal reconstruction); NaN where not verified
    max_reduction_db: float
    reduced_fraction: float
    limited: bool
    measure_seconds: float = 0.0  # of the time taken, spent measuring true peaks


@dataclass
class _Region:
    """Samples within reach of a hot sample (sorted) and their peak need: 12 bytes a sample (an int32 index
    where the clip allows, float32 power; the float64 products of :func:`_predict` read the same values),
    0.2x a mono clip where 7 % of it is within reach. Through the output's check only the need is held
    (:meth:`drop`)."""

    index: Rows  # int32 for clips under 2**31 samples
    need: NDArray[np.float32]
    power: NDArray[np.float32] | None  # the clip's K-weighted power there (as ``BlockPower.power`` holds it)

    def drop(self) -> None:
        """Drop the index and the power (memory): :meth:`restore` makes the index again from its runs
        (:func:`_spans`), a search the power where it needs it."""
        self.index, self.power = np.empty(0, dtype=self.index.dtype), None

    def restore(self, runs: NDArray[np.int64]) -> None:
        self.index = _index_of(runs[:, 0], runs[:, 1], self.index.dtype)


def _index_of(first: NDArray[np.integer], last: NDArray[np.integer], dtype: np.dtype[Any]) -> Rows:
    """The samples of the sorted runs ``[first, last)``, in ``dtype``."""
    lengths = last - first
    offsets = np.cumsum(lengths) - lengths
    index: Rows = np.repeat((first - offsets).astype(dtype), lengths)
    index += np.arange(index.shape[0], dtype=index.dtype)
    return index


def _region(need: _Need, blocks: BlockPower, gain: float, ceiling: float, reach: int) -> _Region:
    samples = need.x.shape[1]
    hot = need.hot(gain, ceiling)
    dtype = np.dtype(np.int32 if samples < 2**31 else np.int64)
    index: Rows = hot.astype(dtype)
    if hot.size:
        breaks = np.flatnonzero(np.diff(hot) > 2 * reach)  # merge overlapping neighbourhoods
        first = np.clip(np.concatenate([hot[:1], hot[breaks + 1]]) - reach, 0, samples)
        last = np.clip(np.concatenate([hot[breaks], hot[-1:]]) + reach + 1, 0, samples)
        index = _index_of(first, last, dtype)
    return _Region(index, need.at(index), blocks.power_at(need.x, index))


def _positions(index: Rows, wanted: NDArray[np.integer]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Where each of ``wanted`` sits in the sorted ``index``, and whether it is there at all."""
    at = np.minimum(np.searchsorted(index, wanted), max(index.shape[0] - 1, 0))
    found = index[at] == wanted if index.shape[0] else np.zeros(wanted.shape, dtype=bool)
    return at, found


def _touch_region(index: Rows, rows: NDArray[np.integer]) -> bool:
    """Whether every grid row (between samples ``m - 1`` and ``m``) has one of its samples in ``index``."""
    return bool((_positions(index, rows)[1] | _positions(index, rows - 1)[1]).all())


def _row_factors(index: Rows, rows: NDArray[np.integer], factors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Per sample of ``index``: the largest of ``factors`` at the rows on either side of it (1 if none)."""
    out = np.ones(index.shape[0], dtype=np.float32)
    for shift in (0, 1):  # row r lies between samples r - 1 and r
        at, found = _positions(index, rows - shift)
        np.maximum.at(out, at[found], factors[found])
    return out


def _spans(region: _Region) -> NDArray[np.int64]:
    """The region's runs of consecutive samples, ``(n, 2)``: ``[first, last + 1)``."""
    index = region.index
    breaks = np.flatnonzero(np.diff(index) > 1)
    starts = np.concatenate([index[:1], index[breaks + 1]])
    stops = np.concatenate([index[breaks], index[-1:]]) + 1
    return np.stack([starts, stops], axis=1).astype(np.int64)
