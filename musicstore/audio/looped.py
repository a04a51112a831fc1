"""The looped reading at a clip's ends (the clip repeated end to end, as a periodic FFT meter reads it):
the far share of every copy but the clip and its neighbour, from the clip's weights at Chebyshev nodes
(:class:`Copies`), and the periodic sinc summed directly for short clips (:func:`periodic_values`). Used by
:mod:`musicstore.audio.farfield` (which re-exports these names)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.arrays import Rows
from musicstore.audio.far_spectra import _lowpass

# rows from each end that the meter also reads looped (the clip repeated end to end, as a periodic FFT
# meter reads it): the neighbouring copy's far part, read one clip length away, is on the grid (which runs
# 37-40 samples past either end; Catmull-Rom reads 4 points)
LOOPED_ROWS = 32
DIRECT_LOOP = 1024  # clips shorter than this are read looped by the periodic sinc itself (periodic_values)
_COPY_NODES = 12  # Chebyshev nodes over the clip of the other copies' far share (Copies)
_COPY_BLOCKS = 4096  # at most this many blocks of the low band when a clip's weights are summed
_MOMENT_CHUNK = 2048  # sources at a time of the moments (temporaries of 0.2 MB)
_BLAS_SINGLE_THREAD = 262_144  # OpenBLAS runs a product of m * n * k under this on one thread


@dataclass(frozen=True)
class Copies:
    """A clip's weights at ``K`` Chebyshev nodes ``n_i`` over its samples (:func:`_node_positions`):
    ``W[c, i] = sum_n z[n] l_i(n)``, ``z = (-1)^n x``, ``l_i`` the nodes' Lagrange polynomials, so that
    ``sum_n z[n] f(n) = sum_i W[c, i] f(n_i)`` for ``f`` a polynomial of degree under ``K``, and to
    ``(2.9 + (8.6 - 2 * LOOPED_ROWS) / S)^-K``-ish of ``f``'s size for the other copies' kernel, whose nearest
    pole lies ``S - 34`` samples beyond an end (Chebyshev interpolation of an analytic function)."""

    samples: int
    weights: NDArray[np.float64]  # (C, K)


@functools.cache
def _chebyshev_nodes() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The nodes in ``[-1, 1]`` (first kind) and ``T_k`` at them: ``(K,)``, ``[i, k]``."""
    k = np.arange(_COPY_NODES)
    angles = np.pi * (k + 0.5) / _COPY_NODES
    values: NDArray[np.float64] = np.cos(np.outer(angles, k))
    return np.cos(angles), values


def _node_positions(samples: int) -> NDArray[np.float64]:
    """The Chebyshev nodes over samples ``0..S - 1``."""
    nodes, _ = _chebyshev_nodes()
    positions: NDArray[np.float64] = (nodes + 1.0) * ((samples - 1) / 2)
    return positions


def _chebyshev_moments(
    values: NDArray[np.floating[Any]],
    centres: NDArray[np.float64],
    samples: int,
    slopes: NDArray[np.floating[Any]] | None = None,
) -> NDArray[np.float64]:
    """``sum values T_k(x) + slopes T_k'(x) dx/dn`` per channel, ``x`` the ``centres`` mapped from
    ``0..S - 1`` to ``[-1, 1]``: ``(C, K)``, the moments of sources ``values`` ``(C, N)`` (block sums, with
    their first moments ``slopes``), ``_MOMENT_CHUNK`` sources at a time (small temporaries)."""
    scale = 2.0 / max(samples - 1, 1)
    moments = np.zeros((values.shape[0], _COPY_NODES))
    for begin in range(0, centres.shape[0], _MOMENT_CHUNK):
        x = centres[begin : begin + _MOMENT_CHUNK] * scale - 1.0
        chebyshev = np.empty((_COPY_NODES, x.shape[0]))  # T_k(x)
        chebyshev[0] = 1.0
        chebyshev[1] = x
        for k in range(2, _COPY_NODES):
            np.multiply(2 * x, chebyshev[k - 1], out=chebyshev[k])
            chebyshev[k] -= chebyshev[k - 2]
        moments += values[:, begin : begin + x.shape[0]] @ chebyshev.T
        if slopes is not None:  # T_k' = k U_{k-1}, U_0 = 1, U_1 = 2 x, U_k = 2 x U_{k-1} - U_{k-2}
            second = np.empty((_COPY_NODES, x.shape[0]))  # U_{k-1}(x)
            second[0] = 0.0
            second[1] = 1.0
            for k in range(2, _COPY_NODES):
                np.multiply(2 * x, second[k - 1], out=second[k])
                if k > 2:
                    second[k] -= second[k - 2]
            second *= (scale * np.arange(_COPY_NODES))[:, None]
            moments += slopes[:, begin : begin + x.shape[0]] @ second.T
    return moments


def _node_weights(moments: NDArray[np.float64]) -> NDArray[np.float64]:
    """The weights at the nodes from the moments: ``W_i = (M_0 + 2 sum_k T_k(x_i) M_k) / K``."""
    _, at_nodes = _chebyshev_nodes()
    doubled = 2.0 * moments
    doubled[..., 0] = moments[..., 0]
    weights: NDArray[np.float64] = doubled @ at_nodes.T / _COPY_NODES
    return weights


def _clip_moments(x: NDArray[np.float32], low: NDArray[np.float32], step: int) -> NDArray[np.float64]:
    """The moments of ``z = (-1)^n x`` over a channel, from its decimated low band ``low`` (which
    :meth:`FarField.measure` makes anyway: a quarter of the samples), completed by the few low-band points
    past either end (the filter's spread of the end samples): ``sum_n z[n] f(n) = step sum_j low[j]
    f(step j)`` for ``f`` smooth over the clip, to the filter's stopband and second moment (about
    ``1e-3`` of the highest moments of a 1,024-sample clip, less for longer ones). The low band is summed in
    at most ``_COPY_BLOCKS`` blocks, each acting by its sum and first moment about its centre (the
    second-order rest is under ``2e-4`` of ``sum |low|`` for the highest moment)."""
    samples, count = x.shape[0], low.shape[0]
    taps = _lowpass(step)
    half = taps.shape[0] // 2
    reach = half // step + 1  # low-band points past either end that the end samples reach
    outside = np.concatenate([np.arange(-reach, 0), np.arange(count, count + reach)])
    index = step * outside[:, None] + half - np.arange(taps.shape[0])  # sum_i h[i] z[step j + half - i]
    inside = (index >= 0) & (index < samples)
    near_ends = (
        np.where(inside, x[np.clip(index, 0, samples - 1)] * np.where(index % 2, -1.0, 1.0), 0.0) @ taps
    )
    length = -(-count // _COPY_BLOCKS)
    whole = count // length * length if length > 1 else 0
    blocks = low[:whole].reshape(-1, length)
    offsets = np.arange(length)
    basis = np.stack([np.ones(length), offsets - (length - 1) / 2], axis=1).astype(np.float32)
    sums = np.empty((blocks.shape[0], 2), dtype=np.float32)
    rows = max(1, _BLAS_SINGLE_THREAD // (2 * length))  # products OpenBLAS runs on the calling thread: its
    for begin in range(0, blocks.shape[0], rows):  # threads' spinning after a larger one costs more later
        np.matmul(blocks[begin : begin + rows], basis, out=sums[begin : begin + rows])
    rest = np.arange(whole, count)
    values = step * np.concatenate([sums[:, 0].astype(np.float64), low[whole:].astype(np.float64), near_ends])
    grid = np.concatenate([np.arange(sums.shape[0]) * length + (length - 1) / 2, rest, outside])
    slopes = (
        step * step * np.concatenate([sums[:, 1].astype(np.float64), np.zeros(rest.shape[0] + 2 * reach)])
    )
    moments: NDArray[np.float64] = _chebyshev_moments(values[None], step * grid, samples, slopes[None])[0]
    return moments


def _difference_moments(
    difference: NDArray[np.float32], spans: NDArray[np.int64], samples: int
) -> NDArray[np.float64]:
    """The moments (:func:`_chebyshev_moments`) of ``(-1)^n d[n]`` per channel, ``d`` given at the samples of
    ``spans`` (as :meth:`LimitedFarField.of` takes it), ``_MOMENT_CHUNK`` samples at a time: a limiter's
    difference can be a large share of the clip, and this runs at a limited export's peak (a chunk of
    65,536 raised a 30 s mono clip's traced peak from 3.28x to 3.41x)."""
    offsets = np.concatenate([[0], np.cumsum(spans[:, 1] - spans[:, 0])])
    moments = np.zeros((difference.shape[0], _COPY_NODES))
    for begin in range(0, difference.shape[1], _MOMENT_CHUNK):
        stop = min(begin + _MOMENT_CHUNK, difference.shape[1])
        index = np.arange(begin, stop)
        span = np.searchsorted(offsets, index, side="right") - 1
        where = spans[span, 0] + index - offsets[span]
        signed = difference[:, begin:stop] * np.where(where % 2, np.float32(-1.0), np.float32(1.0))
        moments += _chebyshev_moments(signed, where.astype(np.float64), samples)
    return moments


def _other_copies(lags: NDArray[np.float64], samples: int, after: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``sum_k s^k / (lag - k S)`` over the copies ``k`` but 0 and the neighbour (``k = 1`` where ``after``,
    else ``k = -1``), ``s = (-1)^S``: ``P(lag) - 1 / lag - s / (lag - k S)`` with ``P`` the sum over every
    ``k``, ``(pi / S) cot(pi lag / S)`` for an even ``S`` and ``(pi / S) / sin(pi lag / S)`` for an odd one.
    Evaluated about the nearer of the two removed poles (``P(lag) = s P(lag - k S)``), so that no pole is
    ever subtracted from itself: for lags within ``S / 2 + 40`` of a removed pole."""
    sign = -1.0 if samples % 2 else 1.0
    neighbour = np.where(after, float(samples), -float(samples))
    beside = np.abs(lags - neighbour) < np.abs(lags)
    near = np.where(beside, lags - neighbour, lags)  # the lag from the nearer removed pole
    other = np.where(beside, lags, lags - neighbour)  # and from the other one
    u = np.pi * near / samples
    small = np.abs(u) < 0.25
    safe = np.where(small, 1.0, u)
    square = u * u  # the series by Horner's rule (numpy's powers are a pow() call per element)
    if samples % 2:  # csc u - 1 / u
        direct = 1.0 / np.sin(safe) - 1.0 / safe
        series = u * (1 / 6 + square * (7 / 360 + square * (31 / 15_120 + square * (127 / 604_800))))
    else:  # cot u - 1 / u
        direct = 1.0 / np.tan(safe) - 1.0 / safe
        series = -u * (1 / 3 + square * (1 / 45 + square * (2 / 945 + square * (1 / 4725))))
    rest = np.where(small, series, direct) * (np.pi / samples)  # P(near) - 1 / near
    kernel: NDArray[np.float64] = np.where(beside, sign, 1.0) * rest - np.where(beside, 1.0, sign) / other
    return kernel


def periodic_values(
    x: NDArray[np.float32], samples: Rows, fractions: NDArray[np.float64]
) -> NDArray[np.float32]:
    """The looped (periodic) reconstruction of one channel ``x`` at ``t = samples + fractions``, summed
    directly with the periodic sinc ``sin(pi d) P(d) / pi`` (see :func:`_other_copies`; the Nyquist term of
    an even length split in two, as an FFT upsampler splits it): ``(N, F)``. For short clips."""
    length = x.shape[0]
    t = samples[:, None].astype(np.float64) + fractions[None, :]
    z = np.where(np.arange(length) % 2, -1.0, 1.0) * x
    out = np.empty(t.shape, dtype=np.float32)
    for begin in range(0, t.shape[0], 16):  # a few rows at a time: (rows, F, S) lags
        u = np.pi * (t[begin : begin + 16, :, None] - np.arange(length)) / length
        kernel = 1.0 / np.sin(u) if length % 2 else 1.0 / np.tan(u)
        sums = np.einsum("rfs,s->rf", kernel, z) * (np.pi / length)  # numpy's loops: no BLAS threads
        parity = np.where(samples[begin : begin + 16] % 2, -1.0, 1.0)[:, None]
        out[begin : begin + 16] = sums * parity * (np.sin(np.pi * fractions) / np.pi)[None, :]
    return out
