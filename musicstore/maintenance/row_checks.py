"""Reconcile of a local root, pass 1: the rows (completed generations, the peaks files they record, their
renditions) checked against the files, the operations that page through them and repair them, the
repairs of a file under the root (removed, or moved to the quarantine), and the read that tells an orphan
from a file recorded meanwhile (``orphan_claimed``), with the repair of an orphan it guards
(``_repair_unless_recorded``, for an object store's orphans too). ``musicstore.maintenance.reconcile`` runs
these; see its docstring."""

from __future__ import annotations

import functools
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import DatabaseError, InvalidInput
from ..filestore import local_path
from ..filestore.local import Outside, RootDir
from ..models import Status
from ..ops import NOW, Call, Steps, reader, writer
from ..ops.reads import GENERATION
from ..store import Store
from .bucket import stored_by_keys
from .custom_peaks import owners_of
from .findings import DanglingPeaks, DanglingRow, OrphanFile, OutsideRow, ReconcileReport
from .peaks_checks import _check_local_peaks, _drop_peaks
from .repaired import settle_rows
from .scan import SCHEME, OwnRows, audio_stem, referenced_paths


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
def mark_dangling_failed(items: list[DanglingRow], stores: dict[str, str | None]) -> Steps[set[str]]:
    """completed → failed for each dangling row still exactly as read, in the store it was read in
    (``stores``: id → its ``storage_url`` then); returns the ids changed.

    An operator repair outside the worker status machine (completed is otherwise final), one conditional
    UPDATE per row whose row count decides. On PostgreSQL a row another transaction holds (another host
    recording a rendition or peaks of it) is skipped, as changed, for the next run: never waited for.
    """
    changed: set[str] = set()
    now = yield NOW  # when it failed: its completed_at, as for any failure (the recent failures' order)
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
        params: dict[str, Any] = {"id": item.id, "file_path": item.file_path, "reason": reason, "now": now}
        params |= {"expected_bytes": item.expected_bytes, "actual_bytes": item.actual_bytes}
        params["storage_url"] = stores[item.id]
        count = yield Call("maintenance_mark_dangling_failed", params)
        if count == 1:
            changed.add(item.id)
    return changed


def _free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists() or candidate.is_symlink():
        candidate = target.with_name(f"{target.name}.{n}")
        n += 1
    return candidate


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
                away = functools.partial(_take_away_local, where, target=target, errors=report.errors)
                _drop_peaks(store, peaks, away, {row[0]: row[5] for row in page})
                settle_rows(store, report, peaks=[item for item, _ in peaks])
            for item, _ in peaks:
                listed(report.dangling_peaks, item)
        report.rows_checked += judged
        report.dangling_count += len(found)
        if found and repair:
            changed = store.run(mark_dangling_failed, found, {row[0]: row[5] for row in page})
            for row in found:
                row.action = "marked_failed" if row.id in changed else "changed"
            settle_rows(store, report, masters=found)
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
def delete_dangling_renditions(items: list[DanglingRow], stores: dict[str, str | None]) -> Steps[set[str]]:
    """Delete each dangling rendition's row still exactly as read, its generation's files still in the store
    they were read in (``stores``: rendition id → that ``storage_url``); returns the ids deleted (on
    PostgreSQL a row another transaction holds is skipped, for the next run)."""
    deleted: set[str] = set()
    for item in items:
        params = {"id": item.id, "storage_key": item.file_path, "file_size_bytes": item.expected_bytes}
        params["storage_url"] = stores[item.id]
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
            deleted = store.run(delete_dangling_renditions, found, {row[0]: row[4] for row in page})
            for row in found:
                row.action = "deleted_row" if row.id in deleted else "changed"
            settle_rows(store, report, renditions=found)
        for row in found:
            listed(report.dangling_renditions, row)


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


@writer
def orphan_claimed(generation_id: str, url: str | None, key: str) -> Steps[bool]:
    """Whether ``key`` (a file named after ``generation_id``, or a master named by hand's stem: ``owners_of``;
    ``url``: its object store, None for a local root) is no orphan by now, read with that row locked: a
    row records it, or the generation is pending or processing (a worker may place it and commit).

    A worker places its master, and ``musicstore.rendering`` a rendition, under that lock before it commits; a
    dead letter replayed (failed → pending) and recorded again puts its master at the very key a killed
    attempt left. A file reconcile saw without a row may be one such: this read waits for that transaction
    to end. Run inside the transaction that repairs the orphan: no worker or render records it meanwhile."""
    for gid in (yield from owners_of.steps(key, generation_id)):  # a master named by hand: its generations
        generation = yield Call("get_generation_for_update", {"id": gid}, GENERATION)
        if generation is not None and generation.status in (Status.PENDING, Status.PROCESSING):
            return True
    if url is None:
        return key in (yield from referenced_paths.steps([key]))
    return bool((yield from stored_by_keys.steps(url, [key])))


def default_quarantine(root: Path) -> Path:
    """``<root>.quarantine`` beside the root: outside the scanned tree, on the same filesystem as a rule."""
    resolved = root.resolve()
    return resolved.parent / f"{resolved.name}.quarantine"


def quarantine_folder(value: object) -> Path | None:
    """``quarantine`` as a folder's path (a str or str ``os.PathLike``, not empty, no NUL), or None;
    InvalidInput otherwise, before any work: ``Path("")`` is the working directory, and a repair moved every
    orphan there."""
    if value is None:
        return None
    text = validate.os_path(value, "quarantine", empty=True)  # a str path without NUL the OS takes
    if not text.strip():
        raise InvalidInput(f"quarantine {text!r} is no folder's path (blank): give the folder orphans go to")
    if text[:5].lower() == "file:":  # as the root: file:///PATH (a host or credentials refused, unechoed)
        return Path(validate.os_path(local_path(text), "quarantine"))
    if (scheme := SCHEME.match(text)) is not None:
        raise InvalidInput(
            f"quarantine scheme {scheme[1]!r} is not supported: the quarantine is a local folder (a path or "
            "file:///PATH)"
        )
    return Path(text)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


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
