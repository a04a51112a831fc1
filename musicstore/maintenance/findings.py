"""What ``musicstore.maintenance.reconcile`` finds and reports: orphan files, dangling rows and peaks
records, rows whose path leads outside the root, stale temp files, abandoned uploads, and the report that
lists and counts them (re-exported by ``musicstore.maintenance.reconcile``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class OrphanFile:
    """A file under the root that no generation records. ``action``: reported, quarantined, deleted, or
    already_repaired (gone when this run came to repair it: another process removed it)."""

    path: str
    size_bytes: int
    action: str = "reported"
    moved_to: str | None = None


@dataclass(slots=True)
class DanglingRow:
    """A completed generation whose file is missing (``actual_bytes`` None) or has another size.

    ``action``: reported, marked_failed, changed (the row changed before the repair; left alone), or
    already_repaired (re-checked: another process marked it failed, or deleted it, first).
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
    """A completed generation whose recorded waveform peaks file (``metadata["peaks"]``, or the normalised one
    its ``normalized`` records: ``key`` says which) is not as recorded.

    ``problem``: ``missing``, ``size_mismatch``, ``checksum_mismatch`` (another SHA-256 than recorded) or
    ``invalid_record`` (the record names no file: ``key`` is the reason then). ``action``: reported,
    record_dropped (``repair``: the record is removed from the metadata, the damaged file moved to the
    quarantine or deleted; ``render_peaks`` makes them again), changed (the record changed since it was
    read: left alone), or already_repaired (re-checked: another process dropped it first)."""

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
    already_repaired (another process removed it first)."""

    path: str
    size_bytes: int
    age_seconds: float
    action: str = "reported"


@dataclass(slots=True)
class AbandonedUpload:
    """A multipart upload under an object store's prefix never completed. ``action``: reported, aborted, or
    already_repaired (no longer listed when this run came to abort it: another process aborted it first)."""

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
    already_repaired: int = 0
    """Of the findings counted above, those another process (a second ``reconcile --repair`` at the same
    time) repaired before this run could: re-checked when this run's repair found them gone or changed,
    listed with ``action="already_repaired"``."""
    errors: list[str] = field(default_factory=list)
    truncated: bool = False
    consistent: bool = False
    """True when nothing was found (no orphan, no dangling row, rendition or recorded peaks file, no row or
    peaks record outside the root, no stale temp file or abandoned upload, no error), or only findings another
    process repaired first (``already_repaired``): the database and the files agree on them by then."""
    seconds: float = 0.0

    def finish(self, started: float) -> ReconcileReport:
        """Judge ``consistent`` from the counts (one rule for a folder and a bucket: the counts one of them
        never finds stay 0) and time the run from ``started`` (``time.monotonic()``)."""
        found = (
            self.orphan_count
            + self.dangling_count
            + self.dangling_rendition_count
            + self.dangling_peaks_count
            + self.stale_temp_count
            + self.abandoned_upload_count
        )
        self.consistent = not (found - self.already_repaired or self.outside_root_count or self.errors)
        self.seconds = round(time.monotonic() - started, 3)
        return self
