"""The filters :func:`musicstore.audio.truepeak.peak_map` screens rows with: the near part at quarter
samples and the Annex 2 meter in one matrix (:func:`_screen`), each column split into its two-sample part
and a curvature part (:func:`_curvature_split`), and those weights per span of 8 rows, with the spans'
largest values (:func:`_span_weights`, :func:`_span_max`); the spans whose screen a limiter's output takes
from its clip's (:func:`_reusable_spans`)."""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.farfield import Rows
from musicstore.audio.interpolation import Interpolator, annex2, near_sinc
from musicstore.audio.peakmap_types import Reuse

_SCREEN = 4  # positions per sample of the second screen


@functools.cache
def _screen() -> Interpolator:
    """The near part at quarter samples and the Annex 2 meter in one matrix (one gather per row)."""
    quarter, meter = near_sinc(_SCREEN), annex2()
    matrix = np.zeros((quarter.matrix.shape[0], quarter.matrix.shape[1] + meter.matrix.shape[1]), np.float32)
    matrix[:, : quarter.matrix.shape[1]] = quarter.matrix
    at = meter.first_offset - quarter.first_offset
    matrix[at : at + meter.matrix.shape[0], quarter.matrix.shape[1] :] = meter.matrix
    groups = (slice(0, quarter.matrix.shape[1]), slice(quarter.matrix.shape[1], matrix.shape[1]))
    # row_exact: peak_map reads a row's Annex 2 values again, apart from the rows first read with it
    return Interpolator(matrix, quarter.first_offset, groups, max(quarter.bound, meter.bound), row_exact=True)


@functools.cache
def _curvature_split() -> tuple[float, NDArray[np.float32], int]:
    """Each column ``h`` of the near part and of the Annex 2 meter, written exactly as
    ``c0 x[m - 1] + c1 x[m] + sum_o q[o] D[m - 1 + o]`` with ``D[n] = x[n - 1] - 2 x[n] + x[n + 1]``
    (``h`` less ``c0`` and ``c1`` at offsets 0 and 1 has no sum and no first moment, so it is a second
    difference of some ``q``). Returns the largest ``|c0| + |c1|``, the largest ``|q|`` at each offset and
    the first offset (from sample ``m - 1``)."""
    meters = (near_sinc(), annex2())
    first = min(m.first_offset for m in meters)
    width = max(m.first_offset + m.matrix.shape[0] for m in meters) - first + 1
    offsets = np.arange(first, first + width)
    gain = 0.0
    curvature = np.zeros(width, dtype=np.float64)
    for m in meters:
        for column in m.matrix.T:
            h = np.zeros(width)
            h[m.first_offset - first : m.first_offset - first + column.shape[0]] = column
            c1 = float((offsets * h).sum())  # the weight on x[m]: the first moment of h
            c0 = float(h.sum()) - c1  # on x[m - 1]: what is left of the sum
            r = h.copy()
            r[offsets == 0] -= c0
            r[offsets == 1] -= c1
            q = np.zeros(width)
            q[1:] = np.cumsum(np.cumsum(r))[:-1]  # q[o] = sum_{p < o} sum_{k <= p} r[k]
            gain = max(gain, abs(c0) + abs(c1))
            np.maximum(curvature, np.abs(q), out=curvature)
    return gain, curvature.astype(np.float32), first


_SPAN = 8  # rows per span of the coarse bound


@functools.cache
def _span_weights() -> tuple[float, NDArray[np.float32], int]:
    """The curvature weights of :func:`_curvature_split` summed per span of 8 samples: for a row in span
    ``J``, ``sum_o |q[o]| |D[m - 1 + o]| <= sum_d W[d] max |D| over span J + d``. Returns the gain, ``W``
    (the largest over the 8 rows of a span) and the first ``d``."""
    gain, curvature, first = _curvature_split()
    lo = (first - 1) // _SPAN
    hi = (_SPAN - 1 - 1 + first + curvature.shape[0] - 1) // _SPAN
    weights = np.zeros(hi - lo + 1)
    for r in range(_SPAN):
        spans = (r - 1 + first + np.arange(curvature.shape[0])) // _SPAN - lo
        np.maximum(weights, np.bincount(spans, curvature, minlength=weights.shape[0]), out=weights)
    return gain, weights.astype(np.float32), lo


def _span_max(values: NDArray[np.float32], start: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """The largest of each span of 8 (and of ``start``) of non-negative ``values``: the largest of
    neighbours, of those two apart, of those four apart, every 8th read (four numpy calls over contiguous
    rows, where a column at a time took eight and a reduction along the short axis is several times slower;
    the same values: a maximum does not round)."""
    pairs = np.maximum(values[:-1], values[1:])
    fours = np.maximum(pairs[:-2], pairs[2:])
    eights = np.maximum(fours[:-4], fours[4:])[::_SPAN]
    return eights.copy() if start is None else np.maximum(eights, start)


def _reusable_spans(reuse: Reuse, spans: Rows) -> tuple[NDArray[np.bool_], NDArray[np.intp]] | None:
    """For :func:`peak_map`'s ``reuse``: per span of ``spans``, whether its rows may take the clip's readings
    (the clip's screen read the span and no changed sample is within its rows' reach) and where the span is
    in the clip's :class:`Screened`; None when no span may."""
    if reuse.screened is None:
        return None
    screen = _screen()
    clip = reuse.screened.spans
    if clip.shape[0] == 0 or spans.shape[0] == 0:
        return None
    at = np.minimum(np.searchsorted(clip, spans), clip.shape[0] - 1)
    usable = clip[at] == spans
    # span J's rows 8 J .. 8 J + 7 read samples 8 J - 1 + first .. 8 J + 6 + first + window - 1
    changed = reuse.changed
    if changed.shape[0]:
        lo = spans.astype(np.int64) * _SPAN - 1 + screen.first_offset
        hi = lo + _SPAN - 1 + screen.matrix.shape[0] - 1
        after = np.searchsorted(changed[:, 1], lo, side="right")  # the first range ending after lo
        ahead = np.minimum(after, changed.shape[0] - 1)
        usable &= ~((after < changed.shape[0]) & (changed[ahead, 0] <= hi))
    if not usable.any():
        return None
    return usable, at
