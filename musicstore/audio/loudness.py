"""Loudness per ITU-R BS.1770-4 (integrated) and EBU Tech 3342 (loudness range).

The K-weighting filters are pyloudnorm's (``pyloudnorm.iirfilter.IIRfilter``); the gating reproduces
``pyloudnorm.Meter.integrated_loudness`` block for block (the tests check both agree), vectorised so that
the per-sample weighted power can be kept and re-gated after a gain change without filtering again.
Beyond pyloudnorm it measures clips shorter than one 400 ms block (over the whole clip, flagged) and
6–8 channels (each weighted 1.0: layouts are not guessed). Mono is measured as one channel, not as
dual mono, as BS.1770 is written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pyloudnorm.iirfilter import IIRfilter
from scipy.signal import sosfilt

from musicstore.audio.arrays import as_audio, check_sample_rate
from musicstore.audio.threads import beside, joined

BLOCK_SECONDS = 0.4
BLOCK_OVERLAP = 0.75
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
_OFFSET = -0.691
_BS1770_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs (pyloudnorm's order)

LRA_WINDOW_SECONDS = 3.0
LRA_HOP_SECONDS = 0.1
LRA_RELATIVE_GATE_LU = -20.0

Float64 = NDArray[np.float64]
_CHUNK = 1 << 16


@functools.cache
def _k_weighting_sos(sample_rate: int) -> Float64:
    stages = (
        IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass"),
    )
    return np.asarray([np.concatenate([f.b * f.passband_gain, f.a]) for f in stages], dtype=np.float64)


def channel_weights(channels: int) -> Float64:
    """BS.1770 channel weights for L, R, C, Ls, Rs; 1.0 each beyond five channels."""
    if channels <= len(_BS1770_WEIGHTS):
        return np.asarray(_BS1770_WEIGHTS[:channels], dtype=np.float64)
    return np.ones(channels, dtype=np.float64)


def _power_chunks(
    audio: NDArray[np.float32], sample_rate: int, states: Float64 | None = None
) -> Iterator[tuple[int, Float64]]:
    """Per-sample K-weighted power (channels weighted and summed), a chunk at a time, filter state carried
    (``states``: each chunk's state at its start is stored there)."""
    sos = _k_weighting_sos(sample_rate)
    channels, samples = audio.shape
    weights = channel_weights(channels).tolist()
    state = np.zeros((sos.shape[0], channels, 2))
    for start in range(0, samples, _CHUNK):
        if states is not None:
            states[start // _CHUNK] = state
        power, state = _chunk_power(sos, audio[:, start : start + _CHUNK], state, weights)
        yield start, power


def _chunk_power(
    sos: Float64, chunk: NDArray[np.float32], state: Float64, weights: list[float]
) -> tuple[Float64, Float64]:
    """The weighted power of ``chunk`` filtered from ``state``, and the state after it (all channels in one
    call: one validation, one conversion)."""
    filtered, state = sosfilt(sos, chunk, axis=-1, zi=state)
    np.square(filtered, out=filtered)
    return _weighted_sum(filtered, weights), state


def _weighted_sum(rows: Float64, weights: list[float]) -> Float64:
    """``weights @ rows``, a row at a time in numpy's loops: the BLAS product (a gemv) woke OpenBLAS's
    threads, which cost 3-4 times the CPU time of the loops (measured on the 2-core machine: 9.3 ms
    against 2.5 ms for 15 stereo chunks of 65,536 samples); a weight of 1 is added without a product (as
    the BLAS product rounds it)."""
    total: Float64 = rows[0] * weights[0] if weights[0] != 1.0 else rows[0]  # rows are the caller's to spend
    for row, weight in zip(rows[1:], weights[1:], strict=True):
        if weight == 1.0:
            total += row
        else:
            total += row * weight
    return total


def _cumulative_at(
    chunks: Iterator[tuple[int, Float64]],
    positions: NDArray[np.int64],
    keep: NDArray[np.float32] | None = None,
) -> Float64:
    """Running sums of the power up to each of the sorted, distinct ``positions`` (``keep``: also store the
    power there): per chunk, the sums of the pieces between the positions (one ``np.add.reduceat``, a pass
    over the chunk; a running sum of every sample took 7 times as long) added up in order."""
    picked = np.zeros(positions.shape[0])
    offset = 0.0
    for start, power in chunks:
        n = power.shape[0]
        if keep is not None:
            keep[start : start + n] = power
        inside = (positions > start) & (positions <= start + n)
        local = positions[inside] - start  # sums of power[:local] wanted, 0 < local <= n
        cuts = np.concatenate([[0], local[local < n]])
        running = np.cumsum(np.add.reduceat(power, cuts))  # [k]: the sum up to cuts[k + 1] (or n)
        running += offset
        picked[inside] = running[: local.shape[0]]
        offset = float(running[-1])
    return picked


def _block_layout(samples: int, sample_rate: int) -> tuple[NDArray[np.int64], NDArray[np.int64], float, bool]:
    """Gating blocks as pyloudnorm lays them out: starts, stops, divisor, and whether the clip is short."""
    if samples < BLOCK_SECONDS * sample_rate:
        return np.array([0]), np.array([samples]), float(samples), True
    step = 1.0 - BLOCK_OVERLAP
    count = int(np.round((samples / sample_rate - BLOCK_SECONDS) / (BLOCK_SECONDS * step))) + 1
    j = np.arange(count)
    starts = (BLOCK_SECONDS * (j * step) * sample_rate).astype(np.int64)
    stops = np.minimum((BLOCK_SECONDS * (j * step + 1) * sample_rate).astype(np.int64), samples)
    return starts, stops, BLOCK_SECONDS * sample_rate, False


def _to_lufs(mean_power: Float64 | float) -> Float64:
    with np.errstate(divide="ignore"):
        return np.asarray(_OFFSET + 10.0 * np.log10(mean_power))


@dataclass(frozen=True)
class BlockPower:
    """A clip's per-sample K-weighted power and the mean power of its 400 ms gating blocks."""

    power: NDArray[np.float32] | None  # per sample, channels weighted and summed, (S,); None: not held
    sample_rate: int
    starts: NDArray[np.int64]
    stops: NDArray[np.int64]
    means: Float64  # mean power of each block
    block_length: float  # samples a block's sum is divided by
    short: bool  # the clip is shorter than one block and was measured as a whole
    states: Float64  # the K-weighting filters' state at each chunk's start (:meth:`power_at`)

    @classmethod
    def measure(cls, audio: NDArray[np.float32], sample_rate: int, *, keep_power: bool = True) -> BlockPower:
        """K-weight ``audio`` ``(C, S)`` and measure its gating blocks as pyloudnorm lays them out;
        ``keep_power=False``: the per-sample power is not held (4 bytes a sample: 1.0x a mono clip), only
        the filters' state per chunk, from which :meth:`power_at` makes it again."""
        starts, stops, length, short = _block_layout(audio.shape[1], sample_rate)
        power = np.empty(audio.shape[1], dtype=np.float32) if keep_power else None
        chunks = -(-audio.shape[1] // _CHUNK)
        states = np.empty((chunks, _k_weighting_sos(sample_rate).shape[0], audio.shape[0], 2))
        means = _block_means(_power_chunks(audio, sample_rate, states), starts, stops, length, power)
        return cls(power, sample_rate, starts, stops, means, length, short, states)

    def block_means(self) -> Float64:
        """Mean weighted power of each block."""
        return self.means

    def loudness(self, exponent: int = 0) -> float:
        """Integrated loudness (LUFS) of ``2**exponent`` times the measured clip: a clip far out of range is
        measured scaled down (:func:`~musicstore.audio.truepeak.range_exponent`), its block powers (float64)
        scaled back before the gates."""
        return gated_loudness(self.means if exponent == 0 else np.ldexp(self.means, 2 * exponent))

    def power_at(self, audio: NDArray[np.float32], positions: NDArray[np.integer]) -> NDArray[np.float32]:
        """The power (as :attr:`power` holds it) at sorted ``positions`` of the measured ``audio``: read from
        :attr:`power` where it is held, else filtered again from the saved states, only the chunks that
        hold a position and each up to its last one (the same values: the filters run sample by sample)."""
        if self.power is not None:
            held: NDArray[np.float32] = self.power[positions]
            return held
        picked = np.empty(positions.shape[0], dtype=np.float32)
        edges = np.searchsorted(positions, np.arange(self.states.shape[0] + 1) * _CHUNK).tolist()
        chunks = [k for k in range(self.states.shape[0]) if edges[k] < edges[k + 1]]
        # each chunk starts from its own saved state: half of them on another thread (a limited stereo
        # clip's region, 30 s at 32 kHz: 8 ms of filtering, 4.5 ms sooner)
        half = len(chunks) // 2
        here = functools.partial(self._power_into, audio, positions, edges, chunks[half:], picked)
        if half:
            joined(here, beside(self._power_into, audio, positions, edges, chunks[:half], picked))
        else:
            here()
        return picked

    def _power_into(
        self,
        audio: NDArray[np.float32],
        positions: NDArray[np.integer],
        edges: list[int],
        chunks: list[int],
        picked: NDArray[np.float32],
    ) -> None:
        """:meth:`power_at`'s values of the positions in ``chunks`` (``edges``: each chunk's first position),
        into ``picked``."""
        sos = _k_weighting_sos(self.sample_rate)
        weights = channel_weights(audio.shape[0]).tolist()
        for k in chunks:
            lo, hi = edges[k], edges[k + 1]
            start = k * _CHUNK
            part = audio[:, start : int(positions[hi - 1]) + 1]
            power, _ = _chunk_power(sos, part, self.states[k], weights)
            picked[lo:hi] = power[positions[lo:hi] - start]

    def block_sums_at(self, positions: NDArray[np.intp], values: Callable[[int, int], Float64]) -> Float64:
        """Per-block sums of the values at sorted sample ``positions``, divided like block means: the running
        sums (a value at a time, as ``np.cumsum`` adds them) at each block's ends. ``values(a, b)``: those at
        ``positions[a:b]``, asked a chunk at a time (no float64 array of the positions' length: memory)."""
        lo = np.searchsorted(positions, self.starts)
        hi = np.searchsorted(positions, self.stops)
        ends = np.concatenate([lo, hi])
        running = np.zeros(ends.shape[0])  # the sum of the first k values at each end k
        carry = 0.0
        for a in range(0, positions.shape[0], _CHUNK):
            b = min(a + _CHUNK, positions.shape[0])
            run = np.empty(b - a + 1)
            run[0], run[1:] = carry, values(a, b)
            np.cumsum(run, out=run)  # run[j]: the sum of the first a + j values
            inside = (ends >= a) & (ends <= b)
            running[inside] = run[ends[inside] - a]
            carry = float(run[-1])
        sums: Float64 = (running[lo.shape[0] :] - running[: lo.shape[0]]) / self.block_length
        return sums


@functools.cache
def _settle(sample_rate: int) -> int:
    """Samples after which the K-weighting filters' response to a past input is below 1e-10 of it (their
    poles' decay, with room for the repeated pole's ``n r^n``)."""
    sos = _k_weighting_sos(sample_rate)
    radius = max(float(np.abs(np.roots(section[3:])).max()) for section in sos)
    return int(np.ceil(1.3 * np.log(1e-10) / np.log(radius))) + 64


def changed_block_means(
    blocks: BlockPower,
    gain: float,
    x: NDArray[np.float32],
    out: NDArray[np.float32],
    spans: NDArray[np.int64],
) -> Float64 | None:
    """Block means of ``out``, which equals ``gain * x`` except within ``spans`` (``(n, 2)`` sorted sample
    ranges ``[a, b)``), from ``x``'s block means: the K-weighting is linear and causal, so ``out``'s
    weighted signal is ``gain K(x) - K(d)`` with ``d = gain x - out`` zero before each span, and its power
    differs from ``gain^2`` times ``x``'s only from a span's start until the filters have forgotten it.
    There both are filtered (``K(x)`` from far enough before that the state has settled); elsewhere
    nothing is. Exact to the float rounding (the settling leaves less than 1e-10). None when the spans and
    their settling cover most of the clip (measuring ``out`` whole is then cheaper)."""
    rate, samples = blocks.sample_rate, x.shape[1]
    settle = _settle(rate)
    merged: list[list[int]] = []
    for a, b in spans.astype(np.int64).tolist():
        if merged and a - settle <= merged[-1][1] + settle:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    work = sum(min(samples, b + settle) - max(0, a - settle) for a, b in merged)
    if work > samples // 2:
        return None
    weights = channel_weights(x.shape[0])
    means = gain * gain * blocks.means
    # the spans' clip (from its settling before each) and difference laid end to end in one row per channel
    # each, a batch of spans at a time (bounded memory), one sosfilt call per row: what a segment inherits
    # from the one before it has decayed like a settled start
    bounds = [(a, max(0, a - settle), min(samples, b + settle)) for a, b in merged]
    batch: list[tuple[int, int, int]] = []
    for index, bound in enumerate(bounds):
        batch.append(bound)
        if index == len(bounds) - 1 or sum(stop - start for _, start, stop in batch) >= _CHUNK:
            _add_changed(means, blocks, batch, gain=gain, x=x, out=out, weights=weights)
            batch = []
    return np.maximum(means, 0.0)


def _add_changed(
    means: Float64,
    blocks: BlockPower,
    bounds: list[tuple[int, int, int]],
    *,
    gain: float,
    x: NDArray[np.float32],
    out: NDArray[np.float32],
    weights: Float64,
) -> None:
    """Add to ``means`` what ``out`` changes in the blocks around ``bounds`` (``(a, start, stop)``: a span
    from ``a``, filtered from ``start`` until ``stop``) (see :func:`changed_block_means`)."""
    sos = _k_weighting_sos(blocks.sample_rate)
    # the segments written into float64 rows (converted as they are copied: no float32 concatenation, no
    # gathers; the same values): each span's clip from its settling on, and its difference from the span on
    lengths = [stop - start for _, start, stop in bounds]
    origins = np.cumsum([0, *lengths]).tolist()
    clip = np.empty((x.shape[0], origins[-1]))
    changes = [stop - a for a, _, stop in bounds]
    places = np.cumsum([0, *changes]).tolist()
    difference = np.empty((x.shape[0], places[-1]))
    for (a, start, stop), origin, place in zip(bounds, origins, places, strict=False):
        clip[:, origin : origin + stop - start] = x[:, start:stop]
        part = difference[:, place : place + stop - a]
        np.multiply(clip[:, origin + a - start : origin + stop - start], gain, out=part)
        part -= out[:, a:stop]  # gain x - out, in float64
    reference = sosfilt(sos, clip, axis=-1)
    reference *= gain
    reference = np.concatenate(  # gain K(x) over each span's [a, stop)
        [
            reference[:, o + a - start : o + stop - start]
            for (a, start, stop), o in zip(bounds, origins, strict=False)
        ],
        axis=1,
    )
    changed = sosfilt(sos, difference, axis=-1)  # K(d): K(out) = gain K(x) - K(d)
    reference *= -2.0
    reference += changed
    reference *= changed  # K(out)^2 - (gain K(x))^2 = K(d) (K(d) - 2 gain K(x))
    delta = reference[0] * weights[0]  # channel by channel: no BLAS threads for a thin product
    for row, weight in zip(reference[1:], weights[1:], strict=True):
        delta += row * weight
    running = np.concatenate([[0.0], np.cumsum(delta)])
    # every span's blocks at once, added in the spans' order (np.add.at: a block two spans reach gets their
    # shares one after the other, as a loop over the spans adds them)
    spans = np.asarray(bounds, dtype=np.int64).reshape(-1, 3)
    starts, stops = spans[:, 0], spans[:, 2]
    lo = np.searchsorted(blocks.stops, starts, side="right")
    hi = np.searchsorted(blocks.starts, stops, side="left")
    counts = np.maximum(hi - lo, 0)
    index = np.arange(int(counts.sum())) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
    begin, width, offset = (np.repeat(v, counts) for v in (starts, stops - starts, np.asarray(places[:-1])))
    first = np.clip(blocks.starts[index] - begin, 0, width) + offset
    last = np.clip(blocks.stops[index] - begin, 0, width) + offset
    np.add.at(means, index, (running[last] - running[first]) / blocks.block_length)


def _block_means(
    chunks: Iterator[tuple[int, Float64]],
    starts: NDArray[np.int64],
    stops: NDArray[np.int64],
    length: float,
    keep: NDArray[np.float32] | None = None,
) -> Float64:
    edges, where = np.unique(np.concatenate([starts, stops]), return_inverse=True)
    at = _cumulative_at(chunks, edges, keep)[where]
    means: Float64 = np.maximum(at[starts.shape[0] :] - at[: starts.shape[0]], 0.0) / length
    return means


def gated_loudness(block_means: Float64) -> float:
    """Integrated loudness (LUFS) of blocks' mean weighted power: absolute then relative gate.

    Returns ``-inf`` when no block passes the gates (silence).
    """
    levels = _to_lufs(block_means)
    above_absolute = levels >= ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return float("-inf")
    relative_gate = float(_to_lufs(block_means[above_absolute].mean())) + RELATIVE_GATE_LU
    kept = (levels > relative_gate) & (levels > ABSOLUTE_GATE_LUFS)
    if not kept.any():
        return float("-inf")
    return float(_to_lufs(block_means[kept].mean()))


@dataclass(frozen=True)
class Loudness:
    """Integrated loudness of a clip; ``short`` when it was measured over a clip under 400 ms."""

    lufs: float
    short: bool


def integrated_loudness(
    audio: NDArray[np.float32], sample_rate: int, *, scale: float | None = None
) -> Loudness:
    """Integrated loudness (BS.1770-4) of a float32 ``(C, S)`` clip (``(S,)``: mono), in one chunk's worth
    of memory. The clip and the rate are checked as for an export (InvalidAudio/InvalidInput: NaN/Inf,
    empty, wrong rank, more than 8 channels, a rate outside 8–384 kHz); ``scale``: integer audio's
    full-scale value, as for an export."""
    audio, sample_rate = as_audio(audio, scale=scale), check_sample_rate(sample_rate)
    starts, stops, length, short = _block_layout(audio.shape[1], sample_rate)
    means = _block_means(_power_chunks(audio, sample_rate), starts, stops, length)
    return Loudness(gated_loudness(means), short)


def loudness_range(blocks: BlockPower, *, offset_db: float = 0.0) -> float | None:
    """Loudness range (EBU Tech 3342) in LU of a measured clip.

    Short-term (3 s) loudness every 100 ms over windows inside the clip, absolute gate at −70 LUFS,
    relative gate 20 LU below their power mean, then the 95th minus the 10th percentile.
    Returns None when the clip is shorter than 3 s or too quiet to have gated windows. ``offset_db``: what
    the clip's levels are above the measured ones (measured as ``2**-k`` times itself: ``20 log10 2**k``).
    """
    rate = blocks.sample_rate
    assert blocks.power is not None, "loudness_range reads the per-sample power: measure with keep_power"
    cumulative = np.concatenate([[0.0], np.cumsum(blocks.power, dtype=np.float64)])
    window = round(LRA_WINDOW_SECONDS * rate)
    if cumulative.shape[0] - 1 < window:
        return None
    starts = np.arange(0, cumulative.shape[0] - window, round(LRA_HOP_SECONDS * rate))
    levels = _to_lufs(np.maximum(cumulative[starts + window] - cumulative[starts], 0.0) / window) + offset_db
    levels = levels[levels >= ABSOLUTE_GATE_LUFS]
    if levels.size == 0:
        return None
    relative_gate = 10.0 * np.log10(np.mean(10.0 ** (levels / 10.0))) + LRA_RELATIVE_GATE_LU
    levels = levels[levels >= relative_gate]
    low, high = np.percentile(levels, [10.0, 95.0])
    return float(high - low)
