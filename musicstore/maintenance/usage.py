"""Storage statistics: what the database records (no disk walk), and what the disk holds that it does not.

``storage_stats(store)`` reads counts and recorded file bytes by status, model and UTC day of creation,
and the oldest/newest creation time, and how many renditions and their bytes, in one read transaction (the
figures add up), all from running totals that triggers keep and the ends of the time index: no scan of
``generations`` or ``renditions``.
``disk_usage(store, root)`` walks the output root (the walk of ``musicstore.maintenance.reconcile``), or
lists an object store's prefix (``s3://``: the merge of ``musicstore.maintenance.bucket``), and sorts every
file into what the database records, what belongs to generations in progress, orphans, export temp files,
other files and symlinks, and sums files and bytes by UTC day and by the status of the generation they
belong to. See docs/maintenance.md.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from .. import validate
from ..filestore import FileStore, LocalFileStore, open_filestore
from ..models import Status, to_datetime
from ..models.status import status_of
from ..ops import Call, Steps, get_database_stats, reader
from ..store import Store
from .bucket import classify_objects, is_object_store
from .reconcile import BATCH, Entry, Progress, check_root, classified
from .scan import require_store

_LAYOUT = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}/")


@dataclass(slots=True)
class Bucket:
    """How many generations, and the file bytes they record."""

    generations: int = 0
    file_bytes: int = 0


@dataclass(slots=True)
class StorageStats:
    """Recorded storage by status, model and UTC day (``YYYY-MM-DD``); timestamps as ISO 8601 strings.
    ``renditions``/``rendition_bytes``: the renditions' rows and the bytes of their files (migration 0011's
    running totals), not counted in ``file_bytes`` nor in the buckets, which are the generations' files.

    ``json.dumps(dataclasses.asdict(stats))`` works as is.
    """

    generations: int
    file_bytes: int
    oldest_created_at: str | None
    newest_created_at: str | None
    by_status: dict[str, Bucket] = field(default_factory=dict)
    by_model: dict[str, Bucket] = field(default_factory=dict)
    by_day: dict[str, Bucket] = field(default_factory=dict)
    renditions: int = 0
    rendition_bytes: int = 0


@reader
def storage_stats_op() -> Steps[StorageStats]:
    """The figures of ``storage_stats``; run it in a read transaction for one consistent snapshot."""
    span = yield Call("maintenance_storage_span", {})
    by_status = {status.value: Bucket() for status in Status}
    for row in (yield Call("maintenance_storage_by_status", {})):
        by_status[status_of(row["status"]).value] = Bucket(int(row["generations"]), int(row["file_bytes"]))
    by_model = {
        row["model_name"]: Bucket(int(row["generations"]), int(row["file_bytes"]))
        for row in (yield Call("maintenance_storage_by_model", {}))
    }
    by_day = {
        str(row["day"]): Bucket(int(row["generations"]), int(row["file_bytes"]))
        for row in (yield Call("maintenance_storage_by_day", {}))
    }
    made = yield Call("rendition_totals", {})
    oldest, newest = span["oldest"], span["newest"]
    return StorageStats(
        generations=int(span["generations"]),
        file_bytes=int(span["file_bytes"]),
        oldest_created_at=None if oldest is None else to_datetime(oldest).isoformat(),
        newest_created_at=None if newest is None else to_datetime(newest).isoformat(),
        by_status=by_status,
        by_model=by_model,
        by_day=by_day,
        renditions=int(made["renditions"]),
        rendition_bytes=int(made["file_bytes"]),
    )


def storage_stats(store: Store) -> StorageStats:
    """Counts and recorded bytes by status, model and UTC day, oldest/newest creation, the renditions' count
    and bytes: database only.

    Reads the running totals by status, by (model, status) and by day (one row per key; per shard on
    PostgreSQL), so its time grows with the number of models and days, not of generations.
    """
    with require_store(store).transaction(write=False) as tx:
        return tx.run(storage_stats_op)


@dataclass(slots=True)
class FileBucket:
    """How many files, and their bytes on disk."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass(slots=True)
class DiskUsage:
    """What the output root holds, by what the database knows of it.

    ``recorded``: files a generation records (its master, its renditions, its waveform peaks files: those
    named ``<id>.peaks.…json`` after a generation that exists); ``in_progress``: named after a
    pending/processing generation (an export not yet committed); ``orphans``: no generation records them,
    peaks files of deleted generations included: the files ``reconcile`` reports as orphans (and repairs);
    ``temp``: export temp/staged files; ``other``: files of other types (never touched); ``symlinks``: not
    followed. ``database_file_bytes`` is the bytes the database records over all generations.
    """

    root: str
    files: int = 0
    bytes: int = 0
    recorded: FileBucket = field(default_factory=FileBucket)
    in_progress: FileBucket = field(default_factory=FileBucket)
    orphans: FileBucket = field(default_factory=FileBucket)
    temp: FileBucket = field(default_factory=FileBucket)
    other: FileBucket = field(default_factory=FileBucket)
    symlinks: int = 0
    uploads: int = 0
    """Object stores: multipart uploads begun under the prefix and not completed (their parts unsized)."""
    database_file_bytes: int = 0
    by_day: dict[str, FileBucket] = field(default_factory=dict)
    """Files and bytes by UTC day (``YYYY-MM-DD``): the day of the key layout ``YYYY/MM/DD/…`` when the path
    follows it, else of the file's modification time; in day order."""
    by_status: dict[str, FileBucket] = field(default_factory=dict)
    """Files and bytes by the status of the generation they belong to (renditions with their generation's);
    ``orphan`` and ``other`` for files no generation has."""
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _day(rel: str, modified: datetime | float | None) -> str:
    """The UTC day of a file: its key layout's ``YYYY/MM/DD/`` (a real date), else its modification time."""
    if _LAYOUT.match(rel):
        try:
            return date(int(rel[:4]), int(rel[5:7]), int(rel[8:10])).isoformat()
        except ValueError:  # '2026/13/45/': shaped like the layout, no date
            pass
    if modified is None:
        return "unknown"
    when = modified if isinstance(modified, datetime) else datetime.fromtimestamp(modified, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def _count(usage: DiskUsage, rel: str, size: int, modified: datetime | float | None, status: str) -> None:
    usage.files += 1
    usage.bytes += size
    usage.by_day.setdefault(_day(rel, modified), FileBucket()).add(size)
    usage.by_status.setdefault(status, FileBucket()).add(size)


def disk_usage(
    store: Store, root: str | Path | FileStore, *, batch: int = BATCH, progress: Progress | None = None
) -> DiskUsage:
    """Walk ``root`` (streaming) and sum its files by what the database knows of them; changes nothing.

    ``root`` may be an object store (``s3://BUCKET/PREFIX`` or an open ``FileStore``): its prefix is listed
    a page at a time and merged with the rows whose files are there, memory bounded. ``progress`` is called
    with the number of entries seen so far, once per ``batch``.
    """
    started = time.monotonic()
    require_store(store)
    batch = validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    validate.callback(progress, "progress")
    if is_object_store(root):
        files = root if isinstance(root, FileStore) else open_filestore(str(root))
        try:
            usage = _object_usage(store, files, batch, progress)
        finally:
            if not isinstance(root, FileStore):
                files.close()
        usage.seconds = round(time.monotonic() - started, 3)
        return _sorted(usage)
    base = check_root(root.root if isinstance(root, LocalFileStore) else root)  # type: ignore[arg-type]
    usage = DiskUsage(root=str(base))
    seen = 0
    for item in classified(store, base, usage.errors, batch, peaks=True):
        seen += 1
        if progress is not None and seen % batch == 0:
            progress(seen)
        if isinstance(item, Entry):
            if item.kind == "symlink":
                usage.symlinks += 1
                continue
            (usage.temp if item.kind == "temp" else usage.other).add(item.size)
            _count(usage, item.rel, item.size, item.mtime, "temp" if item.kind == "temp" else "other")
            continue
        bucket = {"referenced": usage.recorded, "in_progress": usage.in_progress}.get(
            item.state, usage.orphans
        )
        bucket.add(item.entry.size)
        status = item.status or ("orphan" if item.state == "orphan" else "recorded")
        _count(usage, item.entry.rel, item.entry.size, item.entry.mtime, status)
    if progress is not None:
        progress(seen)
    usage.database_file_bytes = store.run(get_database_stats).total_file_bytes
    usage.seconds = round(time.monotonic() - started, 3)
    return _sorted(usage)


def _object_usage(store: Store, files: FileStore, batch: int, progress: Progress | None) -> DiskUsage:
    usage = DiskUsage(root=files.url)
    seen = 0
    for item in classify_objects(store, files, batch=batch, peaks=True):
        if item.obj is None:
            continue  # rows whose object is missing: reconcile reports them
        seen += 1
        if progress is not None and seen % batch == 0:
            progress(seen)
        size = item.obj.size
        bucket = {
            "referenced": usage.recorded, "in_progress": usage.in_progress, "orphan": usage.orphans,
        }.get(item.state, usage.other)  # fmt: skip
        bucket.add(size)
        status = item.status or ("orphan" if item.state == "orphan" else "other")
        _count(usage, item.key, size, item.obj.modified, status)
    usage.uploads = sum(1 for _ in files.uploads())
    if progress is not None:
        progress(seen)
    usage.database_file_bytes = store.run(get_database_stats).total_file_bytes
    return usage


def _sorted(usage: DiskUsage) -> DiskUsage:
    usage.by_day = dict(sorted(usage.by_day.items()))
    usage.by_status = dict(sorted(usage.by_status.items()))
    return usage


__all__ = ["Bucket", "DiskUsage", "FileBucket", "StorageStats", "disk_usage", "storage_stats"]
