"""The far part of a clip's ideal (sinc) reconstruction, zero outside the clip.

The sinc is split exactly in two, ``sinc = sinc * w + sinc * (1 - w)``, with ``w`` a window flat over 8
samples that tapers to 0 at 24 (:func:`split_window`). The near part is a short FIR per position
(:mod:`musicstore.audio.interpolation`). The far part is ``sin(pi t) / pi * G(t)`` with
``G = z * (1 - w(d)) / d`` and ``z[n] = (-1)^n x[n]``: a smooth, low-pass function of ``t`` (it carries
the content next to Nyquist, whose reconstruction reaches far), computed once per clip on a grid of 4
samples by FFT and interpolated (:class:`FarField`).

A limiter's output is ``gain * x`` less a difference ``d`` that is zero outside a few spans; its far part
is ``gain`` times the clip's less ``d``'s (the far part is linear), and ``d``'s low band is nonzero only
around the spans, so :class:`LimitedFarField` sums ``d``'s share at the points read (the kernel itself
within 128 grid steps, each piece's moments beyond, where the kernel is ``1 / lag``) and bounds it per
block, with no transform of the whole output.
"""

from __future__ import annotations

import functools
import math
import mmap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import fft as sp_fft
from scipy.ndimage import maximum_filter1d

from musicstore.audio.arrays import Rows
from musicstore.audio.far_caches import _BoundedCache, _Misses
from musicstore.audio.far_spectra import (
    _irfft_in_place,
    _lowpass,
    _lowpass_response,
    _rfft_in_place,
    _transform_size,
)
from musicstore.audio.kernel_pieces import _MOMENTS, _PIECE, _binomials, _Cluster, _Kernel, _moments
from musicstore.audio.looped import (
    _COPY_NODES,
    DIRECT_LOOP,
    LOOPED_ROWS,
    Copies,
    _clip_moments,
    _difference_moments,
    _node_positions,
    _node_weights,
    _other_copies,
    periodic_values,
)

BLOCK = 32  # samples per block when deciding where to interpolate (≥ the reach of every filter)
NEAR_FLAT = 8  # the split window w is 1 up to here (samples) ...
NEAR_REACH = 24  # ... and 0 from here
_DECIMATION = 4  # grid step of the far part, in samples
_LOW_BAND_CHUNK = 65_536  # decimated points at a time of the low band (few numpy calls)
_SUPPORT = BLOCK // 2 // _DECIMATION + 3  # grid points either side of a block's centre that reach its rows
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
        spectrum_of_kernel: NDArray[np.complex64] | None = _SPECTRA.get(key)
        owned = False  # a spectrum made here and cached nowhere: transformed in place when the kernel is made
        if spectrum_of_kernel is None:
            spectrum_of_kernel, owned = _new_far_spectrum(*key, keep=keep)
        grid = np.empty((channels, stop - start + 1), dtype=np.float32)
        copies = np.empty((channels, _COPY_NODES))
        for c in range(channels):  # a channel at a time, in float32, in one buffer of the spectrum's size
            spectrum = np.zeros(size // 2 + 1, dtype=np.complex64)
            padded = spectrum.view(np.float32)[:size]  # the low band, zero-padded, transformed in place
            _decimated_low_band(audio[c], count, step, out=padded[:count])
            copies[c] = _node_weights(_clip_moments(audio[c], padded[:count], step))
            del padded
            _rfft_in_place(spectrum, size)
            spectrum *= spectrum_of_kernel
            grid[c] = _irfft_in_place(spectrum, size)[count - 1 : count + stop - start]
            del spectrum
        cached = _SPECTRA.get(key) is not None
        if kernel or not cached:
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


# the most each of the far part's caches holds (spectra; kernels), in bytes: a 1-minute clip's spectrum
CACHE_BYTES = 8 << 20


_SPECTRA = _BoundedCache(4, CACHE_BYTES)
_KERNELS = _BoundedCache(4, CACHE_BYTES)


_MISSES = _Misses()


def _far_spectrum(first: int, last: int, step: int, size: int, *, keep: bool = True) -> NDArray[np.complex64]:
    """The FFT of :func:`_far_taps` over the anti-alias filter's response (undoing its passband), kept for
    the next clip of the same length (and its re-checks) where it fits in :data:`CACHE_BYTES` and ``keep``
    (else counted for :func:`keep_spectrum`)."""
    cached: NDArray[np.complex64] | None = _SPECTRA.get((first, last, step, size))
    if cached is not None:
        return cached
    return _new_far_spectrum(first, last, step, size, keep=keep)[0]


def _new_far_spectrum(
    first: int, last: int, step: int, size: int, *, keep: bool
) -> tuple[NDArray[np.complex64], bool]:
    """:func:`_far_spectrum` made afresh, and whether it is the caller's own: not cached (nobody else holds
    it), its buffer free to be transformed in place at its last use."""
    spectrum = np.zeros(size // 2 + 1, dtype=np.complex64)  # the taps zero-padded, transformed in place
    _far_taps(first, last, step, out=spectrum.view(np.float32)[: last - first + 1])
    _rfft_in_place(spectrum, size)
    spectrum /= _lowpass_response(step, size)
    spectrum.flags.writeable = False
    key = (first, last, step, size)
    if not keep:
        _MISSES.add(key)
        return spectrum, True
    spectrum = _outside_heap(spectrum)
    return spectrum, not _SPECTRA.put(key, spectrum, spectrum.nbytes)


def _outside_heap(array: NDArray[np.complex64]) -> NDArray[np.complex64]:
    """A read-only copy of ``array`` in an anonymous memory mapping of its own, not in the allocator's heap,
    for a cached spectrum: made after an export's large buffers were freed (glibc's mmap threshold then
    stands at their size), a heap block that lives on pins the freed memory around it, which the next
    exports reuse only in part (a worker's resident high-water over several 30 s exports 2.3-2.9x the clip,
    2.1-2.6x in a mapping of its own)."""
    mapping = mmap.mmap(-1, max(array.nbytes, 1))
    copy: NDArray[np.complex64] = np.frombuffer(mapping, dtype=array.dtype, count=array.size)
    copy = copy.reshape(array.shape)
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
    phases = np.empty((step, phase.shape[0]), dtype=np.float32)
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


_GATHER = 1 << 17  # kernel values gathered at a time: about 24 bytes of buffers each (3 MB)
_GROUP = 8  # blocks per group of the bound away from the zones
_NEAR = 128  # grid steps within which a piece is summed with the kernel itself, beyond by its moments
_KERNEL_DEVIATION = 1e-6  # the largest |k - 1 / lag| beyond _NEAR for which pieces act by their moments
_BOUND_WINDOWS = 4096  # windows (at most) over which the bound sums distant clusters' masses
_ZONE = 64  # grid points either side of a cluster of the difference's sources where it is summed exactly
_PAIRS = 1 << 16  # cluster pairs at a time of the zones' bound (its float64 arrays: 512 KiB each)


def _far_kernel(
    first: int,
    last: int,
    step: int,
    size: int,
    spectrum: NDArray[np.complex64] | None = None,
    *,
    owned: bool = False,
) -> _Kernel:
    """The clip's far kernel (see :class:`_Kernel`), kept for the next clip of the same length where it fits
    in :data:`CACHE_BYTES`. ``spectrum``: :func:`_far_spectrum`'s, where the caller holds it (``owned``: its
    buffer is transformed in place, the spectrum lost)."""
    key = (first, last, step, size)
    cached: _Kernel | None = _KERNELS.get(key)
    if cached is None:
        cached = _make_far_kernel(first, last, step, size, spectrum, owned=owned)
        _KERNELS.put(key, cached, cached.taps.nbytes + cached.beyond.nbytes)
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
    first: int, last: int, step: int, size: int, spectrum: NDArray[np.complex64] | None, *, owned: bool
) -> _Kernel:
    length = last - first + 1
    if spectrum is None:
        spectrum = _SPECTRA.get((first, last, step, size))
        if spectrum is None:
            spectrum, owned = _new_far_spectrum(first, last, step, size, keep=True)
    if owned:
        spectrum.flags.writeable = True  # nobody else's (read-only as made)
    taps = _irfft_in_place(spectrum if owned else spectrum.copy(), size)[:length]  # lag - first
    del spectrum
    reach = max(-first, last)
    deviation = 0.0  # where the moments or 1 / lag stand for the kernel: |lag| >= _NEAR - _PIECE / 2
    for begin in range(0, length, 1 << 16):
        lags = np.arange(first + begin, first + min(begin + (1 << 16), length), dtype=np.float64)
        far = np.abs(lags) >= _NEAR - _PIECE / 2
        part = taps[begin : begin + lags.shape[0]][far] - 1.0 / lags[far]
        deviation = max(deviation, float(np.abs(part).max(initial=0.0)))
    bent = deviation > _KERNEL_DEVIATION  # short clips: the transform's wrap bends the kernel; keep it all
    window = reach if bent else min(reach, 2 * _NEAR)
    kept = np.zeros(2 * window + 1 + 2 * _PIECE, dtype=np.float32)
    lo, hi = max(first, -window), min(last, window)
    kept[lo + window + _PIECE : hi + window + _PIECE + 1] = taps[lo - first : hi - first + 1]
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


_WINDOW = 128  # grid steps per window of the local expansions, at least (more for long clips: see below)
_WINDOWS = 8192  # at most this many windows over the grid
_RADIUS = 7  # pieces of windows this far from a point's are summed by their moments, beyond by expansion
_TERMS = 20  # of each window's multipole and local expansion
_SPAN = 8  # windows of points per chunk of the direct sums, at most
_FEW_PIECES = 512  # fewer pieces are all summed directly (a typical 30 s clip has 200-300)


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
        coefficients = np.empty((channels, count, _TERMS))
        placed = piece_windows - first
        for c in range(channels):
            # a piece's terms about its window's centre: 1 / (t - C - delta)^(n + 1) = sum_m binom(n + m, n)
            # delta^m / (t - C)^(n + m + 1): a_k gathers binom(k, n) delta^(k - n) of moment n (in windows)
            spectra = np.empty((size // 2 + 1, _TERMS), dtype=np.complex128)  # (F, k); a column at a time
            for k in range(_TERMS):
                term = np.zeros(centres.shape[0])
                for n in range(min(k, _MOMENTS - 1) + 1):
                    term += binomials[k, n] * scaled[c, :, n] * delta ** (k - n)
                spectra[:, k] = sp_fft.rfft(np.bincount(placed, term, minlength=count), size)
            local = np.zeros((spectra.shape[0], _TERMS), dtype=np.complex128)
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


def _windowed_sum(
    masses: NDArray[Any], reach: NDArray[np.float64], at: NDArray[np.int64], *, after: bool = False
) -> NDArray[np.float64]:
    """Per window of ``at``: ``sum_w masses[w] * reach[at - w]`` over ``w <= at`` (``after``:
    ``reach[w - at]`` over ``w >= at``). A few windows with mass (a typical clip's clusters) are summed
    directly at the windows asked for, more by a convolution over all windows (its square in the windows,
    at most ``_BOUND_WINDOWS``: 2 ms each at 3700 windows, where 13 with mass take 0.1 ms directly)."""
    held = np.flatnonzero(masses)
    windows = masses.shape[0]
    if held.shape[0] * at.shape[0] > windows * windows // 32:
        if after:
            return np.convolve(masses[::-1], reach)[:windows][::-1][at]
        return np.convolve(masses, reach)[:windows][at]
    total = np.empty(at.shape[0])
    weights = masses[held]
    rows = max(1, _GATHER // max(1, held.shape[0]))  # at a time: temporaries of 1 MB, not up to 4 MB
    for begin in range(0, at.shape[0], rows):  # (a quarter of a 30 s stereo clip together)
        part = at[begin : begin + rows]
        lags = held[None, :] - part[:, None] if after else part[:, None] - held[None, :]
        terms = reach[np.maximum(lags, 0)] * weights
        terms[lags < 0] = 0.0
        total[begin : begin + part.shape[0]] = terms.sum(axis=1)
    return total


def _empty(*shape: int) -> NDArray[np.float32]:
    return np.zeros(shape, dtype=np.float32)


@dataclass(frozen=True)
class LimitedFarField(FarField):
    """The far part of ``gain * x - d``, where ``d`` is zero outside a few spans (a limiter's output):
    ``gain`` times ``x``'s far part less ``d``'s, summed exactly from ``d``'s low band at the points read
    (the far part is linear, and ``d``'s low band is nonzero only around its spans), with no transform of
    the whole clip. Equal to :meth:`FarField.measure` of the output to the float rounding."""

    base: FarField = field(default_factory=lambda: FarField(_empty(1, 4), 0, _DECIMATION))
    gain: float = 1.0
    clusters: tuple[_Cluster, ...] = ()
    kernel: _Kernel = field(default_factory=lambda: _Kernel(_empty(1), _empty(1), 0, 0.0, 0.0, 0))
    first_lag: int = 0
    firsts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # each piece's first
    values: NDArray[np.float32] = field(default_factory=lambda: _empty(1, 0, _PIECE))  # (C, Q, piece)
    moments: NDArray[np.float64] = field(default_factory=lambda: np.zeros((1, 0, _MOMENTS)))  # (C, Q, n)
    memo: dict[bytes, NDArray[np.float32]] = field(default_factory=dict, compare=False, repr=False)
    expansion: dict[str, _LocalExpansion | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        base: FarField,
        gain: float,
        difference: NDArray[np.float32],
        spans: NDArray[np.int64],
        samples: int,
    ) -> LimitedFarField:
        """``base``: ``x``'s far part (clip of ``samples`` samples); ``difference``: ``(C, N)``, ``d`` at the
        samples of ``spans`` (``(n, 2)`` sorted ``[a, b)`` runs, their lengths adding up to ``N``)."""
        step, start = base.step, base.start
        count = -(-samples // step)
        first_lag, kernel = _kernel_for(base, samples)
        half = _lowpass(step).shape[0] // 2
        channels = difference.shape[0]
        # group the spans whose low bands (and exact zones) would touch: each group one run of sources
        groups: list[list[int]] = []
        offsets = np.concatenate([[0], np.cumsum(spans[:, 1] - spans[:, 0])])
        for k, a in enumerate(spans[:, 0].tolist()):
            if groups and (a - half) // step - _ZONE * 2 - 2 <= (spans[groups[-1][-1], 1] + half) // step:
                groups[-1].append(k)
            else:
                groups.append([k])
        # every group's samples in one zero-padded row per channel, each at a multiple of step with 8 grid
        # steps of zeros either side (more than the filter's half): one low-band pass for all of them
        ranges = []
        for group in groups:
            a, b = int(spans[group[0], 0]), int(spans[group[-1], 1])
            j0 = max(0, (a - half) // step - 1)
            j1 = min(count - 1, -(-(b + half) // step) + 1)
            if j1 >= j0:
                ranges.append((group, j0, j1))
        lengths = np.asarray([j1 - j0 + 17 for _, j0, j1 in ranges], dtype=np.int64)  # grid steps each
        places = np.concatenate([[0], np.cumsum(lengths)])
        local = np.zeros((channels, step * int(places[-1])), dtype=np.float32)
        for (group, j0, _), place in zip(ranges, places[:-1].tolist(), strict=True):
            origin = step * (j0 - 8) - step * place  # local index = sample - origin
            for k in group:
                sa, sb = int(spans[k, 0]), int(spans[k, 1])
                local[:, sa - origin : sb - origin] = difference[:, offsets[k] : offsets[k + 1]]
        low = np.stack([_decimated_low_band(row, int(places[-1]), step) for row in local])
        clusters = []
        for (_, j0, j1), place in zip(ranges, places[:-1].tolist(), strict=True):
            values = np.ascontiguousarray(low[:, place + 8 : place + 8 + j1 - j0 + 1])
            clusters.append(_Cluster(j0, values, float(np.abs(values).sum(axis=1).max())))
        firsts: list[int] = []
        pieces: list[NDArray[np.float32]] = []
        for c in clusters:  # pieces of _PIECE sources (the last padded with zeros), each reversed
            n = c.values.shape[1]
            padded = np.zeros((channels, -(-n // _PIECE) * _PIECE), dtype=np.float32)
            padded[:, :n] = c.values
            firsts.extend(range(c.first, c.first + n, _PIECE))
            pieces.append(padded.reshape(channels, -1, _PIECE)[:, :, ::-1])
        values = np.concatenate(pieces, axis=1) if pieces else _empty(channels, 0, _PIECE)
        copies = None
        if base.copies is not None:  # the output's weights: gain times the clip's less d's
            weights = gain * base.copies.weights - _node_weights(
                _difference_moments(difference, spans, samples)
            )
            copies = Copies(samples, weights)
        return cls(
            base.grid, start, step, copies=copies, base=base, gain=gain, clusters=tuple(clusters),
            kernel=kernel, first_lag=first_lag, firsts=np.asarray(firsts, dtype=np.int64),
            values=np.ascontiguousarray(values), moments=_moments(pieces, channels),
        )  # fmt: skip

    def prepare(self) -> None:
        """Make what the first read would (the pieces' local expansion, where they are many) now: a caller
        about to read many rows makes it before their buffers exist (its spectra are 0.24x a 1-minute
        stereo clip; the same values either way)."""
        self._local_expansion()

    def _difference_at(self, points: NDArray[np.int64]) -> NDArray[np.float32]:
        """``d``'s far part ``G`` at grid indices ``points``: ``(C, P)``, summed over every source.

        The sources come in pieces of ``_PIECE`` consecutive grid steps. A piece whose centre lies within
        ``_NEAR`` steps of a point is summed with the kernel itself (one contiguous slice of it per piece,
        gathered as a row); beyond, the kernel is ``1 / lag`` (to within ``kernel_error``) and the piece
        acts through ``_MOMENTS`` moments about its centre (the series of ``1 / (t - c - delta)`` in
        ``delta / (t - c)``, at most ``(16 / _NEAR)^_MOMENTS`` of the piece's mass over the distance left)."""
        channels, count = self.values.shape[0], self.firsts.shape[0]
        out = np.zeros((points.shape[0], channels), dtype=np.float64)
        if count == 0 or points.shape[0] == 0:
            return out.T.astype(np.float32)
        local = self._local_expansion()
        rows = sliding_window_view(self.kernel.taps, _PIECE)  # rows[q][m] = k[q + m]
        # point t = start + i, piece source j = first + _PIECE - 1 - m: lag t - j
        offset = self.start - _PIECE + 1 + self.kernel.window + _PIECE  # window index of the lag t - j
        times = points + self.start
        centres = self.firsts + (_PIECE - 1) / 2
        near_steps = self.kernel.near
        reach = min(count, 2 * near_steps // _PIECE + 2)
        if local is None:
            chunk = max(1, _GATHER // max(count * _MOMENTS, reach * _PIECE))
            bounds = [
                (b, min(b + chunk, points.shape[0]), 0, count) for b in range(0, points.shape[0], chunk)
            ]
        else:
            bounds = local.chunks(times, max(1, _GATHER // (reach * _PIECE)))
        for begin, end, q0, q1 in bounds:
            t = times[begin:end]
            lo = np.searchsorted(centres, t - near_steps, side="right")
            hi = np.searchsorted(centres, t + near_steps, side="left")
            near = lo[:, None] + np.arange(reach)
            inside = near < hi[:, None]
            near = np.minimum(near, count - 1)
            q = np.where(inside, (points[begin:end] + offset)[:, None] - self.firsts[near], 0)
            if q.min() < 0 or q.max() >= rows.shape[0]:
                raise AssertionError("far part read outside its grid")
            taps = rows[q] * inside[:, :, None]  # (P, reach, piece)
            picked = self.values[:, near]  # (C, P, reach, piece), reversed within each piece
            target = out[begin:end]
            width = reach * _PIECE
            near_sum = np.matmul(picked.reshape(channels, -1, 1, width), taps.reshape(-1, width, 1))
            target += near_sum[:, :, 0, 0].T
            lags = t[:, None] - centres[None, q0:q1]  # (P, Q)
            with np.errstate(divide="ignore"):
                u = 1.0 / lags
            u[np.abs(lags) < near_steps] = 0.0
            if local is not None:  # the pieces of windows further than RADIUS act through the expansion
                u[np.abs(local.window_of(t)[:, None] - local.piece_windows[None, q0:q1]) > _RADIUS] = 0.0
            powers = np.empty((t.shape[0], q1 - q0, _MOMENTS))
            powers[:, :, 0] = u
            for n in range(1, _MOMENTS):
                np.multiply(powers[:, :, n - 1], u, out=powers[:, :, n])
            # numpy's own loops, not BLAS: a product this size would wake OpenBLAS's threads, whose spinning
            # afterwards costs the next stages more than they save here
            target += np.einsum(
                "pk,ck->pc", powers.reshape(t.shape[0], -1), self.moments[:, q0:q1].reshape(channels, -1)
            )
        if local is not None:
            local.add_to(out, times)
        return out.T.astype(np.float32)

    def _local_expansion(self) -> _LocalExpansion | None:
        """The pieces' far sums as local expansions per window (made once), or None where the pieces are
        few or the kernel is kept whole (a short clip's: every piece is summed with it)."""
        if "local" not in self.expansion:
            made = None
            if self.kernel.near <= _RADIUS * _WINDOW and self.firsts.shape[0] > _FEW_PIECES:
                made = _LocalExpansion.of(
                    self.firsts.astype(np.float64) + (_PIECE - 1) / 2,
                    self.moments,
                    self.start,
                    self.start + self.grid.shape[1] - 1,
                )
            self.expansion["local"] = made
        return self.expansion["local"]

    def _own_share(self, cluster: _Cluster, first: int, last: int) -> NDArray[np.float32]:
        """The largest over channels of ``|G|`` from ``cluster``'s sources alone at grid steps
        ``first..last`` (one direct convolution per channel)."""
        lags = np.arange(first - (cluster.first + cluster.values.shape[1] - 1), last - cluster.first + 1)
        segment = self.kernel.at(lags)
        share = np.abs(np.convolve(segment, cluster.values[0], mode="valid"))
        for row in cluster.values[1:]:
            np.maximum(share, np.abs(np.convolve(segment, row, mode="valid")), out=share)
        return share

    def at(self, channel: int, samples: Rows, fractions: NDArray[np.float64]) -> NDArray[np.float32]:
        """As :meth:`FarField.at`: ``gain`` times ``x``'s far part less ``d``'s, exact at each point."""
        out = self.base.at(channel, samples, fractions)
        out *= np.float32(self.gain)
        if not self.clusters or samples.shape[0] == 0:
            return out
        weights = _far_weights(self.step, tuple(fractions.tolist()))
        base, phase = np.divmod(samples, self.step)
        base = base - (self.start + 1)
        around = base[:, None] + np.arange(4)
        points, where = np.unique(around, return_inverse=True)
        key = points.tobytes()
        if key not in self.memo:  # the other channels read the same points next
            if len(self.memo) >= 4:
                self.memo.pop(next(iter(self.memo)))
            self.memo[key] = self._difference_at(points.astype(np.int64))
        g = self.memo[key][channel][where.reshape(around.shape)]  # (N, 4)
        for p in range(self.step):
            picked = phase == p
            if picked.any():
                out[picked] -= g[picked] @ weights[p]
        return out

    def block_bound(self, blocks: int) -> NDArray[np.float32]:
        """``gain`` times ``x``'s bound plus a bound of ``d``'s far part: within ``_ZONE`` grid points of a
        cluster its own sources summed exactly plus the other clusters' mass times the kernel's largest
        value at their distance; elsewhere every cluster's mass times that value."""
        bound = self.base.block_bound(blocks)
        bound *= np.float32(self.gain)
        if not self.clusters:
            return bound
        per = BLOCK // self.step
        firsts = np.asarray([c.first for c in self.clusters])
        lasts = np.asarray([c.first + c.values.shape[1] - 1 for c in self.clusters])
        masses = np.asarray([c.mass for c in self.clusters])

        def share(distance: NDArray[np.int64]) -> NDArray[np.float64]:
            return self.kernel.share(np.maximum(distance, _ZONE))

        # outside every zone: each cluster's mass times the kernel's largest value at its distance (at least
        # _ZONE), the nearest few one by one, the rest lumped at the distance of the nearest of them; per
        # group of _GROUP blocks (over the group's reach), then spread to its blocks
        nearest = 2
        groups = -(-blocks // _GROUP)
        lo = per * _GROUP * np.arange(groups) + per // 2 - _SUPPORT
        hi = lo + per * (_GROUP - 1) + 2 * _SUPPORT
        far_away = np.int64(1) << 40  # sentinel clusters with no mass, out of reach
        pad_first = np.concatenate([np.full(nearest + 1, -far_away), firsts, np.full(nearest + 1, far_away)])
        pad_last = np.concatenate([np.full(nearest + 1, -far_away), lasts, np.full(nearest + 1, far_away)])
        pad_mass = np.concatenate([np.zeros(nearest + 1), masses, np.zeros(nearest + 1)])
        cumulative = np.concatenate([[0.0], np.cumsum(pad_mass)])
        left_end = np.searchsorted(pad_last, lo, side="left")  # clusters [.., left_end) end before lo
        right_start = np.maximum(np.searchsorted(pad_first, hi, side="right"), left_end)  # start after hi
        group_bound = (cumulative[right_start] - cumulative[left_end]) * share(np.zeros(1, np.int64))[0]
        for k in range(nearest):
            i = left_end - 1 - k
            group_bound += pad_mass[i] * share(lo - pad_last[i])
            i = right_start + k
            group_bound += pad_mass[i] * share(pad_first[i] - hi)
        # the rest: at the distance of the nearest of them, or (where less) those of windows two or more
        # from the group's by their windows' distance, the others at the distance of the nearest
        left, right = left_end - 1 - nearest, right_start + nearest
        origin = min(int(lo[0]), int(firsts[0]))
        width = max(_ZONE, -(-(max(int(hi[-1]), int(lasts[-1])) - origin + 1) // _BOUND_WINDOWS))
        windows = (max(int(hi[-1]), int(lasts[-1])) - origin) // width + 2
        reach = share(np.arange(-1, windows - 1) * width + 1)  # [d]: windows d apart (d >= 2)
        reach[:2] = 0.0
        by_last = np.bincount((lasts - origin) // width, masses, minlength=windows)
        by_first = np.bincount((firsts - origin) // width, masses, minlength=windows)
        low, high = (lo - origin) // width, (hi - origin) // width
        from_left = _windowed_sum(by_last, reach, low)
        from_right = _windowed_sum(by_first, reach, high, after=True)
        close = np.searchsorted(pad_last, (low - 1) * width + origin, side="left")
        close_left = np.maximum(cumulative[left + 1] - cumulative[np.minimum(close, left + 1)], 0.0)
        close = np.searchsorted(pad_first, (high + 2) * width + origin, side="left")
        close_right = np.maximum(cumulative[np.maximum(close, right)] - cumulative[right], 0.0)
        group_bound += np.minimum(
            cumulative[left + 1] * share(lo - pad_last[left]),
            from_left + close_left * share(lo - pad_last[left]),
        )
        group_bound += np.minimum(
            (cumulative[-1] - cumulative[right]) * share(pad_first[right] - hi),
            from_right + close_right * share(pad_first[right] - hi),
        )
        d_bound = np.repeat(group_bound, _GROUP)[:blocks]
        # within a zone: the cluster's own share exactly, the others by mass at their distance from the zone
        # (points of a block's support outside the zone are covered by the bound above)
        z0s, z1s = firsts - _ZONE, lasts + _ZONE
        others = np.empty(firsts.shape[0])
        rows = max(
            1, _PAIRS // firsts.shape[0]
        )  # clusters at a time: no (clusters, clusters) arrays (memory)
        for r0 in range(0, firsts.shape[0], rows):
            r1 = min(r0 + rows, firsts.shape[0])
            gaps = np.maximum(
                np.maximum(firsts[None, :] - z1s[r0:r1, None], z0s[r0:r1, None] - lasts[None, :]), 0
            )
            shares = masses[None, :] * self.kernel.share(gaps)
            others[r0:r1] = shares.sum(axis=1) - shares[np.arange(r1 - r0), np.arange(r0, r1)]
        stop = self.start + self.base.grid.shape[1] - 1
        touched: list[NDArray[np.int64]] = []
        values: list[NDArray[np.float64]] = []
        for index, cluster in enumerate(self.clusters):
            z0, z1 = int(z0s[index]), int(z1s[index])
            b0 = max(0, -(-(z0 - per // 2 - _SUPPORT) // per))  # blocks whose support touches the zone
            b1 = min(blocks - 1, (z1 - per // 2 + _SUPPORT) // per)
            if b1 < b0:
                continue
            own = _empty(z1 - z0 + 1 + 2 * _SUPPORT)  # at points z0 - SUPPORT .. z1 + SUPPORT
            a, b = max(z0, self.start), min(z1, stop)
            own[a - z0 + _SUPPORT : b - z0 + _SUPPORT + 1] = self._own_share(cluster, a, b)
            widest = maximum_filter1d(own, 2 * _SUPPORT + 1, mode="constant")  # over each support
            touching = np.arange(b0, b1 + 1)
            touched.append(touching)
            centre = per * touching + per // 2  # each block's centre, in grid steps (grid index + start)
            values.append(widest[centre - z0 + _SUPPORT] + others[index])
        if touched:
            np.maximum.at(d_bound, np.concatenate(touched), np.concatenate(values))
        d_bound += masses.sum() * self.kernel.error  # where the moments stand for the kernel
        d_bound *= 1.25 / np.pi  # in place: no float64 temporaries of the blocks' count (memory)
        d_bound *= 1 + 1e-5
        d_bound += 1e-9
        extra = d_bound.astype(np.float32)
        del d_bound
        ends = [0, max(blocks - 2, 0), blocks - 1]
        extra[ends] = 2 * extra[ends].max()
        bound += extra
        return bound


__all__ = [  # with the names tests and the meters import from here that live in the modules beside it
    "BLOCK",
    "CACHE_BYTES",
    "DIRECT_LOOP",
    "LOOPED_ROWS",
    "NEAR_FLAT",
    "NEAR_REACH",
    "Copies",
    "FarField",
    "LimitedFarField",
    "Rows",
    "_BoundedCache",
    "_irfft_in_place",
    "_lowpass",
    "_lowpass_response",
    "_rfft_in_place",
    "_transform_size",
    "far_kernel",
    "keep_spectrum",
    "periodic_values",
    "split_window",
]
