"""Gain to a loudness target under a true-peak ceiling, with an offline look-ahead limiter.

Peaks are read by the accurate meter of :mod:`musicstore.audio.truepeak` (the ideal reconstruction on a
grid of 8 positions per sample, with the Annex 2 4x values folded in), held ``GRID_FACTOR`` (0.17 dB)
below the ceiling so that no peak between grid points can exceed it. The limiter works on the
per-sample peak need ``s`` (largest |sample| or detector value next to it):
the required gain ``min(1, ceiling / (G * s))`` goes through a minimum filter (hold + ramp) and two box
smoothings (the ramps), so the smooth curve never exceeds the requirement. One curve is applied to all
channels. Only the neighbourhoods of hot samples are processed. Loudness after limiting is predicted
from the K-weighted power and re-gated; the static gain is iterated because gating moves with the
peaks, the best candidate is kept. The whole output is then verified by the accurate meter (its far part
derived from the clip's: :class:`~musicstore.audio.limited_far.LimitedFarField`), deepened where it is still
over (a last resort trims the whole clip), and its true peak measured exactly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from musicstore.audio.arrays import scaled
from musicstore.audio.farfield import FarField, Rows
from musicstore.audio.limited_far import LimitedFarField
from musicstore.audio.limiter_curve import _box_filter, _minimum_filter, _Shape
from musicstore.audio.limiter_gain import AIM_LU, _predict, _reduction, _search, _static, region_buffer
from musicstore.audio.limiter_region import (
    Leveled,
    LimiterSettings,
    _index_of,
    _positions,
    _Region,
    _region,
    _row_factors,
    _spans,
    _touch_region,
)
from musicstore.audio.loudness import BlockPower, changed_block_means, gated_loudness, integrated_loudness
from musicstore.audio.truepeak import (
    GRID_FACTOR,
    PeakMap,
    Reuse,
    Screened,
    _envelope_at,
    from_db,
    largest_sample,
    peak_map,
    refined_peak,
    sample_envelope,
    to_db,
)

log = logging.getLogger("musicstore.audio")

CEILING_MARGIN_DB = 0.01  # below the ceiling, for dither and float rounding
CURVE_MARGIN_DB = 0.02  # the curve aims this far under the detector ceiling: its first check then passes
EXACT_TOLERANCE_LU = 0.02  # beyond this the exact measurement triggers a corrected search
SHALLOW_DB = 1.0  # the first peak map holds what gains up to this far above the target's can lift
DEPTH_HAIR_DB = 1e-4  # the depth cap's gain bound sits this far inside the cap (float32 curves)
DERIVED_FAR_SHARE = 0.25  # the widest region (share of the clip) whose output's far part is derived


def detector_ceiling(ceiling_dbtp: float) -> float:
    """The level (linear) no detector value may exceed so that the true peak stays under the ceiling."""
    return from_db(ceiling_dbtp - CEILING_MARGIN_DB) * GRID_FACTOR


def map_floor(target_lufs: float, ceiling_dbtp: float, before_lufs: float, max_depth_db: float) -> float:
    """The level down to which a clip's peak map must hold detector values for :func:`level`."""
    reach = from_db(target_lufs - before_lufs + max_depth_db)
    return detector_ceiling(ceiling_dbtp) / reach


_HOT_CHUNK = 1 << 16  # samples at a time of the region's test (its float32 product: 256 KiB)


@dataclass(frozen=True)
class _Need:
    """A clip's per-sample peak need: |sample| and the mapped detector values on both sides (unmapped values
    are below the map's floor, which no allowed gain can lift to the ceiling). Read from the clip and its
    map where asked: no full-length array (1.0x a mono clip)."""

    x: NDArray[np.float32]
    rows: Rows  # the map's rows (row m lies between samples m - 1 and m) and values
    values: NDArray[np.float32]
    largest: float  # the largest need

    @classmethod
    def of(cls, x: NDArray[np.float32], peaks: PeakMap) -> _Need:
        return cls(x, peaks.rows, peaks.values, max(peaks.sample_peak, float(peaks.values.max(initial=0.0))))

    def at(self, index: Rows) -> NDArray[np.float32]:
        """The need at sorted sample positions ``index``."""
        need = _envelope_at(self.x, index)
        for shift in (0, 1):  # the rows after and before each sample
            at, found = _positions(index, self.rows - shift)
            np.maximum.at(need, at[found], self.values[found])
        return need

    def hot(self, gain: float, ceiling: float) -> NDArray[np.intp]:
        """``np.flatnonzero(need * gain > ceiling)``, a chunk at a time."""
        parts = []
        samples = self.x.shape[1]
        for start in range(0, samples, _HOT_CHUNK):
            stop = min(start + _HOT_CHUNK, samples)
            need = sample_envelope(self.x[:, start:stop])
            for shift in (0, 1):  # rows start + shift .. stop - 1 + shift: beside samples start .. stop - 1
                lo, hi = np.searchsorted(self.rows, [start + shift, stop + shift]).tolist()
                np.maximum.at(need, self.rows[lo:hi] - (start + shift), self.values[lo:hi])
            parts.append(np.flatnonzero(need * gain > ceiling) + start)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def level(
    x: NDArray[np.float32],
    blocks: BlockPower | list[BlockPower],
    *,
    target_lufs: float,
    ceiling_dbtp: float,
    limiter: bool,
    settings: LimiterSettings,
    verify: bool = True,
    far: FarField | None = None,
    peak: float | None = None,
    tolerance_lu: float | None = None,
) -> Leveled:
    """Gain ``x`` to ``target_lufs`` keeping its true peak under ``ceiling_dbtp``.

    The ceiling always wins: when the limiter is off or its depth cap is reached, the result lands as
    close to the target as the ceiling allows (the caller compares the returned loudness).

    ``verify=False`` is for a caller that measures what it makes of the output itself (a lossy rendition,
    decoded and measured after encoding): a limited output is then not checked by the meter nor measured
    again. Its curve is the verified path's first (aimed ``CURVE_MARGIN_DB`` under the detector's ceiling,
    which the check finds held), its loudness is the prediction (within ``EXACT_TOLERANCE_LU`` of the
    exact one as a rule) and its ``true_peak`` is NaN (not measured). Plain gain is exact either way.

    ``blocks`` in a list is handed over (the list is emptied): the per-sample power, where held, is then
    dropped once the limiter's region is known, before the output is made and checked (a deeper map's
    region makes it again from the filters' states, :meth:`BlockPower.power_at`).

    ``far``: ``x``'s far part (:meth:`FarField.measure`) where the caller measured it already; ``peak``: its
    largest |sample| (:func:`largest_sample`) where the caller has it. ``tolerance_lu``: how close to the
    target counts as reached for the caller; a limited output is measured until it is within half of it (at
    most ``EXACT_TOLERANCE_LU``), its prediction driven to a quarter of that (at most ``AIM_LU``).
    """
    started = time.perf_counter()
    owned = isinstance(blocks, list)
    if isinstance(blocks, list):
        blocks = blocks.pop()
    base = blocks.block_means()
    before = gated_loudness(base)
    ceiling = detector_ceiling(ceiling_dbtp)
    gain = from_db(target_lufs - before)
    depth_db = settings.max_depth_db if limiter else 0.0
    floor = map_floor(target_lufs, ceiling_dbtp, before, depth_db)
    shallow = max(floor, ceiling / (gain * from_db(SHALLOW_DB))) if limiter else floor
    if limiter and gain * (largest_sample(x) if peak is None else peak) > ceiling:
        # the limiter will run: map down to gains near the target's at once
        if far is not None and verify:
            far.make_kernel(x.shape[1])  # as peak_map's FarField.measure would (keep_screen)
        peaks = peak_map(x, shallow, far, keep_screen=verify)
    else:  # most likely plain gain, for which the map down to the sample peak suffices
        peaks = peak_map(x, None, far)
        if limiter and gain * peaks.grid_peak > ceiling and shallow < peaks.floor:
            peaks = peak_map(x, shallow, peaks.far, peaks.spans, keep_screen=verify)
    measured = time.perf_counter() - started
    if gain * peaks.grid_peak <= ceiling:
        return _static(x, base, peaks, gain, started)  # no detector value can reach the ceiling
    if not limiter:
        return _static(x, base, peaks, ceiling / peaks.grid_peak, started)
    held = blocks  # with its power, if held, until the region is known
    if owned:  # then only the region's power is kept (in the region)
        blocks = replace(blocks, power=None)
    accept = EXACT_TOLERANCE_LU if tolerance_lu is None else min(EXACT_TOLERANCE_LU, tolerance_lu / 2)
    limits = _Limits(
        x, blocks, ceiling, settings, gain, depth_db, target_lufs, peaks.far, peaks.spans, peaks.screened,
        verify=verify, accept=accept,
    )  # fmt: skip
    mapped = peaks.floor
    need = _Need.of(x, peaks)
    del peaks  # keep memory low (the far part stays: the output's is derived from it)
    region, upper, full = limits.region(need, held, mapped)
    del need, held
    leveled = limits.limit(region, upper)
    if limits.capped(leveled, upper, full) and mapped > floor:  # more gain is needed: map down to the floor
        del leveled  # its output is not kept through the deeper map and its limiting (memory)
        again = time.perf_counter()
        deeper = peak_map(x, floor, limits.far, limits.spans, keep_screen=verify)
        limits = replace(limits, screened=deeper.screened)
        need = _Need.of(x, deeper)
        del deeper
        measured += time.perf_counter() - again
        region, upper, full = limits.region(need, limits.blocks, floor)
        del need
        leveled = limits.limit(region, upper)
    return replace(leveled, measure_seconds=measured + leveled.measure_seconds)


@dataclass(frozen=True)
class _Limits:
    """One clip's limiting, given the peak need from a map of its detector values."""

    x: NDArray[np.float32]
    blocks: BlockPower
    ceiling: float
    settings: LimiterSettings
    gain: float
    depth_db: float
    target_lufs: float
    far: FarField  # the clip's far part
    spans: NDArray[np.float32] | None  # and its span bounds
    screened: Screened | None  # and what its second screen read (for the output's check)
    verify: bool = True  # check and measure the output (see :func:`level`)
    accept: float = EXACT_TOLERANCE_LU  # the exact loudness's residual that needs no corrected search

    @property
    def aim(self) -> float:
        return self.ceiling * from_db(-CURVE_MARGIN_DB)

    def region(self, need: _Need, blocks: BlockPower, mapped: float) -> tuple[_Region, float, float]:
        """The samples the curve may touch, the highest gain allowed (``upper``: every unmapped detector
        value, at most the map's floor ``mapped``, stays under the ceiling) and the highest the depth cap
        allows; the region's power read from ``blocks``.

        The curve brings the largest need to the aim (``CURVE_MARGIN_DB`` under the ceiling), so the depth cap
        bounds the gain by the aim, not the ceiling: at ``full`` the curve's deepest reduction is the cap, not
        the cap plus the margin (a hair under it, ``DEPTH_HAIR_DB``, for the curve's float32 rounding)."""
        depth = from_db(self.depth_db - DEPTH_HAIR_DB)
        full = min(self.gain * from_db(self.depth_db), self.aim * depth / need.largest)
        upper = min(full, self.ceiling / mapped)
        shape = _Shape(self.settings, self.blocks.sample_rate)
        return _region(need, blocks, upper, self.aim, shape.reach), upper, full

    def limit(self, region: _Region, upper: float) -> Leveled:
        shape = _Shape(self.settings, self.blocks.sample_rate)
        limiter = _Limiter(
            self.x, self.blocks, self.ceiling, self.aim, shape, far=self.far, spans=self.spans,
            screened=self.screened,
        )  # fmt: skip
        if not self.verify:
            return limiter.unverified(region, self.target_lufs, self.gain, upper)
        return limiter.limit(region, self.target_lufs, self.gain, upper, accept=self.accept)

    def capped(self, leveled: Leveled, upper: float, full: float) -> bool:
        """Whether the result stopped at the map's cap short of the target (a deeper map may reach it)."""
        return (
            upper < full
            and from_db(leveled.gain_db) >= upper * (1.0 - 1e-9)
            and leveled.loudness < self.target_lufs - self.accept
        )


class _Limiter:
    """Limits one clip: the curve over its region, the checks on the output, the exact measurement."""

    def __init__(
        self,
        x: NDArray[np.float32],
        blocks: BlockPower,
        ceiling: float,
        aim: float,
        shape: _Shape,
        *,
        far: FarField,
        spans: NDArray[np.float32] | None,
        screened: Screened | None = None,
    ) -> None:
        self.x, self.blocks, self.ceiling, self.aim, self.shape = x, blocks, ceiling, aim, shape
        self.far, self.spans, self.screened = far, spans, screened
        self.trimmed = False  # the last output was trimmed whole (no longer gain * x outside the region)

    def limit(
        self, region: _Region, target: float, gain: float, upper: float, *, accept: float = EXACT_TOLERANCE_LU
    ) -> Leveled:
        """Search the gain, apply and verify the curve, measure exactly; correct the aim while the residual is
        beyond ``accept``."""
        base = self.blocks.block_means()
        aim = target
        made: tuple[NDArray[np.float32], tuple[float, float], PeakMap] | None = None
        for _ in range(3):
            made = None  # the last attempt's output freed before this one's search (memory)
            if region.power is None:  # dropped through the last attempt's check
                region.power = self.blocks.power_at(self.x, region.index)
            chosen, _ = _search(
                self.blocks,
                base,
                region,
                self.shape,
                target=aim,
                start=gain,
                upper=upper,
                ceiling=self.aim,
                aim_lu=min(AIM_LU, accept / 4),
            )
            made = self._apply_checked(chosen, region)
            measured = self._loudness(made[0], chosen, region)
            if abs(measured - target) <= accept or (chosen >= upper and measured < target):
                break
            aim += target - measured
            gain = chosen
        assert made is not None
        out, (reduction, reduced), checked = made
        del made
        started = time.perf_counter()
        true_peak = refined_peak(out, checked)
        if measured > target + accept:
            # louder than the target after the last search: an output trimmed whole (its loudness need not
            # follow the aim) can land there. Turned down as a whole it reaches the target, every peak lower
            out, chosen, measured, true_peak = self._turned_down(out, chosen, measured - target, true_peak)
        spent = time.perf_counter() - started
        return Leveled(out, to_db(chosen), measured, true_peak, reduction, reduced, True, spent)

    def _turned_down(
        self, out: NDArray[np.float32], gain: float, excess_lu: float, true_peak: float
    ) -> tuple[NDArray[np.float32], float, float, float]:
        """``out`` scaled down by ``excess_lu``: the output, its gain, its exact loudness (measured again: the
        absolute gate may move) and its true peak (scaled with the samples)."""
        factor = np.float32(from_db(-excess_lu))
        out *= factor
        loudness = integrated_loudness(out, self.blocks.sample_rate).lufs
        return out, gain * float(factor), loudness, true_peak * float(factor)

    def unverified(self, region: _Region, target: float, gain: float, upper: float) -> Leveled:
        """The curve at the gain whose loudness is predicted closest to ``target``, applied; neither checked
        by the meter nor measured (see :func:`level`'s ``verify``)."""
        chosen, predicted = _search(
            self.blocks,
            self.blocks.block_means(),
            region,
            self.shape,
            target=target,
            start=gain,
            upper=upper,
            ceiling=self.aim,
        )
        g = self.shape.curve(region.need, chosen, self.aim)
        out = scaled(self.x, chosen)
        out[:, region.index] *= g
        reduction, reduced = _reduction(g, self.x.shape[1])
        return Leveled(out, to_db(chosen), predicted, math.nan, reduction, reduced, True, 0.0)

    def _loudness(self, out: NDArray[np.float32], gain: float, region: _Region) -> float:
        """The output's exact integrated loudness: re-measured only around the region (see
        :func:`changed_block_means`) unless the whole output was trimmed or the region spreads wide."""
        means = None
        if not self.trimmed and region.index.size:
            means = changed_block_means(self.blocks, gain, self.x, out, _spans(region))
        if means is None:
            return integrated_loudness(out, self.blocks.sample_rate).lufs
        return gated_loudness(means)

    def _far_of(
        self, gain: float, difference: NDArray[np.float32], changed: NDArray[np.int64]
    ) -> FarField | None:
        """The output's far part from the clip's (see :class:`LimitedFarField`), or None (measure it) where
        the region is so wide that summing the difference's share at every point read would cost more.
        ``difference``: the region's samples before the curve less after it; ``changed``: its runs."""
        if difference.shape[1] > DERIVED_FAR_SHARE * self.x.shape[1]:
            return None
        far = LimitedFarField.of(self.far, gain, difference, changed, self.x.shape[1])
        far.prepare()  # before the check's buffers (memory)
        return far

    def _apply_checked(
        self, gain: float, region: _Region
    ) -> tuple[NDArray[np.float32], tuple[float, float], PeakMap]:
        """Apply the curve, verify the whole output with the accurate meter and deepen where it is over.

        Returns the output, the curve's reduction (:func:`_reduction`) and the output's peak map. If
        deepening cannot bring the output under (a value beyond the region), the whole output is trimmed by
        the excess. Through each check only the output, the region's need and the far part are held beside
        the clip's map: not the curve, the region's index and power (memory).
        """
        x, ceiling = self.x, self.ceiling
        self.trimmed = False
        out: NDArray[np.float32] | None = None
        for _ in range(8):
            need = region.need.shape[0]
            g = self.shape.curve(region.need, gain, self.aim, (region_buffer(need), region_buffer(need)))
            reduction = _reduction(g, x.shape[1])
            # the region's samples of gain * x (as out holds them before the curve) made again each time, less
            # the curved ones: the difference, for the output's far part
            difference = region_buffer((x.shape[0], need))
            np.take(x, region.index, axis=1, out=difference)
            difference *= np.float32(gain)
            limited = region_buffer((x.shape[0], need))
            np.multiply(difference, g, out=limited)
            del g
            difference -= limited
            changed = _spans(region)
            region.drop()  # not held through the far part's making nor the check
            far = self._far_of(gain, difference, changed)  # before the first output is made (memory)
            del difference
            if out is None:
                out = scaled(x, gain)
            out[:, _index_of(changed[:, 0], changed[:, 1], region.index.dtype)] = limited
            del limited
            checked = peak_map(out, ceiling, far, reuse=Reuse(self.screened, gain, changed, self.spans))
            del far
            region.restore(changed)
            values = checked.values
            over = values > ceiling
            if not over.any():
                return out, reduction, checked
            largest = float(values.max())
            rows = checked.rows[over]
            excess = np.empty(rows.shape[0], dtype=np.float32)
            excess[:] = values[over] / ceiling * from_db(0.002)
            del checked, values, over  # not held through the next check (its far part, span bounds: memory)
            if not _touch_region(region.index, rows):
                break
            region.need[:] = region.need * _row_factors(region.index, rows, excess)
        assert out is not None
        out *= np.float32(ceiling / largest * from_db(-0.002))
        self.trimmed = True
        log.debug("limiter: whole output trimmed to stay under the ceiling")
        return out, reduction, peak_map(out, ceiling)


__all__ = [  # with the names of the modules beside it that the export, renditions and tests import from here
    "CEILING_MARGIN_DB",
    "CURVE_MARGIN_DB",
    "DEPTH_HAIR_DB",
    "DERIVED_FAR_SHARE",
    "EXACT_TOLERANCE_LU",
    "SHALLOW_DB",
    "Leveled",
    "LimiterSettings",
    "_Region",
    "_Shape",
    "_box_filter",
    "_minimum_filter",
    "_predict",
    "_region",
    "detector_ceiling",
    "level",
    "map_floor",
]
