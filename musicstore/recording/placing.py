"""One claimed generation's export placed and recorded (``musicstore.recording``): the audio encoded, its
waveform peaks made, the file put in its place (a folder: renamed in the transaction completing the row; an
object store: put before it, ``uploads``) and the row completed, or the row failed per ``on_error``; and
what a recording returns (``Recorded``)."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..audio import ExportOptions, ExportResult, as_audio, export_audio
from ..audio.peaks import PeaksSpec, WaveformPeaks, frames_peaks
from ..audio.tags import provenance_of, tag_master
from ..errors import (
    InvalidAudio,
    InvalidInput,
    LeaseLost,
    MusicstoreError,
    StorageError,
)
from ..filestore import FileStore, LocalFileStore
from ..filestore.fsync import fsync
from ..models import Generation, Status
from ..ops.jobs import check_for_completion, lock_for_completion
from ..ops.storage import get_storage, record_storage
from ..rendering import StoredPeaks, peaks_name
from ..storage_names import normalized_peaks_key
from ..store import Store
from .uploads import Uploads


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


@dataclass(frozen=True, slots=True)
class _Waveform:
    """The peaks of the frames written, as the JSON bytes to put beside the audio."""

    peaks: WaveformPeaks
    data: bytes
    sha256: str
    split: bool
    normalized: bytes | None
    """The normalised peaks file's bytes (``WaveformPeaks.normalized_json``); None: none is made."""

    @classmethod
    def of(cls, peaks: WaveformPeaks, spec: PeaksSpec) -> _Waveform:
        data, normalized = peaks.to_json().encode(), None
        if spec.normalized:
            normalized = peaks.normalized_json().encode()
        return cls(peaks, data, hashlib.sha256(data).hexdigest(), spec.split_channels, normalized)

    def key(self, audio_key: str) -> str:
        name = peaks_name(Path(audio_key), self.peaks.samples_per_pixel, self.peaks.bits, self.split)
        return (Path(audio_key).parent / name).as_posix()

    def files(self, audio_key: str) -> list[tuple[str, bytes]]:
        """(key, bytes) of the peaks file and of the normalised one beside it (if made), in the order they are
        put."""
        key = self.key(audio_key)
        if self.normalized is None:
            return [(key, self.data)]
        return [(key, self.data), (normalized_peaks_key(key), self.normalized)]

    def stored(self, generation_id: str, url: str, audio_key: str) -> StoredPeaks:
        """The peaks as put beside ``audio_key``; ``.as_metadata()`` is the row's ``metadata["peaks"]``."""
        key, normalized = self.key(audio_key), None
        if self.normalized is not None:
            normalized = {
                "key": normalized_peaks_key(key), "bytes": len(self.normalized),
                "sha256": hashlib.sha256(self.normalized).hexdigest(),
            }  # fmt: skip
        return StoredPeaks(generation_id, url, key, len(self.data), self.sha256, self.peaks, normalized)


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
            seen.append(_Waveform.of(peaks, spec))

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
            error.add_note(
                f"marking generation {generation_id} failed did not work either: "
                f"{type(db_error).__name__}: {db_error}"
            )
            return
        error.add_note(f"generation {generation_id} is now {status} (on_error={self.on_error!r})")

    def claim(self, tx: Any) -> None:
        """The row locked in ``tx`` and its claim checked (raises LeaseLost...), before any file of it takes
        its place: the row completed after that (``complete``) in the same transaction, once the file is in.

        The claim is this export's own: when the generation passed is a claim (processing, a worker and a
        claim time), the row must still be that claim (its ``attempts`` and ``started_at``), not only held by
        a worker of the same id: one taken back and claimed again under that id (another host's gpu-0, a
        worker restarted under its name) is LeaseLost, and ``tx`` (rolled back by the raise) is undone.
        Only the row is locked while a folder's file is renamed into place (an object store's are put before
        the transaction: ``into_objects``): the completing UPDATE, whose triggers lock rows other sessions'
        status changes need (the session's shard of the totals on PostgreSQL, the owner key's lane), runs
        after it, just before the commit."""
        self._check_claim(tx.run(lock_for_completion, self.generation.id, worker_id=self.worker))

    def complete(self, tx: Any, result: ExportResult, key: str, stored: StoredPeaks | None) -> Generation:
        """The row completed in ``tx``, its claim checked and locked by ``claim`` earlier in ``tx`` (checked
        again here)."""
        recorded = {} if stored is None else {"peaks": stored.as_metadata()}
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
        """The staged file renamed onto ``final`` and the peaks and normalised peaks written (atomically)
        beside it, inside the transaction that completes the row."""
        staged, placed, placing, committing = result.path, False, False, False
        key, url = final.relative_to(root).as_posix(), root.absolute().as_uri()
        beside = [] if waveform is None else waveform.files(key)  # the peaks file, then the normalised one
        stored = None if waveform is None else waveform.stored(self.generation.id, url, key)
        beside_placed: list[Path] = []
        putting: tuple[Path, bytes] | None = None  # a write begun, not noted as done: it may have placed it
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
                for beside_key, data in beside:  # each whole or not at all (StorageError)
                    putting = (root / beside_key, data)
                    LocalFileStore(root, create=False).put(
                        beside_key, data, content_type="application/json", overwrite=True
                    )  # with its checksum kept (xattr): render_peaks later finds these bytes, a retry
                    beside_placed.append(root / beside_key)
                    putting = None
                placing = False
                done = self.complete(tx, result, key, stored)
                tx.run(record_storage, self.generation.id, storage_url=url, key=key, checksum=checksum)
                committing = True
        except BaseException as exc:
            landed = self._landed(exc, key, checksum) if committing else False
            again = self._again(exc, landed)
            if again is not None:  # the commit landed; only its reply was lost
                return Recorded(again, replace(result, path=final), url, key, checksum, stored)
            if landed is not False:  # the row records the files, or may: never a completed row without them
                raise
            if placing and not placed and not os.path.lexists(staged):
                placed = True  # renamed, then interrupted (a Ctrl-C landing as the rename returned)
            if putting is not None and _holds(*putting):  # written, then interrupted (a Ctrl-C)
                beside_placed.append(putting[0])
            placed_paths = ([final] if placed else []) + beside_placed
            for path in [staged, *placed_paths]:
                try:
                    path.unlink(missing_ok=True)
                except OSError as cleanup:
                    exc.add_note(f"and removing {path} failed: {cleanup}")
            self._not_recorded(exc, placing)
            raise
        return Recorded(done, replace(result, path=final), url, key, checksum, stored)

    def into_objects(
        self, result: ExportResult, objects: FileStore, key: str, waveform: _Waveform | None
    ) -> Recorded:
        """The encoded file, then its peaks and normalised peaks, put at ``key`` and beside it (conditional
        creates, ``uploads.Uploads``), then the row completed in a transaction of its own: no lock is held
        while an upload runs. The claim is checked before the puts (a lost one puts nothing) and again,
        under the row's lock, in the transaction recording them; objects not recorded are removed under that
        lock."""
        beside = [] if waveform is None else waveform.files(key)  # the peaks file, then the normalised one
        stored = None if waveform is None else waveform.stored(self.generation.id, objects.url, key)
        uploads = Uploads(self.store, objects, self.generation.id, self.claim)
        placing, committing = False, False
        checksum: str | None = None
        try:
            # a claim already lost: nothing is put (a read: no lock, no COMMIT)
            self._check_claim(self.store.run(check_for_completion, self.generation.id, worker_id=self.worker))
            placing = True
            with open(result.path, "rb") as source:
                content_type, figures = _CONTENT_TYPES.get(result.format.lower()), _object_metadata(result)
                info = uploads.attempt(key, lambda: uploads.put(key, source, content_type, figures))
            for beside_key, data in beside:  # ObjectExists: not ours, left alone
                put = functools.partial(uploads.put, beside_key, data, "application/json")
                uploads.attempt(beside_key, put)
            placing = False
            checksum = info.checksum
            assert checksum is not None  # a put always reports the SHA-256 it computed
            with self.store.transaction() as tx:
                self.claim(tx)
                done = self.complete(tx, result, key, stored)
                tx.run(
                    record_storage, self.generation.id, storage_url=objects.url, key=key, checksum=checksum
                )
                committing = True
        except BaseException as exc:
            landed = self._landed(exc, key, checksum) if committing and checksum else False
            again = self._again(exc, landed)
            if again is not None:  # the commit landed; only its reply was lost
                return Recorded(again, result, objects.url, key, checksum, stored)
            if landed is not False:  # the row records the objects, or may: never a completed row without them
                raise
            uploads.remove(exc)
            self._not_recorded(exc, placing)
            raise
        return Recorded(done, result, objects.url, key, checksum, stored)

    def _landed(self, exc: BaseException, key: str, checksum: str) -> bool | None:
        """Whether the completing commit that raised ``exc`` landed (a connection lost after the server
        committed, before its reply): the row, read anew, records this file; ``None``: it cannot be read."""
        try:
            stored = self.store.run(get_storage, self.generation.id)
        except Exception as read_error:
            exc.add_note(
                f"generation {self.generation.id}: whether its commit landed is unknown "
                f"({type(read_error).__name__}: {read_error}); "
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
        # the file could not take its place, or the row cannot hold this completion (its metadata and the
        # export's figures over the limit: every attempt would end alike): the job's fault, as a failed export
        if (placing and isinstance(exc, StorageError)) or isinstance(exc, InvalidInput):
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


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` holds ``data`` (an error path's check: unreadable or missing, it does
    not)."""
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while piece := source.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()
