"""The far kernel as a limited output's far part sums it (:class:`_Kernel`), the pieces of the difference's
sources by their moments, and the clusters of those sources (used by
:class:`musicstore.audio.limited_far.LimitedFarField`)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_PIECE = 32  # sources per piece
_MOMENTS = 6


@dataclass(frozen=True)
class _Kernel:
    """The far kernel as the FFT convolution of :meth:`FarField.measure` applies it (anti-alias passband
    undone), kept only over lags ``-window..window``: ``taps[lag + window + _PIECE]`` (zero ``_PIECE`` lags
    further on either side, where a piece's padding reads). ``beyond[r]`` (``r <= window``) is the largest
    ``|k|`` at any lag with ``|lag| >= r``; beyond the window ``|k|`` is at most ``1 / |lag| + deviation``.
    ``error``: ``deviation``, the largest ``|k - 1 / lag|`` where moments or ``1 / lag`` stand for the
    kernel, plus the moments' truncation (per unit of the pieces' mass); ``near``: grid steps within
    which a piece is summed with the kernel itself (every lag, for short clips whose kernel bends)."""

    taps: NDArray[np.float32]
    beyond: NDArray[np.float32]
    window: int
    deviation: float
    error: float
    near: int

    def share(self, distance: NDArray[np.int64]) -> NDArray[np.float64]:
        """An upper bound of ``|k|`` at every lag of at least ``distance`` steps."""
        inside = self.beyond.astype(np.float64)[np.minimum(distance, self.window)]
        outside = 1.0 / np.maximum(distance, 1) + self.deviation
        return np.where(distance <= self.window, inside, outside)

    def at(self, lags: NDArray[np.int64]) -> NDArray[np.float32]:
        """``k`` at ``lags`` (``1 / lag`` beyond the window, within ``deviation``)."""
        inside = np.abs(lags) <= self.window
        values = np.empty(lags.shape[0], dtype=np.float32)
        values[inside] = self.taps[lags[inside] + self.window + _PIECE]
        values[~inside] = 1.0 / lags[~inside]
        return values


def _moments(pieces: list[NDArray[np.float32]], channels: int) -> NDArray[np.float64]:
    """``sum_m v[m] delta_m^n`` per piece, ``delta`` the source's offset from the piece's centre."""
    if not pieces:
        return np.zeros((channels, 0, _MOMENTS))
    values = np.concatenate(pieces, axis=1)[:, :, ::-1].astype(np.float64)  # (C, Q, piece), in order
    delta = np.arange(_PIECE) - (_PIECE - 1) / 2
    powers = delta[:, None] ** np.arange(_MOMENTS)[None, :]  # (piece, n)
    moments: NDArray[np.float64] = np.einsum("cqm,mn->cqn", values, powers)  # no BLAS threads (see below)
    return moments


@dataclass(frozen=True)
class _Cluster:
    """Sources of the difference's low band on grid points ``first..first + values.shape[1] - 1``."""

    first: int
    values: NDArray[np.float32]  # (C, n)
    mass: float  # the largest over channels of sum |values|


@functools.cache
def _binomials(size: int) -> NDArray[np.float64]:
    """``[a, b]``: ``binom(a, b)`` for ``a, b < size``."""
    table = np.zeros((size, size))
    for a in range(size):
        table[a, : a + 1] = [math.comb(a, b) for b in range(a + 1)]
    return table
