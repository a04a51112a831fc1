"""How an export is asked for and what it returns: :class:`ExportOptions` (checked when made),
:class:`ExportResult` with its :class:`StageTimings`, and :data:`LoudnessStatus`. Re-exported by
:mod:`musicstore.audio.export` (and the public ones by :mod:`musicstore.audio`)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from musicstore import validate
from musicstore.audio.quantize import SUBTYPES
from musicstore.errors import InvalidInput, shown

LoudnessStatus = Literal["normalized", "limited", "target_missed", "silent", "too_quiet", "as_is"]
"""What the export did to the loudness (``ExportResult.status``; the metadata's ``loudness_status``)."""


@dataclass(frozen=True)
class ExportOptions:
    """How to export. Loudness in LUFS, levels in dB; see docs/export.md for the choices."""

    target_lufs: float = -16.0
    ceiling_dbtp: float = -1.0
    normalize: bool = True
    limiter: bool = True
    max_limiting_db: float = 6.0  # the limiter's depth cap
    max_gain_db: float = 30.0  # quieter clips are written unchanged, never amplified further
    tolerance_lu: float = 0.1  # |loudness after − target| that counts as reached
    subtype: str = "PCM_16"
    dither_seed: int | None = None  # fixed seed: reproducible PCM_16 files

    def __post_init__(self) -> None:
        for name in ("target_lufs", "ceiling_dbtp", "max_limiting_db", "max_gain_db", "tolerance_lu"):
            value = getattr(self, name)
            as_float = validate.real_number(value, fractions=True)  # numpy's too, as a plain float
            if as_float is None:
                raise InvalidInput(f"{name} must be a number, got {shown(value)}")
            if math.isinf(as_float) and isinstance(value, numbers.Rational):  # an int beyond any float
                raise InvalidInput(f"{name} is out of range, got {shown(value)}")
            object.__setattr__(self, name, as_float)
        seed = None if self.dither_seed is None else validate.whole_number(self.dither_seed)
        if not isinstance(self.normalize, bool) or not isinstance(self.limiter, bool):
            raise InvalidInput("normalize and limiter must be True or False")
        checks = (
            (-70.0 < self.target_lufs <= 0.0, "target_lufs must be in (−70, 0] LUFS"),
            (-20.0 <= self.ceiling_dbtp <= 0.0, "ceiling_dbtp must be in [−20, 0] dBTP"),
            (0.0 < self.max_limiting_db <= 24.0, "max_limiting_db must be in (0, 24] dB"),
            (0.0 <= self.max_gain_db <= 60.0, "max_gain_db must be in [0, 60] dB"),
            (0.0 < self.tolerance_lu <= 1.0, "tolerance_lu must be in (0, 1] LU"),
            (self.subtype in SUBTYPES["WAV"], f"subtype must be one of {SUBTYPES['WAV']}"),
            (
                self.dither_seed is None or (seed is not None and seed >= 0),
                f"dither_seed must be None or an integer >= 0, got {shown(self.dither_seed)}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)
        if self.dither_seed is not None and type(self.dither_seed) is not int:  # np.int64: a plain int
            object.__setattr__(self, "dither_seed", seed)


@dataclass(frozen=True)
class StageTimings:
    """Seconds spent in each stage of one export."""

    measure: float = 0.0
    limit: float = 0.0
    quantize: float = 0.0
    write: float = 0.0


@dataclass(frozen=True)
class ExportResult:
    """What was written, measured and done. Levels: LUFS, dBTP, dBFS, dB (``-inf`` for silence)."""

    path: Path
    bytes: int
    frames: int
    duration: float
    sample_rate: int
    channels: int
    format: str
    subtype: str
    loudness_before: float
    loudness_after: float
    true_peak_after: float
    sample_peak: float
    gain_db: float
    limiter_max_reduction_db: float
    limiter_fraction: float  # share of samples the limiter turned down (by more than 0.01 dB)
    target_reached: bool
    status: LoudnessStatus
    short_clip: bool  # under 400 ms: measured over the whole clip
    clipped_samples: int  # sample values beyond full scale (clipped in PCM files)
    elapsed: float
    timings: StageTimings = field(default_factory=StageTimings)

    def as_metadata(self) -> dict[str, Any]:
        """JSON-ready audio figures (non-finite levels become None)."""

        def num(value: float) -> float | None:
            return round(value, 3) if math.isfinite(value) else None

        return {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frames": self.frames,
            "duration_seconds": round(self.duration, 6),
            "format": self.format,
            "subtype": self.subtype,
            "loudness_before_lufs": num(self.loudness_before),
            "loudness_lufs": num(self.loudness_after),
            "true_peak_dbtp": num(self.true_peak_after),
            "sample_peak_dbfs": num(self.sample_peak),
            "gain_db": num(self.gain_db),
            "limiter_max_reduction_db": num(self.limiter_max_reduction_db),
            "limiter_fraction": round(self.limiter_fraction, 6),
            "target_reached": self.target_reached,
            "loudness_status": self.status,
            "short_clip": self.short_clip,
            "clipped_samples": self.clipped_samples,
        }
