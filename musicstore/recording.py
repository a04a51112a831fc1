"""Export a claimed generation's audio and record it in the store: the one module that uses both.

``export_generation`` writes the clip to ``<root>/YYYY/MM/DD/<id>.<ext>`` and completes the generation;
``export_batch_generations`` does the same for a ``(B, C, S)`` batch on a thread pool, item by item.
The file reaches its final path only inside the transaction that completes the row, after the worker's
claim has been checked under the row lock, so a worker that lost its lease can never replace or remove
the file of the worker that took over. See docs/recording.md.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from . import validate
from .audio import ExportOptions, ExportResult, as_audio, as_audio_batch, export_audio, layout_path
from .audio.export import check_target
from .errors import InvalidAudio, InvalidInput, InvalidTransition, MusicstoreError, StorageError
from .filestore.fsync import fsync
from .models import Generation, Status
from .ops import DEFAULT_MAX_ATTEMPTS
from .store import Store

OnError = Literal["fail", "retry", "raise"]
_ON_ERROR = ("fail", "retry", "raise")


@dataclass(frozen=True, slots=True)
class Recorded:
    """A completed generation and what its export wrote (``result.path`` is the final path)."""

    generation: Generation
    result: ExportResult


def export_generation(
    store: Store,
    generation: Generation,
    audio: Any,
    *,
    root: str | Path,
    worker_id: str | None = None,
    ext: str = "wav",
    options: ExportOptions | None = None,
    scale: float | None = None,
    on_error: OnError = "fail",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    generation_time_seconds: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Recorded:
    """Export ``audio`` (``(S,)`` or ``(C, S)``, tensor or array) for a claimed generation and complete it.

    The sample rate is the generation's; its channel count must match (InvalidAudio otherwise).
    ``worker_id`` defaults to the claim's worker, so a worker that lost its lease gets LeaseLost.
    The row's metadata gains the export's figures (``ExportResult.as_metadata()``) and ``metadata``
    (whose keys win). ``generation_time_seconds`` defaults to the time since the claim.

    If the export fails (bad audio, channel mismatch, write error) no file of it is left on disk (a file
    already at the final path is untouched), the row is failed for good (``on_error="fail"``, the default),
    failed with retry while attempts remain (``"retry"``, up to ``max_attempts``) or left processing
    (``"raise"``), and the export error is re-raised with a note saying what happened to the row. If
    recording fails (LeaseLost, NotFound, InvalidTransition, DatabaseError), the file is removed, the row is
    left as it is and the error raised.
    """
    _check_call(generation, on_error, max_attempts, metadata)
    _check_format(ext, options, root=root, worker_id=worker_id, scale=scale)
    if generation_time_seconds is not None:
        validate.seconds(generation_time_seconds, "generation_time_seconds", positive=False)
    final = layout_path(root, generation.id, ext, when=generation.created_at)
    worker = generation.worker_id if worker_id is None else worker_id
    staged = _staging_path(final)
    try:
        result = _export(audio, generation, staged, options, scale)
    except Exception as exc:
        _record_failure(
            store, generation.id, exc, on_error=on_error, max_attempts=max_attempts, worker=worker
        )
        raise
    return _complete(
        store, generation, result, root=Path(root), final=final, worker=worker,
        generation_time_seconds=generation_time_seconds, metadata=metadata or {},
    )  # fmt: skip


def export_batch_generations(
    store: Store,
    generations: Sequence[Generation],
    audio_batch: Any,
    *,
    root: str | Path,
    worker_id: str | None = None,
    ext: str = "wav",
    options: ExportOptions | None = None,
    scale: float | None = None,
    on_error: OnError = "fail",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    workers: int | None = None,
) -> list[Recorded | Exception]:
    """Export item ``i`` of a ``(B, C, S)`` batch for ``generations[i]``, in parallel; one outcome each.

    Each item completes or fails on its own, exactly as ``export_generation`` would (same ``on_error``):
    the list holds, in order, a ``Recorded`` or the exception that item raised. A batch that cannot be
    split into one clip per generation (not 3-D, wrong length, repeated ids, a generation not
    processing) raises before anything is written and no row changes. A clean batch leaves a CUDA
    device in one transfer; one with a bad item falls back to converting item by item.
    """
    if not isinstance(generations, Sequence) or isinstance(generations, str):
        raise InvalidInput(f"generations must be a sequence of Generation, got {type(generations).__name__}")
    if metadata is not None and (not isinstance(metadata, Sequence) or isinstance(metadata, str)):
        raise InvalidInput(
            f"metadata must be a sequence (one entry per generation), got {type(metadata).__name__}"
        )
    count = len(generations)
    extras = list(metadata) if metadata is not None else [None] * count
    shape = tuple(getattr(audio_batch, "shape", ()))
    if len(shape) != 3 or shape[0] != count:
        raise InvalidInput(f"a batch for {count} generations must have shape ({count}, C, S), got {shape}")
    if len(extras) != count or len({g.id for g in generations}) != count:
        raise InvalidInput("give one metadata entry per generation, and each generation once")
    _check_format(ext, options, root=root, worker_id=worker_id, scale=scale)
    if workers is not None:
        validate.integer(workers, "workers", 1, 1_024)
    for generation, extra in zip(generations, extras, strict=True):
        _check_call(generation, on_error, max_attempts, extra)
    try:
        items: Any = as_audio_batch(audio_batch, scale=scale)  # one device transfer
        scale = None  # the items are float32 now
    except InvalidAudio:
        items = audio_batch  # some item is bad: let each item find out for itself

    def one(i: int) -> Recorded | Exception:
        try:
            return export_generation(
                store, generations[i], items[i], root=root, worker_id=worker_id, ext=ext, options=options,
                scale=scale, on_error=on_error, max_attempts=max_attempts, metadata=extras[i],
            )  # fmt: skip
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers or min(count, os.cpu_count() or 1) or 1) as pool:
        return list(pool.map(one, range(count)))


def _check_format(
    ext: str, options: ExportOptions | None, *, root: object, worker_id: object, scale: object
) -> None:
    """An extension, or a subtype its format cannot hold, is a caller mistake: it would fail every job."""
    if not isinstance(ext, str):
        raise InvalidInput(f"ext must be a str such as 'wav' or 'flac', got {type(ext).__name__}")
    if options is not None and not isinstance(options, ExportOptions):
        raise InvalidInput(f"options must be an ExportOptions or None, got {type(options).__name__}")
    if not isinstance(root, str | os.PathLike) or "\x00" in str(root):
        raise InvalidInput(f"root must be a path (str or Path) without NUL, got {type(root).__name__}")
    validate.name(worker_id, "worker_id", optional=True)
    if scale is not None:
        validate.number(scale, "scale", positive=True)
    check_target(Path(f"generation.{ext}"), (options or ExportOptions()).subtype)


def _check_call(
    generation: Generation, on_error: str, max_attempts: int, metadata: Mapping[str, Any] | None
) -> None:
    """Caller mistakes: raised before anything is written, and the row is not touched."""
    if not isinstance(generation, Generation):
        raise InvalidInput(
            f"generation must be a Generation (from claim_next), got {type(generation).__name__}"
        )
    if on_error not in _ON_ERROR:
        raise InvalidInput(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    validate.integer(max_attempts, "max_attempts", 1)
    if metadata is not None:
        validate.metadata(dict(metadata) if isinstance(metadata, Mapping) else metadata)
    if generation.status is not Status.PROCESSING:
        raise InvalidTransition(
            f"generation {generation.id} is {generation.status}; claim it (claim_next) before exporting it",
            current=generation.status.value,
        )


def _staging_path(final: Path) -> Path:
    # Hidden, unique per attempt, same directory and extension: renamed onto ``final`` when recorded.
    return final.with_name(f".{final.stem}.{secrets.token_hex(6)}{final.suffix}")


def _export(
    audio: Any, generation: Generation, staged: Path, options: ExportOptions | None, scale: float | None
) -> ExportResult:
    clip = as_audio(audio, scale=scale)  # (C, S) float32: checked once, the device left once
    if clip.shape[0] != generation.channels:
        raise InvalidAudio(
            f"audio has {clip.shape[0]} channel(s) (shape {clip.shape}) but generation {generation.id} "
            f"requested {generation.channels}; pass (C, S) audio with C = {generation.channels}"
        )
    return export_audio(clip, generation.sample_rate, staged, options)


def _record_failure(
    store: Store,
    generation_id: str,
    error: Exception,
    *,
    on_error: str,
    max_attempts: int,
    worker: str | None,
) -> None:
    if on_error == "raise":
        error.add_note(f"generation {generation_id} was left processing (on_error='raise')")
        return
    message = f"export failed: {type(error).__name__}: {error}"
    try:
        status = store.fail(
            generation_id, message, retry=on_error == "retry", max_attempts=max_attempts, worker_id=worker
        )
    except MusicstoreError as db_error:
        error.add_note(f"marking generation {generation_id} failed did not work either: {db_error!r}")
        return
    error.add_note(f"generation {generation_id} is now {status} (on_error={on_error!r})")


def _complete(
    store: Store,
    generation: Generation,
    result: ExportResult,
    *,
    root: Path,
    final: Path,
    worker: str | None,
    generation_time_seconds: float | None,
    metadata: Mapping[str, Any],
) -> Recorded:
    staged, placed = result.path, False
    try:
        with store.transaction() as tx:
            done = tx.complete_generation(
                generation.id,
                file_path=final.relative_to(root).as_posix(),
                file_size_bytes=result.bytes,
                generation_time_seconds=generation_time_seconds,
                metadata={**result.as_metadata(), **metadata},
                worker_id=worker,
            )
            try:  # the claim is checked and the row locked: only now may the file take its place
                os.replace(staged, final)
                placed = True
                fsync(final.parent, directory=True)
            except OSError as exc:
                raise StorageError(f"moving {staged} to {final} failed: {exc}") from exc
    except BaseException as exc:
        for path in (staged, final) if placed else (staged,):
            try:
                path.unlink(missing_ok=True)
            except OSError as cleanup:
                exc.add_note(f"and removing {path} failed: {cleanup}")
        exc.add_note(f"generation {generation.id} was not recorded; its file was removed")
        raise
    return Recorded(done, replace(result, path=final))
