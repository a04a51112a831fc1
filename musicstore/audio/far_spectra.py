"""The transforms the far part (:mod:`musicstore.audio.farfield`) is made with: pocketfft's real transforms
of a float32 buffer in place, their size, and the anti-alias filter of ``z`` before decimation with its
response at the decimated grid's bins."""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy import fftpack as sp_fftpack
from scipy.signal import firwin

from musicstore.audio.arrays import mapped_empty, mapped_zeros

_LOWPASS_TAPS = 4  # per grid step, each side, of the far part's anti-alias filter
_CUTOFF = 1.0  # its cut-off, in the decimated grid's Nyquist
_BETA = 6.0  # its Kaiser window
_LOWPASS_CHUNK = 4096  # bins at a time of the anti-alias filter's response
_SHIFT_CHUNK = 1 << 16  # floats moved at a time between the two layouts (a 256 KiB temporary)


def _transform_size(length: int) -> int:
    """The smallest ``m 2^k`` (``m`` 1, 3, 5 or 15) of at least ``length``: pocketfft's float32 transforms
    of these run faster than of its ``next_fast_len`` (6.1 ms against 8.6 ms for 491,520 and 486,000)."""
    return min(m << max(0, (-(-length // m) - 1).bit_length()) for m in (1, 3, 5, 15))


def _rfft_in_place(buffer: NDArray[np.complex64], size: int) -> None:
    """``buffer`` (``size // 2 + 1`` bins) becomes ``rfft`` of the ``size`` float32 values its first
    ``size`` floats hold, bit for bit (the same pocketfft plan and passes): transformed in place by the
    FFTPACK-layout transform (``r0, r1, i1, r2, i2, ...``), then spread to bins a chunk at a time from the
    end. ``sp_fft.rfft`` holds its input, a copy of it and its output (one buffer here), each as large."""
    real = buffer.view(np.float32)
    packed = real[:size]
    out = sp_fftpack.rfft(packed, overwrite_x=True)
    if not np.may_share_memory(out, packed):  # a scipy that made a copy after all: the same values
        packed[:] = out
    del out
    for end in range(size, 1, -_SHIFT_CHUNK):  # r_k, i_k from floats 2k - 1, 2k to 2k, 2k + 1
        begin = max(1, end - _SHIFT_CHUNK)
        real[begin + 1 : end + 1] = real[begin:end].copy()
    real[1] = 0.0  # the imaginary parts of bin 0 and (even sizes) of the last, as rfft writes them
    if size % 2 == 0:
        real[size + 1] = 0.0


def _irfft_in_place(buffer: NDArray[np.complex64], size: int) -> NDArray[np.float32]:
    """``irfft(buffer, size)`` bit for bit, in ``buffer``'s own memory (lost): its first ``size`` floats.
    The bins packed to the FFTPACK layout a chunk at a time from the start (the imaginary parts of bin 0
    and of an even size's last bin dropped, as ``irfft`` ignores them), then transformed in place."""
    real = buffer.view(np.float32)
    for begin in range(1, size, _SHIFT_CHUNK):
        end = min(size, begin + _SHIFT_CHUNK)
        real[begin:end] = real[begin + 1 : end + 1].copy()
    packed = real[:size]
    out = sp_fftpack.irfft(packed, overwrite_x=True)
    if not np.may_share_memory(out, packed):
        packed[:] = out
    return packed


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
    response = mapped_empty(bins, np.float32)  # freed at once after its one use: not left in the heap
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


# transform sizes from which the far kernel's spectrum is held as its imaginary parts alone (half its bytes):
# a 30 s clip's far part at 32 kHz and longer, where the spectrum counts at the far part's peak
ODD_FROM = 1 << 18
_ODD_CHUNK = 1 << 16  # bins at a time of the product with an odd kernel's spectrum


def odd_kernel(first: int, last: int, size: int) -> bool:
    """Whether the far kernel of lags ``first..last`` is transformed as an odd sequence of ``size`` points
    (lags ``-reach..reach`` laid circularly, lag ``l`` at ``l mod size``; its spectrum imaginary): from
    :data:`ODD_FROM` points, where the transform has room for both signs of the longer side's lags."""
    return size >= ODD_FROM and size > 2 * max(-first, last)


def times_odd(spectrum: NDArray[np.complex64], odd: NDArray[np.float32]) -> None:
    """``spectrum *= 1j * odd`` in place, a chunk at a time (no full-length complex temporary)."""
    for begin in range(0, spectrum.shape[0], _ODD_CHUNK):
        part = spectrum[begin : begin + _ODD_CHUNK]
        part *= 1j * odd[begin : begin + _ODD_CHUNK]


def odd_inverse(odd: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """The odd kernel's taps (over the anti-alias response) again: ``irfft(1j * odd, size)``, lag ``l`` at
    ``l mod size``, in a buffer of its own (``size`` float32 of it)."""
    buffer = mapped_zeros(odd.shape[0], np.complex64)
    buffer.imag = odd
    return _irfft_in_place(buffer, size)


def circular_at(
    values: NDArray[np.float32], begin: int, count: int, *, out: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """``count`` values of the circular sequence ``values`` from index ``begin`` on (negative: from the end),
    into ``out`` (else a view where they do not wrap, or an array of their own)."""
    size = values.shape[0]
    begin %= size
    if out is None and begin + count <= size:
        return values[begin : begin + count]
    if out is None:
        out = mapped_empty(count, np.float32)
    head = min(count, size - begin)
    out[:head] = values[begin : begin + head]
    out[head:] = values[: count - head]
    return out
