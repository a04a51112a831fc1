"""The accurate true-peak meter's values at given rows (:func:`ideal_peaks`: the near part plus the far part,
and at the clip's ends the larger of that and the looped reading), the detector that takes the larger of
those and the Annex 2 values (:func:`detect`), the rows a bound leaves to read (:func:`candidate_rows`), and
a bound of what the looped reading adds at the ends (:func:`_looped_reach`). Re-exported by
:mod:`musicstore.audio.truepeak`."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.farfield import (
    BLOCK,
    DIRECT_LOOP,
    LOOPED_ROWS,
    FarField,
    Rows,
    periodic_values,
)
from musicstore.audio.interpolation import GRID, Interpolator, annex2, near_sinc
from musicstore.audio.limited_far import LimitedFarField


def _envelope_at(
    audio: NDArray[np.float32], index: Rows, shift: int = 0, out: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """The sample envelope at ``index + shift`` (0 where it lies outside the clip), read from the samples;
    ``out``: its larger with ``out``'s values, written there (no index nor value temporaries besides one
    gather: memory)."""
    at = np.clip(index, -shift, audio.shape[1] - 1 - shift)
    if shift:
        at += shift
    picked: NDArray[np.float32] = audio[0].take(at)  # a channel at a time: numpy's gather and reduction
    np.abs(picked, out=picked)  # over a (C, N) selection take ten times as long
    for channel in audio[1:]:
        np.maximum(picked, np.abs(channel.take(at)), out=picked)
    del at
    picked[(index < -shift) | (index >= audio.shape[1] - shift)] = 0.0
    if out is None:
        return picked
    np.maximum(out, picked, out=out)
    return out


def candidate_rows(
    envelope: NDArray[np.float32], threshold: float, bound: float, far: FarField | None = None
) -> Rows:
    """Rows (0..S) whose interpolated values may exceed ``threshold`` given the filter ``bound``
    (and the far part's bound)."""
    samples = envelope.shape[0]
    blocks = -(-(samples + 1) // BLOCK)
    padded = np.zeros(blocks * BLOCK, dtype=np.float32)
    padded[:samples] = envelope
    block_max = padded.reshape(blocks, BLOCK).max(axis=1)
    near = block_max.copy()
    near[1:] = np.maximum(near[1:], block_max[:-1])
    near[:-1] = np.maximum(near[:-1], block_max[1:])
    reach = near * bound
    if far is not None:
        reach += far.block_bound(blocks)
    hot = np.flatnonzero(reach > threshold).astype(np.int32 if samples < 2**31 - BLOCK else np.int64)
    rows = (hot[:, None] * BLOCK + np.arange(BLOCK, dtype=hot.dtype)).ravel()
    selected: Rows = rows[rows <= samples]
    return selected


def ideal_peaks(
    audio: NDArray[np.float32], rows: Rows, far: FarField, positions: int = GRID
) -> NDArray[np.float32]:
    """The accurate meter's largest |value| over ``positions`` per sample at each of ``rows`` (sorted):
    zero outside the clip, and within ``LOOPED_ROWS`` of an end the larger of that and the looped reading
    (:func:`_end_peaks`)."""
    interpolator = near_sinc(positions)
    samples = audio.shape[1]
    head = int(np.searchsorted(rows, LOOPED_ROWS, side="right"))
    tail = max(head, int(np.searchsorted(rows, samples - LOOPED_ROWS, side="left")))
    # the rows whose window passes an end are read by _end_peaks alone (Interpolator._edges read them too:
    # half the time of a 741-row map); the others as the same run, so by the same products (the same values)
    left = 1 - interpolator.first_offset
    first = int(np.searchsorted(rows, left, side="left"))
    last = max(first, int(np.searchsorted(rows, samples - interpolator.matrix.shape[0] + left, side="right")))
    values = np.zeros(rows.shape[0], dtype=np.float32)
    values[first:last] = interpolator.peaks(audio, rows[first:last], far)[:, 0]
    if head or tail < rows.shape[0]:
        ends = _end_peaks(interpolator, audio, np.concatenate([rows[:head], rows[tail:]]), far)
        values[:head], values[tail:] = ends[:head], ends[head:]
    return values


def _end_peaks(
    interpolator: Interpolator, audio: NDArray[np.float32], rows: Rows, far: FarField
) -> NDArray[np.float32]:
    """At ``rows`` within ``LOOPED_ROWS`` of an end: the larger of the zero-padded reading and the looped
    one, the clip repeated end to end as a periodic FFT meter reads it: the near part over the wrapped
    window, the clip's far part, its neighbouring copy's (the grid read one length away) and the other
    copies' (:meth:`FarField.copies_at`); for a clip under ``DIRECT_LOOP`` samples, the periodic sinc
    summed directly (:func:`periodic_values`). The junction's ringing reaches past the 24 rows whose window
    wraps (the export hunt's files peaked 27 and 31 samples from an end)."""
    samples = audio.shape[1]
    fractions = interpolator.fractions
    assert fractions is not None
    index = rows[:, None] - (1 - interpolator.first_offset) + np.arange(interpolator.matrix.shape[0])
    inside = (index >= 0) & (index < samples)
    wrapped = index % samples
    before = np.asarray(rows - 1, dtype=np.intp)
    neighbour = np.where(rows <= samples // 2, samples, -samples)  # where the neighbouring copy's far part is
    best = np.zeros(rows.shape[0], dtype=np.float32)
    copies = None if samples < DIRECT_LOOP else far.copies_at(before, fractions)
    places = np.concatenate([before, before + neighbour])  # one read of both (a limited output's far part
    for c, channel in enumerate(audio):  # sums its difference's share once over the points of both)
        far_part, beside = np.split(far.at(c, places, fractions), 2)
        zero_padded = np.where(inside, channel[wrapped], np.float32(0.0)) @ interpolator.matrix + far_part
        if copies is None:
            looped = periodic_values(channel, before, fractions)
        else:
            looped = channel[wrapped] @ interpolator.matrix + far_part
            looped += beside
            looped += copies[c]
        for values in (zero_padded, looped):
            np.maximum(best, np.abs(values).max(axis=1), out=best)
    return best


def detect(
    audio: NDArray[np.float32], rows: Rows, far: FarField
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The detector at ``rows`` (the larger of the accurate grid value and the Annex 2 4x one, so that
    neither meter reads above what the detector saw), and the accurate grid value alone."""
    ideal = ideal_peaks(audio, rows, far)
    return np.maximum(ideal, annex2().peaks(audio, rows)[:, 0]), ideal


def _looped_reach(far: FarField, samples: int) -> float | None:
    """An upper bound of what the looped reading adds to the near part (over the wrapped window) at the rows
    within ``LOOPED_ROWS`` of an end (:func:`_end_peaks`), so that the screen holds those rows as it holds
    the others: the clip's far part and its neighbouring copy's, each read from 4 grid points near an end
    (``1.25 / pi`` of their largest, as :meth:`FarField.block_bound` has it; a limited output's is ``gain``
    times the clip's less the difference's, whose share is at most each cluster's mass times the kernel's
    largest value at its distance, plus the moments' error), and the other copies' (their weights times a
    bound of their kernel over the clip, ``3 / (S - 40)``: about ``1.07 / S`` measured). None where the
    looped reading is not made so: a short clip's is the periodic sinc itself, or no copies' weights."""
    if samples < DIRECT_LOOP or far.copies is None:
        return None
    limited = far if isinstance(far, LimitedFarField) else None
    gain = 1.0 if limited is None else limited.gain
    reach = 0.0
    for first, last in (
        (-LOOPED_ROWS - 1, LOOPED_ROWS - 1),
        (samples - LOOPED_ROWS - 1, samples + LOOPED_ROWS - 1),
    ):
        # the far values at samples first..last (the rows' and, one length away, their neighbours'): grid
        # points lo..hi (FarField.at reads 4 from the sample's step, less the grid's start and one)
        lo = first // far.step - (far.start + 1)
        hi = last // far.step - (far.start + 1) + 3
        if lo < 0 or hi >= far.grid.shape[1]:
            return None
        side = gain * float(np.abs(far.grid[:, lo : hi + 1]).max())  # a limited output's grid: the clip's
        if limited is not None and limited.clusters:
            firsts = np.asarray([c.first for c in limited.clusters], dtype=np.int64)
            lasts = firsts + np.asarray([c.values.shape[1] - 1 for c in limited.clusters], dtype=np.int64)
            masses = np.asarray([c.mass for c in limited.clusters])
            near, away = lo + far.start, hi + far.start  # in grid steps, as the clusters' points
            distance = np.maximum(0, np.maximum(firsts - away, near - lasts))
            side += float(
                (masses * limited.kernel.share(distance)).sum() + masses.sum() * limited.kernel.error
            )
        reach += side
    copies = float(np.abs(far.copies.weights).sum(axis=1).max()) * 3.0 / (samples - 40)
    return (1.25 * reach + copies) / math.pi * (1 + 1e-5) + 1e-7
