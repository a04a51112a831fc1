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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import InvalidInput
from ..filestore import FileStore, LocalFileStore, open_filestore
from ..filestore.local import RootDir
from ..store import Store
from .bucket import classify_objects, is_object_store
from .findings import (
    AbandonedUpload,
    DanglingPeaks,
    DanglingRow,
    OrphanFile,
    OutsideRow,
    ReconcileReport,
    TempFile,
)
from .object_checks import _check_record, _check_uploads, _delete_object, _row_problems, _take_away_object
from .peaks_checks import _drop_peaks
from .repaired import settle_file, settle_rows
from .row_checks import (
    _check_renditions,
    _check_rows,
    _inside,
    _remove,
    _repair_orphan,
    _repair_unless_recorded,
    default_quarantine,
    delete_dangling_renditions,
    mark_dangling_failed,
    quarantine_folder,
)
from .scan import (
    AUDIO_SUFFIXES,
    BATCH,
    DEFAULT_MAX_ITEMS,
    Entry,
    OwnRows,
    Progress,
    check_root,
    classified,
    is_temp_name,
    require_store,
    walk,
)

# --- reconcile ----------------------------------------------------------------------------------------


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
    quarantine = quarantine_folder(quarantine)
    if isinstance(root, FileStore):
        assert isinstance(root, LocalFileStore)
        root = root.root
    started = time.monotonic()
    base = check_root(root)
    stale_after_seconds = validate.number(stale_after_seconds, "stale_after_seconds", positive=False)
    batch = validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    max_items = validate.integer(max_items, "max_items", 0)
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
                    settle_file(report, temp)
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
            settle_file(report, orphan)
            report.orphan_count += 1
            report.orphan_peaks_count += is_peaks
            report.orphan_bytes += item.entry.size
            listed(report.orphans, orphan)
    tick(seen % batch)


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
    stale_after_seconds = validate.number(stale_after_seconds, "stale_after_seconds", positive=False)
    batch = validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    max_items = validate.integer(max_items, "max_items", 0)
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
        settle_file(report, orphan)
        report.orphan_count += 1
        report.orphan_bytes += size
        listed(report.orphans, orphan)

    def flush() -> None:
        if repair and dangling:
            changed = store.run(mark_dangling_failed, dangling, {row.id: files.url for row in dangling})
            for row in dangling:
                row.action = "marked_failed" if row.id in changed else "changed"
        if repair and renditions:
            deleted = store.run(delete_dangling_renditions, renditions, {r.id: files.url for r in renditions})
            for row in renditions:
                row.action = "deleted_row" if row.id in deleted else "changed"
                if row.action == "deleted_row" and row.actual_bytes is not None:
                    damaged_orphan(row.file_path, row.actual_bytes)
        if repair and peaks:
            away = functools.partial(_take_away_object, files, errors=report.errors)
            _drop_peaks(store, peaks, away, {item.id: files.url for item, _ in peaks})
        if repair:
            settle_rows(store, report, dangling, renditions, [item for item, _ in peaks])
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
            settle_file(report, orphan)
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
    _check_uploads(files, report, stale_after_seconds, listed, batch=batch)
    if progress is not None:
        progress(seen)


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
    "_repair_unless_recorded",
    "check_root",
    "classified",
    "default_quarantine",
    "is_temp_name",
    "reconcile",
    "reconcile_objects",
    "walk",
]
