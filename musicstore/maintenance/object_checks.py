"""Reconcile of an object store: what ``musicstore.maintenance.reconcile.reconcile_objects`` judges of each
listed object and its rows (missing, another size, other bytes; a peaks record that names no object), and
the object-side repairs (deletes, aborted multipart uploads)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidInput, StorageError
from ..filestore import ChecksumMismatch, FileStore, ObjectNotFound, Upload, check_key
from .bucket import Item, StoredRow
from .findings import AbandonedUpload, DanglingPeaks, OutsideRow, ReconcileReport
from .repaired import ALREADY_REPAIRED
from .scan import peaks_record


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
    checked by the merge, as rows of their own: ``bucket.peaks_rows``)."""
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
    for file in record.files:  # the peaks file, and the normalised one when recorded
        try:
            check_key(file.key, "peaks key")
        except InvalidInput as exc:
            report.outside_root_count += 1
            listed(report.outside_root, OutsideRow(row.id, file.key, str(exc), kind="peaks"))


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
    *,
    batch: int,
) -> None:
    """Multipart uploads under the prefix older than ``stale_after_seconds``: reported, aborted in repair.

    An abort says nothing of an upload already gone (S3 answers NoSuchUpload, SeaweedFS 204: both taken
    as done), so before aborting a batch of them the uploads are listed again: one no longer listed was
    aborted (or completed) by another process since this run's listing, another ``reconcile --repair`` at
    the same time: it is ``already_repaired``, not counted against the run's consistency."""
    now = datetime.now(UTC)
    stale: list[tuple[Upload, AbandonedUpload]] = []
    for upload in files.uploads():
        age = None if upload.initiated is None else (now - upload.initiated).total_seconds()
        if age is not None and age < stale_after_seconds:
            report.fresh_uploads += 1
            continue
        found = AbandonedUpload(upload.key, upload.upload_id, None if age is None else round(age, 3))
        report.abandoned_upload_count += 1
        if report.repair:
            stale.append((upload, found))
            if len(stale) >= batch:
                _abort_uploads(files, report, stale)
                stale.clear()
        listed(report.abandoned_uploads, found)
    if stale:
        _abort_uploads(files, report, stale)


def _abort_uploads(
    files: FileStore, report: ReconcileReport, stale: list[tuple[Upload, AbandonedUpload]]
) -> None:
    wanted = {(upload.key, upload.upload_id) for upload, _ in stale}
    try:
        still = {(u.key, u.upload_id) for u in files.uploads() if (u.key, u.upload_id) in wanted}
    except (StorageError, InvalidInput) as exc:
        report.errors.append(f"cannot list the uploads under {files.url} again before aborting them: {exc}")
        return
    for upload, found in stale:
        if (upload.key, upload.upload_id) not in still:
            found.action = ALREADY_REPAIRED
            report.already_repaired += 1
            continue
        try:
            files.abort(upload)
            found.action = "aborted"
        except (StorageError, InvalidInput) as exc:  # InvalidInput: a key another tool began
            report.errors.append(f"cannot abort the upload of {upload.key}: {exc}")
