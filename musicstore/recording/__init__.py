"""Export a claimed generation's audio and record it in the store: the one module that uses both.

``export_generation`` writes the clip to ``<root>/YYYY/MM/DD/<id>.<ext>`` and completes the generation;
``export_batch_generations`` does the same for a ``(B, C, S)`` batch on a thread pool, item by item. The root
is a local folder (a path, ``file://``) or an object store (``s3://BUCKET/PREFIX``, or any ``FileStore``).
A folder's file reaches its final path only inside the transaction that completes the row, after the
worker's claim has been checked under the row lock; an object store's objects are put before that transaction
(no lock held through an upload: ``recording.uploads``), marked with the attempt, which removes only its own,
under the row lock. Either way a worker that lost its lease can never replace or remove the file of the
worker that took over. The row records the storage URL, key and SHA-256 of the file
(``musicstore.ops.storage``). The waveform peaks of the frames being written (by default; ``peaks=False``
opts out) go beside it as ``<id>.peaks.<spp>.<bits>[.split].json`` with their normalised [−1, 1] form,
``….normalized.json`` (``PeaksSpec(normalized=False)`` leaves it out), in the same transaction,
recorded in the row's ``metadata["peaks"]``. See docs/recording.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from .. import interrupt, processes, validate
from ..audio import ExportOptions, as_audio_batch, layout_path
from ..audio.arrays import check_scale_applies
from ..audio.export import check_target
from ..audio.peaks import PeaksSpec
from ..audio.tags import want_tags
from ..audio.threads import Batch, waited
from ..errors import (
    InvalidAudio,
    InvalidInput,
    InvalidTransition,
    NotFound,
    StorageError,
    shown,
)
from ..filestore import FileStore, LocalFileStore, check_filestore, open_filestore
from ..models import Generation, Status
from ..ops import DEFAULT_MAX_ATTEMPTS
from ..ops.attempts import put_back
from ..storage_names import store_url
from ..store import Store, require_store
from .placing import Recorded, _Placing, _staging_path

OnError = Literal["fail", "retry", "raise"]
_ON_ERROR = ("fail", "retry", "raise")
Root = str | os.PathLike[str] | FileStore
"""Where files go: a folder path, ``file:///PATH``, ``s3://BUCKET/PREFIX`` or an open ``FileStore``."""
Peaks = PeaksSpec | bool | None
"""``peaks=``: a ``PeaksSpec``, ``True`` (the default: ``PeaksSpec()``, 256 samples per pixel, 8 bits,
mixed, with the normalised file), or ``False``/``None`` (none made)."""
DEFAULT_PEAKS = PeaksSpec()
_PUT_BACK = "the batch export was interrupted ({}) before this item started: put back in the queue"


def export_generation(
    store: Store,
    generation: Generation,
    audio: Any,
    *,
    root: Root,
    worker_id: str | None = None,
    ext: str = "wav",
    options: ExportOptions | None = None,
    scale: float | None = None,
    on_error: OnError = "fail",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    generation_time_seconds: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: bool | None = None,
    peaks: Peaks = True,
) -> Recorded:
    """Export ``audio`` (``(S,)`` or ``(C, S)``, tensor or array) for a claimed generation and complete it.

    The sample rate is the generation's; its channel count must match (InvalidAudio otherwise).
    ``worker_id`` defaults to the claim's worker, so a worker that lost its lease gets LeaseLost.
    The row's metadata gains the export's figures (``ExportResult.as_metadata()``) and ``metadata``
    (whose keys win). ``generation_time_seconds`` defaults to the time since the claim.

    ``tags``: the file gets its provenance and ReplayGain tags (prompt, model and version, ``seed`` from the
    metadata, generation id, creation time; WAV ``LIST/INFO`` and ``id3 ``, FLAC Vorbis comments:
    ``audio.tags.tag_master``) after it is encoded and before it is placed, so the checksum is of the tagged
    bytes; ``None`` (the default) tags when mutagen (the ``renditions`` extra) is installed.

    ``peaks``: the waveform peaks (audiowaveform JSON, version 2) of the frames being written, computed in
    the same pass (not read back), go beside the file as ``<id>.peaks.<spp>.<bits>[.split].json``
    (``rendering.peaks_name``) with the same atomicity, placed after the audio and before the row is
    completed, and are recorded in ``metadata["peaks"]`` (``key``, ``samples_per_pixel``, ``bits``,
    ``channels``, ``length``, ``bytes``, ``sha256``; this key wins over ``metadata``'s); unless
    ``PeaksSpec(normalized=False)``, beside them the normalised peaks (``WaveformPeaks.normalized_json``:
    floats in [−1, 1] per channel for a browser player), ``….normalized.json``, recorded in
    ``metadata["peaks"]["normalized"]`` (``key``, ``bytes``, ``sha256``). A failed peaks write fails the job
    as a failed placing of the audio does. ``True`` (the default) is ``PeaksSpec()`` (256
    samples per pixel, 8 bits, channels mixed, with the normalised file); ``False`` (or ``None``): no peaks.

    ``root`` as an ``s3://`` URL opens a client for this call: pass an open ``FileStore``
    (``open_filestore``) to reuse one. On an object store the clip is encoded to a temp file, then put at
    ``<prefix>/YYYY/MM/DD/<id>.<ext>`` with a conditional create, its content type and the audio figures as
    object metadata; the row records the store's URL, the key and the SHA-256.

    If the export fails (bad audio, channel mismatch, write error) or the file cannot take its place (the
    final rename or the put fails, another object holds the key), no file of it is left at the final path or
    key (one already there is untouched), the row is failed for good (``on_error="fail"``, the default),
    failed with retry while attempts remain (``"retry"``, up to ``max_attempts``) or left processing
    (``"raise"``), and the error is re-raised with a note saying what happened to the row. If recording
    fails (LeaseLost, NotFound, InvalidTransition, DatabaseError), the file is removed, the row is left as it
    is and the error raised; but a commit that raised (its reply lost with the connection) is checked by
    reading the row anew: if it records the file the call returns the recording, and if the row cannot be
    read the file is kept (the error raised): never a completed row without its file.
    """
    _check_store(store)
    extra = _check_call(generation, on_error, max_attempts, metadata)
    _check_format(ext, options, root=root, worker_id=worker_id, scale=scale)
    check_scale_applies(audio, scale)  # as a batch's conversion raises it: before the row can be failed
    spec = _peaks_spec(peaks)
    if generation_time_seconds is not None:
        generation_time_seconds = validate.seconds(
            generation_time_seconds, "generation_time_seconds", positive=False
        )
    worker = generation.worker_id if worker_id is None else worker_id
    place = _Placing(
        store=store, generation=generation, worker=worker, on_error=on_error, max_attempts=max_attempts,
        generation_time_seconds=generation_time_seconds, metadata=extra,
        tags=want_tags(tags), peaks=spec,
    )  # fmt: skip
    folder, objects, opened = _target(root)
    if objects is None:
        assert folder is not None
        final = layout_path(folder, generation.id, ext, when=generation.created_at)
        staged = _staging_path(final)
        result, waveform = place.export(audio, staged, options, scale)
        return place.into_folder(result, folder, final, waveform)
    try:
        key = layout_path(".", generation.id, ext, when=generation.created_at).as_posix()
        temp = _export_folder()
        try:
            result, waveform = place.export(audio, temp / f"{generation.id}.{ext}", options, scale)
            return place.into_objects(result, objects, key, waveform)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    finally:
        if opened:
            objects.close()


EXPORT_TEMP_PREFIX = "musicstore-export-"
"""The temp folders (``$TMPDIR/musicstore-export-*``) an export to an object store encodes its clip in."""
STALE_EXPORT_SECONDS = 3600.0
"""How long a temp folder of an exporter that is gone stays before an export removes it: its maker is known
gone by pid and start time; the age also keeps the folder of an exporter this host cannot see (another pid
namespace sharing the temp folder) while it could still be uploading."""
SWEEP_EVERY_SECONDS = 600.0
"""How often (at most) a process's exports look for such folders (one listing of the temp folder)."""
_swept: dict[int, float] = {}


def _export_folder() -> Path:
    """A temp folder for one export to an object store, naming this process (``processes.owned_folder``),
    after removing, at most every ``SWEEP_EVERY_SECONDS``, those that exporters killed mid-export (SIGKILL:
    no ``finally`` ran) left behind, each with a whole encoded clip in it."""
    pid, now = os.getpid(), time.monotonic()
    last = _swept.get(pid)
    if last is None or now - last >= SWEEP_EVERY_SECONDS:
        _swept[pid] = now
        with contextlib.suppress(OSError):  # an unreadable temp folder: the export goes on, as before
            processes.sweep(EXPORT_TEMP_PREFIX, STALE_EXPORT_SECONDS)
    try:
        return processes.owned_folder(EXPORT_TEMP_PREFIX)
    except OSError as exc:
        raise StorageError(f"cannot make a temp folder to encode the export in: {exc}") from exc


def export_batch_generations(
    store: Store,
    generations: Sequence[Generation],
    audio_batch: Any,
    *,
    root: Root,
    worker_id: str | None = None,
    ext: str = "wav",
    options: ExportOptions | None = None,
    scale: float | None = None,
    on_error: OnError = "fail",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    workers: int | None = None,
    tags: bool | None = None,
    peaks: Peaks = True,
) -> list[Recorded | Exception]:
    """Export item ``i`` of a ``(B, C, S)`` batch for ``generations[i]``, in parallel; one outcome each.

    Each item completes or fails on its own, exactly as ``export_generation`` would (same ``on_error``):
    the list holds, in order, a ``Recorded`` or the exception that item raised. A batch that cannot be
    split into one clip per generation (not 3-D, wrong length, repeated ids, a generation not
    processing) raises before anything is written and no row changes. A clean batch leaves a CUDA
    device in one transfer; one with a bad item falls back to converting item by item. An ``s3://`` root
    is opened once for the batch. A Ctrl-C (or another error that ends the wait) lets the items running end,
    puts the items not started back in the queue at once (``_put_back``, as a ``Worker`` does), then is
    raised; so does an error before any item started (a root that cannot be opened), but a caller's mistake
    (``InvalidInput``, ``InvalidTransition``: the rows stay claimed).
    """
    _check_store(store)
    if not isinstance(generations, Sequence) or isinstance(generations, str):
        raise InvalidInput(f"generations must be a sequence of Generation, got {type(generations).__name__}")
    if metadata is not None and (not isinstance(metadata, Sequence) or isinstance(metadata, str)):
        raise InvalidInput(
            f"metadata must be a sequence (one entry per generation), got {type(metadata).__name__}"
        )
    count = len(generations)
    for item in generations:
        if not isinstance(item, Generation):
            raise InvalidInput(
                f"generations must hold Generation rows (from claim_batch), got {type(item).__name__}"
            )
    extras = list(metadata) if metadata is not None else [None] * count
    shape = tuple(getattr(audio_batch, "shape", ()))
    if len(shape) != 3 or shape[0] != count:
        raise InvalidInput(f"a batch for {count} generations must have shape ({count}, C, S), got {shape}")
    if len(extras) != count or len({g.id for g in generations}) != count:
        raise InvalidInput("give one metadata entry per generation, and each generation once")
    _check_format(ext, options, root=root, worker_id=worker_id, scale=scale)
    _peaks_spec(peaks)
    if workers is not None:
        workers = validate.integer(workers, "workers", 1, 1_024)
    for generation, extra in zip(generations, extras, strict=True):
        _check_call(generation, on_error, max_attempts, extra)
    try:
        try:
            items: Any = as_audio_batch(audio_batch, scale=scale)  # one device transfer
            scale = None  # the items are float32 now
        except InvalidAudio:
            items = audio_batch  # some item is bad: let each item find out for itself
        folder, objects, opened = _target(root)
    except (InvalidInput, InvalidTransition):  # a caller's mistake: the rows stay claimed, to call again
        raise
    except BaseException as stopped:  # a Ctrl-C, a root that cannot be opened, a failed conversion...
        _put_back(store, generations, worker_id, stopped)  # before any item started: every one goes back
        raise
    target: Root = objects if objects is not None else folder  # type: ignore[assignment]

    batch = Batch()  # the items started, waited for after an interrupt (a second one too)
    started = [False] * count  # final once batch.wind_up() returned: no item starts after it

    def one(i: int) -> Recorded | Exception:
        if not batch.begin():  # interrupted meanwhile: put back in the queue once the batch winds up
            return StorageError("not started: the batch was interrupted")
        started[i] = True
        try:
            return export_generation(
                store, generations[i], items[i], root=target, worker_id=worker_id, ext=ext, options=options,
                scale=scale, on_error=on_error, max_attempts=max_attempts, metadata=extras[i], tags=tags,
                peaks=peaks,
            )  # fmt: skip
        except Exception as exc:
            return exc
        finally:
            batch.end()

    interrupted: BaseException | None = None
    try:
        with (
            interrupt.held() as signals,  # taken between waits: never inside the pool's or a future's code
            ThreadPoolExecutor(max_workers=workers or min(count, os.cpu_count() or 1) or 1) as pool,
        ):
            try:
                done = waited([pool.submit(one, i) for i in range(count)], Future.result, signals)
            except BaseException as exc:  # Ctrl-C: the items running end (recorded, or failed as on_error
                interrupted = exc  # says) before the caller can close its store (or this, its file store)
                signals.drop()
                batch.wind_up()
        if interrupted is None:
            return done
        left = [g for g, began in zip(generations, started, strict=True) if not began]
        _put_back(store, left, worker_id, interrupted)
        raise interrupted
    finally:
        if opened and objects is not None:
            objects.close()


def _put_back(
    store: Store, generations: Sequence[Generation], worker_id: str | None, why: BaseException
) -> None:
    """Put the claimed ``generations`` a batch never started back in the queue, as a ``Worker`` does its job
    in hand (``ops.attempts.put_back``), each only while it is processing for the claim's worker
    (``worker_id``, else the one it was claimed by): one completed, cancelled or taken over meanwhile is not
    touched. ``why`` (the interrupt, raised next) is named in each row's error, and gets a note for each
    put-back that failed (left to its lease). Each write is whole (a Ctrl-C in it is held until it ends); a
    second Ctrl-C stops the put-backs, noted too."""
    message = _PUT_BACK.format(type(why).__name__)
    left = list(generations)
    try:
        while left:
            generation = left.pop(0)
            if worker_id is None and generation.worker_id is None:  # no claim to check: left to its lease
                continue
            try:
                with interrupt.deferred():
                    put_back(store, generation, message, worker_id)
            except (InvalidTransition, NotFound):  # no longer this claim: nothing was written
                pass
            except Exception as exc:
                why.add_note(
                    f"generation {generation.id} (not started) was not put back in the queue "
                    f"({type(exc).__name__}): it stays claimed until its lease expires"
                )
    except KeyboardInterrupt:
        if left:
            why.add_note(
                f"a second interrupt stopped the put-backs: {len(left)} generations not started stay claimed "
                f"until their lease expires ({', '.join(g.id for g in left)})"
            )


def _target(root: Root) -> tuple[Path | None, FileStore | None, bool]:
    """A local root folder, or an object store (and whether it was opened here, to be closed)."""
    if isinstance(root, LocalFileStore):
        return root.root, None, False
    if isinstance(root, FileStore):
        return None, root, False
    text = os.fspath(root)
    if "://" not in text:
        return Path(text), None, False
    store = open_filestore(text)
    if isinstance(store, LocalFileStore):
        return store.root, None, False
    return None, store, True


def _check_format(
    ext: str, options: ExportOptions | None, *, root: object, worker_id: object, scale: object
) -> None:
    """An extension, or a subtype its format cannot hold, is a caller mistake: it would fail every job."""
    if not isinstance(ext, str):
        raise InvalidInput(f"ext must be a str such as 'wav' or 'flac', got {type(ext).__name__}")
    if options is not None and not isinstance(options, ExportOptions):
        raise InvalidInput(f"options must be an ExportOptions or None, got {type(options).__name__}")
    if not isinstance(root, FileStore) and (not isinstance(root, str | os.PathLike) or "\x00" in str(root)):
        raise InvalidInput(
            f"root must be a path, file:// or s3:// URL, or a FileStore (no NUL), got {type(root).__name__}"
        )
    if isinstance(root, FileStore):
        try:  # what record_storage records after the put: refused now, before any export or upload
            store_url(root.url)
        except InvalidInput as exc:
            raise InvalidInput(  # its url not echoed: store_url refuses one with credentials
                f"files put in this {type(root).__name__} cannot be recorded, since its url is no storage "
                f"URL a row can name ({exc}); an S3 prefix takes no '#' or '?'"
            ) from None
    else:
        check_filestore(root)  # what open_filestore refuses: s3:/b/m (a Path made of s3://b/m) is no folder
        text = os.fspath(root)
        if "://" not in text or text[:7].lower() == "file://":  # a folder: its URL is recorded (storage_url,
            try:  # at most 2,048 characters): refused now, not after each export
                store_url(text if "://" in text else Path(text).absolute().as_uri())
            except InvalidInput as exc:
                raise InvalidInput(f"files exported under this root cannot be recorded: {exc}") from None
    validate.name(worker_id, "worker_id", optional=True)
    if scale is not None:
        validate.number(scale, "scale", positive=True)
    check_target(Path(f"generation.{ext}"), (options or ExportOptions()).subtype)


def _peaks_spec(peaks: object) -> PeaksSpec | None:
    if peaks is None or peaks is False:
        return None
    if peaks is True:
        return DEFAULT_PEAKS
    if not isinstance(peaks, PeaksSpec):
        raise InvalidInput(f"peaks must be a PeaksSpec, True, False or None, got {type(peaks).__name__}")
    return peaks


def _check_store(store: object) -> None:
    """A store the recording can complete the row in (its ``transaction``): checked before the export
    spends any work, which otherwise ended in a bare TypeError or AttributeError with the row processing."""
    require_store(store, "store must be a musicstore Store", "from asyncio code: a Store, in a thread")


def _check_call(
    generation: Generation, on_error: str, max_attempts: int, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Caller mistakes: raised before anything is written, and the row is not touched. Returns ``metadata``
    in its plain form (``validate.plain_metadata``: numpy's numbers as plain ones, for the row and the
    tags' seed alike), ``{}`` for None."""
    if not isinstance(generation, Generation):
        raise InvalidInput(
            f"generation must be a Generation (from claim_next), got {type(generation).__name__}"
        )
    if on_error not in _ON_ERROR:
        raise InvalidInput(f"on_error must be one of {_ON_ERROR}, got {shown(on_error)}")
    validate.integer(max_attempts, "max_attempts", 1)
    extra = (
        {}
        if metadata is None
        else validate.plain_metadata(dict(metadata) if isinstance(metadata, Mapping) else metadata)
    )
    if generation.status is not Status.PROCESSING:
        raise InvalidTransition(
            f"generation {generation.id} is {generation.status}; claim it (claim_next) before exporting it",
            current=generation.status.value,
        )
    return extra


__all__ = [  # with Recorded, which lives beside _Placing in recording/placing.py
    "DEFAULT_PEAKS",
    "EXPORT_TEMP_PREFIX",
    "STALE_EXPORT_SECONDS",
    "SWEEP_EVERY_SECONDS",
    "OnError",
    "Peaks",
    "Recorded",
    "Root",
    "export_batch_generations",
    "export_generation",
]
