"""Export a claimed generation's audio and record it in the store: the one module that uses both.

``export_generation`` writes the clip to ``<root>/YYYY/MM/DD/<id>.<ext>`` and completes the generation;
``export_batch_generations`` does the same for a ``(B, C, S)`` batch on a thread pool, item by item. The root
is a local folder (a path, ``file://``) or an object store (``s3://BUCKET/PREFIX``, or any ``FileStore``).
The file reaches its final path (or key) only inside the transaction that completes the row, after the
worker's claim has been checked under the row lock and before the row is completed (whose triggers' locks are
then held only until the commit, not through an upload), so a worker that lost its lease can never replace or
remove the file of the worker that took over. The row records the storage URL, key and SHA-256 of the file
(``musicstore.ops.storage``). The waveform peaks of the frames being written (by default; ``peaks=False``
opts out) go beside it as ``<id>.peaks.<spp>.<bits>[.split].json`` in the same transaction, recorded in the
row's ``metadata["peaks"]``. See docs/recording.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from . import processes, validate
from .audio import ExportOptions, ExportResult, as_audio, as_audio_batch, export_audio, layout_path
from .audio.export import check_target
from .audio.peaks import PeaksSpec, WaveformPeaks, frames_peaks
from .audio.tags import provenance_of, tag_master, want_tags
from .errors import (
    InvalidAudio,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    MusicstoreError,
    StorageError,
)
from .filestore import FileStore, LocalFileStore, open_filestore
from .filestore.fsync import fsync
from .models import Generation, Status
from .ops import DEFAULT_MAX_ATTEMPTS
from .ops.jobs import lock_for_completion
from .ops.storage import get_storage, record_storage
from .rendering import StoredPeaks, peaks_name, put_marked
from .storage_names import store_url
from .store import Store, require_store

OnError = Literal["fail", "retry", "raise"]
_ON_ERROR = ("fail", "retry", "raise")
Root = str | os.PathLike[str] | FileStore
"""Where files go: a folder path, ``file:///PATH``, ``s3://BUCKET/PREFIX`` or an open ``FileStore``."""
Peaks = PeaksSpec | bool | None
"""``peaks=``: a ``PeaksSpec``, ``True`` (the default: ``PeaksSpec()``, 256 samples per pixel, 8 bits,
mixed), or ``False``/``None`` (none made)."""
DEFAULT_PEAKS = PeaksSpec()


@dataclass(frozen=True, slots=True)
class Recorded:
    """A completed generation and what its export wrote (``result.path``: the final path; for an object
    store, the temp file the object was put from, since removed). ``storage_url``/``key``/``checksum``: where
    the file lives, as the row records it. ``peaks``: the waveform peaks put beside it (``None`` with
    ``peaks=False``)."""

    generation: Generation
    result: ExportResult
    storage_url: str | None = None
    key: str | None = None
    checksum: str | None = None
    peaks: StoredPeaks | None = None


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
    ``channels``, ``length``, ``bytes``, ``sha256``; this key wins over ``metadata``'s). A failed peaks write
    fails the job as a failed placing of the audio does. ``True`` (the default) is ``PeaksSpec()`` (256
    samples per pixel, 8 bits, channels mixed); ``False`` (or ``None``): no peaks.

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
    _check_call(generation, on_error, max_attempts, metadata)
    _check_format(ext, options, root=root, worker_id=worker_id, scale=scale)
    spec = _peaks_spec(peaks)
    if generation_time_seconds is not None:
        validate.seconds(generation_time_seconds, "generation_time_seconds", positive=False)
    worker = generation.worker_id if worker_id is None else worker_id
    place = _Placing(
        store=store, generation=generation, worker=worker, on_error=on_error, max_attempts=max_attempts,
        generation_time_seconds=generation_time_seconds, metadata=metadata or {},
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
    is opened once for the batch.
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
        validate.integer(workers, "workers", 1, 1_024)
    for generation, extra in zip(generations, extras, strict=True):
        _check_call(generation, on_error, max_attempts, extra)
    try:
        items: Any = as_audio_batch(audio_batch, scale=scale)  # one device transfer
        scale = None  # the items are float32 now
    except InvalidAudio:
        items = audio_batch  # some item is bad: let each item find out for itself
    folder, objects, opened = _target(root)
    target: Root = objects if objects is not None else folder  # type: ignore[assignment]

    def one(i: int) -> Recorded | Exception:
        try:
            return export_generation(
                store, generations[i], items[i], root=target, worker_id=worker_id, ext=ext, options=options,
                scale=scale, on_error=on_error, max_attempts=max_attempts, metadata=extras[i], tags=tags,
                peaks=peaks,
            )  # fmt: skip
        except Exception as exc:
            return exc

    try:
        with ThreadPoolExecutor(max_workers=workers or min(count, os.cpu_count() or 1) or 1) as pool:
            return list(pool.map(one, range(count)))
    finally:
        if opened and objects is not None:
            objects.close()


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


@dataclass(frozen=True, slots=True)
class _Waveform:
    """The peaks of the frames written, as the JSON bytes to put beside the audio."""

    peaks: WaveformPeaks
    data: bytes
    sha256: str
    split: bool

    def key(self, audio_key: str) -> str:
        name = peaks_name(Path(audio_key), self.peaks.samples_per_pixel, self.peaks.bits, self.split)
        return (Path(audio_key).parent / name).as_posix()

    def record(self, audio_key: str) -> dict[str, Any]:
        """``metadata["peaks"]`` of the row."""
        p = self.peaks
        return {
            "key": self.key(audio_key), "samples_per_pixel": p.samples_per_pixel, "bits": p.bits,
            "channels": p.channels, "length": p.length, "bytes": len(self.data), "sha256": self.sha256,
        }  # fmt: skip

    def stored(self, generation_id: str, url: str, audio_key: str) -> StoredPeaks:
        return StoredPeaks(generation_id, url, self.key(audio_key), len(self.data), self.sha256, self.peaks)


def _check_store(store: object) -> None:
    """A store the recording can complete the row in (its ``transaction``): checked before the export
    spends any work, which otherwise ended in a bare TypeError or AttributeError with the row processing."""
    require_store(store, "store must be a musicstore Store", "from asyncio code: a Store, in a thread")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Placing:
    """One generation's export and recording: the audio encoded, then placed and recorded, or the row failed
    per ``on_error``."""

    store: Store
    generation: Generation
    worker: str | None
    on_error: str
    max_attempts: int
    generation_time_seconds: float | None
    metadata: Mapping[str, Any]
    tags: bool = False
    peaks: PeaksSpec | None = None

    def export(
        self, audio: Any, staged: Path, options: ExportOptions | None, scale: float | None
    ) -> tuple[ExportResult, _Waveform | None]:
        """The clip encoded at ``staged`` and the peaks of its frames (computed as they are written); if that
        fails, the row is failed per ``on_error`` and it raises."""
        generation, spec = self.generation, self.peaks
        seen: list[_Waveform] = []

        def peaks_of(frames: Any) -> None:
            assert spec is not None
            peaks = frames_peaks(
                frames, generation.sample_rate, spec.samples_per_pixel, bits=spec.bits,
                split_channels=spec.split_channels,
            )  # fmt: skip
            data = peaks.to_json().encode()
            seen.append(_Waveform(peaks, data, hashlib.sha256(data).hexdigest(), spec.split_channels))

        try:
            clip = as_audio(audio, scale=scale)  # (C, S) float32: checked once, the device left once
            if clip.shape[0] != generation.channels:
                raise InvalidAudio(
                    f"audio has {clip.shape[0]} channel(s) (shape {clip.shape}) but generation "
                    f"{generation.id} requested {generation.channels}; pass (C, S) audio with "
                    f"C = {generation.channels}"
                )
            result = export_audio(
                clip, generation.sample_rate, staged, options, frames_seen=None if spec is None else peaks_of
            )
            waveform = seen[0] if seen else None
            if not self.tags:
                return result, waveform
            # tagged here, before it is placed: the checksum and size are of the tagged bytes
            provenance = provenance_of(generation, self.metadata)
            size = tag_master(staged, provenance, result.loudness_after, result.true_peak_after)
            return replace(result, bytes=size), waveform
        except BaseException as exc:
            try:  # written, then tagging failed (a full disk: the tagged copy needs the space again)
                staged.unlink(missing_ok=True)
            except NotADirectoryError:
                pass  # its folder is a file (the root, or a date folder's place): nothing was written
            except OSError as cleanup:
                exc.add_note(f"and removing {staged} failed: {cleanup}")
            if isinstance(exc, Exception):  # interrupted (Ctrl-C): left processing, its lease will expire
                self.failed(exc)
            raise

    def failed(self, error: Exception) -> None:
        """The row failed, retried or left processing per ``on_error``; a note on ``error`` says which."""
        generation_id = self.generation.id
        if self.on_error == "raise":
            error.add_note(f"generation {generation_id} was left processing (on_error='raise')")
            return
        message = f"export failed: {type(error).__name__}: {error}"
        try:
            status = self.store.fail(
                generation_id,
                message,
                retry=self.on_error == "retry",
                max_attempts=self.max_attempts,
                worker_id=self.worker,
            )
        except MusicstoreError as db_error:
            error.add_note(f"marking generation {generation_id} failed did not work either: {db_error!r}")
            return
        error.add_note(f"generation {generation_id} is now {status} (on_error={self.on_error!r})")

    def claim(self, tx: Any) -> None:
        """The row locked in ``tx`` and its claim checked (raises LeaseLost...), before any file of it takes
        its place: the row completed after that (``complete``) in the same transaction, once the file is in.

        The claim is this export's own: when the generation passed is a claim (processing, a worker and a
        claim time), the row must still be that claim (its ``attempts`` and ``started_at``), not only held by
        a worker of the same id: one taken back and claimed again under that id (another host's gpu-0, a
        worker restarted under its name) is LeaseLost, and ``tx`` (rolled back by the raise) is undone.
        Only the row is locked while the file is put (an upload can take seconds): the completing UPDATE,
        whose triggers lock rows other sessions' status changes need (the session's shard of the totals on
        PostgreSQL, the owner key's lane), runs after the put, just before the commit."""
        self._check_claim(tx.run(lock_for_completion, self.generation.id, worker_id=self.worker))

    def complete(self, tx: Any, result: ExportResult, key: str, waveform: _Waveform | None) -> Generation:
        """The row completed in ``tx``, its claim checked and locked by ``claim`` earlier in ``tx`` (checked
        again here)."""
        recorded = {} if waveform is None else {"peaks": waveform.record(key)}
        done: Generation = tx.complete_generation(
            self.generation.id,
            file_path=key,
            file_size_bytes=result.bytes,
            generation_time_seconds=self.generation_time_seconds,
            metadata={**result.as_metadata(), **self.metadata, **recorded},
            worker_id=self.worker,
        )
        self._check_claim(done)
        return done

    def _check_claim(self, row: Generation) -> None:
        """LeaseLost unless ``row`` (processing, read under its lock) is still this export's claim."""
        claim = self.generation
        if (
            claim.status is Status.PROCESSING
            and claim.worker_id is not None
            and claim.started_at is not None
            and (row.attempts, row.started_at) != (claim.attempts, claim.started_at)
        ):
            raise LeaseLost(
                f"generation {claim.id} was claimed again since this claim (attempt {claim.attempts} by "
                f"{claim.worker_id} at {claim.started_at.isoformat()}; now attempt {row.attempts} at "
                f"{row.started_at.isoformat() if row.started_at else None}): a worker of the same id "
                "took it over after this claim's lease ran out; drop this result",
                current=Status.PROCESSING.value,
                owner=row.worker_id,
            )

    def into_folder(
        self, result: ExportResult, root: Path, final: Path, waveform: _Waveform | None
    ) -> Recorded:
        """The staged file renamed onto ``final`` and the peaks written (atomically) beside it, inside the
        transaction that completes the row."""
        staged, placed, placing, peaks_placed, committing = result.path, False, False, False, False
        key, url = final.relative_to(root).as_posix(), root.absolute().as_uri()
        peaks_path = None if waveform is None else root / waveform.key(key)
        try:
            checksum = _sha256(staged)
            with self.store.transaction() as tx:
                self.claim(tx)
                placing = True
                try:  # the claim is checked and the row locked: only now may the file take its place
                    os.replace(staged, final)
                    placed = True
                    fsync(final.parent, directory=True)
                except OSError as exc:
                    raise StorageError(f"moving {staged} to {final} failed: {exc}") from exc
                if waveform is not None and peaks_path is not None:  # whole or not at all (StorageError)
                    LocalFileStore(root, create=False).put(
                        waveform.key(key), waveform.data, content_type="application/json", overwrite=True
                    )  # with its checksum kept (xattr): render_peaks later finds these bytes, a retry
                    peaks_placed = True
                placing = False
                done = self.complete(tx, result, key, waveform)
                tx.run(record_storage, self.generation.id, storage_url=url, key=key, checksum=checksum)
                committing = True
        except BaseException as exc:
            landed = self._landed(exc, key, checksum) if committing else False
            again = self._again(exc, landed)
            if again is not None:  # the commit landed; only its reply was lost
                stored = None if waveform is None else waveform.stored(self.generation.id, url, key)
                return Recorded(again, replace(result, path=final), url, key, checksum, stored)
            if landed is not False:  # the row records the files, or may: never a completed row without them
                raise
            placed_paths = ([final] if placed else []) + ([peaks_path] if peaks_placed and peaks_path else [])
            for path in [staged, *placed_paths]:
                try:
                    path.unlink(missing_ok=True)
                except OSError as cleanup:
                    exc.add_note(f"and removing {path} failed: {cleanup}")
            self._not_recorded(exc, placing)
            raise
        stored = None if waveform is None else waveform.stored(self.generation.id, url, key)
        return Recorded(done, replace(result, path=final), url, key, checksum, stored)

    def into_objects(
        self, result: ExportResult, objects: FileStore, key: str, waveform: _Waveform | None
    ) -> Recorded:
        """The encoded file, then its peaks, put at ``key`` and beside it (conditional creates) in the
        transaction completing the row."""
        placed, placing, peaks_placed, committing = False, False, False, False
        peaks_key = None if waveform is None else waveform.key(key)
        checksum: str | None = None
        try:
            with self.store.transaction() as tx:
                self.claim(tx)
                placing = True
                with open(result.path, "rb") as source:
                    info = put_marked(  # holding the row's lock, with a valid claim, no file recorded yet
                        objects, key, source, self.generation.id,
                        content_type=_CONTENT_TYPES.get(result.format.lower()),
                        metadata=_object_metadata(result),
                    )  # fmt: skip
                placed = True
                if waveform is not None and peaks_key is not None:  # ObjectExists: not ours, left alone
                    put_marked(
                        objects, peaks_key, waveform.data, self.generation.id, content_type="application/json"
                    )
                    peaks_placed = True
                placing = False
                checksum = info.checksum
                assert checksum is not None  # a put always reports the SHA-256 it computed
                done = self.complete(tx, result, key, waveform)  # its triggers' locks held only from here
                tx.run(
                    record_storage, self.generation.id, storage_url=objects.url, key=key, checksum=checksum
                )
                committing = True
        except BaseException as exc:
            landed = self._landed(exc, key, checksum) if committing and checksum else False
            again = self._again(exc, landed)
            if again is not None:  # the commit landed; only its reply was lost
                stored = None if waveform is None else waveform.stored(self.generation.id, objects.url, key)
                return Recorded(again, result, objects.url, key, checksum, stored)
            if landed is not False:  # the row records the objects, or may: never a completed row without them
                raise
            placed_keys = ([key] if placed else []) + ([peaks_key] if peaks_placed and peaks_key else [])
            for placed_key in placed_keys:
                try:
                    objects.delete(placed_key)
                except Exception as cleanup:
                    exc.add_note(f"and removing {placed_key} from {objects.url} failed: {cleanup}")
            self._not_recorded(exc, placing)
            raise
        stored = None if waveform is None else waveform.stored(self.generation.id, objects.url, key)
        return Recorded(done, result, objects.url, key, checksum, stored)

    def _landed(self, exc: BaseException, key: str, checksum: str) -> bool | None:
        """Whether the completing commit that raised ``exc`` landed (a connection lost after the server
        committed, before its reply): the row, read anew, records this file; ``None``: it cannot be read."""
        try:
            stored = self.store.run(get_storage, self.generation.id)
        except Exception as read_error:
            exc.add_note(
                f"generation {self.generation.id}: whether its commit landed is unknown ({read_error!r}); "
                f"its file {key} was kept (a next attempt replaces it, reconcile reports it if orphaned)"
            )
            return None
        landed = stored.status is Status.COMPLETED and stored.key == key and stored.checksum == checksum
        if landed:
            exc.add_note(f"generation {self.generation.id} was recorded (its commit landed); file kept")
        return landed

    def _again(self, exc: BaseException, landed: bool | None) -> Generation | None:
        """The completed row, read anew, when the commit that raised ``exc`` (an ``Exception``) landed."""
        if not landed or not isinstance(exc, Exception):  # Ctrl-C stays raised, whatever the commit did
            return None
        return self.store.get_generation(self.generation.id)

    def _not_recorded(self, exc: BaseException, placing: bool) -> None:
        exc.add_note(f"generation {self.generation.id} was not recorded; its file was removed")
        if placing and isinstance(exc, StorageError):  # the file could not take its place: the job's fault
            self.failed(exc)


_CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}


def _object_metadata(result: ExportResult) -> dict[str, str]:
    """The audio figures as S3 user metadata (printable ASCII values; levels that are -inf left out)."""
    figures: dict[str, str] = {}
    for name, value in result.as_metadata().items():
        if value is None or value == "":
            continue
        figures[name.replace("_", "-")] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    return figures


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while piece := source.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()
