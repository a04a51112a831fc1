"""Renditions of a completed generation's master, made and recorded: the one module that makes the files of
``musicstore.audio.renditions`` and records them with ``Store.create_rendition``. ``render_generation``
reads the master where its row says (local root or object store, as ``musicstore.delivery`` finds it),
checks its SHA-256, makes each rendition in memory (encoded, decoded back, measured) and puts it beside the
master (``rendition_name``; a conditional create) in the transaction that inserts its row, after the
generation's row is locked: neither a file without a row nor a row without a file. A request already
recorded is returned, not made again (each recorded by ``rendering/records.py``). See docs/renditions.md."""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import validate
from ..audio import LoudnessProfile, RenditionOptions, RenditionSpec, get_profile
from ..audio.codecs import rendition_specs
from ..audio.peaks import WaveformPeaks, check_shape, compute_peaks
from ..audio.profiles import canonical_profile
from ..audio.renditions import EXTENSIONS, check_options, read_master, render_bytes
from ..audio.tags import provenance_of
from ..delivery import Located, folder_here, require_store, writer_delivery
from ..errors import DatabaseError, InvalidAudio, InvalidInput, InvalidTransition, NotFound, StorageError
from ..filestore import ChecksumMismatch, FileStore, ObjectExists, ObjectNotFound
from ..filestore.base import marked_by, put_marked
from ..models import Generation, Status
from ..ops import Rendition
from ..ops.renditions import MAX_PROFILE_CHARS, settings_key
from ..ops.storage import StoredFile, get_storage
from ..storage_names import GENERATION_FIELD, peaks_digest
from ..store import Store
from .records import _landed as _landed  # tests import it from here
from .records import _record

Root = str | os.PathLike[str] | FileStore
"""Where masters are: a folder path, ``file:///PATH``, ``s3://BUCKET/PREFIX`` or an open ``FileStore``."""
_delivery = writer_delivery  # the master's place for a render (a test replaces it here)
JSON = "application/json"

__all__ = ["StoredPeaks", "peaks_name", "put_marked", "render_generation", "render_peaks", "rendition_name"]


DEFAULT_TOLERANCE_LU = LoudnessProfile.__dataclass_fields__["tolerance_lu"].default
"""A profile's tolerance that a request's key leaves out (every named profile's): the keys recorded before
the tolerance was part of a request stay what they were."""
_KEYED_OPTIONS = {name: getattr(RenditionOptions(), name) for name in ("max_limiting_db", "max_gain_db")}
"""The ``RenditionOptions`` that change what is made (how deep the limiter may go, how much gain a quiet clip
gets) and their defaults: part of a request when not those; the others say how hard to try, and are not."""


def _with_tolerance(
    settings: Mapping[str, Any], profile: LoudnessProfile, options: RenditionOptions | None = None
) -> dict[str, Any]:
    """``settings`` with the profile's ``tolerance_lu`` when it is not the default: what counts as reached
    is part of the request, so a row made for ±3 LU never answers a request for ±0.1 LU; and with each of
    ``_KEYED_OPTIONS`` that is not its default (a row limited 6 dB deep never answers a request for 24)."""
    keyed = dict(settings)
    if profile.tolerance_lu != DEFAULT_TOLERANCE_LU:
        keyed["tolerance_lu"] = profile.tolerance_lu
    for name, default in _KEYED_OPTIONS.items() if options is not None else ():
        if getattr(options, name) != default:
            keyed[name] = getattr(options, name)
    return keyed


def _request_key(settings: dict[str, Any], profile: LoudnessProfile) -> str:
    keyed = {**_with_tolerance(settings, profile), "profile": profile.name}
    return settings_key({**keyed, "target_lufs": profile.target_lufs, "ceiling_dbtp": profile.ceiling_dbtp})


def rendition_name(
    master: Path, settings: dict[str, Any], profile: LoudnessProfile, generation_id: str | None = None
) -> str:
    """The file name of a rendition beside ``master``: ``<stem>.<profile>.<8 hex>.<ext>``, the hex of the
    request (and of ``generation_id`` where the stem is not it: masters named by hand may share a stem)."""
    _check_master(master, generation_id)
    if not isinstance(settings, Mapping) or settings.get("format") not in EXTENSIONS:
        raise InvalidInput(
            "settings must be a rendition's settings (RenditionSpec.settings(...).description)"
        )
    if not isinstance(profile, LoudnessProfile):
        raise InvalidInput(f"profile must be a LoudnessProfile (get_profile's), got {type(profile).__name__}")
    extra = "" if generation_id in (None, master.stem) else f"\n{generation_id}"
    digest = hashlib.sha256((_request_key(settings, profile) + extra).encode()).hexdigest()[:8]
    return f"{master.stem}.{profile.name}.{digest}{EXTENSIONS[settings['format']][0]}"


def _asked(
    spec: RenditionSpec, generation: Generation, profile: LoudnessProfile, options: RenditionOptions
) -> dict[str, Any] | None:
    """The request as the row's rate and channels make it (a recorded rendition found without reading the
    master); None where the codec refuses them: the master, read then, is what is judged (its row may say
    other figures than the file a worker wrote)."""
    try:
        settings = spec.settings(generation.sample_rate, generation.channels).description
    except InvalidInput:
        return None
    return _with_tolerance(settings, profile, options)


def _generation(store: Store, generation_id: str) -> Generation:
    """The completed generation (``NotFound``, ``InvalidTransition``)."""
    generation = store.get_generation(generation_id)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id}")
    if generation.status is not Status.COMPLETED or generation.file_path is None:
        raise InvalidTransition(
            f"generation {generation.id} is {generation.status}; only a completed generation has a master "
            "to render",
            current=generation.status.value,
        )
    return generation


def _read_master(
    generation: Generation, found: Located, where: StoredFile | None = None
) -> tuple[NDArray[np.float32], int]:
    """The master's samples, read from its file store and checked against the recorded SHA-256."""
    what = f"the master {found.key} of generation {generation.id}"
    try:
        raw = b"".join(found.files.get(found.key, checksum=found.checksum))
    except ObjectNotFound:
        url = None if where is None else where.storage_url
        if url is not None and url.startswith("file:") and not folder_here(url):  # root= stood for it
            raise InvalidInput(
                f"{what} is missing from {found.files.url}, the root given, taken as this host's mount of "
                f"{url}, the folder its row names (which this host does not have): give root= the folder "
                "that holds it"
            ) from None
        raise InvalidInput(f"{what} is missing from {found.files.url}; run reconcile") from None
    except ChecksumMismatch as exc:
        raise InvalidAudio(f"{what} does not match its recorded sha256: it changed or is damaged") from exc
    except InvalidInput as exc:  # a key that leads outside the root (..) or is not one
        raise InvalidInput(f"{what} is not a key under {found.files.url}: {exc}") from exc
    return read_master(raw, posixpath.basename(found.key))


def render_generation(
    store: Store,
    generation_id: str,
    *,
    root: Root | None = None,
    formats: Sequence[str | RenditionSpec] | str = ("mp3",),
    profile: str | LoudnessProfile = "streaming",
    bitrate_kbps: int | None = None,
    options: RenditionOptions | None = None,
    files: Sequence[FileStore] = (),
) -> list[Rendition]:
    """Make and record renditions of a completed generation's master; returns their rows, one per format.

    The master is read where its row says (``musicstore.delivery``): under ``root`` for a row recorded
    without a storage URL or with a local one, from the object store of an ``s3://`` URL (opened with the
    ``AWS_*`` settings of the environment, or one of ``files`` / ``root`` given open for that URL). Each
    rendition is put into the master's file store beside it, with a conditional create, inside the
    transaction that records its row; ``storage_key`` is relative to that store's root or prefix.

    ``formats``: names (``mp3``, ``opus``, ``vorbis``, ``flac``, ``wav``, with default settings, and
    ``bitrate_kbps`` for mp3 and opus) or ``RenditionSpec``s (an mp3 or opus spec carries its own bitrate:
    ``bitrate_kbps`` beside one is refused). A request already recorded (same generation, settings, profile
    numbers — target, ceiling, tolerance, whatever its name — and ``options``' max_limiting_db and
    max_gain_db) is returned as it is, not made again (also when another
    process records it while this one encodes: this one puts nothing, or removes what it put, and the
    recorded row is returned).
    Raises before anything is written: ``NotFound``, ``InvalidTransition`` (not completed), ``InvalidInput``
    (a bad format, bitrate, profile or combination, the last judged by the master's rate and channels; a
    master missing or outside the root), ``InvalidAudio``
    (a master that fails its recorded ``sha256``); ``RenditionFailed`` when no encode keeps the ceiling;
    ``StorageError`` when the put fails (``ObjectExists``: an object not marked with this generation holds
    the key, an orphan for reconcile; one so marked, a killed render's, is replaced: ``put_marked``).
    Renditions made before an error stay recorded, each with its file; the one that failed leaves nothing.
    """
    require_store(store, "render_generation")
    specs = rendition_specs(formats, bitrate_kbps)
    given = get_profile(profile)
    validate.text(given.name, "profile", max_chars=MAX_PROFILE_CHARS, blank=False)  # as create_rendition
    chosen = canonical_profile(given)  # a custom one with a named one's numbers is that one: one rendition
    opts = check_options(options)
    generation = _generation(store, generation_id)
    requests = [(spec, _asked(spec, generation, chosen, opts)) for spec in specs]
    provenance = provenance_of(generation)
    made: list[Rendition] = []
    where = store.run(get_storage, generation.id)  # read once: the master's place, which records must name
    with _delivery(store, generation, where, root, files) as delivery:
        found = delivery.locate_stored(where)
        master: tuple[NDArray[np.float32], int] | None = None
        recorded_row = partial(
            store.get_rendition_by_settings, generation.id, profile=chosen.name,
            target_lufs=chosen.target_lufs, ceiling_dbtp=chosen.ceiling_dbtp,
        )  # fmt: skip
        for spec, asked in requests:
            row = None if asked is None else recorded_row(asked)
            if row is not None:
                made.append(row)
                continue
            if master is None:  # once, when something is made; each request checked by it before any
                master = _read_master(generation, found, where)  # is made (InvalidInput: one the codec
                for each, _ in requests:  # refuses)
                    each.settings(master[1], len(master[0]))
            # the request as the master makes it (its rate and channels: a row completed by hand may record
            # others), as the row recorded for it is keyed by what was encoded
            settings = _with_tolerance(spec.settings(master[1], len(master[0])).description, chosen, opts)
            row = recorded_row(settings) if settings != asked else None
            if row is not None:
                made.append(row)
                continue
            key = posixpath.join(
                posixpath.dirname(found.key), rendition_name(Path(found.key), settings, chosen, generation.id)
            )
            samples, master_rate = master
            data, result = render_bytes(
                samples, master_rate, posixpath.basename(key), spec, chosen,
                provenance=provenance, options=options,
            )  # fmt: skip
            try:
                made.append(_record(
                    store, generation.id, result, settings, data=data, files=found.files, key=key, where=where
                ))  # fmt: skip
            except (InvalidInput, DatabaseError):
                row = recorded_row(settings)  # another process recorded the same request meanwhile: its row
                if row is None:
                    raise
                made.append(row)
    return made


@dataclass(frozen=True, slots=True)
class StoredPeaks:
    """A generation's waveform peaks as put beside its master: where (``storage_url``, ``key``), the size and
    SHA-256 of the JSON, and the peaks themselves (``peaks.normalized()`` for a browser player)."""

    generation_id: str
    storage_url: str
    key: str
    bytes: int
    sha256: str
    peaks: WaveformPeaks
    normalized: Mapping[str, Any] | None = None
    """The normalised peaks file beside it (``key``, ``bytes``, ``sha256``), when there is one."""

    def as_metadata(self) -> dict[str, Any]:
        """``metadata["peaks"]`` of the generation's row, as the export records it: ``key``,
        ``samples_per_pixel``, ``bits``, ``channels`` (1 when mixed), ``length``, ``bytes``, ``sha256``, and
        the normalised file's record in ``normalized`` when there is one."""
        p = self.peaks
        record = {
            "key": self.key, "samples_per_pixel": p.samples_per_pixel, "bits": p.bits, "channels": p.channels,
            "length": p.length, "bytes": self.bytes, "sha256": self.sha256,
        }  # fmt: skip
        if self.normalized is not None:
            record["normalized"] = dict(self.normalized)
        return record


def _unrecorded(found: Located, key: str, generation_id: str, *, gone: bool, stale: bool) -> str:
    """Peaks at ``key``, not recorded: removed when their generation is gone (named after its id). ``stale``:
    its earlier peaks (a replay's master before) are there still, not replaced: this call put nothing."""
    peaks = "its earlier peaks" if stale else "the peaks put"
    try:
        if gone and Path(found.key).stem == generation_id and found.files.delete(key):
            return f"its generation was deleted meanwhile: {peaks} at {key} were removed"
    except StorageError as failed:
        return f"its generation was deleted meanwhile; removing {peaks} at {key} failed: {failed}"
    if stale:
        return f"nothing was put: its earlier peaks at {key} in {found.files.url} are as they were"
    return f"the peaks were put at {key} in {found.files.url} but not recorded in the row"


def _check_master(master: object, generation_id: object) -> None:
    if not isinstance(master, PurePath):
        raise InvalidInput(f"master must be the master's path (a Path), got {type(master).__name__}")
    if generation_id is not None and not isinstance(generation_id, str):
        raise InvalidInput(f"generation_id must be a str or None, got {type(generation_id).__name__}")


def peaks_name(
    master: Path, samples_per_pixel: int, bits: int, split_channels: bool, generation_id: str | None = None
) -> str:
    """The peaks file beside ``master``: ``<stem>.peaks.<samples per pixel>.<bits>[.split].json``, the numbers
    as integers whatever type they were checked in as (``bits=8.0`` is 8: maintenance finds it by name); with
    ``generation_id`` (not the stem) ``<stem>.peaks.<8 hex of the id>.…``: where another's master holds it."""
    _check_master(master, generation_id)
    spp, nbits, split_channels = check_shape(samples_per_pixel, bits, split_channels)  # as compute_peaks
    split = ".split" if split_channels else ""
    own = "" if generation_id in (None, master.stem) else f"{peaks_digest(generation_id)}."
    return f"{master.stem}.peaks.{own}{spp}.{nbits}{split}.json"


def _put_peaks(
    data: bytes, found: Located, generation_id: str, shape: tuple[int, int, bool]
) -> tuple[str, bool]:
    """Put peaks at ``peaks_name`` beside the master (where others hold it, at its name with the id), marked
    with the generation's id; True: its peaks of another master (a replay's lost one) are there, replaced by
    ``render_peaks`` holding the row once it names the master read. Anything else there: ``ObjectExists``."""
    folder, master = posixpath.dirname(found.key), Path(found.key)
    names = [None] if master.stem == generation_id else [None, generation_id]  # <id>.peaks…: never another's
    for i, name in enumerate(names):
        key = posixpath.join(folder, peaks_name(master, *shape, name))
        try:
            found.files.put(key, data, content_type=JSON, metadata={GENERATION_FIELD: generation_id})
            return key, False
        except ObjectExists as exc:  # another's, or this generation's peaks of another master
            if marked_by(found.files, key, exc, generation_id):
                return key, True
            if i == len(names) - 1:
                raise
    raise AssertionError("unreachable")


def render_peaks(
    store: Store,
    generation_id: str,
    *,
    root: Root | None = None,
    samples_per_pixel: int = 256,
    bits: int = 8,
    split_channels: bool = False,
    files: Sequence[FileStore] = (),
) -> StoredPeaks:
    """Compute a completed generation's waveform peaks (audiowaveform JSON, version 2) from its master (read
    and checked as ``render_generation`` reads it) and put them beside it, in its file store, as
    ``peaks_name(...)`` (a conditional create, whole or not at all; where another master of its stem, named by
    hand, holds that name: ``peaks_name(..., generation_id)``), marked with the generation's id. One master's
    peaks are always the same bytes: a second call for the same resolution finds and returns them; other
    bytes there marked with its id (the peaks of a master it had before a replay) are replaced once the row,
    locked, still names the master read. Then records them in the row's ``metadata["peaks"]`` as the export
    does (``StoredPeaks.as_metadata``; the latest call's resolution replaces an earlier one's record, its file
    stays) with ``Store.merge_metadata``. Raises ``NotFound``, ``InvalidTransition``, ``InvalidInput`` (bad
    resolution or bits; a master missing), ``InvalidAudio`` (a master failing its checksum) before anything is
    written; ``StorageError`` when the put fails. If the row cannot be recorded (no longer completed, or its
    file moved or changed, meanwhile: ``StorageError``) the error is raised and the file left for
    ``reconcile`` and ``cleanup``, which find peaks files by name (deleted meanwhile: it is removed)."""
    require_store(store, "render_peaks")
    # its checks first (samples per pixel, bits, split_channels: "no" would be true, a .split name)
    compute_peaks(
        np.zeros((1, 1), dtype=np.float32), 8_000, samples_per_pixel, bits=bits, split_channels=split_channels
    )
    generation = _generation(store, generation_id)
    where = store.run(get_storage, generation.id)  # the master's place, read once (as render_generation)
    with _delivery(store, generation, where, root, files) as delivery:
        found = delivery.locate_stored(where)
        samples, rate = _read_master(generation, found, where)
        peaks = compute_peaks(samples, rate, samples_per_pixel, bits=bits, split_channels=split_channels)
        data = peaks.to_json().encode()
        key, stale = _put_peaks(data, found, generation.id, (samples_per_pixel, bits, split_channels))
        checksum = hashlib.sha256(data).hexdigest()
        before = generation.metadata.get("peaks")
        kept = None  # the export's normalised peaks of these very peaks stay recorded beside them
        if (
            isinstance(before, dict)
            and (before.get("key"), before.get("sha256")) == (key, checksum)
            and not stale
        ):
            kept = before.get("normalized")
        stored = StoredPeaks(
            generation.id, found.files.url, key, len(data), checksum, peaks,
            kept if isinstance(kept, dict) else None,
        )  # fmt: skip
        try:
            with store.transaction() as tx:
                tx.merge_metadata(generation.id, {"peaks": stored.as_metadata()})  # holds the row
                changed = where.change_to(tx.run(get_storage, generation.id))
                if changed is not None:  # copy-files moved it, or a replay exported another master
                    raise StorageError(
                        f"generation {generation.id}'s file {changed} while its peaks were made (copy-files, "
                        "or a dead letter replayed?); nothing was recorded: run render_peaks again"
                    )
                if stale:  # the master is the one read: the peaks of the one it had before go
                    marked = {GENERATION_FIELD: generation.id}
                    found.files.put(key, data, content_type=JSON, metadata=marked, overwrite=True)
                    stale = False  # put: the commit's failure leaves these unrecorded
        except Exception as exc:
            exc.add_note(_unrecorded(found, key, generation.id, gone=isinstance(exc, NotFound), stale=stale))
            raise
    return stored
