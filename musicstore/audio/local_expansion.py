"""The local expansions of a limited far part's pieces
(:class:`~musicstore.audio.limited_far.LimitedFarField`): their far sums per window of the grid, linear in the
clip."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sp_fft

from musicstore.audio.arrays import mapped_empty, mapped_zeros
from musicstore.audio.kernel_pieces import _MOMENTS, _binomials

_GATHER = 1 << 17  # kernel values gathered at a time: about 24 bytes of buffers each (3 MB)
_WINDOW = 128  # grid steps per window of the local expansions, at least (more for long clips: see below)
_WINDOWS = 8192  # at most this many windows over the grid
_RADIUS = 7  # pieces of windows this far from a point's are summed by their moments, beyond by expansion
_TERMS = 20  # of each window's multipole and local expansion
_SPAN = 8  # windows of points per chunk of the direct sums, at most


@dataclass(frozen=True)
class _LocalExpansion:
    """The pieces' far sum ``sum_q sum_n moments[q, n] / (t - c_q)^(n + 1)`` over the pieces of windows more
    than ``_RADIUS`` windows from ``t``'s, as a power series in ``t`` about each window's centre.

    The grid is cut into windows of ``window`` steps. Each window's pieces are gathered into one multipole
    expansion about its centre, ``sum_k a_k / (t - C)^(k + 1)``, and these are turned into a local expansion
    ``sum_l b_l s^l`` about every window's centre (``s`` its offset, in windows) by one FFT convolution over
    the windows per order: linear in the clip (the direct sum over every piece was its square). With
    ``|s|, |delta| <= 1/2`` window and the windows at least ``_RADIUS + 1`` apart, both series converge as
    ``8^-k`` or faster: ``_TERMS`` terms leave ``1e-18`` of the terms' size, under the float64 rounding of the
    direct sum."""

    window: int
    first_window: int
    coefficients: NDArray[np.float64]  # (C, windows, _TERMS): b_l per window
    piece_windows: NDArray[np.int64]  # each piece's window

    @classmethod
    def of(
        cls, centres: NDArray[np.float64], moments: NDArray[np.float64], start: int, stop: int
    ) -> _LocalExpansion:
        """``centres`` (sorted) and ``moments`` ``(C, Q, _MOMENTS)`` of the pieces, about each centre; the
        grid's points ``start..stop`` (grid steps)."""
        start = min(start, math.floor(centres[0]))
        stop = max(stop, math.ceil(centres[-1]))
        window = _WINDOW
        while (stop - start) // window + 2 > _WINDOWS:
            window *= 2
        first = start // window
        count = stop // window - first + 1
        piece_windows = np.floor(centres / window).astype(np.int64)
        delta = (centres - (piece_windows + 0.5) * window) / window  # in [-1/2, 1/2)
        binomials = _binomials(2 * _TERMS)
        scaled = moments / float(window) ** (np.arange(_MOMENTS) + 1)
        channels = moments.shape[0]
        size = sp_fft.next_fast_len(3 * count, real=True)
        lags = np.arange(-(count - 1), count).astype(np.float64)  # window j - i
        coefficients = mapped_empty((channels, count, _TERMS), np.float64)  # kept: not in the heap
        placed = piece_windows - first
        for c in range(channels):
            # a piece's terms about its window's centre: 1 / (t - C - delta)^(n + 1) = sum_m binom(n + m, n)
            # delta^m / (t - C)^(n + m + 1): a_k gathers binom(k, n) delta^(k - n) of moment n (in windows)
            spectra = mapped_empty((size // 2 + 1, _TERMS), np.complex128)  # (F, k); a column at a time
            for k in range(_TERMS):
                term = np.zeros(centres.shape[0])
                for n in range(min(k, _MOMENTS - 1) + 1):
                    term += binomials[k, n] * scaled[c, :, n] * delta ** (k - n)
                spectra[:, k] = sp_fft.rfft(np.bincount(placed, term, minlength=count), size)
            local = mapped_zeros((spectra.shape[0], _TERMS), np.complex128)
            # 1 / (D + s)^(k + 1) = sum_l binom(k + l, l) (-s)^l / D^(k + l + 1), D = j - i beyond the radius
            for order in range(2 * _TERMS - 1):
                with np.errstate(divide="ignore"):
                    kernel = np.where(np.abs(lags) > _RADIUS, lags ** -(order + 1.0), 0.0)
                kernel_spectrum = sp_fft.rfft(kernel, size)
                for k in range(max(0, order - _TERMS + 1), min(order, _TERMS - 1) + 1):
                    l = order - k  # noqa: E741
                    local[:, l] += (binomials[order, l] * (-1.0) ** l) * spectra[:, k] * kernel_spectrum
            del spectra
            for l in range(_TERMS):  # noqa: E741
                coefficients[c, :, l] = sp_fft.irfft(local[:, l], size)[count - 1 : 2 * count - 1]
            del local  # not beside the next channel's spectra and sums (0.24x a 1-minute stereo clip)
        return cls(window, first, coefficients, piece_windows)

    def window_of(self, times: NDArray[np.int64]) -> NDArray[np.int64]:
        return times // self.window

    def add_to(self, out: NDArray[np.float64], times: NDArray[np.int64]) -> None:
        """Add the far sum at grid steps ``times`` to ``out`` ``(P, C)``, a chunk of points at a time."""
        for begin in range(0, times.shape[0], _GATHER // 8):
            t = times[begin : begin + _GATHER // 8]
            windows = t // self.window
            s = (t - (windows + 0.5) * self.window) / self.window
            placed = windows - self.first_window
            total = self.coefficients[:, placed, -1]  # (C, P)
            for l in range(_TERMS - 2, -1, -1):  # noqa: E741
                total *= s
                total += self.coefficients[:, placed, l]
            out[begin : begin + t.shape[0]] += total.T

    def chunks(self, times: NDArray[np.int64], most: int) -> list[tuple[int, int, int, int]]:
        """``times`` (sorted) in chunks ``[begin, end)`` of at most ``most`` points over at most ``_SPAN``
        windows, each with the pieces ``[q0, q1)`` it sums directly; ``_GATHER`` moment terms at most."""
        windows = times // self.window
        out = []
        begin, total = 0, times.shape[0]
        while begin < total:
            first = int(windows[begin])
            q0 = int(np.searchsorted(self.piece_windows, first - _RADIUS, side="left"))
            end = int(np.searchsorted(windows, first + _SPAN, side="left"))
            q1 = int(np.searchsorted(self.piece_windows, int(windows[end - 1]) + _RADIUS, side="right"))
            end = min(end, begin + most, begin + max(1, _GATHER // max(1, (q1 - q0) * _MOMENTS)))
            out.append((begin, end, q0, q1))
            begin = end
        return out
