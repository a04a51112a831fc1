"""True-peak metering: the BS.1770-4 Annex 2 4x meter, and an accurate one for the export.

The accurate meter evaluates the ideal (sinc) reconstruction of the clip, zero outside it, exactly split
in two: ``sinc = sinc * w + sinc * (1 - w)`` with ``w`` a window flat over 8 samples that tapers to 0
at 24. The near part is a 48-tap FIR per position. The far part is ``sin(pi t) / pi * G(t)`` with
``G = z * (1 - w(d)) / d`` and ``z[n] = (-1)^n x[n]``: a smooth, low-pass function of ``t`` (it carries
the content next to Nyquist, whose reconstruction reaches far), computed once per clip on a grid of 4
samples by FFT and interpolated. Values are taken on a grid of 8 positions per sample; a band-limited
peak between grid points exceeds the grid by at most ``(pi / 16)^2 / 2`` of itself (Bernstein), which
callers add as a margin or remove by refining.

Every interpolated near value is a short FIR of its neighbours, so ``|y| <= max|x| * max_p sum|h_p|``.
Interpolation is skipped wherever that bound (plus the far part) stays below the level of interest, then
where finer bounds do (see :func:`peak_map`); the rows left are gathered into small matrix products.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import fft as sp_fft
from scipy.ndimage import maximum_filter1d
from scipy.signal import firwin, oaconvolve, upfirdn

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

Rows = NDArray[np.integer[Any]]  # row indices, int32 or int64
BLOCK = 32  # samples per block when deciding where to interpolate (≥ the reach of every filter)
GRID = 8  # positions per sample of the accurate meter
GRID_FACTOR = 1.0 - (math.pi / (2 * GRID)) ** 2 / 2  # grid reading ≥ this share of a peak (Bernstein)
_NEAR_FLAT = 8  # the split window w is 1 up to here (samples) ...
_NEAR_REACH = 24  # ... and 0 from here
_DECIMATION = 4  # grid step of the far part, in samples
_LOWPASS_TAPS = 8  # per grid step, each side, of the far part's anti-alias filter
_SUPPORT = BLOCK // 2 // _DECIMATION + 3  # grid points either side of a block's centre that reach its rows
_FINE = 64  # positions per sample when refining a peak
_SCREEN = 4  # positions per sample of the second screen
_SCREEN_BERNSTEIN = (math.pi / (2 * _SCREEN)) ** 2 / 2
# a quarter-grid reading below the level by this share of the quarter grid's peak cannot hide a value
# above it; 1e-3 more for the float32 arithmetic and the far part's interpolation
_SCREEN_SLACK = _SCREEN_BERNSTEIN / (1 - _SCREEN_BERNSTEIN) + 1e-3
_CHUNK_ROWS = 8192
_BLAS_SINGLE_THREAD = 262_144  # OpenBLAS runs a product of m * n * k under this on one thread


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
        start = -(_NEAR_REACH // step) - 4
        stop = (samples + _NEAR_REACH) // step + 4
        first_lag = start - count + 1  # the kernel covers lags first_lag..stop (in grid steps)
        size = sp_fft.next_fast_len(count + stop - first_lag, real=True)
        kernel = _far_spectrum(first_lag, stop, step, size)
        grid = np.empty((channels, stop - start + 1), dtype=np.float32)
        for c in range(channels):  # one channel at a time, in float32: each FFT buffer is a quarter clip
            spectrum = sp_fft.rfft(_decimated_low_band(audio[c], count, step), size)
            spectrum *= kernel
            grid[c] = sp_fft.irfft(spectrum, size)[count - 1 : count + stop - start]
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
        magnitude = maximum_filter1d(np.abs(self.grid).max(axis=0), 2 * _SUPPORT + 1, mode="nearest")
        centres = np.arange(blocks) * (BLOCK // self.step) + (BLOCK // self.step) // 2 - self.start
        bound: NDArray[np.float32] = (
            magnitude[np.clip(centres, 0, magnitude.shape[0] - 1)] * (1.25 / np.pi)
        ).astype(np.float32)  # Catmull-Rom stays within 1.25x its points
        ends = [0, max(blocks - 2, 0), blocks - 1]  # the looped reading adds the other end's far part
        bound[ends] = 2 * bound[ends].max()
        return bound


def far_kernel(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(1 - w(d)) / d``: the far kernel acting on ``z`` (zero within the flat part of ``w``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel: NDArray[np.float64] = np.where(np.abs(d) <= _NEAR_FLAT, 0.0, (1.0 - split_window(d)) / d)
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
    """The FFT of :func:`_far_taps`, kept for the next clip of the same length (and its re-checks)."""
    spectrum: NDArray[np.complex64] = sp_fft.rfft(_far_taps(first, last, step), size)
    spectrum.flags.writeable = False
    return spectrum


def _far_taps(first: int, last: int, step: int) -> NDArray[np.float32]:
    """``step * far_kernel(lag * step)`` for lags ``first..last``, in one float32 array."""
    lags = np.arange(first, last + 1, dtype=np.float32)
    with np.errstate(divide="ignore"):
        taps = np.float32(1.0) / lags  # step * 1 / (lag * step); the taper's few lags are set below
    taper = np.arange(-(_NEAR_REACH // step), _NEAR_REACH // step + 1)
    inside = taper - first
    keep = (inside >= 0) & (inside < taps.shape[0])
    taps[inside[keep]] = step * far_kernel((taper[keep] * step).astype(np.float64))
    return taps


def _decimated_low_band(x: NDArray[np.float32], count: int, step: int) -> NDArray[np.float32]:
    """``z = (-1)^n x`` low-passed (cut-off at the grid's Nyquist) at every ``step``-th sample.

    The sign is folded into the filter (``step`` is even), so no modulated copy of the clip is made;
    ``upfirdn`` computes only the kept outputs.
    """
    half = _LOWPASS_TAPS * step
    taps = firwin(2 * half + 1, 1.0 / step) * np.where(np.arange(2 * half + 1) % 2, -1.0, 1.0)
    low: NDArray[np.float32] = upfirdn(taps.astype(np.float32), x, 1, step)[
        half // step : half // step + count
    ]
    return low


def split_window(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """``w``: 1 up to 8 samples, a raised-cosine taper, 0 from 24."""
    a = np.abs(d)
    taper = 0.5 + 0.5 * np.cos(
        np.pi * (np.clip(a, _NEAR_FLAT, _NEAR_REACH) - _NEAR_FLAT) / (_NEAR_REACH - _NEAR_FLAT)
    )
    window: NDArray[np.float64] = np.where(a <= _NEAR_FLAT, 1.0, taper)
    return window


@dataclass(frozen=True)
class Interpolator:
    """Polyphase interpolators as one matrix: row ``m`` of the output holds the values between
    samples ``m - 1`` and ``m`` of the input (``m`` runs over ``0..S``)."""

    matrix: NDArray[np.float32]  # (window, columns)
    first_offset: int  # offset of the window's first tap from sample m - 1
    groups: tuple[slice, ...]  # columns of each filter
    bound: float  # max over columns of sum |taps|: |y| <= bound * max |x| over the window
    fractions: NDArray[np.float64] | None = None  # position of each column after sample m - 1 (far part)

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
        offsets = np.arange(1 - _NEAR_REACH, _NEAR_REACH + 1)  # sample m - 1 + o; |f - o| < 24
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
        inside = np.zeros((len(self.groups), int(inner.sum())), dtype=np.float32)
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
        step = max(16, _BLAS_SINGLE_THREAD // (width * columns))
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
                    np.matmul(block[k : k + step], self.matrix, out=part[k : k + step])
                part += self._far(far, c, rows[begin:end])
                np.abs(part, out=part)
                for g, cols in enumerate(self.groups):
                    for j in range(cols.start, cols.stop):
                        np.maximum(target[g], part[:, j], out=target[g])

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
                values = np.abs(windows @ self.matrix + far_values)  # (rows, columns)
                for g, cols in enumerate(self.groups):
                    np.maximum(edges[g], values[:, cols].max(axis=1), out=edges[g])
        return edges


@functools.cache
def annex2() -> Interpolator:
    """The BS.1770-4 Annex 2 4x meter."""
    return Interpolator.from_phases((np.asarray(_ANNEX2_PHASES),))


@functools.cache
def near_sinc(positions: int = GRID) -> Interpolator:
    """The accurate meter's near part on a grid of ``positions`` per sample (see the module docstring)."""
    return Interpolator.near_sinc(positions)


def sample_envelope(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    """Largest |sample| over channels, per sample: ``(S,)``."""
    envelope: NDArray[np.float32] = np.abs(audio[0])
    for channel in audio[1:]:
        np.maximum(envelope, np.abs(channel), out=envelope)
    return envelope


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


@dataclass(frozen=True)
class PeakMap:
    """Where a clip's true peaks can be: its sample envelope and the accurate meter's grid values (at
    least the Annex 2 4x ones) wherever they may exceed the sample peak or a lower floor (every other
    row is below both)."""

    envelope: NDArray[np.float32]
    rows: Rows
    values: NDArray[
        np.float32
    ]  # detector value at ``rows``: the larger of the accurate grid and Annex 2 ones
    ideal: NDArray[np.float32]  # the accurate grid's value at ``rows``
    floor: float  # every detector value outside ``rows`` is at most this
    far: FarField

    @property
    def sample_peak(self) -> float:
        """Largest |sample| (linear)."""
        return float(self.envelope.max())

    @property
    def grid_peak(self) -> float:
        """Largest detector value (linear), at least the sample peak and ``GRID_FACTOR`` of the true peak."""
        return max(self.sample_peak, float(self.values.max(initial=0.0)))


def detect(
    audio: NDArray[np.float32], rows: Rows, far: FarField
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The detector at ``rows`` (the larger of the accurate grid value and the Annex 2 4x one, so that
    neither meter reads above what the detector saw), and the accurate grid value alone."""
    ideal = near_sinc().peaks(audio, rows, far)[:, 0]
    return np.maximum(ideal, annex2().peaks(audio, rows)[:, 0]), ideal


@functools.cache
def _screen() -> Interpolator:
    """The near part at quarter samples and the Annex 2 meter in one matrix (one gather per row)."""
    quarter, meter = near_sinc(_SCREEN), annex2()
    matrix = np.zeros((quarter.matrix.shape[0], quarter.matrix.shape[1] + meter.matrix.shape[1]), np.float32)
    matrix[:, : quarter.matrix.shape[1]] = quarter.matrix
    at = meter.first_offset - quarter.first_offset
    matrix[at : at + meter.matrix.shape[0], quarter.matrix.shape[1] :] = meter.matrix
    groups = (slice(0, quarter.matrix.shape[1]), slice(quarter.matrix.shape[1], matrix.shape[1]))
    return Interpolator(matrix, quarter.first_offset, groups, max(quarter.bound, meter.bound))


@functools.cache
def _tap_bounds() -> tuple[NDArray[np.float32], int]:
    """Largest |tap| at each offset over every column of the near part and the Annex 2 meter, and the
    first offset (from sample ``m - 1``)."""
    meters = (near_sinc(), annex2())
    first = min(m.first_offset for m in meters)
    last = max(m.first_offset + m.matrix.shape[0] for m in meters)
    taps = np.zeros(last - first, dtype=np.float32)
    for m in meters:
        part = taps[m.first_offset - first : m.first_offset - first + m.matrix.shape[0]]
        np.maximum(part, np.abs(m.matrix).max(axis=1), out=part)
    return taps, first


def _near_bounds(envelope: NDArray[np.float32], rows: Rows) -> NDArray[np.float32]:
    """An upper bound of the near part and the Annex 2 values at ``rows``: ``sum_o max|h_o| |x[m - 1 + o]|``
    (one FFT correlation of the sample envelope), with room for its rounding."""
    taps, first = _tap_bounds()
    full = oaconvolve(envelope, taps[::-1], mode="full")  # full[n] = sum_i taps[i] env[n - len + 1 + i]
    index = rows - 1 + first + taps.shape[0] - 1
    bound = np.zeros(rows.shape[0], dtype=np.float32)
    inside = (index >= 0) & (index < full.shape[0])
    bound[inside] = full[index[inside]]
    bound += np.float32(1e-4 * float(envelope.max(initial=0.0)))
    return bound


def peak_map(audio: NDArray[np.float32], floor: float | None = None, far: FarField | None = None) -> PeakMap:
    """Measure ``(C, S)`` audio with the detector, interpolating only where it can matter:
    where a value may exceed the sample peak, or ``floor`` when that is lower. ``far``: the clip's
    far part when already measured.

    Screens, cheapest first: the filter bound per block (see :func:`candidate_rows`), a bound per row
    (:func:`_near_bounds` plus the far part's), then on the rows left the Annex 2 values and a bound of
    the reconstruction at quarter samples (its near part, 3 of the 7 grid columns, plus the far part's
    bound). Between a sample pair, the reconstruction's largest |value| is a sample or a turning point
    within 1/8 sample of a quarter point, so it exceeds that point by at most ``(pi / 8)^2 / 2`` of the
    clip's true peak (Bernstein), itself at most the quarter grid's peak over ``1 - (pi / 8)^2 / 2``.
    Only rows where this can exceed the level get the full grid.
    """
    far = FarField.measure(audio) if far is None else far
    envelope = sample_envelope(audio)
    level = float(envelope.max()) if floor is None else min(float(envelope.max()), floor)
    bound = max(near_sinc().bound, annex2().bound)
    rows = candidate_rows(envelope, level, bound, far)
    far_bound = far.block_bound(-(-(envelope.shape[0] + 1) // BLOCK))[rows // BLOCK]
    keep = _near_bounds(envelope, rows) + far_bound > level
    rows, far_bound = rows[keep], far_bound[keep]
    screened = _screen().peaks(audio, rows)
    quarter = screened[:, 0] + far_bound  # ≥ |reconstruction| there
    annex = screened[:, 1]
    samples = envelope.shape[0]
    padded = np.zeros(samples + 2, dtype=np.float32)
    padded[1:-1] = envelope
    local = np.maximum(quarter, np.maximum(padded[rows], padded[rows + 1]))  # samples m - 1 and m
    grid_peak = max(float(envelope.max()), float(quarter.max(initial=0.0)))
    threshold = level - _SCREEN_SLACK * grid_peak
    edge = (rows < 2 * BLOCK) | (rows > samples - 2 * BLOCK)  # looped readings there: always measured
    keep = (local > threshold) | (annex > level) | edge
    rows, annex = rows[keep], annex[keep]
    ideal = near_sinc().peaks(audio, rows, far)[:, 0]
    return PeakMap(envelope, rows, np.maximum(ideal, annex), ideal, level, far)


def refined_peak(audio: NDArray[np.float32], peaks: PeakMap) -> float:
    """The ideal reconstruction's true peak (linear): the grid's best rows re-measured 64 times per sample.

    Exact to within the meter's error (see docs/export.md) and ``(pi / 128)^2 / 2`` for the fine grid.
    """
    best = max(peaks.sample_peak, float(peaks.ideal.max(initial=0.0)))
    rows = peaks.rows[peaks.ideal >= best * GRID_FACTOR]
    fine = near_sinc(_FINE).peaks(audio, rows, peaks.far)[:, 0]
    return max(peaks.sample_peak, float(fine.max(initial=0.0)))


def true_peak(audio: NDArray[np.float32]) -> float:
    """True peak (linear, ≥ the sample peak) of ``(C, S)`` audio by the ideal (sinc) reconstruction, zero
    outside the clip (at the ends, the larger of that and the looped reading)."""
    return refined_peak(audio, peak_map(audio))


def annex2_true_peak(audio: NDArray[np.float32]) -> float:
    """True peak (linear, ≥ the sample peak) of ``(C, S)`` audio with the BS.1770-4 Annex 2 4x meter."""
    meter = annex2()
    envelope = sample_envelope(audio)
    level = float(envelope.max())
    rows = candidate_rows(envelope, level, meter.bound)
    return max(level, float(meter.peaks(audio, rows)[:, 0].max(initial=0.0)))


def to_db(linear: float) -> float:
    """Amplitude ratio in dB (``-inf`` for 0)."""
    return 20.0 * math.log10(linear) if linear > 0 else float("-inf")


def from_db(db: float) -> float:
    """dB to amplitude ratio."""
    return float(10.0 ** (db / 20.0))
