"""True-peak metering: the BS.1770-4 Annex 2 4x meter, and an accurate one for the export.

The accurate meter evaluates the ideal (sinc) reconstruction of the clip, zero outside it: a near part, a
48-tap FIR per position (:mod:`musicstore.audio.interpolation`), plus a far part computed once per clip by
FFT (:mod:`musicstore.audio.farfield`). Values are taken on a grid of 8 positions per sample; a
band-limited peak between grid points exceeds the grid by at most ``(pi / 16)^2 / 2`` of itself
(Bernstein), which callers add as a margin or remove by refining.

Interpolation is skipped wherever a bound (plus the far part's) stays below the level of interest, then
where finer bounds do (see :func:`peak_map`); the rows left are gathered into small matrix products.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.arrays import as_audio
from musicstore.audio.farfield import BLOCK, LOOPED_ROWS, FarField, Rows
from musicstore.audio.ideal_values import _envelope_at, _looped_reach, candidate_rows, detect, ideal_peaks
from musicstore.audio.interpolation import GRID, annex2
from musicstore.audio.levels import from_db, largest_sample, range_exponent, scaled_down, to_db
from musicstore.audio.peakmap_types import PeakMap, Reuse, Screened
from musicstore.audio.span_screens import _SCREEN, _SPAN, _reusable_spans, _screen, _span_max, _span_weights

GRID_FACTOR = 1.0 - (math.pi / (2 * GRID)) ** 2 / 2  # grid reading ≥ this share of a peak (Bernstein)
_FINE = 64  # positions per sample when refining a peak
_SCREEN_BERNSTEIN = (math.pi / (2 * _SCREEN)) ** 2 / 2
# a quarter-grid reading below the level by this share of the quarter grid's peak cannot hide a value
# above it; 1e-3 more for the float32 arithmetic and the far part's interpolation
_SCREEN_SLACK = _SCREEN_BERNSTEIN / (1 - _SCREEN_BERNSTEIN) + 1e-3


def sample_envelope(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    """Largest |sample| over channels, per sample: ``(S,)`` (a chunk at a time: no full-length temporary)."""
    envelope = np.empty(audio.shape[1], dtype=np.float32)
    part = np.empty(min(_CHUNK, audio.shape[1]), dtype=np.float32)
    for start in range(0, audio.shape[1], _CHUNK):
        stop = min(start + _CHUNK, audio.shape[1])
        _envelope_into(audio, start, stop, envelope[start:stop], part[: stop - start])
    return envelope


def _envelope_into(
    audio: NDArray[np.float32], start: int, stop: int, out: NDArray[np.float32], part: NDArray[np.float32]
) -> None:
    """``out`` = the largest |sample| over channels of samples ``start .. stop - 1`` (``part``: scratch)."""
    np.abs(audio[0, start:stop], out=out)
    for channel in audio[1:]:
        np.abs(channel[start:stop], out=part)
        np.maximum(out, part, out=out)


_CHUNK = 1 << 15  # samples at a time (a multiple of the span; its seven buffers 0.15x a 30 s mono clip)
_READ_SPANS = 1 << 13  # spans the second screen reads at a time (64k rows: 256 KiB per row-length array)


def span_bounds(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    """An upper bound of the near part and the Annex 2 values (zero outside the clip) over each span of 8
    rows (rows ``8 J .. 8 J + 7``; row ``m`` lies between samples ``m - 1`` and ``m``, ``m = 0..S``):
    ``(|c0| + |c1|)`` times the span's largest ``|x|`` (and the sample before it), plus the curvature
    weights over the largest ``|D|`` of each span around it (see :func:`_curvature_split`), with room
    for the float32 rounding. Tight where the audio is smooth (``D`` small). The sample envelope is read a
    chunk at a time (no full-length one: 1.0x a mono clip)."""
    gain, weights, lo = _span_weights()
    samples = audio.shape[1]
    spans = samples // _SPAN + 1  # row S is in the last
    reach = np.empty(spans, dtype=np.float32)
    span_bend = np.zeros(spans + weights.shape[0], dtype=np.float32)  # span J at J - lo
    size = min(_CHUNK, spans * _SPAN)
    window = np.empty(size + 2, dtype=np.float32)  # one channel's samples start - 1 .. stop, zero outside
    part = np.empty(size + 1, dtype=np.float32)
    bend = np.empty(size, dtype=np.float32)  # max over channels of |D|, zero from sample S on
    peak = np.empty(size + 1, dtype=np.float32)  # the envelope from sample start - 1
    top = 0.0  # the envelope's largest value
    for start in range(0, spans * _SPAN, _CHUNK):  # in chunks: no full-length temporaries
        stop = min(start + _CHUNK, spans * _SPAN)
        n, inside = stop - start, max(0, min(stop, samples) - start)
        if start > 0 and stop < samples:  # samples start - 1 .. stop all inside: read in place
            _envelope_into(audio, start - 1, stop, peak[: n + 1], part[: n + 1])
            top = max(top, float(peak[: n + 1].max()))
            for c, x in enumerate(audio):
                d = bend[:n] if c == 0 else part[:n]  # |D| ≥ 0: the first channel's is the maximum so far
                np.multiply(x[start:stop], np.float32(-2.0), out=d)
                d += x[start - 1 : stop - 1]
                d += x[start + 1 : stop + 1]
                np.abs(d, out=d)
                if c:
                    np.maximum(bend[:n], d, out=bend[:n])
            span_bend[start // _SPAN - lo : stop // _SPAN - lo] = _span_max(bend[:n])
            reach[start // _SPAN : stop // _SPAN] = _span_max(peak[1 : n + 1], peak[:n:_SPAN])
            continue
        bend[:n] = 0.0
        for x in audio:
            window[: n + 2] = 0.0
            first = max(start - 1, 0)
            window[first - start + 1 : min(stop + 1, samples) - start + 1] = x[first : stop + 1]
            np.multiply(window[1 : n + 1], np.float32(-2.0), out=part[:n])
            part[:n] += window[:n]
            part[:n] += window[2 : n + 2]
            np.abs(part[:n], out=part[:n])
            np.maximum(bend[:n], part[:n], out=bend[:n])
        bend[inside:n] = 0.0
        span_bend[start // _SPAN - lo : stop // _SPAN - lo] = _span_max(bend[:n])
        peak[: n + 1] = 0.0
        first = max(start - 1, 0)  # peak[k]: sample start - 1 + k
        last = start + inside
        _envelope_into(audio, first, last, peak[first - start + 1 : inside + 1], part[: last - first])
        top = max(top, float(peak[: n + 1].max()))
        reach[start // _SPAN : stop // _SPAN] = _span_max(peak[1 : n + 1], peak[:n:_SPAN])
    reach *= np.float32(gain)
    curved: NDArray[np.float32] = np.correlate(span_bend, weights, mode="valid")[:spans]
    reach += curved
    rounding = top + float(weights.sum()) * float(span_bend.max())
    reach += np.float32(1e-5 * rounding)
    return reach


def scaled_span_bounds(
    out: NDArray[np.float32], bounds: NDArray[np.float32], gain: float, changed: NDArray[np.int64]
) -> NDArray[np.float32]:
    """:func:`span_bounds` of ``out``, which is ``gain`` times a clip whose span bounds are ``bounds`` except
    within ``changed`` (``(n, 2)`` sorted sample ranges ``[a, b)``): the clip's scaled (with room for the
    float32 rounding of the product) where no changed sample reaches a span, re-computed around the
    ranges (on slices wide enough that every span inside reads only samples of its slice)."""
    _, weights, lo = _span_weights()
    width = weights.shape[0]
    result: NDArray[np.float32] = bounds * np.float32(gain * (1 + 1e-5))
    samples = out.shape[1]
    spans = result.shape[0]
    ranges: list[list[int]] = []  # spans to re-compute: those whose samples or curvature reach a change
    for a, b in changed.tolist():
        first = max(0, min((a - 1) // _SPAN - (lo + width - 1), a // _SPAN) - 1)
        last = min(spans - 1, max(b // _SPAN - lo, b // _SPAN) + 1)
        if ranges and first <= ranges[-1][1] + 2 * width + 4:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
    # each range's samples (8 (J + lo) - 1 .. 8 (J + lo + width) + 8 for its spans J); those inside the clip
    # in one row per channel, 8-aligned and apart by zeros wider than any span reads (one span_bounds call);
    # a slice that reaches an end of the clip alone, so that the clip's ends are read as they are
    gap = _SPAN * (width + abs(lo) + 4)
    slices = [
        (max(0, _SPAN * (first + min(lo, 0) - 1)), min(samples, _SPAN * (last + max(lo + width, 0) + 2)))
        for first, last in ranges
    ]
    inner = [k for k, (start, stop) in enumerate(slices) if start > 0 and stop < samples]
    for k in sorted(set(range(len(ranges))) - set(inner)):
        (first, last), (start, stop) = ranges[k], slices[k]
        piece = np.ascontiguousarray(out[:, start:stop])
        local = span_bounds(piece)
        result[first : last + 1] = local[first - start // _SPAN : last - start // _SPAN + 1]
    if not inner:
        return result
    lengths = [-(-(slices[k][1] - slices[k][0]) // _SPAN) * _SPAN + gap for k in inner]
    places = np.cumsum([0, *lengths])
    joined = np.zeros((out.shape[0], int(places[-1])), dtype=np.float32)
    for k, place in zip(inner, places[:-1].tolist(), strict=True):
        start, stop = slices[k]
        joined[:, place : place + stop - start] = out[:, start:stop]
    local = span_bounds(joined)
    for k, place in zip(inner, places[:-1].tolist(), strict=True):
        (first, last), (start, _) = ranges[k], slices[k]
        at = (place - start) // _SPAN  # local span of global span J: J + at
        result[first : last + 1] = local[first + at : last + at + 1]
    return result


def _add_per_block(bound: NDArray[np.float32], far_blocks: NDArray[np.float32]) -> None:
    """``bound += far_blocks[np.arange(spans) * _SPAN // BLOCK]`` in place, through a ``(blocks, 4)`` view:
    no index arrays (three int64 temporaries a quarter of a stereo clip's size each, for a check that
    held the output besides the clip)."""
    per = BLOCK // _SPAN
    whole = bound.shape[0] // per
    bound[: whole * per].reshape(whole, per)[...] += far_blocks[:whole, None]
    bound[whole * per :] += far_blocks[whole : whole + 1]


def _spans_over(
    near: NDArray[np.float32], far_blocks: NDArray[np.float32], level: float, samples: int
) -> Rows:
    """The spans of 8 rows whose bound (``near`` plus the far part's per block) exceeds ``level``, and those
    at the ends (their looped readings: always measured); a chunk at a time (no full-length bound)."""
    dtype = np.int32 if samples < 2**31 - _SPAN else np.int64
    head, tail = 2 * BLOCK // _SPAN, max(0, samples + 1 - 2 * BLOCK) // _SPAN
    parts = []
    per = BLOCK // _SPAN
    step = -(-_READ_SPANS // per) * per  # whole blocks
    for start in range(0, near.shape[0], step):
        bound = near[start : start + step].copy()
        _add_per_block(bound, far_blocks[start * _SPAN // BLOCK :])
        bound[: max(0, head - start)] = np.inf
        bound[max(0, tail - start) :] = np.inf
        parts.append((np.flatnonzero(bound > level) + start).astype(dtype))
    return np.concatenate(parts)


def _rows_of(spans: Rows, samples: int) -> Rows:
    """The rows (0..S) of ``spans`` (sorted spans of 8 rows)."""
    every = (spans[:, None] * _SPAN + np.arange(_SPAN, dtype=spans.dtype)).ravel()
    return cast("Rows", every[every <= samples])


def peak_map(
    audio: NDArray[np.float32],
    floor: float | None = None,
    far: FarField | None = None,
    spans: NDArray[np.float32] | None = None,
    *,
    keep_screen: bool = False,
    reuse: Reuse | None = None,
) -> PeakMap:
    """Measure ``(C, S)`` audio with the detector, interpolating only where it can matter:
    where a value may exceed the sample peak, or ``floor`` when that is lower. ``far``: the clip's
    far part when already measured; ``spans``: its :func:`span_bounds` when already known.

    Screens, cheapest first: the filter bound per block (see :func:`candidate_rows`), a bound per row
    (:func:`_near_bounds` plus the far part's), then on the rows left the Annex 2 values and a bound of
    the reconstruction at quarter samples (its near part, 3 of the 7 grid columns, plus the far part's
    bound). Between a sample pair, the reconstruction's largest |value| is a sample or a turning point
    within 1/8 sample of a quarter point, so it exceeds that point by at most ``(pi / 8)^2 / 2`` of the
    clip's true peak (Bernstein), itself at most the quarter grid's peak over ``1 - (pi / 8)^2 / 2``.
    Only rows where this can exceed the level get the full grid, and their Annex 2 values are read again
    (a row's screen values do not depend on the rows read with it).

    Memory: no full-length envelope (the samples beside the rows are read from ``audio``); the second
    screen reads ``_READ_SPANS`` spans at a time and keeps, per row it reads, only its reading (4 bytes,
    until the level is known; the clip's screen, ``keep_screen``, 4 more).

    ``keep_screen``: the map keeps what its second screen read (:class:`Screened`). ``reuse``: ``audio`` is a
    limiter's output (see :class:`Reuse`): its span bounds derived from its clip's where given (not kept:
    the map's ``spans`` is None), and at rows whose reach no changed sample enters, the second screen takes
    the clip's readings times the gain (with room for the rounding) instead of reading ``audio``: at least
    its own, so the rows it passes on are at least those it would (every value at the others is under the
    level, so the values over it are the same).
    """
    far = FarField.measure(audio, kernel=keep_screen) if far is None else far  # kept: a limiter's check
    samples = audio.shape[1]
    peak = largest_sample(audio)
    level = peak if floor is None else min(peak, floor)
    far_blocks = far.block_bound(-(-(samples + 1) // BLOCK))
    if spans is not None or reuse is None or reuse.spans is None:
        near = span_bounds(audio) if spans is None else spans
        read = _spans_over(near, far_blocks, level, samples)
    else:  # a limiter's output's, from its clip's: not held while its rows are read (memory)
        near = None
        derived = scaled_span_bounds(audio, reuse.spans, reuse.gain, reuse.changed)
        read = _spans_over(derived, far_blocks, level, samples)
        del derived
    screening = _Screening(audio, far, far_blocks=far_blocks, level=level, peak=peak, reuse=reuse, read=read)
    del far_blocks
    count = read.shape[0] * _SPAN - max(0, int(read[-1]) * _SPAN + _SPAN - 1 - samples) if read.size else 0
    readings = np.empty(count, dtype=np.float32)
    reach = np.empty(count, dtype=np.float32) if keep_screen and screening.reused is None else None
    grid_peak = peak
    for first in range(0, read.shape[0], _READ_SPANS):
        part = slice(first * _SPAN, min((first + _READ_SPANS) * _SPAN, count))
        top = screening.block(first, readings[part], None if reach is None else reach[part])
        grid_peak = max(grid_peak, top)
    del screening
    kept = np.flatnonzero(readings > level - _SCREEN_SLACK * grid_peak)
    del readings
    rows: Rows = read[kept // _SPAN] * _SPAN + (kept % _SPAN).astype(read.dtype)
    del kept
    annex = _screen().peaks(audio, rows)[:, 1]
    ideal = ideal_peaks(audio, rows, far)
    recorded = None if reach is None else Screened(read, reach)
    return PeakMap(peak, rows, np.maximum(ideal, annex), ideal, level, far, near, recorded)


class _Screening:
    """:func:`peak_map`'s second screen over the rows of the spans ``read``, a block of spans at a time."""

    def __init__(
        self,
        audio: NDArray[np.float32],
        far: FarField,
        *,
        far_blocks: NDArray[np.float32],
        level: float,
        peak: float,
        reuse: Reuse | None,
        read: Rows,
    ) -> None:
        self.audio, self.far_blocks, self.level, self.peak, self.read = audio, far_blocks, level, peak, read
        self.looped_reach = _looped_reach(far, audio.shape[1])
        # rows 0 and S lie between an end sample and, looped, the other end's (a sample of that reading: the
        # screen's samples beside a row are the clip's, zero outside it)
        self.wrapped = np.abs(audio[:, [audio.shape[1] - 1, 0]]).max(axis=0)
        self.reuse = reuse
        self.reused = None if reuse is None else _reusable_spans(reuse, read)

    def block(self, first: int, readings: NDArray[np.float32], reach: NDArray[np.float32] | None) -> float:
        """Screen the rows of spans ``read[first : first + _READ_SPANS]``: per row, into ``readings``, a bound
        of its values (``inf`` where it is measured whatever the level: its Annex 2 value is over the level,
        or it is near an end), into ``reach`` what the clip's :class:`Screened` keeps; returns the largest
        reading the grid's peak takes (the quarter grid's; where the clip's screen is reused, any)."""
        audio, samples = self.audio, self.audio.shape[1]
        rows = _rows_of(self.read[first : first + _READ_SPANS], samples)
        far_bound = self.far_blocks[rows // BLOCK]
        edge = (rows < 2 * BLOCK) | (rows > samples - 2 * BLOCK)  # looped readings there: read afresh
        forced = edge  # and measured, but where the looped reading's bound is known (the screen holds it)
        if self.looped_reach is not None:
            looped = (rows <= LOOPED_ROWS) | (rows >= samples - LOOPED_ROWS)  # the rows _end_peaks reads
            far_bound[looped] = np.maximum(far_bound[looped], np.float32(self.looped_reach))
            far_bound[rows == 0] += self.wrapped[0]
            far_bound[rows == samples] += self.wrapped[1]
            forced = edge & ~looped
        if self.reused is None:
            screened = _screen().peaks(audio, rows)
            quarter = screened[:, 0] + far_bound  # ≥ |reconstruction| there
            beside = _envelope_at(audio, rows, out=_envelope_at(audio, rows, -1))  # samples m - 1, m
            np.maximum(quarter, beside, out=readings)
            top = float(quarter.max(initial=0.0))
            annex = screened[:, 1]
            if reach is not None:
                np.maximum(screened[:, 0], beside, out=reach)
                np.maximum(reach, annex, out=reach)
        else:
            top, annex = self._reused(first, rows, far_bound, edge, readings)
        readings[(annex > self.level) | forced] = np.inf
        return top

    def _reused(
        self, first: int, rows: Rows, far_bound: NDArray[np.float32], edge: NDArray[np.bool_],
        readings: NDArray[np.float32],
    ) -> tuple[float, NDArray[np.float32]]:  # fmt: skip
        """:meth:`block` where the clip's screen is reused: rows read afresh (the clip's screen did not read
        them, a changed sample is within their reach, or near the ends) and the others from the clip's."""
        assert self.reuse is not None and self.reuse.screened is not None and self.reused is not None
        usable, at = self.reused
        spans, count = slice(first, first + _READ_SPANS), rows.shape[0]
        fresh = np.repeat(~usable[spans], _SPAN)[:count]
        fresh |= edge
        audio, new = self.audio, rows[fresh]
        screened = _screen().peaks(audio, new)
        quarter = screened[:, 0] + far_bound[fresh]
        beside = _envelope_at(audio, new, out=_envelope_at(audio, new, -1))
        readings[fresh] = np.maximum(quarter, beside)
        annex = np.empty(count, dtype=np.float32)
        annex[fresh] = screened[:, 1]
        clip_rows = np.repeat((at[spans] * _SPAN).astype(rows.dtype), _SPAN)[:count]  # from its span's
        clip_rows += rows % _SPAN
        # the clip's readings scaled, with room for the float32 rounding of gain * x and of the products
        scaled = self.reuse.screened.reach[clip_rows[~fresh]] * np.float32(self.reuse.gain * (1 + 1e-5))
        scaled += np.float32(1e-5 * self.peak)
        readings[~fresh] = scaled + far_bound[~fresh]
        annex[~fresh] = scaled
        return float(readings.max(initial=0.0)), annex


def refined_peak(audio: NDArray[np.float32], peaks: PeakMap) -> float:
    """The ideal reconstruction's true peak (linear): the grid's best rows re-measured 64 times per sample.

    Exact to within the meter's error (see docs/export.md) and ``(pi / 128)^2 / 2`` for the fine grid.
    """
    best = max(peaks.sample_peak, float(peaks.ideal.max(initial=0.0)))
    # a row's grid nearest a peak may be one of its two samples, not one of its 7 positions: a near-Nyquist
    # peak 0.04 samples beside the clip's largest sample read 0.063 dB low when rows were judged by those 7
    samples = audio.shape[1]
    rows = peaks.rows
    beside = np.abs(audio[:, np.clip(rows - 1, 0, samples - 1)]).max(axis=0) * (rows >= 1)
    np.maximum(
        beside, np.abs(audio[:, np.minimum(rows, samples - 1)]).max(axis=0) * (rows < samples), out=beside
    )
    np.maximum(beside, peaks.ideal, out=beside)
    rows = rows[beside >= best * GRID_FACTOR]
    del beside
    fine = ideal_peaks(audio, rows, peaks.far, _FINE)
    return max(peaks.sample_peak, float(fine.max(initial=0.0)))


def true_peak(audio: NDArray[np.float32], *, scale: float | None = None) -> float:
    """True peak (linear, ≥ the sample peak) of ``(C, S)`` audio (``(S,)``: mono) by the ideal (sinc)
    reconstruction, zero outside the clip (at the ends, the larger of that and the looped reading); a clip far
    out of audio's range is read on a copy scaled by a power of two (:func:`range_exponent`). The clip is
    checked as for an export (InvalidAudio/InvalidInput: NaN/Inf, empty, wrong rank, not numbers);
    ``scale``: integer audio's full-scale value, as for an export."""
    audio = as_audio(audio, scale=scale)
    exponent = range_exponent(largest_sample(audio))  # far out of range: measured scaled (see scaled_down)
    audio = scaled_down(audio, exponent)
    return math.ldexp(refined_peak(audio, peak_map(audio)), exponent)


def annex2_true_peak(audio: NDArray[np.float32], *, scale: float | None = None) -> float:
    """True peak (linear, ≥ the sample peak) of ``(C, S)`` audio with the BS.1770-4 Annex 2 4x meter (the clip
    checked, and integer audio scaled, as by ``true_peak``)."""
    audio = as_audio(audio, scale=scale)
    meter = annex2()
    envelope = sample_envelope(audio)
    exponent = range_exponent(float(envelope.max()))  # far out of range: measured scaled (see scaled_down)
    audio, envelope = scaled_down(audio, exponent), scaled_down(envelope, exponent)
    level = float(envelope.max())
    rows = candidate_rows(envelope, level, meter.bound)
    return math.ldexp(max(level, float(meter.peaks(audio, rows)[:, 0].max(initial=0.0))), exponent)


__all__ = [  # with the names of the modules beside it that the export, the limiter and tests import from here
    "GRID_FACTOR",
    "PeakMap",
    "Reuse",
    "Screened",
    "_envelope_at",
    "_screen",
    "_span_max",
    "annex2_true_peak",
    "candidate_rows",
    "detect",
    "from_db",
    "ideal_peaks",
    "largest_sample",
    "peak_map",
    "range_exponent",
    "refined_peak",
    "sample_envelope",
    "scaled_down",
    "scaled_span_bounds",
    "span_bounds",
    "to_db",
    "true_peak",
]
