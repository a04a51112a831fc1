"""Copy the files of existing rows to another store (a local folder to S3, S3 to a folder, bucket to bucket).

``copy_files(store, to)`` walks the completed generations whose file is not recorded in ``to`` (id order, a
page of ``batch`` rows at a time) and, for each, copies its master, its renditions and its waveform peaks
files (all of which live in their generation's store) to the same keys in ``to``, then points the row at
``to``. The peaks files are the ones ``metadata["peaks"]`` records (the export's normalised peaks in its
``normalized`` too: ``relocate_peaks``; each checked against its recorded ``sha256``
and ``bytes`` as a master is against its row; missing, it keeps the row where it is: ``render_peaks`` puts it
back) and every other file beside the master named ``<stem>.peaks.<int>.<8|16>[.split].json``
(``musicstore.rendering.peaks_name``; no row records them, so each is hashed where it is first and read
against that hash). The order makes it safe to stop at any moment (Ctrl-C, a crash, a lost connection) and to
run again:

1. Each object is read from the store the row names (its ``storage_url``; rows from before migration 0006
   name none: their folder is ``source``) and verified against the row's SHA-256 (a rendition's, the peaks
   record's) as it streams (a damaged source, or one of another size than the row's, is refused, nothing
   written), and put with a conditional create: an object already at the key holding these very bytes is
   a copy made by an earlier run and is kept as is; one with other bytes is never overwritten (the row is
   skipped and named). A store that cannot be used at all (``StoreUnavailable``: access denied, no bucket,
   unreachable) stops the run.
2. The copy is verified where it landed: its size and SHA-256 (the checksum the store keeps, else it is read
   back and hashed) must be the row's.
3. Only then, in one transaction per row, each row changes: ``storage_url`` becomes ``to``'s URL (and the
   checksum is recorded for rows that had none), only if the row is still as it was read (completed, same
   key, same store) and every rendition it then has, and its peaks record (read under the row's lock, which
   a render holds from before its put to its commit), were copied. The renditions' rows and the peaks
   record (a key, no store) need no change: they follow their generation.

An interrupted run leaves copies that no row records yet in ``to`` (reconcile reports them as orphans until
the next run records them) and never a row pointing at a copy that is not whole and verified. The source files
are kept: remove them once the copy is checked (``reconcile`` of a bucket lists them as orphans, and
``--repair --orphans delete`` deletes them). See docs/storage.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import InvalidInput, StorageError
from ..filestore import (
    FileStore,
    KeyConflict,
    LocalFileStore,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreUnavailable,
    open_filestore,
)
from ..models import Generation
from ..ops import Call, Steps, reader, writer
from ..ops.reads import GENERATION
from ..store import Store
from . import dry_target
from .dry_target import already_in, check_bucket, dry_copy, holds, named_shared, open_target, sha256_of
from .relocate_peaks import peaks_of as _peaks_of
from .scan import DEFAULT_MAX_ITEMS, OwnRows, require_store


@dataclass(slots=True)
class CopySkipped:
    """A generation whose files were not copied (its row unchanged), with the reason."""

    id: str
    key: str
    reason: str


@dataclass(slots=True)
class CopyReport:
    """What ``copy_files`` copied (or, with ``dry_run``, would copy); ``json.dumps(asdict(report))`` works.

    ``objects_copied`` counts objects written by this run, ``objects_present`` copies an earlier run made
    (same bytes, kept); ``rows_updated`` the generations now pointing at ``target``. A dry run counts what
    the run would copy, find and update, and skips the rows it would skip."""

    target: str
    dry_run: bool
    generations_seen: int = 0
    rows_updated: int = 0
    rows_changed: int = 0
    """Rows that changed while their files were copied (left as they are; run again)."""
    objects_copied: int = 0
    objects_present: int = 0
    renditions_copied: int = 0
    peaks_copied: int = 0
    """Waveform peaks files carried (copied by this run or found there), of the rows updated."""
    bytes_copied: int = 0
    skipped_count: int = 0
    skipped: list[CopySkipped] = field(default_factory=list)
    truncated: bool = False
    seconds: float = 0.0


@reader
def files_to_copy(target_url: str, after_id: str, limit: int) -> Steps[list[dict[str, Any]]]:
    """Completed generations with a file not recorded in ``target_url``, ids above ``after_id``."""
    rows = yield Call(
        "maintenance_files_to_copy", {"target_url": target_url, "after_id": after_id, "limit": limit}
    )
    return [dict(r) for r in rows]


@reader
def renditions_of(ids: list[str]) -> Steps[dict[str, list[tuple[str, int, str]]]]:
    """generation id → its renditions' (storage_key, file_size_bytes, checksum)."""
    rows = yield Call("maintenance_renditions_of_generations", {"ids": json.dumps(ids)})
    found: dict[str, list[tuple[str, int, str]]] = {}
    for r in rows:
        found.setdefault(r["generation_id"], []).append(
            (r["storage_key"], r["file_size_bytes"], r["checksum"])
        )
    return found


Move = tuple[str, str | None, str, str, str, frozenset[tuple[str, str]], str | None, Any]
"""(id, old_url, key, checksum, origin's url, the renditions copied as (storage_key, checksum), the row's
checksum as read, its peaks record copied: ``metadata["peaks"]`` as read, None when none)."""


@writer
def relocate(
    moves: list[Move], target_url: str, landed: Callable[[str], bool] | None = None
) -> Steps[set[str]]:
    """Point each (id, old_url, key, checksum) row at ``target_url`` if still as read, and only if every
    rendition it has then, and its peaks record, were copied, and ``landed(id)`` (when given) finds its
    copies still in the target; returns ids changed.

    The row is updated first, which takes its lock (a render holds it from before its put to its commit, and
    ``render_peaks`` while it records), so the renditions and the record read next are all it has until this
    commits: one recorded since they were listed (put beside the master in the old store, not copied) puts
    the row back as it was, counted as changed; the next run copies it. So does a copy gone since it was
    verified (an orphan there until this commits: a ``reconcile --repair`` of the target deletes one named
    after its generation under the lock the update now holds, ``row_checks.orphan_claimed``)."""
    changed: set[str] = set()
    for gid, old_url, key, checksum, _, copied, before, peaks in moves:
        params = {"id": gid, "old_url": old_url, "new_url": target_url, "file_path": key}
        params["checksum"] = checksum
        if (yield Call("maintenance_relocate_file", params)) != 1:
            continue
        now = yield Call("maintenance_renditions_of_generations", {"ids": json.dumps([gid])})
        row: Generation | None = yield Call("get_generation", {"id": gid}, GENERATION)
        recorded = None if row is None else row.metadata.get("peaks")
        made = {(r["storage_key"], r["checksum"]) for r in now}
        if made <= copied and recorded == peaks and (landed is None or landed(gid)):
            changed.add(gid)
            continue
        back = {**params, "old_url": target_url, "new_url": old_url, "checksum": before}
        # a rendition or peaks recorded meanwhile, not copied; or a copy deleted since it was verified
        yield Call("maintenance_relocate_file", back)
    return changed


class _Sources:
    """The stores rows name, each opened once (closed at the end)."""

    def __init__(self, source: FileStore | None) -> None:
        self.source = source
        self.opened: dict[str, FileStore] = {}

    def of(self, url: str | None) -> FileStore | None:
        if url is None:
            return self.source
        if self.source is not None and url == self.source.url:
            return self.source
        if url not in self.opened:
            self.opened[url] = (
                open_filestore(url, create=False) if url.startswith("file:") else open_filestore(url)
            )
        return self.opened[url]

    def close(self) -> None:
        for opened in self.opened.values():
            opened.close()


def copy_files(
    store: Store,
    to: str | Path | FileStore,
    *,
    source: str | Path | FileStore | None = None,
    only_from: str | None = None,
    dry_run: bool = False,
    batch: int = 100,
    max_items: int = DEFAULT_MAX_ITEMS,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy the files of completed generations (masters, renditions, waveform peaks files) into ``to`` and
    point their rows there; idempotent and resumable (see the module).

    ``source``: the folder of rows that name no store (recorded before migration 0006; a folder that does
    not exist is a ``StorageError``, never made); ``only_from``: copy only rows whose files are in the store
    at that URL (a folder path, ``file://`` or ``s3://`` URL).
    ``dry_run`` copies nothing and changes no row: the report says what would be (it reads and hashes each
    object it would copy, as the run does: a damaged source is skipped by both). ``progress`` gets the
    number of generations seen so far. A row whose files cannot be copied (missing or damaged at the source,
    other bytes at the target) is skipped with the reason; ``StoreUnavailable`` (the source or target store
    denies access, has no bucket or cannot be reached) is raised at once, the pages before it moved.
    """
    started = time.monotonic()
    require_store(store)
    validate.flag(dry_run, "dry_run")
    size = validate.integer(batch, "batch", 1, validate.MAX_PAGE)
    max_items = validate.integer(max_items, "max_items", 0)
    validate.callback(progress, "progress")
    # the stores read from first, none made: a mistyped source is an error, a refused call writes nothing
    wanted: Callable[[str | None], bool] | None = None
    if only_from is not None:
        chosen = open_filestore(only_from, create=False)
        wanted = _stored_in(chosen)
        chosen.close()
    origin = None
    if source is not None:
        origin = source if isinstance(source, FileStore) else open_filestore(source, create=False)
    try:
        if origin is not None and not isinstance(origin, LocalFileStore):
            raise InvalidInput(
                "source is the folder of rows recorded before 0006 (they name no store): give a path"
            )
        target = to if isinstance(to, FileStore) else open_target(to, dry_run=dry_run)
    except BaseException:
        if origin is not None and not isinstance(source, FileStore):
            origin.close()
        raise
    sources = _Sources(origin)
    report = CopyReport(target=target.url, dry_run=dry_run)
    planned: dict[str, tuple[int, str]] = {}  # dry run: key → size, SHA-256 of shared objects it copies
    try:
        if dry_run:
            check_bucket(target)
        there, after = already_in(target, origin), ""
        while page := store.run(files_to_copy, target.url, after, size):
            after = page[-1]["id"]
            page = [r for r in page if not there(r["storage_url"])]  # the target folder, spelled otherwise
            if wanted is not None:
                page = [r for r in page if wanted(_url_of(r, origin))]
            _copy_page(store, page, target=target, sources=sources, report=report, max_items=max_items,
                       planned=planned)  # fmt: skip
            report.generations_seen += len(page)
            if progress is not None:
                progress(report.generations_seen)
    finally:
        sources.close()
        if not isinstance(to, FileStore):
            target.close()
        if origin is not None and not isinstance(source, FileStore):
            origin.close()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _stored_in(chosen: FileStore) -> Callable[[str | None], bool]:
    """Whether a row's storage URL names ``chosen``: a bucket by its URL, a folder in any spelling (a
    symlink to it, ``..``: the same device and inode, as reconcile and cleanup take a folder)."""
    if isinstance(chosen, LocalFileStore):
        own = OwnRows(chosen.root)
        return lambda url: url is not None and own(url)
    return lambda url: url == chosen.url


def _url_of(row: dict[str, Any], origin: FileStore | None) -> str | None:
    url: str | None = row["storage_url"]
    return url if url is not None else None if origin is None else origin.url


def _copy_page(
    store: Store,
    page: list[dict[str, Any]],
    *,
    target: FileStore,
    sources: _Sources,
    report: CopyReport,
    max_items: int,
    planned: dict[str, tuple[int, str]],
) -> None:
    def skip(row: dict[str, Any], reason: str) -> None:
        report.skipped_count += 1
        if len(report.skipped) < max_items:
            report.skipped.append(CopySkipped(row["id"], row["file_path"], reason))
        else:
            report.truncated = True

    renditions = store.run(renditions_of, [row["id"] for row in page]) if page else {}
    recorded = [(r["file_path"], r["id"]) for r in page]
    recorded += [(key, gid) for gid, made in renditions.items() for key, _, _ in made]
    shared = named_shared(store, recorded) if report.dry_run else frozenset()
    moves: list[Move] = []
    copies: dict[str, list[str]] = {}  # id → the keys of its copies in the target
    for row in page:
        try:
            origin = sources.of(row["storage_url"])
        except (StorageError, InvalidInput) as exc:  # a folder gone, say: its rows wait, the others go on
            skip(row, f"{type(exc).__name__}: {exc}")
            continue
        if origin is None:
            skip(row, "the row names no store (recorded before 0006): give its folder as source (--source)")
            continue
        files = [(row["file_path"], row["file_size_bytes"], row["checksum"])]
        files += renditions.get(row["id"], [])
        try:
            peaks = _peaks_of(origin, row)
            copy = functools.partial(_copy_one, report=report, planned=planned, gid=row["id"], shared=shared)
            sums = [copy(origin, target, key, size, checksum) for key, size, checksum in files + peaks]
        except StoreUnavailable:
            raise  # denied, no bucket, unreachable: every other row would fail alike; stop the run
        except (StorageError, InvalidInput) as exc:
            skip(row, f"{type(exc).__name__}: {exc}")
            continue
        copies[row["id"]] = [key for key, _, _ in files + peaks]
        copied = frozenset((k, c) for k, _, c in renditions.get(row["id"], []))
        record = None if row["peaks"] is None else json.loads(row["peaks"])
        moves.append(
            (
                row["id"],
                row["storage_url"],
                row["file_path"],
                sums[0],
                origin.url,
                copied,
                row["checksum"],
                record,
            )
        )
        report.renditions_copied += len(files) - 1
        report.peaks_copied += len(peaks)
    if report.dry_run or not moves:
        report.rows_updated += len(moves)
        return
    there = functools.partial(dry_target.copies_there, target, copies)  # HEADs, the row locked: a row each
    changed = {gid for move in moves for gid in store.run(relocate, [move], target.url, there)}
    report.rows_updated += len(changed)
    report.rows_changed += len(moves) - len(changed)


def _copy_one(
    origin: FileStore,
    target: FileStore,
    key: str,
    size: int | None,
    checksum: str | None,
    *,
    report: CopyReport,
    planned: dict[str, tuple[int, str]],
    gid: str,
    shared: frozenset[str],
) -> str:
    """Copy ``key`` (of generation ``gid``) from ``origin`` to ``target`` and verify the copy; returns its
    SHA-256. A dry run counts what the copy would do (``dry_target.dry_copy``), nothing written."""
    if report.dry_run:
        outcome, sent, sha = dry_copy(
            origin, target, key, size, checksum, planned=planned, gid=gid, shared=shared
        )
        report.objects_copied += outcome == "copied"
        report.objects_present += outcome == "present"
        report.bytes_copied += sent
        return sha
    try:
        there: ObjectInfo | None = target.head(key)
    except ObjectNotFound:
        there = None
    if there is not None:  # copied by an earlier run? (a row without a checksum: the source's bytes hashed)
        expected = checksum or sha256_of(origin, key)
        if holds(target, key, there, there.size if size is None else size, expected):
            report.objects_present += 1
            return expected
    source = origin.head(key)
    if size is not None and source.size != size:  # refused before anything is written, as a dry run says
        raise StorageError(f"{origin.url}/{key} has {source.size} bytes, the row recorded {size}")
    try:
        info = target.put(
            key,
            origin.get(key, checksum=checksum),  # verified as it streams: a damaged source is refused
            content_type=source.content_type,
            metadata=dict(source.metadata),
        )
    except KeyConflict:
        raise  # nothing at the key: its folder is an object there, or it is the folder of objects
    except ObjectExists:
        raise StorageError(
            f"{target.url}{'' if target.url.endswith('/') else '/'}{key} exists with other bytes; it was "
            "left as it is and the row was not changed"
        ) from None
    landed = target.head(key)
    copied = info.checksum or ""
    if size is not None and landed.size != size:
        raise StorageError(f"the copy of {key} has {landed.size} bytes, the row recorded {size}")
    if checksum is not None and copied != checksum:
        raise StorageError(f"the copy of {key} hashes to {copied}, the row recorded {checksum}")
    stored = landed.checksum
    if stored is None:  # a folder without user xattrs keeps none: read the copy back
        digest = hashlib.sha256()
        for chunk in target.get(key, checksum=copied):
            digest.update(chunk)
        stored = digest.hexdigest()
    if stored != copied:
        raise StorageError(f"the copy of {key} in {target.url} does not hash to what was sent")
    report.objects_copied += 1
    report.bytes_copied += landed.size
    return copied


__all__ = ["CopyReport", "CopySkipped", "copy_files"]
