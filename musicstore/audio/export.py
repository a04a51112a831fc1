"""Export model output as a loudness-normalized, true-peak-safe WAV/FLAC file.

``export_audio`` takes one clip, ``export_batch`` a ``(B, C, S)`` batch on a thread pool (numpy,
scipy and libsndfile release the GIL, so both cores work). Nothing touches the disk until the audio
and the options have been checked.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from musicstore import validate
from musicstore.audio.arrays import as_audio, as_audio_batch, check_flac_rate, check_sample_rate
from musicstore.audio.batch import run_all
from musicstore.audio.export_options import ExportOptions, ExportResult, LoudnessStatus, StageTimings
from musicstore.audio.farfield import FarField, keep_spectrum
from musicstore.audio.files import Staged, as_path, format_for, place, stage_blocks, write_atomic
from musicstore.audio.levels import from_db, target_reached
from musicstore.audio.limiter import CEILING_MARGIN_DB, Leveled, LimiterSettings, level
from musicstore.audio.loudness import ABSOLUTE_GATE_LUFS, BlockPower
from musicstore.audio.quantize import (
    SUBTYPES,
    check_wav_size,
    clipped_samples,
    dithers,
    frame_blocks,
    measures_written,
    on_16_bit_grid,
    quantize_in_place,
    to_frames,
    written_as_zeros,
)
from musicstore.audio.threads import alone, beside, joined
from musicstore.audio.truepeak import (
    largest_sample,
    peak_map,
    range_exponent,
    refined_peak,
    scaled_down,
    to_db,
)
from musicstore.errors import InvalidInput

log = logging.getLogger("musicstore.audio")
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Processed:
    audio: NDArray[np.float32]
    before: float
    leveled: Leveled | None  # None: written unchanged
    status: LoudnessStatus
    short: bool
    true_peak: float  # linear, by the accurate meter (ideal reconstruction)
    written_loudness: float | None = None  # written unchanged but clipped to full scale, or turned down
    gain_db: float = 0.0  # a silent or too quiet clip over the ceiling: turned down by this plain gain


def check_target(path: str | Path, subtype: str, *, sample_rate: int | None = None) -> tuple[Path, str]:
    """The target path and its format, after checking the extension and that the format holds ``subtype``
    (and ``sample_rate``, a checked rate, where given)."""
    target = as_path(path)
    fmt = format_for(target)
    if subtype not in SUBTYPES[fmt]:
        raise InvalidInput(f"{fmt} files take subtypes {SUBTYPES[fmt]}, not {subtype}")
    if fmt == "FLAC" and sample_rate is not None:
        check_flac_rate(sample_rate)
    return target, fmt


def _process(x: NDArray[np.float32], rate: int, options: ExportOptions) -> tuple[_Processed, float, float]:
    start = time.perf_counter()
    peak = largest_sample(x)
    # a clip far out of audio's range (see range_exponent) is measured and leveled as 2**-exponent times
    # itself, exactly: its output, gain times the clip, is the same; its block powers (float64) are scaled
    # back by 4**exponent before the gates, its gain by 2**exponent, its true peak as given by 2**exponent
    exponent = range_exponent(peak)
    measured = scaled_down(x, exponent)
    # the far part's kernel spectrum and transform plan are not kept through the output's making and check
    # (the spectrum is after the write, in _export_one)
    if alone():  # a batch's item (the cores are busy): the far part first, beside the clip alone (memory)
        far = FarField.measure(measured, keep=False)
        # a mono clip's per-sample power (4 bytes a sample: 1.0x the clip) is not held: the limiter makes its
        # region's again from the filters' states (a pass over most of the clip; a stereo clip's costs
        # twice as much for half the memory, and is held)
        blocks = BlockPower.measure(measured, rate, keep_power=measured.shape[0] > 1)
    else:  # the loudness on another core while this thread makes the far part (30 s stereo at 32 kHz: 7 ms
        # sooner); its power not held at all, or it would sit beside the transforms' buffers (memory)
        loudness = beside(BlockPower.measure, measured, rate, keep_power=False)
        far, blocks = joined(functools.partial(FarField.measure, measured, keep=False), loudness)
    before = blocks.loudness(exponent)
    loudness_done = time.perf_counter()
    unchanged: LoudnessStatus | None = None
    if not options.normalize:
        unchanged = "as_is"
    elif not before > ABSOLUTE_GATE_LUFS:
        unchanged = "silent"
    elif options.target_lufs - before > options.max_gain_db:
        unchanged = "too_quiet"
    short = blocks.short
    if unchanged is not None:
        peak_given = math.ldexp(refined_peak(measured, peak_map(measured, None, far)), exponent)
        as_given = _Processed(x, before, None, unchanged, short, peak_given)  # the samples given, as is
        held = from_db(options.ceiling_dbtp - CEILING_MARGIN_DB)  # room for dither and rounding, as limited
        if unchanged != "as_is" and peak_given > held:  # never up; the ceiling holds, once written too
            as_given = _turned_down(as_given, held / peak_given, rate)
        return as_given, time.perf_counter() - start, 0.0
    handed = [blocks]  # level drops the per-sample power once it is done with it (memory)
    del blocks
    leveled = level(
        measured,
        handed,
        target_lufs=options.target_lufs,
        ceiling_dbtp=options.ceiling_dbtp,
        limiter=options.limiter,
        settings=LimiterSettings(max_depth_db=options.max_limiting_db),
        far=far,
        peak=math.ldexp(peak, -exponent),
        tolerance_lu=options.tolerance_lu,
    )
    del far, measured  # the limiter keeps what it needs of the far part
    if exponent:
        leveled = replace(leveled, gain_db=leveled.gain_db - to_db(2.0**exponent))
    reached = abs(leveled.loudness - options.target_lufs) <= options.tolerance_lu
    status: LoudnessStatus = ("limited" if leveled.limited else "normalized") if reached else "target_missed"
    processed = _Processed(leveled.audio, before, leveled, status, short, leveled.true_peak)
    done = time.perf_counter()
    return (
        processed,
        loudness_done - start + leveled.measure_seconds,
        done - loudness_done - leveled.measure_seconds,
    )


def _export_one(
    x: NDArray[np.float32],
    rate: int,
    path: Path,
    fmt: str,
    staged: list[Staged] | None = None,
    *,
    options: ExportOptions,
    started: float,
    frames_seen: Callable[[NDArray[np.generic]], None] | None = None,
) -> ExportResult:
    """One clip exported to ``path``. A batch's item (``staged`` given, never with ``frames_seen``) writes
    its file to a temp beside ``path`` that it appends to ``staged`` instead (``batch.run_all`` places it);
    its result names ``path``."""
    done, measure_s, limit_s = _process(x, rate, options)
    out = done.audio
    stamp = time.perf_counter()
    sample_peak = max(float(out.max()), -float(out.min()))
    clipped = clipped_samples(out, sample_peak)
    rng = np.random.default_rng(options.dither_seed)
    dither = dithers(sample_peak)  # digital silence is written as zeros, not as dither noise: unchanged
    if dither and done.leveled is None and options.subtype == "PCM_16":  # written unchanged: samples on the
        dither = not on_16_bit_grid(out)  # 16-bit grid are written exactly (no pass on the normal path)
    shape = out.shape
    done = _without_audio(done)  # the figures only: ``out`` is the one reference to the output left (memory)
    if written_as_zeros(sample_peak, options.subtype):  # silence under half a step (1e-20, denormals): the
        done, sample_peak = replace(done, true_peak=0.0), 0.0  # figures of the zeros written
    if clipped and options.subtype != "FLOAT":  # written as is, but PCM holds full scale at most: the
        # figures of what the file holds, not of what was given (the quantizer clips ``out`` itself)
        held = np.clip(out, np.float32(-1.0), np.float32(1.0))
        done, sample_peak = _measured_as_written(done, held, rate), 1.0
        del held
    if measures_written(done.true_peak, options.subtype, shape[1]):  # quiet: measured as written
        if np.may_share_memory(out, x):  # written unchanged: the caller's array is not touched
            out = out.copy()
        quantize_in_place(out, options.subtype, rng, dither=dither)  # the file's values, a chunk at a time
        peak = refined_peak(out, peak_map(out, None, FarField.measure(out, keep=False)))  # as clipped ones
        done, dither = replace(done, true_peak=peak), False  # on the grid: frames made exactly
    if frames_seen is None:  # quantized a block at a time as the write asks for it: no full frames (memory)
        quantizing = [0.0]
        blocks = _timed(frame_blocks(out, options.subtype, rng, dither=dither), quantizing)
        del out
        begun = time.perf_counter()
        file: Staged | None = None
        try:  # entered first: a Ctrl-C as stage_blocks returns, or in ``del blocks``, finds its temp file
            file = stage_blocks(
                path, blocks, channels=shape[0], sample_rate=rate, fmt=fmt, subtype=options.subtype
            )
            del blocks
            if staged is None:  # in place at once (files.place_atomic's two steps)
                place([file])
            else:  # placed with the batch's other files once they are all written
                staged.append(file)
        except BaseException as exc:
            if file is not None and (staged is None or file not in staged):  # renamed or removed already,
                file.discard(exc)  # unless place was never called
            raise
        size = file.size
        quantize_s = begun - stamp + quantizing[0]
        write_s = time.perf_counter() - begun - quantizing[0]
    else:
        frames = to_frames(out, options.subtype, rng, dither=dither)
        del out  # the float output is not needed past here: freed before the write (memory)
        frames_seen(frames)  # e.g. the waveform peaks of what is written, before it is (recording)
        begun = time.perf_counter()
        size = write_atomic(path, frames, rate, fmt, options.subtype)
        del frames
        quantize_s = begun - stamp
        write_s = time.perf_counter() - begun
    keep_spectrum(shape[1])  # the output is gone: the far part's spectrum is kept now, if its length recurs
    result = _result(
        done,
        path,
        size,
        rate=rate,
        fmt=fmt,
        options=options,
        shape=shape,
        sample_peak=sample_peak,
        clipped=clipped,
    )
    result = _with_times(result, started, StageTimings(measure_s, limit_s, quantize_s, write_s))
    if done.status == "target_missed":
        log.warning(
            "%s: loudness %.2f LUFS misses the target %.2f LUFS "
            "(ceiling %.1f dBTP kept, limiter %s, depth cap %.1f dB)",
            path, result.loudness_after, options.target_lufs, options.ceiling_dbtp,
            "on" if options.limiter else "off", options.max_limiting_db,
        )  # fmt: skip
    elif clipped and options.subtype == "FLOAT":  # a float file holds them: they clip on playback
        log.warning("%s: %d sample values beyond full scale were kept as is (FLOAT)", path, clipped)
    elif clipped:
        log.warning("%s: %d sample values beyond full scale were written as is (clipped)", path, clipped)
    return result


def _result(
    done: _Processed,
    path: Path,
    size: int,
    *,
    rate: int,
    fmt: str,
    options: ExportOptions,
    shape: tuple[int, ...],
    sample_peak: float,
    clipped: int,
) -> ExportResult:
    leveled = done.leveled
    if leveled is None:
        after = done.before if done.written_loudness is None else done.written_loudness
        gain, reduction, fraction = done.gain_db, 0.0, 0.0
    else:
        after, gain = leveled.loudness, leveled.gain_db
        reduction, fraction = leveled.max_reduction_db, leveled.reduced_fraction
    channels, samples = shape
    return ExportResult(
        path=path,
        bytes=size,
        frames=samples,
        duration=samples / rate,
        sample_rate=rate,
        channels=channels,
        format=fmt,
        subtype=options.subtype,
        loudness_before=done.before,
        loudness_after=after,
        true_peak_after=to_db(done.true_peak),
        sample_peak=to_db(sample_peak),
        gain_db=gain,
        limiter_max_reduction_db=reduction,
        limiter_fraction=fraction,
        target_reached=target_reached(done.status, after, options.target_lufs, options.tolerance_lu),
        status=done.status,
        short_clip=done.short,
        clipped_samples=clipped,
        elapsed=0.0,
    )


def _turned_down(given: _Processed, turn: float, rate: int) -> _Processed:
    """A silent or too quiet clip whose true peak is over the ceiling (DC, infrasound, a lone click), turned
    down by the plain gain ``turn`` (< 1) that puts it ``CEILING_MARGIN_DB`` under it: its true peak scales
    with it (linear), its loudness is measured again (blocks fall under the absolute gate)."""
    audio = given.audio * np.float32(turn)
    loudness = BlockPower.measure(audio, rate).loudness()
    return replace(given, audio=audio, true_peak=given.true_peak * turn, written_loudness=loudness,
                   gain_db=to_db(turn))  # fmt: skip


def _measured_as_written(done: _Processed, written: NDArray[np.float32], rate: int) -> _Processed:
    """``done`` with the loudness and true peak of ``written``: the clip written unchanged (``as_is``,
    ``silent``, ``too_quiet``) but clipped to full scale for a PCM file."""
    loudness = BlockPower.measure(written, rate).loudness()
    peak = refined_peak(written, peak_map(written, None, FarField.measure(written, keep=False)))
    return replace(done, written_loudness=loudness, true_peak=peak)


_NO_AUDIO = np.zeros((0, 0), dtype=np.float32)


def _without_audio(done: _Processed) -> _Processed:
    """``done`` without its output audio (nor its ``Leveled``'s): what is left is the figures."""
    leveled = None if done.leveled is None else replace(done.leveled, audio=_NO_AUDIO)
    return replace(done, audio=_NO_AUDIO, leveled=leveled)


def _timed(blocks: Iterator[NDArray[np.generic]], spent: list[float]) -> Iterator[NDArray[np.generic]]:
    """``blocks``, adding the seconds spent making each to ``spent[0]`` (the quantize stage of a fused
    write)."""
    while True:
        start = time.perf_counter()
        block = next(blocks, None)
        spent[0] += time.perf_counter() - start
        if block is None:
            return
        yield block


def _with_times(result: ExportResult, started: float, timings: StageTimings) -> ExportResult:
    return replace(result, elapsed=time.perf_counter() - started, timings=timings)


def export_audio(
    audio: Any,
    sample_rate: int,
    path: str | Path,
    options: ExportOptions | None = None,
    *,
    scale: float | None = None,
    frames_seen: Callable[[NDArray[np.generic]], None] | None = None,
) -> ExportResult:
    """Normalize one clip (tensor or array, ``(S,)`` or ``(C, S)``) and write it atomically to ``path``.

    The format comes from the extension (``.wav``/``.flac``). ``scale`` is the full-scale value of
    integer input. Raises InvalidAudio/InvalidInput before writing anything, StorageError if the write
    fails (nothing is left at ``path``). ``frames_seen`` is called with the ``(S, C)`` frames (quantized for
    the subtype) before they are written: what it raises is raised and nothing is written.
    """
    started = time.perf_counter()
    opts = _options(options)
    rate = check_sample_rate(sample_rate)
    target, fmt = check_target(path, opts.subtype, sample_rate=rate)
    validate.callback(frames_seen, "frames_seen")  # not a TypeError once the audio was measured
    x = as_audio(audio, scale=scale)
    check_wav_size(fmt, opts.subtype, x.shape)
    return _export_one(x, rate, target, fmt, options=opts, started=started, frames_seen=frames_seen)


def export_batch(
    audio: Any,
    sample_rate: int,
    paths: Sequence[str | Path],
    options: ExportOptions | None = None,
    *,
    scale: float | None = None,
    workers: int | None = None,
) -> list[ExportResult]:
    """Export a ``(B, C, S)`` batch (one device transfer) to ``paths`` on a thread pool.

    All or nothing for the files at ``paths``: each item writes its file to a temp beside its path, and
    only once every item has succeeded are they renamed into place (and their folders fsynced). If any item
    fails, the items not started are not started, every temp is removed and the first error is raised (with
    a note naming the item): no file at any of ``paths`` is changed (an earlier file stays as it was, a path
    that had none still has none); so for an interrupt (Ctrl-C) while it waits. A rename or a folder's fsync
    failing in that last step raises ``StorageError`` naming the paths that did not get their files (see
    ``files.place``): the others did.
    """
    started = time.perf_counter()
    opts = _options(options)
    rate = check_sample_rate(sample_rate)
    if isinstance(paths, str | bytes | os.PathLike) or not isinstance(paths, Iterable):
        raise InvalidInput(f"paths must be a sequence of paths, one per item, got {type(paths).__name__}")
    if isinstance(paths, AbstractSet):  # item i goes to paths[i]: a set's order changes between processes
        raise InvalidInput(
            f"paths must be a sequence of paths, one per item in order; a {type(paths).__name__} has no order"
        )
    targets = [check_target(p, opts.subtype, sample_rate=rate) for p in paths]
    if workers is not None:
        workers = validate.integer(workers, "workers", 1, 1_024)
    batch = as_audio_batch(audio, scale=scale)
    if len(targets) != batch.shape[0]:
        raise InvalidInput(f"{len(targets)} paths for a batch of {batch.shape[0]}; give one path per item")
    for _, fmt in targets:
        check_wav_size(fmt, opts.subtype, batch.shape)
    if len({_same_file_key(t) for t, _ in targets}) != len(targets):
        raise InvalidInput("the batch's paths must be distinct (after resolving '..', symlinks and the cwd)")
    pool_size = workers or min(len(targets), os.cpu_count() or 1)
    if len(targets) > 1:  # the items' length recurs: its far spectrum made once, before they start
        keep_spectrum(batch.shape[2], now=True)
    items = [
        functools.partial(_export_one, batch[i], rate, target, fmt, options=opts, started=started)
        for i, (target, fmt) in enumerate(targets)
    ]
    return run_all(items, pool_size, _outcome)


def _options(options: object) -> ExportOptions:
    if options is None:
        return ExportOptions()
    if not isinstance(options, ExportOptions):
        raise InvalidInput(f"options must be an ExportOptions or None, got {type(options).__name__}")
    return options


def _same_file_key(path: Path) -> Path:
    """The file ``path`` names, whatever its spelling (relative or absolute, ``..``, symlinked folders)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compared as spelled, made absolute
        return Path(os.path.abspath(path))


def __getattr__(name: str) -> object:
    """``Status``: the former name of :data:`LoudnessStatus` (it clashed with ``models.Status``)."""
    if name == "Status":
        warnings.warn(
            "musicstore.audio.export.Status is renamed LoudnessStatus", DeprecationWarning, stacklevel=2
        )
        return LoudnessStatus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _outcome(future: Future[_T]) -> _T | Exception:
    """A batch item's result, or the ``Exception`` it raised (``MemoryError`` too: the other items' temps
    must still go)."""
    try:
        return future.result()
    except Exception as exc:
        return exc


__all__ = [  # with the options and results, which live in musicstore.audio.export_options
    "ExportOptions",
    "ExportResult",
    "LoudnessStatus",
    "StageTimings",
    "check_target",
    "export_audio",
    "export_batch",
]
