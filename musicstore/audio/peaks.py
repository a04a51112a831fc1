"""Waveform peaks for web players: the minimum and maximum of each bucket of ``samples_per_pixel`` frames.

The document is audiowaveform's JSON format, version 2 (``version``, ``channels``, ``sample_rate``,
``samples_per_pixel``, ``bits``, ``length``, ``data``: for each bucket, for each channel, min then max, as
integers of ``bits`` bits), which peaks.js reads as is; :meth:`WaveformPeaks.normalized` gives the same
buckets as floats in [−1, 1] per channel (wavesurfer.js's ``peaks``), and
:meth:`WaveformPeaks.normalized_json` the file of them an export puts beside the audiowaveform one. A file is
read in blocks, so the memory used is one block plus the result, whatever the length of the clip.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from musicstore import validate
from musicstore.audio.arrays import as_audio, check_sample_rate
from musicstore.audio.file_checks import check_not_truncated, not_a_file, short_read, sndfile_name
from musicstore.audio.files import as_path, write_bytes_atomic
from musicstore.errors import InvalidAudio, InvalidInput, StorageError, shown
from musicstore.filestore.base import FileStore, ObjectInfo, check_key

BITS = (8, 16)
MAX_SAMPLES_PER_PIXEL = 1 << 20
DEFAULT_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class WaveformPeaks:
    """Per bucket and channel, the minimum and maximum sample (floats, ``(length, channels, 2)``)."""

    sample_rate: int
    samples_per_pixel: int
    bits: int
    frames: int
    extremes: NDArray[np.float32]

    def __post_init__(self) -> None:
        """Each field checked (a peaks object made by hand too: its methods would fail far from here), and
        numpy's integers kept as plain ints (the JSON document takes no ``np.int64``)."""
        spp, nbits = _check(self.samples_per_pixel, self.bits)
        rate = validate.integer(self.sample_rate, "sample_rate", 1)  # a file's (file_peaks): any rate
        frames = validate.integer(self.frames, "frames", 0)
        x = self.extremes
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != 2 or x.dtype.kind != "f":
            got = f"shape {x.shape}, {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
            raise InvalidInput(f"extremes must be a float array (buckets, channels, 2), got {got}")
        for name, value in (
            ("sample_rate", rate),
            ("samples_per_pixel", spp),
            ("bits", nbits),
            ("frames", frames),
        ):
            if type(getattr(self, name)) is not int:
                object.__setattr__(self, name, value)

    @property
    def channels(self) -> int:
        return int(self.extremes.shape[1])

    @property
    def length(self) -> int:
        """Buckets (pixels); the last holds the remaining frames when they do not fill one."""
        return int(self.extremes.shape[0])

    def quantized(self) -> NDArray[np.int32]:
        """``extremes`` as ``bits``-bit integers: ``round(x · 2^(bits−1))`` clipped to the signed range."""
        scale = float(1 << (self.bits - 1))
        return np.clip(np.rint(self.extremes.astype(np.float64) * scale), -scale, scale - 1).astype(np.int32)

    def as_json_dict(self) -> dict[str, Any]:
        """The audiowaveform (version 2) document."""
        return {
            "version": 2,
            "channels": self.channels,
            "sample_rate": self.sample_rate,
            "samples_per_pixel": self.samples_per_pixel,
            "bits": self.bits,
            "length": self.length,
            "data": self.quantized().reshape(-1).tolist(),
        }

    def to_json(self) -> str:
        """The audiowaveform document as compact JSON text."""
        return json.dumps(self.as_json_dict(), separators=(",", ":"))

    def normalized(self, digits: int = 4) -> list[list[float]]:
        """Per channel, ``[min, max, min, max, ...]`` in [−1, 1], rounded to ``digits`` in float64 (0.3845,
        not the float32 value's 0.38449999690055847), as the web API's waveform from a peaks file is.
        ``digits``: 0 to 17 (a float64 in [−1, 1] has no more)."""
        places = validate.integer(digits, "digits", 0, 17)
        values = np.clip(self.extremes.astype(np.float64), -1.0, 1.0).round(places)
        return [values[:, c, :].reshape(-1).tolist() for c in range(self.channels)]

    def normalized_json(self) -> str:
        """The normalised peaks file's document (``<peaks file's name without .json>.normalized.json``):
        ``version`` 1, ``channels``, ``sample_rate``, ``samples_per_pixel``, ``length`` and ``data``, per
        channel ``normalized()`` (``[min, max, ...]`` in [−1, 1]), as compact JSON text."""
        document = {
            "version": 1, "channels": self.channels, "sample_rate": self.sample_rate,
            "samples_per_pixel": self.samples_per_pixel, "length": self.length, "data": self.normalized(),
        }  # fmt: skip
        return json.dumps(document, separators=(",", ":"))

    def write(self, path: str | Path) -> int:
        """Write the audiowaveform JSON atomically (temp file, fsync, rename); return its size in bytes."""
        target = as_path(path)
        if target.suffix.lower() != ".json":
            raise InvalidInput(f"{target.name}: a peaks file must end in .json")
        return write_bytes_atomic(target, self.to_json().encode())

    def put(self, files: FileStore, key: str) -> ObjectInfo:
        """Put the audiowaveform JSON at ``key`` of a file store (local folder or S3), whole or not at all,
        with a conditional create: the same peaks already there are a retry (their head is returned), other
        bytes raise ``ObjectExists`` and are left as they were."""
        if not check_key(key).lower().endswith(".json"):
            raise InvalidInput(f"{key}: a peaks file must end in .json")
        if not isinstance(files, FileStore):
            raise InvalidInput(f"files must be a FileStore (open_filestore's), got {type(files).__name__}")
        return files.put(key, self.to_json().encode(), content_type="application/json")


def _check(samples_per_pixel: object, bits: object) -> tuple[int, int]:
    if (
        isinstance(samples_per_pixel, bool)
        or not isinstance(samples_per_pixel, numbers.Integral)
        or not 1 <= int(samples_per_pixel) <= MAX_SAMPLES_PER_PIXEL
    ):
        raise InvalidInput(f"samples_per_pixel must be an integer in 1–{MAX_SAMPLES_PER_PIXEL}")
    if bits not in BITS or isinstance(bits, bool):
        raise InvalidInput(f"bits must be 8 or 16, got {shown(bits)}")
    return int(samples_per_pixel), int(bits)


def check_shape(samples_per_pixel: object, bits: object, split_channels: object) -> tuple[int, int, bool]:
    """The peaks' shape as ``compute_peaks`` takes it (numpy's integers and bools too), as plain values;
    ``InvalidInput`` otherwise."""
    spp, nbits = _check(samples_per_pixel, bits)
    return spp, nbits, _check_split(split_channels)


def _check_split(split_channels: object) -> bool:
    """``split_channels`` as a bool (numpy's too); ``InvalidInput`` for anything else ("no" would be true)."""
    if not isinstance(split_channels, bool | np.bool_):
        raise InvalidInput(f"split_channels must be True or False, got {shown(split_channels)}")
    return bool(split_channels)


def _check_reading(block_frames: object, split_channels: object) -> int:
    """``block_frames`` as an int (a whole number ≥ 1); InvalidInput for it or a ``split_channels`` that is
    not a bool ("no" would be true)."""
    if (
        isinstance(block_frames, bool | np.bool_)
        or not isinstance(block_frames, numbers.Integral)
        or int(block_frames) < 1
    ):
        raise InvalidInput(
            f"block_frames must be a whole number of frames, at least 1, got {shown(block_frames)}"
        )
    _check_split(split_channels)
    return int(block_frames)


def _reduce(
    blocks: Iterable[NDArray[np.float32]], spp: int, split: bool, channels: int
) -> NDArray[np.float32]:
    """Min/max per bucket over ``(C, n)`` blocks whose lengths are multiples of ``spp`` (but the last)."""
    parts: list[NDArray[np.float32]] = []
    for block in blocks:
        x = block if split else block.mean(axis=0, keepdims=True, dtype=np.float32)
        n = x.shape[1]
        full = n - n % spp
        rows = []
        if full:
            buckets = x[:, :full].reshape(x.shape[0], full // spp, spp)
            rows.append(np.stack([buckets.min(axis=2), buckets.max(axis=2)], axis=-1))
        if full < n:
            tail = x[:, full:]
            rows.append(np.stack([tail.min(axis=1), tail.max(axis=1)], axis=-1)[:, np.newaxis, :])
        for row in rows:
            parts.append(np.ascontiguousarray(row.transpose(1, 0, 2), dtype=np.float32))
    out_channels = channels if split else 1
    if not parts:
        return np.zeros((0, out_channels, 2), dtype=np.float32)
    return np.concatenate(parts, axis=0)


def compute_peaks(
    audio: Any,
    sample_rate: int,
    samples_per_pixel: int = 256,
    *,
    bits: int = 8,
    split_channels: bool = False,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    scale: float | None = None,
) -> WaveformPeaks:
    """Peaks of a clip (tensor or array, ``(S,)`` or ``(C, S)``; integer audio with its ``scale=``, as in
    ``as_audio``): channels mixed to one (their mean) unless ``split_channels``; computed block by block."""
    spp, nbits = _check(samples_per_pixel, bits)
    block_frames = _check_reading(block_frames, split_channels)
    rate = check_sample_rate(sample_rate)
    x = as_audio(audio, scale=scale)
    step = spp * max(1, block_frames // spp)
    blocks = (x[:, start : start + step] for start in range(0, x.shape[1], step))
    extremes = _reduce(blocks, spp, split_channels, x.shape[0])
    return WaveformPeaks(rate, spp, nbits, int(x.shape[1]), extremes)


@dataclass(frozen=True)
class PeaksSpec:
    """The resolution of the peaks made at export (``musicstore.recording``): ``samples_per_pixel`` frames per
    bucket, ``bits`` (8 or 16) per value, channels mixed to one unless ``split_channels``; ``normalized`` (the
    default): the normalised peaks (``WaveformPeaks.normalized_json``) beside them, a file of their own."""

    samples_per_pixel: int = 256
    bits: int = 8
    split_channels: bool = False
    normalized: bool = True

    def __post_init__(self) -> None:
        _check(self.samples_per_pixel, self.bits)
        if not isinstance(self.split_channels, bool):
            raise InvalidInput("split_channels must be True or False")
        if not isinstance(self.normalized, bool):
            raise InvalidInput(f"normalized must be True or False, got {shown(self.normalized)}")


_FULL_SCALE = {np.dtype(np.int16): 2.0**-15, np.dtype(np.int32): 2.0**-31}


_INT16_EXACT_CHANNELS = 512  # a float32 sum of fewer int16 · 2^−15 values is exact, in any order


def _int16_extremes(frames: NDArray[np.generic], spp: int, split: bool, step: int) -> NDArray[np.float32]:
    """``_reduce`` of the frames as libsndfile reads them back (``int16 · 2^−15`` in float32), found on the
    integers: min and max commute with the exact scaling, and with the one rounded division of the float32
    mean, which is done last, on the extremes only, by the same numpy mean (so it rounds the same way)."""
    channels = int(frames.shape[1])
    parts: list[NDArray[np.int32]] = []
    for start in range(0, frames.shape[0], step):
        block = frames[start : start + step]
        if split:
            x = block.T
        else:  # column by column: much faster than a sum along the short axis
            total = block[:, 0].astype(np.int32)
            for c in range(1, channels):
                np.add(total, block[:, c], out=total)
            x = total[np.newaxis, :]
        n = x.shape[1]
        full = n - n % spp
        if full:
            buckets = x[:, :full].reshape(x.shape[0], full // spp, spp)
            row = np.stack([buckets.min(axis=2), buckets.max(axis=2)], axis=-1)
            parts.append(row.transpose(1, 0, 2).astype(np.int32))
        if full < n:
            tail = x[:, full:]
            row = np.stack([tail.min(axis=1), tail.max(axis=1)], axis=-1)[:, np.newaxis, :]
            parts.append(row.transpose(1, 0, 2).astype(np.int32))
    if not parts:
        return np.zeros((0, channels if split else 1, 2), dtype=np.float32)
    values = np.concatenate(parts, axis=0).astype(np.float32) * np.float32(2.0**-15)
    if split or channels == 1:
        return np.ascontiguousarray(values, dtype=np.float32)
    summed = np.zeros((channels, *values.shape), dtype=np.float32)
    summed[0] = values  # the exact sum of the channels; the mean divides it as _reduce's mean does
    return np.ascontiguousarray(summed.mean(axis=0, dtype=np.float32), dtype=np.float32)


def frames_peaks(
    frames: NDArray[np.generic],
    sample_rate: int,
    samples_per_pixel: int = 256,
    *,
    bits: int = 8,
    split_channels: bool = False,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> WaveformPeaks:
    """Peaks of the ``(S, C)`` frames about to be written (int16, int32 as libsndfile takes them, or float32),
    converted to float block by block exactly as libsndfile reads them back (``int · 2^−15`` or ``2^−31`` in
    float32), so they equal ``file_peaks`` of the written file; memory: one block plus the result."""
    spp, nbits = _check(samples_per_pixel, bits)
    block_frames = _check_reading(block_frames, split_channels)
    rate = check_sample_rate(sample_rate)
    if frames.ndim != 2 or frames.dtype not in (*_FULL_SCALE, np.dtype(np.float32)):
        raise InvalidInput(
            f"frames must be (S, C) int16, int32 or float32, got {frames.dtype} {frames.shape}"
        )
    scale = _FULL_SCALE.get(frames.dtype)
    step = spp * max(1, block_frames // spp)
    if frames.dtype == np.int16 and frames.shape[1] < _INT16_EXACT_CHANNELS:
        extremes = _int16_extremes(frames, spp, split_channels, step)
        return WaveformPeaks(rate, spp, nbits, int(frames.shape[0]), extremes)

    def blocks() -> Iterable[NDArray[np.float32]]:
        for start in range(0, frames.shape[0], step):
            block = frames[start : start + step].T.astype(np.float32)
            if scale is not None:
                block *= np.float32(scale)
            yield block

    extremes = _reduce(blocks(), spp, split_channels, int(frames.shape[1]))
    if not np.isfinite(extremes).all():
        raise InvalidAudio("the frames hold NaN or infinite samples; they have no waveform to draw")
    return WaveformPeaks(rate, spp, nbits, int(frames.shape[0]), extremes)


class _NotAFile(StorageError, InvalidInput):
    """``file_peaks``' error for a path that is no file: ``StorageError`` as every reader of a file says, and
    ``InvalidInput`` as it said before."""


def file_peaks(
    path: str | Path,
    samples_per_pixel: int = 256,
    *,
    bits: int = 8,
    split_channels: bool = False,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> WaveformPeaks:
    """Peaks of an audio file read in blocks of about ``block_frames`` frames (memory: one block).
    ``StorageError`` when there is no such file (or it is a folder), as ``analyze_file`` says (an
    ``InvalidInput`` too, what it was until then).
    ``InvalidAudio`` when it is not audio, or is truncated (its header declares more than it holds)."""
    spp, nbits = _check(samples_per_pixel, bits)
    block_frames = _check_reading(block_frames, split_channels)
    source = as_path(path)
    why = not_a_file(source)
    if why is not None:
        raise _NotAFile(f"{source}: {why}")
    try:
        with sf.SoundFile(sndfile_name(source)) as f:
            with open(source, "rb") as raw:  # the header's sizes against the file's: before any block
                check_not_truncated(raw, os.fstat(raw.fileno()).st_size, source.name)
            step = spp * max(1, block_frames // spp)
            counted = [0]

            def blocks() -> Iterable[NDArray[np.float32]]:
                for block in f.blocks(blocksize=step, dtype="float32", always_2d=True):
                    counted[0] += block.shape[0]
                    yield block.T

            extremes = _reduce(blocks(), spp, split_channels, f.channels)
            rate = f.samplerate
            if 0 < counted[0] < f.frames:
                raise short_read(source.name, counted[0], f.frames)
    except sf.LibsndfileError as exc:
        raise InvalidAudio(f"{source.name}: cannot read it as audio ({exc})") from exc
    if not np.isfinite(extremes).all():
        raise InvalidAudio(f"{source.name} holds NaN or infinite samples; it has no waveform to draw")
    return WaveformPeaks(rate, spp, nbits, counted[0], extremes)
