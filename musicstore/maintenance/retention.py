"""Retention: delete generations and their files by age, status, model, or to keep under a size budget.

Order of operations, chosen so that a crash at any point leaves only what ``reconcile`` repairs: each batch of
rows is deleted first, in one transaction (one conditional ``DELETE`` per row: only if its status is still the
one read, never a processing row), and only then are their files removed. A crash between the two leaves
orphan files (no row records them), which ``reconcile(repair=True)`` quarantines or deletes; it never leaves a
row pointing at a file that is gone. See docs/maintenance.md.

The root may be an object store (``s3://BUCKET/PREFIX`` or an open ``FileStore``): the same order holds there
(rows deleted and committed, then their objects and their renditions' objects deleted): a crash leaves orphan
objects (``reconcile`` deletes them), never a row whose object is gone; an object a row that stays records is
never deleted, nor a deleted rendition's file a kept row's master is. Each root acts only on the rows whose
files it holds: a row whose file is in another store (another bucket, or a local root when cleaning a bucket)
is skipped with the reason, row and file kept. Rows without a file go on any root. A bucket that cannot be
used at all (``StoreUnavailable``) stops the run before the page's rows are deleted.

Waveform peaks files (``musicstore.rendering.render_peaks``: ``<stem>.peaks.<int>.<8|16>[.split].json``
beside the master, recorded in no table) go with their generation, after its row, as its renditions do: found
by the master's stem in its folder (one listing per folder and batch on a local root; one of the prefix
``<dir>/<stem>.peaks.`` per generation in an object store), not another generation's (``owned_peaks``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import InvalidInput, shown
from ..filestore import FileStore, LocalFileStore, open_filestore
from ..filestore.local import RootDir
from ..models import Status, columns, to_datetime
from ..ops import Call, Steps, get_database_stats, reader, writer
from ..store import Store
from .bucket import is_object_store
from .cleanup_files import delete_peaks, delete_renditions, file_action, shares, with_recorded_peaks
from .cleanup_places import _Folder, _Objects, _Place, beside_kept, kin_kept
from .cleanup_report import CleanupItem, CleanupReport, SkippedItem
from .scan import DEFAULT_MAX_ITEMS, Progress, check_root, require_store

DEFAULT_STATUSES: tuple[Status, ...] = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
"""What ``cleanup`` deletes unless told otherwise: finished generations."""
_DELETABLE = (Status.PENDING, Status.COMPLETED, Status.FAILED, Status.CANCELLED)
_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


@reader
def cleanup_candidates(
    statuses: list[str],
    model_name: str | None,
    before: datetime,
    after: tuple[datetime, str],
    limit: int,
) -> Steps[list[dict[str, Any]]]:
    """Up to ``limit`` generations retention may delete, oldest first, after the keyset cursor ``after``."""
    slots = [*statuses, None, None, None, None][:4]
    rows = yield Call(
        "maintenance_cleanup_candidates",
        {
            "status_1": slots[0],
            "status_2": slots[1],
            "status_3": slots[2],
            "status_4": slots[3],
            "model_name": model_name,
            "before": before,
            "after_created_at": after[0],
            "after_id": after[1],
            "limit": limit,
        },
    )
    return [
        {
            "id": r["id"],
            "status": r["status"],
            "model_name": r["model_name"],
            "created_at": to_datetime(r["created_at"]),
            "file_path": r["file_path"],
            "file_size_bytes": r["file_size_bytes"],
            "storage_url": r["storage_url"],
            "peaks": r["peaks"],
        }
        for r in rows
    ]


@reader
def rendition_files(ids: list[str]) -> Steps[dict[str, list[tuple[str, int]]]]:
    """generation id → the (storage key, recorded bytes) of its renditions, for those of ``ids`` with any."""
    rows = yield Call("maintenance_renditions_of_generations", {"ids": json.dumps(ids)})
    found: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        found.setdefault(r["generation_id"], []).append((r["storage_key"], int(r["file_size_bytes"] or 0)))
    return found


@reader
def recorded_bytes() -> Steps[int]:
    """The bytes the store records, from running totals: its generations' files' and their renditions'."""
    masters = yield from get_database_stats.steps()
    made = yield Call("rendition_totals", {})
    return int(masters.total_file_bytes) + int(made["file_bytes"])


@writer
def idle_lanes(before: datetime, dry_run: bool) -> Steps[int]:
    """Delete (with ``dry_run``, count) the owner keys' lanes with no job pending or processing, last served
    before ``before``: the lanes' triggers keep a row for every key ever used, and delete none."""
    if dry_run:
        found = yield Call("maintenance_idle_lanes", {"before": before}, columns("n"))
        return int(found[0])
    return int((yield Call("maintenance_delete_idle_lanes", {"before": before})))


@writer
def delete_rows(rows: list[tuple[str, str, str | None]]) -> Steps[dict[str, list[tuple[str, int]]]]:
    """Delete each (id, status, storage_url) still so (not one copy-files moved: its copies would be orphans);
    returns id → its renditions' (key, bytes), read under the row's lock (PostgreSQL: SKIP LOCKED, a held row
    is left): those its delete cascades, one recorded since the page was read among them (else left)."""
    locked: list[tuple[str, str]] = []
    for gid, status, url in rows:
        row = yield Call("maintenance_generation_for_update", {"id": gid})
        if row is not None and (row["status"], row["storage_url"]) == (status, url):
            locked.append((gid, status))
    made = yield from rendition_files.steps([gid for gid, _ in locked])
    deleted: dict[str, list[tuple[str, int]]] = {}
    for gid, status in locked:
        count = yield Call("maintenance_delete_generation", {"id": gid, "status": status})
        if count == 1:
            deleted[gid] = made.get(gid, [])
    return deleted


def _statuses(statuses: Iterable[Status | str] | None) -> list[str]:
    if statuses is None:
        return [s.value for s in DEFAULT_STATUSES]
    if isinstance(statuses, str):
        statuses = [statuses]
    if not isinstance(statuses, Iterable):
        raise InvalidInput(
            f"statuses must be a status or a collection of them, got {type(statuses).__name__}"
        )
    chosen: list[str] = []
    for value in statuses:
        status = validate.status(value)
        if status is Status.PROCESSING:
            raise InvalidInput(
                "cleanup never deletes processing generations (a worker holds them); cancel them first"
            )
        if status.value not in chosen:
            chosen.append(status.value)
    if not chosen:
        raise InvalidInput(f"statuses must name at least one of {[s.value for s in _DELETABLE]}")
    return chosen


def cleanup(
    store: Store,
    root: str | Path | FileStore,
    *,
    older_than: timedelta | None = None,
    statuses: Iterable[Status | str] | None = None,
    model_name: str | None = None,
    max_total_bytes: int | None = None,
    dry_run: bool = True,
    batch: int = 1000,
    max_items: int = DEFAULT_MAX_ITEMS,
    progress: Progress | None = None,
) -> CleanupReport:
    """Delete generations and their files; by default only report what would go (``dry_run=True``).

    Candidates: generations in ``statuses`` (default completed, failed, cancelled; pending only when named;
    processing never), of ``model_name`` if given, created more than ``older_than`` ago by the store's clock.
    Without ``max_total_bytes`` every candidate goes; with it, candidates go oldest first only until the
    bytes the store records (its generations' files and their renditions') are at most ``max_total_bytes``.
    At least one criterion must be given (``statuses`` counts when passed explicitly).

    A row is kept, with its file, when its path leads outside the root (absolute, ``..``, through or to a
    symlink: ``outside_root_count``), is not a .wav/.flac, or not a regular file. A file another kept row
    still records is not deleted. ``progress`` is called with the number of generations processed so far.
    """
    started = time.monotonic()
    require_store(store)
    if older_than is None and statuses is None and model_name is None and max_total_bytes is None:
        raise InvalidInput(
            "cleanup needs a criterion (older_than, statuses, model_name or max_total_bytes); to delete "
            "every finished generation, pass statuses=('completed', 'failed', 'cancelled') explicitly"
        )
    chosen = _statuses(statuses)
    model = validate.name(model_name, "model_name", optional=True)
    if older_than is not None and (not isinstance(older_than, timedelta) or older_than < timedelta(0)):
        raise InvalidInput(f"older_than must be a non-negative timedelta, got {shown(older_than)}")
    budget = None if max_total_bytes is None else validate.integer(max_total_bytes, "max_total_bytes", 0)
    size = validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    dry_run = validate.flag(dry_run, "dry_run")  # dry_run=0 must not delete
    max_items = validate.integer(max_items, "max_items", 0)
    validate.callback(progress, "progress")
    try:  # the store's clock (a FakeClock in tests), checked as the store checks it: no query reads it
        cutoff = (
            _LAST if older_than is None else validate.moment(store.clock(), "the store's clock") - older_than
        )
    except OverflowError:
        raise InvalidInput(f"older_than of {older_than} reaches before the year 1") from None
    if is_object_store(root):
        files = root if isinstance(root, FileStore) else open_filestore(str(root))
        try:
            return _cleanup(
                store, _Objects(files), chosen=chosen, model=model, cutoff=cutoff, budget=budget,
                older_than=older_than, dry_run=dry_run, size=size, max_items=max_items, progress=progress,
                started=started,
            )  # fmt: skip
        finally:
            if not isinstance(root, FileStore):
                files.close()
    base = check_root(root.root if isinstance(root, LocalFileStore) else root)  # type: ignore[arg-type]
    with RootDir(base) as where:
        return _cleanup(
            store, _Folder(where), chosen=chosen, model=model, cutoff=cutoff, budget=budget,
            older_than=older_than, dry_run=dry_run, size=size, max_items=max_items, progress=progress,
            started=started,
        )  # fmt: skip


def _cleanup(
    store: Store,
    place: _Place,
    *,
    chosen: list[str],
    model: str | None,
    cutoff: datetime,
    budget: int | None,
    older_than: timedelta | None,
    dry_run: bool,
    size: int,
    max_items: int,
    progress: Progress | None,
    started: float,
) -> CleanupReport:
    """``cleanup`` once its arguments are checked; every file is reached through ``place``."""
    report = CleanupReport(
        dry_run=dry_run,
        root=place.name,
        statuses=chosen,
        older_than_seconds=None if older_than is None else older_than.total_seconds(),
        cutoff=None if older_than is None else cutoff.isoformat(),
        model_name=model,
        max_total_bytes=budget,
    )
    if older_than is not None:  # the lanes idle as it starts: a dry run counts what a run would delete
        report.lanes_deleted = store.run(idle_lanes, cutoff, dry_run)
    total = report.total_bytes_before = store.run(recorded_bytes)
    processed = 0

    def listed(items: list[Any], item: Any) -> None:
        if len(items) < max_items:
            items.append(item)
        else:
            report.truncated = True

    def skip(row: dict[str, Any], reason: str) -> None:
        report.skipped_count += 1
        report.outside_root_count += reason.startswith("outside the output root")
        listed(report.skipped, SkippedItem(row["id"], row["file_path"], reason))

    after: tuple[datetime, str] = (_FIRST, "")
    finished = budget is not None and total <= budget
    sharers: set[str] = set()  # dry run: rows deleted whose file or kin master a later page asks about
    while not finished:
        page = store.run(cleanup_candidates, chosen, model, cutoff, after, size)
        if not page:
            break
        after = (page[-1]["created_at"], page[-1]["id"])
        renditions = store.run(rendition_files, [row["id"] for row in page])  # their rows cascade
        selected: list[tuple[dict[str, Any], int | None]] = []
        for row in page:
            if budget is not None and total <= budget:
                finished = True
                break
            on_disk: int | None = None
            if row["file_path"] is not None:
                problem = place.elsewhere(row["storage_url"])
                if problem is None:
                    problem, on_disk = place.problem(row["file_path"])
                if problem is not None:
                    skip(row, problem)
                    continue
            selected.append((row, on_disk))
            total -= _recorded(row, renditions)
        if not selected:
            continue
        if dry_run:
            deleted = {row["id"]: renditions.get(row["id"], []) for row, _ in selected}
        else:  # with the renditions each delete removed (one recorded since the page was read among them)
            deleted = store.run(delete_rows, [(r["id"], r["status"], r["storage_url"]) for r, _ in selected])
        # rows deleted first (committed above), files after: a crash from here on leaves orphan files only
        paths = [row["file_path"] for row, _ in selected if row["id"] in deleted and row["file_path"]]
        shared = place.still_referenced(store, paths, set(deleted) | sharers, dry_run) if paths else set()
        if dry_run:  # rows kept_shared here would be gone when a later page reaches the row that keeps them
            sharers |= {row["id"] for row, _ in selected if shares(row["file_path"], shared)}
        made = [key for gid in deleted for key, _ in deleted[gid]]  # a rendition at a kept row's file is kept
        kept = place.still_referenced(store, made, set(deleted) | sharers, dry_run) if made else set()
        if dry_run:  # rows whose rendition file a row kept here records: gone when a later page asks
            sharers |= {gid for gid in deleted if any(shares(key, kept) for key, _ in deleted[gid])}
        beside = place.peaks(paths, report.errors) if paths else {}
        peaks = beside_kept(place, store, beside, set(deleted) | sharers, dry_run)  # not a kin's peaks
        if dry_run:  # rows with a kin master that stays: a later page deleting the kin sees them gone
            kin = kin_kept(place, store, paths, set(deleted) | sharers, dry_run)
            sharers |= {row["id"] for row, _ in selected if row["file_path"] in kin}
        removed: set[str] = set()  # files this page removed (or, in a dry run, would): rows may share one
        for row, on_disk in selected:
            processed += 1
            if row["id"] not in deleted:
                report.rows_changed += 1
                total += _recorded(row, renditions)
                if progress is not None:
                    progress(processed)
                continue
            action = file_action(
                place,
                rel=row["file_path"],
                on_disk=on_disk,
                shared=shared,
                dry_run=dry_run,
                errors=report.errors,
                gone=removed,
            )
            report.rows_deleted += 1
            if action in ("deleted", "would_delete"):
                report.files_deleted += 1
                report.bytes_freed += on_disk or 0
            own = [key for key, _ in deleted[row["id"]] if not shares(key, kept)]
            gone = delete_renditions(place, own, dry_run, report, removed)
            drawn = 0
            if action != "kept_shared" and row["file_path"]:
                found = with_recorded_peaks(place, row, peaks.get(row["file_path"], []))
                drawn = delete_peaks(place, found, dry_run, report, removed)
            listed(
                report.deleted,
                CleanupItem(
                    id=row["id"],
                    status=row["status"],
                    model_name=row["model_name"],
                    created_at=row["created_at"].isoformat(),
                    file_path=row["file_path"],
                    file_size_bytes=row["file_size_bytes"],
                    file_action=action,
                    renditions_deleted=gone,
                    peaks_deleted=drawn,
                ),
            )
            if progress is not None:
                progress(processed)

    report.total_bytes_after = total if dry_run else store.run(recorded_bytes)
    if budget is not None:
        report.budget_met = report.total_bytes_after <= budget
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _recorded(row: dict[str, Any], renditions: dict[str, list[tuple[str, int]]]) -> int:
    """The bytes the store records for a generation: its file's and its renditions'."""
    return int(row["file_size_bytes"] or 0) + sum(size for _, size in renditions.get(row["id"], []))


__all__ = ["DEFAULT_STATUSES", "CleanupItem", "CleanupReport", "SkippedItem", "cleanup"]
