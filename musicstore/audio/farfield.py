"""The far part of a clip's ideal (sinc) reconstruction, zero outside the clip.

The sinc is split exactly in two, ``sinc = sinc * w + sinc * (1 - w)``, with ``w`` a window flat over 8
samples that tapers to 0 at 24 (:func:`split_window`). The near part is a short FIR per position
(:mod:`musicstore.audio.interpolation`). The far part is ``sin(pi t) / pi * G(t)`` with
``G = z * (1 - w(d)) / d`` and ``z[n] = (-1)^n x[n]``: a smooth, low-pass function of ``t`` (it carries
the content next to Nyquist, whose reconstruction reaches far), computed once per clip on a grid of 4
samples by FFT and interpolated (:class:`FarField`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import fft as sp_fft
from scipy.signal import firwin

Rows = NDArray[np.integer[Any]]  # row indices, int32 or int64
BLOCK = 32  # samples per block when deciding where to interpolate (≥ the reach of every filter)
NEAR_FLAT = 8  # the split window w is 1 up to here (samples) ...
NEAR_REACH = 24  # ... and 0 from here
_DECIMATION = 4  # grid step of the far part, in samples
_LOWPASS_TAPS = 4  # per grid step, each side, of the far part's anti-alias filter
_CUTOFF = 1.0  # its cut-off, in the decimated grid's Nyquist
_BETA = 6.0  # its Kaiser window
_LOWPASS_CHUNK = 4096  # decimated points per matrix product
_SUPPORT = BLOCK // 2 // _DECIMATION + 3  # grid points either side of a block's centre that reach its rows


@dataclass(frozen=True)
class FarField:
    """The far part ``G`` of a clip's ideal reconstruction (see the module docstring), per channel,
    on the grid ``t = (start + j) * step``."""

    grid: NDArray[np.float32]  # (C, J)
    start: int
    step: int

    @classmethod
    def measure(cls, audio: NDArray[np.float32]) -> FarField:
        """``G`` of ``(C, S)`` audio: ``z`` low-passed and decimated, convolved with the far kernel by FFT."""
        step = _DECIMATION
        channels, samples = audio.shape
        count = -(-samples // step)  # points of z's decimated low band, at 0, step, 2 step, ...
        start = -(NEAR_REACH // step) - 4
        stop = (samples + NEAR_REACH) // step + 4
        first_lag = start - count + 1  # the kernel covers lags first_lag..stop (in grid steps)
        # the circular convolution is the linear one at the outputs kept (count - 1 on) once the
        # transform holds the kernel: a third shorter than room for both
        size = _transform_size(stop - first_lag + 1)
        kernel = _far_spectrum(first_lag, stop, step, size)
        grid = np.empty((channels, stop - start + 1), dtype=np.float32)
        padded = np.zeros(size, dtype=np.float32)
        for c in range(channels):  # a channel at a time, in float32, no copies: each buffer ≤ a quarter clip
            padded[:count] = _decimated_low_band(audio[c], count, step)
            padded[count:] = 0.0
            spectrum = sp_fft.rfft(padded, overwrite_x=True)
            spectrum *= kernel
            grid[c] = sp_fft.irfft(spectrum, size, overwrite_x=True)[count - 1 : count + stop - start]
            del spectrum
        return cls(grid, start, step)

    def at(self, channel: int, samples: Rows, fractions: NDArray[np.float64]) -> NDArray[np.float32]:
        """The far part of the reconstruction ``sin(pi t)/pi * G(t)`` at ``t = samples + fractions``:
        ``(N, F)``. Catmull-Rom on ``G``, whose weights depend on ``samples % step`` only, so positions
        are taken a phase at a time: ``G`` gathered at four consecutive grid points times the weights."""
        weights = _far_weights(self.step, tuple(fractions.tolist()))  # (step, 4, F)
        base, phase = np.divmod(samples, self.step)
        base -= self.start + 1
        points = sliding_window_view(self.grid[channel], 4)
        out = np.empty((samples.shape[0], fractions.shape[0]), dtype=np.float32)
        count = samples.shape[0]
        regular = count > 0 and bool(np.all((samples - np.arange(count)) % self.step == phase[0]))
        for p in range(self.step):
            picked: slice | NDArray[np.intp]
            picked = slice((p - int(phase[0])) % self.step, None, self.step) if regular else phase == p
            out[picked] = points[base[picked]] @ weights[p]
        return out

    def block_bound(self, blocks: int) -> NDArray[np.float32]:
        """An upper bound of |far part| at the rows of each 32-sample block: ``(blocks,)``."""
        per = BLOCK // self.step
        assert 2 * per >= 2 * _SUPPORT + 1
        # block b's grid points: centre c = per b + per / 2 - start, c - SUPPORT .. c + SUPPORT, within the
        # 2 per points from c - SUPPORT: the larger of two consecutive groups of per points
        first = per // 2 - self.start - _SUPPORT
        magnitude = np.abs(self.grid[0])
        for channel in self.grid[1:]:
            np.maximum(magnitude, np.abs(channel), out=magnitude)
        groups = np.empty((blocks + 1) * per, dtype=np.float32)
        lead = min(max(0, -first), groups.shape[0])  # before the grid: its first points' largest
        groups[:lead] = magnitude[: 2 * per].max()
        take = max(0, min(groups.shape[0] - lead, magnitude.shape[0] - max(first, 0)))
        groups[lead : lead + take] = magnitude[max(first, 0) : max(first, 0) + take]
        groups[lead + take :] = magnitude[-2 * per :].max()  # beyond it: its last points' largest
        peaks = groups.reshape(blocks + 1, per).max(axis=1)
        bound: NDArray[np.float32] = np.maximum(peaks[:-1], peaks[1:])
        bound *= np.float32(1.25 / np.pi)  # Catmull-Rom stays within 1.25x its points
        ends = [0, max(blocks - 2, 0), blocks - 1]  # the looped reading adds the other end's far part
        bound[ends] = 2 * bound[ends].max()
        return bound


def _transform_size(length: int) -> int:
    """The smallest ``m 2^k`` (``m`` 1, 3, 5 or 15) of at least ``length``: pocketfft's float32 transforms
    of these run faster than of its ``next_fast_len`` (6.1 ms against 8.6 ms for 491,520 and 486,000)."""
    return min(m << max(0, (-(-length // m) - 1).bit_length()) for m in (1, 3, 5, 15))


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


@functools.lru_cache(maxsize=4)
def _far_spectrum(first: int, last: int, step: int, size: int) -> NDArray[np.complex64]:
    """The FFT of :func:`_far_taps` over the anti-alias filter's response (undoing its passband), kept for
    the next clip of the same length (and its re-checks)."""
    spectrum: NDArray[np.complex64] = sp_fft.rfft(_far_taps(first, last, step), size)
    spectrum /= _lowpass_response(step, size)
    spectrum.flags.writeable = False
    return spectrum


def _far_taps(first: int, last: int, step: int) -> NDArray[np.float32]:
    """``step * far_kernel(lag * step)`` for lags ``first..last``, in one float32 array."""
    lags = np.arange(first, last + 1, dtype=np.float32)
    with np.errstate(divide="ignore"):
        taps = np.float32(1.0) / lags  # step * 1 / (lag * step); the taper's few lags are set below
    taper = np.arange(-(NEAR_REACH // step), NEAR_REACH // step + 1)
    inside = taper - first
    keep = (inside >= 0) & (inside < taps.shape[0])
    taps[inside[keep]] = step * far_kernel((taper[keep] * step).astype(np.float64))
    return taps


@functools.cache
def _lowpass(step: int) -> NDArray[np.float64]:
    """The anti-alias filter of ``z`` before decimation by ``step`` (its passband shape is undone in the
    kernel's spectrum, so only its stopband matters)."""
    taps: NDArray[np.float64] = firwin(2 * _LOWPASS_TAPS * step + 1, _CUTOFF / step, window=("kaiser", _BETA))
    return taps


def _lowpass_response(step: int, size: int) -> NDArray[np.float32]:
    """The filter's (real, zero-phase) response at the ``size // 2 + 1`` bins of the decimated grid:
    ``h[half] + 2 sum_k h[half + k] cos(k theta)``, the cosines by Chebyshev's recurrence, a chunk of bins
    at a time (no bins-by-taps matrix, no full-length float64 temporaries)."""
    taps = _lowpass(step)
    half = taps.shape[0] // 2
    bins = size // 2 + 1
    response = np.empty(bins, dtype=np.float32)
    for begin in range(0, bins, _LOWPASS_CHUNK):
        theta = np.arange(begin, min(begin + _LOWPASS_CHUNK, bins)) * (2 * np.pi / (size * step))
        one = np.cos(theta)  # z's frequency theta, radians per sample
        part = np.full(theta.shape[0], taps[half])
        previous, current = np.ones_like(one), one.copy()
        for k in range(1, half + 1):
            part += 2 * taps[half + k] * current
            previous, current = current, 2 * one * current - previous
        response[begin : begin + part.shape[0]] = part
    return response


def _decimated_low_band(x: NDArray[np.float32], count: int, step: int) -> NDArray[np.float32]:
    """``z = (-1)^n x`` low-passed at every ``step``-th sample: ``sum_i h[i] z[step j + half - i]``.

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
    low = np.zeros(count, dtype=np.float32)
    rows = count - 1 + width // step
    phase = np.zeros(min(rows, _LOWPASS_CHUNK + width // step), dtype=np.float32)
    for begin in range(0, count, _LOWPASS_CHUNK):  # a chunk at a time: no padded copy of the clip
        end = min(begin + _LOWPASS_CHUNK, count)
        used = end - begin - 1 + width // step  # rows begin .. of phase p: x[step row + p - half]
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
