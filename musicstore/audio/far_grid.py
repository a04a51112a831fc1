"""The far part's grid (:mod:`musicstore.audio.farfield`): its step and reach, the split window and the far
kernel, the decimated low band a grid is made from, the kernel's taps and the weights that read the grid."""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.arrays import mapped_empty, mapped_zeros
from musicstore.audio.far_spectra import _lowpass, _rfft_in_place, _transform_size

BLOCK = 32  # samples per block when deciding where to interpolate (≥ the reach of every filter)
NEAR_FLAT = 8  # the split window w is 1 up to here (samples) ...
NEAR_REACH = 24  # ... and 0 from here
_DECIMATION = 4  # grid step of the far part, in samples
_LOW_BAND_CHUNK = 65_536  # decimated points at a time of the low band (few numpy calls)
_SUPPORT = BLOCK // 2 // _DECIMATION + 3  # grid points either side of a block's centre that reach its rows

_GRID_START = -(NEAR_REACH // _DECIMATION) - 4  # the far part's first grid point, in grid steps


def _transform_key(samples: int) -> tuple[int, int, int, int]:
    """The far kernel's first and last lag (grid steps), the step and the transform's size for a clip of
    ``samples`` samples: the key of its cached spectrum and kernel."""
    count = -(-samples // _DECIMATION)  # points of z's decimated low band
    stop = (samples + NEAR_REACH) // _DECIMATION + 4
    first_lag = _GRID_START - count + 1
    # the circular convolution is the linear one at the outputs kept (count - 1 on) once the transform
    # holds the kernel: a third shorter than room for both
    return first_lag, stop, _DECIMATION, _transform_size(stop - first_lag + 1)


def far_kernel(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(1 - w(d)) / d``: the far kernel acting on ``z`` (zero within the flat part of ``w``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel: NDArray[np.float64] = np.where(np.abs(d) <= NEAR_FLAT, 0.0, (1.0 - split_window(d)) / d)
    return kernel


@functools.cache
def _far_weights(step: int, fractions: tuple[float, ...]) -> NDArray[np.float32]:
    """``(step, 4, F)``: the Catmull-Rom weights on ``G`` at ``n + f`` times ``sin(pi (n + f)) / pi``,
    for each ``n % step`` and fraction ``f`` (``step`` is even: the sign ``(-1)^n`` follows ``n % step``)."""
    f = np.asarray(fractions)[None, :]
    r = np.arange(step)[:, None]
    a = (r + f) / step  # position between grid points i and i + 1
    weights = np.stack(
        [0.5 * (-a + 2 * a**2 - a**3), 1 + 0.5 * (-5 * a**2 + 3 * a**3), 0.5 * (a + 4 * a**2 - 3 * a**3),
         0.5 * (a**3 - a**2)],
        axis=1,
    )  # fmt: skip
    weights *= (np.where(r % 2, -1.0, 1.0) * np.sin(np.pi * f) / np.pi)[:, None, :]
    return weights.astype(np.float32)


def _far_taps(
    first: int, last: int, step: int, *, out: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """``step * far_kernel(lag * step)`` for lags ``first..last``, in one float32 array (``out`` where
    given), a chunk of lags at a time."""
    taps = np.empty(last - first + 1, dtype=np.float32) if out is None else out
    for begin in range(0, taps.shape[0], _LOW_BAND_CHUNK):
        part = taps[begin : begin + _LOW_BAND_CHUNK]
        part[:] = np.arange(first + begin, first + begin + part.shape[0], dtype=np.float32)
        with np.errstate(divide="ignore"):
            np.divide(np.float32(1.0), part, out=part)  # step / (lag * step); the taper's lags set below
    taper = np.arange(-(NEAR_REACH // step), NEAR_REACH // step + 1)
    inside = taper - first
    keep = (inside >= 0) & (inside < taps.shape[0])
    taps[inside[keep]] = step * far_kernel((taper[keep] * step).astype(np.float64))
    return taps


def _decimated_low_band(
    x: NDArray[np.float32], count: int, step: int, *, out: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """``z = (-1)^n x`` low-passed at every ``step``-th sample: ``sum_i h[i] z[step j + half - i]`` (into
    ``out``, zeros, where given).

    The sign is folded into the filter (``step`` and ``half`` are even), so no modulated copy of the clip is
    made. Polyphase: per phase, one strided gather of the clip and a 9-tap ``np.correlate``, a chunk at a
    time (faster than ``upfirdn`` and than matrix products over copied windows).
    """
    taps = _lowpass(step)
    half = taps.shape[0] // 2
    width = -(-taps.shape[0] // step) * step
    reversed_taps = np.zeros(width, dtype=np.float32)  # low[j] = sum_u T[u] x[step j + u - half]
    reversed_taps[: taps.shape[0]] = (taps * np.where(np.arange(taps.shape[0]) % 2, -1.0, 1.0))[::-1]
    per_phase = reversed_taps.reshape(width // step, step).T  # [p, i]: the tap on x[step (j + i) + p - half]
    low = np.zeros(count, dtype=np.float32) if out is None else out
    rows = count - 1 + width // step
    phase = np.zeros(min(rows, _LOW_BAND_CHUNK + width // step), dtype=np.float32)
    phases = mapped_empty((step, phase.shape[0]), np.float32)  # 1 MB: not left in the heap
    for begin in range(0, count, _LOW_BAND_CHUNK):  # a chunk at a time: no padded copy of the clip
        end = min(begin + _LOW_BAND_CHUNK, count)
        used = end - begin - 1 + width // step  # rows begin .. of phase p: x[step row + p - half]
        first = step * begin - half
        if first >= 0 and first + step * used <= x.shape[0]:  # inside the clip: every phase in one copy
            gathered = phases[:, :used]
            np.copyto(gathered, x[first : first + step * used].reshape(used, step).T)
            for p in range(step):
                low[begin:end] += np.correlate(gathered[p], per_phase[p], mode="valid")
            continue
        for p in range(step):
            first = step * begin + p - half
            lo = max(0, -(first // step))  # the first row whose sample is inside the clip
            hi = max(lo, min(used, -(-(x.shape[0] - first) // step)))
            phase[:used] = 0.0
            phase[lo:hi] = x[first + step * lo : first + step * hi : step]
            low[begin:end] += np.correlate(phase[:used], per_phase[p], mode="valid")
    return low


def split_window(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """``w``: 1 up to 8 samples, a raised-cosine taper, 0 from 24."""
    a = np.abs(d)
    taper = 0.5 + 0.5 * np.cos(
        np.pi * (np.clip(a, NEAR_FLAT, NEAR_REACH) - NEAR_FLAT) / (NEAR_REACH - NEAR_FLAT)
    )
    window: NDArray[np.float64] = np.where(a <= NEAR_FLAT, 1.0, taper)
    return window


def odd_spectrum(first: int, last: int, step: int, size: int) -> NDArray[np.float32]:
    """The far kernel's spectrum for :func:`~musicstore.audio.far_spectra.odd_kernel`'s sizes, its taps
    laid circularly (lag ``l`` at ``l mod size``, lags ``-reach..reach``): its imaginary parts, ``size // 2 +
    1`` float32 (the spectrum is ``1j`` times them; its real parts are zero, the taps ``1 / lag`` and the
    taper's ``(1 - w(d)) / d`` being odd, exactly so in float32). One buffer of the transform's size while it
    is made, half of one kept."""
    reach = max(-first, last)
    bins = size // 2 + 1
    buffer = mapped_zeros(bins, np.complex64)
    real = buffer.view(np.float32)
    _far_taps(0, reach, step, out=real[: reach + 1])  # lag l at l mod size
    _far_taps(-reach, -1, step, out=real[size - reach : size])
    _rfft_in_place(buffer, size)
    spectrum = mapped_empty(bins, np.float32)
    spectrum[:] = buffer.imag
    return spectrum
