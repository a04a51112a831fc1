"""The far part of a clip's ideal (sinc) reconstruction, zero outside the clip.

The sinc is split exactly in two, ``sinc = sinc * w + sinc * (1 - w)``, with ``w`` a window flat over 8
samples that tapers to 0 at 24 (:func:`split_window`). The near part is a short FIR per position
(:mod:`musicstore.audio.interpolation`). The far part is ``sin(pi t) / pi * G(t)`` with
``G = z * (1 - w(d)) / d`` and ``z[n] = (-1)^n x[n]``: a smooth, low-pass function of ``t`` (it carries
the content next to Nyquist, whose reconstruction reaches far), computed once per clip on a grid of 4
samples by FFT and interpolated (:class:`FarField`).

A limiter's output is ``gain * x`` less a difference ``d`` that is zero outside a few spans; its far part
is ``gain`` times the clip's less ``d``'s (the far part is linear), and ``d``'s low band is nonzero only
around the spans, so :class:`~musicstore.audio.limited_far.LimitedFarField` sums ``d``'s share at the
points read (the kernel itself within 128 grid steps, each piece's moments beyond, where the kernel is
``1 / lag``) and bounds it per block, with no transform of the whole output (``audio/limited_far.py``).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import fft as sp_fft

from musicstore.audio.arrays import Rows, mapped_zeros
from musicstore.audio.far_caches import _BoundedCache, _Misses
from musicstore.audio.far_grid import (
    _DECIMATION,
    _GRID_START,
    _SUPPORT,
    BLOCK,
    NEAR_FLAT,
    NEAR_REACH,
    _decimated_low_band,
    _far_taps,
    _far_weights,
    _transform_key,
    far_kernel,
    odd_spectrum,
    split_window,
)
from musicstore.audio.far_spectra import (
    _irfft_in_place,
    _lowpass,
    _lowpass_response,
    _rfft_in_place,
    _transform_size,
    circular_at,
    odd_inverse,
    odd_kernel,
    times_odd,
)
from musicstore.audio.kernel_pieces import _MOMENTS, _PIECE, _Kernel
from musicstore.audio.looped import (
    _COPY_NODES,
    DIRECT_LOOP,
    LOOPED_ROWS,
    Copies,
    _clip_moments,
    _node_positions,
    _node_weights,
    _other_copies,
    periodic_values,
)

_BOUND_GROUPS = 8192  # groups of grid points at a time of FarField.block_bound


@dataclass(frozen=True)
class FarField:
    """The far part ``G`` of a clip's ideal reconstruction (see the module docstring), per channel,
    on the grid ``t = (start + j) * step``."""

    grid: NDArray[np.float32]  # (C, J)
    start: int
    step: int
    bounds: dict[int, NDArray[np.float32]] = field(default_factory=dict, compare=False, repr=False)
    copies: Copies | None = None  # for the looped reading at the ends (:meth:`copies_at`)

    @classmethod
    def measure(cls, audio: NDArray[np.float32], *, kernel: bool = False, keep: bool = True) -> FarField:
        """``G`` of ``(C, S)`` audio: ``z`` low-passed and decimated, convolved with the far kernel by FFT.

        ``kernel``: a limiter's output will be checked (:class:`LimitedFarField`): its kernel is made here
        too, from the spectrum at hand, when not cached (made later, its inverse transform would add three
        buffers of the transform's size, 0.8x a stereo clip, on top of the limiter's output). It is made
        anyway where the spectrum is not cached.

        ``keep=False`` (an export, which makes its output and checks it afterwards): a kernel spectrum not
        cached yet is not cached here, and pocketfft's plans are pushed out whatever their size, cached
        spectrum or not. The spectrum and the plan of the transform are a quarter of a stereo clip each
        (half a mono one): held at the export's peak they raised a 30 s clip's from 1.9x to 2.4x the clip.
        The export keeps the spectrum with :func:`keep_spectrum` once its output is gone, for a length that
        recurs; the plan is made again by each export (3-5 ms for a 30 s clip): kept from one export to the
        next, it is a long-lived block in the allocator's heap (made after glibc's mmap threshold rose with
        the export's freed buffers) that pinned freed memory around it, and a worker's resident high-water
        over several 30 s exports rose to 3.1-3.2x the clip (2.1-2.7x now, 2.4-2.7x when both were made
        with the first export's far part)."""
        step = _DECIMATION
        channels, samples = audio.shape
        count = -(-samples // step)  # points of z's decimated low band, at 0, step, 2 step, ...
        start = _GRID_START
        _, stop, _, size = key = _transform_key(samples)  # the kernel covers lags key[0]..stop
        spectrum_of_kernel: _Spectrum | None = _SPECTRA.get(key)
        owned = False  # a spectrum made here and cached nowhere: transformed in place when the kernel is made
        if spectrum_of_kernel is None:
            spectrum_of_kernel, owned = _new_far_spectrum(*key, keep=keep)
        cached = _SPECTRA.get(key) is not None
        odd = spectrum_of_kernel.dtype == np.float32
        if odd and (kernel or not cached):  # made beside the odd spectrum alone (its inverse: a buffer more)
            _far_kernel(*key, spectrum_of_kernel, owned=owned, forget=False)  # the plan: used next
        grid = np.empty((channels, stop - start + 1), dtype=np.float32)
        copies = np.empty((channels, _COPY_NODES))
        for c in range(channels):  # a channel at a time, in float32, in one buffer of the spectrum's size
            spectrum = mapped_zeros(size // 2 + 1, np.complex64)  # freed: given back at once
            padded = spectrum.view(np.float32)[:size]  # the low band, zero-padded, transformed in place
            _decimated_low_band(audio[c], count, step, out=padded[:count])
            copies[c] = _node_weights(_clip_moments(audio[c], padded[:count], step))
            del padded
            _rfft_in_place(spectrum, size)
            if odd:  # an odd kernel's spectrum, its taps laid circularly: G(t) at t mod size
                times_odd(spectrum, cast("NDArray[np.float32]", spectrum_of_kernel))
                circular_at(_irfft_in_place(spectrum, size), start, stop - start + 1, out=grid[c])
            else:
                spectrum *= spectrum_of_kernel
                grid[c] = _irfft_in_place(spectrum, size)[count - 1 : count + stop - start]
            del spectrum
        if not odd and (kernel or not cached):
            # the kernel a limiter's output needs (small) made while the spectrum is at hand, not from a
            # second transform later, when the limiter holds more
            _far_kernel(*key, spectrum_of_kernel, owned=owned)
        del spectrum_of_kernel
        _forget_plan(size, always=not cached or not keep)
        return cls(grid, start, step, copies=Copies(samples, copies))

    def make_kernel(self, samples: int) -> None:
        """Make the kernel the far part of a limiter's output is derived with (:class:`LimitedFarField`)
        now, before the output is made, where :meth:`measure` did not (its ``kernel``); ``samples``: the
        clip's length. Kept where it fits in :data:`CACHE_BYTES` (as a rule: a long clip's is small)."""
        _kernel_for(self, samples)

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

    def copies_at(self, samples: Rows, fractions: NDArray[np.float64]) -> NDArray[np.float32]:
        """The far part of every copy of the looped clip but the clip and its neighbour, at
        ``t = samples + fractions`` within :data:`LOOPED_ROWS` of an end (the neighbour: the copy before the
        clip for a point in its first half, after it otherwise), per channel: ``(C, N, F)``. Those copies lie
        more than ``S - 34`` samples away, beyond the split window's taper, so their far kernel is
        ``1 / lag``, summed over the copies in closed form (:func:`_other_copies`), smooth over the clip: it
        is read at the Chebyshev nodes, with the clip's weights there (:class:`Copies`)."""
        if self.copies is None:
            raise ValueError("this far part was not measured with its copies' weights")
        looped = self.copies
        t = samples[:, None] + fractions[None, :]  # (N, F)
        after = (samples >= looped.samples // 2)[:, None, None]
        lags = t[:, :, None] - _node_positions(looped.samples)[None, None, :]  # (N, F, K)
        share: NDArray[np.float64] = np.einsum(
            "nfk,ck->cnf", _other_copies(lags, looped.samples, after), looped.weights
        )
        share *= np.where(samples % 2, -1.0, 1.0)[:, None] * (np.sin(np.pi * fractions) / np.pi)[None, :]
        return share.astype(np.float32)

    def block_bound(self, blocks: int) -> NDArray[np.float32]:
        """An upper bound of |far part| at the rows of each 32-sample block: ``(blocks,)`` (a copy of the one
        kept from the first call: the clip's map and its limited output's check both read it)."""
        if blocks not in self.bounds:
            self.bounds.clear()
            self.bounds[blocks] = self._block_bound(blocks)
        return self.bounds[blocks].copy()

    def _block_bound(self, blocks: int) -> NDArray[np.float32]:
        per = BLOCK // self.step
        assert 2 * per >= 2 * _SUPPORT + 1
        # block b's grid points: centre c = per b + per / 2 - start, c - SUPPORT .. c + SUPPORT, within the
        # 2 per points from c - SUPPORT: the larger of two consecutive groups of per points
        first = per // 2 - self.start - _SUPPORT
        # group point i is grid point first + i (its largest |value| over channels); before the grid: its
        # first points' largest, beyond it: its last points'; made _BOUND_GROUPS groups at a time (no
        # full-length |grid| nor groups: a quarter of a mono clip each)
        grid = self.grid
        total = (blocks + 1) * per
        lead = min(max(0, -first), total)
        take = max(0, min(total - lead, grid.shape[1] - max(first, 0)))
        head, tail = np.abs(grid[:, : 2 * per]).max(), np.abs(grid[:, -2 * per :]).max()
        peaks = np.empty(blocks + 1, dtype=np.float32)
        groups = np.empty(min(blocks + 1, _BOUND_GROUPS) * per, dtype=np.float32)
        for g0 in range(0, blocks + 1, _BOUND_GROUPS):
            g1 = min(g0 + _BOUND_GROUPS, blocks + 1)
            i0, i1 = g0 * per, g1 * per
            inside, beyond = min(max(lead, i0), i1), min(max(lead + take, i0), i1)
            part = groups[: i1 - i0]
            part[: inside - i0] = head
            values = part[inside - i0 : beyond - i0]
            np.abs(grid[0, first + inside : first + beyond], out=values)
            for channel in grid[1:]:
                np.maximum(values, np.abs(channel[first + inside : first + beyond]), out=values)
            part[beyond - i0 :] = tail
            by_group = part.reshape(g1 - g0, per)
            chunk = peaks[g0:g1]
            chunk[:] = by_group[:, 0]  # a column at a time: numpy's reduction along a short axis is 7x slower
            for k in range(1, per):
                np.maximum(chunk, by_group[:, k], out=chunk)
        bound: NDArray[np.float32] = np.maximum(peaks[:-1], peaks[1:])
        bound *= np.float32(1.25 / np.pi)  # Catmull-Rom stays within 1.25x its points
        ends = [0, max(blocks - 2, 0), blocks - 1]  # the looped reading adds the other end's far part
        bound[ends] = 2 * bound[ends].max()
        return bound


# the most each of the far part's caches holds (spectra; kernels), in bytes: a 1-minute clip's spectrum
CACHE_BYTES = 8 << 20


_SPECTRA = _BoundedCache(4, CACHE_BYTES)
_KERNELS = _BoundedCache(4, CACHE_BYTES)


_MISSES = _Misses()


# a far kernel's spectrum: complex64, or float32 where it is odd (:func:`odd_kernel`: its imaginary parts)
_Spectrum = NDArray[np.complex64] | NDArray[np.float32]


def _far_spectrum(first: int, last: int, step: int, size: int, *, keep: bool = True) -> _Spectrum:
    """The FFT of :func:`_far_taps` over the anti-alias filter's response (undoing its passband), kept for
    the next clip of the same length (and its re-checks) where it fits in :data:`CACHE_BYTES` and ``keep``
    (else counted for :func:`keep_spectrum`). From :data:`~musicstore.audio.far_spectra.ODD_FROM` points,
    the odd kernel's imaginary parts (:func:`~musicstore.audio.far_grid.odd_spectrum`): half the bytes."""
    cached: _Spectrum | None = _SPECTRA.get((first, last, step, size))
    if cached is not None:
        return cached
    return _new_far_spectrum(first, last, step, size, keep=keep)[0]


def _new_far_spectrum(first: int, last: int, step: int, size: int, *, keep: bool) -> tuple[_Spectrum, bool]:
    """:func:`_far_spectrum` made afresh, and whether it is the caller's own: not cached (nobody else holds
    it), its buffer free to be transformed in place at its last use."""
    spectrum: _Spectrum
    if odd_kernel(first, last, size):
        spectrum = odd_spectrum(first, last, step, size)
    else:
        full: NDArray[np.complex64] = mapped_zeros(size // 2 + 1, np.complex64)  # transformed in place
        _far_taps(first, last, step, out=full.view(np.float32)[: last - first + 1])  # the taps zero-padded
        _rfft_in_place(full, size)
        spectrum = full
    spectrum /= _lowpass_response(step, size)
    spectrum.flags.writeable = False
    key = (first, last, step, size)
    if not keep:
        _MISSES.add(key)
        return spectrum, True
    spectrum = _outside_heap(spectrum)
    return spectrum, not _SPECTRA.put(key, spectrum, spectrum.nbytes)


def _outside_heap(array: _Spectrum) -> _Spectrum:
    """A read-only copy of ``array`` in an anonymous memory mapping of its own, not in the allocator's heap,
    for a cached spectrum: made after an export's large buffers were freed (glibc's mmap threshold then
    stands at their size), a heap block that lives on pins the freed memory around it, which the next
    exports reuse only in part (a worker's resident high-water over several 30 s exports 2.3-2.9x the clip,
    2.1-2.6x in a mapping of its own)."""
    mapping = mmap.mmap(-1, max(array.nbytes, 1))
    copy = cast("_Spectrum", np.frombuffer(mapping, dtype=array.dtype, count=array.size).reshape(array.shape))
    copy[...] = array
    copy.flags.writeable = False
    return copy


def keep_spectrum(samples: int, *, now: bool = False) -> None:
    """Cache the far kernel's spectrum for clips of ``samples`` samples where :meth:`FarField.measure`
    with ``keep=False`` left it out and it fits in :data:`CACHE_BYTES`: ``now``, or where two clips of
    that length were measured so since it was last cached (a length that recurs, as a worker's clips of
    one model's length do; a one-off length costs no second transform). An export calls this once its
    output is written and freed, so that the spectrum is made beside the clip alone, never beside its
    output (its peak): the next clip of that length finds it. The price: a recurring length's spectrum is
    made three times, not once (about 45 ms of CPU for a 30 s clip at 48 kHz). pocketfft's plans are
    pushed out after it (see :meth:`FarField.measure`)."""
    key = _transform_key(samples)
    size = key[3]
    if 8 * (size // 2 + 1) > CACHE_BYTES or _SPECTRA.get(key) is not None:
        return
    if now or _MISSES.recurs(key):
        _far_spectrum(*key)
        _forget_plan(size, always=True)


_NEAR = 128  # grid steps within which a piece is summed with the kernel itself, beyond by its moments
_KERNEL_DEVIATION = 1e-6  # the largest |k - 1 / lag| beyond _NEAR for which pieces act by their moments
# lags at a time of the kernel's deviation (float64 temporaries of 128 KiB: a long clip's kernel is made
# beside the far part's transforms, whose peak the allocator's heap would keep them on)
_DEVIATION_CHUNK = 1 << 14


def _far_kernel(
    first: int,
    last: int,
    step: int,
    size: int,
    spectrum: _Spectrum | None = None,
    *,
    owned: bool = False,
    forget: bool = True,
) -> _Kernel:
    """The clip's far kernel (see :class:`_Kernel`), kept for the next clip of the same length where it fits
    in :data:`CACHE_BYTES`. ``spectrum``: :func:`_far_spectrum`'s, where the caller holds it (``owned``: its
    buffer is transformed in place, the spectrum lost)."""
    key = (first, last, step, size)
    cached: _Kernel | None = _KERNELS.get(key)
    if cached is None:
        cached = _make_far_kernel(first, last, step, size, spectrum, owned=owned)
        _KERNELS.put(key, cached, cached.taps.nbytes + cached.beyond.nbytes)
        if forget:
            _forget_plan(size)
    return cached


def _kernel_for(base: FarField, samples: int) -> tuple[int, _Kernel]:
    """The first lag and the far kernel of the far part ``base`` of a clip of ``samples`` samples."""
    count = -(-samples // base.step)
    stop = base.start + base.grid.shape[1] - 1
    first_lag = base.start - count + 1
    return first_lag, _far_kernel(first_lag, stop, base.step, _transform_size(stop - first_lag + 1))


# pocketfft keeps the plans of the last 16 lengths it ran, per kind (scipy exposes no way to drop them)
_PLAN_CACHE_LENGTHS = 16


def _forget_plan(size: int, *, always: bool = False) -> None:
    """Push the plan of the ``size``-point float32 real transforms out of pocketfft's plan cache where it
    is larger than :data:`CACHE_BYTES` (or ``always``): it holds a float per point (63 MB for a 10-minute
    48 kHz clip's transform, 0.27x the stereo clip), which stayed resident for the rest of the export and
    after it. The way out is transforms of 16 other lengths (the workaround pocketfft's author gives in
    scipy/scipy#5986); tiny ones: about 0.1 ms in all."""
    if 4 * size <= CACHE_BYTES and not always:
        return
    for length in range(1, _PLAN_CACHE_LENGTHS + 1):
        sp_fft.rfft(np.zeros(length, dtype=np.float32))


def _make_far_kernel(
    first: int, last: int, step: int, size: int, spectrum: _Spectrum | None, *, owned: bool
) -> _Kernel:
    length = last - first + 1
    if spectrum is None:
        spectrum = _SPECTRA.get((first, last, step, size))
        if spectrum is None:
            spectrum, owned = _new_far_spectrum(first, last, step, size, keep=True)
    if spectrum.dtype == np.float32:  # an odd kernel's: lag l at l mod size
        values, origin = odd_inverse(cast("NDArray[np.float32]", spectrum), size), 0
    else:  # lag l at l - first
        if owned:
            spectrum.flags.writeable = True  # nobody else's (read-only as made)
        full = cast("NDArray[np.complex64]", spectrum)
        values, origin = _irfft_in_place(full if owned else full.copy(), size), first
    del spectrum

    def taps(lag: int, count: int) -> NDArray[np.float32]:  # of lags lag .. lag + count - 1
        return circular_at(values, lag - origin, count)

    reach = max(-first, last)
    deviation = 0.0  # where the moments or 1 / lag stand for the kernel: |lag| >= _NEAR - _PIECE / 2
    for begin in range(0, length, _DEVIATION_CHUNK):
        lags = np.arange(first + begin, first + min(begin + _DEVIATION_CHUNK, length), dtype=np.float64)
        far = np.abs(lags) >= _NEAR - _PIECE / 2
        part = taps(first + begin, lags.shape[0])[far] - 1.0 / lags[far]
        deviation = max(deviation, float(np.abs(part).max(initial=0.0)))
    bent = deviation > _KERNEL_DEVIATION  # short clips: the transform's wrap bends the kernel; keep it all
    window = reach if bent else min(reach, 2 * _NEAR)
    kept = np.zeros(2 * window + 1 + 2 * _PIECE, dtype=np.float32)
    lo, hi = max(first, -window), min(last, window)
    kept[lo + window + _PIECE : hi + window + _PIECE + 1] = taps(lo, hi - lo + 1)
    kept.flags.writeable = False
    by_distance = np.maximum(np.abs(kept[window + _PIECE :]), np.abs(kept[window + _PIECE :: -1]))
    beyond = np.maximum.accumulate(by_distance[: window + 1][::-1])[::-1].copy()
    if not bent:  # lags beyond the window: at most 1 / |lag| + deviation
        beyond = np.maximum(beyond, np.float32(1.0 / (window + 1) + deviation))
    beyond.flags.writeable = False
    if bent:
        return _Kernel(kept, beyond, window, 0.0, 0.0, window + _PIECE)
    truncation = ((_PIECE / 2) / _NEAR) ** _MOMENTS / (_NEAR - _PIECE / 2)
    return _Kernel(kept, beyond, window, deviation, deviation + truncation, _NEAR)


__all__ = [  # with the names tests and the meters import from here that live in the modules beside it
    "BLOCK",
    "CACHE_BYTES",
    "DIRECT_LOOP",
    "LOOPED_ROWS",
    "NEAR_FLAT",
    "NEAR_REACH",
    "_SUPPORT",
    "Copies",
    "FarField",
    "Rows",
    "_BoundedCache",
    "_decimated_low_band",
    "_far_taps",
    "_irfft_in_place",
    "_lowpass",
    "_lowpass_response",
    "_rfft_in_place",
    "_transform_key",
    "_transform_size",
    "far_kernel",
    "keep_spectrum",
    "periodic_values",
    "split_window",
]
