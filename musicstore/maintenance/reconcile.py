"""Database ⇄ disk consistency: find (and on request repair) what the rows and the output root disagree on.

``reconcile(store, root)`` makes two streaming passes, neither holding the tree or the table in memory:

1. The rows: completed generations, paged by id (``maintenance_completed_files_after``), each file checked
   with one ``stat``. A file that is missing, or whose size differs from ``file_size_bytes``, makes the row
   *dangling*. Only the rows of this root are judged (``scan.OwnRows``: ``storage_url`` NULL or this
   folder's URL); those of another folder are counted (``rows_elsewhere``) and left to it.
2. The disk: the walk of ``musicstore.maintenance.scan`` (a stack of directories, a generator of files). Audio
   files (``.wav``/``.flac``) are looked up in batches by the id their name carries (``<id>.<ext>``, the
   layout of ``musicstore.audio.layout_path``), and what is not found that way by path. A file no row
   records is an *orphan*, unless its name is the id of a pending or processing generation: a worker may
   have placed it and not yet committed (it is *in progress* and left alone). Temp files of the atomic
   writer (``.<name>.<random>.tmp``) and the recorder's staged files (``.<id>.<12 hex>.<ext>``) are
   *stale* when older than ``stale_after_seconds``. Waveform peaks files
   (``<36-char id>.peaks.<int>.<8|16>[.split].json``) are looked up by that id: kept while the generation
   exists, orphans once it is gone.

A rendition's file is in place before its row commits (``musicstore.rendering``, under its generation's
row lock): an orphan named as a rendition is repaired only inside a transaction that takes that lock and
finds no row recording it again (``orphan_claimed``), so a render in flight is waited for, not undone. A
master is repaired the same way: a dead letter replayed and recorded again meanwhile keeps its file.

A completed row whose ``file_path`` leads outside the root (absolute, ``..``, a symlink on the way: see
``musicstore.filestore.local``) is reported as *outside_root*, never followed, judged consistent, changed or
deleted. Every file is reached through ``musicstore.filestore.local.RootDir`` (folder by folder,
``O_NOFOLLOW``): symlinks are never followed nor touched, files of other types are never touched. See
docs/maintenance.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import DatabaseError, InvalidInput, StorageError
from ..filestore import (
    ChecksumMismatch,
    FileStore,
    LocalFileStore,
    ObjectNotFound,
    check_key,
    open_filestore,
)
from ..filestore.local import Outside, RootDir
from ..models import Status
from ..ops import Call, Steps, reader, writer
from ..ops.reads import GENERATION
from ..store import Store
from .bucket import Item, StoredRow, classify_objects, is_object_store, stored_by_keys
from .scan import (
    AUDIO_SUFFIXES,
    BATCH,
    DEFAULT_MAX_ITEMS,
    Entry,
    OwnRows,
    PeaksRecord,
    Progress,
    audio_stem,
    check_root,
    classified,
    is_temp_name,
    peaks_record,
    peaks_stem,
    referenced_paths,
    require_store,
    walk,
)

# --- report -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class OrphanFile:
    """A file under the root that no generation records. ``action``: reported, quarantined, deleted, gone."""

    path: str
    size_bytes: int
    action: str = "reported"
    moved_to: str | None = None


@dataclass(slots=True)
class DanglingRow:
    """A completed generation whose file is missing (``actual_bytes`` None) or has another size.

    ``action``: reported, marked_failed, or changed (the row changed before the repair; left alone).
    """

    id: str
    file_path: str
    problem: str
    expected_bytes: int
    actual_bytes: int | None
    action: str = "reported"


@dataclass(slots=True)
class OutsideRow:
    """A completed generation whose ``file_path`` leads outside the root (``reason`` says how): nothing
    there is read or touched, and the row is left as it is (fix or delete it by hand)."""

    id: str
    file_path: str
    reason: str
    kind: str = "master"
    """What the row records there: ``master`` (its ``file_path``) or ``peaks`` (its ``metadata["peaks"]``
    record's ``key``)."""


@dataclass(slots=True)
class DanglingPeaks:
    """A completed generation whose recorded waveform peaks file (``metadata["peaks"]``) is not as recorded.

    ``problem``: ``missing``, ``size_mismatch``, ``checksum_mismatch`` (another SHA-256 than recorded) or
    ``invalid_record`` (the record names no file: ``key`` is the reason then). ``action``: reported,
    record_dropped (``repair``: the record is removed from the metadata, the damaged file moved to the
    quarantine or deleted; ``render_peaks`` makes them again), or changed (the record changed since it was
    read: left alone)."""

    id: str
    key: str
    problem: str
    expected_bytes: int | None
    actual_bytes: int | None
    action: str = "reported"
    moved_to: str | None = None


@dataclass(slots=True)
class TempFile:
    """A temp or staged file of an export older than ``stale_after_seconds``. ``action``: reported, removed,
    gone."""

    path: str
    size_bytes: int
    age_seconds: float
    action: str = "reported"


@dataclass(slots=True)
class AbandonedUpload:
    """A multipart upload under an object store's prefix never completed. ``action``: reported, aborted."""

    key: str
    upload_id: str
    age_seconds: float | None
    action: str = "reported"


@dataclass(slots=True)
class ReconcileReport:
    """What reconcile found and did; ``json.dumps(dataclasses.asdict(report))`` works as is.

    Lists hold at most ``max_items`` entries each (``truncated`` says when more were found); the counts
    (``*_count``) are complete, and a repair acts on every item, listed or not.
    """

    root: str
    repair: bool
    quarantine: str | None
    rows_checked: int = 0
    rows_elsewhere: int = 0
    """Local roots: completed generations whose ``storage_url`` names another folder (``copy_files`` moved
    them there, or the folder was moved on disk): left to that root, neither checked nor repaired here.
    Rows recorded before migration 0006 (no ``storage_url``) are this root's; rows in an object store are
    not read at all."""
    files_scanned: int = 0
    referenced_files: int = 0
    in_progress_files: int = 0
    orphan_count: int = 0
    orphan_bytes: int = 0
    dangling_count: int = 0
    outside_root_count: int = 0
    stale_temp_count: int = 0
    fresh_temp_files: int = 0
    unknown_files: int = 0
    symlinks: int = 0
    orphans: list[OrphanFile] = field(default_factory=list)
    dangling: list[DanglingRow] = field(default_factory=list)
    outside_root: list[OutsideRow] = field(default_factory=list)
    stale_temp_files: list[TempFile] = field(default_factory=list)
    renditions_checked: int = 0
    renditions_elsewhere: int = 0
    """Local roots: renditions of generations in another folder (as ``rows_elsewhere``), not checked here."""
    dangling_rendition_count: int = 0
    dangling_renditions: list[DanglingRow] = field(default_factory=list)
    """Renditions (``id``: the rendition's) whose file is missing or has another size; with ``repair`` their
    rows are deleted (``action="deleted_row"``): the rendition can be made again."""
    abandoned_upload_count: int = 0
    """Object stores: multipart uploads begun under the prefix more than ``stale_after_seconds`` ago and never
    completed (with ``repair`` aborted). Local roots report their leftovers as stale temp files."""
    fresh_uploads: int = 0
    abandoned_uploads: list[AbandonedUpload] = field(default_factory=list)
    peaks_checked: int = 0
    """Completed generations whose row records a waveform peaks file (``metadata["peaks"]``), checked: the
    file is there, inside the root, of the recorded ``bytes`` and (a local root always, an object store with
    ``verify_checksums``) the recorded ``sha256``."""
    dangling_peaks_count: int = 0
    dangling_peaks: list[DanglingPeaks] = field(default_factory=list)
    """Recorded peaks files missing, of another size or content, or records that name no file; with
    ``repair`` the record is dropped (and a damaged file taken away as an orphan is)."""
    checksums_verified: int = 0
    """Files or objects read whole and hashed against their rows' SHA-256 (``verify_checksums=True``: masters
    and renditions, on a local root or in an object store; recorded peaks files count here too)."""
    peaks_files: int = 0
    """Of ``files_scanned``, waveform peaks files (``<id>.peaks.<int>.<8|16>[.split].json``, written by
    ``musicstore.rendering.render_peaks``): counted as referenced while their generation's row exists,
    as orphans (and repaired as orphans are) once it is gone."""
    orphan_peaks_count: int = 0
    """Of ``orphan_count``, peaks files of generations that no longer exist."""
    errors: list[str] = field(default_factory=list)
    truncated: bool = False
    consistent: bool = False
    """True when nothing was found: no orphan, no dangling row (or rendition, or recorded peaks file), no row
    (or peaks record) outside the root, no stale temp file or abandoned upload, no error."""
    seconds: float = 0.0

    def finish(self, started: float) -> ReconcileReport:
        """Judge ``consistent`` from the counts (one rule for a folder and a bucket: the counts one of them
        never finds stay 0) and time the run from ``started`` (``time.monotonic()``)."""
        self.consistent = not (
            self.orphan_count
            or self.dangling_count
            or self.dangling_rendition_count
            or self.dangling_peaks_count
            or self.outside_root_count
            or self.stale_temp_count
            or self.abandoned_upload_count
            or self.errors
        )
        self.seconds = round(time.monotonic() - started, 3)
        return self


# --- queries as operations ---------------------------------------------------------------------------


@reader
def completed_files_after(
    after_id: str, limit: int
) -> Steps[list[tuple[str, str, int, str | None, str | None, str | None]]]:
    """Completed generations' (id, file_path, file_size_bytes, checksum, peaks record as JSON text or None,
    storage_url) on a local root (any folder; not those in an object store) with ids above ``after_id``, in
    id order."""
    rows = yield Call("maintenance_completed_files_after", {"after_id": after_id, "limit": limit})
    return [
        (r["id"], r["file_path"], r["file_size_bytes"], r["checksum"], r["peaks"], r["storage_url"])
        for r in rows
    ]


@writer
def drop_peaks_records(items: list[tuple[str, str | None]]) -> Steps[set[str]]:
    """Remove ``metadata["peaks"]`` from each (generation id, record as read: JSON text) still completed and
    still recording exactly that; returns the ids changed. The row is read under its lock
    (``maintenance_generation_for_update``), as ``merge_metadata`` reads it, and written back whole; on
    PostgreSQL a row another transaction holds is skipped (left for the next run), never waited for."""
    changed: set[str] = set()
    for gid, text in items:
        generation = yield Call("maintenance_generation_for_update", {"id": gid}, GENERATION)
        if generation is None or generation.status is not Status.COMPLETED:
            continue
        if "peaks" not in generation.metadata or (
            text is not None and generation.metadata["peaks"] != json.loads(text)
        ):
            continue
        kept = {k: v for k, v in generation.metadata.items() if k != "peaks"}
        encoded = validate.metadata(kept, checked=True)
        if (yield Call("update_completed_metadata", {"id": gid, "metadata": encoded})) == 1:
            changed.add(gid)
    return changed


@writer
def mark_dangling_failed(items: list[DanglingRow]) -> Steps[set[str]]:
    """completed → failed for each dangling row still exactly as read; returns the ids changed.

    An operator repair outside the worker status machine (completed is otherwise final), one conditional
    UPDATE per row whose row count decides. On PostgreSQL a row another transaction holds (another host
    recording a rendition or peaks of it) is skipped, as changed, for the next run: never waited for.
    """
    changed: set[str] = set()
    for item in items:
        if item.problem == "checksum_mismatch":
            reason = f"reconcile: file {item.file_path} does not hash to the checksum the row recorded"
        elif item.actual_bytes is None:
            reason = f"reconcile: file {item.file_path} is missing (recorded {item.expected_bytes} bytes)"
        else:
            reason = (
                f"reconcile: file {item.file_path} has {item.actual_bytes} bytes, "
                f"the row recorded {item.expected_bytes}"
            )
        count = yield Call(
            "maintenance_mark_dangling_failed",
            {
                "id": item.id,
                "file_path": item.file_path,
                "expected_bytes": item.expected_bytes,
                "actual_bytes": item.actual_bytes,
                "reason": reason,
            },
        )
        if count == 1:
            changed.add(item.id)
    return changed


@writer
def orphan_claimed(generation_id: str, url: str | None, key: str) -> Steps[bool]:
    """Whether ``key`` (a file named after ``generation_id``: its master or a rendition; ``url``: the object
    store it is in, None for a local root) is no orphan by now, read with that generation's row locked: a
    row records it, or the generation is pending or processing (a worker may place it and commit).

    A worker places its master, and ``musicstore.rendering`` a rendition, under that lock before it commits;
    a dead letter replayed (failed → pending) and recorded again puts its master at the very key a killed
    attempt left. A file reconcile saw without a row may be one such, and this read waits for that
    transaction to end. Run inside the transaction that repairs the orphan, so that no worker or render
    records the key while it is removed."""
    generation = yield Call("get_generation_for_update", {"id": generation_id}, GENERATION)
    if generation is not None and generation.status in (Status.PENDING, Status.PROCESSING):
        return True
    if url is None:
        return key in (yield from referenced_paths.steps([key]))
    return bool((yield from stored_by_keys.steps(url, [key])))


def _is_utf8(text: str) -> bool:
    """Whether ``text`` is UTF-8 text (no lone surrogate, as ``os.fsdecode`` makes of other bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _repair_unless_recorded(
    store: Store, repair: Callable[[], None], *, url: str | None, key: str, errors: list[str]
) -> bool:
    """Run ``repair`` on an orphan; for one named after a generation (its master or a rendition), inside a
    transaction that first locks that generation and finds the file still an orphan (``orphan_claimed``).
    Returns True (``repair`` not run) when it is not by then: a worker or a render recorded it meanwhile,
    or its generation was queued again. A name that is not UTF-8 (a file named in other bytes, read back with
    surrogates) is no generation's and no row's: the database holds only UTF-8 text."""
    owner = audio_stem(key.rpartition("/")[2])
    if owner is None or not _is_utf8(key):
        repair()
        return False
    try:
        with store.transaction() as tx:
            if tx.run(orphan_claimed, owner, url, key):
                return True
            repair()
    except DatabaseError as exc:
        errors.append(f"cannot lock generation {owner} to repair the orphan {key}: {exc}")
    return False


# --- reconcile ----------------------------------------------------------------------------------------


def default_quarantine(root: Path) -> Path:
    """``<root>.quarantine`` beside the root: outside the scanned tree, on the same filesystem as a rule."""
    resolved = root.resolve()
    return resolved.parent / f"{resolved.name}.quarantine"


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists() or candidate.is_symlink():
        candidate = target.with_name(f"{target.name}.{n}")
        n += 1
    return candidate


def reconcile(
    store: Store,
    root: str | Path | FileStore,
    *,
    repair: bool = False,
    quarantine: Path | None = None,
    delete_orphans: bool = False,
    stale_after_seconds: float = 3600,
    max_items: int = DEFAULT_MAX_ITEMS,
    batch: int = BATCH,
    progress: Progress | None = None,
    verify_checksums: bool = False,
) -> ReconcileReport:
    """Compare the generations with the files under ``root``; with ``repair=True``, fix what differs.

    ``root`` may be an object store (``s3://BUCKET/PREFIX`` or an open ``FileStore``): see
    ``reconcile_objects``, which this calls with the same arguments.

    Only the rows whose files this root holds are checked and repaired: those whose ``storage_url`` names
    this folder (in any spelling that leads to it: ``OwnRows``) and those recorded before migration 0006
    (none); rows of another folder or an object store are left to it (``rows_elsewhere``). Files here that a
    row of any store records by key are referenced, never orphans.

    Repairs: orphan files are moved to ``quarantine`` (default ``<root>.quarantine`` beside the root, keeping
    their relative path) or deleted (``delete_orphans=True``); dangling rows go completed → failed with the
    reason in ``error_message``; stale temp files are removed. Files referenced by any row (of any status),
    files of pending/processing generations, fresh temp files, files of other types and symlinks are never
    touched. Completed rows whose ``file_path`` leads outside the root are reported (``outside_root``) and
    left alone, repair or not. ``progress`` is called with the number of rows and files examined so far.
    ``verify_checksums=True`` also reads every recorded master and rendition whose row holds a SHA-256
    (through its folder's descriptor) and reports one whose bytes hash otherwise (``checksum_mismatch``,
    repaired as a dangling row or rendition is); without it the sizes are compared. A recorded waveform
    peaks file (a few KB) is always read and hashed.
    """
    require_store(store)
    validate.flag(repair, "repair")
    validate.flag(delete_orphans, "delete_orphans")
    validate.callback(progress, "progress")
    if is_object_store(root):
        if quarantine is not None:
            raise InvalidInput("an object store has no quarantine folder; pass delete_orphans=True to repair")
        return reconcile_objects(
            store, root if isinstance(root, FileStore) else str(root), repair=repair,
            delete_orphans=delete_orphans,
            stale_after_seconds=stale_after_seconds, max_items=max_items, batch=batch, progress=progress,
            verify_checksums=verify_checksums,
        )  # fmt: skip
    validate.flag(verify_checksums, "verify_checksums")
    if isinstance(root, FileStore):
        assert isinstance(root, LocalFileStore)
        root = root.root
    started = time.monotonic()
    base = check_root(root)
    validate.number(stale_after_seconds, "stale_after_seconds", positive=False)
    validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    validate.integer(max_items, "max_items", 0)
    target: Path | None = None
    if repair and not delete_orphans:
        target = Path(quarantine) if quarantine is not None else default_quarantine(base)
        if _inside(target, base):
            raise InvalidInput(
                f"quarantine folder {target} is inside the output root {base}: reconcile would scan it; "
                "choose a folder outside the root"
            )
    report = ReconcileReport(
        root=str(base), repair=repair, quarantine=None if target is None else str(target)
    )
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done)

    def listed(items: list[Any], item: Any) -> None:
        if len(items) < max_items:
            items.append(item)
        else:
            report.truncated = True

    with RootDir(base) as where:
        own = OwnRows(base)
        _check_rows(
            store, where, report, own, repair=repair, target=target, verify_checksums=verify_checksums,
            batch=batch, listed=listed, tick=tick,
        )  # fmt: skip
        _check_renditions(
            store, where, report, own, repair=repair, verify_checksums=verify_checksums, batch=batch,
            listed=listed,
        )  # fmt: skip
        _check_files(store, where, report, target, stale_after_seconds, batch=batch, listed=listed, tick=tick)
    return report.finish(started)


def _check_rows(
    store: Store,
    where: RootDir,
    report: ReconcileReport,
    own: OwnRows,
    *,
    repair: bool,
    target: Path | None,
    verify_checksums: bool,
    batch: int,
    listed: Callable[[list[Any], Any], None],
    tick: Callable[[int], None],
) -> None:
    """Pass 1: this root's completed generations (``own``) whose file is missing, of another size, or
    outside the root; and the peaks file each records (``_check_local_peaks``)."""
    after = ""
    while True:
        page = store.run(completed_files_after, after, batch)
        if not page:
            break
        after = page[-1][0]
        found: list[DanglingRow] = []
        peaks: list[tuple[DanglingPeaks, str | None]] = []
        judged = 0
        for gid, rel, expected, checksum, recorded, url in page:
            if not own(url):
                report.rows_elsewhere += 1
                continue
            judged += 1
            if recorded is not None:
                _check_local_peaks(where, report, gid, recorded, found=peaks, listed=listed)
            try:
                info = where.lstat(rel)
            except Outside as exc:
                report.outside_root_count += 1
                listed(report.outside_root, OutsideRow(gid, rel, str(exc)))
                continue
            except OSError as exc:
                report.errors.append(f"cannot stat {rel} of generation {gid}: {exc}")
                continue
            actual = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
            if actual != expected:
                problem = "missing" if actual is None else "size_mismatch"
                found.append(DanglingRow(gid, rel, problem, expected, actual))
            elif verify_checksums and checksum is not None:
                differs = _local_checksum(where, report, rel, checksum, f"generation {gid}")
                if differs is not None:
                    found.append(DanglingRow(gid, rel, differs, expected, actual))
        if peaks:
            report.dangling_peaks_count += len(peaks)
            if repair:
                _drop_peaks(store, peaks, lambda item: _take_away_local(where, item, target, report.errors))
            for item, _ in peaks:
                listed(report.dangling_peaks, item)
        report.rows_checked += judged
        report.dangling_count += len(found)
        if found and repair:
            changed = store.run(mark_dangling_failed, found)
            for row in found:
                row.action = "marked_failed" if row.id in changed else "changed"
        for row in found:
            listed(report.dangling, row)
        tick(len(page))


def _local_checksum(
    where: RootDir, report: ReconcileReport, rel: str, checksum: str, owner: str
) -> str | None:
    """``verify_checksums`` on a local root: the file at ``rel`` read (through its folder's descriptor) and
    hashed; ``checksum_mismatch`` when it is not ``checksum``, ``missing`` when it went away meanwhile."""
    try:
        read = where.sha256(rel)
    except (Outside, OSError) as exc:
        report.errors.append(f"cannot read {rel} of {owner} to verify its checksum: {exc}")
        return None
    if read is None:
        return "missing"
    report.checksums_verified += 1
    return "checksum_mismatch" if read[1] != checksum else None  # a size the lstat saw: the file changed


def _check_local_peaks(
    where: RootDir,
    report: ReconcileReport,
    gid: str,
    text: str,
    *,
    found: list[tuple[DanglingPeaks, str | None]],
    listed: Callable[[list[Any], Any], None],
) -> None:
    """The peaks file ``gid``'s row records (``text``: ``metadata["peaks"]`` as JSON): there, a regular file
    inside the root, of the recorded size and SHA-256 (a few KB, read through its folder's descriptor). A
    record that leads outside the root is listed in ``outside_root`` (``kind="peaks"``), never followed."""
    try:
        record = peaks_record(text)
    except ValueError as exc:
        report.peaks_checked += 1
        found.append((DanglingPeaks(gid, str(exc), "invalid_record", None, None), text))
        return
    if record is None:
        return
    report.peaks_checked += 1
    try:
        if record.sha256 is None:
            info = where.lstat(record.key)
            actual = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
            hashed = None
        else:
            read = where.sha256(record.key, expect=record.size)
            actual, hashed = (None, None) if read is None else read
    except Outside as exc:
        report.outside_root_count += 1
        listed(report.outside_root, OutsideRow(gid, record.key, str(exc), kind="peaks"))
        return
    except OSError as exc:
        report.errors.append(f"cannot read the peaks file {record.key} of generation {gid}: {exc}")
        return
    problem = _peaks_problem(record, actual, hashed)
    if problem is not None:
        found.append((DanglingPeaks(gid, record.key, problem, record.size, actual), text))


def _peaks_problem(record: PeaksRecord, actual: int | None, hashed: str | None) -> str | None:
    if actual is None:
        return "missing"
    if record.size is not None and actual != record.size:
        return "size_mismatch"
    if hashed is not None and hashed != record.sha256:
        return "checksum_mismatch"
    return None


def _drop_peaks(
    store: Store, found: list[tuple[DanglingPeaks, str | None]], take_away: Callable[[DanglingPeaks], None]
) -> None:
    """Repair: drop each record still as read, then take a damaged file away (one the record named, whose
    name is a peaks file of that generation: never another row's file)."""
    changed = store.run(drop_peaks_records, [(item.id, text) for item, text in found])
    for item, _ in found:
        if item.id not in changed:
            item.action = "changed"
            continue
        item.action = "record_dropped"
        if (
            item.problem in ("size_mismatch", "checksum_mismatch")
            and peaks_stem(item.key.rpartition("/")[2]) == item.id
        ):
            take_away(item)


def _take_away_local(where: RootDir, item: DanglingPeaks, target: Path | None, errors: list[str]) -> None:
    orphan = OrphanFile(item.key, item.actual_bytes or 0)
    _repair_orphan(where, orphan, target, errors)
    item.moved_to = orphan.moved_to


@reader
def renditions_after(after_id: str, limit: int) -> Steps[list[tuple[str, str, int, str | None, str | None]]]:
    """Renditions' (id, storage_key, file_size_bytes, checksum, their generation's storage_url) of
    generations on a local root (any folder; not in an object store) with ids above ``after_id``, in id
    order."""
    rows = yield Call("maintenance_local_renditions_after", {"after_id": after_id, "limit": limit})
    return [(r["id"], r["storage_key"], r["file_size_bytes"], r["checksum"], r["storage_url"]) for r in rows]


@writer
def delete_dangling_renditions(items: list[DanglingRow]) -> Steps[set[str]]:
    """Delete each dangling rendition's row still exactly as read; returns the ids deleted (on PostgreSQL a
    row another transaction holds is skipped, for the next run)."""
    deleted: set[str] = set()
    for item in items:
        params = {"id": item.id, "storage_key": item.file_path, "file_size_bytes": item.expected_bytes}
        if (yield Call("maintenance_delete_rendition", params)) == 1:
            deleted.add(item.id)
    return deleted


def _check_renditions(
    store: Store,
    where: RootDir,
    report: ReconcileReport,
    own: OwnRows,
    *,
    repair: bool,
    verify_checksums: bool,
    batch: int,
    listed: Callable[[list[Any], Any], None],
) -> None:
    """Pass 1b: renditions of this root's generations (``own``) whose file is missing, has another size, or
    (``verify_checksums``) other bytes than its recorded SHA-256 (a path outside the root: an error)."""
    after = ""
    while page := store.run(renditions_after, after, batch):
        after = page[-1][0]
        found: list[DanglingRow] = []
        judged = 0
        for rid, rel, expected, checksum, url in page:
            if not own(url):
                report.renditions_elsewhere += 1
                continue
            judged += 1
            try:
                info = where.lstat(rel)
            except (Outside, OSError) as exc:
                report.errors.append(f"cannot check {rel} of rendition {rid}: {exc}")
                continue
            actual = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
            if actual != expected:
                found.append(
                    DanglingRow(rid, rel, "missing" if actual is None else "size_mismatch", expected, actual)
                )
            elif verify_checksums and checksum is not None:
                problem = _local_checksum(where, report, rel, checksum, f"rendition {rid}")
                if problem is not None:
                    found.append(DanglingRow(rid, rel, problem, expected, actual))
        report.renditions_checked += judged
        report.dangling_rendition_count += len(found)
        if found and repair:
            deleted = store.run(delete_dangling_renditions, found)
            for row in found:
                row.action = "deleted_row" if row.id in deleted else "changed"
        for row in found:
            listed(report.dangling_renditions, row)


def _check_files(
    store: Store,
    where: RootDir,
    report: ReconcileReport,
    target: Path | None,
    stale_after_seconds: float,
    *,
    batch: int,
    listed: Callable[[list[Any], Any], None],
    tick: Callable[[int], None],
) -> None:
    """Pass 2: the walk of the root: orphans and stale temp files (repaired with ``report.repair``)."""
    repair, base = report.repair, where.path
    now = time.time()
    seen = 0
    for item in classified(store, base, report.errors, batch, peaks=True):
        seen += 1
        if seen % batch == 0:
            tick(batch)
        if isinstance(item, Entry):
            if item.kind == "symlink":
                report.symlinks += 1
            elif item.kind == "unknown":  # scanned, as an object store's are (and disk_usage counts them)
                report.files_scanned += 1
                report.unknown_files += 1
            elif item.kind == "temp":
                report.files_scanned += 1
                age = now - item.mtime
                if age < stale_after_seconds:
                    report.fresh_temp_files += 1
                    continue
                temp = TempFile(item.rel, item.size, round(age, 3))
                report.stale_temp_count += 1
                if repair:
                    temp.action = _remove(where, item.rel, report.errors)
                listed(report.stale_temp_files, temp)
            continue
        report.files_scanned += 1
        is_peaks = item.entry.kind == "peaks"
        report.peaks_files += is_peaks
        if item.state == "referenced":
            report.referenced_files += 1
        elif item.state == "in_progress":
            report.in_progress_files += 1
        else:
            orphan = OrphanFile(item.entry.rel, item.entry.size)
            if repair and _repair_unless_recorded(
                store, functools.partial(_repair_orphan, where, orphan, target, report.errors),
                url=None, key=item.entry.rel, errors=report.errors,
            ):  # fmt: skip
                report.referenced_files += 1  # recorded (or its generation queued) since the walk
                continue
            report.orphan_count += 1
            report.orphan_peaks_count += is_peaks
            report.orphan_bytes += item.entry.size
            listed(report.orphans, orphan)
    tick(seen % batch)


def _remove(where: RootDir, rel: str, errors: list[str]) -> str:
    try:
        removed = where.unlink(rel)
    except Outside:  # became a symlink since the walk saw it: not touched
        return "reported"
    except OSError as exc:
        errors.append(f"cannot remove {where.path / rel}: {exc}")
        return "reported"
    return "removed" if removed else "gone"


def _repair_orphan(where: RootDir, orphan: OrphanFile, target: Path | None, errors: list[str]) -> None:
    if target is None:
        result = _remove(where, orphan.path, errors)
        orphan.action = {"removed": "deleted", "gone": "gone"}.get(result, "reported")
        return
    try:
        destination = target / orphan.path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination = _free_name(destination)
        moved = where.move_out(orphan.path, destination)
    except Outside:  # became a symlink since the walk saw it: not touched
        return
    except OSError as exc:
        errors.append(f"cannot move {where.path / orphan.path} to the quarantine {target}: {exc}")
        return
    if moved:
        orphan.action, orphan.moved_to = "quarantined", str(destination)
    else:
        orphan.action = "gone"


# --- object stores ------------------------------------------------------------------------------------


def reconcile_objects(
    store: Store,
    root: str | FileStore,
    *,
    repair: bool = False,
    delete_orphans: bool = False,
    stale_after_seconds: float = 3600,
    max_items: int = DEFAULT_MAX_ITEMS,
    batch: int = BATCH,
    progress: Progress | None = None,
    verify_checksums: bool = False,
) -> ReconcileReport:
    """Compare the rows whose files are in an object store with the objects under its prefix.

    One merge of the paginated listing with the rows in key order (``musicstore.maintenance.bucket``):
    memory stays bounded whatever the bucket holds. Found: orphan objects (audio no row records; an object
    named after a pending or processing generation is in progress and left alone), dangling rows (a
    completed generation, or a rendition, whose object is missing or has another size; with
    ``verify_checksums`` also one whose bytes do not hash to the row's SHA-256, each object read once), and
    multipart uploads begun more than ``stale_after_seconds`` ago and never completed. Objects outside the
    prefix are never listed nor touched; objects whose names are not audio are counted, never touched.

    ``repair=True`` marks dangling generations failed and deletes dangling renditions' rows (as for a local
    root), aborts abandoned uploads, and deletes orphan objects, which it requires ``delete_orphans=True``
    for (a bucket has no quarantine folder). ``progress`` gets the number of objects and rows examined.
    """
    started = time.monotonic()
    require_store(store)
    validate.flag(repair, "repair")
    validate.flag(delete_orphans, "delete_orphans")
    validate.number(stale_after_seconds, "stale_after_seconds", positive=False)
    validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    validate.integer(max_items, "max_items", 0)
    validate.flag(verify_checksums, "verify_checksums")
    validate.callback(progress, "progress")
    if repair and not delete_orphans:
        raise InvalidInput(
            "an object store has no quarantine folder: repairing it deletes orphan objects, so pass "
            "delete_orphans=True (the CLI's --orphans delete); run without repair first to see them"
        )
    files, opened = (root, False) if isinstance(root, FileStore) else (open_filestore(root), True)
    try:
        report = ReconcileReport(root=files.url, repair=repair, quarantine=None)
        _reconcile_objects(
            store, files, report, stale_after_seconds=stale_after_seconds, max_items=max_items, batch=batch,
            progress=progress, verify_checksums=verify_checksums,
        )  # fmt: skip
    finally:
        if opened:
            files.close()
    return report.finish(started)


def _reconcile_objects(
    store: Store,
    files: FileStore,
    report: ReconcileReport,
    *,
    stale_after_seconds: float,
    max_items: int,
    batch: int,
    progress: Progress | None,
    verify_checksums: bool,
) -> None:
    repair = report.repair
    dangling: list[DanglingRow] = []
    renditions: list[DanglingRow] = []
    peaks: list[tuple[DanglingPeaks, str | None]] = []
    seen, tick = 0, batch

    def listed(items: list[Any], item: Any) -> None:
        if len(items) < max_items:
            items.append(item)
        else:
            report.truncated = True

    def damaged_orphan(key: str, size: int) -> None:
        """A damaged rendition's object, its row just deleted: an orphan now, taken away in this run as a
        folder's walk takes it (else ``render_generation`` met it at its key: ``ObjectExists``)."""
        orphan = OrphanFile(key, size)

        def delete() -> None:
            orphan.action = _delete_object(files, key, report.errors)

        if _repair_unless_recorded(store, delete, url=files.url, key=key, errors=report.errors):
            return  # a render recorded it again meanwhile
        report.orphan_count += 1
        report.orphan_bytes += size
        listed(report.orphans, orphan)

    def flush() -> None:
        if repair and dangling:
            changed = store.run(mark_dangling_failed, dangling)
            for row in dangling:
                row.action = "marked_failed" if row.id in changed else "changed"
        if repair and renditions:
            deleted = store.run(delete_dangling_renditions, renditions)
            for row in renditions:
                row.action = "deleted_row" if row.id in deleted else "changed"
                if row.action == "deleted_row" and row.actual_bytes is not None:
                    damaged_orphan(row.file_path, row.actual_bytes)
        if repair and peaks:
            _drop_peaks(store, peaks, lambda item: _take_away_object(files, item, report.errors))
        for row in dangling:
            listed(report.dangling, row)
        for row in renditions:
            listed(report.dangling_renditions, row)
        for item, _ in peaks:
            listed(report.dangling_peaks, item)
        dangling.clear()
        renditions.clear()
        peaks.clear()

    for item in classify_objects(store, files, batch=batch, peaks=True):
        seen += len(item.rows) + (item.obj is not None)
        if progress is not None and seen >= tick:
            progress(seen)
            tick = seen + batch
        for row in item.rows:
            if row.rendition:
                report.renditions_checked += 1
            elif row.status == "completed" and not row.is_peaks:
                report.rows_checked += 1
                if row.peaks is not None:
                    _check_record(row, report, peaks, listed)
        if item.obj is not None:
            report.files_scanned += 1
        report.peaks_files += item.peaks
        if item.state == "other":
            report.unknown_files += 1
        elif item.state == "in_progress":
            report.in_progress_files += 1
        elif item.state == "orphan":
            assert item.obj is not None
            orphan = OrphanFile(item.key, item.obj.size)

            def delete(orphan: OrphanFile = orphan) -> None:
                orphan.action = _delete_object(files, orphan.path, report.errors)

            if repair and _repair_unless_recorded(
                store, delete, url=files.url, key=item.key, errors=report.errors
            ):
                report.referenced_files += 1  # recorded (or its generation queued again) since the listing
                continue
            report.orphan_count += 1
            report.orphan_peaks_count += item.peaks
            report.orphan_bytes += item.obj.size
            listed(report.orphans, orphan)
        else:
            if item.state == "referenced":
                report.referenced_files += 1
            for row, problem, actual in _row_problems(files, item, verify_checksums, report):
                if row.is_peaks:
                    report.dangling_peaks_count += 1
                    peaks.append((DanglingPeaks(row.id, row.key, problem, row.size, actual), row.peaks))
                    continue
                found = DanglingRow(row.id, row.key, problem, row.size or 0, actual)
                if row.rendition:
                    report.dangling_rendition_count += 1
                    renditions.append(found)
                else:
                    report.dangling_count += 1
                    dangling.append(found)
            if len(dangling) + len(renditions) + len(peaks) >= batch:
                flush()
    flush()
    _check_uploads(files, report, stale_after_seconds, listed)
    if progress is not None:
        progress(seen)


def _row_problems(
    files: FileStore, item: Item, verify_checksums: bool, report: ReconcileReport
) -> Iterator[tuple[StoredRow, str, int | None]]:
    """(row, problem, size found) for each row of ``item`` whose object must be there and is not as
    recorded."""
    actual = None if item.obj is None else item.obj.size
    hashed: str | None = None
    for row in item.rows:
        if not row.must_exist:
            continue
        if actual is None:
            yield row, "missing", None
        elif actual != row.size and not (row.is_peaks and row.size is None):
            yield row, "size_mismatch", actual
        elif verify_checksums and row.checksum is not None:
            if hashed is None:
                hashed = _hash_object(files, item.key, report.errors)
                report.checksums_verified += hashed is not None
            if hashed is not None and hashed != row.checksum:
                yield row, "checksum_mismatch", actual


def _check_record(
    row: StoredRow,
    report: ReconcileReport,
    found: list[tuple[DanglingPeaks, str | None]],
    listed: Callable[[list[Any], Any], None],
) -> None:
    """A completed generation's peaks record in an object store: counted; one that is not a record, or
    whose key names no object under the prefix (``..``, absolute...), is reported here (a valid one is
    checked by the merge, as a row of its own: ``bucket.peaks_row``)."""
    try:
        record = peaks_record(row.peaks)
    except ValueError as exc:
        report.peaks_checked += 1
        report.dangling_peaks_count += 1
        found.append((DanglingPeaks(row.id, str(exc), "invalid_record", None, None), row.peaks))
        return
    if record is None:
        return
    report.peaks_checked += 1
    try:
        check_key(record.key, "peaks key")
    except InvalidInput as exc:
        report.outside_root_count += 1
        listed(report.outside_root, OutsideRow(row.id, record.key, str(exc), kind="peaks"))


def _take_away_object(files: FileStore, item: DanglingPeaks, errors: list[str]) -> None:
    if _delete_object(files, item.key, errors) == "deleted":
        item.moved_to = None


def _hash_object(files: FileStore, key: str, errors: list[str]) -> str | None:
    digest = hashlib.sha256()
    try:
        for chunk in files.get(key, checksum=None):
            digest.update(chunk)
    except ChecksumMismatch:
        pass  # the object's own recorded checksum differs too: the digest computed says what it holds
    except ObjectNotFound:
        return None
    except StorageError as exc:
        errors.append(f"cannot read {key} to verify its checksum: {exc}")
        return None
    return digest.hexdigest()


def _delete_object(files: FileStore, key: str, errors: list[str]) -> str:
    try:
        return "deleted" if files.delete(key) else "gone"
    except (StorageError, InvalidInput) as exc:
        errors.append(f"cannot delete {files.url}{key}: {exc}")
        return "reported"


def _check_uploads(
    files: FileStore,
    report: ReconcileReport,
    stale_after_seconds: float,
    listed: Callable[[list[Any], Any], None],
) -> None:
    """Multipart uploads under the prefix older than ``stale_after_seconds``: reported, aborted in repair."""
    now = datetime.now(UTC)
    for upload in files.uploads():
        age = None if upload.initiated is None else (now - upload.initiated).total_seconds()
        if age is not None and age < stale_after_seconds:
            report.fresh_uploads += 1
            continue
        found = AbandonedUpload(upload.key, upload.upload_id, None if age is None else round(age, 3))
        report.abandoned_upload_count += 1
        if report.repair:
            try:
                files.abort(upload)
                found.action = "aborted"
            except (StorageError, InvalidInput) as exc:  # InvalidInput: a key another tool began
                report.errors.append(f"cannot abort the upload of {upload.key}: {exc}")
        listed(report.abandoned_uploads, found)


__all__ = [  # the walk's names too: musicstore.maintenance.usage imports them from here
    "AUDIO_SUFFIXES",
    "BATCH",
    "DEFAULT_MAX_ITEMS",
    "AbandonedUpload",
    "DanglingPeaks",
    "DanglingRow",
    "Entry",
    "OrphanFile",
    "OutsideRow",
    "Progress",
    "ReconcileReport",
    "TempFile",
    "check_root",
    "classified",
    "default_quarantine",
    "is_temp_name",
    "reconcile",
    "reconcile_objects",
    "walk",
]
