"""The far part of a limiter's output, derived from the clip's (:mod:`musicstore.audio.farfield`): ``gain``
times the clip's less that of the difference ``d``, zero outside a few spans, whose low band is nonzero only
around them; summed at the points read and bounded per block, with no transform of the whole output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter1d

from musicstore.audio.arrays import Rows
from musicstore.audio.far_grid import _DECIMATION, _SUPPORT, BLOCK, _decimated_low_band, _far_weights
from musicstore.audio.far_spectra import _lowpass
from musicstore.audio.farfield import FarField, _kernel_for
from musicstore.audio.kernel_pieces import _MOMENTS, _PIECE, _Cluster, _Kernel, _moments
from musicstore.audio.local_expansion import _GATHER, _RADIUS, _WINDOW, _LocalExpansion
from musicstore.audio.looped import Copies, _difference_moments, _node_weights

_GROUP = 8  # blocks per group of the bound away from the zones
_BOUND_WINDOWS = 4096  # windows (at most) over which the bound sums distant clusters' masses
_ZONE = 64  # grid points either side of a cluster of the difference's sources where it is summed exactly
_PAIRS = 1 << 16  # cluster pairs at a time of the zones' bound (its float64 arrays: 512 KiB each)
_FEW_PIECES = 512  # fewer pieces are all summed directly (a typical 30 s clip has 200-300)


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
