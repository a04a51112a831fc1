"""Polyphase interpolators as matrix products: the BS.1770-4 Annex 2 4x meter and the near part of the
ideal reconstruction (see :mod:`musicstore.audio.farfield` for the split).

Every interpolated near value is a short FIR of its neighbours, so ``|y| <= max|x| * max_p sum|h_p|``; the
rows a caller asks for are gathered into small matrix products.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from musicstore.audio.farfield import NEAR_REACH, FarField, Rows, split_window

# BS.1770-4 Annex 2, 4x oversampling, 48 taps as 4 phases of 12: phase p, tap k is h[4k + p].
_ANNEX2_PHASES = (
    (0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
     0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500),
    (-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
     0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375),
    (-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125, 0.7797851562500,
     0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875),
    (-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750, 0.9721679687500,
     0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750),
)  # fmt: skip

GRID = 8  # positions per sample of the accurate meter
_CHUNK_ROWS = 8192
_BLAS_SINGLE_THREAD = 262_144  # OpenBLAS runs a product of m * n * k under this on one thread


@dataclass(frozen=True)
class Interpolator:
    """Polyphase interpolators as one matrix: row ``m`` of the output holds the values between
    samples ``m - 1`` and ``m`` of the input (``m`` runs over ``0..S``)."""

    matrix: NDArray[np.float32]  # (window, columns)
    first_offset: int  # offset of the window's first tap from sample m - 1
    groups: tuple[slice, ...]  # columns of each filter
    bound: float  # max over columns of sum |taps|: |y| <= bound * max |x| over the window
    fractions: NDArray[np.float64] | None = None  # position of each column after sample m - 1 (far part)
    row_exact: bool = False  # a row's values do not depend on the rows read with it (see _product)

    @classmethod
    def from_phases(cls, filters: tuple[NDArray[np.float64], ...]) -> Interpolator:
        """Build from filters given as ``(up, taps)`` phase arrays (phase p, tap k = h[up * k + p])."""
        placed: list[dict[int, float]] = []
        groups = []
        for phases in filters:
            up, taps = phases.shape
            delay = (up * taps - 1) / 2
            start = len(placed)
            for p in range(up):
                lead = math.ceil((delay - p) / up)  # y_p[m + lead] lies between samples m and m + 1
                placed.append({lead - k: float(phases[p, k]) for k in range(taps)})
            groups.append(slice(start, len(placed)))
        lo = min(min(col) for col in placed)
        hi = max(max(col) for col in placed)
        matrix = np.zeros((hi - lo + 1, len(placed)), dtype=np.float32)
        for j, col in enumerate(placed):
            for offset, value in col.items():
                matrix[offset - lo, j] = value
        bound = float(np.abs(matrix).sum(axis=0).max())
        return cls(matrix, lo, tuple(groups), bound)

    @classmethod
    def near_sinc(cls, positions: int) -> Interpolator:
        """The near part of the ideal reconstruction at ``k / positions`` after each sample (k ≥ 1)."""
        fractions = np.arange(1, positions) / positions
        offsets = np.arange(1 - NEAR_REACH, NEAR_REACH + 1)  # sample m - 1 + o; |f - o| < 24
        d = fractions[None, :] - offsets[:, None]
        matrix = (np.sinc(d) * split_window(d)).astype(np.float32)
        bound = float(np.abs(matrix).sum(axis=0).max())
        return cls(matrix, int(offsets[0]), (slice(0, fractions.shape[0]),), bound, fractions)

    def peaks(
        self, audio: NDArray[np.float32], rows: Rows, far: FarField | None = None
    ) -> NDArray[np.float32]:
        """Largest |interpolated value| over channels for each filter group at each row: ``(R, groups)``.

        With ``far`` (and ``fractions``), the far part is added before taking magnitudes.
        """
        window = self.matrix.shape[0]
        left = 1 - self.first_offset  # row m's window starts at sample m - left
        samples = audio.shape[1]
        out = np.zeros((len(self.groups), rows.shape[0]), dtype=np.float32)
        inner = (rows >= left) & (rows - left + window <= samples)
        if inner.all():
            self._fill(audio, rows, out, far)
            return out.T
        count, first = int(inner.sum()), int(inner.argmax())
        if inner[first : first + count].all():  # sorted rows: the inner ones are a run, filled in place
            self._fill(audio, rows[first : first + count], out[:, first : first + count], far)
            out[:, ~inner] = self._edges(audio, rows[~inner], far)
            return out.T
        inside = np.zeros((len(self.groups), count), dtype=np.float32)
        self._fill(audio, rows[inner], inside, far)
        out[:, inner] = inside
        out[:, ~inner] = self._edges(audio, rows[~inner], far)
        return out.T

    def _far(
        self, far: FarField | None, channel: int, rows: Rows, shift: Rows | int = 0
    ) -> NDArray[np.float32] | float:
        """The far part at each column's position after sample ``rows - 1``, moved by ``shift`` samples."""
        if far is None or self.fractions is None:
            return 0.0
        return far.at(channel, np.asarray(rows - 1 + shift, dtype=np.intp), self.fractions)

    def _fill(
        self, audio: NDArray[np.float32], rows: Rows, out: NDArray[np.float32], far: FarField | None
    ) -> None:
        """Windows fully inside the clip, gathered in chunks, each a few BLAS products per channel (kept
        small enough that OpenBLAS runs them on the calling thread: its threads cost more than they save
        on such thin products, many times more on a busy machine)."""
        if rows.size == 0:
            return
        starts = rows - (1 - self.first_offset)
        width, columns = self.matrix.shape
        windows = sliding_window_view(audio, width, axis=-1)
        contiguous = int(starts[-1]) - int(starts[0]) + 1 == starts.size
        step = (
            _product_rows(self.matrix) if self.row_exact else max(16, _BLAS_SINGLE_THREAD // self.matrix.size)
        )
        values = np.empty((min(_CHUNK_ROWS, starts.shape[0]), columns), dtype=np.float32)
        for begin in range(0, starts.shape[0], _CHUNK_ROWS):
            end = min(begin + _CHUNK_ROWS, starts.shape[0])
            target = out[:, begin:end]
            part = values[: end - begin]
            for c, channel in enumerate(windows):
                first = int(starts[begin])
                block = (
                    np.ascontiguousarray(channel[first : first + end - begin])
                    if contiguous
                    else channel[starts[begin:end]]
                )
                for k in range(0, end - begin, step):
                    _product(block[k : k + step], self.matrix, part[k : k + step], self.row_exact)
                part += self._far(far, c, rows[begin:end])
                np.abs(part, out=part)
                for g, cols in enumerate(self.groups):
                    for j in range(cols.start, cols.stop):
                        np.maximum(target[g], part[:, j], out=target[g])
                del block  # not alive beside the next gather (3 MB together, at a limited output's check)

    def _edges(self, audio: NDArray[np.float32], rows: Rows, far: FarField | None) -> NDArray[np.float32]:
        """The few windows that run past either end: zero-padded there, and also as a periodic meter
        reads them (the clip looped: its copy one length away added), the larger reading kept."""
        samples = audio.shape[1]
        index = rows[:, None] - (1 - self.first_offset) + np.arange(self.matrix.shape[0])
        valid = (index >= 0) & (index < samples)
        wrapped = index % samples
        copy = np.where(rows < samples // 2, samples, -samples)  # where the neighbouring copy's far part is
        edges = np.zeros((len(self.groups), rows.shape[0]), dtype=np.float32)
        for c, channel in enumerate(audio):
            far_part = self._far(far, c, rows)
            readings = (
                (np.where(valid, channel[wrapped], np.float32(0.0)), far_part),
                (channel[wrapped], far_part + self._far(far, c, rows, copy)),
            )
            for windows, far_values in readings:
                values = np.empty((rows.shape[0], self.matrix.shape[1]), dtype=np.float32)
                _product(windows, self.matrix, values, self.row_exact)
                values += far_values
                np.abs(values, out=values)  # (rows, columns)
                for g, cols in enumerate(self.groups):
                    np.maximum(edges[g], values[:, cols].max(axis=1), out=edges[g])
        return edges


def _product_rows(matrix: NDArray[np.float32]) -> int:
    """Rows of each product with ``matrix``: a multiple of 64 under OpenBLAS's one-thread size."""
    return max(64, _BLAS_SINGLE_THREAD // matrix.size // 64 * 64)


def _product(
    windows: NDArray[np.float32], matrix: NDArray[np.float32], out: NDArray[np.float32], row_exact: bool
) -> None:
    """``out[:] = windows @ matrix``; ``row_exact``: a row's values do not depend on the rows read with it.

    OpenBLAS picks its kernel by the product's size (on an AVX-512 Xeon, measured: one row, 2-3 rows, 4 to
    ~3,000 rows and more each round a row's sums differently), so a row-exact product is always taken
    ``_product_rows`` rows at a time, the last block padded with zeros: one size, one kernel, and each row
    the same at every place in the block (checked there at every offset)."""
    if not row_exact:
        np.matmul(windows, matrix, out=out)
        return
    rows = _product_rows(matrix)
    count = windows.shape[0]
    whole = count - count % rows
    for begin in range(0, whole, rows):
        np.matmul(windows[begin : begin + rows], matrix, out=out[begin : begin + rows])
    if whole < count:
        padded = np.zeros((rows, windows.shape[1]), dtype=np.float32)
        padded[: count - whole] = windows[whole:]
        out[whole:] = np.matmul(padded, matrix)[: count - whole]


@functools.cache
def annex2() -> Interpolator:
    """The BS.1770-4 Annex 2 4x meter."""
    return Interpolator.from_phases((np.asarray(_ANNEX2_PHASES),))


@functools.cache
def near_sinc(positions: int = GRID) -> Interpolator:
    """The accurate meter's near part on a grid of ``positions`` per sample (see the module docstring)."""
    return Interpolator.near_sinc(positions)
