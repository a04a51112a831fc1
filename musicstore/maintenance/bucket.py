"""Maintenance over an object store (``s3://BUCKET/PREFIX``): the listing joined with the rows, in pages.

``classify_objects(store, files)`` is the one pass ``reconcile``, ``cleanup`` and ``disk_usage`` share for a
bucket. It walks two streams in key order and merges them, holding one page of each:

* the objects under the prefix (``FileStore.list``: ``ListObjectsV2``, 1000 keys a page), and
* the rows whose files live in that store (``storage_url`` = the store's URL): generations paged by their
  key over the ``file_path`` index (for such rows ``file_path`` is the key), and renditions (which live in
  their generation's store) paged over their ``storage_key`` index, the two merged by key.

A key on both sides is *referenced*. The rows' keys sort by their bytes on both backends (PostgreSQL's
columns are ``COLLATE "C"`` since migration 0017; before it they sorted by the database's locale), as S3 lists
them. The merge still trusts neither order blindly (SeaweedFS lists folder by folder): an object no row
seemed to record is looked up by key (a batch of up to ``batch`` keys, one query per table) and then by
the generation id its name carries (a pending or processing generation's object is *in progress*: a worker
put it and has not committed; one that a row of another store records, a store whose prefix lies inside
this one's or around it, is *referenced*: it is that store's file, never an orphan here). A row whose object
seemed absent is held (up to ``HOLD`` of them) until the end, then confirmed with a ``HEAD``: its object
may have come out of order, or its row been committed (a worker completing a job) after the listing passed
its key. Such keys therefore cost a request each, never a wrong answer (a healthy store has none); the keys
confirmed that way are remembered so that no object is counted twice. Objects whose names are not audio
(``<id>.<ext>``, a rendition's name) that no row records (looked up by key, as orphans are, when the merge
did not meet a row beside them) are *other*: counted, never touched. Nothing outside the prefix is
listed, so nothing there is ever touched. With ``peaks=True`` (reconcile) a waveform peaks object
(``<36-char id>.peaks.<int>.<8|16>[.split].json``, no row records it) is looked up, in batches, by the id
its name carries: *referenced* while that generation's row exists, else an *orphan* (``Item.peaks``;
one named after a master at a custom path, ``album/track 01.peaks.256.8.json``, is an orphan when no row of
this store records that master, *other* while one does and does not record it);
and the peaks file each generation's row records (``metadata["peaks"]``) joins the rows as a row of its own
(``peaks_rows``, placed in key order beside its master), so a recorded peaks object that is missing or of
another size is found by the same merge, with no request of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import InvalidInput
from ..filestore import FileStore, ObjectInfo, ObjectNotFound
from ..filestore.base import check_key
from ..models import Status
from ..store import Store
from .bucket_rows import HOLD, StoredRow, owners_by_ids, peaks_rows, stored_by_keys, stored_rows
from .file_names import master_names
from .scan import audio_stem, is_peaks_of, peaks_stem

LIST_PAGE = 1000
"""Keys a listing request asks for (S3's largest page)."""
_LIVE = frozenset({Status.PENDING.value, Status.PROCESSING.value})


def join(
    objects: Iterable[ObjectInfo], rows: Iterable[StoredRow]
) -> Iterator[tuple[str, ObjectInfo | None, list[StoredRow]]]:
    """Merge two key-ordered streams: (key, the object or None, the rows recording the key)."""
    pending = iter(rows)
    row = next(pending, None)

    def group(key: str) -> list[StoredRow]:
        nonlocal row
        found: list[StoredRow] = []
        while row is not None and row.key == key:
            found.append(row)
            row = next(pending, None)
        return found

    for obj in objects:
        while row is not None and row.key < obj.key:
            yield row.key, None, group(row.key)
        yield obj.key, obj, group(obj.key) if row is not None and row.key == obj.key else []
    while row is not None:
        yield row.key, None, group(row.key)


@dataclass(slots=True)
class Item:
    """One key of the store and what the rows say of it.

    ``state``: referenced (an object some row records), in_progress (an object named after a pending or
    processing generation), orphan (an audio object no row records), other (an object whose name is not
    audio: never touched), missing (rows whose object is not there)."""

    key: str
    obj: ObjectInfo | None
    rows: list[StoredRow]
    state: str
    status: str | None = None
    """The status of the generation the key belongs to (None for orphans and others)."""
    peaks: bool = False
    """A waveform peaks object (classified only with ``classify_objects(..., peaks=True)``)."""


class _Classifier:
    def __init__(self, store: Store, files: FileStore, batch: int, peaks: bool) -> None:
        self.store, self.files, self.batch, self.peaks = store, files, batch, peaks
        self.orphans: list[ObjectInfo] = []
        self.others: list[ObjectInfo] = []
        """Objects whose names are not audio that no row met in the merge, waiting for their lookup by key."""
        self.drawn: list[tuple[ObjectInfo, str]] = []
        """Peaks objects and the generation id each name carries, waiting for their batch's lookup."""
        self.missing: list[tuple[str, list[StoredRow]]] = []
        self.found_by_key: set[str] = set()
        """Objects the merge missed (out of order) and the lookup by key found: counted once."""
        self.found_by_head: set[str] = set()
        """Rows' objects the merge missed and a HEAD found."""

    def run(self) -> Iterator[Item]:
        listing = self.files.list(page_size=LIST_PAGE)
        recorded = stored_rows(self.store, self.files.url, self.batch, peaks=self.peaks)
        for key, obj, rows in join(listing, recorded):
            if obj is not None and rows:
                yield Item(key, obj, rows, "referenced", rows[0].status, peaks=any(r.is_peaks for r in rows))
            elif obj is not None:
                name = key.rpartition("/")[2]
                if audio_stem(name) is None or not _is_key(key):  # not audio, or not a key musicstore writes
                    owner = peaks_stem(name) if self.peaks else None
                    if owner is None:  # other, unless a row records it and came out of order
                        self.others.append(obj)
                        if len(self.others) >= self.batch:
                            yield from self.confirm_others()
                        continue
                    self.drawn.append((obj, owner))
                    if len(self.drawn) >= self.batch:
                        yield from self.confirm_peaks()
                    continue
                self.orphans.append(obj)
                if len(self.orphans) >= self.batch:
                    yield from self.confirm_orphans()
            else:
                self.missing.append((key, rows))
                if len(self.missing) >= HOLD:
                    yield from self.confirm_missing()
        yield from self.confirm_orphans()
        yield from self.confirm_others()
        yield from self.confirm_peaks()
        yield from self.confirm_missing()

    def confirm_peaks(self) -> Iterator[Item]:
        """The peaks objects gathered: referenced while their generation's row exists and records its files in
        this store (or is pending or processing), else orphans: its row is gone, or its files are in another
        store (``copy_files`` keeps the sources: these go with the master left here, as orphans)."""
        drawn, self.drawn = self.drawn, []
        if not drawn:
            return
        rows = self.store.run(owners_by_ids, sorted({owner for _, owner in drawn}))
        for obj, owner in drawn:
            if obj.key in self.found_by_head:
                continue  # the object its generation's record names, counted when that row came
            row = rows.get(owner)
            if row is None:
                yield Item(obj.key, obj, [], "orphan", peaks=True)
                continue
            recorded = next(
                (r for r in peaks_rows(row) if r.key == obj.key), None
            ) if row.key == self.files.url else None  # fmt: skip
            if recorded is not None:  # its row came out of order: met here
                self.found_by_key.add(obj.key)
                yield Item(obj.key, obj, [recorded], "referenced", row.status, peaks=True)
            elif row.status in _LIVE or not _moved_away(self.files.url, obj.key, row.key):
                yield Item(obj.key, obj, [], "referenced", row.status, peaks=True)
            else:  # its generation's files are in another store (copy-files kept these): its master's fate
                yield Item(obj.key, obj, [], "orphan", peaks=True)

    def confirm_others(self) -> Iterator[Item]:
        """The objects gathered whose names are not audio: *other*, unless a row records one (any key may
        be a row's: ``complete_generation`` and ``create_rendition`` take it) and came out of the merge's
        order; that object is then *referenced*, counted once (its row, held as missing, is not asked
        again)."""
        objects, self.others = self.others, []
        if not objects:
            return
        recorded: dict[str, list[StoredRow]] = {}
        for row in self.store.run(stored_by_keys, self.files.url, [o.key for o in objects]):
            recorded.setdefault(row.key, []).append(row)
        gone = self._peaks_of_no_master([o.key for o in objects if o.key not in recorded])
        for obj in objects:
            rows = recorded.get(obj.key)
            if not rows and obj.key in gone:
                yield Item(obj.key, obj, [], "orphan", peaks=True)
            elif not rows:
                yield Item(obj.key, obj, [], "other")
            elif obj.key not in self.found_by_head:  # else counted when its row came
                self.found_by_key.add(obj.key)
                yield Item(obj.key, obj, rows, "referenced", rows[0].status)

    def _peaks_of_no_master(self, keys: list[str]) -> set[str]:
        """Those of ``keys`` (no row records them) named as the peaks of a master at a custom path
        (``album/track 01.peaks.256.8.json``) that no row of this store records (``<stem>.wav`` or
        ``.flac``, the suffix in any case: ``file_names.master_names``): its generation is gone, or its files
        are in another store, as that master's fate is (an orphan then too); as a folder's walk judges them
        (``custom_peaks.recorded_peaks``)."""
        if not self.peaks:
            return set()
        masters: dict[str, list[str]] = {}
        for key in keys:
            stem = key.rpartition(".peaks.")[0]
            if stem and is_peaks_of(key.rpartition("/")[2], stem.rpartition("/")[2]):
                masters[key] = master_names(stem)
        if not masters:
            return set()
        wanted = sorted({m for found in masters.values() for m in found})
        recorded = self.store.run(stored_by_keys, self.files.url, wanted)
        return {  # a name with the 8 hex of an id: the master's row must be that generation's
            key for key, found in masters.items()
            if not any(r.key in found and is_peaks_of(key.rpartition("/")[2], key.rpartition(".peaks.")[0]
                       .rpartition("/")[2], r.generation_id) for r in recorded)
        }  # fmt: skip

    def confirm_orphans(self) -> Iterator[Item]:
        objects, self.orphans = self.orphans, []
        if not objects:
            return
        recorded: dict[str, list[StoredRow]] = {}
        for row in self.store.run(stored_by_keys, self.files.url, [o.key for o in objects]):
            recorded.setdefault(row.key, []).append(row)
        stems = {o.key: audio_stem(o.key.rpartition("/")[2]) or "" for o in objects}
        owners = self.store.run(owners_by_ids, sorted({s for k, s in stems.items() if k not in recorded}))
        elsewhere = self._recorded_elsewhere([o.key for o in objects if o.key not in recorded], stems, owners)
        for obj in objects:
            rows = recorded.get(obj.key)
            if rows:
                if obj.key in self.found_by_head:
                    continue  # counted when its row came
                self.found_by_key.add(obj.key)
                yield Item(obj.key, obj, rows, "referenced", rows[0].status)
                continue
            owner = owners.get(stems[obj.key])
            if owner is not None and owner.status in _LIVE:
                yield Item(obj.key, obj, [], "in_progress", owner.status)
            elif owner is not None and obj.key in elsewhere:
                yield Item(
                    obj.key, obj, [], "referenced", owner.status
                )  # another store's file: never touched
            else:
                yield Item(obj.key, obj, [], "orphan")

    def _recorded_elsewhere(
        self, keys: list[str], stems: dict[str, str], owners: dict[str, StoredRow]
    ) -> set[str]:
        """Those of ``keys`` that rows of another store record: a store whose prefix lies inside this one's
        (``s3://b/music/v2/`` in ``s3://b/music/``, any prefix in ``s3://b/``) or around it lists the same
        objects under other keys. Looked up by the store the generation their name carries is in."""
        here = self.files.url
        wanted: dict[str, dict[str, str]] = {}
        for key in keys:
            owner = owners.get(stems[key])
            there = "" if owner is None else owner.key  # the store its generation's files are in
            where = here + key
            if there not in ("", here) and there.endswith("/") and where.startswith(there):
                wanted.setdefault(there, {})[where[len(there) :]] = key
        found: set[str] = set()
        for url, theirs in wanted.items():
            found.update(theirs[row.key] for row in self.store.run(stored_by_keys, url, sorted(theirs)))
        return found

    def confirm_missing(self) -> Iterator[Item]:
        """The rows whose object the merge did not meet, asked with a HEAD each (those that must exist): the
        object may have come out of order, or the row been committed after the listing passed its key."""
        groups, self.missing = self.missing, []
        for key, rows in groups:
            if key in self.found_by_key:
                continue  # its object came earlier (out of order) and was counted then
            if any(row.must_exist for row in rows):
                try:
                    head = self.files.head(key)
                except ObjectNotFound:
                    pass
                else:
                    self.found_by_head.add(key)
                    yield Item(key, head, rows, "referenced", rows[0].status)
                    continue
            yield Item(key, None, rows, "missing", rows[0].status)


def _moved_away(here: str, key: str, there: str) -> bool:
    """Whether an object at ``key`` of the store ``here`` is left behind by a generation whose files are in
    the store ``there`` (its ``storage_url``; empty: a local root): another store, not one whose prefix lies
    inside this one or around it (which lists the same object under another key)."""
    return there != here and not (there.endswith("/") and (here + key).startswith(there))


def _is_key(key: str) -> bool:
    """Whether ``key`` is one a ``FileStore`` takes (``check_key``): an object another tool put under some
    other key (a control character, say) is none of musicstore's files, and could not be acted on."""
    try:
        check_key(key)
    except InvalidInput:
        return False
    return True


def classify_objects(
    store: Store, files: FileStore, *, batch: int = 1000, peaks: bool = False
) -> Iterator[Item]:
    """Every object under the store's prefix and every row recording a file there, classified (see the
    module); memory is bounded by ``batch`` and one listing page, whatever the bucket holds. With ``peaks``,
    waveform peaks objects are classified by their generation's row (else they are *other*)."""
    return _Classifier(store, files, batch, peaks).run()


def is_object_store(root: object) -> bool:
    """Whether ``root`` names an object store (``s3://…``, or an open ``FileStore`` other than a folder)."""
    from ..filestore import LocalFileStore

    if isinstance(root, FileStore):
        return not isinstance(root, LocalFileStore)
    return isinstance(root, str) and root[:5].lower() == "s3://"


__all__ = [
    "Item",
    "StoredRow",
    "classify_objects",
    "is_object_store",
    "join",
    "owners_by_ids",
    "peaks_rows",
    "stored_by_keys",
    "stored_rows",
]
